//! Camera sources: one thread per camera owns its GStreamer pipeline, its bus and its reconnect
//! loop; the rest of the agent sees only the newest frame and online/offline events.
//!
//! Pipeline: `uridecodebin uri=… ! videoconvert ! video/x-raw,format=I420 ! appsink
//! max-buffers=1 drop=true`. The decoders' I420 passes through `videoconvert` untouched, so
//! frames are not converted unless they are inferred; the appsink keeps only the newest one,
//! so a slow detector never builds latency. Audio streams go to a `fakesink`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{debug, info, warn};

use xueliang_service::backoff::Backoff;

use super::frame::Frame;
use crate::config::{CameraConfig, Transport, redact_url};
use xueliang_proto::endpoint::now_ms;

/// The newest frame of every camera, shared between the camera threads and the detector.
#[derive(Debug)]
pub struct FrameHub {
    slots: Mutex<Vec<Option<Frame>>>,
    ready: Condvar,
}

impl FrameHub {
    /// A hub for `cameras` cameras.
    pub fn new(cameras: usize) -> Self {
        Self { slots: Mutex::new(vec![None; cameras]), ready: Condvar::new() }
    }

    /// Waits until camera `i`'s slot is empty (its frame was taken), up to `timeout`.
    fn wait_taken(&self, i: usize, timeout: Duration) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (slots, _) = self
            .ready
            .wait_timeout_while(slots, timeout, |s| s.get(i).is_some_and(Option::is_some))
            .unwrap_or_else(|p| p.into_inner());
        slots.get(i).is_none_or(Option::is_none)
    }

    fn put(&self, frame: Frame) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let i = frame.camera;
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(frame);
        }
        self.ready.notify_all();
    }

    /// Moves into `out` the newest frames of up to `max` cameras (in `order`) that have one and
    /// are due, waiting up to `timeout` for the first. `due(i)` says whether camera `i` may be
    /// served now. Returns whether any frame was taken.
    pub fn take_batch(
        &self,
        order: impl Iterator<Item = usize> + Clone,
        due: impl Fn(usize) -> bool,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Frame>,
    ) -> bool {
        out.clear();
        let deadline = Instant::now() + timeout;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            for i in order.clone() {
                if out.len() < max
                    && due(i)
                    && let Some(frame) = slots.get_mut(i).and_then(Option::take)
                {
                    out.push(frame);
                }
            }
            if !out.is_empty() {
                // A camera thread waiting for its slot to empty (replay on demand) may go on.
                self.ready.notify_all();
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            slots = self.ready.wait_timeout(slots, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// Counters of one camera, shared with whoever reports health.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames decoded since start.
    pub frames: AtomicU64,
    /// Connections lost since start.
    pub reconnects: AtomicU64,
    /// Whether frames are arriving.
    pub online: AtomicBool,
    /// The last reason the stream was lost.
    pub last_error: Mutex<String>,
}

/// A GStreamer error with the last line of its debug detail: what broke, and where.
pub(crate) fn error_text(err: &gst::message::Error) -> String {
    let detail = err
        .debug()
        .map(|d| format!(" ({})", d.lines().last().unwrap_or_default()))
        .unwrap_or_default();
    format!("{}{detail}", err.error())
}

/// A change in a camera's state.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraEvent {
    /// Frames are arriving.
    Online {
        /// Camera index.
        camera: usize,
    },
    /// The stream was lost or could not be opened.
    Offline {
        /// Camera index.
        camera: usize,
        /// What went wrong, for the log and the duty officer.
        reason: String,
    },
}

/// How a source delivers frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As the camera sends them (recordings replayed at their own frame rate); the newest
    /// frame replaces an untaken one.
    Live,
    /// A recording decoded only as fast as its frames are taken, looping at its end: every
    /// decoded frame is inferred (for `xl-agent bench`).
    OnDemand,
}

/// Why one connection to a camera ended.
enum End {
    Shutdown,
    Lost(String),
}

/// A running camera thread.
#[derive(Debug)]
pub struct CameraSource {
    handle: Option<JoinHandle<()>>,
}

impl CameraSource {
    /// Starts the thread for camera `index`; it reconnects until `shutdown` is set.
    pub fn spawn(
        index: usize,
        config: CameraConfig,
        hub: Arc<FrameHub>,
        events: std::sync::mpsc::Sender<CameraEvent>,
        shutdown: Arc<AtomicBool>,
        pace: Pace,
        counters: Arc<CameraCounters>,
    ) -> std::io::Result<Self> {
        let handle =
            std::thread::Builder::new().name(format!("camera-{}", config.id)).spawn(move || {
                let camera = Camera { index, config, hub, events, shutdown, pace, counters };
                camera.run();
            })?;
        Ok(Self { handle: Some(handle) })
    }

