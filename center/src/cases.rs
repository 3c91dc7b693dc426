//! Case handling: a workflow step on an alarm is written to the store with the alarm's
//! indexes, the units it names are sent the dispatch, the step goes into the audit log, and
//! only once all of that is flushed to disk is the step answered. Escalation is the same path,
//! taken by the center for alarms left unacknowledged too long.

use std::sync::Arc;

use std::time::Duration;
use xueliang_proto::metrics::Histogram;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use crate::access::AuditLog;
use crate::dispatch::Dispatcher;
use crate::domain::{Action, AlarmRecord, Refused, Request, Status, apply};
use crate::live::{Change, Live};
use crate::routing::{AlarmFacts, Routing};
use crate::store::{AlarmFilter, Retention, Store, StoreError, Swept, UpdateError};
use crate::watched_file::WatchedFile;

/// The login under which the center itself acts.
pub const SYSTEM: &str = "system";

/// What case handling works with.
#[derive(Debug, Clone)]
pub struct Cases {
    /// The alarm store.
    pub store: Store,
    /// The audit log.
    pub audit: AuditLog,
    /// Sends dispatches.
    pub dispatcher: Dispatcher,
    /// Routing rules.
    pub routing: Arc<WatchedFile<Routing>>,
    /// Consoles watching.
    pub live: Live,
    /// From arrival to first dispatch, for `/metrics`.
    pub dispatch_latency: Arc<Histogram>,
}

/// Bucket bounds of the dispatch latency, seconds: a duty officer takes seconds to minutes;
/// escalation catches the rest.
pub const DISPATCH_LATENCY_BOUNDS: [f64; 10] =
    [5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0];

/// The routing facts of a stored alarm.
pub fn facts(r: &AlarmRecord) -> AlarmFacts<'_> {
    AlarmFacts {
        agent_id: &r.agent_id,
        camera_id: &r.camera_id,
        kind: &r.kind,
        severity: &r.severity,
        event_time_ms: r.event_time_ms,
    }
}

impl Cases {
    /// Refuses units routing does not know.
    pub fn check_units(&self, units: &[String]) -> Result<(), Refused> {
        let routing = self.routing.current();
        match units.iter().find(|u| routing.unit(u).is_none()) {
            None => Ok(()),
            Some(unknown) => {
                let known: Vec<&str> = routing.units().iter().map(|u| u.id.as_str()).collect();
                Err(Refused(format!("no unit {unknown:?} (units: {})", known.join(", "))))
            }
        }
    }

    /// Takes `action` on alarm `id` as `by`; returns the alarm as it is now.
    pub async fn act(
        &self,
        id: &str,
        action: Action,
        by: &str,
        note: &str,
        units: &[String],
    ) -> Result<AlarmRecord, UpdateError<Refused>> {
        if action == Action::Dispatch {
            self.check_units(units).map_err(UpdateError::Refused)?;
        }
        let now = now_ms();
        let req = Request { action, by, at_ms: now, note, units };
        // The transaction may run its closure again on a conflict: the last run's view counts.
        let first_dispatch = std::cell::Cell::new(false);
        let (record, ()) = self.store.update(id, |r| {
            first_dispatch.set(r.dispatched_to.is_empty());
            apply(r, &req)
        })?;
        let step = record.timeline.last().cloned();
        let sent = step.as_ref().map(|s| s.units.clone()).unwrap_or_default();
        if !sent.is_empty() {
            self.dispatcher.send(&record, &sent, by, note, now).await?;
            if first_dispatch.get() {
                self.dispatch_latency
                    .observe_ms(now.saturating_sub(record.received_time_ms).max(0) as u64);
            }
        }
        let detail = match sent.is_empty() {
            true => note.to_owned(),
            false => format!("units {}; {note}", sent.join(", ")),
        };
        self.audit.record(now, by, action.as_str(), id, detail.trim_end_matches("; "))?;
        self.store.flush().await?;
        self.live.publish(Change::Updated, record.clone());
        Ok(record)
    }

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
