//! The JSON Lines export of every alarm record while the center runs (an administrator's;
//! `xl-center export` does the same with the center stopped).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use xueliang_proto::endpoint::now_ms;

use super::caller::Caller;
use super::{ApiError, ApiState};
use crate::access::Permission;

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
