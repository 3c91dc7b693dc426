//! The case workflow of an alarm: new → acknowledged → dispatched → resolved or false alarm.
//! Every step is kept on the alarm with who took it, when, and their note; an illegal step is
//! refused with what to do instead. Escalation is a step too, taken by the center itself.
//! Pure: the cases service runs [`apply`] inside a store transaction.

use super::alarm::{AlarmRecord, Step};
use super::vocabulary::{Action, CENTER_STEPS, Status, UNIT_STEPS, raised};

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
    /// For dispatch, escalation and overdue: the units it goes to; for a unit's step: that
    /// unit.
    pub units: &'a [String],
    /// For overdue: the unit that did not mark it received in time.
    pub late: Option<&'a str>,
}

/// The steps a tier above may take on an event forwarded from below: send its own units (who
/// then take their own steps on it). The rest is the county's.
pub const FORWARDED_STEPS: [Action; 1] = [Action::Dispatch];

/// The last step `unit` took on its dispatch of `record` (from this center), if any.
pub fn unit_progress(record: &AlarmRecord, unit: &str) -> Option<Action> {
    record
        .steps_here()
        .iter()
        .rev()
        .find(|s| s.action.by_unit() && s.units.iter().any(|u| u == unit))
        .map(|s| s.action)
}

/// Where a step of the center's leads from `from`, or the hint why it may not be taken now.
/// The one table of the center's transitions: [`apply`] and [`steps_allowed`] both read it.
fn transition(action: Action, from: Status, escalated: bool) -> Result<Status, &'static str> {
    use Status::*;
    match (action, from) {
        // A unit's step leaves the status as it is (see `unit_step`).
        (Action::Receive | Action::OnScene | Action::Close, _) => Ok(from),
        (_, Resolved | FalseAlarm) => Err("it is closed"),
        (Action::Acknowledge, New) => Ok(Acknowledged),
        (Action::Acknowledge, _) => Err("it was acknowledged already"),
        (Action::Dispatch | Action::Resolve | Action::FalseAlarm, New) => {
            Err("acknowledge it first")
        }
        (Action::Dispatch, _) => Ok(Dispatched),
        (Action::Resolve, _) => Ok(Resolved),
        (Action::FalseAlarm, _) => Ok(FalseAlarm),
        (Action::Escalate, New) if !escalated => Ok(New),
        (Action::Escalate, _) => Err("only a new alarm escalates, once"),
        (Action::Overdue, _) => Ok(from),
    }
}

/// Whether a unit whose last step on its dispatch was `done` may take `action` next: receive,
/// then on scene (may be skipped), then close.
fn unit_may(action: Action, done: Option<Action>) -> bool {
    match action {
        Action::Receive => done.is_none(),
        Action::OnScene => done == Some(Action::Receive),
        _ => matches!(done, Some(Action::Receive | Action::OnScene)),
    }
}

/// The steps the center's people may take on an alarm with `status`, in the order offered.
pub fn steps_allowed(status: Status) -> Vec<Action> {
    CENTER_STEPS.into_iter().filter(|a| transition(*a, status, false).is_ok()).collect()
}

/// The steps a unit whose last step on its dispatch was `done` may take next, in their order.
pub fn unit_steps_allowed(done: Option<Action>) -> Vec<Action> {
    UNIT_STEPS.into_iter().filter(|a| unit_may(*a, done)).collect()
}

