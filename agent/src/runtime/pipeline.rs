//! One config's cameras and its detector thread: the cameras feed the newest frames to the
//! thread, which infers, lets each camera's [`Watch`] turn them into event messages, and hands
//! those to the alarm chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use xueliang_proto::Health;
use xueliang_proto::endpoint::now_ms;
use xueliang_service::metrics::Histogram;

use super::AgentError;
use super::alarms::Alarms;
use super::metrics::{Metrics, Sample, render};
use crate::config::AgentConfig;
use crate::config::ClipStream;
use crate::delivery::{HealthReporter, Outbox};
use crate::detect::{
    CameraSlot, Detector, DetectorOptions, InferenceLoop, LoopStats, MotionGate, Tiling,
};
use crate::evidence::{ClipMaker, Outgoing, Pictures, RecordStream, Sealer, Watch, camera_clips};
use crate::rules::FrameTime;
use crate::source::{
    CameraCounters, CameraEvent, CameraOutputs, CameraSource, FrameHub, Pace, RecordSource,
    StreamRing, mono_now_ms,
};

/// A config's model and rules, loaded and resolved: what cameras need to start.
pub(super) struct Prepared {
    detector: Detector,
    /// One watch per camera, in camera order.
    watches: Vec<Watch>,
}

impl Prepared {
    /// Loads the model and resolves the rules against it.
    pub(super) fn build(config: &AgentConfig) -> Result<Self, AgentError> {
        // Room for every camera's tiles in one run; a box just enrolled may have no camera yet
        // (it waits for the center's config).
        let tiles: usize = config.cameras.iter().map(|c| c.detect_tiles as usize).sum();
        let options = DetectorOptions::of(&config.model, tiles.max(1));
        let detector = Detector::open(&config.model.path, config.model.card.as_deref(), &options)?;
        let watches = (0..config.cameras.len())
            .map(|camera| Watch::new(config, camera, detector.card()).map_err(AgentError::Config))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { detector, watches })
    }
}

/// Where the detection side hands alarms and reports over (shared by every pipeline).
#[derive(Clone)]
pub(super) struct Handover {
    pub(super) outbox: Outbox,
    pub(super) wake: mpsc::Sender<()>,
    pub(super) health: mpsc::Sender<Health>,
    pub(super) sealer: Arc<Sealer>,
    /// When the detector loop last went round, UTC ms: the watchdog's proof of life.
    pub(super) alive: Arc<AtomicI64>,
    /// The metrics page the detector loop keeps up to date, when an endpoint serves it.
    pub(super) metrics: Option<Arc<Metrics>>,
    /// The config version in force, for the metrics.
    pub(super) version: watch::Receiver<u64>,
}

/// The cameras and the detector thread of one config.
pub(super) struct Pipeline {
    stop: Arc<AtomicBool>,
    detector: std::thread::JoinHandle<()>,
    cameras: Vec<CameraSource>,
    records: Vec<RecordSource>,
}

impl Pipeline {
    /// Opens the cameras of `config` and starts detecting.
    pub(super) fn start(
        config: &AgentConfig,
        prepared: Prepared,
        handover: &Handover,
    ) -> Result<Self, AgentError> {
        let stop = Arc::new(AtomicBool::new(false));
        let hub = Arc::new(FrameHub::new(config.cameras.len()));
        let counters: Vec<Arc<CameraCounters>> =
            config.cameras.iter().map(|_| Arc::default()).collect();
        let (event_tx, event_rx) = std::sync::mpsc::channel();
        let slots = camera_slots(config)?;
        let rings = Rings::of(config);
        let mut cameras = Vec::new();
        let mut records = Vec::new();
        for (i, cam) in config.cameras.iter().enumerate() {
            cameras.push(CameraSource::spawn(
                i,
                cam.clone(),
                CameraOutputs {
                    hub: hub.clone(),
                    events: event_tx.clone(),
                    counters: counters[i].clone(),
                    ring: rings.detect[i].clone(),
                },
                stop.clone(),
                Pace::Live,
            )?);
            if let Some(ring) = rings.record[i].clone() {
                records.push(RecordSource::spawn(cam.clone(), ring, stop.clone())?);
            }
        }
        let clips = ClipMaker::spawn(
            config,
            camera_clips(config, &rings.clips(config)),
            handover.sealer.clone(),
            deliver_clips(handover),
        )?;
        let pictures = Pictures::new(
            rings
                .record
                .iter()
                .zip(&counters)
                .map(|(ring, counters)| {
                    let counters = counters.clone();
                    ring.clone().map(|ring| RecordStream { ring, counters })
                })
                .collect(),
        );
        let health = HealthReporter::new(
            &config.agent_id,
            config.cameras.iter().map(|c| c.id.clone()).collect(),
            counters.clone(),
            Duration::from_secs(config.mqtt.health_interval_s.max(1)),
        );
        let alarms = Alarms::spawn(
            pictures,
            clips,
            config.snapshot.send_after_bytes,
            handover.outbox.clone(),
            handover.wake.clone(),
            handover.sealer.clone(),
        )?;
        let loop_state = DetectLoop {
            alarms,
            rings: rings.kept(),
            config: config.clone(),
            inference: InferenceLoop::new(prepared.detector, hub, slots),
            watches: prepared.watches,
            events: event_rx,
            handover: handover.clone(),
            health,
            failures: 0,
            stop: stop.clone(),
            camera_ids: config.cameras.iter().map(|c| c.id.clone()).collect(),
            counters,
            metrics_due: Instant::now(),
            frame_age: Histogram::new(&FRAME_AGE_BOUNDS),
        };
        let detector =
            std::thread::Builder::new().name("detector".into()).spawn(move || loop_state.run())?;
        info!(
            agent = %config.agent_id,
            cameras = config.cameras.len(),
            rules = config.rules.len(),
            "detecting"
        );
        Ok(Self { stop, detector, cameras, records })
    }

