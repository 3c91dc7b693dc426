//! Routing rules of the county center (`routing.toml`): which responder units an alarm concerns
//! (a suggestion the duty officer dispatches to), where it goes when it escalates, and each
//! unit's webhook. Police stations come first, then township offices, then village patrols.
//!
//! ```toml
//! time_zone = "Asia/Shanghai"        # default; for `hours`
//!
//! [[unit]]
//! id = "pcs-qingshan"                # required, unique; [A-Za-z0-9_-]{1,64}
//! name = "青山派出所"                  # required
//! type = "police_station"            # required: police_station | township_office | village_patrol
//! webhook = "http://10.1.2.3/xl"     # optional, http:// or https:// URL
//! webhook_secret = "change-me"       # optional, only with webhook: HMAC-SHA256 key for X-Xueliang-Signature
//!
//! [[unit]]
//! id = "patrol-qingshan"
//! name = "青山村网格员"
//! type = "village_patrol"
//!
//! [[unit]]
//! id = "township-qingshan"
//! name = "青山镇综治办"
//! type = "township_office"
//!
//! [[group]]                          # camera groups / areas; id, name and cameras required
//! id = "reservoir"
//! name = "青山水库"                    # human location text
//! cameras = ["qingshan/reservoir-*", "qingshan/dam"]   # "agent/camera"; `*` = any run within its part
//!
//! [[route]]
//! id = "reservoir-dusk"              # required, unique
//! groups = ["reservoir"]             # any of these groups, or
//! cameras = ["xiaohe/gate"]          # any of these patterns; both absent = any camera
//! kinds = ["zone_intrusion", "loitering"]   # absent = any kind
//! min_severity = "medium"            # info < low < medium < high < critical; absent = any
//! hours = ["18:00-06:00"]            # local windows, may wrap midnight, end exclusive; absent = all day
//! units = ["pcs-qingshan", "patrol-qingshan"]   # required, non-empty
//! escalate_to = ["township-qingshan"]           # optional: the second route when this alarm escalates
//!
//! [escalation]                       # optional; absent = no escalation
//! after_s = 300                      # required: an alarm still `new` this long after receipt escalates
//! units = ["township-qingshan"]      # for alarms whose matching routes have no escalate_to
//!
//! [supervision]                      # optional; every field has its default
//! agent_silent_after_s = 300         # a box silent this long is an `agent_offline` event
//! clock_skew_s = 120                 # a box's clock off by more is an `agent_clock_off` event
//! receive_within_s = 600             # a unit not marking its dispatch received by then: overdue
//! resend_dispatch_s = 60             # a dispatch not yet received is published again this often
//!
//! [gb28181]                          # optional: which events go to the GB/T 28181 platforms above
//! kinds = ["zone_intrusion", "camera_offline"]  # absent = every kind the standard has a type for
//! min_severity = "medium"            # absent = any
//! ```
//!
//! Kinds: zone_intrusion line_crossing loitering crowding vehicle_stopped fire_smoke
//! camera_offline camera_tamper camera_back, and the center's own supervision events:
//! agent_offline agent_back agent_dropped_alarms agent_clock_off center_disk_low
//! dispatch_failed. An empty list means the same as an absent one.

mod parse;

use std::path::Path;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::domain::severity_rank;
use crate::watched_file::{WatchError, WatchedFile};

const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// What kind of responder a unit is; also the order in which units are listed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnitType {
    /// 派出所.
    PoliceStation,
    /// Township governance office.
    TownshipOffice,
    /// Village patrol or grid worker (网格员).
    VillagePatrol,
}

/// A responder unit alarms are routed to.
#[derive(Serialize, Clone)]
pub struct Unit {
    /// Unique id, `[A-Za-z0-9_-]{1,64}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What kind of unit it is.
    #[serde(rename = "type")]
    pub unit_type: UnitType,
    /// http(s) URL alarms are posted to.
    pub webhook: Option<String>,
    /// HMAC-SHA256 key for the `X-Xueliang-Signature` header.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<String>,
}

