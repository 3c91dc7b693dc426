//! What an alarm is at the center, without I/O: the vocabulary (rule kinds, severities,
//! workflow statuses and steps), the alarm record, and the workflow's pure state machine. Every
//! other folder speaks these words; this one imports nothing of the crate.

mod alarm;
mod vocabulary;
mod workflow;

pub use alarm::{
    AlarmRecord, ClipRecord, DetectionRecord, EventState, Forwarded, Own, Step, Updated,
};
pub use vocabulary::{
    Action, CENTER_STEPS, CONTRACT_KINDS, KINDS, SEVERITIES, Status, UNIT_STEPS, kind_name, raised,
    rule_kind, severity, severity_name, severity_rank,
};
pub use workflow::{
    FORWARDED_STEPS, Refused, Request, apply, steps_allowed, unit_progress, unit_steps_allowed,
};

#[cfg(test)]
pub(crate) use alarm::tests::{alarm as test_alarm, record as test_record};
