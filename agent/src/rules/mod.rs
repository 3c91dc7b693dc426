//! Event rules: one [`RuleSet`] per camera turns its detections into events, one per real
//! event, not one per frame.
//!
//! Per frame: detections inside a privacy mask are dropped; the rest feed the camera's tracker;
//! each armed rule (inside its schedule) looks at the tracks its object filter accepts, in its
//! zone or across its line, and fires at most once per object per cooldown. Tamper rules look at
//! the picture itself instead.

pub mod camera_tamper;
mod cooldown;
mod crowding;
mod filter;
mod fire_smoke;
pub mod line_crossing;
mod loitering;
mod vehicle_stopped;
mod zone_intrusion;

use jiff::tz::TimeZone;
use xueliang_proto::RuleKind;

use crate::config::schedule::{Schedule, time_zone};
use crate::config::{AgentConfig, Problem, RuleConfig, RuleKindConfig, SeverityConfig};
use crate::detect::Detection;
use crate::detect::ModelCard;
use crate::geometry::{Line, Polygon};
use crate::rules::camera_tamper::{TamperDetector, TamperSettings};
use crate::source::Yuv;
use crate::track::{Track, Tracker, TrackerSettings};
use crowding::Crowding;
use filter::ObjectFilter;
use fire_smoke::Presence;
use line_crossing::{Counts, Crossing};
use loitering::Loitering;
use vehicle_stopped::Stopped;
use zone_intrusion::Intrusion;

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

/// What a rule reports when it fires: the objects, and a short description.
pub type Firing = (Vec<Hit>, String);

/// A rule's decision that an event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index of the rule in its set.
    pub rule: usize,
    /// The objects that made it fire (none for tamper).
    pub hits: Vec<Hit>,
    /// What happened, briefly (for the log and the alarm).
    pub detail: String,
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
    Intrusion(Intrusion),
    Loitering(Loitering),
    Stopped(Stopped),
    Crowding(Crowding),
    Presence(Presence),
    Line(Crossing),
    Tamper(cooldown::PerRule),
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
    filter: ObjectFilter,
    schedule: Schedule,
    config: RuleConfig,
    state: State,
    armed: bool,
}

impl Rule {
    fn fresh_state(cfg: &RuleConfig) -> State {
        let ms = |s: f32| (s * 1000.0) as i64;
        let cooldown = ms(cfg.cooldown_s);
        let dwell = ms(cfg.dwell_s());
        match cfg.kind {
            RuleKindConfig::ZoneIntrusion => {
                State::Intrusion(Intrusion::new(cfg.min_frames, cooldown))
            }
            RuleKindConfig::Loitering => State::Loitering(Loitering::new(dwell, cooldown)),
            RuleKindConfig::VehicleStopped => State::Stopped(Stopped::new(dwell, cooldown)),
            RuleKindConfig::Crowding => {
                State::Crowding(Crowding::new(cfg.min_count as usize, dwell, cooldown))
            }
            RuleKindConfig::FireSmoke => State::Presence(Presence::new(cfg.min_frames, cooldown)),
            RuleKindConfig::LineCrossing => State::Line(Crossing::new(cfg.direction, cooldown)),
            RuleKindConfig::CameraTamper => State::Tamper(cooldown::PerRule::new(cooldown)),
        }
    }

    /// Line crossings counted so far, for a line rule.
    pub fn counts(&self) -> Option<Counts> {
        match &self.state {
            State::Line(c) => Some(c.counts),
            _ => None,
        }
    }
}

