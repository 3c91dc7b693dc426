//! The xueliang county center.
//!
//! ```text
//! agents ─MQTT─▶ broker (embedded rumqttd, or Mosquitto/EMQX)
//!   ─▶ ingest (validate, verify signature, group commit, then ack and receipt)
//!   ─▶ store (sled, idempotent by alarm id); refused payloads ─▶ dead letters
//!   ─▶ HTTP API (axum): /api/alarms, /api/alarms/{id}/snapshot, /api/agents/{id}/config
//! config push ─MQTT (retained, signed)─▶ agents ─ConfigAck─▶ ingest
//! ```

pub mod agent_keys;
pub mod audit;
pub mod api;
pub mod broker;
pub mod cases;
pub mod center;
pub mod config_push;
pub mod dead_letters;
pub mod dispatch;
pub mod fleet;
pub mod ingest;
pub mod query;
pub mod retention;
pub mod routing;
pub mod sessions;
pub mod store;
pub mod users;
pub mod watched_file;
pub mod webhooks;
pub mod workflow;
