//! Shared pieces of the xueliang demo and end-to-end tests: a real RTSP server that serves a
//! video file as a camera would, helpers to find the set-up's cached files, the capacity
//! measurement of `xl-capacity`, and a logged-in client of the center's API.

pub mod capacity;
pub mod center_client;
pub mod rtsp_server;
pub mod scenario;
