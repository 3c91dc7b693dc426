//! Camera sources: one thread per camera owns its GStreamer pipeline, its bus and its reconnect
//! loop; the rest of the agent sees only the newest frame and online/offline events.
//!
//! Pipeline: `uridecodebin uri=… ! videoconvert ! video/x-raw,format={I420,NV12} ! appsink
//! max-buffers=1 drop=true`. The decoders' I420 (software) or NV12 (hardware) passes through
//! `videoconvert` untouched, so frames are not converted unless they are inferred; the appsink
//! keeps only the newest one, so a slow detector never builds latency. Audio streams go to a `fakesink`. When clips are cut
//! from the detect stream, the parser's output is kept in the camera's [`StreamRing`] on its
//! way to the decoder.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{debug, info, warn};

use xueliang_service::backoff::Backoff;

use super::frame::{Frame, mono_now_ms};
use super::ring::{StreamRing, clip_codec};
use crate::config::{CameraConfig, Decoder, Transport, redact_url};
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
    /// may be taken, waiting up to `timeout` for the first. `take(frame)` says whether a camera's
    /// newest frame may be taken now. Returns whether any frame was taken.
    pub fn take_batch(
        &self,
        order: impl Iterator<Item = usize> + Clone,
        take: impl Fn(&Frame) -> bool,
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
                    && let Some(slot) = slots.get_mut(i)
                    && slot.as_ref().is_some_and(&take)
                    && let Some(frame) = slot.take()
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
    /// Frames of the record stream decoded since start (only for event pictures).
    pub record_decoded: AtomicU64,
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

/// A change in a camera's state. A short drop (a clip looping on its server, a link that stalls
/// for a second) is no event for the duty officer: the camera is reported offline only after
/// `offline_after_s` without a frame, and back only after it was reported offline.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraEvent {
    /// Frames are arriving (for the log; after a reported loss [`CameraEvent::Back`] follows).
    Online {
        /// Camera index.
        camera: usize,
    },
    /// No frame for `offline_after_s`: reported once per loss.
    Offline {
        /// Camera index.
        camera: usize,
        /// What went wrong last, for the log and the duty officer.
        reason: String,
        /// When the last frame came, UTC ms: the loss began then.
        since_ms: i64,
        /// The same on the monotonic clock.
        since_mono_ms: i64,
    },
    /// Frames came back after a reported loss.
    Back {
        /// Camera index.
        camera: usize,
    },
    /// A recording played at [`Pace::Recording`] reached its end.
    Finished {
        /// Camera index.
        camera: usize,
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
    /// A recording decoded as fast as its frames are taken, once, on its own clock: frame times
    /// are its timestamps after `start_ms` (for `xl-agent replay` and the scenario tests, which
    /// run the agent's own loop on footage faster than real time).
    Recording {
        /// Wall-clock time of the first frame, UTC ms (schedules read it).
        start_ms: i64,
    },
}

impl Pace {
    /// Whether frames wait to be taken rather than being replaced by newer ones.
    pub fn on_demand(self) -> bool {
        self != Pace::Live
    }
}

/// Why one connection to a camera ended.
enum End {
    Shutdown,
    Lost(String),
    /// A recording played once reached its end.
    Finished,
}

/// The current loss of a camera's stream, if any: since when, why, and whether it was reported.
#[derive(Debug, Default)]
struct Loss {
    /// When frames stopped (wall ms, monotonic ms); `None` while they flow.
    since: Option<(i64, i64)>,
    reason: String,
    reported: bool,
}

/// Where a camera's thread puts what it receives.
#[derive(Debug, Clone)]
pub struct CameraOutputs {
    /// Its newest frame.
    pub hub: Arc<FrameHub>,
    /// Its loss and return.
    pub events: std::sync::mpsc::Sender<CameraEvent>,
    /// Its counts.
    pub counters: Arc<CameraCounters>,
    /// Its compressed video, kept for clips (the detect stream's, when clips come from it).
    pub ring: Option<Arc<StreamRing>>,
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
        outputs: CameraOutputs,
        shutdown: Arc<AtomicBool>,
        pace: Pace,
    ) -> std::io::Result<Self> {
        let CameraOutputs { hub, events, counters, ring } = outputs;
        let handle =
            std::thread::Builder::new().name(format!("camera-{}", config.id)).spawn(move || {
                let camera = Camera { index, config, hub, events, shutdown, pace, counters, ring };
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
    /// Where the detect stream's compressed video is kept for clips, when it is.
    ring: Option<Arc<StreamRing>>,
}

/// Keeps what passes `pad` (a video parser's output) in `ring`: its caps, and each access unit
/// with its arrival time. A codec a clip cannot carry (neither H.264 nor H.265) keeps nothing.
pub(crate) fn tap(pad: &gst::Pad, ring: Arc<StreamRing>) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => ring.push(b.clone(), mono_now_ms(), now_ms()),
                Some(gst::PadProbeData::Event(e)) => {
                    if let gst::EventView::Caps(c) = e.view() {
                        if clip_codec(c.caps()) {
                            ring.set_caps(c.caps_owned());
                        } else {
                            ring.restart();
                        }
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Sets up an RTSP source as `uridecodebin` makes it: jitter buffer latency and transport.
pub(crate) fn on_source_setup(src: &gst::Element, transport: Transport) {
    src.connect("source-setup", false, move |args| {
        if let Some(source) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
            && source.has_property("latency")
            && source.has_property("protocols")
        {
            source.set_property("latency", RTSP_LATENCY_MS);
            match transport {
                Transport::Auto => {}
                Transport::Tcp => source.set_property_from_str("protocols", "tcp"),
                Transport::Udp => source.set_property_from_str("protocols", "udp"),
            }
        }
        None
    });
}

/// Whether `factory` makes a video decoder, and whether a hardware one (VA-API and the like
/// say so in their class).
fn decoder_kind(factory: &gst::ElementFactory) -> Option<bool> {
    let klass = factory.klass();
    (klass.contains("Decoder") && klass.contains("Video")).then(|| klass.contains("Hardware"))
}

/// The video decoder `pipeline` uses, if one is there yet.
pub fn decoder_in(pipeline: &gst::Pipeline) -> Option<gst::Element> {
    pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .find(|e| e.factory().as_ref().and_then(decoder_kind).is_some())
}

/// The decoder element's name, and whether it is hardware or software.
pub fn describe_decoder(decoder: &gst::Element) -> String {
    let Some(factory) = decoder.factory() else { return "unknown".into() };
    let what = if decoder_kind(&factory) == Some(true) { "hardware" } else { "software" };
    format!("{} ({what})", factory.name())
}

/// Keeps `uridecodebin` to the decoders `decoder` allows: with `software` it never tries a
/// hardware decoder; with `va` it passes over software decoders while a hardware one on this
/// machine takes the stream's format.
pub(crate) fn choose_decoders(src: &gst::Element, decoder: Decoder) {
    if decoder == Decoder::Auto {
        return;
    }
    src.connect("autoplug-select", false, move |args| {
        let caps = args.get(2)?.get::<gst::Caps>().ok()?;
        let factory = args.get(3)?.get::<gst::ElementFactory>().ok()?;
        let skip = match (decoder, decoder_kind(&factory)) {
            (Decoder::Software, Some(true)) => true,
            (Decoder::Va, Some(false)) => hardware_takes(&caps),
            _ => false,
        };
        // GstAutoplugSelectResult: 0 tries the factory, 2 skips it.
        let t = gst::glib::Type::from_name("GstAutoplugSelectResult")?;
        gst::glib::EnumClass::with_type(t)?.to_value(if skip { 2 } else { 0 })
    });
}

/// Whether a hardware video decoder on this machine takes `caps`.
fn hardware_takes(caps: &gst::Caps) -> bool {
    gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::MARGINAL,
    )
    .iter()
    .any(|f| decoder_kind(f) == Some(true) && f.can_sink_any_caps(caps))
}

/// A `fakesink` added to `pipeline` for a stream nobody needs; its sink pad.
pub(crate) fn discard(pipeline: &gst::Pipeline) -> Option<gst::Pad> {
    let fake = gst::ElementFactory::make("fakesink").property("sync", false).build().ok()?;
    pipeline.add(&fake).ok()?;
    fake.sync_state_with_parent().ok()?;
    fake.static_pad("sink")
}

/// How long ago the frame arrived, ms: the jitter buffer stamps a live stream's buffers with
/// their RTP time mapped onto the pipeline's clock as their packets arrive, so this covers the
/// wait in the jitter buffer, the decoder and the wait at the sink; 0 when a stamp is missing.
fn arrival_age_ms(pipeline: &gst::Pipeline, sample: &gst::Sample) -> i64 {
    let running = sample.buffer().and_then(|b| b.pts()).and_then(|pts| {
        sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::format::Time>())
            .and_then(|s| s.to_running_time(pts))
    });
    let (Some(running), Some(clock), Some(base)) =
        (running, pipeline.clock(), pipeline.base_time())
    else {
        return 0;
    };
    let arrived = base + running;
    // A stamp from the future counts as now; no frame is taken to be more than 10 s old.
    clock.time().checked_sub(arrived).map_or(0, |age| (age.mseconds() as i64).min(10_000))
}

/// The pipeline of one camera connection (see the module documentation), not yet playing.
pub(crate) fn build_pipeline(
    config: &CameraConfig,
    pace: Pace,
    ring: Option<Arc<StreamRing>>,
) -> Result<(gst::Pipeline, gst_app::AppSink), String> {
    gst::init().map_err(|e| format!("GStreamer cannot start: {e}"))?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", config.id));
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|_| format!("GStreamer element {factory} is missing (run `make setup`)"))
    };
    let src = make("uridecodebin")?;
    src.set_property("uri", &config.detect_url);
    let convert = make("videoconvert")?;
    let is_file = config.detect_url.starts_with("file://");
    let on_demand = pace.on_demand();
    let sink = gst_app::AppSink::builder()
        // Software decoders give I420, hardware ones NV12: both are read where they lie.
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", gst::List::new(["I420", "NV12"]))
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
        let klass = element.factory().map(|f| f.klass().to_string()).unwrap_or_default();
        if klass.contains("Parser")
            && klass.contains("Video")
            && let (Some(ring), Some(pad)) = (&ring, element.static_pad("src"))
        {
            tap(&pad, ring.clone());
        }
        if !(klass.contains("Decoder") && klass.contains("Video")) {
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
    on_source_setup(&src, config.transport);
    choose_decoders(&src, config.decoder);
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
            pipeline_weak.upgrade().and_then(|p| discard(&p))
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

/// Longest the camera thread waits for an old connection to close.
const TEARDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// Reconnect delays: 0.5 s doubling to 4 s, with ±20 % jitter so cameras do not retry in step.
const RECONNECT: Backoff =
    Backoff::doubling(Duration::from_millis(500), Duration::from_secs(4)).with_jitter(0.2, 0.2);

impl Camera {
    fn run(self) {
        let mut attempt = 0;
        let mut loss = Loss::default();
        while !self.shutdown.load(Ordering::Relaxed) {
            let mut got_frames = false;
            let end = self.connect_and_pull(&mut got_frames, &mut loss);
            match end {
                End::Shutdown => break,
                End::Finished => {
                    let _ = self.events.send(CameraEvent::Finished { camera: self.index });
                    break;
                }
                End::Lost(reason) if matches!(self.pace, Pace::Recording { .. }) => {
                    // A recording is read once: it is not retried.
                    let now = (now_ms(), mono_now_ms());
                    let (since_ms, since_mono_ms) = loss.since.unwrap_or(now);
                    let event = CameraEvent::Offline {
                        camera: self.index,
                        reason,
                        since_ms,
                        since_mono_ms,
                    };
                    let _ = self.events.send(event);
                    break;
                }
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
                        url = %redact_url(&self.config.detect_url),
                        "camera {}: {reason}; retrying in {:.1}s",
                        self.config.id,
                        delay.as_secs_f32()
                    );
                    loss.since.get_or_insert((now_ms(), mono_now_ms()));
                    loss.reason = reason;
                    self.sleep(delay, &mut loss);
                }
            }
        }
        debug!(camera = %self.config.id, "camera thread stopped");
    }

    /// Reports the loss once it has lasted `offline_after_s`.
    fn check_loss(&self, loss: &mut Loss) {
        let Some((since_ms, since_mono_ms)) = loss.since.filter(|_| !loss.reported) else {
            return;
        };
        let lasted = mono_now_ms() - since_mono_ms;
        if lasted as f32 >= self.config.offline_after_s * 1000.0 {
            loss.reported = true;
            let reason = loss.reason.clone();
            warn!(camera = %self.config.id, "camera {} offline for {} s: {reason}", self.config.id, lasted / 1000);
            let event =
                CameraEvent::Offline { camera: self.index, reason, since_ms, since_mono_ms };
            let _ = self.events.send(event);
        }
    }

    /// Frames flow: reports the camera's return after a reported loss.
    fn frames_flow(&self, loss: &mut Loss) {
        if loss.reported {
            let _ = self.events.send(CameraEvent::Back { camera: self.index });
        }
        *loss = Loss::default();
    }

    /// Sleeps `total` in short steps, watching for shutdown and for the loss to be reportable.
    fn sleep(&self, total: Duration, loss: &mut Loss) {
        let until = Instant::now() + total;
        while !self.shutdown.load(Ordering::Relaxed) {
            self.check_loss(loss);
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// One connection: build, play, pull frames until loss or shutdown, tear down.
    fn connect_and_pull(&self, got_frames: &mut bool, loss: &mut Loss) -> End {
        if let Some(ring) = &self.ring {
            ring.restart();
        }
        let (pipeline, sink) = match build_pipeline(&self.config, self.pace, self.ring.clone()) {
            Ok(p) => p,
            Err(e) => return End::Lost(e),
        };
        let end = self.pull(&pipeline, &sink, got_frames, loss);
        self.tear_down(pipeline);
        end
    }

    /// Stops a pipeline off this thread: rtspsrc can block in its teardown while a stalled
    /// server holds the connection open, and the camera's loss must still be reported on time.
    /// A teardown that takes longer than [`TEARDOWN_DEADLINE`] is left to finish on its own.
    fn tear_down(&self, pipeline: gst::Pipeline) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("teardown-{}", self.config.id))
            .spawn(move || {
                let _ = pipeline.set_state(gst::State::Null);
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(_) if done_rx.recv_timeout(TEARDOWN_DEADLINE).is_err() => warn!(
                camera = %self.config.id,
                "the old connection has not closed within {} s; reconnecting anyway",
                TEARDOWN_DEADLINE.as_secs()
            ),
            Ok(_) => {}
            Err(e) => warn!(camera = %self.config.id, "cannot start a teardown thread: {e}"),
        }
    }

    fn pull(
        &self,
        pipeline: &gst::Pipeline,
        sink: &gst_app::AppSink,
        got_frames: &mut bool,
        loss: &mut Loss,
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
            if !*got_frames {
                self.check_loss(loss);
            }
            if self.pace.on_demand() && !self.hub.wait_taken(self.index, Duration::from_millis(100))
            {
                last_frame = Instant::now();
                continue;
            }
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                last_frame = Instant::now();
                let (captured_ms, mono_ms) = match self.pace {
                    Pace::Recording { start_ms } => {
                        let pts = sample.buffer().and_then(|b| b.pts()).map_or(0, |t| t.mseconds());
                        (start_ms + pts as i64, pts as i64)
                    }
                    Pace::Live => {
                        let age = arrival_age_ms(pipeline, &sample);
                        (now_ms() - age, mono_now_ms() - age)
                    }
                    Pace::OnDemand => (now_ms(), mono_now_ms()),
                };
                match Frame::new(self.index, sample, captured_ms, mono_ms) {
                    Ok(frame) => {
                        if !*got_frames {
                            info!(
                                camera = %self.config.id,
                                "camera {} online: {}x{} {}, decoded by {}",
                                self.config.id,
                                frame.width(),
                                frame.height(),
                                frame.format(),
                                decoder_in(pipeline).map_or("?".into(), |d| describe_decoder(&d))
                            );
                            let _ = self.events.send(CameraEvent::Online { camera: self.index });
                            self.frames_flow(loss);
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
                    MessageView::Eos(_) if matches!(self.pace, Pace::Recording { .. }) => {
                        return End::Finished;
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
