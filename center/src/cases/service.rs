//! Case handling: a workflow step on an alarm is written to the store with the alarm's
//! indexes and its audit entry in one transaction, the units it names are queued their
//! webhooks, and only once all of that is flushed to disk is the dispatch sent and the step
//! answered (and told to the consoles).
//! Escalation (`escalation.rs`) is the same path, taken by the center for alarms left
//! unacknowledged too long.

use std::sync::Arc;

use tracing::info;
use xueliang_proto::endpoint::now_ms;
use xueliang_service::metrics::Histogram;

use super::feed::{AlarmFeed, Change};
use crate::access::AuditLog;
use crate::dispatch::Dispatcher;
use crate::domain::{Action, AlarmRecord, Refused, Request, apply};
use crate::routing::{AlarmFacts, Routing};
use crate::store::{Store, UpdateError};
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
    pub feed: AlarmFeed,
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
        self.take(id, Request { action, by, at_ms: now_ms(), note, units, late: None }).await
    }

    /// Takes the step `req` on alarm `id`: stored with the webhooks it queues and its audit
    /// entry, flushed, then published to the units it names and told to the consoles.
    pub(super) async fn take(
        &self,
        id: &str,
        req: Request<'_>,
    ) -> Result<AlarmRecord, UpdateError<Refused>> {
        if req.action == Action::Dispatch {
            self.check_units(req.units).map_err(UpdateError::Refused)?;
        }
        let (by, note, now) = (req.by, req.note, req.at_ms);
        // The transaction may run its closures again on a conflict: the last run's view counts.
        let first_dispatch = std::cell::Cell::new(false);
        // The step and its audit entry are written together: a crash keeps both or neither.
        let record = {
            let append = self.audit.begin()?;
            let (record, (), entry) = self.store.update_and(
                id,
                &append.trees(),
                |r| {
                    first_dispatch.set(r.units_here().is_empty());
                    apply(r, &req)
                },
                |r, t| {
                    let sent =
                        r.steps_here().last().map(|s| s.units.join(", ")).unwrap_or_default();
                    let detail = match sent.is_empty() {
                        true => note.to_owned(),
                        false => format!("units {sent}; {note}"),
                    };
                    append.write(t, now, by, req.action.as_str(), id, detail.trim_end_matches("; "))
                },
            )?;
            append.done(&entry);
            record
        };
        let step = record.steps_here().last().cloned();
        let sent = step.as_ref().map(|s| s.units.clone()).unwrap_or_default();
        self.dispatcher.queue(&record, &sent, by, note, now)?;
        self.store.flush().await?;
        // Only what is on disk is sent: a unit never acts on a step a crash would undo.
        if !sent.is_empty() {
            self.dispatcher.publish(&record, &sent, by, note, now).await;
            info!(alarm = %id, units = %sent.join(","), by = %by, "alarm dispatched");
            if first_dispatch.get() {
                self.dispatch_latency
                    .observe_ms(now.saturating_sub(record.received_time_ms).max(0) as u64);
            }
        }
        self.feed.publish(Change::Updated, record.clone());
        Ok(record)
    }
}
