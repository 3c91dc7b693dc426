//! The xueliang county center.
//!
//! ```text
//! agents ─MQTT─▶ broker (embedded rumqttd, or Mosquitto/EMQX)
//!   ─▶ ingest (validate, verify signature, route, group commit, then ack and receipt)
//!   ─▶ store (sled, idempotent by alarm id; indexes by time, camera, agent, status, unit)
//!        refused payloads ─▶ dead letters; agents' status and health ─▶ fleet
//!   ─▶ cases (workflow steps, escalation) ─▶ dispatch: MQTT xl/v1/dispatch/{unit}, webhooks
//!   ─▶ HTTP API (axum, users and roles, sessions; every view and step in the audit log)
//! config push ─MQTT (retained, signed)─▶ agents ─ConfigAck─▶ ingest
//! retention: old snapshots, then old alarms, deleted with their index entries
//! ```

pub mod access;
pub mod api;
pub mod cases;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod fleet;
pub mod ingest;
pub mod routing;
pub mod running;
pub mod store;
pub mod watched_file;
