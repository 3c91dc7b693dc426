//! The retention loop: the store's sweeps (clips first, then snapshots and alarms, and dead
//! letters) run hourly, each deletion logged and audited as the center's own step.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::SYSTEM;
use crate::access::AuditLog;
use crate::store::{Clips, ClipsSwept, DAY_MS, DeadLetters, Retention, Store, StoreError, Swept};

/// Sweeps at start and then every `every` until `shutdown`, logging and auditing deletions.
pub async fn run_retention(
    store: Store,
    clips: Clips,
    dead_letters: DeadLetters,
    audit: AuditLog,
    retention: Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let (s, c, d) = (store.clone(), clips.clone(), dead_letters.clone());
        // Clips first: the clips of the alarms the store's sweep deletes go with them.
        let sweep = move || {
            let now = now_ms();
            let refused_before = now - i64::from(retention.dead_letter_days) * DAY_MS;
            Ok::<_, StoreError>((
                c.sweep(retention, now)?,
                s.sweep(retention, now)?,
                d.sweep(refused_before)?,
            ))
        };
        match tokio::task::spawn_blocking(sweep).await {
            Ok(Ok((clipped, swept, refused)))
                if swept != Swept::default() || clipped != ClipsSwept::default() || refused > 0 =>
            {
                let detail = format!(
                    "{} snapshots, {} alarms, {} clips, {} partial clips and {refused} dead letters past retention deleted",
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
