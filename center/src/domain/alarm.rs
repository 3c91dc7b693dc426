//! An alarm as the center keeps and serves it: what the agent signed for, plus where the case
//! stands (status, routing, dispatches) and every step taken on it.

use serde::{Deserialize, Serialize};
use xueliang_proto::signing::hex;
use xueliang_proto::{Alarm, RuleKind, Severity};

use super::vocabulary::{Action, Status, kind_name, severity_name};

/// A detected object as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    /// Class name.
    pub class: String,
    /// Confidence 0..1.
    pub score: f32,
    /// `[x1, y1, x2, y2]`, normalized.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Track id on its camera (0 = untracked).
    pub track_id: u64,
}

/// One step of an alarm's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What was done.
    pub action: Action,
    /// The status after it.
    pub status: Status,
    /// Login of who did it (`system` for the center).
    pub by: String,
    /// When, UTC ms.
    pub at_ms: i64,
    /// Their note (may be empty).
    pub note: String,
    /// Units it was sent to (dispatch and escalation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
}

/// An alarm as stored and served by the API (without its snapshot bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// The agent-made id.
    pub id: String,
    /// Agent that raised it.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// Rule.
    pub rule_id: String,
    /// Rule kind, e.g. `zone_intrusion`.
    pub kind: String,
    /// Severity, e.g. `high`.
    pub severity: String,
    /// Capture time, UTC ms.
    pub event_time_ms: i64,
    /// When the center stored it, UTC ms.
    pub received_time_ms: i64,
    /// Zone or line id.
    pub zone_id: String,
    /// What was detected.
    pub detections: Vec<DetectionRecord>,
    /// Size of the JPEG snapshot in bytes (0 = none, or not arrived yet).
    pub snapshot_bytes: usize,
    /// SHA-256 (hex) of the snapshot the agent signed for (empty = none).
    #[serde(default)]
    pub snapshot_sha256: String,
    /// The snapshot travels after the alarm (it may not have arrived yet).
    #[serde(default)]
    pub snapshot_follows: bool,
    /// Frame size the boxes refer to.
    pub frame_width: u32,
    /// Frame height.
    pub frame_height: u32,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// Workflow state: `new` on arrival.
    pub status: Status,
    /// Units routing suggests (police stations first).
    #[serde(default)]
    pub routed_to: Vec<String>,
    /// Units it was dispatched to (by a duty officer, or by escalation).
    #[serde(default)]
    pub dispatched_to: Vec<String>,
    /// Where the camera is (its routing group's name), if routing knows.
    #[serde(default)]
    pub location: String,
    /// Whether it escalated (its severity was raised).
    #[serde(default)]
    pub escalated: bool,
    /// The snapshot was deleted by retention (the record stays longer).
    #[serde(default)]
    pub snapshot_expired: bool,
    /// Every workflow step, oldest first.
    #[serde(default)]
    pub timeline: Vec<Step>,
}

impl AlarmRecord {
    /// The record of a received alarm.
    pub fn from_alarm(a: &Alarm, received_time_ms: i64) -> Self {
        let kind = RuleKind::try_from(a.kind).unwrap_or(RuleKind::Unspecified);
        let severity = Severity::try_from(a.severity).unwrap_or(Severity::Unspecified);
        Self {
            id: a.id.clone(),
            agent_id: a.agent_id.clone(),
            camera_id: a.camera_id.clone(),
            rule_id: a.rule_id.clone(),
            kind: kind_name(kind),
            severity: severity_name(severity),
            event_time_ms: a.event_time_ms,
            received_time_ms,
            zone_id: a.zone_id.clone(),
            detections: a
                .detections
                .iter()
                .map(|d| {
                    let b = d.r#box.unwrap_or_default();
                    DetectionRecord {
                        class: d.class_name.clone(),
                        score: d.score,
                        bbox: [b.x1, b.y1, b.x2, b.y2],
                        track_id: d.track_id,
                    }
                })
                .collect(),
            snapshot_bytes: a.snapshot_jpeg.len(),
            snapshot_sha256: hex(&a.snapshot_sha256),
            snapshot_follows: a.snapshot_follows,
            frame_width: a.frame_width,
            frame_height: a.frame_height,
            model_id: a.model_id.clone(),
            model_version: a.model_version.clone(),
            status: Status::New,
            routed_to: Vec::new(),
            dispatched_to: Vec::new(),
            location: String::new(),
            escalated: false,
            snapshot_expired: false,
            timeline: Vec::new(),
        }
    }
}

/// Records for the tests of every folder.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A received alarm from agent `a`, camera `c`: a high zone intrusion at `t` with a snapshot.
    pub(crate) fn alarm(id: &str, t: i64) -> Alarm {
        Alarm {
            id: id.into(),
            agent_id: "a".into(),
            camera_id: "c".into(),
            kind: RuleKind::ZoneIntrusion as i32,
            severity: Severity::High as i32,
            event_time_ms: t,
            snapshot_jpeg: vec![0xff, 0xd8, 0xff, 0xd9].into(),
            ..Default::default()
        }
    }

    /// A stored-alarm record for tests.
    pub(crate) fn record(id: &str) -> AlarmRecord {
        AlarmRecord::from_alarm(&alarm(id, 1), 2)
    }
}
