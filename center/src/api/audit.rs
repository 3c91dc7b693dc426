//! The audit log, newest first, in pages (an administrator's).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::paging::{page_size, query};
use super::{ApiError, ApiState, blocking};
use crate::access::{AuditEntry, Permission};

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
