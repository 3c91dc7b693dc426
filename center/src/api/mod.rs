//! The HTTP API (axum). Every route but `/healthz`, `/metrics`, `/api/openapi.json`,
//! `/api/login` and `/api/enroll` (a box with its one-time token) needs a logged-in user (a
//! bearer token or the session cookie `POST /api/login` hands out), and each checks the user's
//! role; errors are JSON `{"error": "..."}` with the fitting status code. The routes are
//! described in `openapi.json`, served at `/api/openapi.json`; one file per resource, the
//! router below.

mod alarms;
mod audit;
mod browser;
mod caller;
mod clips;
mod counties;
mod dead_letters;
mod enrolment;
mod error;
mod events;
mod export;
mod fleet;
mod health;
mod https;
#[cfg(test)]
mod openapi_tests;
mod paging;
mod session;
mod stats;
mod throttle;
mod tier;
mod units;
mod vocabulary;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::access::{AuditLog, Sessions, Users};
use crate::cases::{AlarmFeed, Cases};
use crate::dispatch::Webhooks;
use crate::fleet::{AgentKeys, ConfigPush, Enrolments, Fleet, MAX_CONFIG_BYTES};
use crate::gb28181::Gb28181Stats;
use crate::ingest::IngestStats;
use crate::store::{Clips, DeadLetters, Store};
use error::blocking;

pub use alarms::{ActionRequest, AlarmDetail, AlarmList, AlarmQuery};
pub use audit::{AlarmProof, AuditList, AuditQuery};
pub use caller::{Caller, Peer, SESSION_COOKIE};
pub use counties::{Boxes, Counties, CountiesQuery, County};
pub use dead_letters::{DeadLetterList, LimitQuery};
pub use enrolment::{EnrolSettings, EnrollRequest, Enrolled, EnrolmentCreated, EnrolmentRequest};
pub use error::ApiError;
pub use fleet::{ConfigHistory, FleetAgent, FleetList, Gb28181List};
pub use https::HttpsListener;
pub use session::{LoginRequest, LoginResponse, Me, View};
pub use stats::Stats;
pub use throttle::{LoginLimits, LoginThrottle};
pub use vocabulary::Vocabulary;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The alarm store.
    pub store: Store,
    /// Events' video clips.
    pub clips: Clips,
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
    /// Log-in attempts' limits and back-off.
    pub logins: Arc<LoginThrottle>,
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
    /// The API is served over HTTPS: session cookies are `Secure`.
    pub https: bool,
    /// Whether this process speaks for the center (and does the county's duties).
    pub announcer: crate::ingest::Announcer,
    /// The links to the tiers above and below: their counters.
    pub tiers: Arc<crate::tier::TierStats>,
    /// Full pictures from the tier below, and requests for them from the tier above.
    pub fetch: crate::tier::Fetch,
    /// The links to GB/T 28181 platforms above: their states and counters.
    pub gb28181: Arc<Gb28181Stats>,
}

/// The body limit of routes that take no body.
const NO_BODY: usize = 1024;

/// The body limit of small JSON requests: a workflow step's note, an enrolment.
const SMALL_BODY: usize = 16 * 1024;

/// The API's routes, each with its body limit (`NO_BODY` unless it says otherwise), the
/// browser checks and the security headers (`browser.rs`). Serve it with
/// [`Router::into_make_service_with_connect_info`]`::<`[`Peer`]`>` so log-ins are limited per
/// client address.
pub fn router(state: ApiState) -> Router {
    let https = state.https;
    let body = DefaultBodyLimit::max;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(stats::metrics))
        .route("/api/login", post(session::login).layer(body(session::LOGIN_BODY_BYTES)))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/vocabulary", get(vocabulary::vocabulary))
        .route("/api/alarms", get(alarms::list))
        .route("/api/events", get(events::events))
        .route("/api/alarms/{id}", get(alarms::detail))
        .route("/api/alarms/{id}/snapshot", get(alarms::snapshot))
        .route("/api/alarms/{id}/picture", get(alarms::picture))
        .route("/api/tier/pictures/{id}", get(tier::picture))
        .route("/api/tier/clips/{clip_id}", get(tier::clip))
        .route("/api/alarms/{id}/audit", get(alarms::trail))
        .route("/api/alarms/{id}/proof", get(audit::proof))
        .route("/api/alarms/{id}/{action}", post(alarms::act).layer(body(SMALL_BODY)))
        .route("/api/clips/{id}", get(clips::clip))
        .route("/api/alarms/{id}/clips/{clip_id}", get(clips::of_event))
        .route("/api/counties", get(counties::counties))
        .route("/api/units", get(units::units))
        .route("/api/fleet", get(fleet::list))
        .route("/api/gb28181", get(fleet::gb28181))
        .route("/api/agents/{id}", delete(fleet::remove))
        .route(
            "/api/agents/{id}/config",
            get(fleet::config).put(fleet::push_config).layer(body(MAX_CONFIG_BYTES + 1)),
        )
        .route("/api/agents/{id}/config/history", get(fleet::history))
        .route(
            "/api/enrolments",
            get(enrolment::list).post(enrolment::create).layer(body(SMALL_BODY)),
        )
        .route("/api/enroll", post(enrolment::enroll).layer(body(SMALL_BODY)))
        .route("/api/dead-letters", get(dead_letters::dead_letters).delete(dead_letters::purge))
        .route("/api/stats", get(stats::stats))
        .route("/api/audit", get(audit::audit))
        .route("/api/export", get(export::export))
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
        .layer(body(NO_BODY))
        .layer(from_fn_with_state(https, browser::same_origin))
        .layer(from_fn_with_state(https, browser::security_headers))
        .with_state(state)
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
