//! The xueliang edge agent: cameras → detections → tracks → events → sealed alarms → the center.
//!
//! Each folder is one stage; data flows down this list, and a stage imports only from the stages
//! above it and from the shared pieces (`config`, `geometry`):
//!
//! ```text
//! source/    cameras → frames: GStreamer pipelines (RTSP or a recording), newest frame only,
//!            reconnection, loss and return as events; I420 frames without a copy; the last
//!            seconds of compressed video (record stream, or detect stream before its decoder)
//! detect/    frames → detections: motion gate, preprocessing, the ONNX Runtime session, output
//!            heads (NanoDet, YOLO) chosen by the model card, class-wise NMS, the inference loop
//! track/     detections → tracks (ByteTrack-style, per camera)
//! rules/     tracks → events: privacy masks, one file per rule kind, filters, cooldowns; tamper
//!            on the picture itself
//! evidence/  events → sealed alarms: the picture (masks blacked out), the alarm, the event's
//!            clip (fragmented MP4 cut from the kept video), the signature
//! delivery/  sealed alarms and clips → the center: durable outbox, MQTT publisher, pushed
//!            configs, Health
//! ```
//!
//! Around them: `config` is what the user wrote, one file per section with its checks, and
//! imports no stage; `geometry` is the shared vocabulary of points, boxes, polygons and lines.
//! Both live in the `xueliang-config` crate (`config/` at the workspace root), re-exported
//! here under these names, so that the center checks a config it pushes as the box does;
//! `runtime/` runs the stages as a service (start, config swaps, the detector thread, the alarm
//! chain, watchdog, metrics); `tools/` are the installers' and measurers' commands (`doctor`,
//! `probe-camera`, `enroll`, `replay`, `bench`, `eval`). Nothing imports `runtime/` or `tools/`;
//! the binary's `cli/` (one file per subcommand) calls both.
//!
//! The config is checked whole before anything starts; [`runtime::Agent::build`] loads the model
//! and resolves the rules, so a bad model or config fails at start-up, while cameras and the
//! broker are retried for as long as the agent runs.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

/// What the user wrote, with its checks (the `xueliang-config` crate, shared with the center).
pub use xueliang_config as config;
/// Points, boxes, polygons and lines in normalized picture coordinates.
pub use xueliang_config::geometry;
pub mod delivery;
pub mod detect;
pub mod evidence;
pub mod rules;
pub mod runtime;
pub mod source;
pub mod tools;
pub mod track;
