//! The alarm feed: every alarm stored, and every change to one (a step, an escalation, a
//! snapshot that followed), as it happens. Ingest and the cases service publish to it; consoles
//! receive it over server-sent events (`GET /api/events`), each user only what they may see.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::AlarmRecord;

/// What happened to the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It was stored.
    New,
    /// It changed.
    Updated,
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmEvent {
    /// What happened.
    pub change: Change,
    /// The alarm as it is now.
    pub alarm: AlarmRecord,
}

/// Events that a console slower than this falls behind on make it reload instead.
const BACKLOG: usize = 1024;

/// The fan-out of alarm events to every console.
#[derive(Debug, Clone)]
pub struct AlarmFeed {
    tx: broadcast::Sender<Arc<AlarmEvent>>,
}

impl Default for AlarmFeed {
    fn default() -> Self {
        Self { tx: broadcast::channel(BACKLOG).0 }
    }
}

impl AlarmFeed {
    /// Tells every console (none listening is fine).
    pub fn publish(&self, change: Change, alarm: AlarmRecord) {
        let _ = self.tx.send(Arc::new(AlarmEvent { change, alarm }));
    }

    /// The events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AlarmEvent>> {
        self.tx.subscribe()
    }
}
