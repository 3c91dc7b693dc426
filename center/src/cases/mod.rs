//! Cases: the workflow driven over the store (each step stored, dispatched, audited and flushed
//! before it is answered), escalation of alarms left unacknowledged, the retention loop, and the
//! feed that tells consoles of every new or changed alarm.

mod escalation;
mod feed;
mod retention;
mod service;

pub use escalation::run_escalation;
pub use feed::{AlarmEvent, AlarmFeed, Change};
pub use retention::run_retention;
pub use service::{Cases, DISPATCH_LATENCY_BOUNDS, SYSTEM, facts};
