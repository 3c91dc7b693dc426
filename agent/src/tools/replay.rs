//! Replaying a recorded clip through the agent's detector, tracker, rules and evidence, frame
//! by frame, dropping none: what `xl-agent replay` runs for an installer tuning rules on footage
//! from the site, and what the scenario tests run on real footage.
//!
//! Frame times are the clip's own (its timestamps after `start_ms`), so schedules, dwell times
//! and cooldowns behave as they would have live, however fast the box replays.

use std::path::PathBuf;

use xueliang_proto::RuleKind;

use crate::config::AgentConfig;
use crate::detect::Detection;
use crate::detect::{Detector, DetectorError};
use crate::evidence::snapshot;
use crate::rules::line_crossing::Counts;
use crate::rules::{Hit, RuleSet};
use crate::source::{Recording, RecordingError};

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The clip could not be decoded.
    #[error(transparent)]
    Clip(#[from] RecordingError),
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
    /// Infer every Nth frame (the live agent's detect_fps against the clip's frame rate).
    pub every: usize,
    /// Make each event's JPEG, as the agent would send it.
    pub snapshots: bool,
}

/// One event of the replay.
#[derive(Debug, Clone)]
pub struct ReplayEvent {
    /// The rule that fired.
    pub rule_id: String,
    /// Its kind.
    pub kind: RuleKind,
    /// Frame number in the clip (from 1).
    pub frame: usize,
    /// Event time, UTC ms.
    pub time_ms: i64,
    /// The objects.
    pub hits: Vec<Hit>,
    /// What happened.
    pub detail: String,
    /// The evidence picture (empty unless asked for).
    pub jpeg: Vec<u8>,
}

/// Everything a replay saw.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Frames decoded.
    pub frames: usize,
    /// Events in order.
    pub events: Vec<ReplayEvent>,
    /// Per line rule: its id and its crossings.
    pub counts: Vec<(String, Counts)>,
    /// Per inferred frame: its number and the detections the rules saw (privacy masks applied).
    pub detections: Vec<(usize, Vec<Detection>)>,
}

impl ReplayOptions {
    /// Runs the clip through `detector` and the rules of `config` for the chosen camera.
    pub fn run(
        &self,
        config: &AgentConfig,
        detector: &mut Detector,
    ) -> Result<ReplayReport, ReplayError> {
        let camera = config.cameras.iter().position(|c| c.id == self.camera).ok_or_else(|| {
            ReplayError::Config(format!(
                "no camera {:?} in the config (cameras: {})",
                self.camera,
                config.cameras.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let mut rules =
            RuleSet::new(config, camera, detector.card()).map_err(ReplayError::Config)?;
        let mut clip = Recording::open(&self.clip)?;
        let mut report = ReplayReport::default();
        let mut dets = Vec::with_capacity(256);
        while let Some(mut frame) = clip.next_frame()? {
            report.frames += 1;
            let number = report.frames;
            frame.captured_ms = self.start_ms + frame.pts_ms().unwrap_or(0);
            if (number - 1) % self.every.max(1) != 0 {
                continue;
            }
            let t = frame.captured_ms;
            let mut events = frame
                .with_yuv(|yuv| -> Result<_, DetectorError> {
                    detector.detect(yuv, &mut dets)?;
                    let mut events = rules.update(&dets, t);
                    if rules.watches_picture() {
                        events.extend(rules.check_picture(yuv, t));
                    }
                    Ok(events)
                })
                .map_err(|e| ReplayError::Config(e.to_string()))??;
            report.detections.push((number, rules.detections().to_vec()));
            for event in events.drain(..) {
                let rule = &rules.rules[event.rule];
                let jpeg = if self.snapshots {
                    snapshot(&frame, &rule.shape, &event.hits, rules.masks(), &config.snapshot)
                        .map_err(ReplayError::Config)?
                } else {
                    Vec::new()
                };
                report.events.push(ReplayEvent {
                    rule_id: rule.id.clone(),
                    kind: rule.kind,
                    frame: number,
                    time_ms: t,
                    hits: event.hits,
                    detail: event.detail,
                    jpeg,
                });
            }
        }
        report.counts =
            rules.rules.iter().filter_map(|r| Some((r.id.clone(), r.counts()?))).collect();
        Ok(report)
    }
}
