//! One camera's rules and event log together: what each due frame of the camera becomes. The
//! agent's detector thread and `xl-agent replay` (with the scenario tests) both run this, so an
//! installer tunes rules on exactly the path the agent runs.

use crate::config::AgentConfig;
use crate::detect::{Detection, ModelCard};
use crate::rules::{Change, FrameTime, Observation, RuleSet};
use crate::source::Frame;

use super::events::{EventLog, Outgoing};

/// A camera's rules and the events they make.
#[derive(Debug)]
pub struct Watch {
    /// The camera's masks, tracker and rules.
    pub rules: RuleSet,
    /// Its open events and what was sent of them.
    pub events: EventLog,
}

impl Watch {
    /// The watch of camera `camera` of a checked `config`, whose model `card` describes.
    pub fn new(config: &AgentConfig, camera: usize, card: &ModelCard) -> Result<Self, String> {
        Ok(Self {
            rules: RuleSet::new(config, camera, card)?,
            events: EventLog::new(config, camera, card),
        })
    }

    /// Whether every due frame must be inferred now (`wall_ms`): a rule watching objects is
    /// armed, or an event is open.
    pub fn needs_every_frame(&self, wall_ms: i64) -> bool {
        self.rules.watches_objects_at(wall_ms) || self.events.any_open()
    }

    /// One due frame, with its detections when it was inferred: the messages it makes.
    pub fn see(&mut self, frame: &Frame, detections: Option<&[Detection]>) -> Vec<Outgoing> {
        let t = FrameTime { mono_ms: frame.mono_ms, wall_ms: frame.captured_ms };
        let mut changes = Vec::new();
        if self.rules.watches_picture() {
            match frame.with_yuv(|yuv| self.rules.check_picture(yuv, t)) {
                Ok(more) => changes.extend(more),
                Err(e) => tracing::warn!(camera = self.rules.camera, "tamper check skipped: {e}"),
            }
        }
        if let Some(detections) = detections {
            let size = (frame.width(), frame.height());
            changes.extend(self.rules.update(&Observation { detections, t, size }));
        }
        self.apply(changes, Some(frame), t)
    }

    /// The camera has been offline since `since`: its open events end when it was last seen
    /// working, and its offline event opens.
    pub fn camera_offline(&mut self, since: FrameTime, reason: &str) -> Vec<Outgoing> {
        let ended = self.rules.end_all();
        let mut out = self.apply(ended, None, since);
        out.push(self.events.camera_offline(since, reason));
        out
    }

    /// The camera is back at `at`: its offline event ends.
    pub fn camera_back(&mut self, at: FrameTime) -> Option<Outgoing> {
        self.events.camera_back(at)
    }

    /// The watch stops at `at` (a new config, the agent stopping): every open event ends.
    pub fn stop(&mut self, at: FrameTime) -> Vec<Outgoing> {
        let ended = self.rules.end_all();
        let mut out = self.apply(ended, None, at);
        out.extend(self.events.camera_back(at));
        out
    }

    fn apply(
        &mut self,
        changes: Vec<Change>,
        frame: Option<&Frame>,
        t: FrameTime,
    ) -> Vec<Outgoing> {
        if changes.is_empty() {
            return Vec::new();
        }
        self.events.apply(changes, &self.rules, frame, t)
    }
}
