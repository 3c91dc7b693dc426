//! Escalation: an alarm nobody acknowledged within `[escalation] after_s` of its arrival is
//! raised one severity and sent to its second route, as a workflow step the center takes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::service::{Cases, SYSTEM, facts};
use crate::domain::{Action, Status};
use crate::store::{StoreError, UpdateError};

/// Alarms escalated at most per round (a round a second): a backlog goes over a few rounds.
const PER_ROUND: usize = 1000;

impl Cases {
    /// Escalates every alarm still new `after` its arrival; returns how many.
    pub async fn escalate_due(&self) -> Result<usize, StoreError> {
        let routing = self.routing.current();
        let Some(escalation) = routing.escalation() else { return Ok(0) };
        let due_before = now_ms() - escalation.after.as_millis() as i64;
        // The index holds only those waiting: a round reads what is due, not every new alarm.
        let due = self.store.escalation_due(due_before, PER_ROUND)?;
        let mut escalated = 0;
        for r in due.into_iter().filter(|r| r.status == Status::New && !r.escalated) {
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
