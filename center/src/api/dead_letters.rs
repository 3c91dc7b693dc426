//! Dead letters: the payloads ingest refused, and why; an admin may purge them.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::paging::{page_size, query};
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::store::DeadLetter;
use xueliang_proto::endpoint::now_ms;

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

/// Body of `DELETE /api/dead-letters`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Purged {
    /// Entries deleted.
    pub purged: usize,
}

/// `DELETE /api/dead-letters`: deletes every dead letter (audited).
pub(super) async fn purge(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Purged>, ApiError> {
    caller.require(Permission::Administer)?;
    let (letters, audit, login) = (state.dead_letters, state.audit, caller.login().to_owned());
    let purged = blocking(move || {
        let purged = letters.purge()?;
        audit.record(
            now_ms(),
            &login,
            "purge_dead_letters",
            "",
            &format!("{purged} dead letters deleted"),
        )?;
        Ok(purged)
    })
    .await?;
    state.store.flush().await?;
    Ok(Json(Purged { purged }))
}
