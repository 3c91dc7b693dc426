//! `[[rules]]`: what each rule watches (a zone, a line, the camera), for which objects, when,
//! and how urgently; the kinds' vocabulary (what each is drawn on, its default classes and
//! dwell) and every check that needs only the config.

use serde::Deserialize;
use xueliang_proto::{RuleKind, Severity};

use super::problem::ids;
use super::schedule::{Schedule, ScheduleConfig};
use super::{AgentConfig, Problem};

/// The kinds of rule this agent evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKindConfig {
    /// A tracked object stands in the zone (its box's bottom-centre is inside).
    ZoneIntrusion,
    /// A tracked object crosses the line in the watched direction.
    LineCrossing,
    /// A tracked object stays in the zone longer than `dwell_s`.
    Loitering,
    /// At least `min_count` objects are in the zone for `dwell_s`.
    Crowding,
    /// A vehicle stands still in the zone longer than `dwell_s`.
    VehicleStopped,
    /// Fire or smoke, with a model whose card has such classes.
    FireSmoke,
    /// The camera is covered, blurred or sprayed, or turned away.
    CameraTamper,
}

impl RuleKindConfig {
    /// The name used in the config, the same as on the wire and in records.
    pub fn name(self) -> &'static str {
        RuleKind::from(self).name()
    }

    /// What the rule is drawn on: a zone, a line, or the whole camera.
    pub fn needs(self) -> Needs {
        match self {
            Self::LineCrossing => Needs::Line,
            Self::CameraTamper => Needs::Camera,
            Self::FireSmoke => Needs::ZoneOrCamera,
            _ => Needs::Zone,
        }
    }

    /// The classes watched when the rule names none.
    pub(crate) fn default_classes(self) -> &'static [&'static str] {
        match self {
            Self::VehicleStopped => &["car", "truck", "bus", "motorcycle"],
            Self::FireSmoke => &["fire", "smoke"],
            Self::CameraTamper => &[],
            _ => &["person"],
        }
    }

    /// How long the condition must last when the rule does not say, seconds.
    fn default_dwell_s(self) -> f32 {
        match self {
            Self::Loitering => 60.0,
            Self::VehicleStopped => 120.0,
            Self::Crowding => 10.0,
            _ => 0.0,
        }
    }
}

/// What a rule kind is drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `zone = "…"`.
    Zone,
    /// `line = "…"`.
    Line,
    /// `camera = "…"`.
    Camera,
    /// `zone = "…"`, or `camera = "…"` for the whole picture.
    ZoneOrCamera,
}

/// Which crossings of a line raise alarms (all are counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionConfig {
    /// From side A to side B.
    AToB,
    /// From side B to side A.
    BToA,
    /// Either way.
    #[default]
    Both,
}

