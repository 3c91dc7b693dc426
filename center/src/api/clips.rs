//! Events' video clips: one clip's MP4, whole or one byte range (a browser's video element
//! fetches and seeks by ranges), for whoever may see its event's pictures. The clips of an event
//! are listed in its record (`clips`); those of an event forwarded from the tier below are
//! fetched from there.

use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::topics::is_valid_id;

use super::caller::Caller;
use super::paging::query as query_string;
use super::{ApiError, ApiState, blocking};
use crate::domain::AlarmRecord;

/// How long one user's viewing of one clip is one view in the audit log, ms.
const VIEW_MS: i64 = 10 * 60 * 1000;
/// Bytes read from the file at a time.
const PIECE: u64 = 256 * 1024;

/// Query of `GET /api/clips/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClipQuery {
    /// `1`: as a file to save (`Content-Disposition: attachment`).
    download: Option<String>,
}

/// What a request's `Range` asks of a clip of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// All of it: no `Range`, a unit other than bytes, or several ranges (answered whole, as
    /// RFC 9110 allows).
    All,
    /// These bytes.
    Part(Range<u64>),
    /// A malformed range, or one that starts at or beyond the end.
    Unsatisfiable,
}

/// What `range` (a `Range` header) asks of a clip of `len` bytes.
fn wanted(range: Option<&HeaderValue>, len: u64) -> Wanted {
    let Some(range) = range else { return Wanted::All };
    let Some((unit, set)) = range.to_str().ok().and_then(|r| r.split_once('=')) else {
        return Wanted::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Wanted::All;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Wanted::Unsatisfiable };
    let number = |s: &str| match s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse::<u64>().ok(),
        false => None,
    };
    let part = match (first.trim(), last.trim()) {
        // The last n bytes.
        ("", suffix) => number(suffix).filter(|&n| n > 0).map(|n| len.saturating_sub(n)..len),
        (first, "") => number(first).map(|start| start..len),
        (first, last) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => Some(start..end.saturating_add(1).min(len)),
            _ => None,
        },
    };
    match part {
        Some(r) if r.start < len => Wanted::Part(r),
        _ => Wanted::Unsatisfiable,
    }
}

/// A clip opened: its file, or its bytes.
pub(super) enum Opened {
    /// The file, read a piece at a time.
    File(Arc<std::fs::File>),
    /// The bytes.
    Bytes(Bytes),
}

/// The record of the event clip `id` shows, if `caller` may see its pictures. A clip its
/// event's record does not list (the event not stored yet, or another agent's) is not served.
async fn visible(state: &ApiState, caller: &Caller, id: &str) -> Result<AlarmRecord, ApiError> {
    let missing = || ApiError::not_found(format!("no clip {id}"));
    if !is_valid_id(id) {
        return Err(missing());
    }
    let entry = state.clips.get(id)?.ok_or_else(missing)?;
    let event = state
        .store
        .get(&entry.event_id)?
        .filter(|r| r.clips.iter().any(|c| c.clip_id == id))
        .ok_or_else(missing)?;
    caller.may_see(&event)?;
    Ok(event)
}

/// Clip `clip_id` of `event` opened, and its length: for an event forwarded from below, fetched
/// from there for `by` (checked against the hash its box signed); else its file here, if
/// `event` lists it and it is that event's.
pub(super) async fn open(
    state: &ApiState,
    event: &AlarmRecord,
    clip_id: &str,
    by: &str,
) -> Result<(Opened, u64), ApiError> {
    let missing = || ApiError::not_found(format!("event {} has no clip {clip_id}", event.id));
    let clip = event.clips.iter().find(|c| c.clip_id == clip_id).ok_or_else(missing)?;
    if event.forwarded.is_some() {
        let bytes = state.fetch.clip(event, clip, by).await?;
        let len = bytes.len() as u64;
        return Ok((Opened::Bytes(bytes), len));
    }
    state.clips.get(clip_id)?.filter(|e| e.event_id == event.id).ok_or_else(missing)?;
    let path = state.clips.path(clip_id);
    let open = move || {
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        Ok::<_, std::io::Error>((file, len))
    };
    match blocking(move || Ok(open())).await? {
        Ok((file, len)) => Ok((Opened::File(Arc::new(file)), len)),
        // Retention deletes the file first, then the record.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::not_found(format!("no clip {clip_id}")))
        }
        Err(e) => Err(ApiError::internal(format!("clip {clip_id}: {e}"))),
    }
}