/// One camera's tracker, privacy masks and rules.
#[derive(Debug)]
pub struct RuleSet {
    /// Camera index in the config.
    pub camera: usize,
    /// The rules on this camera.
    pub rules: Vec<Rule>,
    masks: Vec<Polygon>,
    tracker: Tracker,
    tamper: Option<TamperDetector>,
    tz: TimeZone,
    /// The last frame's detections outside the privacy masks.
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
        let masks = cam
            .privacy_masks
            .iter()
            .map(|m| Polygon::new(m).map_err(|e| format!("camera {}: privacy mask: {e}", cam.id)))
            .collect::<Result<Vec<_>, _>>()?;
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
            rules.push(Rule {
                id: r.id.clone(),
                kind: RuleKind::from(r.kind),
                severity: r.severity,
                place,
                shape,
                filter: ObjectFilter {
                    classes,
                    min_score: r.min_score,
                    min_size: r.min_size,
                    max_size: r.max_size,
                },
                schedule,
                config: r.clone(),
                state: Rule::fresh_state(r),
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

    /// The last frame's detections, without those inside privacy masks.
    pub fn detections(&self) -> &[Detection] {
        &self.kept
    }

    /// Whether the picture itself must be checked each frame ([`Self::check_picture`]).
    pub fn watches_picture(&self) -> bool {
        self.tamper.is_some()
    }

    /// Whether rule `i` is armed at `t_ms`; a rule leaving its schedule forgets its state, so
    /// a dwell never spans the time it was off.
    fn armed(&mut self, i: usize, t_ms: i64) -> bool {
        let rule = &mut self.rules[i];
        let active = rule.schedule.active(t_ms, &self.tz);
        if !active && rule.armed {
            rule.state = Rule::fresh_state(&rule.config);
        }
        rule.armed = active;
        active
    }

    /// One inferred frame's detections at `t_ms` (UTC ms): the events they complete.
    pub fn update(&mut self, detections: &[Detection], t_ms: i64) -> Vec<Event> {
        self.kept.clear();
        let masks = &self.masks;
        self.kept.extend(
            detections.iter().filter(|d| !masks.iter().any(|m| m.contains(d.bbox.centre()))),
        );
        self.tracker.update(&self.kept, t_ms);
        let mut events = Vec::new();
        for i in 0..self.rules.len() {
            if !self.armed(i, t_ms) {
                continue;
            }
            let tracker = &self.tracker;
            let rule = &mut self.rules[i];
            let filter = &rule.filter;
            let accepted = |t: &&Track| filter.accepts(t.class, t.score, &t.bbox);
            let visible: Vec<&Track> = tracker.visible().filter(accepted).collect();
            let alive = |id| tracker.alive(id);
            let fired: Option<Firing> = match (&mut rule.state, &rule.shape) {
                (State::Intrusion(s), Shape::Zone(z)) => s.update(&visible, z, t_ms, alive),
                (State::Loitering(s), Shape::Zone(z)) => s.update(&visible, z, t_ms, alive),
                (State::Stopped(s), Shape::Zone(z)) => s.update(&visible, z, t_ms, alive),
                (State::Crowding(s), Shape::Zone(z)) => s.update(&visible, z, t_ms),
                (State::Line(s), Shape::Line(l)) => {
                    // Young tracks too: a crossing right after someone appears still counts.
                    let seen: Vec<&Track> =
                        tracker.tracks().iter().filter(|t| t.seen_now).filter(accepted).collect();
                    s.update(&seen, l, t_ms, alive)
                }
                (State::Presence(s), shape) => {
                    let dets: Vec<Detection> = self
                        .kept
                        .iter()
                        .filter(|d| filter.accepts(d.class, d.score, &d.bbox))
                        .copied()
                        .collect();
                    let zone = match shape {
                        Shape::Zone(z) => Some(z),
                        _ => None,
                    };
                    s.update(&dets, zone, t_ms)
                }
                _ => None,
            };
            if let Some((hits, detail)) = fired {
                events.push(Event { rule: i, hits, detail });
            }
        }
        events
    }

    /// Checks the picture of a frame at `t_ms` for tampering: the events of tamper rules.
    pub fn check_picture(&mut self, img: &Yuv<'_>, t_ms: i64) -> Vec<Event> {
        let Some(found) = self.tamper.as_mut().and_then(|d| d.check(img, t_ms)) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for i in 0..self.rules.len() {
            if !self.armed(i, t_ms) {
                continue;
            }
            if let State::Tamper(cooldown) = &mut self.rules[i].state
                && cooldown.ready(t_ms)
            {
                cooldown.fire(t_ms);
                events.push(Event {
                    rule: i,
                    hits: Vec::new(),
                    detail: found.describe().to_string(),
                });
            }
        }
        events
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