// By hand so that the secret never reaches a log.
impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, name, unit_type, webhook) = (&self.id, &self.name, self.unit_type, &self.webhook);
        let secret = if self.webhook_secret.is_some() { "set" } else { "none" };
        write!(
            f,
            "Unit {{ id: {id:?}, name: {name:?}, type: {unit_type:?}, webhook: {webhook:?}, secret: {secret} }}"
        )
    }
}

/// What routing looks at in an alarm.
#[derive(Debug, Clone, Copy)]
pub struct AlarmFacts<'a> {
    /// Agent that raised it.
    pub agent_id: &'a str,
    /// Camera.
    pub camera_id: &'a str,
    /// Rule kind, e.g. `zone_intrusion`.
    pub kind: &'a str,
    /// Severity, e.g. `high`.
    pub severity: &'a str,
    /// Capture time, UTC ms.
    pub event_time_ms: i64,
}

/// When unacknowledged alarms escalate, and to whom by default.
#[derive(Debug, Clone)]
pub struct Escalation {
    /// How long after it was received an alarm still `new` escalates.
    pub after: Duration,
    /// Units for alarms whose matching routes have no `escalate_to`.
    pub units: Vec<String>,
}

/// How the center watches its boxes and its dispatches (`[supervision]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// A box not heard from this long (or offline by its last will) is an `agent_offline` event.
    pub silent_after: Duration,
    /// A box whose clock is off by more than this is an `agent_clock_off` event.
    pub clock_skew: Duration,
    /// A unit that has not marked its dispatch received this long after it was sent makes the
    /// alarm overdue: raised and sent again, and to the second route.
    pub receive_within: Duration,
    /// A dispatch not yet received is published again this often.
    pub resend_every: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            silent_after: Duration::from_secs(300),
            clock_skew: Duration::from_secs(120),
            receive_within: Duration::from_secs(600),
            resend_every: Duration::from_secs(60),
        }
    }
}

/// Which events are reported to the GB/T 28181 platforms above (`[gb28181]`).
#[derive(Debug, Clone, Default)]
pub struct ReportUpward {
    /// The kinds reported; empty = all.
    kinds: Vec<String>,
    /// The least severity reported; `None` = any.
    min_rank: Option<u8>,
}

impl ReportUpward {
    /// Whether an event of `kind` and `severity` goes up.
    pub fn takes(&self, kind: &str, severity: &str) -> bool {
        let rank = severity_rank(severity).unwrap_or(u8::MAX);
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && self.min_rank.is_none_or(|min| rank >= min)
    }
}

/// An `agent/camera` pattern, split at the `/`.
type Pattern = (String, String);

fn matches(patterns: &[Pattern], agent_id: &str, camera_id: &str) -> bool {
    patterns.iter().any(|(agent, camera)| glob(agent, agent_id) && glob(camera, camera_id))
}

#[derive(Debug)]
struct Group {
    name: String,
    cameras: Vec<Pattern>,
}

#[derive(Debug)]
struct Route {
    /// Its groups' patterns and its own; `None` = any camera.
    cameras: Option<Vec<Pattern>>,
    kinds: Vec<String>,
    min_rank: Option<u8>,
    /// Minutes of the day, `[start, end)`; start > end wraps midnight.
    hours: Vec<(u16, u16)>,
    units: Vec<String>,
    escalate_to: Vec<String>,
}

/// The parsed routing rules.
#[derive(Debug)]
pub struct Routing {
    time_zone: TimeZone,
    units: Vec<Unit>,
    groups: Vec<Group>,
    routes: Vec<Route>,
    escalation: Option<Escalation>,
    supervision: Supervision,
    report_upward: ReportUpward,
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let Some(mut rest) = pieces.next().and_then(|first| text.strip_prefix(first)) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    // Leftmost matching of the middle pieces leaves the most room for the others.
    for piece in middle {
        let Some(i) = rest.find(piece) else { return false };
        rest = &rest[i + piece.len()..];
    }
    rest.ends_with(last)
}

