//! Cameras → frames: each camera's GStreamer pipeline (RTSP or a recording), the newest frame
//! only, reconnection with backoff and the camera's loss and return as events; frames as decoded
//! I420 without a copy; the last seconds of compressed video (record stream, or the detect
//! stream before its decoder) kept for clips; recordings read frame by frame for the measuring
//! tools.

mod camera;
mod frame;
mod record;
mod recording;
mod ring;
mod yuv;

pub use camera::{
    CameraCounters, CameraEvent, CameraOutputs, CameraSource, FrameHub, Pace, RTSP_LATENCY_MS,
};
pub(crate) use camera::{build_pipeline, decoder_in, describe_decoder, error_text};
pub use frame::{Frame, FrameError, mono_now_ms};
pub use record::RecordSource;
pub use recording::{Recording, RecordingError};
pub use ring::{Cut, RingCounters, StreamRing, Unit, clip_codec};
#[cfg(test)]
pub(crate) use yuv::tests;
pub use yuv::{RgbTables, Yuv, YuvToRgb};
