//! The retention loop: the store's sweeps (clips first, then snapshots and alarms, and dead
//! letters), then the webhook deliveries of deleted alarms (their bodies hold the alarm), the
//! boxes no longer registered and silent as long as alarms are kept, and the audit log on its
//! own, longer, setting, run hourly, each deletion logged and audited as the center's own step.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::SYSTEM;
use crate::access::AuditLog;
use crate::dispatch::Webhooks;
use crate::fleet::{AgentKeys, Fleet};
use crate::store::{Clips, ClipsSwept, DAY_MS, DeadLetters, Retention, Store, StoreError, Swept};

/// What retention sweeps.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Alarms and snapshots.
    pub store: Store,
    /// Video clips.
    pub clips: Clips,
    /// Refused messages.
    pub dead_letters: DeadLetters,
    /// Webhook deliveries.
    pub webhooks: Webhooks,
    /// What is known of each box.
    pub fleet: Fleet,
    /// The boxes registered (never forgotten).
    pub keys: Arc<AgentKeys>,
}

/// Sweeps at start and then every `every` until `shutdown`, logging and auditing deletions.
pub async fn run_retention(
    kept: Kept,
    audit: AuditLog,
    retention: Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    let store = kept.store.clone();
    loop {
        let (k, a) = (kept.clone(), audit.clone());
        // Clips first: the clips of the alarms the store's sweep deletes go with them.
        let sweep = move || {
            let now = now_ms();
            let refused_before = now - i64::from(retention.dead_letter_days) * DAY_MS;
            let silent_before = now - i64::from(retention.alarm_days) * DAY_MS;
            let audited_before = now - i64::from(retention.audit_days) * DAY_MS;
            let clipped = k.clips.sweep(retention, now)?;
            let swept = k.store.sweep(retention, now)?;
            let refused = k.dead_letters.sweep(refused_before)?;
            let deliveries = k.webhooks.sweep(|alarm| Ok(k.store.get(alarm)?.is_some()))?;
            let boxes = k.fleet.sweep(&k.keys.agents(), silent_before)?;
            let audited = a.sweep(audited_before)?;
            let others = [refused, deliveries, boxes, audited];
            Ok::<_, StoreError>((clipped, swept, others))
        };
        match tokio::task::spawn_blocking(sweep).await {
            Ok(Ok((clipped, swept, others)))
                if swept != Swept::default()
                    || clipped != ClipsSwept::default()
                    || others.iter().any(|n| *n > 0) =>
            {
                let [refused, deliveries, boxes, audited] = others;
                let detail = format!(
                    "{} snapshots, {} alarms, {} clips, {} partial clips, {refused} dead letters, \
                     {deliveries} webhook deliveries, {boxes} unregistered boxes and {audited} \
                     audit entries past retention deleted",
                    swept.snapshots, swept.alarms, clipped.clips, clipped.partials
                );
                info!("retention: {detail}");
                if let Err(e) = audit.record(now_ms(), SYSTEM, "retention", "", &detail) {
                    warn!("cannot audit retention: {e}");
                }
                if let Err(e) = store.flush().await {
                    warn!("retention: {e}");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!("retention: {e}"),
            Err(e) => warn!("retention: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