/// Takes the step on `record`, or says why it may not be taken now.
pub fn apply(record: &mut AlarmRecord, req: &Request) -> Result<(), Refused> {
    if req.action.by_unit() {
        return unit_step(record, req);
    }
    // The county's duty officers act on its events; the tiers above watch them, and may send
    // their own units.
    if let Some(f) = &record.forwarded {
        if !FORWARDED_STEPS.contains(&req.action) {
            return Err(Refused(format!(
                "alarm {} is county {}'s, forwarded here: its duty officers act on it (here it \
                 may be dispatched to this center's own units)",
                record.id, f.county
            )));
        }
        return own_dispatch(record, req);
    }
    let from = record.status;
    let refuse = |hint: &str| {
        let last = record.timeline.last().map(|s| format!(" (by {})", s.by)).unwrap_or_default();
        Err(Refused(format!(
            "alarm {} is {}{last}: it cannot be {}; {hint}",
            record.id,
            from.as_str(),
            past(req.action)
        )))
    };
    let new_units: Vec<String> = match req.action {
        Action::Dispatch | Action::Escalate | Action::Overdue => {
            req.units.iter().filter(|u| !record.dispatched_to.contains(u)).cloned().collect()
        }
        _ => Vec::new(),
    };
    let to = match transition(req.action, from, record.escalated) {
        Ok(to) => to,
        Err(hint) => return refuse(hint),
    };
    if req.action == Action::Dispatch {
        dispatch_to(&record.id, &record.dispatched_to, req.units)?;
    }
    let mut sent = new_units.clone();
    match req.action {
        Action::Escalate => {
            record.escalated = true;
            record.severity = raised(&record.severity).to_owned();
        }
        Action::Overdue => {
            let late = overdue(record, req.late)?;
            record.overdue.push(late.to_owned());
            record.severity = raised(&record.severity).to_owned();
            // The late unit is sent it again, first.
            sent.insert(0, late.to_owned());
        }
        _ => {}
    }
    record.dispatched_to.extend(new_units);
    record.status = to;
    record.timeline.push(Step {
        action: req.action,
        status: to,
        by: req.by.to_owned(),
        at_ms: req.at_ms,
        note: req.note.to_owned(),
        units: sent,
    });
    Ok(())
}

/// The units a dispatch of alarm `id` to `units` sends it to (those of them not in `already`),
/// or why it cannot be dispatched.
fn dispatch_to(id: &str, already: &[String], units: &[String]) -> Result<Vec<String>, Refused> {
    if units.is_empty() {
        return Err(Refused("name at least one unit to dispatch to".into()));
    }
    let new: Vec<String> = units.iter().filter(|u| !already.contains(u)).cloned().collect();
    if new.is_empty() {
        return Err(Refused(format!("alarm {id} was dispatched to {} already", units.join(", "))));
    }
    Ok(new)
}

/// Dispatches an event forwarded from below to this center's own units: kept apart from the
/// county's case, whose status it leaves as it is.
fn own_dispatch(record: &mut AlarmRecord, req: &Request) -> Result<(), Refused> {
    let new_units = dispatch_to(&record.id, &record.own.dispatched_to, req.units)?;
    let own = &mut record.own;
    own.dispatched_to.extend(new_units.iter().cloned());
    own.timeline.push(Step {
        action: req.action,
        status: record.status,
        by: req.by.to_owned(),
        at_ms: req.at_ms,
        note: req.note.to_owned(),
        units: new_units,
    });
    Ok(())
}

/// The unit an overdue step names, if it was dispatched, has not received it and was not
/// found late before (a unit is late once per alarm).
fn overdue<'r>(record: &AlarmRecord, late: Option<&'r str>) -> Result<&'r str, Refused> {
    let Some(late) = late else {
        return Err(Refused("an overdue step names the late unit".into()));
    };
    if !record.dispatched_to.iter().any(|u| u == late) {
        return Err(Refused(format!("alarm {} was not dispatched to {late}", record.id)));
    }
    if unit_progress(record, late).is_some() {
        return Err(Refused(format!("{late} has received alarm {}", record.id)));
    }
    if record.overdue.iter().any(|u| u == late) {
        return Err(Refused(format!("{late} was found late on alarm {} before", record.id)));
    }
    Ok(late)
}

