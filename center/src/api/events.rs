//! The live event stream of the consoles: the alarm feed as server-sent events, each caller
//! given only the alarms it may see, for as long as the caller's session stays open (checked
//! every [`RECHECK`]: a disabled or removed user's stream ends within seconds).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::caller::Caller;
use super::{ApiError, ApiState};
use crate::access::Permission;

/// How often an open stream checks that its session is still open. An open stream counts as
/// use of the session: a console left watching the alarms is not logged out for being idle.
pub const RECHECK: Duration = Duration::from_secs(2);

/// `GET /api/events`: server-sent events, one `alarm` event (`{"change": "new"|"updated",
/// "alarm": {...}}`) per alarm stored or changed that the caller may see; `resync` when the
/// console fell behind and should reload its list. The stream ends when the session does.
pub(super) async fn events(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Permission::ReadAlarms)?;
    let rx = state.feed.subscribe();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let start = (rx, caller, state, recheck);
    let stream = futures_util::stream::unfold(
        start,
        |(mut rx, mut caller, state, mut recheck)| async move {
            loop {
                let received = tokio::select! {
                    received = rx.recv() => received,
                    _ = recheck.tick() => {
                        // The user as they are now (their role or unit may have changed).
                        caller = Caller::of_session(&state, caller.token.clone()).ok()?;
                        continue;
                    }
                };
                let event = match received {
                    Ok(e) if caller.may_see(&e.alarm).is_ok() => {
                        Event::default().event("alarm").json_data(&*e).ok()?
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        Event::default().event("resync").data("reload the list")
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, caller, state, recheck)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