impl Routing {
    /// No units, no routes, no escalation.
    pub fn empty() -> Self {
        let time_zone = TimeZone::get(DEFAULT_TIME_ZONE).unwrap_or(TimeZone::UTC);
        Self {
            time_zone,
            units: Vec::new(),
            groups: Vec::new(),
            routes: Vec::new(),
            escalation: None,
            supervision: Supervision::default(),
            report_upward: ReportUpward::default(),
        }
    }

    /// Reads `path` and again when it changes; a missing file means no routing (as
    /// [`Routing::empty`]) until it appears.
    pub fn open(path: &Path) -> Result<WatchedFile<Routing>, WatchError> {
        WatchedFile::open(path, None, Routing::parse)
    }

    /// All units, in file order.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The unit with this id.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// The time zone `hours` are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The `[escalation]` section, if any.
    pub fn escalation(&self) -> Option<&Escalation> {
        self.escalation.as_ref()
    }

    /// The `[supervision]` section, or its defaults.
    pub fn supervision(&self) -> Supervision {
        self.supervision
    }

    /// Which events go to the GB/T 28181 platforms above (`[gb28181]`).
    pub fn report_upward(&self) -> &ReportUpward {
        &self.report_upward
    }

    /// Unit ids of every matching route: deduplicated, police stations first, then township
    /// offices, then village patrols; within a type in order of first appearance.
    pub fn route(&self, alarm: &AlarmFacts) -> Vec<String> {
        self.ordered(self.matching(alarm).into_iter().flat_map(|r| &r.units))
    }

    /// Where this alarm goes when it escalates: the matching routes' `escalate_to`, else the
    /// `[escalation]` units; ordered as [`Routing::route`]; empty without `[escalation]`.
    pub fn escalation_units(&self, alarm: &AlarmFacts) -> Vec<String> {
        let Some(escalation) = &self.escalation else { return Vec::new() };
        let chosen = self.ordered(self.matching(alarm).into_iter().flat_map(|r| &r.escalate_to));
        if chosen.is_empty() { self.ordered(escalation.units.iter()) } else { chosen }
    }

    /// The name of the first group whose patterns match the camera.
    pub fn location(&self, agent_id: &str, camera_id: &str) -> Option<String> {
        self.groups
            .iter()
            .find(|g| matches(&g.cameras, agent_id, camera_id))
            .map(|g| g.name.clone())
    }

    fn matching(&self, alarm: &AlarmFacts) -> Vec<&Route> {
        // An out-of-range time leaves the minute unknown and an unknown severity ranks highest:
        // an alarm routed too widely does less harm than one routed nowhere.
        let minute = jiff::Timestamp::from_millisecond(alarm.event_time_ms)
            .map(|t| t.to_zoned(self.time_zone.clone()))
            .map(|z| z.hour() as u16 * 60 + z.minute() as u16)
            .ok();
        let rank = severity_rank(alarm.severity).unwrap_or(u8::MAX);
        let in_window = |&(start, end): &(u16, u16)| {
            minute.is_none_or(|m| {
                if start < end { start <= m && m < end } else { m >= start || m < end }
            })
        };
        let fits = |r: &Route| {
            r.cameras.as_ref().is_none_or(|c| matches(c, alarm.agent_id, alarm.camera_id))
                && (r.kinds.is_empty() || r.kinds.iter().any(|k| k == alarm.kind))
                && r.min_rank.is_none_or(|min| rank >= min)
                && (r.hours.is_empty() || r.hours.iter().any(in_window))
        };
        self.routes.iter().filter(|r| fits(r)).collect()
    }

    /// Deduplicates `ids` keeping first appearances, then orders them by unit type.
    fn ordered<'i>(&self, ids: impl Iterator<Item = &'i String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in ids {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        // A stable sort keeps first appearance within a type; the enum's order is the ranking.
        out.sort_by_key(|id| self.unit(id).map_or(u8::MAX, |u| u.unit_type as u8));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KINDS, raised};

