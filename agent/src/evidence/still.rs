//! Event pictures from the record stream: the camera's kept compressed main stream is decoded
//! only when a picture is wanted, from the keyframe at or before the event's moment up to the
//! frame that arrived then, so the main stream costs no decoding while nothing happens. The
//! objects seen on the detect frame are drawn on it (boxes are fractions of the picture). Where
//! there is no record stream, or its frame cannot be had, the detect frame is drawn on instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::clip::{codec_elements, feed};
use super::picture::PictureJob;
use crate::source::{CameraCounters, Frame, StreamRing};

/// How long a picture waits for the record stream to reach the event's moment (it travels on
/// its own connection and may lag the detect stream a little).
const CATCH_UP: Duration = Duration::from_secs(1);

/// A record stream whose newest frame is this far behind the moment is not waited for.
const STALLED_MS: i64 = 2_000;

/// The record stream's frame may be this much older than the moment (the streams' arrival
/// times differ by their latencies); an older one is not of the moment.
const LATE_MS: i64 = 500;

/// Longest a record frame may take to decode before the detect frame is used instead.
const DECODE_DEADLINE: Duration = Duration::from_secs(10);

/// One camera's record stream, as pictures use it.
#[derive(Debug, Clone)]
pub struct RecordStream {
    /// Its kept compressed video.
    pub ring: Arc<StreamRing>,
    /// Where the frames decoded for pictures are counted.
    pub counters: Arc<CameraCounters>,
}

/// Draws event pictures, on the record stream's frame where a camera has one.
#[derive(Debug, Clone)]
pub struct Pictures {
    /// Per camera, in config order: its record stream, if any.
    records: Vec<Option<RecordStream>>,
}

impl Pictures {
    /// Pictures of cameras whose record streams are `records` (in config order).
    pub fn new(records: Vec<Option<RecordStream>>) -> Self {
        Self { records }
    }

    /// `job` drawn as a JPEG, and the size of the frame it is drawn on.
    pub fn draw(&self, job: &PictureJob) -> Result<(Vec<u8>, (usize, usize)), String> {
        let detect = &job.frame;
        let record = self.records.get(detect.camera).and_then(Option::as_ref).and_then(|r| {
            record_frame(r, detect.camera, detect.mono_ms)
                .inspect_err(|e| {
                    tracing::warn!(
                        camera = detect.camera,
                        "picture drawn on the detect stream: the record stream's frame: {e}"
                    )
                })
                .ok()
        });
        let frame = record.as_ref().unwrap_or(detect);
        job.draw_on(frame)
    }
}

/// The frame of `record` that arrived last at or before `at_mono_ms`, decoded from the keyframe
/// before it (each decoded frame counted).
pub fn record_frame(
    record: &RecordStream,
    camera: usize,
    at_mono_ms: i64,
) -> Result<Frame, String> {
    let ring = &record.ring;
    let waited = Instant::now();
    let newest = || ring.newest_mono_ms().unwrap_or(i64::MIN);
    // A stream well behind the moment is stalled or reconnecting: no use waiting for it.
    while newest() < at_mono_ms
        && newest() >= at_mono_ms - STALLED_MS
        && waited.elapsed() < CATCH_UP
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    if newest() < at_mono_ms - LATE_MS {
        return Err("the record stream is stalled or reconnecting".into());
    }
    let cut = ring.cut(at_mono_ms, at_mono_ms).ok_or("nothing of that moment is kept")?;
    let started = Instant::now();
    let last = cut.units.last().ok_or("nothing of that moment is kept")?.clone();
    gst::init().map_err(|e| e.to_string())?;
    let (parse, decode) = codec_elements(&cut.caps);
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! {parse} ! {decode} ! videoconvert ! \
         video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=1 drop=true"
    ))
    .map_err(|e| format!("cannot build the decoder: {e} (run `make setup`)"))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline".to_string())?;
    let element = |name: &str| pipeline.by_name(name).ok_or(format!("no {name} in the decoder"));
    let src = element("src")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| "appsrc is not an AppSrc".to_string())?;
    let sink = element("sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "appsink is not an AppSink".to_string())?;
    src.set_caps(Some(&cut.caps));
    let result = pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start decoding: {e}"))
        .and_then(|_| feed(&src, &cut))
        .inspect(|()| {
            record.counters.record_decoded.fetch_add(cut.units.len() as u64, Ordering::Relaxed);
        })
        .and_then(|()| last_sample(&pipeline, &sink));
    let _ = pipeline.set_state(gst::State::Null);
    let sample = result?;
    tracing::debug!(
        camera,
        frames = cut.units.len(),
        waited_ms = (started - waited).as_millis() as u64,
        took_ms = started.elapsed().as_millis() as u64,
        "record frame decoded for a picture"
    );
    Frame::new(camera, sample, last.wall_ms, last.mono_ms).map_err(|e| e.to_string())
}

/// The last frame out of the decoder, once it has finished (or failed).
fn last_sample(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Result<gst::Sample, String> {
    let bus = pipeline.bus().ok_or("decoder has no bus")?;
    let started = Instant::now();
    let mut last = None;
    while !sink.is_eos() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            last = Some(sample);
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(crate::source::error_text(e));
        }
        if started.elapsed() > DECODE_DEADLINE {
            return Err("decoding took too long".into());
        }
    }
    // The newest frame may still wait in the sink after its end of stream.
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
        last = Some(sample);
    }
    last.ok_or_else(|| "the decoder gave no frame".into())
}
