//! Supervision: the center watches its boxes, its own disk and its dispatches, and raises what
//! goes wrong as events of its own, stored, routed, escalated and audited like any alarm:
//! - a box silent past `[supervision] agent_silent_after_s` (offline by its last will, or
//!   nothing heard): `agent_offline` once, and `agent_back` once it is heard again;
//! - a box whose outbox dropped alarms (its Health's count went up): `agent_dropped_alarms`;
//! - a box whose clock is off by more than `clock_skew_s`: `agent_clock_off`, once while it is;
//! - the center's disk below its `--min-free-mib`: `center_disk_low`, once while it is;
//! - a webhook delivery given up: `dispatch_failed` (the delivery shows on its alarm too).
//!
//! And dispatches: one a unit has not marked received is published again every
//! `resend_dispatch_s` (same dispatch id: the unit acts once) unless its webhook delivered it,
//! and a unit that has not received it `receive_within_s` after it was sent makes the alarm
//! overdue (raised one severity, sent again and to the second route), once per unit; the
//! second route is not made overdue in turn.
//!
//! What is open is kept in the `supervision` tree, written before the event it opens and made
//! durable by the same flush, so a restart raises nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;

use super::feed::Change;
use super::service::{Cases, SYSTEM, facts};
use crate::dispatch::{DeliveryState, Webhooks, dispatch_id, dispatched_alarm};
use crate::domain::{Action, AlarmRecord, Request, Status, Step, unit_progress};
use crate::fleet::{AgentKeys, AgentView, Fleet};
use crate::store::{AlarmFilter, Inserted, StoreError, UpdateError};

/// The agent id of the events about the center itself.
pub const CENTER: &str = "center";

/// A condition found and not yet over.
#[derive(Debug, Serialize, Deserialize)]
struct Open {
    /// Since when it holds, UTC ms.
    since_ms: i64,
}

/// What supervision works with.
pub struct Supervisor {
    cases: Cases,
    fleet: Fleet,
    /// Only registered boxes are watched: anyone may claim a status on an open broker.
    keys: Arc<AgentKeys>,
    webhooks: Webhooks,
    /// Below this many free bytes the center's disk runs low.
    min_free_bytes: u64,
    /// Conditions open (`offline/…`, `clock/…`, `disk`) and outbox drop counts seen
    /// (`dropped/…`).
    state: crate::store::Tree,
    /// When this process began to listen: nobody is silent for the time the center was down.
    started_ms: i64,
    /// When each dispatch not yet received was last published, by dispatch id.
    published: HashMap<String, i64>,
}

impl Supervisor {
    /// Supervision over `cases`, the `fleet` of boxes registered in `keys`, and the
    /// `webhooks`, its state in the store.
    pub fn new(
        cases: Cases,
        fleet: Fleet,
        keys: Arc<AgentKeys>,
        webhooks: Webhooks,
        min_free_bytes: u64,
    ) -> Result<Self, StoreError> {
        let state = cases.store.open_tree("supervision")?;
        let started_ms = now_ms();
        Ok(Self {
            cases,
            fleet,
            keys,
            webhooks,
            min_free_bytes,
            state,
            started_ms,
            published: HashMap::new(),
        })
    }

