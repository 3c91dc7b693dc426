//! Events → sealed messages: the evidence picture (shape, boxes and track ids drawn, privacy
//! masks blacked out, size-capped JPEG), the event log that turns rule changes into an opening
//! alarm, updates and an end, the messages in the contract's terms, and the box's signature.

mod alarm;
mod events;
mod picture;
mod seal;
mod watch;

pub use alarm::{AlarmContext, build, detections};
pub use events::{EventLog, Outgoing, UPDATE_EVERY_MS};
pub use picture::{EvidenceError, Rgb, snapshot};
pub use seal::{MessageKind, Sealed, Sealer, key_path};
pub use watch::Watch;
