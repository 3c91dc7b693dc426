//! The last step on the box before delivery: each message the event logs make is sealed with
//! the box's key, stored in the outbox (flushed), and the publisher woken. Alarms are counted by
//! rule for the metrics; what cannot be stored is counted and logged, never silently dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, info};
use xueliang_proto::RuleKind;

use crate::delivery::Outbox;
use crate::evidence::{Outgoing, Sealer};

/// Where the detector thread sends what its cameras' events make.
pub(super) struct Alarms {
    send_after_bytes: usize,
    outbox: Outbox,
    wake: mpsc::Sender<()>,
    sealer: Arc<Sealer>,
    /// Alarms raised by rule id and kind, for the metrics.
    pub(super) raised: BTreeMap<(String, String), u64>,
    /// Messages that could not be stored, since start.
    pub(super) lost: u64,
}

impl Alarms {
    /// Seals into `outbox` (snapshots over `send_after_bytes` travel apart), waking the
    /// publisher through `wake`.
    pub(super) fn new(
        send_after_bytes: usize,
        outbox: Outbox,
        wake: mpsc::Sender<()>,
        sealer: Arc<Sealer>,
    ) -> Self {
        Self { send_after_bytes, outbox, wake, sealer, raised: BTreeMap::new(), lost: 0 }
    }

    /// Seals `message`, stores it in the outbox (flushed), then wakes the publisher.
    pub(super) fn send(&mut self, message: Outgoing) {
        let (sealed, id, what) = match message {
            Outgoing::Alarm { alarm, detail } => {
                let kind = RuleKind::of(alarm.kind).name();
                *self.raised.entry((alarm.rule_id.clone(), kind.to_owned())).or_default() += 1;
                info!(
                    alarm = %alarm.id,
                    camera = %alarm.camera_id,
                    rule = %alarm.rule_id,
                    objects = alarm.detections.len(),
                    lasting = alarm.opens_event,
                    "{kind}: {detail}"
                );
                let id = alarm.id.clone();
                (self.sealer.seal(alarm, self.send_after_bytes), id, "alarm")
            }
            Outgoing::Update(update) => {
                info!(
                    event = %update.event_id,
                    seq = update.seq,
                    peak = update.peak_count,
                    seconds = update.duration_ms / 1000,
                    picture = !update.snapshot_jpeg.is_empty(),
                    reminder = update.reminder,
                    "{}",
                    if update.ended { "event ended" } else { "event update" }
                );
                let id = update.id.clone();
                (self.sealer.seal_update(update), id, "event update")
            }
        };
        let stored = match sealed {
            Ok(sealed) => self.outbox.push(&sealed).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(_) => {
                let _ = self.wake.try_send(());
            }
            Err(e) => {
                self.lost += 1;
                error!(id = %id, "{what} lost: {e}");
            }
        }
    }
}
