//! The running agent: camera threads feed the newest frames to one detector thread, whose rules
//! turn detections into sealed alarms in the outbox for the publisher. A config pushed by the
//! center replaces the cameras and the detector thread; the outbox and the connection stay.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, ConfigAck, Health, RuleKind};

use crate::alarm::{AlarmContext, build, kind_name};
use crate::config::{AgentConfig, SeverityConfig};
use crate::detector::{Detector, DetectorError, DetectorOptions, ort_library};
use crate::evidence::snapshot;
use crate::frame::Frame;
use crate::health::HealthReporter;
use crate::identity::Sealer;
use crate::inference::{CameraSlot, InferenceLoop, LoopStats};
use crate::metrics::{Metrics, Sample, render};
use crate::outbox::{Outbox, OutboxError};
use crate::publisher::{Links, Publisher};
use crate::remote_config::{PushError, RemoteConfig};
use crate::rules::{Event, RuleSet};
use crate::source::{CameraCounters, CameraEvent, CameraSource, FrameHub, Pace};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// GStreamer is missing or broken.
    #[error("GStreamer: {0}")]
    Gstreamer(String),
    /// The detector could not be loaded.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// The configuration refers to something the model or system lacks.
    #[error("config: {0}")]
    Config(String),
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The agent's signing key could not be read or made.
    #[error(transparent)]
    Key(#[from] xueliang_proto::signing::SignatureError),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// An agent whose model, rules and broker settings are checked and ready to run.
pub struct Agent {
    /// The local file's config; pushed configs are applied on top of it.
    local: AgentConfig,
    /// The config in force (the local one, or it with the last pushed one applied).
    config: AgentConfig,
    /// Version of the pushed config in force (0: the local file).
    config_version: u64,
    prepared: Prepared,
    publisher: Publisher,
    outbox: Outbox,
    sealer: Arc<Sealer>,
    remote: RemoteConfig,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.config.agent_id)
            .field("config_version", &self.config_version)
            .finish_non_exhaustive()
    }
}

/// A config's model and rules, loaded and resolved: what cameras need to start.
struct Prepared {
    detector: Detector,
    /// One rule set per camera, in camera order.
    rules: Vec<RuleSet>,
}

