//! The HTTP API (axum). Every route but `/healthz`, `/metrics`, `/api/openapi.json`, `/api/login` and
//! `/api/enroll` (a box with its one-time token) needs
//! a logged-in user (a bearer token or the session cookie `POST /api/login` hands out), and each
//! checks the user's role; errors are JSON `{"error": "..."}` with the fitting status code. The routes are
//! described in `openapi.json`, served at `/api/openapi.json`.

mod access;
mod alarms;
mod enrolment;
mod fleet;
mod records;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::access::{AuditLog, Sessions, Users};
use crate::cases::{AlarmFeed, Cases};
use crate::dispatch::Webhooks;
use crate::domain::Refused;
use crate::fleet::{AgentKeys, ConfigPush, Enrolments, Fleet, PushError};
use crate::ingest::IngestStats;
use crate::store::{DeadLetters, Store, StoreError, UpdateError};

pub use access::{Caller, LoginRequest, LoginResponse, SESSION_COOKIE};
pub use alarms::{ActionRequest, AlarmDetail, AlarmList, AlarmQuery};
pub use enrolment::{EnrolSettings, EnrollRequest, Enrolled, EnrolmentCreated, EnrolmentRequest};
pub use fleet::FleetList;
pub use records::{AuditList, DeadLetterList, Stats};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The alarm store.
    pub store: Store,
    /// Workflow steps, dispatch and escalation.
    pub cases: Cases,
    /// Configuration push.
    pub configs: ConfigPush,
    /// Refused payloads.
    pub dead_letters: DeadLetters,
    /// Ingest counters.
    pub stats: Arc<IngestStats>,
    /// User accounts.
    pub users: Arc<Users>,
    /// Login sessions.
    pub sessions: Sessions,
    /// The audit log.
    pub audit: AuditLog,
    /// What is known of each agent.
    pub fleet: Fleet,
    /// Registered agents.
    pub keys: Arc<AgentKeys>,
    /// Webhook deliveries.
    pub webhooks: Webhooks,
    /// New and changed alarms, for the consoles.
    pub feed: AlarmFeed,
    /// Enrolment tokens.
    pub enrolments: Enrolments,
    /// What enrolling boxes are told.
    pub enrol: EnrolSettings,
}

/// An API error: a status code and a JSON body `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn not_found(what: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    fn bad_request(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the center failed; see its log")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the alarm store failed; see the center's log")
    }
}

impl From<UpdateError<Refused>> for ApiError {
    fn from(e: UpdateError<Refused>) -> Self {
        match e {
            UpdateError::NotFound(id) => Self::not_found(format!("no alarm {id}")),
            UpdateError::Refused(r) => Self::new(StatusCode::CONFLICT, r.0),
            UpdateError::Store(e) => e.into(),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Store(e) => e.into(),
            PushError::AgentId(_) | PushError::Toml(_) => Self::bad_request(e.to_string()),
            PushError::Sign(_) | PushError::Publish(_) => {
                tracing::error!("{e}");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(records::metrics))
        .route("/api/login", post(access::login))
        .route("/api/logout", post(access::logout))
        .route("/api/me", get(access::me))
        .route("/api/alarms", get(alarms::list))
        .route("/api/events", get(alarms::events))
        .route("/api/alarms/{id}", get(alarms::detail))
        .route("/api/alarms/{id}/snapshot", get(alarms::snapshot))
        .route("/api/alarms/{id}/audit", get(alarms::trail))
        .route("/api/alarms/{id}/{action}", post(alarms::act))
        .route("/api/units", get(fleet::units))
        .route("/api/fleet", get(fleet::list))
        .route("/api/agents/{id}/config", get(fleet::config).put(fleet::push_config))
        .route("/api/enrolments", get(enrolment::list).post(enrolment::create))
        .route("/api/enroll", post(enrolment::enroll))
        .route("/api/dead-letters", get(records::dead_letters))
        .route("/api/stats", get(records::stats))
        .route("/api/audit", get(records::audit))
        .route("/api/export", get(records::export))
        .merge(crate::console::router())
        .fallback(|| async {
            ApiError::not_found("no such route; GET /api/openapi.json lists them".into())
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; GET /api/openapi.json lists them",
            )
        })
        .with_state(state)
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
