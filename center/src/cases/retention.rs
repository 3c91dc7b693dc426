//! The retention loop: the store's sweeps (clips first, then snapshots and alarms) run hourly,
//! each deletion logged and audited as the center's own step.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::SYSTEM;
use crate::access::AuditLog;
use crate::store::{Clips, ClipsSwept, Retention, Store, StoreError, Swept};

/// Sweeps at start and then every `every` until `shutdown`, logging and auditing deletions.
pub async fn run_retention(
    store: Store,
    clips: Clips,
    audit: AuditLog,
    retention: Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let (s, c) = (store.clone(), clips.clone());
        // Clips first: the clips of the alarms the store's sweep deletes go with them.
        let sweep = move || {
            let now = now_ms();
            Ok::<_, StoreError>((c.sweep(retention, now)?, s.sweep(retention, now)?))
        };
        match tokio::task::spawn_blocking(sweep).await {
            Ok(Ok((clipped, swept)))
                if swept != Swept::default() || clipped != ClipsSwept::default() =>
            {
                let detail = format!(
                    "{} snapshots, {} alarms, {} clips and {} partial clips past retention deleted",
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
