//! The HTTP API (axum): alarms as JSON, newest first, and their snapshots; agents' pushed
//! configs; dead letters.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::ingest::IngestStats;
use crate::config_push::{ConfigPush, ConfigRecord, PushError};
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::store::{AlarmRecord, Store, StoreError};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The alarm store.
    pub store: Store,
    /// Configuration push.
    pub configs: ConfigPush,
    /// Refused payloads.
    pub dead_letters: DeadLetters,
    /// Ingest counters.
    pub stats: Arc<IngestStats>,
}

/// Body of `GET /api/stats`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stats {
    /// Alarms in the store.
    pub alarms: usize,
    /// New alarms stored since the center started.
    pub stored: u64,
    /// Redeliveries of stored alarms (receipted again, not stored again) since start.
    pub duplicates: u64,
    /// Payloads refused and dead-lettered since start.
    pub dead_lettered: u64,
}

/// An API error: a status code and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn not_found(what: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: what,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the alarm store failed; see the center's log".into(),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Store(e) => e.into(),
            PushError::AgentId(_) | PushError::Toml(_) => Self { status: StatusCode::BAD_REQUEST, message: e.to_string() },
            PushError::Sign(_) | PushError::Publish(_) => {
                tracing::error!("{e}");
                Self { status: StatusCode::SERVICE_UNAVAILABLE, message: e.to_string() }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// Query of `GET /api/alarms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many alarms (1..=500, default 50).
    pub limit: Option<usize>,
}

/// Body of `GET /api/alarms`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmList {
    /// Alarms, newest event first.
    pub alarms: Vec<AlarmRecord>,
}

/// Body of `GET /api/dead-letters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// Refused payloads, most recently refused first.
    pub dead_letters: Vec<DeadLetter>,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/alarms", get(list))
        .route("/api/alarms/{id}", get(detail))
        .route("/api/alarms/{id}/snapshot", get(snapshot))
        .route("/api/agents/{id}/config", get(config).put(push_config))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/stats", get(stats))
        .with_state(state)
}

fn limit(q: &ListQuery) -> Result<usize, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("limit must be between 1 and 500, got {limit}"),
        });
    }
    Ok(limit)
}

async fn list(
    State(ApiState { store, .. }): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<AlarmList>, ApiError> {
    let limit = limit(&q)?;
    let alarms = tokio::task::spawn_blocking(move || store.newest(limit))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })??;
    Ok(Json(AlarmList { alarms }))
}

async fn detail(
    State(ApiState { store, .. }): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AlarmRecord>, ApiError> {
    store
        .get(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alarm {id}")))
}

async fn snapshot(State(ApiState { store, .. }): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let jpeg = store
        .snapshot(&id)?
        .ok_or_else(|| ApiError::not_found(format!("alarm {id} has no snapshot")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        jpeg.to_vec(),
    )
        .into_response())
}

/// `GET /api/agents/{id}/config`: the pushed config and the agent's last answer.
async fn config(State(state): State<ApiState>, Path(id): Path<String>) -> Result<Json<ConfigRecord>, ApiError> {
    state
        .configs
        .get(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no config was pushed to agent {id}")))
}

/// `PUT /api/agents/{id}/config` with the TOML document as body: the agent's next version.
async fn push_config(State(state): State<ApiState>, Path(id): Path<String>, body: String) -> Result<Json<ConfigRecord>, ApiError> {
    Ok(Json(state.configs.push(&id, body).await?))
}

/// `GET /api/dead-letters`: payloads ingest refused, and why.
async fn dead_letters(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = limit(&q)?;
    let dead_letters = tokio::task::spawn_blocking(move || state.dead_letters.list(limit))
        .await
        .map_err(|e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: e.to_string() })??;
    Ok(Json(DeadLetterList { dead_letters }))
}

/// `GET /api/stats`: the store's size and ingest's counters.
async fn stats(State(state): State<ApiState>) -> Json<Stats> {
    let c = &state.stats;
    Json(Stats {
        alarms: state.store.len(),
        stored: c.stored.load(Ordering::Relaxed),
        duplicates: c.duplicates.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
    })
}
