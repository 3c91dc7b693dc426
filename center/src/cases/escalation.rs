//! Escalation: an alarm nobody acknowledged within `[escalation] after_s` of its arrival is
//! raised one severity and sent to its second route, as a workflow step the center takes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::{Cases, SYSTEM, facts};
use crate::domain::{Action, Status};
use crate::store::{AlarmFilter, StoreError, UpdateError};

impl Cases {
    /// Escalates every alarm still new `after` its arrival; returns how many.
    pub async fn escalate_due(&self) -> Result<usize, StoreError> {
        let routing = self.routing.current();
        let Some(escalation) = routing.escalation() else { return Ok(0) };
        let due_before = now_ms() - escalation.after.as_millis() as i64;
        let filter = AlarmFilter { status: Some(Status::New), ..Default::default() };
        let mut due = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.query(&filter, cursor.as_ref(), 500)?;
            due.extend(
                page.alarms
                    .into_iter()
                    .filter(|r| !r.escalated && r.received_time_ms <= due_before),
            );
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut escalated = 0;
        for r in due {
            let units = routing.escalation_units(&facts(&r));
            let note = format!("unacknowledged for {} s", escalation.after.as_secs());
            match self.act(&r.id, Action::Escalate, SYSTEM, &note, &units).await {
                Ok(now) => {
                    escalated += 1;
                    info!(alarm = %r.id, severity = %now.severity, units = %units.join(","), "alarm escalated");
                }
                // Acknowledged in the meantime.
                Err(UpdateError::Refused(_) | UpdateError::NotFound(_)) => {}
                Err(UpdateError::Store(e)) => return Err(e),
            }
        }
        Ok(escalated)
    }
}

/// Looks for alarms to escalate every `every` until `shutdown`.
pub async fn run_escalation(cases: Cases, every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = cases.escalate_due().await {
            warn!("escalation: {e}");
        }
    }
}
