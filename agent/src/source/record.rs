//! A camera's record stream (its main stream): received, depayloaded and parsed into the
//! camera's [`StreamRing`], not decoded here (only an event's picture decodes a moment of it).
//! Pipeline: `uridecodebin uri=… caps=video/x-h264;
//! video/x-h265` (it stops before any decoder) `! h264parse|h265parse ! fakesink`, the parser's
//! output tapped. One thread per camera reconnects with backoff; the detect stream alone says
//! whether the camera is online, so a lost record stream is logged and counted, not an event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, info, warn};
use xueliang_service::backoff::Backoff;

use super::camera::{discard, error_text, on_source_setup, tap};
use super::ring::StreamRing;
use crate::config::{CameraConfig, redact_url};

/// Reconnect delays: 1 s doubling to 30 s (the record stream is not needed to detect).
const RECONNECT: Backoff =
    Backoff::doubling(Duration::from_secs(1), Duration::from_secs(30)).with_jitter(0.2, 0.2);

/// A running record-stream thread.
#[derive(Debug)]
pub struct RecordSource {
    handle: Option<JoinHandle<()>>,
}

impl RecordSource {
    /// Starts receiving camera `config`'s `record_url` into `ring` until `shutdown` is set.
    pub fn spawn(
        config: CameraConfig,
        ring: Arc<StreamRing>,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let handle = std::thread::Builder::new()
            .name(format!("record-{}", config.id))
            .spawn(move || run(&config, &ring, &shutdown))?;
        Ok(Self { handle: Some(handle) })
    }

    /// Waits for the thread to end (after shutdown was set).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Receives the record stream until `shutdown`, reconnecting with backoff.
fn run(config: &CameraConfig, ring: &Arc<StreamRing>, shutdown: &AtomicBool) {
    let Some(url) = config.record_url.as_deref() else { return };
    let mut attempt = 0;
    while !shutdown.load(Ordering::Relaxed) {
        ring.restart();
        let (reason, got_data) = match build(config, url, ring.clone()) {
            Ok(pipeline) => {
                let end = receive(config, &pipeline, ring, shutdown);
                let _ = pipeline.set_state(gst::State::Null);
                end
            }
            Err(e) => (e, false),
        };
        if shutdown.load(Ordering::Relaxed) {
            break;
        }
        if got_data {
            attempt = 0;
        }
        let delay = RECONNECT.delay(attempt);
        attempt += 1;
        warn!(
            camera = %config.id,
            url = %redact_url(url),
            "record stream of camera {}: {reason}; clips wait for it, retrying in {:.0}s",
            config.id,
            delay.as_secs_f32()
        );
        let until = Instant::now() + delay;
        while Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    debug!(camera = %config.id, "record thread stopped");
}

/// The record pipeline, playing.
fn build(config: &CameraConfig, url: &str, ring: Arc<StreamRing>) -> Result<gst::Pipeline, String> {
    gst::init().map_err(|e| format!("GStreamer cannot start: {e}"))?;
    let pipeline = gst::Pipeline::with_name(&format!("record-{}", config.id));
    let caps: gst::Caps =
        "video/x-h264; video/x-h265".parse().map_err(|e| format!("record caps: {e}"))?;
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", url)
        .property("caps", caps)
        .build()
        .map_err(|_| "GStreamer element uridecodebin is missing (run `make setup`)".to_string())?;
    on_source_setup(&src, config.transport);
    pipeline.add(&src).map_err(|e| e.to_string())?;
    // A recording replayed as a record stream is paced like a camera; a camera paces itself.
    let sync = url.starts_with("file://");
    let pipeline_weak = pipeline.downgrade();
    src.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else { return };
        let name = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default();
        let parser = match name.as_str() {
            "video/x-h264" => "h264parse",
            "video/x-h265" => "h265parse",
            _ => {
                if let Some(sink) = discard(&pipeline) {
                    let _ = pad.link(&sink);
                }
                return;
            }
        };
        let linked = (|| {
            let parse = gst::ElementFactory::make(parser).build().ok()?;
            let sink = gst::ElementFactory::make("fakesink").property("sync", sync).build().ok()?;
            pipeline.add_many([&parse, &sink]).ok()?;
            parse.link(&sink).ok()?;
            tap(&parse.static_pad("src")?, ring.clone());
            parse.sync_state_with_parent().ok()?;
            sink.sync_state_with_parent().ok()?;
            pad.link(&parse.static_pad("sink")?).ok()
        })();
        if linked.is_none() {
            warn!("cannot link the record stream to {parser}");
        }
    });
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("cannot start: {e}"))?;
    Ok(pipeline)
}

/// Watches the pipeline until the stream is lost or `shutdown`: returns why, and whether data
/// came.
fn receive(
    config: &CameraConfig,
    pipeline: &gst::Pipeline,
    ring: &StreamRing,
    shutdown: &AtomicBool,
) -> (String, bool) {
    let Some(bus) = pipeline.bus() else { return ("pipeline has no bus".into(), false) };
    let timeout = Duration::from_secs_f32(config.frame_timeout_s).max(Duration::from_secs(10));
    let mut last = (ring.counters.units.load(Ordering::Relaxed), Instant::now());
    let mut got_data = false;
    while !shutdown.load(Ordering::Relaxed) {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return (format!("stream error: {}", error_text(err)), got_data);
                }
                gst::MessageView::Eos(_) => return ("end of stream".into(), got_data),
                _ => {}
            }
        }
        let units = ring.counters.units.load(Ordering::Relaxed);
        if units != last.0 {
            if !got_data {
                info!(camera = %config.id, "record stream of camera {} flowing", config.id);
            }
            got_data = true;
            last = (units, Instant::now());
        } else if last.1.elapsed() > timeout {
            return (format!("no data for {:.0}s", timeout.as_secs_f32()), got_data);
        }
    }
    ("shutdown".into(), got_data)
}
