//! The test kit: what the demo (`xl-demo`), the end-to-end tests, the benchmarks (`xl-capacity`,
//! `xl-ingest-bench`, `xl-tier-bench`) and the fault tests' scripted agent (`xl-scripted-agent`)
//! share.
//!
//! - [`rtsp_server`]: a real RTSP server that serves a video file as a camera would;
//! - [`scenario`]: the walkway scenario: where set-up leaves the model, ONNX Runtime and the
//!   footage, and an agent config watching the clip;
//! - [`center_client`]: a logged-in client of the center's API;
//! - [`capacity`]: the measurement `xl-capacity` runs;
//! - [`bench`]: what the benchmarks share: a Mosquitto of their own, CPU and memory figures.

pub mod bench;
pub mod capacity;
pub mod center_client;
pub mod rtsp_server;
pub mod scenario;