    /// The example of the module documentation, plus a second police station and route.
    fn example() -> String {
        let source = include_str!("mod.rs");
        let start = source.find("//! ```toml\n").unwrap() + 12;
        let end = start + source[start..].find("//! ```").unwrap();
        source[start..end]
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("//!").unwrap().trim_start()))
            .collect()
    }

    const MORE: &str = "[[unit]]\nid = \"pcs-xiaohe\"\nname = \"小河派出所\"\ntype = \"police_station\"\n\
        [[route]]\nid = \"gate\"\ncameras = [\"xiaohe/gate\", \"qingshan/dam\"]\nunits = [\"patrol-qingshan\", \"pcs-xiaohe\"]\n";

    /// An alarm at `time` (e.g. "19:30") on 2026-07-01 in Asia/Shanghai.
    fn alarm(
        camera: &'static str,
        kind: &'static str,
        severity: &'static str,
        time: &str,
    ) -> AlarmFacts<'static> {
        let (agent_id, camera_id) = camera.split_once('/').unwrap();
        let time: jiff::civil::DateTime = format!("2026-07-01T{time}").parse().unwrap();
        let zoned = time.to_zoned(TimeZone::get("Asia/Shanghai").unwrap()).unwrap();
        AlarmFacts {
            agent_id,
            camera_id,
            kind,
            severity,
            event_time_ms: zoned.timestamp().as_millisecond(),
        }
    }

    #[test]
    fn the_shipped_county_example_routes_a_dusk_intrusion_at_the_reservoir() {
        let r =
            Routing::parse(include_str!("../../../deploy/center/routing.example.toml")).unwrap();
        let at = |time| alarm("qingshan-village/reservoir-east", "zone_intrusion", "medium", time);
        assert_eq!(r.route(&at("19:30")), ["pcs-qingshan", "patrol-qingshan-1"]);
        assert!(r.route(&at("12:00")).is_empty(), "daytime, medium: nobody");
        assert_eq!(r.escalation_units(&at("19:30")), ["township-qingshan"]);
        assert_eq!(
            r.location("qingshan-village", "reservoir-east").as_deref(),
            Some("青山村 水库东岸")
        );
        assert_eq!(
            r.route(&alarm("xiaohe-village/road", "camera_offline", "high", "03:00")),
            ["pcs-qingshan", "patrol-xiaohe"]
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let r = Routing::parse(&example()).unwrap();
        assert_eq!((r.units().len(), r.time_zone().iana_name()), (3, Some("Asia/Shanghai")));
        assert_eq!(r.escalation().unwrap().after, Duration::from_secs(300));
        let pcs = r.unit("pcs-qingshan").unwrap();
        assert_eq!(
            (pcs.unit_type, pcs.webhook.as_deref()),
            (UnitType::PoliceStation, Some("http://10.1.2.3/xl"))
        );
        let json = serde_json::to_string(pcs).unwrap();
        assert!(
            json.contains(r#""type":"police_station""#) && !json.contains("change-me"),
            "{json}"
        );
        assert!(!format!("{pcs:?}").contains("change-me"));
    }

    #[test]
    fn routes_by_group_pattern_kind_severity_and_hours() {
        let r = Routing::parse(&format!("{}{MORE}", example())).unwrap();
        let route = |camera, kind, severity, local| r.route(&alarm(camera, kind, severity, local));
        let both = ["pcs-qingshan", "patrol-qingshan"];
        assert_eq!(route("qingshan/reservoir-north", "zone_intrusion", "high", "19:30"), both);
        assert_eq!(route("qingshan/reservoir-north", "loitering", "medium", "02:00"), both);
        assert_eq!(
            route("xiaohe/gate", "loitering", "medium", "05:59"),
            ["pcs-qingshan", "pcs-xiaohe", "patrol-qingshan"]
        );
        assert!(route("qingshan/reservoir-north", "zone_intrusion", "high", "12:00").is_empty());
        assert!(route("qingshan/reservoir-north", "zone_intrusion", "high", "06:00").is_empty());
        assert!(route("qingshan/reservoir-north", "fire_smoke", "high", "19:30").is_empty());
        assert!(route("qingshan/reservoir-north", "zone_intrusion", "low", "19:30").is_empty());
        assert!(route("qingshan/road", "zone_intrusion", "high", "19:30").is_empty());
        // Police first although the route lists the patrol first.
        assert_eq!(
            route("xiaohe/gate", "camera_offline", "info", "12:00"),
            ["pcs-xiaohe", "patrol-qingshan"]
        );
        // Both routes match: deduplicated, police stations in order of first appearance.
        assert_eq!(
            route("qingshan/dam", "zone_intrusion", "medium", "19:30"),
            ["pcs-qingshan", "pcs-xiaohe", "patrol-qingshan"]
        );
        assert!(
            Routing::empty()
                .route(&alarm("qingshan/dam", "zone_intrusion", "high", "19:30"))
                .is_empty()
        );
    }

    #[test]
    fn escalation_goes_to_escalate_to_else_the_default() {
        let text = format!("{}{MORE}", example())
            .replace("units = [\"township-qingshan\"]", "units = [\"pcs-xiaohe\"]");
        let r = Routing::parse(&text).unwrap();
        assert_eq!(
            r.escalation_units(&alarm("qingshan/dam", "zone_intrusion", "high", "19:30")),
            ["township-qingshan"]
        );
        assert_eq!(
            r.escalation_units(&alarm("xiaohe/gate", "camera_offline", "high", "12:00")),
            ["pcs-xiaohe"]
        );
        let without = Routing::parse(&text[..text.find("[escalation]").unwrap()]).unwrap();
        assert!(without.escalation().is_none());
        assert!(
            without
                .escalation_units(&alarm("qingshan/dam", "zone_intrusion", "high", "19:30"))
                .is_empty()
        );
    }

    #[test]
    fn location_raised_and_the_watched_file() {
        let r = Routing::parse(&example()).unwrap();
        assert_eq!(r.location("qingshan", "reservoir-north").as_deref(), Some("青山水库"));
        assert_eq!(
            (r.location("qingshan", "dam").as_deref(), r.location("xiaohe", "gate")),
            (Some("青山水库"), None)
        );
        assert!(
            glob("a*b*c", "axxbyyc") && glob("*", "") && !glob("a*a", "a") && !glob("dam", "dam2")
        );
        assert_eq!(
            (severity_rank("info"), severity_rank("critical"), severity_rank("x")),
            (Some(1), Some(5), None)
        );
        assert_eq!(
            [raised("info"), raised("high"), raised("critical"), raised("bogus")],
            ["low", "critical", "critical", "critical"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routing.toml");
        assert!(Routing::open(&path).unwrap().current().units().is_empty(), "no file, no routing");
        std::fs::write(&path, example()).unwrap();
        assert_eq!(Routing::open(&path).unwrap().current().units().len(), 3);
    }

    #[test]
    fn the_gb28181_section_chooses_what_goes_up() {
        let all = Routing::empty();
        assert!(all.report_upward().takes("loitering", "info"));
        let chosen = "[gb28181]\nkinds = [\"zone_intrusion\", \"camera_offline\"]\nmin_severity = \"medium\"\n";
        let r = Routing::parse(chosen).unwrap();
        let up = r.report_upward();
        assert!(up.takes("zone_intrusion", "high") && up.takes("camera_offline", "medium"));
        assert!(!up.takes("zone_intrusion", "low"), "below min_severity");
        assert!(!up.takes("loitering", "critical"), "a kind not listed");
    }

    #[test]
    fn every_mistake_says_where_and_what() {
        let units = "[[unit]]\nid = \"pcs-qingshan\"\nname = \"青山派出所\"\ntype = \"police_station\"\n\n\
                     [[unit]]\nid = \"patrol-qingshan\"\nname = \"青山村网格员\"\ntype = \"village_patrol\"\n";
        let group = "[[group]]\nid = \"reservoir\"\nname = \"水库\"\ncameras = [\"qingshan/*\"]\n";
        let route = "[[route]]\nid = \"r\"\n";
        let cases = [
            ("[[route]]\nid = \"reservoir-dusk\"\nunits = [\"pcs-qingshan\", \"pcs-x\"]\n".to_owned(),
             "line 12, column 26: route \"reservoir-dusk\": no unit \"pcs-x\" (units: pcs-qingshan, patrol-qingshan)".to_owned()),
            (format!("{group}{route}groups = [\"lake\"]\nunits = [\"pcs-qingshan\"]\n"),
             "line 16, column 11: route \"r\": no group \"lake\" (groups: reservoir)".to_owned()),
            ("[[unit]]\nid = \"pcs-qingshan\"\nname = \"x\"\ntype = \"police_station\"\n".to_owned(),
             "line 11, column 6: unit id \"pcs-qingshan\" is used twice".to_owned()),
            (format!("{route}hours = [\"25:00-06:00\"]\nunits = [\"pcs-qingshan\"]\n"),
             "line 12, column 10: route \"r\": hours \"25:00-06:00\" is not HH:MM-HH:MM".to_owned()),
            (format!("{route}kinds = [\"intrusion\"]\nunits = [\"pcs-qingshan\"]\n"),
             format!("line 12, column 10: route \"r\": no rule kind \"intrusion\" (kinds: {})", KINDS.join(", "))),
            (format!("{route}min_severity = \"urgent\"\nunits = [\"pcs-qingshan\"]\n"),
             "line 12, column 16: route \"r\": no severity \"urgent\" (severities: info, low, medium, high, critical)".to_owned()),
            (format!("{route}units = []\n"), "line 12, column 9: route \"r\": units is empty (list at least one unit id)".to_owned()),
            ("[[unit]]\nid = \"u\"\nname = \"x\"\ntype = \"police_station\"\nwebhook = \"ftp://x\"\n".to_owned(),
             "line 14, column 11: unit \"u\": webhook \"ftp://x\" is not an http:// or https:// URL".to_owned()),
            ("[[unit]]\nid = \"u\"\nname = \"x\"\ntype = \"police_station\"\nwebhook_secret = \"s\"\n".to_owned(),
             "line 14, column 18: unit \"u\": webhook_secret without webhook (add webhook = \"https://...\" or remove it)".to_owned()),
            ("[escalation]\nafter_s = 0\n".to_owned(), "line 11, column 11: escalation: after_s must be at least 1 (seconds)".to_owned()),
            ("[supervision]\nclock_skew_s = 0\n".to_owned(), "line 11, column 16: supervision: clock_skew_s must be at least 1 (seconds)".to_owned()),
            ("[gb28181]\nkinds = [\"fire\"]\n".to_owned(), format!("line 11, column 10: gb28181: no rule kind \"fire\" (kinds: {})", KINDS.join(", "))),
            ("[gb28181]\nmin_severity = \"loud\"\n".to_owned(), "line 11, column 16: gb28181: no severity \"loud\" (severities: info, low, medium, high, critical)".to_owned()),
        ];
        let set =
            Routing::parse(&format!("{units}[supervision]\nreceive_within_s = 30\n")).unwrap();
        let expected =
            Supervision { receive_within: Duration::from_secs(30), ..Supervision::default() };
        assert_eq!(
            (set.supervision(), Routing::empty().supervision()),
            (expected, Supervision::default())
        );
        for (extra, expected) in cases {
            assert_eq!(Routing::parse(&format!("{units}{extra}")).unwrap_err(), expected);
        }
        let tz = Routing::parse(&format!("time_zone = \"Mars/Olympus\"\n{units}")).unwrap_err();
        assert_eq!(
            tz,
            "line 1, column 13: no time zone \"Mars/Olympus\" (an IANA name such as \"Asia/Shanghai\")"
        );
        // Serde's and toml's own messages already say where.
        for (text, says) in [
            (units.replace("village_patrol", "sheriff"), "unknown variant `sheriff`"),
            (format!("{units}colour = \"red\"\n"), "unknown field `colour`"),
            (format!("{units}[[route]\n"), "line 10"),
        ] {
            let err = Routing::parse(&text).unwrap_err();
            assert!(err.contains(says) && err.contains("line "), "{err}");
        }
    }
}
