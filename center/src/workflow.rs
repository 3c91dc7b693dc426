//! The case workflow of an alarm: new → acknowledged → dispatched → resolved or false alarm.
//! Every step is kept on the alarm with who took it, when, and their note; an illegal step is
//! refused with what to do instead. Escalation is a step too, taken by the center itself.

use serde::{Deserialize, Serialize};

use crate::store::AlarmRecord;

/// Where an alarm is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub const ALL: [Status; 5] = [Status::New, Status::Acknowledged, Status::Dispatched, Status::Resolved, Status::FalseAlarm];

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
}

impl Action {
    /// Its name in URLs and the audit log, e.g. `false-alarm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Dispatch => "dispatch",
            Action::Resolve => "resolve",
            Action::FalseAlarm => "false-alarm",
            Action::Escalate => "escalate",
        }
    }

    /// The action a person may take named `name` in a URL (escalation is not one).
    pub fn from_url(name: &str) -> Option<Self> {
        [Action::Acknowledge, Action::Dispatch, Action::Resolve, Action::FalseAlarm]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
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

/// A step that is not allowed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What is asked of [`apply`].
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The step.
    pub action: Action,
    /// Who takes it.
    pub by: &'a str,
    /// When, UTC ms.
    pub at_ms: i64,
    /// Their note.
    pub note: &'a str,
    /// For dispatch and escalation: the units.
    pub units: &'a [String],
}

/// Takes the step on `record`, or says why it may not be taken now.
pub fn apply(record: &mut AlarmRecord, req: &Request) -> Result<(), Refused> {
    use Status::*;
    let from = record.status;
    let refuse = |hint: &str| {
        let last = record.timeline.last().map(|s| format!(" (by {})", s.by)).unwrap_or_default();
        Err(Refused(format!("alarm {} is {}{last}: it cannot be {}; {hint}", record.id, from.as_str(), past(req.action))))
    };
    let new_units: Vec<String> = match req.action {
        Action::Dispatch | Action::Escalate => req.units.iter().filter(|u| !record.dispatched_to.contains(u)).cloned().collect(),
        _ => Vec::new(),
    };
    let to = match (req.action, from) {
        (_, Resolved | FalseAlarm) => return refuse("it is closed"),
        (Action::Acknowledge, New) => Acknowledged,
        (Action::Acknowledge, _) => return refuse("it was acknowledged already"),
        (Action::Dispatch | Action::Resolve | Action::FalseAlarm, New) => return refuse("acknowledge it first"),
        (Action::Dispatch, Acknowledged | Dispatched) => {
            if req.units.is_empty() {
                return Err(Refused("name at least one unit to dispatch to".into()));
            }
            if new_units.is_empty() {
                return Err(Refused(format!("alarm {} was dispatched to {} already", record.id, req.units.join(", "))));
            }
            Dispatched
        }
        (Action::Resolve, _) => Resolved,
        (Action::FalseAlarm, _) => FalseAlarm,
        (Action::Escalate, New) if !record.escalated => New,
        (Action::Escalate, _) => return refuse("only a new alarm escalates, once"),
    };
    if req.action == Action::Escalate {
        record.escalated = true;
        record.severity = crate::routing::raised(&record.severity).to_owned();
    }
    record.dispatched_to.extend(new_units.iter().cloned());
    record.status = to;
    record.timeline.push(Step {
        action: req.action,
        status: to,
        by: req.by.to_owned(),
        at_ms: req.at_ms,
        note: req.note.to_owned(),
        units: new_units,
    });
    Ok(())
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Acknowledge => "acknowledged",
        Action::Dispatch => "dispatched",
        Action::Resolve => "resolved",
        Action::FalseAlarm => "marked a false alarm",
        Action::Escalate => "escalated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::record;

    fn step(r: &mut AlarmRecord, action: Action, units: &[&str]) -> Result<(), Refused> {
        let units: Vec<String> = units.iter().map(|u| u.to_string()).collect();
        apply(r, &Request { action, by: "zhang", at_ms: 7, note: "seen", units: &units })
    }

    #[test]
    fn the_normal_path_records_every_step() {
        let mut r = record("a1");
        step(&mut r, Action::Acknowledge, &["ignored"]).unwrap();
        step(&mut r, Action::Dispatch, &["pcs-1"]).unwrap();
        step(&mut r, Action::Dispatch, &["pcs-1", "patrol-2"]).unwrap();
        step(&mut r, Action::Resolve, &[]).unwrap();
        assert_eq!(r.status, Status::Resolved);
        assert_eq!(r.dispatched_to, ["pcs-1", "patrol-2"]);
        let actions: Vec<_> = r.timeline.iter().map(|s| (s.action, s.status, s.units.clone())).collect();
        assert_eq!(
            actions,
            [
                (Action::Acknowledge, Status::Acknowledged, vec![]),
                (Action::Dispatch, Status::Dispatched, vec!["pcs-1".to_string()]),
                (Action::Dispatch, Status::Dispatched, vec!["patrol-2".to_string()]),
                (Action::Resolve, Status::Resolved, vec![]),
            ]
        );
        assert!(r.timeline.iter().all(|s| s.by == "zhang" && s.note == "seen" && s.at_ms == 7));
    }

    #[test]
    fn illegal_steps_are_refused_with_what_to_do() {
        let mut r = record("a1");
        assert_eq!(step(&mut r, Action::Resolve, &[]).unwrap_err().0, "alarm a1 is new: it cannot be resolved; acknowledge it first");
        step(&mut r, Action::Acknowledge, &[]).unwrap();
        assert_eq!(
            step(&mut r, Action::Acknowledge, &[]).unwrap_err().0,
            "alarm a1 is acknowledged (by zhang): it cannot be acknowledged; it was acknowledged already"
        );
        assert_eq!(step(&mut r, Action::Dispatch, &[]).unwrap_err().0, "name at least one unit to dispatch to");
        step(&mut r, Action::FalseAlarm, &[]).unwrap();
        assert_eq!(
            step(&mut r, Action::Dispatch, &["pcs-1"]).unwrap_err().0,
            "alarm a1 is false_alarm (by zhang): it cannot be dispatched; it is closed"
        );
        assert_eq!(r.timeline.len(), 2, "refused steps leave no trace on the alarm");
    }

    #[test]
    fn escalation_raises_the_severity_once_and_keeps_the_alarm_new() {
        let mut r = record("a1");
        step(&mut r, Action::Escalate, &["township-1"]).unwrap();
        assert_eq!((r.status, r.severity.as_str(), r.escalated), (Status::New, "critical", true));
        assert_eq!(r.dispatched_to, ["township-1"]);
        assert!(step(&mut r, Action::Escalate, &["township-1"]).is_err());
        assert_eq!(Status::parse("false_alarm"), Some(Status::FalseAlarm));
        assert_eq!(Action::from_url("false-alarm"), Some(Action::FalseAlarm));
        assert_eq!(Action::from_url("escalate"), None);
    }
}
