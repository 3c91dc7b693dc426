//! The fleet and its configuration: agents with their online state and health, agents'
//! pushed configs, and the center's own links to GB/T 28181 platforms above.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::topics::is_valid_agent_id;

use super::caller::Caller;
use super::paging::query as query_string;
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::fleet::{
    AckRecord, AgentView, ConfigRecord, ConfigVersion, Confirm, PushError, redacted,
};
use crate::gb28181::PlatformStatus;

/// One agent on the fleet page.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetAgent {
    /// What its status and health say.
    #[serde(flatten)]
    pub agent: AgentView,
    /// The latest config pushed to it, if any.
    pub pushed_config_version: Option<u64>,
    /// Its answer to the latest push.
    pub config_ack: Option<AckRecord>,
}

/// Body of `GET /api/fleet`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetList {
    /// Offline agents first, then never heard from, then online.
    pub agents: Vec<FleetAgent>,
}

/// Body of `GET /api/gb28181`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Gb28181List {
    /// The GB/T 28181 platforms above, in `gb28181.toml`'s order (none: the center reports to
    /// none).
    pub platforms: Vec<PlatformStatus>,
}

/// `GET /api/gb28181`: the center's registration with each GB/T 28181 platform above.
pub(super) async fn gb28181(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Gb28181List>, ApiError> {
    caller.require(Permission::ReadFleet)?;
    Ok(Json(Gb28181List { platforms: state.gb28181.platforms() }))
}

/// `GET /api/fleet`.
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<FleetList>, ApiError> {
    caller.require(Permission::ReadFleet)?;
    let agents = blocking(move || {
        let views = state.fleet.list(&state.keys.agents())?;
        let mut agents = Vec::with_capacity(views.len());
        for agent in views {
            let pushed = state.configs.get(&agent.agent_id)?;
            agents.push(FleetAgent {
                pushed_config_version: pushed.as_ref().map(|c| c.version),
                config_ack: pushed.and_then(|c| c.ack),
                agent,
            });
        }
        Ok(agents)
    })
    .await?;
    Ok(Json(FleetList { agents }))
}

/// `GET /api/agents/{id}/config`: the pushed config and the agent's last answer.
pub(super) async fn config(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConfigRecord>, ApiError> {
    caller.require(Permission::Configure)?;
    agent_id(&id)?;
    let mut record = state
        .configs
        .get(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no config was pushed to agent {id}")))?;
    // A version pushed before camera passwords were refused may still hold one: not shown.
    record.config_toml = redacted(&record.config_toml);
    Ok(Json(record))
}

/// Body of `GET /api/agents/{id}/config/history`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigHistory {
    /// Every version pushed since the center keeps them, newest first.
    pub versions: Vec<ConfigVersion>,
}

/// `GET /api/agents/{id}/config/history`: every version, who pushed it, when, and its diff.
pub(super) async fn history(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ConfigHistory>, ApiError> {
    caller.require(Permission::Configure)?;
    agent_id(&id)?;
    let versions = blocking(move || Ok(state.configs.history(&id)?)).await?;
    Ok(Json(ConfigHistory { versions }))
}

/// Refuses (400) what cannot be an agent id, as a push does: no box has it.
fn agent_id(id: &str) -> Result<(), ApiError> {
    match is_valid_agent_id(id) {
        true => Ok(()),
        false => Err(PushError::AgentId(id.to_owned()).into()),
    }
}

/// Query of `PUT /api/agents/{id}/config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PushQuery {
    /// What the pusher confirms, comma-separated: `no-camera`, `remove-privacy-mask`.
    #[serde(default)]
    confirm: String,
}

/// A push not stored, as answered: a refusal carries what the console shows of it (every
/// problem at its place, or what needs confirming and how).
pub(super) struct NotPushed(Response);

impl From<ApiError> for NotPushed {
    fn from(e: ApiError) -> Self {
        Self(e.into_response())
    }
}

impl From<PushError> for NotPushed {
    fn from(e: PushError) -> Self {
        Self(refusal(e))
    }
}

impl IntoResponse for NotPushed {
    fn into_response(self) -> Response {
        self.0
    }
}

/// A refused push as JSON: the message, and what the console shows of it.
fn refusal(e: PushError) -> Response {
    let (status, body) = match &e {
        PushError::Invalid { problems, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "error": e.to_string(), "problems": problems }),
        ),
        PushError::Unconfirmed(losses) => {
            let mut words: Vec<&str> = losses.iter().map(|l| l.confirm.word()).collect();
            words.sort_unstable();
            words.dedup();
            let body = serde_json::json!({
                "error": e.to_string(),
                "confirm": words.join(","),
                "affected": losses,
            });
            (StatusCode::CONFLICT, body)
        }
        _ => return ApiError::from(e).into_response(),
    };
    (status, Json(body)).into_response()
}

