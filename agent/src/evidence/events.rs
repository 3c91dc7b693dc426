//! Rule changes → messages for the center. An event's opening alarm goes out at once with its
//! picture (latency matters); while the event lasts, an update follows when the peak count grows
//! or a clearly better view of the objects appears (at most every [`UPDATE_EVERY_MS`]), a
//! reminder every `repeat_s` if the rule asks; and its end, with the duration measured on the
//! monotonic clock. The camera's own loss is an event of the same kind: opened when it has been
//! offline long enough, ended when it is back.

use std::collections::HashMap;

use xueliang_proto::{self as proto, RuleKind, SCHEMA_VERSION};

use super::alarm::{AlarmContext, build, detections};
use super::picture::PictureJob;
use crate::config::{AgentConfig, SeverityConfig, SnapshotConfig};
use crate::detect::ModelCard;
use crate::rules::{Change, FrameTime, Hit, RuleSet};
use crate::source::Frame;

/// Updates of one event go out at most this often (its end and reminders excepted).
pub const UPDATE_EVERY_MS: i64 = 5_000;

/// A view is better when its objects' area × score exceeds the best so far by this factor.
const BETTER_VIEW: f32 = 1.25;

/// A better picture is made at most this often (each is a JPEG encoding).
const PICTURE_EVERY_MS: i64 = 2_000;

/// A message for the center.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An alarm: an event's opening one, or an instant event.
    Alarm {
        /// The alarm, not yet sealed.
        alarm: proto::Alarm,
        /// What happened, briefly (for the log).
        detail: String,
        /// Its picture, still to be drawn ([`Outgoing::draw`]).
        picture: Option<PictureJob>,
    },
    /// An update or the end of an open event.
    Update {
        /// The update, not yet sealed.
        update: proto::EventUpdate,
        /// A better picture of the event, still to be drawn ([`Outgoing::draw`]).
        picture: Option<PictureJob>,
    },
}

impl Outgoing {
    /// Draws the message's picture with `draw` (the JPEG and the size of the frame it shows);
    /// a picture that cannot be made leaves the message without one.
    pub fn draw(
        &mut self,
        draw: impl FnOnce(&PictureJob) -> Result<(Vec<u8>, (usize, usize)), String>,
    ) {
        let (job, jpeg, width, height, id) = match self {
            Outgoing::Alarm { alarm, picture, .. } => (
                picture.take(),
                &mut alarm.snapshot_jpeg,
                &mut alarm.frame_width,
                &mut alarm.frame_height,
                &alarm.id,
            ),
            Outgoing::Update { update, picture } => (
                picture.take(),
                &mut update.snapshot_jpeg,
                &mut update.frame_width,
                &mut update.frame_height,
                &update.event_id,
            ),
        };
        let Some(job) = job else { return };
        match draw(&job) {
            Ok((bytes, (w, h))) => {
                *jpeg = bytes.into();
                (*width, *height) = (w as u32, h as u32);
            }
            Err(e) => tracing::warn!(event = %id, "event picture not made: {e}"),
        }
    }

    /// The message with its picture drawn on the frame its objects were seen on.
    pub fn drawn(mut self) -> Self {
        self.draw(|job| job.draw_on(&job.frame));
        self
    }
}

/// One open event, as sent so far.
#[derive(Debug)]
struct Open {
    /// The opening alarm's id: the event's id.
    id: String,
    /// Updates made so far.
    seq: u32,
    start_mono_ms: i64,
    peak: u32,
    /// The best view so far: its area × score and its objects.
    best: f32,
    best_hits: Vec<Hit>,
    /// Track ids of the objects that opened it: marked on its pictures.
    openers: Vec<u64>,
    /// A better picture not sent yet, and when the last was chosen.
    picture: Option<PictureJob>,
    picture_mono_ms: i64,
    size: (usize, usize),
    /// Whether something worth an update changed since the last one.
    changed: bool,
    sent_mono_ms: i64,
    reminded_mono_ms: i64,
}

impl Open {
    fn new(
        id: String,
        hits: &[Hit],
        openers: Vec<u64>,
        at: FrameTime,
        size: (usize, usize),
    ) -> Self {
        Self {
            id,
            seq: 0,
            start_mono_ms: at.mono_ms,
            peak: hits.len() as u32,
            best: view(hits),
            best_hits: hits.to_vec(),
            openers,
            picture: None,
            picture_mono_ms: at.mono_ms,
            size,
            changed: false,
            sent_mono_ms: at.mono_ms,
            reminded_mono_ms: at.mono_ms,
        }
    }
}

