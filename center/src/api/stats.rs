//! The center's counters: the store's size and ingest's counts for users who see the fleet
//! (`/api/stats`), and counters and gauges for Prometheus (`/metrics`).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_service::metrics::{Exposition, labels};

use super::caller::Caller;
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::domain::Status;

/// Body of `GET /api/stats`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stats {
    /// Alarms in the store.
    pub alarms: usize,
    /// New alarms stored since the center started.
    pub stored: u64,
    /// Redeliveries of stored alarms (receipted again, not stored again) since start.
    pub duplicates: u64,
    /// Events' updates applied since start.
    #[serde(default)]
    pub updates: u64,
    /// Payloads refused and dead-lettered since start.
    pub dead_lettered: u64,
}

/// `GET /api/stats`: the store's size and ingest's counters (for those who see the fleet).
pub(super) async fn stats(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Permission::ReadFleet)?;
    let c = &state.stats;
    Ok(Json(Stats {
        alarms: state.store.len(),
        stored: c.stored.load(Ordering::Relaxed),
        duplicates: c.duplicates.load(Ordering::Relaxed),
        updates: c.updates.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
    }))
}

/// `GET /metrics`: counters and gauges in Prometheus' text format (counts only, no alarm
/// content, so it needs no log-in).
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = blocking(move || {
        let c = &state.stats;
        let agents = state.fleet.list(&state.keys.agents())?;
        let agents_in = |online: Option<bool>| agents.iter().filter(|a| a.online == online).count();
        let mut e = Exposition::default();
        e.single("xl_center_alarms_stored_total", "counter", "New alarms stored since the center started (its rate is the ingest rate).", c.stored.load(Ordering::Relaxed));
        e.single("xl_center_alarms_duplicate_total", "counter", "Redelivered alarms receipted again, not stored again.", c.duplicates.load(Ordering::Relaxed));
        e.single("xl_center_event_updates_total", "counter", "Events' updates from agents applied since start.", c.updates.load(Ordering::Relaxed));
        e.single("xl_center_dead_letters_total", "counter", "Payloads refused and dead-lettered since start.", c.dead_lettered.load(Ordering::Relaxed));
        e.single("xl_center_clip_chunks_stored_total", "counter", "Chunks of events' video clips written to disk since start (a chunk received again is receipted again, not counted).", c.clip_chunks_stored.load(Ordering::Relaxed));
        e.single("xl_center_clip_chunks_refused_total", "counter", "Chunks of events' video clips refused and dead-lettered since start.", c.clip_chunks_refused.load(Ordering::Relaxed));
        e.single("xl_center_clips_completed_total", "counter", "Events' video clips complete, hashing to their signed SHA-256, and kept since start.", c.clips_completed.load(Ordering::Relaxed));
        e.single("xl_center_clips_failed_total", "counter", "Events' video clips complete but discarded since start: their bytes did not hash to the signed SHA-256.", c.clips_failed.load(Ordering::Relaxed));
        e.single("xl_center_unstored_total", "counter", "Publishes the store had no room for (or could not write) since start: acknowledged, not receipted; their boxes send them again.", c.unstored.load(Ordering::Relaxed));
        e.single("xl_center_over_quota_total", "counter", "Publishes over their agent's quota since start: acknowledged, not receipted; their boxes send them again.", c.over_quota.load(Ordering::Relaxed));
        e.single("xl_center_disk_free_bytes", "gauge", "Free bytes on the store's disk, as last checked.", state.store.health().free_bytes());
        e.single("xl_center_unreadable_records_total", "counter", "Stored alarm records found unreadable since start, each counted once: left out of lists, escalation and the export.", state.store.unreadable_records());
        e.single("xl_center_alarms", "gauge", "Alarms in the store.", state.store.len() as u64);
        e.single("xl_center_alarms_unacknowledged", "gauge", "Alarms no duty officer has acknowledged yet.", state.store.count(Status::New) as u64);
        e.single("xl_center_duties_held", "gauge", "1 while this process does the county's duties (escalation, supervision, retention, webhooks) and speaks for the center: always, alone; one at a time of several.", u64::from(state.announcer.speaks()));
        let t = &state.tiers;
        e.single("xl_center_tier_forwarded_total", "counter", "Events sent to the tier above since start (an event sent again counts again).", t.forwarded.load(Ordering::Relaxed));
        e.single("xl_center_tier_resends_total", "counter", "Times forwarding went back to the tier above's last receipt and sent from there since start.", t.resends.load(Ordering::Relaxed));
        e.single("xl_center_tier_backlog", "gauge", "Events numbered for the tier above and not yet receipted by it.", t.backlog.load(Ordering::Relaxed));
        e.single("xl_center_tier_received_total", "counter", "Events from the tier below stored since start.", t.received.load(Ordering::Relaxed));
        e.single("xl_center_tier_duplicates_total", "counter", "Events from the tier below received again (stored before) since start.", t.duplicates.load(Ordering::Relaxed));
        e.single("xl_center_tier_refused_total", "counter", "Messages from the tier below refused and dead-lettered since start.", t.refused.load(Ordering::Relaxed));
        let platforms = state.gb28181.platforms();
        let per_platform = |value: fn(&crate::gb28181::PlatformStatus) -> u64| -> Vec<(String, u64)> {
            platforms.iter().map(|p| (labels(&[("platform", &p.id), ("name", &p.name)]), value(p))).collect()
        };
        e.family("xl_center_gb28181_registered", "gauge", "1 while the center is registered with the GB/T 28181 platform above.", &per_platform(|p| u64::from(p.state == "registered")));
        e.family("xl_center_gb28181_registrations_total", "counter", "Registrations with the GB/T 28181 platform since start, refreshes included.", &per_platform(|p| p.registrations));
        e.family("xl_center_gb28181_keepalives_missed_total", "counter", "Keepalives the GB/T 28181 platform left unanswered or refused since start.", &per_platform(|p| p.keepalives_missed));
        e.family("xl_center_gb28181_alarms_sent_total", "counter", "Alarms the GB/T 28181 platform answered since start.", &per_platform(|p| p.alarms_sent));
        e.family("xl_center_gb28181_alarms_waiting", "gauge", "Alarms queued for the GB/T 28181 platform, not yet answered.", &per_platform(|p| p.alarms_waiting));
        e.single("xl_center_gb28181_requests_refused_total", "counter", "SIP requests from GB/T 28181 platforms refused since start (unknown sender, malformed or hostile document, unsupported command or method).", state.gb28181.refused.load(Ordering::Relaxed));
        e.single("xl_center_gb28181_queries_answered_total", "counter", "Catalog, device-info and device-status queries answered since start.", state.gb28181.answered.load(Ordering::Relaxed));
        e.family(
            "xl_center_agents",
            "gauge",
            "Agents by their last retained status (unknown: registered, never heard from).",
            &[
                (labels(&[("state", "online")]), agents_in(Some(true))),
                (labels(&[("state", "offline")]), agents_in(Some(false))),
                (labels(&[("state", "unknown")]), agents_in(None)),
            ],
        );
        e.histogram(
            "xl_center_dispatch_latency_seconds",
            "From an alarm's arrival at the center to its first dispatch to a unit (by a duty officer or by escalation).",
            &state.cases.dispatch_latency,
        );
        Ok(e.finish())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