    /// Stops detecting and closes the cameras.
    pub(super) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let Self { detector, cameras, records, .. } = self;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = detector.join();
            for c in cameras {
                c.join();
            }
            for r in records {
                r.join();
            }
        })
        .await;
    }
}

/// Each camera's buffers of compressed video, in camera order.
struct Rings {
    /// The record stream's, for pictures and clips: where one is configured.
    record: Vec<Option<Arc<StreamRing>>>,
    /// The detect stream's, tapped before its decoder: where clips come from it.
    detect: Vec<Option<Arc<StreamRing>>>,
}

impl Rings {
    fn of(config: &AgentConfig) -> Self {
        let c = &config.clips;
        let ring = || {
            let keep_ms = (c.buffer_s * 1000.0) as i64;
            Arc::new(StreamRing::new(keep_ms, c.max_buffer_mib as usize * (1 << 20)))
        };
        Self {
            record: config
                .cameras
                .iter()
                .map(|cam| cam.record_url.as_ref().map(|_| ring()))
                .collect(),
            detect: config
                .cameras
                .iter()
                .map(|cam| (cam.clips_from() == ClipStream::Detect).then(ring))
                .collect(),
        }
    }

    /// Where each camera's clips are cut from (none where clips are off).
    fn clips(&self, config: &AgentConfig) -> Vec<Option<Arc<StreamRing>>> {
        config
            .cameras
            .iter()
            .enumerate()
            .map(|(i, cam)| match cam.clips_from() {
                ClipStream::Record => self.record[i].clone(),
                ClipStream::Detect => self.detect[i].clone(),
                ClipStream::Off => None,
            })
            .collect()
    }

    /// Each camera's rings, for the metrics.
    fn kept(&self) -> Vec<Vec<Arc<StreamRing>>> {
        self.record
            .iter()
            .zip(&self.detect)
            .map(|(r, d)| r.iter().chain(d).cloned().collect())
            .collect()
    }
}

/// Where the clip maker's sealed clips go: the outbox (flushed), then the publisher is woken.
fn deliver_clips(handover: &Handover) -> crate::evidence::Deliver {
    let (outbox, wake) = (handover.outbox.clone(), handover.wake.clone());
    Box::new(move |event_id, chunks| match outbox.push_clip(event_id, &chunks) {
        Ok(()) => {
            let _ = wake.try_send(());
        }
        Err(e) => error!(event = %event_id, "event clip lost: {e}"),
    })
}

/// Each camera's detection interval and motion gate, from its config.
fn camera_slots(config: &AgentConfig) -> Result<Vec<CameraSlot>, AgentError> {
    config
        .cameras
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let gate = MotionGate::from_config(&c.motion)
                .map_err(|e| AgentError::Config(format!("camera {}: {e}", c.id)))?;
            let tiling = Tiling::of_camera(config, i);
            Ok(CameraSlot { interval: c.detect_interval(), gate, on_demand: false, tiling })
        })
        .collect()
}

struct DetectLoop {
    config: AgentConfig,
    inference: InferenceLoop,
    /// Per camera: its rules and events.
    watches: Vec<Watch>,
    events: std::sync::mpsc::Receiver<CameraEvent>,
    handover: Handover,
    alarms: Alarms,
    /// Each camera's kept compressed video, for the metrics.
    rings: Vec<Vec<Arc<StreamRing>>>,
    health: HealthReporter,
    /// Inference failures since start.
    failures: u64,
    stop: Arc<AtomicBool>,
    camera_ids: Vec<String>,
    counters: Vec<Arc<CameraCounters>>,
    /// When the metrics page is next written.
    metrics_due: Instant,
    /// Inferred frames' age when their detections are ready.
    frame_age: Histogram,
}

/// Frame age buckets, seconds: the jitter buffer alone is 0.2.
const FRAME_AGE_BOUNDS: [f64; 14] =
    [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0];

/// Now, on both clocks.
fn now() -> FrameTime {
    FrameTime { mono_ms: mono_now_ms(), wall_ms: now_ms() }
}