/// A responder unit's step on its dispatch: receive, then on scene (may be skipped), then close.
/// The alarm's status stays: the duty officer resolves the case.
fn unit_step(record: &mut AlarmRecord, req: &Request) -> Result<(), Refused> {
    let [unit] = req.units else {
        return Err(Refused("a unit's step names exactly its unit".into()));
    };
    if !record.units_here().contains(unit) {
        return Err(Refused(format!("alarm {} was not dispatched to {unit}", record.id)));
    }
    let done = unit_progress(record, unit);
    if !unit_may(req.action, done) {
        let state = done.map_or("not received it yet", |a| match a {
            Action::Receive => "received it",
            Action::OnScene => "is on the scene",
            _ => "closed it",
        });
        return Err(Refused(format!(
            "{unit} {state}: it cannot mark alarm {} {}",
            record.id,
            past(req.action)
        )));
    }
    let step = Step {
        action: req.action,
        status: record.status,
        by: req.by.to_owned(),
        at_ms: req.at_ms,
        note: req.note.to_owned(),
        units: vec![unit.clone()],
    };
    match record.forwarded {
        Some(_) => record.own.timeline.push(step),
        None => record.timeline.push(step),
    }
    Ok(())
}

fn past(action: Action) -> &'static str {
    match action {
        Action::Acknowledge => "acknowledged",
        Action::Dispatch => "dispatched",
        Action::Resolve => "resolved",
        Action::FalseAlarm => "marked a false alarm",
        Action::Escalate => "escalated",
        Action::Overdue => "found overdue",
        Action::Receive => "received",
        Action::OnScene => "on scene",
        Action::Close => "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alarm::tests::record;

    fn step(r: &mut AlarmRecord, action: Action, units: &[&str]) -> Result<(), Refused> {
        late_step(r, action, units, None)
    }

    fn late_step(
        r: &mut AlarmRecord,
        action: Action,
        units: &[&str],
        late: Option<&str>,
    ) -> Result<(), Refused> {
        let units: Vec<String> = units.iter().map(|u| u.to_string()).collect();
        apply(r, &Request { action, by: "zhang", at_ms: 7, note: "seen", units: &units, late })
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
        let actions: Vec<_> =
            r.timeline.iter().map(|s| (s.action, s.status, s.units.clone())).collect();
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
        assert_eq!(
            step(&mut r, Action::Resolve, &[]).unwrap_err().0,
            "alarm a1 is new: it cannot be resolved; acknowledge it first"
        );
        step(&mut r, Action::Acknowledge, &[]).unwrap();
        assert_eq!(
            step(&mut r, Action::Acknowledge, &[]).unwrap_err().0,
            "alarm a1 is acknowledged (by zhang): it cannot be acknowledged; it was acknowledged already"
        );
        assert_eq!(
            step(&mut r, Action::Dispatch, &[]).unwrap_err().0,
            "name at least one unit to dispatch to"
        );
        step(&mut r, Action::FalseAlarm, &[]).unwrap();
        assert_eq!(
            step(&mut r, Action::Dispatch, &["pcs-1"]).unwrap_err().0,
            "alarm a1 is false_alarm (by zhang): it cannot be dispatched; it is closed"
        );
        assert_eq!(r.timeline.len(), 2, "refused steps leave no trace on the alarm");
    }

    #[test]
    fn a_unit_receives_goes_on_scene_and_closes_its_own_dispatch_in_order() {
        let mut r = record("a1");
        assert_eq!(
            step(&mut r, Action::Receive, &["pcs-1"]).unwrap_err().0,
            "alarm a1 was not dispatched to pcs-1"
        );
        step(&mut r, Action::Acknowledge, &[]).unwrap();
        step(&mut r, Action::Dispatch, &["pcs-1", "patrol-2"]).unwrap();
        assert_eq!(
            step(&mut r, Action::Close, &["pcs-1"]).unwrap_err().0,
            "pcs-1 not received it yet: it cannot mark alarm a1 closed"
        );
        step(&mut r, Action::Receive, &["pcs-1"]).unwrap();
        assert_eq!(
            step(&mut r, Action::Receive, &["pcs-1"]).unwrap_err().0,
            "pcs-1 received it: it cannot mark alarm a1 received"
        );
        step(&mut r, Action::Receive, &["patrol-2"]).unwrap();
        step(&mut r, Action::OnScene, &["pcs-1"]).unwrap();
        step(&mut r, Action::Close, &["pcs-1"]).unwrap();
        assert_eq!(
            (unit_progress(&r, "pcs-1"), unit_progress(&r, "patrol-2")),
            (Some(Action::Close), Some(Action::Receive))
        );
        assert_eq!(r.status, Status::Dispatched, "the duty officer resolves the case");
        assert_eq!(Action::from_url("on-scene"), Some(Action::OnScene));
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

    #[test]
    fn a_unit_late_to_receive_is_found_overdue_once_and_the_alarm_goes_up_and_on() {
        let mut r = record("a1");
        step(&mut r, Action::Acknowledge, &[]).unwrap();
        step(&mut r, Action::Dispatch, &["pcs-1", "patrol-2"]).unwrap();
        step(&mut r, Action::Receive, &["patrol-2"]).unwrap();
        assert_eq!(
            late_step(&mut r, Action::Overdue, &[], Some("patrol-2")).unwrap_err().0,
            "patrol-2 has received alarm a1"
        );
        late_step(&mut r, Action::Overdue, &["township-1"], Some("pcs-1")).unwrap();
        assert_eq!((r.status, r.severity.as_str()), (Status::Dispatched, "critical"));
        assert_eq!(r.dispatched_to, ["pcs-1", "patrol-2", "township-1"]);
        assert_eq!(r.overdue, ["pcs-1"]);
        let last = r.timeline.last().unwrap();
        assert_eq!(last.units, ["pcs-1", "township-1"], "sent again, and to the second route");
        assert_eq!(
            late_step(&mut r, Action::Overdue, &[], Some("pcs-1")).unwrap_err().0,
            "pcs-1 was found late on alarm a1 before"
        );
        step(&mut r, Action::Resolve, &[]).unwrap();
        assert!(late_step(&mut r, Action::Overdue, &[], Some("township-1")).is_err());
    }

    #[test]
    fn the_steps_allowed_follow_the_transitions() {
        use Action::*;
        let allowed: Vec<_> = Status::ALL.into_iter().map(steps_allowed).collect();
        assert_eq!(
            allowed,
            [
                vec![Acknowledge],
                vec![Dispatch, Resolve, FalseAlarm],
                vec![Dispatch, Resolve, FalseAlarm],
                vec![],
                vec![],
            ]
        );
        let next: Vec<_> =
            [None, Some(Receive), Some(OnScene), Some(Close)].map(unit_steps_allowed).into();
        assert_eq!(next, [vec![Receive], vec![OnScene, Close], vec![Close], vec![]]);
    }

    #[test]
    fn a_tier_above_sends_its_own_units_and_leaves_the_countys_case_alone() {
        use crate::domain::Forwarded;
        let mut r = record("a1");
        step(&mut r, Action::Acknowledge, &[]).unwrap();
        step(&mut r, Action::Dispatch, &["county-pcs"]).unwrap();
        let county = r.timeline.clone();
        r.forwarded =
            Some(Forwarded { county: "330102".into(), by: "330102".into(), seq: 1, at_ms: 1 });
        for action in [Action::Acknowledge, Action::Resolve, Action::FalseAlarm, Action::Escalate] {
            let e = step(&mut r, action, &[]).unwrap_err();
            assert!(e.0.contains("county 330102's") && e.0.contains("own units"), "{e}");
        }
        let e = step(&mut r, Action::Receive, &["county-pcs"]).unwrap_err();
        assert!(e.0.contains("not dispatched to county-pcs"), "the county's unit acts there: {e}");
        step(&mut r, Action::Dispatch, &["city-swat"]).unwrap();
        assert!(step(&mut r, Action::Dispatch, &["city-swat"]).is_err(), "once");
        step(&mut r, Action::Receive, &["city-swat"]).unwrap();
        assert_eq!(unit_progress(&r, "city-swat"), Some(Action::Receive));
        assert_eq!(
            (r.status, r.timeline.clone()),
            (Status::Dispatched, county),
            "the county's case"
        );
        assert_eq!(
            (r.units_here(), r.dispatched_to.as_slice()),
            (&["city-swat".to_owned()][..], &["county-pcs".to_owned()][..])
        );
        let own: Vec<_> = r.own.timeline.iter().map(|s| s.action).collect();
        assert_eq!(own, [Action::Dispatch, Action::Receive]);
    }
}
