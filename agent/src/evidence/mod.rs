//! Events → sealed messages: the evidence picture (shape, boxes and track ids drawn, privacy
//! masks blacked out, size-capped JPEG; on the record stream's frame of the moment where the
//! camera has one, decoded only then), the event log that turns rule changes into an opening
//! alarm, updates and an end, the event's clip (cut from the kept compressed video, muxed
//! without re-encoding unless privacy masks must be blacked out), the messages in the
//! contract's terms, and the box's signature.

mod alarm;
mod clip;
mod events;
mod picture;
mod seal;
mod still;
mod watch;

pub use alarm::{AlarmContext, build, detections};
pub use clip::{CameraClips, ClipMaker, Deliver, camera_clips, mux};
pub use events::{EventLog, Outgoing, UPDATE_EVERY_MS};
pub use picture::{EvidenceError, MaskBlocks, PictureJob, Rgb};
pub use seal::{MessageKind, Sealed, Sealer, key_path};
pub use still::{Pictures, RecordStream, record_frame};
pub use watch::Watch;
