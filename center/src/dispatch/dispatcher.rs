//! Sending a dispatched alarm to its responder units: a `Dispatch` message on
//! `{prefix}/dispatch/{unit}` (QoS 1, signed with the center's key: a unit acts only on what
//! verifies against it) for the units' own clients, published once the step is on disk and
//! again until the unit receives it, and a JSON POST to the unit's webhook where it has one
//! (queued durably with the step, retried with backoff by `webhooks.rs`).

use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use serde_json::json;
use tracing::warn;
use xueliang_proto::signing::{DISPATCH_SIGNATURE_FIELD, SigningKey};
use xueliang_proto::topics::Topics;
use xueliang_proto::{Alarm, Box as BBox, Detection, Dispatch, Message, SCHEMA_VERSION};

use super::webhooks::{Webhooks, dispatch_id};
use crate::domain::{AlarmRecord, rule_kind, severity};
use crate::routing::Routing;
use crate::store::StoreError;
use crate::watched_file::WatchedFile;

/// The alarm as a protobuf message again, without its snapshot (units fetch it over HTTP).
fn alarm_message(r: &AlarmRecord) -> Alarm {
    Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: r.id.clone(),
        agent_id: r.agent_id.clone(),
        camera_id: r.camera_id.clone(),
        rule_id: r.rule_id.clone(),
        kind: rule_kind(&r.kind) as i32,
        severity: severity(&r.severity) as i32,
        event_time_ms: r.event_time_ms,
        detections: r
            .detections
            .iter()
            .map(|d| Detection {
                class_name: d.class.clone(),
                score: d.score,
                r#box: Some(BBox { x1: d.bbox[0], y1: d.bbox[1], x2: d.bbox[2], y2: d.bbox[3] }),
                track_id: d.track_id,
                ..Default::default()
            })
            .collect(),
        zone_id: r.zone_id.clone(),
        frame_width: r.frame_width,
        frame_height: r.frame_height,
        model_id: r.model_id.clone(),
        model_version: r.model_version.clone(),
        ..Default::default()
    }
}

/// Sends dispatches.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    client: AsyncClient,
    topics: Topics,
    webhooks: Webhooks,
    routing: Arc<WatchedFile<Routing>>,
    key: Arc<SigningKey>,
}

impl Dispatcher {
    /// A dispatcher publishing with `client`, signing with the center's `key`, and queueing
    /// webhooks in `webhooks`.
    pub fn new(
        client: AsyncClient,
        topics: Topics,
        webhooks: Webhooks,
        routing: Arc<WatchedFile<Routing>>,
        key: Arc<SigningKey>,
    ) -> Self {
        Self { client, topics, webhooks, routing, key }
    }

    /// Queues the webhook deliveries of `record` to each of `units` that has a webhook, as `by`
    /// with `note` (durable with the store's next flush, which the caller makes).
    pub fn queue(
        &self,
        record: &AlarmRecord,
        units: &[String],
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let routing = self.routing.current();
        for unit in units {
            let Some(u) = routing.unit(unit) else { continue };
            let Some(url) = &u.webhook else { continue };
            let id = dispatch_id(&record.id, unit);
            let body = json!({
                "dispatch_id": id,
                "unit": { "id": u.id, "name": u.name, "type": u.unit_type },
                "alarm": record,
                "alarm_url_path": format!("/api/alarms/{}", record.id),
                "dispatched_by": by,
                "note": note,
                "time_ms": now_ms,
            });
            self.webhooks.enqueue(&id, unit, url, u.webhook_secret.as_deref(), &body)?;
        }
        Ok(())
    }

    /// Publishes the signed `Dispatch` of `record` to each of `units` (QoS 1), as `by` with
    /// `note` at `time_ms`: once the step is stored, and again until the unit receives it (the
    /// same dispatch id each time, so a unit acts on it once).
    pub async fn publish(
        &self,
        record: &AlarmRecord,
        units: &[String],
        by: &str,
        note: &str,
        time_ms: i64,
    ) {
        for unit in units {
            let message = Dispatch {
                schema_version: SCHEMA_VERSION as i32,
                dispatch_id: dispatch_id(&record.id, unit),
                station_id: unit.clone(),
                alarm: Some(alarm_message(record)),
                dispatched_by: by.to_owned(),
                note: note.to_owned(),
                time_ms,
                location: record.location.clone(),
                signature: Default::default(),
            };
            match self.key.sign(message.encode_to_vec(), DISPATCH_SIGNATURE_FIELD, &[]) {
                Ok(payload) => {
                    let topic = self.topics.dispatch(unit);
                    if let Err(e) =
                        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await
                    {
                        warn!(alarm = %record.id, unit = %unit, "cannot publish the dispatch: {e}");
                    }
                }
                Err(e) => warn!(alarm = %record.id, unit = %unit, "cannot sign the dispatch: {e}"),
            }
        }
    }
}
