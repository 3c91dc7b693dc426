//! Cases: the workflow driven over the store (each step stored, audited and flushed, then
//! dispatched and answered), escalation of alarms left unacknowledged, supervision (boxes
//! silent, dropping alarms or with a wrong clock, the center's disk, dispatches not received or
//! not delivered), the retention loop, and the feed that tells consoles of every new or changed
//! alarm.

mod escalation;
mod feed;
mod retention;
mod service;
mod supervision;

pub use escalation::run_escalation;
pub use feed::{AlarmEvent, AlarmFeed, Change, Relayed};
pub use retention::{Kept, run_retention};
pub use service::{Cases, DISPATCH_LATENCY_BOUNDS, SYSTEM, facts};
pub use supervision::{CENTER, Supervisor, run_supervision};
