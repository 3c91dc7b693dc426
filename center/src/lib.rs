//! The xueliang county center.
//!
//! ```text
//! agents ─MQTT─▶ broker (embedded rumqttd, or Mosquitto/EMQX)
//!   ─▶ ingest (validate, group commit, then ack) ─▶ store (sled, idempotent by alarm id)
//!   ─▶ HTTP API (axum): /api/alarms, /api/alarms/{id}/snapshot
//! ```

pub mod api;
pub mod broker;
pub mod center;
pub mod ingest;
pub mod store;
