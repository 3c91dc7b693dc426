//! The live event stream of the consoles: the alarm feed as server-sent events, each caller
//! given only the alarms it may see.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::caller::Caller;
use super::{ApiError, ApiState};
use crate::access::Permission;

/// `GET /api/events`: server-sent events, one `alarm` event (`{"change": "new"|"updated",
/// "alarm": {...}}`) per alarm stored or changed that the caller may see; `resync` when the
/// console fell behind and should reload its list.
pub(super) async fn events(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::ReadAlarms)?;
    let rx = state.feed.subscribe();
    let stream = futures_util::stream::unfold((rx, caller), |(mut rx, caller)| async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) if caller.may_see(&e.alarm).is_ok() => {
                    Event::default().event("alarm").json_data(&*e).ok()?
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    Event::default().event("resync").data("reload the list")
                }
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), (rx, caller)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
