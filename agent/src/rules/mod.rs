//! Tracks → events: one [`RuleSet`] per camera turns its detections into events, one per real
//! situation, each with a start, updates while it lasts, and an end.
//!
//! Per inferred frame (a frame the motion gate skipped is not seen here): detections inside a
//! privacy mask (by their centre) or an object mask (by their bottom-centre) are dropped; the
//! rest feed the camera's tracker; each armed rule (inside its schedule) looks at the tracks its
//! object filter accepts, and its kind says whether its event may open and whether the
//! situation still holds. The rule's [`Episode`] makes that an event: it opens once, goes on
//! while the situation holds, and ends when it has not held for `end_after_s`. Line crossings
//! are instant events, one per crossing. Tamper rules look at the picture itself.
//!
//! Every duration is measured on the monotonic clock ([`FrameTime::mono_ms`]); schedules read
//! the wall clock.

pub mod camera_tamper;
mod cooldown;
mod crowding;
mod episode;
mod filter;
mod fire_smoke;
mod handover;
pub mod line_crossing;
mod loitering;
mod vehicle_stopped;
mod zone_intrusion;

use jiff::tz::TimeZone;
use xueliang_proto::RuleKind;

use crate::config::schedule::{Schedule, time_zone};
use crate::config::{AgentConfig, Problem, RuleConfig, RuleKindConfig, SeverityConfig};
use crate::detect::{Detection, ModelCard};
use crate::geometry::{Line, Polygon};
use crate::source::Yuv;
use crate::track::{Track, Tracker, TrackerSettings};
use camera_tamper::{TamperDetector, TamperSettings};
use crowding::Crowding;
use episode::{Episode, Sight, Step};
use filter::ObjectFilter;
use fire_smoke::FireSmoke;
use line_crossing::{Counts, Crossing};
use loitering::Loitering;
use vehicle_stopped::VehicleStopped;
use zone_intrusion::ZoneIntrusion;

/// When a frame was seen: on the monotonic clock (durations) and the wall clock (timestamps,
/// schedules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTime {
    /// Monotonic milliseconds.
    pub mono_ms: i64,
    /// UTC milliseconds.
    pub wall_ms: i64,
}

/// One object in an event: its track (0 when the rule does not track) and its detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Track id on this camera.
    pub track: u64,
    /// Where and what it was in the event's frame.
    pub detection: Detection,
}

impl Hit {
    /// A tracked object as it was seen last.
    pub fn of(t: &Track) -> Self {
        Self { track: t.id, detection: Detection { class: t.class, score: t.score, bbox: t.bbox } }
    }
}

/// What happened to one rule's event in a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An event began (or, for an instant rule such as a line crossing, happened): its alarm
    /// goes out now.
    Opened {
        /// Index of the rule in its set.
        rule: usize,
        /// The objects that opened it.
        hits: Vec<Hit>,
        /// What happened, briefly (for the log).
        detail: String,
        /// Whether it lasts (updates and an end follow) or was instant.
        lasting: bool,
    },
    /// An open event goes on, with these objects in view now.
    Ongoing {
        /// Index of the rule in its set.
        rule: usize,
        /// The objects now.
        hits: Vec<Hit>,
    },
    /// An event ended: its situation has not held for the rule's end time.
    Ended {
        /// Index of the rule in its set.
        rule: usize,
        /// When the situation last held.
        last_held: FrameTime,
    },
}

/// What a rule is drawn on.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A zone.
    Zone(Polygon),
    /// A counting line.
    Line(Line),
    /// The whole picture.
    Camera,
}

/// A kind's working state.
#[derive(Debug, Clone)]
enum State {
    Intrusion(ZoneIntrusion),
    Loitering(Loitering),
    Stopped(VehicleStopped),
    Crowding(Crowding),
    FireSmoke(FireSmoke),
    Line(Crossing),
    Tamper,
}

/// One rule, resolved against the config and the model.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// Its kind on the wire.
    pub kind: RuleKind,
    /// Alarm urgency.
    pub severity: SeverityConfig,
    /// Zone or line id (empty for the whole picture).
    pub place: String,
    /// What it is drawn on.
    pub shape: Shape,
    /// Re-notify an event that lasts this long again, and again (milliseconds); off when `None`.
    pub repeat_ms: Option<i64>,
    filter: ObjectFilter,
    schedule: Schedule,
    config: RuleConfig,
    state: State,
    episode: Episode,
    armed: bool,
}

/// How long (ms) a lost track's dwell or stillness waits for a new track to take it over.
const HANDOVER_MS: i64 = 5000;

