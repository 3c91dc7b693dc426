//! `GET /api/tier/pictures/{id}` and `GET /api/tier/clips/{clip_id}`: an event's full picture or
//! one of its clips for the center of the tier above, on its signed request (no log-in: the
//! signature is its credential). Audited here as a view by whoever asked there. What an event
//! forwarded here from below has is fetched from there in turn.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use xueliang_proto::TierFetch;
use xueliang_proto::endpoint::now_ms;

use super::alarms::jpeg_response;
use super::clips::{audit_view, body, open};
use super::{ApiError, ApiState, blocking};
use crate::domain::AlarmRecord;
use crate::tier::FETCH_HEADER;

/// The request in `headers` for what the route names (a clip's id, or else an event's), if the
/// center above signed it, and the record of the event it names.
async fn asked(
    state: &ApiState,
    headers: &HeaderMap,
    clip: bool,
    named: &str,
) -> Result<(TierFetch, AlarmRecord), ApiError> {
    let header = headers.get(FETCH_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let request = state.fetch.check(header, clip, named)?;
    let store = state.store.clone();
    let lookup = request.id.clone();
    match blocking(move || Ok(store.get(&lookup)?)).await? {
        Some(record) => Ok((request, record)),
        None => Err(ApiError::not_found(format!("no event {}", request.id))),
    }
}

/// `GET /api/tier/pictures/{id}`: the full picture of event `id` for the tier above.
pub(super) async fn picture(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (request, record) = asked(&state, &headers, false, &id).await?;
    if record.snapshot_sha256.is_empty() || record.snapshot_sha256 != request.sha256 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("event {id}'s picture is not the one asked for"),
        ));
    }
    let by = format!("above:{}", request.by);
    let jpeg = match record.forwarded {
        Some(_) => state.fetch.picture(&record, &by).await?,
        None => match state.store.snapshot(&id)? {
            Some(jpeg) => jpeg.to_vec(),
            None => return Err(ApiError::not_found(format!("event {id}'s picture is not here"))),
        },
    };
    state.audit.record(
        now_ms(),
        &by,
        "view_snapshot",
        &id,
        "the full picture, for the tier above",
    )?;
    state.store.flush().await?;
    Ok(jpeg_response(jpeg))
}

/// `GET /api/tier/clips/{clip_id}`: the whole clip `clip_id` of the event the signed request
/// names, for the tier above.
pub(super) async fn clip(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(clip_id): Path<String>,
) -> Result<Response, ApiError> {
    let (request, record) = asked(&state, &headers, true, &clip_id).await?;
    let listed = record.clips.iter().find(|c| c.clip_id == clip_id);
    if listed.is_some_and(|c| c.sha256 != request.sha256) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("clip {clip_id} of event {} is not the one asked for", record.id),
        ));
    }
    let by = format!("above:{}", request.by);
    let (clip, len) = open(&state, &record, &clip_id, &by).await?;
    audit_view(&state, &by, &record.id, &clip_id, false).await?;
    let kept = [(header::CONTENT_TYPE, "video/mp4"), (header::CACHE_CONTROL, "private, no-store")];
    Ok((kept, [(header::CONTENT_LENGTH, len.to_string())], body(clip, 0..len)).into_response())
}