/// Alarm urgency, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityConfig {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule id, reported in alarms.
    pub id: String,
    /// What the rule looks for.
    pub kind: RuleKindConfig,
    /// The zone it watches (zone rules).
    #[serde(default)]
    pub zone: Option<String>,
    /// The line it watches (`line_crossing`).
    #[serde(default)]
    pub line: Option<String>,
    /// The camera it watches (`camera_tamper`, or `fire_smoke` on the whole picture).
    #[serde(default)]
    pub camera: Option<String>,
    /// Classes that count (model class names); each kind has a default.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Minimum detection score (0..1) in the frame.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Minimum median score (0..1) of a tracked object's recent detections: the object counts
    /// only once its history confirms it (default: `min_score`).
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Smallest box `[width, height]` that counts, as fractions of the picture.
    #[serde(default)]
    pub min_size: [f32; 2],
    /// Largest box `[width, height]` that counts, as fractions of the picture.
    #[serde(default = "default_max_size")]
    pub max_size: [f32; 2],
    /// Smallest box area that counts, as a fraction of the picture's.
    #[serde(default)]
    pub min_area: f32,
    /// Largest box area that counts, as a fraction of the picture's.
    #[serde(default = "default_max_area")]
    pub max_area: f32,
    /// Smallest box width ÷ height (in pixels) that counts.
    #[serde(default)]
    pub min_ratio: f32,
    /// Largest box width ÷ height (in pixels) that counts.
    #[serde(default = "default_max_ratio")]
    pub max_ratio: f32,
    /// Consecutive inferred frames the condition must hold before an alarm.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// Seconds: dwell for `loitering`, stillness for `vehicle_stopped`, duration for `crowding`.
    #[serde(default)]
    pub dwell_s: Option<f32>,
    /// Objects in the zone that make a crowd (`crowding`).
    #[serde(default = "default_min_count")]
    pub min_count: u32,
    /// Which crossings raise alarms (`line_crossing`).
    #[serde(default)]
    pub direction: DirectionConfig,
    /// Seconds after an event ends before the rule opens another; for `line_crossing`, seconds
    /// after a crossing's alarm before the same object raises another.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f32,
    /// Seconds the situation must have stopped (the zone empty, the vehicle gone, the picture
    /// normal) before the event ends.
    #[serde(default = "default_end_after")]
    pub end_after_s: f32,
    /// Re-notify the duty officer every this many seconds while an event lasts; off when absent.
    #[serde(default)]
    pub repeat_s: Option<f32>,
    /// Urgency of the alarm.
    #[serde(default)]
    pub severity: SeverityConfig,
    /// When the rule is armed; always when absent.
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl RuleConfig {
    /// The class names the rule watches.
    pub fn class_names(&self) -> Vec<String> {
        match &self.classes {
            Some(c) => c.clone(),
            None => self.kind.default_classes().iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Dwell, stillness or crowd duration, seconds.
    pub fn dwell_s(&self) -> f32 {
        self.dwell_s.unwrap_or(self.kind.default_dwell_s())
    }
}

fn default_min_score() -> f32 {
    0.5
}

fn default_max_size() -> [f32; 2] {
    [1.0, 1.0]
}

fn default_min_frames() -> u32 {
    2
}

fn default_min_count() -> u32 {
    5
}

fn default_cooldown() -> f32 {
    30.0
}

fn default_end_after() -> f32 {
    10.0
}

fn default_max_area() -> f32 {
    1.0
}

fn default_max_ratio() -> f32 {
    1000.0
}

fn hint_for(needs: Needs) -> &'static str {
    match needs {
        Needs::Zone => "set zone = \"<id of a [[zones]] entry>\"",
        Needs::Line => "set line = \"<id of a [[lines]] entry>\"",
        Needs::Camera => "set camera = \"<id of a [[cameras]] entry>\"",
        Needs::ZoneOrCamera => {
            "set zone = \"…\" for part of the picture, or camera = \"…\" for all of it"
        }
    }
}

impl From<RuleKindConfig> for RuleKind {
    fn from(kind: RuleKindConfig) -> Self {
        match kind {
            RuleKindConfig::ZoneIntrusion => RuleKind::ZoneIntrusion,
            RuleKindConfig::LineCrossing => RuleKind::LineCrossing,
            RuleKindConfig::Loitering => RuleKind::Loitering,
            RuleKindConfig::Crowding => RuleKind::Crowding,
            RuleKindConfig::VehicleStopped => RuleKind::VehicleStopped,
            RuleKindConfig::FireSmoke => RuleKind::FireSmoke,
            RuleKindConfig::CameraTamper => RuleKind::CameraTamper,
        }
    }
}

impl From<SeverityConfig> for Severity {
    fn from(s: SeverityConfig) -> Self {
        match s {
            SeverityConfig::Info => Severity::Info,
            SeverityConfig::Low => Severity::Low,
            SeverityConfig::Medium => Severity::Medium,
            SeverityConfig::High => Severity::High,
            SeverityConfig::Critical => Severity::Critical,
        }
    }
}

impl RuleConfig {
    /// Problems of rule `i` of `config`.
    pub(super) fn problems(&self, i: usize, config: &AgentConfig, p: &mut Vec<Problem>) {
        let r = self;
        let at = |key: &str| format!("rules[{i}].{key}");
        let kind = r.kind.name();
        let needs = r.kind.needs();
        let zone_ok = matches!(needs, Needs::Zone | Needs::ZoneOrCamera);
        match (&r.zone, zone_ok) {
            (Some(z), true) if !config.zones.iter().any(|zone| zone.id == *z) => {
                let ids = ids(config.zones.iter().map(|z| z.id.as_str()));
                p.push(
                    Problem::new(at("zone"), format!("no zone with id {z:?}"))
                        .hint(format!("zones: {}", ids.join(", "))),
                );
            }
            (Some(_), false) => p.push(
                Problem::new(at("zone"), format!("a {kind} rule has no zone"))
                    .hint(hint_for(needs)),
            ),
            (None, true) if needs == Needs::Zone => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a zone"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        match (&r.line, needs == Needs::Line) {
            (Some(l), true) if !config.lines.iter().any(|line| line.id == *l) => {
                let ids = ids(config.lines.iter().map(|l| l.id.as_str()));
                p.push(
                    Problem::new(at("line"), format!("no line with id {l:?}"))
                        .hint(format!("lines: {}", ids.join(", "))),
                );
            }
            (Some(_), false) => p.push(
                Problem::new(at("line"), format!("a {kind} rule has no line"))
                    .hint(hint_for(needs)),
            ),
            (None, true) => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a line"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        let camera_ok = matches!(needs, Needs::Camera | Needs::ZoneOrCamera);
        match (&r.camera, camera_ok) {
            (Some(c), true) => {
                if !config.cameras.iter().any(|cam| cam.id == *c) {
                    let ids = ids(config.cameras.iter().map(|c| c.id.as_str()));
                    p.push(
                        Problem::new(at("camera"), format!("no camera with id {c:?}"))
                            .hint(format!("cameras: {}", ids.join(", "))),
                    );
                }
                if r.zone.is_some() {
                    p.push(
                        Problem::new(at("camera"), "set zone or camera, not both")
                            .hint("the zone already names its camera"),
                    );
                }
            }
            (Some(_), false) => p.push(Problem::new(
                at("camera"),
                format!(
                    "a {kind} rule takes its camera from its {}",
                    if needs == Needs::Line { "line" } else { "zone" }
                ),
            )),
            (None, true) if needs == Needs::Camera || r.zone.is_none() => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a camera"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        if r.classes.as_ref().is_some_and(Vec::is_empty) {
            p.push(
                Problem::new(at("classes"), "is empty")
                    .hint("leave it out for the kind's default classes"),
            );
        }
        if !(0.0..=1.0).contains(&r.min_score) {
            p.push(Problem::new(at("min_score"), "must be in 0..1"));
        }
        for (key, [w, h]) in [("min_size", r.min_size), ("max_size", r.max_size)] {
            if !((0.0..=1.0).contains(&w) && (0.0..=1.0).contains(&h)) {
                p.push(Problem::new(
                    at(key),
                    "width and height are fractions of the picture, 0..1",
                ));
            }
        }
        if r.min_size[0] > r.max_size[0] || r.min_size[1] > r.max_size[1] {
            p.push(Problem::new(at("max_size"), "is smaller than min_size: no object can match"));
        }
        if r.min_frames == 0 {
            p.push(Problem::new(at("min_frames"), "must be at least 1"));
        }
        if let Some(d) = r.dwell_s {
            if !(d >= 0.0) {
                p.push(Problem::new(at("dwell_s"), "must not be negative"));
            }
            if !matches!(
                r.kind,
                RuleKindConfig::Loitering
                    | RuleKindConfig::VehicleStopped
                    | RuleKindConfig::Crowding
            ) {
                p.push(
                    Problem::new(at("dwell_s"), format!("a {kind} rule has no dwell time"))
                        .hint("dwell_s is for loitering, vehicle_stopped and crowding"),
                );
            }
        }
        if r.kind == RuleKindConfig::Crowding && r.min_count < 2 {
            p.push(Problem::new(at("min_count"), "a crowd is at least 2 objects"));
        }
        if !(r.cooldown_s >= 0.0) {
            p.push(Problem::new(at("cooldown_s"), "must not be negative"));
        }
        if !(r.end_after_s >= 0.0) {
            p.push(Problem::new(at("end_after_s"), "must not be negative"));
        }
        if let Some(repeat) = r.repeat_s
            && !(repeat >= 10.0)
        {
            p.push(
                Problem::new(at("repeat_s"), "must be at least 10")
                    .hint("leave it out for no reminders while an event lasts"),
            );
        }
        if let Some(threshold) = r.threshold
            && !(0.0..=1.0).contains(&threshold)
        {
            p.push(Problem::new(at("threshold"), "must be in 0..1"));
        }
        if !(0.0..=1.0).contains(&r.min_area)
            || !(0.0..=1.0).contains(&r.max_area)
            || r.min_area > r.max_area
        {
            p.push(
                Problem::new(
                    at("max_area"),
                    "min_area..max_area must be fractions of the picture, in order",
                )
                .hint("e.g. min_area = 0.001, max_area = 0.2"),
            );
        }
        if !(r.min_ratio >= 0.0) || !(r.max_ratio >= r.min_ratio) {
            p.push(
                Problem::new(
                    at("max_ratio"),
                    "min_ratio..max_ratio must be width ÷ height, in order",
                )
                .hint("a person standing is about 0.3 to 0.6"),
            );
        }
        if let Err(problems) = Schedule::new(&r.schedule) {
            p.extend(problems.into_iter().map(|s| Problem {
                at: at(&format!("schedule.{}", s.at)),
                message: s.message,
                hint: s.hint,
            }));
        }
    }
}
