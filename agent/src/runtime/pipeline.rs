//! One config's cameras and its detector thread: the cameras feed the newest frames to the
//! thread, which infers, tracks, applies the rules and hands each event to the alarm chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use xueliang_proto::Health;
use xueliang_proto::endpoint::now_ms;

use super::AgentError;
use super::alarms::Alarms;
use super::metrics::{Metrics, Sample, render};
use crate::config::AgentConfig;
use crate::delivery::{HealthReporter, Outbox};
use crate::detect::{
    CameraSlot, Detector, DetectorOptions, InferenceLoop, LoopStats, MotionGate, ort_library,
};
use crate::evidence::Sealer;
use crate::rules::RuleSet;
use crate::source::{CameraCounters, CameraEvent, CameraSource, FrameHub, Pace};

/// A config's model and rules, loaded and resolved: what cameras need to start.
pub(super) struct Prepared {
    detector: Detector,
    /// One rule set per camera, in camera order.
    rules: Vec<RuleSet>,
}

impl Prepared {
    /// Loads the model and resolves the rules against it.
    pub(super) fn build(config: &AgentConfig) -> Result<Self, AgentError> {
        let options = DetectorOptions {
            library: ort_library(config.model.onnxruntime.as_deref()),
            threads: config.model.threads,
            // A box just enrolled may have no camera yet: it waits for the center's config.
            max_batch: config.cameras.len().max(1),
        };
        let detector = Detector::open(&config.model.path, config.model.card.as_deref(), &options)?;
        let rules = (0..config.cameras.len())
            .map(|camera| RuleSet::new(config, camera, detector.card()).map_err(AgentError::Config))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { detector, rules })
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
        let mut cameras = Vec::new();
        for (i, cam) in config.cameras.iter().enumerate() {
            cameras.push(CameraSource::spawn(
                i,
                cam.clone(),
                hub.clone(),
                event_tx.clone(),
                stop.clone(),
                Pace::Live,
                counters[i].clone(),
            )?);
        }
        let health = HealthReporter::new(
            &config.agent_id,
            config.cameras.iter().map(|c| c.id.clone()).collect(),
            counters.clone(),
            Duration::from_secs(config.mqtt.health_interval_s.max(1)),
        );
        let loop_state = DetectLoop {
            offline: vec![false; config.cameras.len()],
            alarms: Alarms::new(
                config,
                handover.outbox.clone(),
                handover.wake.clone(),
                handover.sealer.clone(),
            ),
            config: config.clone(),
            inference: InferenceLoop::new(prepared.detector, hub, slots),
            rules: prepared.rules,
            events: event_rx,
            handover: handover.clone(),
            health,
            failures: 0,
            stop: stop.clone(),
            camera_ids: config.cameras.iter().map(|c| c.id.clone()).collect(),
            counters,
            metrics_due: Instant::now(),
        };
        let detector =
            std::thread::Builder::new().name("detector".into()).spawn(move || loop_state.run())?;
        info!(
            agent = %config.agent_id,
            cameras = config.cameras.len(),
            rules = config.rules.len(),
            "detecting"
        );
        Ok(Self { stop, detector, cameras })
    }

    /// Stops detecting and closes the cameras.
    pub(super) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let Self { detector, cameras, .. } = self;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = detector.join();
            for c in cameras {
                c.join();
            }
        })
        .await;
    }
}

/// Each camera's detection interval and motion gate, from its config.
fn camera_slots(config: &AgentConfig) -> Result<Vec<CameraSlot>, AgentError> {
    config
        .cameras
        .iter()
        .map(|c| {
            let gate = MotionGate::from_config(&c.motion)
                .map_err(|e| AgentError::Config(format!("camera {}: {e}", c.id)))?;
            Ok(CameraSlot { interval: c.detect_interval(), gate })
        })
        .collect()
}

struct DetectLoop {
    config: AgentConfig,
    /// Cameras whose loss was reported (a return is reported only after a loss).
    offline: Vec<bool>,
    inference: InferenceLoop,
    /// Per camera.
    rules: Vec<RuleSet>,
    events: std::sync::mpsc::Receiver<CameraEvent>,
    handover: Handover,
    alarms: Alarms,
    health: HealthReporter,
    /// Inference failures since start.
    failures: u64,
    stop: Arc<AtomicBool>,
    camera_ids: Vec<String>,
    counters: Vec<Arc<CameraCounters>>,
    /// When the metrics page is next written.
    metrics_due: Instant,
}

impl DetectLoop {
    fn run(mut self) {
        let mut stats = Stats::default();
        while !self.stop.load(Ordering::Relaxed) {
            self.handover.alive.store(now_ms(), Ordering::Relaxed);
            let errors = self.failures + self.alarms.lost;
            if let Some(metrics) =
                self.handover.metrics.as_ref().filter(|_| Instant::now() >= self.metrics_due)
            {
                self.metrics_due = Instant::now() + Duration::from_secs(1);
                metrics.set(render(&Sample {
                    cameras: &self.camera_ids,
                    counters: &self.counters,
                    inference: &self.inference.camera_stats,
                    rules: &self.rules,
                    raised: &self.alarms.raised,
                    outbox: &self.handover.outbox,
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
            let card = self.inference.detector().card();
            for frame in &frames {
                let rules = &mut self.rules[frame.camera];
                let mut events =
                    rules.update(&self.inference.detections[frame.camera], frame.captured_ms);
                if rules.watches_picture() {
                    match frame.with_yuv(|yuv| rules.check_picture(yuv, frame.captured_ms)) {
                        Ok(more) => events.extend(more),
                        Err(e) => {
                            let camera = &self.config.cameras[frame.camera].id;
                            warn!(camera = %camera, "tamper check skipped: {e}")
                        }
                    }
                }
                for event in events {
                    self.alarms.raise(card, rules, &event, frame);
                }
            }
            self.inference.frames = frames;
            if stats.maybe_log(&self.inference.stats) {
                self.log_counts();
            }
        }
    }

    /// A camera's loss (reported) and return (reported only after a reported loss).
    fn camera_event(&mut self, ev: CameraEvent) {
        let card = self.inference.detector().card();
        match ev {
            CameraEvent::Offline { camera, reason } => {
                warn!(camera = %self.config.cameras[camera].id, "camera offline: {reason}");
                self.offline[camera] = true;
                self.alarms.camera_lost(card, camera);
            }
            CameraEvent::Online { camera } => {
                info!(camera = %self.config.cameras[camera].id, "camera online");
                if std::mem::take(&mut self.offline[camera]) {
                    self.alarms.camera_back(card, camera);
                }
            }
        }
    }

    /// The line counts so far, with the periodic rates.
    fn log_counts(&self) {
        for set in &self.rules {
            for rule in &set.rules {
                if let Some(c) = rule.counts() {
                    info!(
                        camera = %self.config.cameras[set.camera].id,
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
