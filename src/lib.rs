//! Shared pieces of the xueliang demo and end-to-end tests: a real RTSP server that serves a
//! video file as a camera would, helpers to find the set-up's cached files, and the capacity
//! measurement of `xl-capacity`.

pub mod capacity;
pub mod rtsp_server;
pub mod scenario;