/// Whether `id` is a registered box, or one an open enrolment token awaits.
fn known(state: &ApiState, id: &str) -> Result<bool, ApiError> {
    if state.keys.get(id).is_some() {
        return Ok(true);
    }
    let now = now_ms();
    Ok(state
        .enrolments
        .list()?
        .iter()
        .any(|e| e.agent_id == id && e.used_ms.is_none() && e.expires_ms > now))
}

/// `PUT /api/agents/{id}/config` with the TOML document as body: the agent's next version, for
/// a registered box (or one awaiting enrolment), checked as the box checks it (422 with every
/// problem at its line and column); one that leaves the box no camera or takes a privacy mask
/// away needs `?confirm=` (409 says which words). Audited with its diff.
pub(super) async fn push_config(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<PushQuery>, QueryRejection>,
    body: String,
) -> Result<Json<ConfigRecord>, NotPushed> {
    caller.require(Permission::Configure)?;
    if !is_valid_agent_id(&id) {
        return Err(PushError::AgentId(id).into());
    }
    let query = query_string(query)?;
    let confirmed = Confirm::parse_list(&query.confirm).map_err(ApiError::bad_request)?;
    let (lookup, agent) = (state.clone(), id.clone());
    let reported = blocking(move || {
        if !known(&lookup, &agent)? {
            return Err(ApiError::not_found(format!(
                "no agent {agent:?} is registered or awaiting enrolment: enrol it first"
            )));
        }
        Ok(lookup.fleet.list(&[])?.into_iter().find(|v| v.agent_id == agent))
    })
    .await?;
    let pushed = state.configs.push(&id, body, caller.login(), &confirmed, reported.as_ref()).await;
    let (record, version) = pushed?;
    state
        .audit
        .record(
            version.issued_time_ms,
            caller.login(),
            "push_config",
            &id,
            &format!("version {}\n{}", version.version, version.diff),
        )
        .map_err(ApiError::from)?;
    state.store.flush().await.map_err(ApiError::from)?;
    Ok(Json(record))
}

/// `DELETE /api/agents/{id}` (admin): a box taken out of service, or lost. Its key (and embedded
/// broker password) leave the registry, so nothing it sends is stored any more; with the
/// broker's accounts kept here, its logins there are deleted and it is disconnected; its status
/// says offline. Its alarms stay. Enrolling it again brings it back.
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    caller.require(Permission::Administer)?;
    agent_id(&id)?;
    if state.keys.get(&id).is_none() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("no agent {id:?} is registered"),
        ));
    }
    if let Some(accounts) = &state.enrol.accounts {
        accounts.remove(&id).await.map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                format!(
                    "the broker did not delete {id}'s account ({e}): nothing was removed; try again"
                ),
            )
        })?;
    }
    let (keys, agent) = (state.keys.clone(), id.clone());
    blocking(move || keys.unregister(&agent).map_err(ApiError::internal)).await?;
    // Offline on the fleet page, now and after restarts (its login left without its will).
    if let Err(e) = state.configs.retire(&id).await {
        tracing::warn!(agent = %id, "removed, but its offline status was not published: {e}");
    }
    state.audit.record(now_ms(), caller.login(), "remove_agent", &id, "")?;
    state.store.flush().await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