    /// Waits for the thread to end (after shutdown was set).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Camera {
    index: usize,
    config: CameraConfig,
    hub: Arc<FrameHub>,
    events: std::sync::mpsc::Sender<CameraEvent>,
    shutdown: Arc<AtomicBool>,
    pace: Pace,
    counters: Arc<CameraCounters>,
}

/// The pipeline of one camera connection (see the module documentation), not yet playing.
pub(crate) fn build_pipeline(
    config: &CameraConfig,
    pace: Pace,
) -> Result<(gst::Pipeline, gst_app::AppSink), String> {
    gst::init().map_err(|e| format!("GStreamer cannot start: {e}"))?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", config.id));
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|_| format!("GStreamer element {factory} is missing (run `make setup`)"))
    };
    let src = make("uridecodebin")?;
    src.set_property("uri", &config.url);
    let convert = make("videoconvert")?;
    let is_file = config.url.starts_with("file://");
    let on_demand = pace == Pace::OnDemand;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        )
        .max_buffers(1)
        // On demand, a full sink holds the decoder back instead of discarding its work.
        .drop(!on_demand)
        // A recording is replayed at its own pace, as a camera would deliver it.
        .sync(is_file && !on_demand)
        .build();
    pipeline.add_many([&src, &convert, sink.upcast_ref()]).map_err(|e| e.to_string())?;
    convert.link(&sink).map_err(|e| format!("cannot link converter to sink: {e}"))?;

    let (keyframes_only, decode_threads) = (config.keyframes_only, config.decode_threads);
    pipeline.connect_deep_element_added(move |_, _, element| {
        let is_video_decoder = element.factory().is_some_and(|f| {
            let klass = f.klass();
            klass.contains("Decoder") && klass.contains("Video")
        });
        if !is_video_decoder {
            return;
        }
        if element.has_property("max-threads") {
            // Frame threads cost a frame buffer each; cameras decode in parallel anyway.
            element.set_property("max-threads", decode_threads as i32);
        }
        if let Some(pad) = element.static_pad("sink").filter(|_| keyframes_only) {
            // Delta frames are dropped before the decoder: only keyframes are decoded.
            pad.add_probe(gst::PadProbeType::BUFFER, |_, info| match &info.data {
                Some(gst::PadProbeData::Buffer(b))
                    if b.flags().contains(gst::BufferFlags::DELTA_UNIT) =>
                {
                    // Handled, not Drop: the binding owns the buffer and frees it here.
                    info.data.take();
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            });
        }
    });
    let transport = config.transport;
    src.connect("source-setup", false, move |args| {
        if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
            && source.has_property("latency")
            && source.has_property("protocols")
        {
            source.set_property("latency", 200u32);
            match transport {
                Transport::Auto => {}
                Transport::Tcp => source.set_property_from_str("protocols", "tcp"),
                Transport::Udp => source.set_property_from_str("protocols", "udp"),
            }
        }
        None
    });
    let convert_weak = convert.downgrade();
    let pipeline_weak = pipeline.downgrade();
    src.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        let sink_pad = if is_video {
            convert_weak.upgrade().and_then(|c| c.static_pad("sink"))
        } else {
            // Audio and data streams are consumed and ignored.
            pipeline_weak.upgrade().and_then(|p| {
                let fake =
                    gst::ElementFactory::make("fakesink").property("sync", false).build().ok()?;
                p.add(&fake).ok()?;
                fake.sync_state_with_parent().ok()?;
                fake.static_pad("sink")
            })
        };
        if let Some(sp) = sink_pad
            && !sp.is_linked()
            && let Err(e) = pad.link(&sp)
        {
            warn!("cannot link decoded stream: {e:?}");
        }
    });
    Ok((pipeline, sink))
}

/// How long rtspsrc holds RTP packets to reorder them (ms): enough for a village link's jitter,
/// small beside the time a rule needs to confirm an event.
pub const RTSP_LATENCY_MS: u32 = 200;

/// Reconnect delays: 0.5 s doubling to 4 s, with ±20 % jitter so cameras do not retry in step.
const RECONNECT: Backoff =
    Backoff::doubling(Duration::from_millis(500), Duration::from_secs(4)).with_jitter(0.2, 0.2);

