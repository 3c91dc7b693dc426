//! `GET /api/tier/pictures/{id}`: an event's full picture for the center of the tier above, on
//! its signed request (no log-in: the signature is its credential). Audited here as a view by
//! whoever asked there. An event forwarded here from below is fetched from there in turn.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use xueliang_proto::endpoint::now_ms;

use super::{ApiError, ApiState, blocking};
use crate::tier::{FETCH_HEADER, FetchError};

/// The answer to a failed fetch.
pub(super) fn fetch_error(e: FetchError) -> ApiError {
    let status = match &e {
        FetchError::NoWay(_) => StatusCode::NOT_FOUND,
        FetchError::Failed(_) | FetchError::Mismatch(_) => StatusCode::BAD_GATEWAY,
        FetchError::Refused(_) => StatusCode::FORBIDDEN,
    };
    ApiError::new(status, e.to_string())
}

/// The picture, as a JPEG response no one keeps.
pub(super) fn jpeg_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, no-store")], bytes)
        .into_response()
}

/// `GET /api/tier/pictures/{id}`: the full picture of event `id` for the tier above.
pub(super) async fn picture(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let header = headers.get(FETCH_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let request = state.fetch.check(header, &id).map_err(fetch_error)?;
    let store = state.store.clone();
    let lookup = id.clone();
    let record = blocking(move || Ok(store.get(&lookup)?)).await?;
    let Some(record) = record else {
        return Err(ApiError::not_found(format!("no event {id}")));
    };
    if record.snapshot_sha256.is_empty() || record.snapshot_sha256 != request.sha256 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("event {id}'s picture is not the one asked for"),
        ));
    }
    let by = format!("above:{}", request.by);
    let jpeg = match record.forwarded {
        Some(_) => state.fetch.picture(&record, &by).await.map_err(fetch_error)?,
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
