//! The responder units routing knows, for the console's dispatch.

use axum::Json;
use axum::extract::State;

use super::caller::Caller;
use super::{ApiError, ApiState};
use crate::access::Permission;
use crate::routing::Unit;

/// `GET /api/units`: the responder units routing knows.
pub(super) async fn units(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<Unit>>, ApiError> {
    caller.require(Permission::ReadAlarms)?;
    Ok(Json(state.cases.routing.current().units().to_vec()))
}
