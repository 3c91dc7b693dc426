//! Sealed alarms → the center: the durable outbox (and its writer, which keeps messages in
//! memory while the disk is full), the publishing window (free of I/O), the
//! MQTT publisher (an alarm leaves the outbox when the center's signed receipt names it),
//! configs the center pushes, and Health.

mod health;
mod outbox;
mod publisher;
mod pushed_config;
mod window;
mod writer;

pub use health::HealthReporter;
pub use outbox::{
    Drops, Limits, Outbox, OutboxError, Pending, PendingKind, is_snapshot_id, moved_aside,
    snapshot_id,
};
pub use publisher::{Links, Publisher, mqtt_options};
pub use pushed_config::{PushError, PushedConfigs};
pub use writer::{OutboxWriter, RETRY, WriteCounts};