impl Rule {
    fn fresh_state(cfg: &RuleConfig) -> State {
        let ms = |s: f32| (s * 1000.0) as i64;
        let dwell = ms(cfg.dwell_s());
        // A switched track id shows up as a new track within a few frames; waiting longer lets a
        // newcomer to the spot inherit someone else's dwell.
        let keep = HANDOVER_MS;
        match cfg.kind {
            RuleKindConfig::ZoneIntrusion => State::Intrusion(ZoneIntrusion::new(cfg.min_frames)),
            RuleKindConfig::Loitering => State::Loitering(Loitering::new(dwell, keep)),
            RuleKindConfig::VehicleStopped => State::Stopped(VehicleStopped::new(dwell, keep)),
            RuleKindConfig::Crowding => {
                State::Crowding(Crowding::new(cfg.min_count as usize, dwell))
            }
            RuleKindConfig::FireSmoke => State::FireSmoke(FireSmoke::new(cfg.min_frames)),
            RuleKindConfig::LineCrossing => {
                State::Line(Crossing::new(cfg.direction, ms(cfg.cooldown_s)))
            }
            RuleKindConfig::CameraTamper => State::Tamper,
        }
    }

    /// Line crossings counted so far, for a line rule.
    pub fn counts(&self) -> Option<Counts> {
        match &self.state {
            State::Line(c) => Some(c.counts),
            _ => None,
        }
    }

    /// Whether the rule looks at objects (rather than at the picture, as tamper does).
    pub fn watches_objects(&self) -> bool {
        !matches!(self.state, State::Tamper)
    }

    /// Turns what the kind saw into a change of the rule's event, if any.
    fn step(&mut self, index: usize, t: FrameTime, sight: Sight) -> Option<Change> {
        Some(match self.episode.step(t, sight)? {
            Step::Opened(hits, detail) => {
                Change::Opened { rule: index, hits, detail, lasting: true }
            }
            Step::Goes(hits) => Change::Ongoing { rule: index, hits },
            Step::Ended(last_held) => Change::Ended { rule: index, last_held },
        })
    }
}

/// One inferred frame of a camera, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The detector's detections (normalized coordinates).
    pub detections: &'a [Detection],
    /// When the frame was captured.
    pub t: FrameTime,
    /// The frame's width and height in pixels.
    pub size: (usize, usize),
}

/// One camera's masks, tracker and rules.
#[derive(Debug)]
pub struct RuleSet {
    /// Camera index in the config.
    pub camera: usize,
    /// The rules on this camera.
    pub rules: Vec<Rule>,
    masks: Vec<Polygon>,
    object_masks: Vec<Polygon>,
    tracker: Tracker,
    tamper: Option<TamperDetector>,
    tz: TimeZone,
    /// The last frame's detections outside the privacy and object masks.
    kept: Vec<Detection>,
}

