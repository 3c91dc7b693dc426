//! The retention loop: the store's sweep run hourly, each deletion logged and audited as the
//! center's own step.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::SYSTEM;
use crate::access::AuditLog;
use crate::store::{Retention, Store, Swept};

/// Sweeps at start and then every `every` until `shutdown`, logging and auditing deletions.
pub async fn run_retention(
    store: Store,
    audit: AuditLog,
    retention: Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.sweep(retention, now_ms())).await {
            Ok(Ok(swept)) if swept != Swept::default() => {
                let detail = format!(
                    "{} snapshots and {} alarms past retention deleted",
                    swept.snapshots, swept.alarms
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
