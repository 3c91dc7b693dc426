//! `GET /api/counties`: at a tier above, the counties whose events were forwarded here, each
//! with its events counted by status and kind and its boxes online as its center last
//! reported, for the console's view by county (its drill-down is the alarm list's `county`
//! filter).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::alarms::{MAX_TIME_CHARS, time_bound};
use super::caller::Caller;
use super::paging::{at_most, query as query_string};
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::store::{CountyCounts, DAY_MS, FromBelow};

/// Query of `GET /api/counties`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountiesQuery {
    /// Event time at or after: UTC ms, or RFC 3339 (default: a day before `to`).
    pub from: Option<String>,
    /// Event time before: UTC ms, or RFC 3339 (default: now).
    pub to: Option<String>,
}

/// Body of `GET /api/counties`.
#[derive(Debug, Serialize)]
pub struct Counties {
    /// The events counted: event time at or after, UTC ms.
    pub from_ms: i64,
    /// And before, UTC ms.
    pub to_ms: i64,
    /// The counties with events in that time or boxes reported, by name.
    pub counties: Vec<County>,
}

/// One county: its events counted, and its boxes as its center last reported them.
#[derive(Debug, Serialize)]
pub struct County {
    /// Its events.
    #[serde(flatten)]
    pub counts: CountyCounts,
    /// Its boxes (none: not reported).
    pub boxes: Option<Boxes>,
}

/// A county's boxes.
#[derive(Debug, Serialize)]
pub struct Boxes {
    /// Connected.
    pub online: u32,
    /// Registered.
    pub total: u32,
    /// When its center counted them, UTC ms.
    pub as_of_ms: i64,
}

/// `GET /api/counties`: the counties' events forwarded here, counted (admins and duty
/// officers: a police user sees only its unit's alarms).
pub(super) async fn counties(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<CountiesQuery>, QueryRejection>,
) -> Result<Json<Counties>, ApiError> {
    caller.require(Permission::ActOnAlarms)?;
    let q = query_string(query)?;
    for (name, value) in [("from", &q.from), ("to", &q.to)] {
        at_most(name, value.as_deref(), MAX_TIME_CHARS)?;
    }
    let to_ms = time_bound("to", q.to.as_deref())?.unwrap_or_else(now_ms);
    let from_ms = time_bound("from", q.from.as_deref())?.unwrap_or(to_ms - DAY_MS);
    if from_ms >= to_ms {
        return Err(ApiError::bad_request(format!(
            "from ({from_ms}) is not before to ({to_ms}): nothing to count"
        )));
    }
    let store = state.store.clone();
    let (counts, boxes) = blocking(move || {
        let boxes = FromBelow::open(&store)?.boxes()?;
        Ok((store.count_by_county(from_ms, to_ms)?, boxes))
    })
    .await?;
    let mut counties: BTreeMap<String, County> = counts
        .into_iter()
        .map(|counts| (counts.county.clone(), County { counts, boxes: None }))
        .collect();
    for b in boxes {
        let county = counties.entry(b.county.clone()).or_insert_with(|| County {
            counts: CountyCounts { county: b.county.clone(), ..Default::default() },
            boxes: None,
        });
        county.boxes = Some(Boxes { online: b.online, total: b.total, as_of_ms: b.as_of_ms });
    }
    Ok(Json(Counties { from_ms, to_ms, counties: counties.into_values().collect() }))
}
