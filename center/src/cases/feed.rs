//! The alarm feed: every alarm stored, and every change to one (a step, an escalation, a
//! snapshot that followed), as it happens. Ingest and the cases service publish to it; consoles
//! receive it over server-sent events (`GET /api/events`), each user only what they may see.
//! Of several processes serving a county, each hands what it publishes to ingest too, which
//! tells the others, so that every process's consoles see every change.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::domain::AlarmRecord;

/// What happened to the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// What happened to which alarm, for the other processes serving the county.
pub type Relayed = (Change, String);

/// The fan-out of alarm events to every console.
#[derive(Debug, Clone)]
pub struct AlarmFeed {
    tx: broadcast::Sender<Arc<AlarmEvent>>,
    /// Where what is published goes for the other processes, if there are any.
    relay: Option<mpsc::UnboundedSender<Relayed>>,
}

impl Default for AlarmFeed {
    fn default() -> Self {
        Self { tx: broadcast::channel(BACKLOG).0, relay: None }
    }
}

impl AlarmFeed {
    /// A feed that also hands each change it publishes, with its alarm's id, to the receiver.
    pub fn relaying() -> (Self, mpsc::UnboundedReceiver<Relayed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { relay: Some(tx), ..Self::default() }, rx)
    }

    /// Tells every console (none listening is fine), and the other processes.
    pub fn publish(&self, change: Change, alarm: AlarmRecord) {
        if let Some(relay) = &self.relay {
            let _ = relay.send((change, alarm.id.clone()));
        }
        self.publish_here(change, alarm);
    }

    /// Tells this process's consoles only: what another process published.
    pub fn publish_here(&self, change: Change, alarm: AlarmRecord) {
        let _ = self.tx.send(Arc::new(AlarmEvent { change, alarm }));
    }

    /// The events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AlarmEvent>> {
        self.tx.subscribe()
    }
}
