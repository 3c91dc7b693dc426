//! The HTTP API (axum): alarms as JSON, newest first, and their snapshots.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::store::{AlarmRecord, Store, StoreError};

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

/// The API's routes over `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/alarms", get(list))
        .route("/api/alarms/{id}", get(detail))
        .route("/api/alarms/{id}/snapshot", get(snapshot))
        .with_state(store)
}

async fn list(
    State(store): State<Store>,
    Query(q): Query<ListQuery>,
) -> Result<Json<AlarmList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("limit must be between 1 and 500, got {limit}"),
        });
    }
    let alarms = tokio::task::spawn_blocking(move || store.newest(limit))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })??;
    Ok(Json(AlarmList { alarms }))
}

async fn detail(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Json<AlarmRecord>, ApiError> {
    store
        .get(&id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alarm {id}")))
}

async fn snapshot(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, ApiError> {
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
