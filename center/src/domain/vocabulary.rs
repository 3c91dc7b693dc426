//! The words alarms are described with, spelled as records, the API and `routing.toml` spell
//! them: rule kinds, severities (ranked), workflow statuses and the steps taken on an alarm.

use serde::{Deserialize, Serialize};
use xueliang_proto::{RuleKind, Severity};

/// Kinds as records name them: the contract's rule kinds, then the supervision events the
/// center raises itself (a box silent or back, alarms its outbox dropped, its clock off, the
/// center's disk running low, a dispatch that could not be delivered).
pub const KINDS: [&str; 15] = [
    "zone_intrusion",
    "line_crossing",
    "loitering",
    "crowding",
    "vehicle_stopped",
    "fire_smoke",
    "camera_offline",
    "camera_tamper",
    "camera_back",
    "agent_offline",
    "agent_back",
    "agent_dropped_alarms",
    "agent_clock_off",
    "center_disk_low",
    "dispatch_failed",
];

/// How many of [`KINDS`] are the contract's; the rest are the center's supervision events.
pub const CONTRACT_KINDS: usize = 9;

/// Severities as records name them, lowest first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// `RULE_KIND_ZONE_INTRUSION` → `zone_intrusion`.
fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_ascii_lowercase()
}

/// A contract's rule kind as records name it, e.g. `zone_intrusion`.
pub fn kind_name(kind: RuleKind) -> String {
    enum_name(kind.as_str_name(), "RULE_KIND_")
}

/// A contract's severity as records name it, e.g. `high`.
pub fn severity_name(severity: Severity) -> String {
    enum_name(severity.as_str_name(), "SEVERITY_")
}

/// The contract's rule kind a record names (unspecified for an unknown name).
pub fn rule_kind(name: &str) -> RuleKind {
    RuleKind::from_str_name(&format!("RULE_KIND_{}", name.to_ascii_uppercase()))
        .unwrap_or(RuleKind::Unspecified)
}

/// The contract's severity a record names (unspecified for an unknown name).
pub fn severity(name: &str) -> Severity {
    Severity::from_str_name(&format!("SEVERITY_{}", name.to_ascii_uppercase()))
        .unwrap_or(Severity::Unspecified)
}

/// Rank of a severity: info 1, low 2, medium 3, high 4, critical 5.
pub fn severity_rank(severity: &str) -> Option<u8> {
    SEVERITIES.iter().position(|s| *s == severity).map(|i| i as u8 + 1)
}

/// The severity one level higher, capped at (and for an unknown one) `critical`.
pub fn raised(severity: &str) -> &'static str {
    severity_rank(severity)
        .map_or("critical", |rank| SEVERITIES[usize::from(rank).min(SEVERITIES.len() - 1)])
}

/// Where an alarm is in its workflow (ordered as the workflow goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Arrived; nobody has acknowledged it yet.
    New,
    /// A duty officer has seen it.
    Acknowledged,
    /// Sent to one or more responder units.
    Dispatched,
    /// Dealt with.
    Resolved,
    /// Nothing happened: a false alarm.
    FalseAlarm,
}

impl Status {
    /// Every status, for validation and documentation.
    pub const ALL: [Status; 5] = [
        Status::New,
        Status::Acknowledged,
        Status::Dispatched,
        Status::Resolved,
        Status::FalseAlarm,
    ];

    /// Its name in the API and the store, e.g. `false_alarm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::Dispatched => "dispatched",
            Status::Resolved => "resolved",
            Status::FalseAlarm => "false_alarm",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A step someone (or the center) takes on an alarm; named as in its URL everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A duty officer has seen it.
    Acknowledge,
    /// Send it to responder units.
    Dispatch,
    /// It was dealt with.
    Resolve,
    /// Nothing happened.
    FalseAlarm,
    /// Left unacknowledged too long: raised and sent to the second route (by the center).
    Escalate,
    /// A unit it was dispatched to did not mark it received in time: raised and sent to the
    /// second route (by the center, once per unit).
    Overdue,
    /// A unit it was dispatched to has received it (by the unit's user).
    Receive,
    /// The unit is on the scene.
    OnScene,
    /// The unit has finished, with its feedback in the note.
    Close,
}

/// The steps the center's people take on a case, in the order the console offers them.
pub const CENTER_STEPS: [Action; 4] =
    [Action::Acknowledge, Action::Dispatch, Action::Resolve, Action::FalseAlarm];

/// The steps a responder unit takes on its dispatch, in their order.
pub const UNIT_STEPS: [Action; 3] = [Action::Receive, Action::OnScene, Action::Close];

impl Action {
    /// Its name in URLs and the audit log, e.g. `false-alarm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Dispatch => "dispatch",
            Action::Resolve => "resolve",
            Action::FalseAlarm => "false-alarm",
            Action::Escalate => "escalate",
            Action::Overdue => "overdue",
            Action::Receive => "receive",
            Action::OnScene => "on-scene",
            Action::Close => "close",
        }
    }

    /// The action a person may take named `name` in a URL (escalation is not one).
    pub fn from_url(name: &str) -> Option<Self> {
        CENTER_STEPS.into_iter().chain(UNIT_STEPS).find(|a| a.as_str() == name)
    }

    /// Whether a responder unit takes this step on its dispatch (rather than the center).
    pub fn by_unit(self) -> bool {
        UNIT_STEPS.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_of_kinds_and_severities_are_those_of_the_contract() {
        let kinds: Vec<String> = (1..)
            .map_while(|k| RuleKind::try_from(k).ok())
            .map(|k| enum_name(k.as_str_name(), "RULE_KIND_"))
            .collect();
        assert_eq!(kinds, KINDS[..CONTRACT_KINDS]);
        let severities: Vec<String> = (1..)
            .map_while(|s| Severity::try_from(s).ok())
            .map(|s| enum_name(s.as_str_name(), "SEVERITY_"))
            .collect();
        assert_eq!(severities, SEVERITIES);
    }

    #[test]
    fn names_go_back_to_the_contract() {
        for k in (0..).map_while(|k| RuleKind::try_from(k).ok()) {
            assert_eq!(rule_kind(&kind_name(k)), k);
        }
        for s in (0..).map_while(|s| Severity::try_from(s).ok()) {
            assert_eq!(severity(&severity_name(s)), s);
        }
        assert_eq!(
            (rule_kind("bogus"), severity("bogus")),
            (RuleKind::Unspecified, Severity::Unspecified)
        );
    }
}
