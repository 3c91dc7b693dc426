//! Replaying a recorded clip through the agent's own loop, frame by frame, dropping none: the
//! camera source decodes it on demand on its own clock, the inference loop infers each due frame
//! (motion gate included, at the camera's `detect_fps`), and the camera's [`Watch`] turns frames
//! into the event messages the agent would send. `xl-agent replay` runs this for an installer
//! tuning rules on footage from the site; the scenario tests run it on real footage.
//!
//! Frame times are the clip's own (its timestamps after `start_ms`), so schedules, dwell times,
//! cooldowns and event ends behave as they would have live, however fast the box replays.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::AgentConfig;
use crate::detect::{
    CameraSlot, Detection, Detector, DetectorError, InferenceLoop, MotionGate, Tiling,
};
use crate::evidence::{Outgoing, Watch};
use crate::rules::FrameTime;
use crate::rules::line_crossing::Counts;
use crate::source::{CameraEvent, CameraOutputs, CameraSource, FrameHub, Pace};

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The clip could not be decoded.
    #[error("{0}")]
    Clip(String),
    /// Inference failed.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// The config does not fit the model or the clip.
    #[error("{0}")]
    Config(String),
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The recording.
    pub clip: PathBuf,
    /// Id of the camera whose rules and masks apply.
    pub camera: String,
    /// Wall-clock time of the clip's first frame, UTC ms.
    pub start_ms: i64,
}

/// One message of the replay, with the clip frame that made it.
#[derive(Debug, Clone)]
pub struct ReplayMessage {
    /// Frame number in the clip (from 1).
    pub frame: usize,
    /// The message, as the agent would seal and send it.
    pub message: Outgoing,
}

/// Everything a replay saw.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Frames decoded.
    pub frames: usize,
    /// Frames inferred (the rest were not due, or the motion gate skipped them).
    pub inferred: usize,
    /// The messages, in order.
    pub messages: Vec<ReplayMessage>,
    /// Per line rule: its id and its crossings.
    pub counts: Vec<(String, Counts)>,
    /// Per inferred frame: its number and the detections the rules saw (masks applied).
    pub detections: Vec<(usize, Vec<Detection>)>,
}

impl ReplayReport {
    /// The alarms: opening ones and instant ones, with their frame numbers.
    pub fn alarms(&self) -> impl Iterator<Item = (usize, &xueliang_proto::Alarm)> {
        self.messages.iter().filter_map(|m| match &m.message {
            Outgoing::Alarm { alarm, .. } => Some((m.frame, alarm)),
            Outgoing::Update { .. } => None,
        })
    }

    /// The updates and ends of events, with their frame numbers.
    pub fn updates(&self) -> impl Iterator<Item = (usize, &xueliang_proto::EventUpdate)> {
        self.messages.iter().filter_map(|m| match &m.message {
            Outgoing::Update { update, .. } => Some((m.frame, update)),
            Outgoing::Alarm { .. } => None,
        })
    }
}

impl ReplayOptions {
    /// Runs the clip through `detector` and the rules of `config` for the chosen camera; gives
    /// the detector back with the report.
    pub fn run(
        &self,
        config: &AgentConfig,
        detector: Detector,
    ) -> Result<(ReplayReport, Detector), ReplayError> {
        let index = config.cameras.iter().position(|c| c.id == self.camera).ok_or_else(|| {
            ReplayError::Config(format!(
                "no camera {:?} in the config (cameras: {})",
                self.camera,
                config.cameras.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut watch = Watch::new(config, index, detector.card()).map_err(ReplayError::Config)?;
        let mut camera = config.cameras[index].clone();
        camera.detect_url = format!(
            "file://{}",
            self.clip
                .canonicalize()
                .map_err(|e| { ReplayError::Clip(format!("clip {}: {e}", self.clip.display())) })?
                .display()
        );
        let gate = MotionGate::from_config(&camera.motion).map_err(ReplayError::Config)?;
        let slot = CameraSlot {
            interval: camera.detect_interval(),
            gate,
            on_demand: true,
            tiling: Tiling::of_camera(config, index),
        };
        // One camera, at index 0 of its own hub.
        let hub = Arc::new(FrameHub::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (events_tx, events) = std::sync::mpsc::channel();
        let source = CameraSource::spawn(
            0,
            camera,
            CameraOutputs {
                hub: hub.clone(),
                events: events_tx,
                counters: Arc::default(),
                ring: None,
            },
            stop.clone(),
            Pace::Recording { start_ms: self.start_ms },
        )
        .map_err(|e| ReplayError::Clip(e.to_string()))?;
        let mut inference = InferenceLoop::new(detector, hub, vec![slot]);
        let mut report = ReplayReport::default();
        let mut finished = false;
        let mut last = FrameTime { mono_ms: 0, wall_ms: self.start_ms };
        let result = loop {
            while let Ok(ev) = events.try_recv() {
                match ev {
                    CameraEvent::Finished { .. } => finished = true,
                    // A recording that cannot be read ends at once, with the reason.
                    CameraEvent::Offline { reason, .. } => {
                        stop.store(true, Ordering::Relaxed);
                        source.join();
                        return Err(ReplayError::Clip(reason));
                    }
                    CameraEvent::Online { .. } | CameraEvent::Back { .. } => {}
                }
            }
            inference.infer_every_frame(0, watch.needs_every_frame(last.wall_ms));
            match inference.step(Duration::from_millis(100)) {
                Ok(true) => {}
                // The source has ended and its last frame is taken.
                Ok(false) if finished => break Ok(()),
                Ok(false) => continue,
                Err(e) => break Err(ReplayError::Detector(e)),
            }
            let number = inference.stats.frames as usize;
            let frames = std::mem::take(&mut inference.frames);
            for (frame, &inferred) in frames.iter().zip(&inference.inferred) {
                last = FrameTime { mono_ms: frame.mono_ms, wall_ms: frame.captured_ms };
                let detections = inferred.then(|| inference.detections[0].as_slice());
                let messages = watch.see(frame, detections);
                if inferred {
                    report.inferred += 1;
                    report.detections.push((number, watch.rules.detections().to_vec()));
                }
                report.messages.extend(
                    messages
                        .into_iter()
                        .map(|message| ReplayMessage { frame: number, message: message.drawn() }),
                );
            }
            inference.frames = frames;
        };
        stop.store(true, Ordering::Relaxed);
        report.frames = inference.stats.frames as usize;
        // Events still open at the clip's end end with it.
        let number = report.frames;
        report.messages.extend(
            watch
                .stop(last)
                .into_iter()
                .map(|message| ReplayMessage { frame: number, message: message.drawn() }),
        );
        report.counts =
            watch.rules.rules.iter().filter_map(|r| Some((r.id.clone(), r.counts()?))).collect();
        source.join();
        result.map(|()| (report, inference.into_detector()))
    }
}
