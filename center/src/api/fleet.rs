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
