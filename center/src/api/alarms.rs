//! Alarms: the filtered, paged list; one alarm with its dispatches; its snapshot; its audit
//! trail; and the workflow steps.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::caller::Caller;
use super::paging::{at_most, page_size, query as query_string};
use super::{ApiError, ApiState, blocking};
use crate::access::{AuditEntry, Permission, Role};
use crate::dispatch::{WebhookStatus, dispatch_id};
use crate::domain::{Action, AlarmRecord, EventState, KINDS, SEVERITIES, Status};
use crate::store::{AlarmFilter, Cursor, parse_time};

/// The longest agent and unit ids (both 1–64 letters, digits, '-' or '_').
const MAX_ID_CHARS: usize = 64;
/// The longest camera id: ingest takes 128 bytes, never more characters.
const MAX_CAMERA_CHARS: usize = 128;
/// The longest time bound: RFC 3339 with nanoseconds and an offset has 35 characters.
pub(super) const MAX_TIME_CHARS: usize = 64;
/// The longest note on a step: a long paragraph, and as Chinese (3 bytes a character) still
/// within the step's 16 KiB body.
const MAX_NOTE_CHARS: usize = 4000;
/// The most units a step names: more than a county sends to one alarm.
const MAX_UNITS: usize = 32;

/// Query of `GET /api/alarms`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmQuery {
    /// Event time at or after: UTC ms, or RFC 3339 (`2026-07-01T18:00:00+08:00`).
    pub from: Option<String>,
    /// Event time before: UTC ms, or RFC 3339.
    pub to: Option<String>,
    /// Agent id.
    pub agent: Option<String>,
    /// Camera id.
    pub camera: Option<String>,
    /// Rule kind, e.g. `zone_intrusion`.
    pub kind: Option<String>,
    /// Severity, e.g. `high`.
    pub severity: Option<String>,
    /// Workflow status: new, acknowledged, dispatched, resolved, false_alarm.
    pub status: Option<String>,
    /// Dispatched to this unit (a police station, office or patrol).
    pub unit: Option<String>,
    /// Whether the event goes on: ongoing or ended.
    pub state: Option<String>,
    /// Forwarded from this county (at a tier above).
    pub county: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<usize>,
}

