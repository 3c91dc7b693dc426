//! The fleet and its configuration: agents with their online state and health, and agents'
//! pushed configs.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::{now_ms, redact_url};

use super::caller::Caller;
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::fleet::{AckRecord, AgentView, ConfigRecord};

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
    let mut record = state
        .configs
        .get(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no config was pushed to agent {id}")))?;
    // A version pushed before camera passwords were refused may still hold one: not shown.
    record.config_toml = record
        .config_toml
        .split('"')
        .map(|part| if part.contains("://") { redact_url(part) } else { part.to_owned() })
        .collect::<Vec<_>>()
        .join("\"");
    Ok(Json(record))
}

/// `PUT /api/agents/{id}/config` with the TOML document as body: the agent's next version.
pub(super) async fn push_config(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<ConfigRecord>, ApiError> {
    caller.require(Permission::Configure)?;
    let record = state.configs.push(&id, body).await?;
    state.audit.record(
        now_ms(),
        caller.login(),
        "push_config",
        &id,
        &format!("version {}", record.version),
    )?;
    state.store.flush().await?;
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
