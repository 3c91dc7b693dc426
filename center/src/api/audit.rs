//! The audit log, newest first, in pages (an administrator's); and an alarm's proof: what its
//! agent signed, kept beside it, checked against the stored record.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::alarms::visible;
use super::caller::Caller;
use super::paging::{page_size, query};
use super::{ApiError, ApiState, blocking};
use crate::access::{AuditEntry, Permission};
use crate::store::{Proof, ProofError, Proofs};

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

/// Body of `GET /api/alarms/{id}/proof`: what the alarm's agent signed, kept beside it, and
/// whether it proves the stored record.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmProof {
    /// The alarm.
    pub id: String,
    /// The agent whose key it is checked with.
    pub agent_id: String,
    /// The key registered for the agent when the alarm arrived (base64); absent if what is
    /// kept is unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The alarm as received, without its picture (base64): what the signature covers, and
    /// the signature; absent if unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
    /// The updates of its event applied, in order, each as kept.
    #[serde(default)]
    pub updates: Vec<Proof>,
    /// Whether every signature verifies with the agent's registered key and the stored record
    /// is what was signed.
    pub verified: bool,
    /// `signed by agent X key K at T`, or what does not verify or match.
    pub result: String,
}

/// `GET /api/alarms/{id}/proof`: for whoever may view the alarm; each view is audited.
pub(super) async fn proof(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlarmProof>, ApiError> {
    let alarm = visible(&state, &caller, &id).await?;
    let key = state.keys.get(&alarm.agent_id);
    let (store, at) = (state.store.clone(), id.clone());
    let (kept, verdict) = blocking(move || {
        let kept = match store.proofs(&at) {
            Ok(kept) => kept,
            Err(ProofError::Store(e)) => return Err(e.into()),
            Err(_) => None,
        };
        let verdict = match store.prove(&at, key.as_ref()) {
            Err(ProofError::Store(e)) => return Err(e.into()),
            Err(ProofError::NotKept(_)) if kept.is_none() => {
                return Err(ApiError::not_found(format!(
                    "no signed message is kept for alarm {at} (stored by a center that did not keep them yet)"
                )));
            }
            verdict => verdict,
        };
        Ok((kept, verdict))
    })
    .await?;
    state.audit.record(now_ms(), caller.login(), "view_proof", &id, "")?;
    state.store.flush().await?;
    let (key, signed, updates) = match kept {
        Some(Proofs { alarm, updates }) => (Some(alarm.key), Some(alarm.signed), updates),
        None => (None, None, Vec::new()),
    };
    Ok(Json(AlarmProof {
        id,
        agent_id: alarm.agent_id,
        key,
        signed,
        updates,
        verified: verdict.is_ok(),
        result: verdict.map_or_else(|e| e.to_string(), |p| p.to_string()),
    }))
}
