//! Reading `routing.toml` (its format is documented on the folder): every mistake is refused
//! with where it is (`line L, column C: `) and what to fix, since a county's administrator
//! edits the file by hand.

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use toml::Spanned;

use super::{
    Escalation, Group, Pattern, ReportUpward, Route, Routing, Supervision, Unit, UnitType,
};
use crate::domain::{KINDS, SEVERITIES, severity_rank};
use crate::watched_file::at;

type List = Vec<Spanned<String>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    time_zone: Option<Spanned<String>>,
    #[serde(default)]
    unit: Vec<UnitToml>,
    #[serde(default)]
    group: Vec<GroupToml>,
    #[serde(default)]
    route: Vec<RouteToml>,
    escalation: Option<EscalationToml>,
    supervision: Option<SupervisionToml>,
    gb28181: Option<ReportToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportToml {
    #[serde(default)]
    kinds: List,
    min_severity: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitToml {
    id: Spanned<String>,
    name: String,
    #[serde(rename = "type")]
    unit_type: UnitType,
    webhook: Option<Spanned<String>>,
    webhook_secret: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    id: Spanned<String>,
    name: String,
    cameras: List,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    id: Spanned<String>,
    #[serde(default)]
    groups: List,
    #[serde(default)]
    cameras: List,
    #[serde(default)]
    kinds: List,
    min_severity: Option<Spanned<String>>,
    #[serde(default)]
    hours: List,
    units: Spanned<List>,
    #[serde(default)]
    escalate_to: List,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationToml {
    after_s: Spanned<u64>,
    #[serde(default)]
    units: List,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisionToml {
    agent_silent_after_s: Option<Spanned<u64>>,
    clock_skew_s: Option<Spanned<u64>>,
    receive_within_s: Option<Spanned<u64>>,
    resend_dispatch_s: Option<Spanned<u64>>,
}

/// A `[supervision]` time in seconds, at least 1, or `default` when absent.
fn seconds(
    text: &str,
    name: &str,
    value: &Option<Spanned<u64>>,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => {
            Err(at(text, v.span(), format!("supervision: {name} must be at least 1 (seconds)")))
        }
        Some(v) => Ok(Duration::from_secs(*v.get_ref())),
    }
}

/// `HH:MM-HH:MM` as minutes of the day; the end may be `24:00`.
fn window(s: &str) -> Option<(u16, u16)> {
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.split_once(':').filter(|(h, m)| h.len() == 2 && m.len() == 2)?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h, m) == (24, 0))).then_some(h * 60 + m)
    };
    let (start, end) = s.split_once('-')?;
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < 24 * 60).then_some((start, end))
}

fn listing(names: &[&str]) -> String {
    if names.is_empty() { "none defined".to_owned() } else { names.join(", ") }
}

