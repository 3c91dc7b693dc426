//! The xueliang edge agent.
//!
//! ```text
//! source (GStreamer, newest frame only) → frame (I420, no copy)
//!   → detector (preprocess → ONNX Runtime → NanoDet head → class-wise NMS)
//!   → rules (privacy masks → tracker → zone, line, dwell, crowd and tamper rules on schedules)
//!   → evidence (JPEG, shape and tracks drawn, masks blacked out) → alarm
//!   → publisher (MQTT QoS 1, retained status, last will)
//! ```
//!
//! [`config`] is checked whole before anything starts; [`agent::Agent::build`] loads the model
//! and resolves the rules, so a bad model or config fails at start-up, while cameras and the
//! broker are retried for as long as the agent runs.

pub mod agent;
pub mod alarm;
pub mod bench;
pub mod classes;
pub mod clip;
pub mod config;
pub mod config_locate;
pub mod detection;
pub mod detector;
pub mod doctor;
pub mod enroll;
pub mod eval;
pub mod evidence;
pub mod frame;
pub mod geometry;
pub mod head;
pub mod health;
pub mod identity;
pub mod inference;
pub mod metrics;
pub mod model_card;
pub mod mot;
pub mod motion;
pub mod nanodet;
pub mod outbox;
pub mod preprocess;
pub mod probe;
pub mod publisher;
pub mod remote_config;
pub mod replay;
pub mod rules;
pub mod schedule;
pub mod source;
pub mod systemd;
pub mod tamper;
pub mod tracker;
pub mod usage;
pub mod yolo;
pub mod yuv;
