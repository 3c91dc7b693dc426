//! Events → wire alarms: ids, times, detections in the contract's terms.

use xueliang_proto::{self as proto, RuleKind, SCHEMA_VERSION, Severity};

use crate::config::SeverityConfig;
use crate::rules::Hit;

/// Everything an alarm says besides its detections and picture.
#[derive(Debug, Clone)]
pub struct AlarmContext<'a> {
    /// This agent.
    pub agent_id: &'a str,
    /// The camera.
    pub camera_id: &'a str,
    /// The rule that fired.
    pub rule_id: &'a str,
    /// Its kind.
    pub kind: RuleKind,
    /// Its urgency.
    pub severity: SeverityConfig,
    /// The zone or line it watches.
    pub zone_id: &'a str,
    /// Model id and version.
    pub model: (&'a str, &'a str),
    /// Class names of the model.
    pub class_names: &'a [String],
}

/// Builds an alarm with a fresh time-ordered id (UUIDv7), the idempotency key downstream.
pub fn build(
    ctx: &AlarmContext<'_>,
    hits: &[Hit],
    event_time_ms: i64,
    frame_size: (usize, usize),
    snapshot_jpeg: Vec<u8>,
) -> proto::Alarm {
    proto::Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: uuid::Uuid::now_v7().to_string(),
        agent_id: ctx.agent_id.to_owned(),
        camera_id: ctx.camera_id.to_owned(),
        rule_id: ctx.rule_id.to_owned(),
        kind: ctx.kind as i32,
        severity: Severity::from(ctx.severity) as i32,
        event_time_ms,
        detections: detections(hits, ctx.class_names),
        zone_id: ctx.zone_id.to_owned(),
        snapshot_jpeg: snapshot_jpeg.into(),
        model_id: ctx.model.0.to_owned(),
        model_version: ctx.model.1.to_owned(),
        frame_width: frame_size.0 as u32,
        frame_height: frame_size.1 as u32,
        signature: Default::default(),
        // Set with the signature, by the sealer.
        snapshot_sha256: Default::default(),
        snapshot_follows: false,
        opens_event: false,
    }
}

/// Objects in the contract's terms, class names from the model's card.
pub fn detections(hits: &[Hit], class_names: &[String]) -> Vec<proto::Detection> {
    hits.iter()
        .map(|&Hit { track, detection: d }| proto::Detection {
            class_name: class_names
                .get(d.class as usize)
                .map(String::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            class_id: d.class as u32,
            score: d.score,
            r#box: Some(proto::Box { x1: d.bbox.x1, y1: d.bbox.y1, x2: d.bbox.x2, y2: d.bbox.y2 }),
            track_id: track,
        })
        .collect()
}
