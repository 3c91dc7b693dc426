//! An event as the center keeps and serves it: its opening alarm (what the agent signed for),
//! where the event stands (ongoing or ended, its peak count and duration, from the agent's
//! updates), where the case stands (status, routing, dispatches) and every step taken on it.
//! One record per event, however many updates it has, with the video clips of it that arrived.

use serde::{Deserialize, Serialize};
use xueliang_proto::signing::hex;
use xueliang_proto::{Alarm, ClipChunk, EventUpdate, RuleKind, Severity};

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

/// A video clip of an event, complete and hashing to the SHA-256 its agent signed, as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipRecord {
    /// The agent-made id (`GET /api/clips/{clip_id}` serves it).
    pub clip_id: String,
    /// Camera.
    pub camera_id: String,
    /// Its first frame, UTC ms.
    pub start_time_ms: i64,
    /// Its length, ms.
    pub duration_ms: u64,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 (hex) of all its bytes, as the agent signed it.
    pub sha256: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The camera's stream it was cut from: `record` (main) or `detect`.
    pub stream: String,
    /// Whether privacy masks were blacked out (the clip was encoded again).
    pub masked: bool,
}

impl ClipRecord {
    /// The clip a chunk describes (every chunk of a clip describes all of it).
    pub fn from_chunk(c: &ClipChunk) -> Self {
        Self {
            clip_id: c.clip_id.clone(),
            camera_id: c.camera_id.clone(),
            start_time_ms: c.start_time_ms,
            duration_ms: c.duration_ms,
            size: c.size,
            sha256: hex(&c.sha256),
            width: c.width,
            height: c.height,
            stream: c.stream.clone(),
            masked: c.masked,
        }
    }
}

/// Whether an event goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Its agent still sees it: updates and an end follow.
    Ongoing,
    /// It is over (or was instant, like a line crossed, or came from an agent older than
    /// events).
    #[default]
    Ended,
}

impl EventState {
    /// The name the API and filters use.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Ongoing => "ongoing",
            EventState::Ended => "ended",
        }
    }
}

/// What an agent's update did to its event's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The record changed.
    Changed,
    /// The update was applied before (or a newer one was): nothing changed.
    Duplicate,
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
    /// Whether the event goes on.
    #[serde(default)]
    pub state: EventState,
    /// When it ended (the situation last held), UTC ms; none while it goes on.
    #[serde(default)]
    pub ended_ms: Option<i64>,
    /// How long it has lasted (to its end when ended), ms, as the agent measured it.
    #[serde(default)]
    pub duration_ms: u64,
    /// The most objects seen at once.
    #[serde(default)]
    pub peak_count: u32,
    /// The agent's last update applied (its sequence number; 0: none yet).
    #[serde(default)]
    pub update_seq: u32,
    /// When the last update was made, UTC ms (0: none yet).
    #[serde(default)]
    pub updated_ms: i64,
    /// Reminders that it still goes on (the rule's `repeat_s`).
    #[serde(default)]
    pub reminders: u32,
    /// Its video clips, oldest first.
    #[serde(default)]
    pub clips: Vec<ClipRecord>,
    /// Clips of it were deleted by retention (the record stays longer).
    #[serde(default)]
    pub clips_expired: bool,
    /// Units found late to mark it received (each once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overdue: Vec<String>,
    /// What the center saw, for the supervision events it raises itself (empty for alarms).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Where it came from, if a center of the tier below forwarded it here (none: it happened
    /// in this center's own county).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<Forwarded>,
    /// On an event forwarded from below: what this center did itself (its own dispatches).
    #[serde(default, skip_serializing_if = "Own::is_empty")]
    pub own: Own,
}

/// What a tier above did itself on an event forwarded from below: the county's duty officers
/// run its case (its status, its timeline); the tier above may send its own units, whose
/// dispatches and steps are kept here, apart, and stay when the county's record changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Own {
    /// This center's units it was dispatched to.
    #[serde(default)]
    pub dispatched_to: Vec<String>,
    /// The steps taken here (dispatches, the units' steps), oldest first.
    #[serde(default)]
    pub timeline: Vec<Step>,
}

impl Own {
    /// Whether nothing was done here.
    pub fn is_empty(&self) -> bool {
        self.dispatched_to.is_empty() && self.timeline.is_empty()
    }
}

