//! Events → sealed alarms: the evidence picture (shape, boxes and track ids drawn, privacy masks
//! blacked out, size-capped JPEG), the alarm in the contract's terms, and the box's signature.

mod alarm;
mod picture;
mod seal;

pub use alarm::{AlarmContext, build};
pub use picture::{EvidenceError, Rgb, snapshot};
pub use seal::{Sealed, Sealer, key_path};