/// Body of `GET /api/alarms`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmList {
    /// Alarms, newest event first.
    pub alarms: Vec<AlarmRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `GET /api/alarms/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmDetail {
    /// The alarm.
    #[serde(flatten)]
    pub alarm: AlarmRecord,
    /// Webhook deliveries of its dispatches.
    pub webhooks: Vec<WebhookStatus>,
}

/// Body of a workflow step (`POST /api/alarms/{id}/{action}`); may be empty.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Why, what was seen, what was done.
    #[serde(default)]
    pub note: String,
    /// For `dispatch`: the units (default: those routing suggests).
    #[serde(default)]
    pub units: Vec<String>,
}

/// Refuses (400) a step's note over [`MAX_NOTE_CHARS`] characters, or more than [`MAX_UNITS`]
/// units, or a unit id longer than any unit's.
fn bounded(req: &ActionRequest) -> Result<(), ApiError> {
    let note = req.note.chars().count();
    if note > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(format!(
            "the note is {note} characters long; at most {MAX_NOTE_CHARS} are taken"
        )));
    }
    if req.units.len() > MAX_UNITS {
        return Err(ApiError::bad_request(format!(
            "{} units named; at most {MAX_UNITS} are taken",
            req.units.len()
        )));
    }
    for unit in &req.units {
        at_most("a unit id", Some(unit.as_str()), MAX_ID_CHARS)?;
    }
    Ok(())
}

/// A time bound: UTC milliseconds or RFC 3339.
pub(super) fn time_bound(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    parse_time(text).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name}={text:?} is neither UTC milliseconds nor RFC 3339 (2026-07-01T18:00:00+08:00)"
        ))
    })
}

/// The filter a query asks for, narrowed to what `caller` may see.
fn filter(q: &AlarmQuery, caller: &Caller) -> Result<AlarmFilter, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_request(format!("no status {s:?} (statuses: {})", all.join(", ")))
            })
        })
        .transpose()?;
    let mut unit = q.unit.clone();
    if caller.user.role == Role::Police {
        let own = caller.user.unit.clone();
        if own.is_none() || (unit.is_some() && unit != own) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a police user sees only its own unit's alarms",
            ));
        }
        unit = own;
    }
    let known = |what: &str, value: &Option<String>, names: &[&str]| match value {
        Some(v) if !names.contains(&v.as_str()) => {
            Err(ApiError::bad_request(format!("no {what} {v:?} ({what}s: {})", names.join(", "))))
        }
        _ => Ok(()),
    };
    known("kind", &q.kind, &KINDS)?;
    known("severity", &q.severity, &SEVERITIES)?;
    for (name, value, max) in [
        ("from", &q.from, MAX_TIME_CHARS),
        ("to", &q.to, MAX_TIME_CHARS),
        ("agent", &q.agent, MAX_ID_CHARS),
        ("camera", &q.camera, MAX_CAMERA_CHARS),
        ("unit", &q.unit, MAX_ID_CHARS),
        ("county", &q.county, MAX_ID_CHARS),
    ] {
        at_most(name, value.as_deref(), max)?;
    }
    let state = match q.state.as_deref() {
        None => None,
        Some("ongoing") => Some(EventState::Ongoing),
        Some("ended") => Some(EventState::Ended),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "no state {other:?} (states: ongoing, ended)"
            )));
        }
    };
    Ok(AlarmFilter {
        from_ms: time_bound("from", q.from.as_deref())?,
        to_ms: time_bound("to", q.to.as_deref())?,
        agent: q.agent.clone(),
        camera: q.camera.clone(),
        kind: q.kind.clone(),
        severity: q.severity.clone(),
        status,
        unit,
        state,
        county: q.county.clone(),
    })
}

/// `GET /api/alarms`.
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<AlarmQuery>, QueryRejection>,
) -> Result<Json<AlarmList>, ApiError> {
    caller.require(Permission::ReadAlarms)?;
    let q = query_string(query)?;
    let filter = filter(&q, &caller)?;
    let limit = page_size(q.limit)?;
    let cursor =
        q.cursor.as_deref().map(Cursor::decode).transpose().map_err(ApiError::bad_request)?;
    let store = state.store.clone();
    let page = blocking(move || Ok(store.query(&filter, cursor.as_ref(), limit)?)).await?;
    Ok(Json(AlarmList { alarms: page.alarms, next_cursor: page.next.map(|c| c.encode()) }))
}

/// The alarm `id` if `caller` may see it.
pub(super) async fn visible(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<AlarmRecord, ApiError> {
    let record =
        state.store.get(id)?.ok_or_else(|| ApiError::not_found(format!("no alarm {id}")))?;
    caller.may_see(&record)?;
    Ok(record)
}

/// `GET /api/alarms/{id}`.
pub(super) async fn detail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlarmDetail>, ApiError> {
    let alarm = visible(&state, &caller, &id).await?;
    let mut webhooks = Vec::new();
    for unit in alarm.units_here() {
        webhooks.extend(state.webhooks.status(&dispatch_id(&id, unit))?);
    }
    state.audit.record(now_ms(), caller.login(), "view_alarm", &id, "")?;
    state.store.flush().await?;
    Ok(Json(AlarmDetail { alarm, webhooks }))
}

/// The picture, as a JPEG response no one keeps.
pub(super) fn jpeg_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, no-store")], bytes)
        .into_response()
}

/// `GET /api/alarms/{id}/snapshot`: the JPEG; each view is audited.
pub(super) async fn snapshot(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let alarm = visible(&state, &caller, &id).await?;
    let Some(jpeg) = state.store.snapshot(&id)? else {
        if alarm.snapshot_expired {
            return Err(ApiError::new(
                StatusCode::GONE,
                format!("the snapshot of alarm {id} was deleted by retention"),
            ));
        }
        return Err(ApiError::not_found(format!("alarm {id} has no snapshot")));
    };
    state.audit.record(now_ms(), caller.login(), "view_snapshot", &id, "")?;
    state.store.flush().await?;
    Ok(jpeg_response(jpeg.to_vec()))
}

/// `GET /api/alarms/{id}/picture`: its full picture. That of an event forwarded from the tier
/// below is fetched from the center that forwarded it (its thumbnail is the snapshot here),
/// checked against the hash its box signed; each view is audited here and there.
pub(super) async fn picture(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let alarm = visible(&state, &caller, &id).await?;
    let Some(from) = alarm.forwarded.as_ref().map(|f| f.by.clone()) else {
        return snapshot(State(state), caller, Path(id)).await;
    };
    let jpeg = state.fetch.picture(&alarm, caller.login()).await?;
    let detail = format!("the full picture, from {from}");
    state.audit.record(now_ms(), caller.login(), "view_snapshot", &id, &detail)?;
    state.store.flush().await?;
    Ok(jpeg_response(jpeg))
}

/// `GET /api/alarms/{id}/audit`: who viewed it and who did what, newest first.
pub(super) async fn trail(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    caller.require(Permission::ActOnAlarms)?;
    visible(&state, &caller, &id).await?;
    Ok(Json(state.audit.list(Some(&id), None, 500)?))
}

/// `POST /api/alarms/{id}/{action}`: acknowledge, dispatch, resolve, false-alarm by the
/// center; receive, on-scene, close by a unit it was dispatched to.
pub(super) async fn act(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<AlarmRecord>, ApiError> {
    let action = Action::from_url(&action).ok_or_else(|| {
        ApiError::not_found(format!(
            "no action {action:?} (actions: acknowledge, dispatch, resolve, false-alarm; a unit's: receive, on-scene, close)"
        ))
    })?;
    caller.require(if action.by_unit() { Permission::Respond } else { Permission::ActOnAlarms })?;
    let req: ActionRequest = match body.is_empty() {
        true => ActionRequest::default(),
        false => {
            // As the document says, and as a browser's request must be anyway.
            let essence = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
            if essence.as_deref() != Some("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the step's body as JSON, with Content-Type: application/json",
                ));
            }
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "{e}; send {{\"note\": ..., \"units\": [...]}} or nothing"
                ))
            })?
        }
    };
    bounded(&req)?;
    let mut units = req.units;
    if action.by_unit() {
        visible(&state, &caller, &id).await?;
        units = caller.user.unit.clone().into_iter().collect();
    }
    if action == Action::Dispatch {
        let record = visible(&state, &caller, &id).await?;
        if units.is_empty() {
            units = record.routed_to;
        }
        if units.is_empty() {
            return Err(ApiError::bad_request(
                "routing suggests no unit for this alarm: name the units",
            ));
        }
        state.cases.check_units(&units).map_err(|e| ApiError::bad_request(e.0))?;
    }
    Ok(Json(state.cases.act(&id, action, caller.login(), &req.note, &units).await?))
}