/// How good a view of the objects is: their area times their score, summed (larger and more
/// confident is better evidence).
fn view(hits: &[Hit]) -> f32 {
    hits.iter()
        .map(|h| {
            let b = h.detection.bbox;
            (b.x2 - b.x1) * (b.y2 - b.y1) * h.detection.score
        })
        .sum()
}

/// One camera's open events and what was sent of them.
#[derive(Debug)]
pub struct EventLog {
    agent_id: String,
    camera_id: String,
    snapshot: SnapshotConfig,
    /// Pictures of updates travel inline: at most the size that stays with its message.
    update_picture: SnapshotConfig,
    model: (String, String),
    class_names: Vec<String>,
    /// Open events by rule index.
    open: HashMap<usize, Open>,
    /// The camera's offline event, when one is open.
    offline: Option<Open>,
}

impl EventLog {
    /// The log of camera `camera` of `config`, whose objects `card` names.
    pub fn new(config: &AgentConfig, camera: usize, card: &ModelCard) -> Self {
        let snapshot = config.snapshot.clone();
        let update_picture = SnapshotConfig {
            max_bytes: snapshot.max_bytes.min(snapshot.send_after_bytes),
            ..snapshot.clone()
        };
        Self {
            agent_id: config.agent_id.clone(),
            camera_id: config.cameras[camera].id.clone(),
            snapshot,
            update_picture,
            model: (card.name.clone(), card.version.clone()),
            class_names: card.classes.clone(),
            open: HashMap::new(),
            offline: None,
        }
    }

    /// Whether an event is open (the camera's loss included).
    pub fn any_open(&self) -> bool {
        !self.open.is_empty() || self.offline.is_some()
    }