impl Camera {
    fn run(self) {
        let mut attempt = 0;
        let mut online = false;
        while !self.shutdown.load(Ordering::Relaxed) {
            let mut got_frames = false;
            let end = self.connect_and_pull(&mut got_frames, &mut online);
            match end {
                End::Shutdown => break,
                End::Lost(reason) => {
                    if got_frames {
                        attempt = 0;
                    }
                    self.counters.online.store(false, Ordering::Relaxed);
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    *self.counters.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        reason.clone();
                    let delay = RECONNECT.delay(attempt);
                    attempt += 1;
                    warn!(
                        camera = %self.config.id,
                        url = %redact_url(&self.config.url),
                        "camera {}: {reason}; retrying in {:.1}s",
                        self.config.id,
                        delay.as_secs_f32()
                    );
                    if online || attempt == 1 {
                        let _ =
                            self.events.send(CameraEvent::Offline { camera: self.index, reason });
                        online = false;
                    }
                    self.sleep(delay);
                }
            }
        }
        debug!(camera = %self.config.id, "camera thread stopped");
    }

    fn sleep(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.shutdown.load(Ordering::Relaxed) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// One connection: build, play, pull frames until loss or shutdown, tear down.
    fn connect_and_pull(&self, got_frames: &mut bool, online: &mut bool) -> End {
        let (pipeline, sink) = match build_pipeline(&self.config, self.pace) {
            Ok(p) => p,
            Err(e) => return End::Lost(e),
        };
        let end = self.pull(&pipeline, &sink, got_frames, online);
        let _ = pipeline.set_state(gst::State::Null);
        end
    }

    fn pull(
        &self,
        pipeline: &gst::Pipeline,
        sink: &gst_app::AppSink,
        got_frames: &mut bool,
        online: &mut bool,
    ) -> End {
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            return End::Lost(format!("cannot start pipeline: {e}"));
        }
        let Some(bus) = pipeline.bus() else {
            return End::Lost("pipeline has no bus".into());
        };
        let timeout = Duration::from_secs_f32(self.config.frame_timeout_s);
        // Opening a stream (DNS, RTSP handshake, first keyframe) may take longer than a gap.
        let first_timeout = timeout.max(Duration::from_secs(10));
        let mut last_frame = Instant::now();
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return End::Shutdown;
            }
            if self.pace == Pace::OnDemand
                && !self.hub.wait_taken(self.index, Duration::from_millis(100))
            {
                last_frame = Instant::now();
                continue;
            }
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                last_frame = Instant::now();
                match Frame::new(self.index, sample, now_ms()) {
                    Ok(frame) => {
                        if !*online {
                            info!(camera = %self.config.id, "camera {} online: {}x{}", self.config.id, frame.width(), frame.height());
                            let _ = self.events.send(CameraEvent::Online { camera: self.index });
                            *online = true;
                        }
                        *got_frames = true;
                        self.counters.frames.fetch_add(1, Ordering::Relaxed);
                        self.counters.online.store(true, Ordering::Relaxed);
                        self.hub.put(frame);
                    }
                    Err(e) => return End::Lost(e.to_string()),
                }
            }
            while let Some(msg) = bus.pop() {
                use gst::MessageView;
                match msg.view() {
                    MessageView::Error(err) => {
                        return End::Lost(format!("stream error: {}", error_text(err)));
                    }
                    MessageView::Eos(_) if self.pace == Pace::OnDemand => {
                        if let Err(e) = pipeline.seek_simple(
                            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                            gst::ClockTime::ZERO,
                        ) {
                            return End::Lost(format!("cannot loop the recording: {e}"));
                        }
                    }
                    // A live camera does not end: end-of-stream means the stream was lost.
                    MessageView::Eos(_) => return End::Lost("end of stream".into()),
                    MessageView::Element(e)
                        if e.structure().is_some_and(|s| s.name() == "GstRTSPSrcTimeout") =>
                    {
                        return End::Lost("RTSP timeout".into());
                    }
                    MessageView::Warning(w) => {
                        debug!(camera = %self.config.id, "GStreamer warning: {}", w.error());
                    }
                    _ => {}
                }
            }
            let limit = if *got_frames { timeout } else { first_timeout };
            if last_frame.elapsed() > limit {
                return End::Lost(format!("no frame for {:.0}s", limit.as_secs_f32()));
            }
        }
    }
}
