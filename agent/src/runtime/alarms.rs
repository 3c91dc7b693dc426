//! The chain each event goes through on its way out: its evidence picture, the alarm in the
//! contract's terms, the box's seal, the outbox (flushed), then a wake-up for the publisher.
//! Camera loss and return join the chain here as alarms of their own: a dead camera is an
//! event the duty officer must see (a cut cable is how trouble often starts).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{error, info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, RuleKind};

use crate::config::{AgentConfig, SeverityConfig, SnapshotConfig};
use crate::delivery::Outbox;
use crate::detect::ModelCard;
use crate::evidence::{AlarmContext, Sealer, build, snapshot};
use crate::rules::{Event, RuleSet};
use crate::source::Frame;

/// The alarm chain of one config's cameras.
pub(super) struct Alarms {
    agent_id: String,
    camera_ids: Vec<String>,
    snapshot: SnapshotConfig,
    outbox: Outbox,
    wake: mpsc::Sender<()>,
    sealer: Arc<Sealer>,
    /// Alarms raised by rule id and kind, for the metrics.
    pub(super) raised: BTreeMap<(String, String), u64>,
    /// Alarms that could not be stored, since start.
    pub(super) lost: u64,
}

impl Alarms {
    /// The chain for `config`'s cameras, into `outbox`, waking the publisher through `wake`.
    pub(super) fn new(
        config: &AgentConfig,
        outbox: Outbox,
        wake: mpsc::Sender<()>,
        sealer: Arc<Sealer>,
    ) -> Self {
        Self {
            agent_id: config.agent_id.clone(),
            camera_ids: config.cameras.iter().map(|c| c.id.clone()).collect(),
            snapshot: config.snapshot.clone(),
            outbox,
            wake,
            sealer,
            raised: BTreeMap::new(),
            lost: 0,
        }
    }

    /// An event of one of `rules`, seen in `frame`, with its picture.
    pub(super) fn raise(
        &mut self,
        card: &ModelCard,
        rules: &RuleSet,
        event: &Event,
        frame: &Frame,
    ) {
        let r = &rules.rules[event.rule];
        let jpeg = snapshot(frame, &r.shape, &event.hits, rules.masks(), &self.snapshot)
            .unwrap_or_else(|e| {
                warn!(rule = %r.id, "alarm sent without snapshot: {e}");
                Vec::new()
            });
        let ctx = AlarmContext {
            agent_id: &self.agent_id,
            camera_id: &self.camera_ids[frame.camera],
            rule_id: &r.id,
            kind: r.kind,
            severity: r.severity,
            zone_id: &r.place,
            model: (&card.name, &card.version),
            class_names: &card.classes,
        };
        let alarm =
            build(&ctx, &event.hits, frame.captured_ms, (frame.width(), frame.height()), jpeg);
        info!(
            alarm = %alarm.id,
            camera = %ctx.camera_id,
            rule = %r.id,
            objects = event.hits.len(),
            "{}: {}",
            r.kind.name(),
            event.detail
        );
        self.send(alarm);
    }

    /// Camera `camera` was lost.
    pub(super) fn camera_lost(&mut self, card: &ModelCard, camera: usize) {
        self.camera_alarm(
            card,
            camera,
            RuleKind::CameraOffline,
            "camera-offline",
            SeverityConfig::High,
        );
    }

    /// Camera `camera` is back after a reported loss.
    pub(super) fn camera_back(&mut self, card: &ModelCard, camera: usize) {
        self.camera_alarm(card, camera, RuleKind::CameraBack, "camera-back", SeverityConfig::Info);
    }

    fn camera_alarm(
        &mut self,
        card: &ModelCard,
        camera: usize,
        kind: RuleKind,
        rule_id: &str,
        severity: SeverityConfig,
    ) {
        let ctx = AlarmContext {
            agent_id: &self.agent_id,
            camera_id: &self.camera_ids[camera],
            rule_id,
            kind,
            severity,
            zone_id: "",
            model: (&card.name, &card.version),
            class_names: &card.classes,
        };
        let alarm = build(&ctx, &[], now_ms(), (0, 0), Vec::new());
        info!(alarm = %alarm.id, camera = %ctx.camera_id, "{rule_id}");
        self.send(alarm);
    }

    /// Seals the alarm, stores it in the outbox (flushed), then wakes the publisher.
    fn send(&mut self, alarm: Alarm) {
        let kind = RuleKind::of(alarm.kind).name().to_owned();
        *self.raised.entry((alarm.rule_id.clone(), kind)).or_default() += 1;
        let (id, camera) = (alarm.id.clone(), alarm.camera_id.clone());
        let stored = match self.sealer.seal(alarm, self.snapshot.send_after_bytes) {
            Ok(sealed) => self.outbox.push(&sealed).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(_) => {
                let _ = self.wake.try_send(());
            }
            Err(e) => {
                self.lost += 1;
                error!(alarm = %id, camera = %camera, "alarm lost: {e}");
            }
        }
    }
}