    fn context<'a>(
        &'a self,
        rule_id: &'a str,
        kind: RuleKind,
        severity: SeverityConfig,
        zone: &'a str,
    ) -> AlarmContext<'a> {
        AlarmContext {
            agent_id: &self.agent_id,
            camera_id: &self.camera_id,
            rule_id,
            kind,
            severity,
            zone_id: zone,
            model: (&self.model.0, &self.model.1),
            class_names: &self.class_names,
        }
    }

    /// The messages `changes` of `rules`, seen in `frame` at `at`, make (without a frame, as
    /// when the camera was lost, no picture is made). A picture that cannot be made leaves its
    /// message without one.
    pub fn apply(
        &mut self,
        changes: Vec<Change>,
        rules: &RuleSet,
        frame: Option<&Frame>,
        at: FrameTime,
    ) -> Vec<Outgoing> {
        let size = frame.map_or((0, 0), |f| (f.width(), f.height()));
        let mut out = Vec::new();
        for change in changes {
            match change {
                Change::Opened { rule, hits, detail, lasting } => {
                    let r = &rules.rules[rule];
                    let openers: Vec<u64> = hits.iter().map(|h| h.track).collect();
                    let picture =
                        frame.map(|f| self.picture(f, rule, &hits, &openers, rules, false));
                    let ctx = self.context(&r.id, r.kind, r.severity, &r.place);
                    let mut alarm = build(&ctx, &hits, at.wall_ms, size, Vec::new());
                    alarm.opens_event = lasting;
                    if lasting {
                        let open = Open::new(alarm.id.clone(), &hits, openers, at, size);
                        self.open.insert(rule, open);
                    }
                    out.push(Outgoing::Alarm { alarm, detail, picture });
                }
                Change::Ongoing { rule, hits } => {
                    let r = &rules.rules[rule];
                    let better = self.open.get(&rule).is_some_and(|o| {
                        view(&hits) > o.best * BETTER_VIEW
                            && at.mono_ms - o.picture_mono_ms >= PICTURE_EVERY_MS
                    });
                    let picture = frame.filter(|_| better).map(|f| {
                        let openers = self.open.get(&rule).map_or(&[][..], |o| &o.openers);
                        self.picture(f, rule, &hits, openers, rules, true)
                    });
                    let Some(o) = self.open.get_mut(&rule) else { continue };
                    if let Some(job) = picture {
                        o.best = view(&hits);
                        o.best_hits = hits.clone();
                        o.size = size;
                        o.picture = Some(job);
                        o.picture_mono_ms = at.mono_ms;
                        o.changed = true;
                    }
                    if hits.len() as u32 > o.peak {
                        o.peak = hits.len() as u32;
                        o.changed = true;
                    }
                    let (agent, names) = (&self.agent_id, &self.class_names);
                    if o.changed && at.mono_ms - o.sent_mono_ms >= UPDATE_EVERY_MS {
                        out.push(make_update(agent, names, o, at, false, false));
                    } else if r
                        .repeat_ms
                        .is_some_and(|every| at.mono_ms - o.reminded_mono_ms >= every)
                    {
                        out.push(make_update(agent, names, o, at, false, true));
                    }
                }
                Change::Ended { rule, last_held } => {
                    if let Some(mut o) = self.open.remove(&rule) {
                        let (agent, names) = (&self.agent_id, &self.class_names);
                        out.push(make_update(agent, names, &mut o, last_held, true, false));
                    }
                }
            }
        }
        out
    }

    /// The picture of rule `rule`'s event in `frame`: its objects `hits` (`openers` marked) and
    /// every other object in view (`inline`: small enough to travel in an update).
    fn picture(
        &self,
        frame: &Frame,
        rule: usize,
        hits: &[Hit],
        openers: &[u64],
        rules: &RuleSet,
        inline: bool,
    ) -> PictureJob {
        let mut objects = hits.to_vec();
        let others = rules.in_view(rule, (frame.width(), frame.height()));
        objects.extend(others.into_iter().filter(|o| !hits.iter().any(|h| h.track == o.track)));
        PictureJob {
            frame: frame.clone(),
            shape: rules.rules[rule].shape.clone(),
            objects,
            openers: openers.to_vec(),
            masks: rules.masks().to_vec(),
            cfg: if inline { &self.update_picture } else { &self.snapshot }.clone(),
        }
    }

    /// The camera has been offline since `since` (`reason`): the alarm opening its event.
    pub fn camera_offline(&mut self, since: FrameTime, reason: &str) -> Outgoing {
        let ctx = self.context("camera-offline", RuleKind::CameraOffline, SeverityConfig::High, "");
        let mut alarm = build(&ctx, &[], since.wall_ms, (0, 0), Vec::new());
        alarm.opens_event = true;
        self.offline = Some(Open::new(alarm.id.clone(), &[], Vec::new(), since, (0, 0)));
        Outgoing::Alarm { alarm, detail: reason.to_owned(), picture: None }
    }

    /// The camera is back at `at`: the end of its offline event, if one is open.
    pub fn camera_back(&mut self, at: FrameTime) -> Option<Outgoing> {
        let mut o = self.offline.take()?;
        Some(make_update(&self.agent_id, &self.class_names, &mut o, at, true, false))
    }
}

/// The next update of open event `o` at `at` (its end when `ended`): what changed since the last
/// one, with the better picture if there is one.
fn make_update(
    agent_id: &str,
    class_names: &[String],
    o: &mut Open,
    at: FrameTime,
    ended: bool,
    reminder: bool,
) -> Outgoing {
    o.seq += 1;
    o.changed = false;
    o.sent_mono_ms = at.mono_ms;
    if reminder {
        o.reminded_mono_ms = at.mono_ms;
    }
    let update = proto::EventUpdate {
        schema_version: SCHEMA_VERSION as i32,
        id: uuid::Uuid::now_v7().to_string(),
        agent_id: agent_id.to_owned(),
        event_id: o.id.clone(),
        seq: o.seq,
        time_ms: xueliang_proto::endpoint::now_ms(),
        ended,
        end_time_ms: if ended { at.wall_ms } else { 0 },
        duration_ms: (at.mono_ms - o.start_mono_ms).max(0) as u64,
        peak_count: o.peak,
        detections: detections(&o.best_hits, class_names),
        snapshot_jpeg: Default::default(),
        frame_width: o.size.0 as u32,
        frame_height: o.size.1 as u32,
        reminder,
        signature: Default::default(),
        snapshot_sha256: Default::default(),
    };
    Outgoing::Update { update, picture: o.picture.take() }
}
