//! Records kept beside the alarms: dead letters, ingest counters, the audit log, and the
//! JSON Lines export.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::metrics::{Exposition, labels};

use super::access::Caller;
use super::alarms::page_size;
use super::{ApiError, ApiState, blocking};
use crate::access::AuditEntry;
use crate::access::Permission;
use crate::domain::Status;
use crate::store::DeadLetter;

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

/// Body of `GET /api/dead-letters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// Refused payloads, most recently refused first.
    pub dead_letters: Vec<DeadLetter>,
}

/// Query of `GET /api/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// At most this many, 1..=500 (default 50).
    pub limit: Option<usize>,
}

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries about this alarm, agent or login.
    pub target: Option<String>,
    /// Entries before this sequence number (the last `seq` of the previous page).
    pub before: Option<u64>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<usize>,
}

/// Body of `GET /api/audit`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditList {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// A query string's parameters, or a 400 saying what is wrong with them.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// `GET /api/dead-letters`: payloads ingest refused, and why.
pub(super) async fn dead_letters(
    State(state): State<ApiState>,
    caller: Caller,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Result<Json<DeadLetterList>, ApiError> {
    caller.require(Permission::ReadDeadLetters)?;
    let limit = page_size(query(q)?.limit)?;
    let dead_letters = blocking(move || Ok(state.dead_letters.list(limit)?)).await?;
    Ok(Json(DeadLetterList { dead_letters }))
}

/// `GET /api/stats`: the store's size and ingest's counters.
pub(super) async fn stats(State(state): State<ApiState>, _caller: Caller) -> Json<Stats> {
    let c = &state.stats;
    Json(Stats {
        alarms: state.store.len(),
        stored: c.stored.load(Ordering::Relaxed),
        duplicates: c.duplicates.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
    })
}

/// `GET /metrics`: counters and gauges in Prometheus' text format (counts only, no alarm
/// content, so it needs no log-in).
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = blocking(move || {
        let c = &state.stats;
        let agents = state.fleet.list(&state.keys.agents())?;
        let agents_in = |online: Option<bool>| agents.iter().filter(|a| a.online == online).count();
        let mut e = Exposition::default();
        e.single("xl_center_alarms_stored_total", "counter", "New alarms stored since the center started (its rate is the ingest rate).", c.stored.load(Ordering::Relaxed));
        e.single("xl_center_alarms_duplicate_total", "counter", "Redelivered alarms receipted again, not stored again.", c.duplicates.load(Ordering::Relaxed));
        e.single("xl_center_dead_letters_total", "counter", "Payloads refused and dead-lettered since start.", c.dead_lettered.load(Ordering::Relaxed));
        e.single("xl_center_alarms", "gauge", "Alarms in the store.", state.store.len() as u64);
        e.single("xl_center_alarms_unacknowledged", "gauge", "Alarms no duty officer has acknowledged yet.", state.store.count(Status::New) as u64);
        e.family(
            "xl_center_agents",
            "gauge",
            "Agents by their last retained status (unknown: registered, never heard from).",
            &[
                (labels(&[("state", "online")]), agents_in(Some(true))),
                (labels(&[("state", "offline")]), agents_in(Some(false))),
                (labels(&[("state", "unknown")]), agents_in(None)),
            ],
        );
        e.histogram(
            "xl_center_dispatch_latency_seconds",
            "From an alarm's arrival at the center to its first dispatch to a unit (by a duty officer or by escalation).",
            &state.cases.dispatch_latency,
        );
        Ok(e.finish())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// `GET /api/audit`: the audit log, newest first.
pub(super) async fn audit(
    State(state): State<ApiState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    caller.require(Permission::Administer)?;
    let q = query(q)?;
    let limit = page_size(q.limit)?;
    let entries =
        blocking(move || Ok(state.audit.list(q.target.as_deref(), q.before, limit)?)).await?;
    Ok(Json(AuditList { entries }))
}

/// `GET /api/export`: every alarm record as JSON Lines, oldest first (the same as
/// `xl-center export`, while the center runs).
pub(super) async fn export(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Permission::Administer)?;
    state.audit.record(now_ms(), caller.login(), "export", "", "")?;
    state.store.flush().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(64);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let result = store.for_each(&Default::default(), |r| {
            // Plain fields: serializing cannot fail.
            let mut line = serde_json::to_vec(&r).expect("an AlarmRecord serializes");
            line.push(b'\n');
            tx.blocking_send(Ok(line)).map_err(|_| std::io::Error::other("the client went away"))
        });
        if let Err(e) = result {
            tracing::warn!("export: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream))
        .into_response())
}
