//! Recorded clips, decoded frame by frame in order, every frame (for `eval` and `bench`).
//!
//! Unlike a camera source this drops nothing and does not pace: the reader asks for the next
//! frame and the decoder produces it. The decoder's output passes through `videoconvert` as
//! I420 untouched, exactly as in a camera pipeline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::frame::Frame;

/// Why a clip could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file is absent.
    #[error("clip {0} not found")]
    Missing(PathBuf),
    /// GStreamer could not build or run the decoding pipeline.
    #[error("clip {path}: {message}")]
    Decode {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A clip being decoded.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    convert: Arc<Mutex<ConvertTimer>>,
    /// Frames returned so far.
    pub frames: usize,
}

/// Time spent inside `videoconvert`, from a probe on each of its pads (both run in the
/// streaming thread, one after the other, for each buffer).
#[derive(Debug, Default)]
struct ConvertTimer {
    entered: Option<Instant>,
    total: Duration,
}

impl Recording {
    /// Opens `path` and starts decoding.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        if !path.is_file() {
            return Err(RecordingError::Missing(path.to_owned()));
        }
        let err = |message: String| RecordingError::Decode { path: path.to_owned(), message };
        gst::init().map_err(|e| err(e.to_string()))?;
        let abs = std::fs::canonicalize(path).map_err(|e| err(e.to_string()))?;
        let uri = gst::glib::filename_to_uri(&abs, None).map_err(|e| err(e.to_string()))?;
        let pipeline = gst::parse::launch(&format!(
            "uridecodebin uri=\"{uri}\" ! videoconvert name=convert ! \
             video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=4 drop=false"
        ))
        .map_err(|e| err(format!("cannot build decoder: {e} (run `make setup`)")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| err("not a pipeline".into()))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| err("no appsink".into()))?;
        let convert = Arc::new(Mutex::new(ConvertTimer::default()));
        let element = pipeline.by_name("convert").ok_or_else(|| err("no videoconvert".into()))?;
        for (pad, entering) in [("sink", true), ("src", false)] {
            let timer = convert.clone();
            element
                .static_pad(pad)
                .ok_or_else(|| err("videoconvert has no pads".into()))?
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    let mut t = timer.lock().unwrap_or_else(|p| p.into_inner());
                    if entering {
                        t.entered = Some(Instant::now());
                    } else if let Some(at) = t.entered.take() {
                        t.total += at.elapsed();
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| err(format!("cannot start decoding: {e}")))?;
        Ok(Self { path: path.to_owned(), pipeline, sink, convert, frames: 0 })
    }

    /// Time spent converting the frames decoded so far (near zero when the decoder's I420
    /// passes through untouched).
    pub fn convert_time(&self) -> Duration {
        self.convert.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// The next frame, or `None` at the end of the clip.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RecordingError> {
        let err = |message: String| RecordingError::Decode { path: self.path.clone(), message };
        let bus = self.pipeline.bus().ok_or_else(|| err("pipeline has no bus".into()))?;
        loop {
            // Pull in slices: a decoding error never reaches the appsink, only the bus.
            if let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                let frame = Frame::new(
                    0,
                    sample,
                    xueliang_proto::endpoint::now_ms(),
                    super::frame::mono_now_ms(),
                )
                .map_err(|e| err(e.to_string()))?;
                self.frames += 1;
                return Ok(Some(frame));
            }
            if self.sink.is_eos() {
                return Ok(None);
            }
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                return Err(err(super::camera::error_text(e)));
            }
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