impl DetectLoop {
    fn run(mut self) {
        let mut stats = Stats::default();
        while !self.stop.load(Ordering::Relaxed) {
            self.handover.alive.store(now_ms(), Ordering::Relaxed);
            let errors = self.failures + self.alarms.counts.all_lost();
            if let Some(metrics) =
                self.handover.metrics.as_ref().filter(|_| Instant::now() >= self.metrics_due)
            {
                self.metrics_due = Instant::now() + Duration::from_secs(1);
                let rules: Vec<&_> = self.watches.iter().map(|w| &w.rules).collect();
                let raised =
                    self.alarms.counts.raised.lock().unwrap_or_else(|p| p.into_inner()).clone();
                metrics.set(render(&Sample {
                    cameras: &self.camera_ids,
                    counters: &self.counters,
                    rings: &self.rings,
                    inference: &self.inference.camera_stats,
                    rules: &rules,
                    raised: &raised,
                    outbox: &self.handover.outbox,
                    writes: &self.alarms.counts.writes,
                    frame_age: &self.frame_age,
                    evidence: (
                        self.alarms.counts.queued.load(Ordering::Relaxed),
                        self.alarms.counts.waits.load(Ordering::Relaxed),
                    ),
                    errors,
                    config_version: *self.handover.version.borrow(),
                }));
            }
            while let Ok(ev) = self.events.try_recv() {
                self.camera_event(ev);
            }
            if let Some(h) =
                self.health.due(&self.inference.camera_stats, &self.handover.outbox, errors)
            {
                // A report the publisher has not taken yet is simply superseded next time.
                let _ = self.handover.health.try_send(h);
            }
            let wall = now_ms();
            for (camera, watch) in self.watches.iter().enumerate() {
                self.inference.infer_every_frame(camera, watch.needs_every_frame(wall));
            }
            match self.inference.step(Duration::from_millis(20)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    error!("{e}");
                    self.failures += 1;
                    continue;
                }
            }
            let frames = std::mem::take(&mut self.inference.frames);
            let mut messages = Vec::new();
            let wall = now_ms();
            for (frame, &inferred) in frames.iter().zip(&self.inference.inferred) {
                if inferred {
                    self.frame_age.observe_ms((wall - frame.captured_ms).max(0) as u64);
                }
                let detections =
                    inferred.then(|| self.inference.detections[frame.camera].as_slice());
                messages.extend(self.watches[frame.camera].see(frame, detections));
            }
            self.inference.frames = frames;
            for message in messages {
                self.alarms.send(message);
            }
            if stats.maybe_log(&self.inference.stats) {
                self.log_counts();
            }
        }
        // Events still open end with the pipeline: the rules that would end them are going.
        let at = now();
        let ended: Vec<Outgoing> = self.watches.iter_mut().flat_map(|w| w.stop(at)).collect();
        for message in ended {
            self.alarms.send(message);
        }
        self.alarms.finish();
    }

    /// A camera's loss (reported once it lasted `offline_after_s`) and its return.
    fn camera_event(&mut self, ev: CameraEvent) {
        let messages = match ev {
            CameraEvent::Offline { camera, reason, since_ms, since_mono_ms } => {
                warn!(camera = %self.config.cameras[camera].id, "camera offline: {reason}");
                let since = FrameTime { mono_ms: since_mono_ms, wall_ms: since_ms };
                self.watches[camera].camera_offline(since, &reason)
            }
            CameraEvent::Back { camera } => {
                info!(camera = %self.config.cameras[camera].id, "camera back");
                self.watches[camera].camera_back(now()).into_iter().collect()
            }
            CameraEvent::Online { .. } | CameraEvent::Finished { .. } => Vec::new(),
        };
        for message in messages {
            self.alarms.send(message);
        }
    }

    /// The line counts so far, with the periodic rates.
    fn log_counts(&self) {
        for w in &self.watches {
            for rule in &w.rules.rules {
                if let Some(c) = rule.counts() {
                    info!(
                        camera = %self.config.cameras[w.rules.camera].id,
                        rule = %rule.id,
                        "line crossings since start: A→B {}, B→A {}",
                        c.a_to_b,
                        c.b_to_a
                    );
                }
            }
        }
    }
}

/// A periodic log line of the loop's rates.
#[derive(Debug, Default)]
struct Stats {
    since: Option<(Instant, LoopStats)>,
}

impl Stats {
    /// Logs the rates every 30 s; returns whether it did.
    fn maybe_log(&mut self, now: &LoopStats) -> bool {
        let Some((since, then)) = self.since else {
            self.since = Some((Instant::now(), *now));
            return false;
        };
        let elapsed = since.elapsed();
        if elapsed >= Duration::from_secs(30) {
            let inferred = now.inferred - then.inferred;
            let runs = (now.runs - then.runs).max(1) as f32;
            info!(
                "{} frames in {:.0}s, {} inferred ({:.1}/s; the motion gate skipped {}), mean inference {:.1} ms",
                now.frames - then.frames,
                elapsed.as_secs_f32(),
                inferred,
                inferred as f32 / elapsed.as_secs_f32(),
                (now.frames - then.frames) - inferred,
                (now.infer - then.infer).as_secs_f32() * 1000.0 / runs
            );
            self.since = Some((Instant::now(), *now));
            return true;
        }
        false
    }
}