/// Checks an id for form and uniqueness; `seen` collects the ids read so far.
fn check_id<'t>(
    text: &str,
    what: &str,
    id: &'t Spanned<String>,
    seen: &mut Vec<&'t str>,
) -> Result<(), String> {
    let name = id.get_ref().as_str();
    let valid = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(at(
            text,
            id.span(),
            format!("{what} id {name:?} is not 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    if seen.contains(&name) {
        return Err(at(text, id.span(), format!("{what} id {name:?} is used twice")));
    }
    seen.push(name);
    Ok(())
}

fn patterns(text: &str, owner: &str, list: &List) -> Result<Vec<Pattern>, String> {
    let one = |p: &Spanned<String>| match p.get_ref().split_once('/') {
        Some((a, c)) if !a.is_empty() && !c.is_empty() && !c.contains('/') => {
            Ok((a.to_owned(), c.to_owned()))
        }
        _ => Err(at(
            text,
            p.span(),
            format!(
                "{owner}: camera pattern {:?} is not \"agent/camera\" (e.g. \"qingshan/*\")",
                p.get_ref()
            ),
        )),
    };
    list.iter().map(one).collect()
}

/// Checks that every kind `list` names exists.
fn check_kinds(text: &str, owner: &str, list: &List) -> Result<(), String> {
    match list.iter().find(|k| !KINDS.contains(&k.get_ref().as_str())) {
        None => Ok(()),
        Some(k) => {
            let kinds = KINDS.join(", ");
            Err(at(
                text,
                k.span(),
                format!("{owner}: no rule kind {:?} (kinds: {kinds})", k.get_ref()),
            ))
        }
    }
}

/// The rank of a `min_severity`, if given.
fn min_rank(text: &str, owner: &str, s: &Option<Spanned<String>>) -> Result<Option<u8>, String> {
    let Some(s) = s else { return Ok(None) };
    severity_rank(s.get_ref()).map(Some).ok_or_else(|| {
        let listed = SEVERITIES.join(", ");
        at(text, s.span(), format!("{owner}: no severity {:?} (severities: {listed})", s.get_ref()))
    })
}

fn unit_ids(text: &str, owner: &str, ids: &List, units: &[&str]) -> Result<Vec<String>, String> {
    let known = |u: &Spanned<String>| match units.contains(&u.get_ref().as_str()) {
        true => Ok(u.get_ref().clone()),
        false => Err(at(
            text,
            u.span(),
            format!("{owner}: no unit {:?} (units: {})", u.get_ref(), listing(units)),
        )),
    };
    ids.iter().map(known).collect()
}

impl Routing {
    /// Parses and checks `routing.toml`; the error says where (`line L, column C: `) and what to fix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileToml =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let time_zone = match &file.time_zone {
            None => Self::empty().time_zone,
            Some(tz) => TimeZone::get(tz.get_ref()).map_err(|_| {
                let hint = "an IANA name such as \"Asia/Shanghai\"";
                at(text, tz.span(), format!("no time zone {:?} ({hint})", tz.get_ref()))
            })?,
        };

        let (mut unit_names, mut units) = (Vec::new(), Vec::new());
        for u in &file.unit {
            check_id(text, "unit", &u.id, &mut unit_names)?;
            let owner = format!("unit {:?}", u.id.get_ref());
            if let Some(hook) = &u.webhook {
                let url = hook.get_ref();
                if !["http://", "https://"]
                    .iter()
                    .any(|p| url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
                {
                    let message =
                        format!("{owner}: webhook {url:?} is not an http:// or https:// URL");
                    return Err(at(text, hook.span(), message));
                }
            }
            if let (Some(secret), None) = (&u.webhook_secret, &u.webhook) {
                let hint = "add webhook = \"https://...\" or remove it";
                return Err(at(
                    text,
                    secret.span(),
                    format!("{owner}: webhook_secret without webhook ({hint})"),
                ));
            }
            units.push(Unit {
                id: u.id.get_ref().clone(),
                name: u.name.clone(),
                unit_type: u.unit_type,
                webhook: u.webhook.as_ref().map(|w| w.get_ref().clone()),
                webhook_secret: u.webhook_secret.as_ref().map(|s| s.get_ref().clone()),
            });
        }

        let (mut group_names, mut groups) = (Vec::new(), Vec::new());
        for g in &file.group {
            check_id(text, "group", &g.id, &mut group_names)?;
            let cameras = patterns(text, &format!("group {:?}", g.id.get_ref()), &g.cameras)?;
            groups.push(Group { name: g.name.clone(), cameras });
        }

        let (mut route_names, mut routes) = (Vec::new(), Vec::new());
        for r in &file.route {
            check_id(text, "route", &r.id, &mut route_names)?;
            let owner = format!("route {:?}", r.id.get_ref());
            let mut cameras = Vec::new();
            for g in &r.groups {
                let Some(i) = group_names.iter().position(|n| n == g.get_ref()) else {
                    let listed = listing(&group_names);
                    return Err(at(
                        text,
                        g.span(),
                        format!("{owner}: no group {:?} (groups: {listed})", g.get_ref()),
                    ));
                };
                cameras.extend(groups[i].cameras.iter().cloned());
            }
            cameras.extend(patterns(text, &owner, &r.cameras)?);
            check_kinds(text, &owner, &r.kinds)?;
            let min_rank = min_rank(text, &owner, &r.min_severity)?;
            let mut hours = Vec::new();
            for h in &r.hours {
                let bad = |why: &str| {
                    at(text, h.span(), format!("{owner}: hours {:?} {why}", h.get_ref()))
                };
                let (start, end) = window(h.get_ref()).ok_or_else(|| bad("is not HH:MM-HH:MM"))?;
                if start == end {
                    return Err(bad("is empty (start equals end); leave hours out for all day"));
                }
                hours.push((start, end));
            }
            if r.units.get_ref().is_empty() {
                return Err(at(
                    text,
                    r.units.span(),
                    format!("{owner}: units is empty (list at least one unit id)"),
                ));
            }
            routes.push(Route {
                cameras: (!r.groups.is_empty() || !r.cameras.is_empty()).then_some(cameras),
                kinds: r.kinds.iter().map(|k| k.get_ref().clone()).collect(),
                min_rank,
                hours,
                units: unit_ids(text, &owner, r.units.get_ref(), &unit_names)?,
                escalate_to: unit_ids(text, &owner, &r.escalate_to, &unit_names)?,
            });
        }

        let escalation = match &file.escalation {
            None => None,
            Some(e) if *e.after_s.get_ref() == 0 => {
                return Err(at(
                    text,
                    e.after_s.span(),
                    "escalation: after_s must be at least 1 (seconds)".to_owned(),
                ));
            }
            Some(e) => Some(Escalation {
                after: Duration::from_secs(*e.after_s.get_ref()),
                units: unit_ids(text, "escalation", &e.units, &unit_names)?,
            }),
        };
        let d = Supervision::default();
        let supervision = match &file.supervision {
            None => d,
            Some(s) => Supervision {
                silent_after: seconds(
                    text,
                    "agent_silent_after_s",
                    &s.agent_silent_after_s,
                    d.silent_after,
                )?,
                clock_skew: seconds(text, "clock_skew_s", &s.clock_skew_s, d.clock_skew)?,
                receive_within: seconds(
                    text,
                    "receive_within_s",
                    &s.receive_within_s,
                    d.receive_within,
                )?,
                resend_every: seconds(
                    text,
                    "resend_dispatch_s",
                    &s.resend_dispatch_s,
                    d.resend_every,
                )?,
            },
        };
        let report_upward = match &file.gb28181 {
            None => ReportUpward::default(),
            Some(r) => {
                check_kinds(text, "gb28181", &r.kinds)?;
                ReportUpward {
                    kinds: r.kinds.iter().map(|k| k.get_ref().clone()).collect(),
                    min_rank: min_rank(text, "gb28181", &r.min_severity)?,
                }
            }
        };
        Ok(Self { time_zone, units, groups, routes, escalation, supervision, report_upward })
    }
}