    fn open(&self, key: &str) -> Result<Option<Open>, StoreError> {
        let Some(bytes) = self.state.get(key)? else { return Ok(None) };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    fn set_open(&self, key: &str, since_ms: i64) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&Open { since_ms }).unwrap_or_default();
        self.state.insert(key, json)?;
        Ok(())
    }

    /// Stores a supervision event, routed like an alarm, audited, flushed and told to the
    /// consoles; an id stored before is left as it was.
    async fn raise(
        &self,
        id: String,
        agent: &str,
        kind: &str,
        severity: &str,
        detail: String,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut record = AlarmRecord::supervision(id, agent, kind, severity, detail, now);
        let routing = self.cases.routing.current();
        record.routed_to = routing.route(&facts(&record));
        record.location = routing.location(agent, "").unwrap_or_default();
        if self.cases.store.insert(&record, &[])? == Inserted::New {
            self.cases.audit.record(now, SYSTEM, "raise", &record.id, &record.detail)?;
            self.cases.store.flush().await?;
            warn!(event = %record.id, kind, agent, "{}", record.detail);
            self.cases.feed.publish(Change::New, record);
        }
        Ok(())
    }

    /// One round: boxes, disk, given-up webhooks, dispatches not yet received.
    pub async fn check(&mut self) -> Result<(), StoreError> {
        let now = now_ms();
        let settings = self.cases.routing.current().supervision();
        for agent in self.fleet.list(&self.keys.agents())?.into_iter().filter(|v| v.registered) {
            self.check_agent(&agent, now, settings.silent_after, settings.clock_skew).await?;
        }
        self.check_disk(now).await?;
        self.check_webhooks().await?;
        self.check_dispatches(now, settings.receive_within, settings.resend_every).await?;
        self.cases.store.flush().await
    }

    async fn check_agent(
        &self,
        v: &AgentView,
        now: i64,
        silent_after: Duration,
        clock_skew: Duration,
    ) -> Result<(), StoreError> {
        let agent = v.agent_id.as_str();
        // Silent: offline by its last will since then, or nothing heard since then.
        let heard = match v.online {
            Some(false) => v.since_ms,
            _ => v.last_seen_ms,
        };
        let key = format!("offline/{agent}");
        let open = self.open(&key)?;
        if let Some(heard) = heard {
            let silent_for = now - heard.max(self.started_ms);
            if open.is_none() && silent_for >= silent_after.as_millis() as i64 {
                let detail = format!(
                    "{agent} has not been heard from for {} s (more than {} s): its cameras are \
                     not watched",
                    silent_for / 1000,
                    silent_after.as_secs()
                );
                let id = format!("sup-agent_offline-{agent}-{heard}");
                self.set_open(&key, heard)?;
                self.raise(id, agent, "agent_offline", "high", detail).await?;
            }
            if let Some(o) = open.filter(|o| v.online == Some(true) && heard > o.since_ms) {
                let detail = format!(
                    "{agent} is heard again, after {} s of silence",
                    (heard - o.since_ms) / 1000
                );
                let id = format!("sup-agent_back-{agent}-{}", o.since_ms);
                self.state.remove(&key)?;
                self.raise(id, agent, "agent_back", "info", detail).await?;
            }
        }
        if let Some(h) = &v.health {
            let key = format!("dropped/{agent}");
            let seen: u64 =
                self.state.get(&key)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(0);
            // A count lower than seen: the box restarted, and counts from zero again.
            let new =
                if h.outbox_dropped < seen { h.outbox_dropped } else { h.outbox_dropped - seen };
            // Kept before the event is raised: its flush makes both durable at once.
            if h.outbox_dropped != seen {
                self.state
                    .insert(&key, serde_json::to_vec(&h.outbox_dropped).unwrap_or_default())?;
            }
            if new > 0 {
                let detail = format!(
                    "{agent}'s outbox dropped {new} alarm(s) it could not keep ({} since it \
                     started): look at its disk",
                    h.outbox_dropped
                );
                let id = format!("sup-agent_dropped_alarms-{agent}-{}", h.time_ms);
                self.raise(id, agent, "agent_dropped_alarms", "high", detail).await?;
            }
        }
        if let Some(offset) = v.clock_offset_ms() {
            let key = format!("clock/{agent}");
            let skew = clock_skew.as_millis() as i64;
            let open = self.open(&key)?;
            if open.is_none() && offset.abs() > skew {
                let (how, by) = if offset > 0 { ("ahead", offset) } else { ("behind", -offset) };
                let detail = format!(
                    "{agent}'s clock is {} s {how} of the center's (more than {} s): its event \
                     times are wrong; check its time synchronisation",
                    by / 1000,
                    clock_skew.as_secs()
                );
                let id = format!("sup-agent_clock_off-{agent}-{now}");
                self.set_open(&key, now)?;
                self.raise(id, agent, "agent_clock_off", "low", detail).await?;
            } else if open.is_some() && offset.abs() <= skew / 2 {
                // Half the limit, so a clock hovering at it is not raised again and again.
                self.state.remove(&key)?;
                info!(agent, "its clock is right again");
            }
        }
        Ok(())
    }

    async fn check_disk(&self, now: i64) -> Result<(), StoreError> {
        let free = self.cases.store.health().free_bytes();
        let open = self.open("disk")?;
        if open.is_none() && free < self.min_free_bytes {
            let detail = format!(
                "the center's disk has {} MiB free, less than the {} MiB it keeps: alarms will \
                 wait on their boxes once it is full; free space or add a disk",
                free >> 20,
                self.min_free_bytes >> 20
            );
            let id = format!("sup-center_disk_low-{now}");
            self.set_open("disk", now)?;
            self.raise(id, CENTER, "center_disk_low", "high", detail).await?;
        } else if open.is_some()
            && free >= self.min_free_bytes.saturating_add(self.min_free_bytes / 10)
        {
            self.state.remove("disk")?;
            info!("the center's disk has room again");
        }
        Ok(())
    }

    async fn check_webhooks(&self) -> Result<(), StoreError> {
        for failed in self.webhooks.given_up()? {
            let id = &failed.dispatch_id;
            let alarm = dispatched_alarm(id);
            let agent = self.cases.store.get(alarm)?.map(|r| r.agent_id).unwrap_or_default();
            let detail = format!(
                "the webhook of {} did not take alarm {alarm} after {} attempts ({}): the unit \
                 may not know of it; call it",
                failed.unit_id,
                failed.attempts,
                failed.last_error.as_deref().unwrap_or("no answer")
            );
            let event = format!("sup-dispatch_failed-{id}");
            self.raise(event, &agent, "dispatch_failed", "high", detail).await?;
            self.webhooks.raised(id)?;
        }
        Ok(())
    }

    async fn check_dispatches(
        &mut self,
        now: i64,
        receive_within: Duration,
        resend_every: Duration,
    ) -> Result<(), StoreError> {
        let mut waiting = Vec::new();
        for status in [Status::New, Status::Acknowledged, Status::Dispatched] {
            let filter = AlarmFilter { status: Some(status), ..Default::default() };
            let mut cursor = None;
            loop {
                let page = self.cases.store.query(&filter, cursor.as_ref(), 500)?;
                // Of an event forwarded from below, this center's own dispatches: its county's
                // are the county's to watch and send again.
                waiting.extend(page.alarms.into_iter().filter(|r| !r.units_here().is_empty()));
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
        let mut still = HashMap::new();
        for r in waiting {
            for unit in r.units_here() {
                if unit_progress(&r, unit).is_some() {
                    continue;
                }
                let Some(sent) = first_sent(&r, unit) else { continue };
                let id = dispatch_id(&r.id, unit);
                // The second route an overdue step sent it to is not made overdue in turn:
                // the alarm goes up once per late unit, not in a chain.
                // An event forwarded from below is never escalated here: only sent again.
                if now - sent.at_ms >= receive_within.as_millis() as i64
                    && sent.action != Action::Overdue
                    && !r.overdue.contains(unit)
                    && r.forwarded.is_none()
                {
                    self.overdue(&r, unit, receive_within).await?;
                }
                let delivered =
                    self.webhooks.status(&id)?.is_some_and(|s| s.state == DeliveryState::Delivered);
                let last = self.published.get(&id).copied().unwrap_or(sent.at_ms);
                if !delivered && now - last >= resend_every.as_millis() as i64 {
                    let units = [unit.clone()];
                    self.cases
                        .dispatcher
                        .publish(&r, &units, &sent.by, &sent.note, sent.at_ms)
                        .await;
                    still.insert(id, now);
                } else {
                    still.insert(id, last);
                }
            }
        }
        // Forget what was received or closed.
        self.published = still;
        Ok(())
    }

    async fn overdue(
        &self,
        r: &AlarmRecord,
        unit: &str,
        receive_within: Duration,
    ) -> Result<(), StoreError> {
        let units = self.cases.routing.current().escalation_units(&facts(r));
        let note = format!("{unit} did not mark it received within {} s", receive_within.as_secs());
        let req = Request {
            action: Action::Overdue,
            by: SYSTEM,
            at_ms: now_ms(),
            note: &note,
            units: &units,
            late: Some(unit),
        };
        match self.cases.take(&r.id, req).await {
            Ok(now) => {
                warn!(alarm = %r.id, unit, severity = %now.severity, "dispatch overdue");
                Ok(())
            }
            // Received or closed in the meantime.
            Err(UpdateError::Refused(_) | UpdateError::NotFound(_)) => Ok(()),
            Err(UpdateError::Store(e)) => Err(e),
        }
    }
}

/// The step that first sent `r` to `unit`.
fn first_sent<'r>(r: &'r AlarmRecord, unit: &str) -> Option<&'r Step> {
    r.steps_here().iter().find(|s| {
        matches!(s.action, Action::Dispatch | Action::Escalate | Action::Overdue)
            && s.units.iter().any(|u| u == unit)
    })
}

/// Supervises every `every` until `shutdown`.
pub async fn run_supervision(
    mut supervisor: Supervisor,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = supervisor.check().await {
            warn!("supervision: {e}");
        }
    }
}