/// Audits `login`'s viewing of clip `clip_id` (`view_clip` on its event, the clip's id as the
/// detail) once in [`VIEW_MS`]. A browser's video element fetches one viewing in many range
/// requests, and the first need not start at byte 0 (it resumes, or seeks), so every request
/// counts, but only the first in a while is written.
/// A download (`download_clip`) is its own entry: a copy leaves the console.
pub(super) async fn audit_view(
    state: &ApiState,
    login: &str,
    event_id: &str,
    clip_id: &str,
    download: bool,
) -> Result<(), ApiError> {
    let now = now_ms();
    let action = if download { "download_clip" } else { "view_clip" };
    let recent = state.audit.list(Some(event_id), None, 200)?;
    let seen = recent
        .iter()
        .take_while(|e| e.time_ms > now - VIEW_MS)
        .any(|e| e.action == action && e.user == login && e.detail == clip_id);
    if !seen {
        state.audit.record(now, login, action, event_id, clip_id)?;
        state.store.flush().await?;
    }
    Ok(())
}

/// The bytes `range` of `clip`, a file read a piece at a time off the async threads.
pub(super) fn body(clip: Opened, range: Range<u64>) -> Body {
    let file = match clip {
        Opened::Bytes(bytes) => {
            return Body::from(bytes.slice(range.start as usize..range.end as usize));
        }
        Opened::File(file) => file,
    };
    let pieces = futures_util::stream::unfold(range, move |range| {
        let file = file.clone();
        async move {
            if range.is_empty() {
                return None;
            }
            let (at, n) = (range.start, (range.end - range.start).min(PIECE));
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; n as usize];
                file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            // A failed read ends the body: the client sees it short.
            let rest = if read.is_ok() { at + n..range.end } else { range.end..range.end };
            Some((read, rest))
        }
    });
    Body::from_stream(pieces)
}

/// Whether the query asks for a download.
fn download(query: Result<Query<ClipQuery>, QueryRejection>) -> Result<bool, ApiError> {
    match query_string(query)?.download.as_deref() {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(other) => {
            Err(ApiError::bad_request(format!("download={other:?}: 1 (save as a file) or 0")))
        }
    }
}

/// `GET /api/clips/{id}`: the clip's MP4, whole (200) or the one byte range asked for (206);
/// `?download=1` to save it. Viewing is audited.
pub(super) async fn clip(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ClipQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let download = download(query)?;
    let event = visible(&state, &caller, &id).await?;
    serve(&state, &caller, &event, &id, download, &headers).await
}

/// `GET /api/alarms/{id}/clips/{clip_id}`: as `GET /api/clips/{clip_id}`, for a clip of event
/// `id`, which may have been forwarded from the tier below (the clip is then fetched from there).
pub(super) async fn of_event(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, clip_id)): Path<(String, String)>,
    query: Result<Query<ClipQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let download = download(query)?;
    let event = super::alarms::visible(&state, &caller, &id).await?;
    serve(&state, &caller, &event, &clip_id, download, &headers).await
}

/// Clip `id` of `event`, whole or the range `headers` ask for, audited.
async fn serve(
    state: &ApiState,
    caller: &Caller,
    event: &AlarmRecord,
    id: &str,
    download: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (clip, len) = open(state, event, id, caller.login()).await?;
    let (status, range) = match wanted(headers.get(header::RANGE), len) {
        Wanted::All => (StatusCode::OK, 0..len),
        Wanted::Part(range) => (StatusCode::PARTIAL_CONTENT, range),
        Wanted::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("clip {id} has {len} bytes: ask for one range within them (bytes=0-1023)"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                refused.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(refused);
        }
    };
    audit_view(state, caller.login(), &event.id, id, download).await?;
    let mut answer = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, no-store")
        .header(header::CONTENT_LENGTH, range.end - range.start);
    if status == StatusCode::PARTIAL_CONTENT {
        let content_range = format!("bytes {}-{}/{len}", range.start, range.end - 1);
        answer = answer.header(header::CONTENT_RANGE, content_range);
    }
    if download {
        answer = answer
            .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.mp4\""));
    }
    answer.body(body(clip, range)).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(range: &str, len: u64) -> Wanted {
        wanted(Some(&HeaderValue::from_str(range).unwrap()), len)
    }

    #[test]
    fn one_byte_range_is_served_and_a_bad_one_refused() {
        use Wanted::*;
        assert_eq!(wanted(None, 100), All);
        assert_eq!(ask("bytes=0-", 100), Part(0..100));
        assert_eq!(ask("bytes=10-19", 100), Part(10..20));
        assert_eq!(ask("bytes=90-1000", 100), Part(90..100), "an end beyond is the end");
        assert_eq!(ask("bytes=99-99", 100), Part(99..100));
        assert_eq!(ask("bytes=-10", 100), Part(90..100), "the last ten");
        assert_eq!(ask("bytes=-1000", 100), Part(0..100));
        assert_eq!(ask("Bytes= 5-6", 100), Part(5..7));
        for bad in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=20-10",
            "bytes=-0",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes=+1-2",
            "nonsense",
        ] {
            assert_eq!(ask(bad, 100), Unsatisfiable, "{bad}");
        }
        assert_eq!(ask("bytes=0-1,5-9", 100), All, "several ranges: all of it");
        assert_eq!(ask("items=0-1", 100), All, "another unit is ignored");
    }
}