/// How an event forwarded from the tier below came here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The county it happened in (whose duty officers act on it).
    pub county: String,
    /// The center below that forwarded it here (the county's, or a city's).
    pub by: String,
    /// Its number in that center's order when it first came.
    pub seq: u64,
    /// When it first came, UTC ms.
    pub at_ms: i64,
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
            detections: detection_records(&a.detections),
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
            state: if a.opens_event { EventState::Ongoing } else { EventState::Ended },
            ended_ms: (!a.opens_event).then_some(a.event_time_ms),
            duration_ms: 0,
            peak_count: a.detections.len() as u32,
            update_seq: 0,
            updated_ms: 0,
            reminders: 0,
            clips: Vec::new(),
            clips_expired: false,
            overdue: Vec::new(),
            detail: String::new(),
            forwarded: None,
            own: Own::default(),
        }
    }

    /// A supervision event the center raises itself at `now_ms`: `kind` is one of the
    /// center's kinds (see [`super::KINDS`]), `agent_id` the box it concerns (`center` for the
    /// center itself), `detail` what was seen, in a sentence.
    pub fn supervision(
        id: String,
        agent_id: &str,
        kind: &str,
        severity: &str,
        detail: String,
        now_ms: i64,
    ) -> Self {
        let alarm = Alarm { id, agent_id: agent_id.to_owned(), ..Default::default() };
        let mut record = Self::from_alarm(&Alarm { event_time_ms: now_ms, ..alarm }, now_ms);
        record.rule_id = "supervision".to_owned();
        record.kind = kind.to_owned();
        record.severity = severity.to_owned();
        record.detail = detail;
        record
    }

    /// The units this center dispatched it to: for an event forwarded from below, its own
    /// (the county's are the county's to watch).
    pub fn units_here(&self) -> &[String] {
        match self.forwarded {
            Some(_) => &self.own.dispatched_to,
            None => &self.dispatched_to,
        }
    }

    /// The steps this center took on it: for an event forwarded from below, its own.
    pub fn steps_here(&self) -> &[Step] {
        match self.forwarded {
            Some(_) => &self.own.timeline,
            None => &self.timeline,
        }
    }

    /// Adds a clip of this event once (by its id), keeping the clips in order of their start,
    /// the newest last; whether it was new.
    pub fn add_clip(&mut self, clip: &ClipRecord) -> bool {
        if self.clips.iter().any(|c| c.clip_id == clip.clip_id) {
            return false;
        }
        self.clips.push(clip.clone());
        // Stable: two clips starting together stay in the order they came.
        self.clips.sort_by_key(|c| c.start_time_ms);
        true
    }

    /// Applies an update of this event from its agent: once (by its sequence number, never an
    /// older one over a newer), the peak count only growing, the best view's objects replacing
    /// the opening ones, the end when it ends. Its picture, if any, is the store's to keep.
    pub fn apply_update(&mut self, u: &EventUpdate) -> Updated {
        // An ended event (or an alarm that opened none) takes no update.
        if u.seq <= self.update_seq || self.state == EventState::Ended {
            return Updated::Duplicate;
        }
        self.update_seq = u.seq;
        self.updated_ms = u.time_ms;
        self.peak_count = self.peak_count.max(u.peak_count);
        self.duration_ms = self.duration_ms.max(u.duration_ms);
        if !u.detections.is_empty() {
            self.detections = detection_records(&u.detections);
        }
        if !u.snapshot_sha256.is_empty() {
            self.snapshot_sha256 = hex(&u.snapshot_sha256);
            self.snapshot_bytes = u.snapshot_jpeg.len();
            self.snapshot_follows = false;
            self.frame_width = u.frame_width;
            self.frame_height = u.frame_height;
        }
        if u.reminder {
            self.reminders += 1;
        }
        if u.ended {
            self.state = EventState::Ended;
            self.ended_ms = Some(u.end_time_ms);
        }
        Updated::Changed
    }
}

/// Detections in the record's terms.
fn detection_records(d: &[xueliang_proto::Detection]) -> Vec<DetectionRecord> {
    d.iter()
        .map(|d| {
            let b = d.r#box.unwrap_or_default();
            DetectionRecord {
                class: d.class_name.clone(),
                score: d.score,
                bbox: [b.x1, b.y1, b.x2, b.y2],
                track_id: d.track_id,
            }
        })
        .collect()
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

    #[test]
    fn updates_change_one_record_once_in_order_and_end_it() {
        let opening = Alarm { opens_event: true, ..alarm("e", 1000) };
        let mut r = AlarmRecord::from_alarm(&opening, 1001);
        assert_eq!((r.state, r.ended_ms, r.peak_count), (EventState::Ongoing, None, 0));
        let update = |seq, ended, peak| EventUpdate {
            event_id: "e".into(),
            seq,
            ended,
            peak_count: peak,
            duration_ms: 1000 * u64::from(seq),
            end_time_ms: 9000,
            ..Default::default()
        };
        assert_eq!(r.apply_update(&update(2, false, 3)), Updated::Changed);
        assert_eq!(r.apply_update(&update(1, false, 5)), Updated::Duplicate, "older");
        assert_eq!(r.apply_update(&update(2, false, 5)), Updated::Duplicate, "again");
        assert_eq!(r.peak_count, 3);
        assert_eq!(r.apply_update(&update(3, true, 2)), Updated::Changed);
        assert_eq!(
            (r.state, r.ended_ms, r.peak_count, r.duration_ms),
            (EventState::Ended, Some(9000), 3, 3000)
        );
        assert_eq!(
            r.apply_update(&update(4, false, 9)),
            Updated::Duplicate,
            "nothing after the end"
        );
        // An alarm that opens no event (instant, or an older agent's) is ended on arrival.
        let mut instant = AlarmRecord::from_alarm(&alarm("x", 5), 6);
        assert_eq!((instant.state, instant.ended_ms), (EventState::Ended, Some(5)));
        assert_eq!(instant.apply_update(&update(1, false, 9)), Updated::Duplicate, "no event");
        assert_eq!(instant.peak_count, 0);
    }

    /// A stored-alarm record for tests.
    pub(crate) fn record(id: &str) -> AlarmRecord {
        AlarmRecord::from_alarm(&alarm(id, 1), 2)
    }
}
