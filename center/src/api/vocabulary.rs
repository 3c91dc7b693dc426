//! The center's vocabulary, for the console: rule kinds, severities and statuses as records
//! spell them, and which workflow steps each status (and each stage of a unit's dispatch)
//! allows, as the center's own state machine decides, so the console keeps no copy of it.

use std::collections::BTreeMap;

use axum::Json;
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use crate::domain::{
    Action, CENTER_STEPS, FORWARDED_STEPS, KINDS, SEVERITIES, Status, UNIT_STEPS, steps_allowed,
    unit_steps_allowed,
};

/// The stage of a unit's dispatch before its first step, in [`Vocabulary::unit_steps_allowed`].
const NOT_RECEIVED: &str = "none";

/// Body of `GET /api/vocabulary`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Rule kinds.
    pub kinds: Vec<String>,
    /// Severities, lowest first.
    pub severities: Vec<String>,
    /// Workflow statuses, in workflow order.
    pub statuses: Vec<Status>,
    /// The steps the center's people take, in the order the console offers them.
    pub center_steps: Vec<Action>,
    /// The steps a unit takes on its dispatch, in their order.
    pub unit_steps: Vec<Action>,
    /// Status → the center's steps allowed on an alarm with it, the usual next one first.
    pub steps_allowed: BTreeMap<Status, Vec<Action>>,
    /// A unit's last step on its dispatch (`none` before the first) → the steps allowed next,
    /// the usual next one first.
    pub unit_steps_allowed: BTreeMap<String, Vec<Action>>,
    /// The center's steps allowed on an event forwarded from below, whatever its status (its
    /// county runs its case; this center may send its own units).
    #[serde(default)]
    pub forwarded_steps: Vec<Action>,
}

/// `GET /api/vocabulary`.
pub(super) async fn vocabulary(_caller: Caller) -> Json<Vocabulary> {
    let stages = [None].into_iter().chain(UNIT_STEPS.map(Some));
    Json(Vocabulary {
        kinds: KINDS.map(str::to_owned).into(),
        severities: SEVERITIES.map(str::to_owned).into(),
        statuses: Status::ALL.into(),
        center_steps: CENTER_STEPS.into(),
        unit_steps: UNIT_STEPS.into(),
        steps_allowed: Status::ALL.into_iter().map(|s| (s, steps_allowed(s))).collect(),
        unit_steps_allowed: stages
            .map(|done| {
                let stage = done.map_or(NOT_RECEIVED, Action::as_str);
                (stage.to_owned(), unit_steps_allowed(done))
            })
            .collect(),
        forwarded_steps: FORWARDED_STEPS.into(),
    })
}