impl Prepared {
    /// Loads the model and resolves the rules against it.
    fn build(config: &AgentConfig) -> Result<Self, AgentError> {
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
struct Delivery {
    outbox: Outbox,
    wake: mpsc::Sender<()>,
    health: mpsc::Sender<Health>,
    sealer: Arc<Sealer>,
    /// When the detector loop last went round, UTC ms: the watchdog's proof of life.
    alive: Arc<AtomicI64>,
    /// The metrics page the detector loop keeps up to date, when an endpoint serves it.
    metrics: Option<Arc<Metrics>>,
    /// The config version in force, for the metrics.
    version: watch::Receiver<u64>,
}

impl Agent {
    /// Loads the model and resolves the rules: every problem is reported here, before any
    /// camera is opened. A config pushed by the center and applied before the last stop is
    /// run instead of the local one, if it still fits.
    pub fn build(local: AgentConfig) -> Result<Self, AgentError> {
        gst::init().map_err(|e| AgentError::Gstreamer(e.to_string()))?;
        let remote = RemoteConfig::new(&local);
        let saved = remote.load_saved().and_then(|pushed| match RemoteConfig::merge(&local, &pushed) {
            Ok(config) => match Prepared::build(&config) {
                Ok(prepared) => Some((config, pushed.version, prepared)),
                Err(e) => {
                    warn!("the pushed config version {} no longer runs here ({e}); running the local config", pushed.version);
                    None
                }
            },
            Err(e) => {
                warn!("the pushed config version {} no longer fits the local file ({e}); running the local config", pushed.version);
                None
            }
        });
        let (config, config_version, prepared) = match saved {
            Some((config, version, prepared)) => {
                info!(
                    "running config version {version} pushed by the center (kept in {})",
                    remote.saved_path().display()
                );
                (config, version, prepared)
            }
            None => (local.clone(), 0, Prepared::build(&local)?),
        };
        let publisher =
            Publisher::new(&config.mqtt, &config.agent_id).map_err(AgentError::Config)?;
        let outbox = Outbox::open(&config.data_dir.join("outbox"), config.outbox.limits())?;
        if !outbox.is_empty() {
            info!("{} alarms from before the restart wait in the outbox", outbox.len());
        }
        let sealer = Arc::new(Sealer::open(&config.data_dir)?);
        Ok(Self { local, config, config_version, prepared, publisher, outbox, sealer, remote })
    }

    /// The public key the center must have registered for this agent.
    pub fn public_key(&self) -> String {
        self.sealer.public_key()
    }

    /// Runs until `shutdown` is cancelled: cameras, detection, rules and publishing; applies
    /// configs the center pushes without stopping.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let Self { local, mut config, config_version, prepared, publisher, outbox, sealer, remote } =
            self;
        // A wake-up per new alarm; one pending wake-up is enough.
        let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
        let (health_tx, health_rx) = mpsc::channel::<Health>(1);
        let (config_tx, mut config_rx) = mpsc::channel::<Vec<u8>>(4);
        let (ack_tx, ack_rx) = mpsc::channel::<ConfigAck>(4);
        let (version_tx, version_rx) = watch::channel(config_version);
        let alive = Arc::new(AtomicI64::new(now_ms()));
        let metrics = config.metrics_listen.as_ref().map(|_| Arc::new(Metrics::default()));
        if let (Some(listen), Some(metrics)) = (&config.metrics_listen, &metrics) {
            let listener = tokio::net::TcpListener::bind(listen.as_str())
                .await
                .map_err(|e| AgentError::Config(format!("metrics_listen {listen}: {e}")))?;
            info!("Prometheus metrics on http://{listen}/metrics");
            tokio::spawn(crate::metrics::serve(listener, metrics.clone(), shutdown.clone()));
        }
        let delivery = Delivery {
            outbox: outbox.clone(),
            wake: wake_tx,
            health: health_tx,
            sealer,
            alive: alive.clone(),
            metrics,
            version: version_rx.clone(),
        };
        let links = Links {
            wake: wake_rx,
            health: health_rx,
            configs: config_tx,
            acks: ack_rx,
            config_version: version_rx,
        };
        let publishing = tokio::spawn(publisher.run(outbox, links, shutdown.clone()));
        if config.cameras.is_empty() {
            warn!("no cameras configured: waiting for the county center to push a config");
        }
        let mut pipeline = Pipeline::start(&config, prepared, &delivery)?;
        crate::systemd::notify("READY=1");
        if let Some(every) = crate::systemd::watchdog_interval() {
            tokio::spawn(watchdog(alive, every, shutdown.clone()));
        }
        loop {
            let payload = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = config_rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
            };
            let pushed = match remote.open(&payload) {
                Ok(p) => p,
                Err(e) => {
                    warn!("pushed config refused: {e}");
                    let _ = ack_tx.send(remote.ack(0, Err(e.to_string()))).await;
                    continue;
                }
            };
            let running = *version_tx.borrow();
            let result = if pushed.version < running {
                Err(format!(
                    "version {} is older than the version {running} this box runs",
                    pushed.version
                ))
            } else if pushed.version == running {
                // The retained config again, after a reconnect: already in force.
                Ok(())
            } else {
                match Self::prepare(&local, &pushed).await {
                    Ok((next, prepared)) => {
                        pipeline.stop().await;
                        pipeline = Pipeline::start(&next, prepared, &delivery)?;
                        if next.outbox.limits() != config.outbox.limits() {
                            warn!("new outbox limits take effect at the next start");
                        }
                        config = next;
                        if let Err(e) = remote.save(&payload) {
                            warn!(
                                "config version {} applied but not kept for the next start: {e}",
                                pushed.version
                            );
                        }
                        info!(
                            version = pushed.version,
                            cameras = config.cameras.len(),
                            rules = config.rules.len(),
                            "pushed config applied"
                        );
                        version_tx.send_replace(pushed.version);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(reason) = &result {
                warn!(
                    version = pushed.version,
                    "pushed config refused, the running one stays: {reason}"
                );
            }
            let _ = ack_tx.send(remote.ack(pushed.version, result)).await;
        }
        crate::systemd::notify("STOPPING=1");
        pipeline.stop().await;
        let _ = publishing.await;
        info!("agent stopped");
        Ok(())
    }

    /// Checks a pushed config against the local one and loads what it needs (off the async
    /// threads: a model takes a moment to load).
    async fn prepare(
        local: &AgentConfig,
        pushed: &xueliang_proto::AgentConfig,
    ) -> Result<(AgentConfig, Prepared), PushError> {
        let next = RemoteConfig::merge(local, pushed)?;
        tokio::task::spawn_blocking(move || Prepared::build(&next).map(|p| (next, p)))
            .await
            .map_err(|e| PushError::Unusable(e.to_string()))?
            .map_err(|e| PushError::Unusable(e.to_string()))
    }
}

/// Tells systemd the agent lives while its detector loop goes round; a loop stuck for longer
/// than the watchdog's period (a hung decoder or inference) stops the pings, and systemd
/// restarts the agent.
async fn watchdog(alive: Arc<AtomicI64>, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let stale_ms = now_ms() - alive.load(Ordering::Relaxed);
        if stale_ms < every.as_millis() as i64 * 2 {
            crate::systemd::notify("WATCHDOG=1");
        } else {
            warn!(
                "the detector loop has not gone round for {} s: no watchdog ping",
                stale_ms / 1000
            );
        }
    }
}

/// The cameras and the detector thread of one config.
struct Pipeline {
    stop: Arc<AtomicBool>,
    detector: std::thread::JoinHandle<()>,
    cameras: Vec<CameraSource>,
}

impl Pipeline {
    /// Opens the cameras of `config` and starts detecting.
    fn start(
        config: &AgentConfig,
        prepared: Prepared,
        delivery: &Delivery,
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
            config: config.clone(),
            inference: InferenceLoop::new(prepared.detector, hub, slots),
            rules: prepared.rules,
            events: event_rx,
            delivery: delivery.clone(),
            health,
            errors: Cell::new(0),
            stop: stop.clone(),
            camera_ids: config.cameras.iter().map(|c| c.id.clone()).collect(),
            counters,
            raised: RefCell::new(BTreeMap::new()),
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
    async fn stop(self) {
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
            let gate =
                c.motion.gate().map_err(|e| AgentError::Config(format!("camera {}: {e}", c.id)))?;
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
    delivery: Delivery,
    health: HealthReporter,
    /// Inference failures and alarms that could not be stored, since start.
    errors: Cell<u64>,
    stop: Arc<AtomicBool>,
    camera_ids: Vec<String>,
    counters: Vec<Arc<CameraCounters>>,
    /// Alarms raised by rule id and kind, for the metrics.
    raised: RefCell<BTreeMap<(String, String), u64>>,
    /// When the metrics page is next written.
    metrics_due: Instant,
}

impl DetectLoop {
    fn run(mut self) {
        let mut stats = Stats::default();
        while !self.stop.load(Ordering::Relaxed) {
            self.delivery.alive.store(now_ms(), Ordering::Relaxed);
            if let Some(metrics) =
                self.delivery.metrics.as_ref().filter(|_| Instant::now() >= self.metrics_due)
            {
                self.metrics_due = Instant::now() + Duration::from_secs(1);
                metrics.set(render(&Sample {
                    cameras: &self.camera_ids,
                    counters: &self.counters,
                    inference: &self.inference.camera_stats,
                    rules: &self.rules,
                    raised: &self.raised.borrow(),
                    outbox: &self.delivery.outbox,
                    errors: self.errors.get(),
                    config_version: *self.delivery.version.borrow(),
                }));
            }
            while let Ok(ev) = self.events.try_recv() {
                self.camera_event(ev);
            }
            if let Some(h) = self.health.due(
                &self.inference.camera_stats,
                &self.delivery.outbox,
                self.errors.get(),
            ) {
                // A report the publisher has not taken yet is simply superseded next time.
                let _ = self.delivery.health.try_send(h);
            }
            match self.inference.step(Duration::from_millis(20)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    error!("{e}");
                    self.errors.set(self.errors.get() + 1);
                    continue;
                }
            }
            let frames = std::mem::take(&mut self.inference.frames);
            for frame in &frames {
                let rules = &mut self.rules[frame.camera];
                let mut events =
                    rules.update(&self.inference.detections[frame.camera], frame.captured_ms);
                if rules.watches_picture() {
                    match frame.with_yuv(|yuv| rules.check_picture(yuv, frame.captured_ms)) {
                        Ok(more) => events.extend(more),
                        Err(e) => {
                            warn!(camera = %self.config.cameras[frame.camera].id, "tamper check skipped: {e}")
                        }
                    }
                }
                for event in events {
                    self.raise(&event, frame);
                }
            }
            self.inference.frames = frames;
            if stats.maybe_log(&self.inference.stats) {
                self.log_counts();
            }
        }
    }

    /// Camera loss and return become alarms of their own: a dead camera is an event the duty
    /// officer must see (a cut cable is how trouble often starts).
    fn camera_event(&mut self, ev: CameraEvent) {
        let (camera, kind, rule_id, severity) = match &ev {
            CameraEvent::Offline { camera, reason } => {
                warn!(camera = %self.config.cameras[*camera].id, "camera offline: {reason}");
                self.offline[*camera] = true;
                (*camera, RuleKind::CameraOffline, "camera-offline", SeverityConfig::High)
            }
            CameraEvent::Online { camera } => {
                info!(camera = %self.config.cameras[*camera].id, "camera online");
                if !std::mem::take(&mut self.offline[*camera]) {
                    return;
                }
                (*camera, RuleKind::CameraBack, "camera-back", SeverityConfig::Info)
            }
        };
        let card = self.inference.detector().card();
        let ctx = AlarmContext {
            agent_id: &self.config.agent_id,
            camera_id: &self.config.cameras[camera].id,
            rule_id,
            kind,
            severity,
            zone_id: "",
            model: (&card.name, &card.version),
            class_names: &card.classes,
        };
        let alarm = build(&ctx, &[], now_ms(), (0, 0), Vec::new());
        info!(alarm = %alarm.id, camera = %ctx.camera_id, "{rule_id}");
        self.send(alarm);
    }

    /// Seals the alarm, stores it in the outbox (flushed), then wakes the publisher.
    fn send(&self, alarm: Alarm) {
        let kind = kind_name(RuleKind::try_from(alarm.kind).unwrap_or(RuleKind::Unspecified));
        *self.raised.borrow_mut().entry((alarm.rule_id.clone(), kind)).or_default() += 1;
        let (id, camera) = (alarm.id.clone(), alarm.camera_id.clone());
        let stored = match self.delivery.sealer.seal(alarm, self.config.snapshot.send_after_bytes) {
            Ok(sealed) => self.delivery.outbox.push(&sealed).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(_) => {
                let _ = self.delivery.wake.try_send(());
            }
            Err(e) => {
                self.errors.set(self.errors.get() + 1);
                error!(alarm = %id, camera = %camera, "alarm lost: {e}");
            }
        }
    }

    /// The line counts so far, with the periodic rates.
    fn log_counts(&self) {
        for set in &self.rules {
            for rule in &set.rules {
                if let Some(c) = rule.counts() {
                    info!(camera = %self.config.cameras[set.camera].id, rule = %rule.id, "line crossings since start: A→B {}, B→A {}", c.a_to_b, c.b_to_a);
                }
            }
        }
    }

    fn raise(&self, event: &Event, frame: &Frame) {
        let rules = &self.rules[frame.camera];
        let r = &rules.rules[event.rule];
        let card = self.inference.detector().card();
        let jpeg = snapshot(frame, &r.shape, &event.hits, rules.masks(), &self.config.snapshot)
            .unwrap_or_else(|e| {
                warn!(rule = %r.id, "alarm sent without snapshot: {e}");
                Vec::new()
            });
        let ctx = AlarmContext {
            agent_id: &self.config.agent_id,
            camera_id: &self.config.cameras[frame.camera].id,
            rule_id: &r.id,
            kind: r.kind,
            severity: r.severity,
            zone_id: &r.place,
            model: (&card.name, &card.version),
            class_names: &card.classes,
        };
        let alarm =
            build(&ctx, &event.hits, frame.captured_ms, (frame.width(), frame.height()), jpeg);
        info!(
            alarm = %alarm.id,
            camera = %ctx.camera_id,
            rule = %r.id,
            objects = event.hits.len(),
            "{}: {}",
            kind_name(r.kind),
            event.detail
        );
        self.send(alarm);
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