impl RuleSet {
    /// The rules of camera `camera` of a checked config, with class names resolved by `card`.
    pub fn new(config: &AgentConfig, camera: usize, card: &ModelCard) -> Result<Self, String> {
        let cam = &config.cameras[camera];
        let class_problems = class_problems(config, card);
        if let Some(p) = class_problems.first() {
            return Err(p.to_string());
        }
        let tz = time_zone(&config.timezone)?;
        let polygons = |what: &str, list: &[Vec<[f32; 2]>]| {
            list.iter()
                .map(|m| Polygon::new(m).map_err(|e| format!("camera {}: {what}: {e}", cam.id)))
                .collect::<Result<Vec<_>, _>>()
        };
        let masks = polygons("privacy mask", &cam.privacy_masks)?;
        let object_masks = polygons("object mask", &cam.object_masks)?;
        let mut rules = Vec::new();
        for r in &config.rules {
            let (place, shape, on) = if let Some(z) = &r.zone {
                let zone = config
                    .zones
                    .iter()
                    .find(|zone| zone.id == *z)
                    .ok_or(format!("rule {}: no zone {z}", r.id))?;
                (z.clone(), Shape::Zone(Polygon::new(&zone.points)?), zone.camera.as_str())
            } else if let Some(l) = &r.line {
                let line = config
                    .lines
                    .iter()
                    .find(|line| line.id == *l)
                    .ok_or(format!("rule {}: no line {l}", r.id))?;
                (l.clone(), Shape::Line(Line::new(&line.points)?), line.camera.as_str())
            } else {
                (String::new(), Shape::Camera, r.camera.as_deref().unwrap_or_default())
            };
            if on != cam.id {
                continue;
            }
            let classes = r.class_names().iter().filter_map(|c| card.class_index(c)).collect();
            let schedule = Schedule::new(&r.schedule).map_err(|p| {
                format!(
                    "rule {}: schedule: {}",
                    r.id,
                    p.iter()
                        .map(|p| format!("{}: {}", p.at, p.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let ms = |s: f32| (s * 1000.0) as i64;
            rules.push(Rule {
                id: r.id.clone(),
                kind: RuleKind::from(r.kind),
                severity: r.severity,
                place,
                shape,
                repeat_ms: r.repeat_s.map(ms),
                filter: ObjectFilter {
                    classes,
                    min_score: r.min_score,
                    threshold: r.threshold.unwrap_or(r.min_score),
                    min_size: r.min_size,
                    max_size: r.max_size,
                    area: [r.min_area, r.max_area],
                    ratio: [r.min_ratio, r.max_ratio],
                },
                schedule,
                config: r.clone(),
                state: Rule::fresh_state(r),
                episode: Episode::new(ms(r.end_after_s), ms(r.cooldown_s)),
                armed: true,
            });
        }
        let tamper = rules
            .iter()
            .any(|r| r.kind == RuleKind::CameraTamper)
            .then(|| TamperDetector::new(TamperSettings::default()));
        Ok(Self {
            camera,
            rules,
            masks,
            object_masks,
            tracker: Tracker::new(TrackerSettings::default()),
            tamper,
            tz,
            kept: Vec::new(),
        })
    }

    /// The privacy masks of this camera.
    pub fn masks(&self) -> &[Polygon] {
        &self.masks
    }

    /// The last frame's detections, without those inside privacy or object masks.
    pub fn detections(&self) -> &[Detection] {
        &self.kept
    }

    /// The objects rule `rule` would consider in the last frame of `size`: visible tracks it
    /// accepts, inside its zone when it has one (an event's picture boxes them all).
    pub fn in_view(&self, rule: usize, size: (usize, usize)) -> Vec<Hit> {
        let aspect = size.0 as f32 / size.1.max(1) as f32;
        let Some(r) = self.rules.get(rule) else { return Vec::new() };
        // Fire and smoke are judged on untracked detections, tamper on the picture: no tracks.
        if r.kind == RuleKind::FireSmoke || !r.watches_objects() {
            return Vec::new();
        }
        self.tracker
            .visible()
            .filter(|t| r.filter.accepts_track(t, aspect))
            .filter(|t| match &r.shape {
                Shape::Zone(z) => z.contains(t.bbox.bottom_centre()),
                Shape::Line(_) | Shape::Camera => true,
            })
            .map(Hit::of)
            .collect()
    }

    /// Whether the picture itself must be checked each frame ([`Self::check_picture`]).
    pub fn watches_picture(&self) -> bool {
        self.tamper.is_some()
    }

    /// Whether a rule that looks at objects is armed at `wall_ms`: then every frame due is
    /// inferred, whatever the motion gate would say (a slow, small, dark walker towards a
    /// reservoir changes too little to move the gate).
    pub fn watches_objects_at(&self, wall_ms: i64) -> bool {
        self.rules.iter().any(|r| r.watches_objects() && r.schedule.active(wall_ms, &self.tz))
    }

    /// Whether rule `i` is armed at `t`; a rule leaving its schedule ends its event and forgets
    /// its state, so a dwell never spans the time it was off.
    fn armed(&mut self, i: usize, t: FrameTime, changes: &mut Vec<Change>) -> bool {
        let rule = &mut self.rules[i];
        let active = rule.schedule.active(t.wall_ms, &self.tz);
        if !active && rule.armed {
            rule.state = Rule::fresh_state(&rule.config);
            if let Some(Step::Ended(last_held)) = rule.episode.end() {
                changes.push(Change::Ended { rule: i, last_held });
            }
        }
        rule.armed = active;
        active
    }

    /// One inferred frame: the changes of the rules' events.
    pub fn update(&mut self, seen: &Observation<'_>) -> Vec<Change> {
        let t = seen.t;
        let aspect = seen.size.0 as f32 / seen.size.1.max(1) as f32;
        self.kept.clear();
        let (masks, object_masks) = (&self.masks, &self.object_masks);
        self.kept.extend(seen.detections.iter().filter(|d| {
            !masks.iter().any(|m| m.contains(d.bbox.centre()))
                && !object_masks.iter().any(|m| m.contains(d.bbox.bottom_centre()))
        }));
        self.tracker.update(&self.kept, t.mono_ms);
        let mut changes = Vec::new();
        for i in 0..self.rules.len() {
            if !self.armed(i, t, &mut changes) {
                continue;
            }
            let tracker = &self.tracker;
            let rule = &mut self.rules[i];
            let filter = &rule.filter;
            let accepted = |t: &&Track| filter.accepts_track(t, aspect);
            let visible: Vec<&Track> = tracker.visible().filter(accepted).collect();
            let inside = |z: &Polygon| -> Vec<&Track> {
                visible.iter().copied().filter(|t| z.contains(t.bbox.bottom_centre())).collect()
            };
            let sight = match (&mut rule.state, &rule.shape) {
                (State::Intrusion(s), Shape::Zone(z)) => s.see(&inside(z)),
                (State::Loitering(s), Shape::Zone(z)) => s.see(&inside(z), &visible, t.mono_ms),
                (State::Stopped(s), Shape::Zone(z)) => s.see(&visible, z, t.mono_ms),
                (State::Crowding(s), Shape::Zone(z)) => s.see(&inside(z), t.mono_ms),
                (State::FireSmoke(s), shape) => {
                    let dets: Vec<Detection> = self
                        .kept
                        .iter()
                        .filter(|d| filter.accepts_detection(d, aspect))
                        .copied()
                        .collect();
                    let zone = match shape {
                        Shape::Zone(z) => Some(z),
                        _ => None,
                    };
                    s.see(&dets, zone)
                }
                (State::Line(s), Shape::Line(l)) => {
                    // Young tracks too: a crossing right after someone appears still counts.
                    let seen: Vec<&Track> =
                        tracker.tracks().iter().filter(|t| t.seen_now).filter(accepted).collect();
                    let alive = |id| tracker.alive(id);
                    if let Some((hits, detail)) = s.update(&seen, l, t.mono_ms, alive) {
                        changes.push(Change::Opened { rule: i, hits, detail, lasting: false });
                    }
                    continue;
                }
                _ => continue,
            };
            changes.extend(rule.step(i, t, sight));
        }
        changes
    }

    /// Checks the picture of a frame at `t` for tampering: the changes of tamper rules' events.
    pub fn check_picture(&mut self, img: &Yuv<'_>, t: FrameTime) -> Vec<Change> {
        let Some(detector) = self.tamper.as_mut() else { return Vec::new() };
        let found = detector.check(img, t.mono_ms);
        let mut changes = Vec::new();
        for i in 0..self.rules.len() {
            if !matches!(self.rules[i].state, State::Tamper) || !self.armed(i, t, &mut changes) {
                continue;
            }
            let sight = match found {
                Some(kind) => Sight {
                    opening: Some((Vec::new(), kind.describe().to_string())),
                    holding: Some(Vec::new()),
                },
                None => Sight::default(),
            };
            changes.extend(self.rules[i].step(i, t, sight));
        }
        changes
    }

    /// Ends every open event now (the camera was lost, its config is replaced, the agent
    /// stops), each dated when its situation last held.
    pub fn end_all(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if let Some(Step::Ended(last_held)) = rule.episode.end() {
                rule.state = Rule::fresh_state(&rule.config);
                changes.push(Change::Ended { rule: i, last_held });
            }
        }
        changes
    }
}

/// Problems only the model can reveal: classes of `config`'s rules that `card` does not know.
pub fn class_problems(config: &AgentConfig, card: &ModelCard) -> Vec<Problem> {
    let mut p = Vec::new();
    for (i, r) in config.rules.iter().enumerate() {
        let unknown: Vec<String> =
            r.class_names().into_iter().filter(|c| card.class_index(c).is_none()).collect();
        if unknown.is_empty() {
            continue;
        }
        let at = if r.classes.is_some() {
            format!("rules[{i}].classes")
        } else {
            format!("rules[{i}].kind")
        };
        let listed = card.classes.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
            + if card.classes.len() > 12 { ", …" } else { "" };
        let message = if r.kind == RuleKindConfig::FireSmoke && r.classes.is_none() {
            format!("model {} has no fire or smoke class", card.name)
        } else {
            format!(
                "{} not a class of model {}",
                unknown.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                    + if unknown.len() == 1 { " is" } else { " are" },
                card.name
            )
        };
        let hint = if r.kind == RuleKindConfig::FireSmoke {
            "fire_smoke needs a model trained on fire and smoke (see models/README.md)".to_string()
        } else {
            format!("its classes: {listed}")
        };
        p.push(Problem::new(at, message).hint(hint));
    }
    p
}

#[cfg(test)]
mod tests;
