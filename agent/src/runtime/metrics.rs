//! The agent's Prometheus metrics (`metrics_listen` in the config): per camera, frames decoded,
//! record-stream frames decoded for pictures, compressed video kept, frames inferred, inference
//! time, whether it is online and how often it reconnected; frame age; alarms raised per rule;
//! line crossings; the evidence queue; the outbox; errors. The detector thread writes the page about
//! once a second; the HTTP endpoint serves the latest one, so a scrape never waits on the loop.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use xueliang_service::metrics::{Exposition, Histogram, labels};

use crate::delivery::{Outbox, WriteCounts};
use crate::detect::CameraLoopStats;
use crate::rules::RuleSet;
use crate::source::{CameraCounters, StreamRing};

/// The latest metrics page.
#[derive(Debug, Default)]
pub struct Metrics {
    page: Mutex<String>,
}

impl Metrics {
    /// Replaces the page.
    pub fn set(&self, page: String) {
        *self.page.lock().unwrap_or_else(|p| p.into_inner()) = page;
    }

    /// The page.
    pub fn page(&self) -> String {
        self.page.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the page is made of.
#[derive(Debug)]
pub struct Sample<'a> {
    /// Camera ids, in config order.
    pub cameras: &'a [String],
    /// Their decode counters.
    pub counters: &'a [Arc<CameraCounters>],
    /// Their kept compressed video (record and detect streams).
    pub rings: &'a [Vec<Arc<StreamRing>>],
    /// Their share of the inference loop.
    pub inference: &'a [CameraLoopStats],
    /// The rule sets, per camera.
    pub rules: &'a [&'a RuleSet],
    /// Alarms raised, by rule id and kind.
    pub raised: &'a BTreeMap<(String, String), u64>,
    /// The outbox.
    pub outbox: &'a Outbox,
    /// The outbox's writes (failures, messages kept in memory).
    pub writes: &'a WriteCounts,
    /// Frames' age when their detections are ready, from the arrival of their first packet.
    pub frame_age: &'a Histogram,
    /// Messages waiting for the evidence thread, and times the detector waited for room.
    pub evidence: (usize, u64),
    /// Inference failures and alarms that could not be stored.
    pub errors: u64,
    /// The config version in force (0: the local file).
    pub config_version: u64,
}

/// The Prometheus text of `s`.
pub fn render(s: &Sample<'_>) -> String {
    let mut e = Exposition::default();
    let per_camera = |f: &dyn Fn(usize) -> f64| -> Vec<(String, f64)> {
        s.cameras.iter().enumerate().map(|(i, id)| (labels(&[("camera", id)]), f(i))).collect()
    };
    let counter = |i: usize| s.counters.get(i);
    e.family(
        "xl_agent_frames_decoded_total",
        "counter",
        "Frames decoded per camera.",
        &per_camera(&|i| counter(i).map_or(0.0, |c| c.frames.load(Ordering::Relaxed) as f64)),
    );
    e.family(
        "xl_agent_record_frames_decoded_total",
        "counter",
        "Frames of the record stream decoded per camera (only to draw event pictures).",
        &per_camera(&|i| {
            counter(i).map_or(0.0, |c| c.record_decoded.load(Ordering::Relaxed) as f64)
        }),
    );
    e.family(
        "xl_agent_video_kept_bytes",
        "gauge",
        "Compressed video kept per camera for clips and pictures, not decoded.",
        &per_camera(&|i| {
            s.rings.get(i).map_or(0.0, |rs| {
                rs.iter().map(|r| r.counters.bytes.load(Ordering::Relaxed) as f64).sum()
            })
        }),
    );
    e.family(
        "xl_agent_frames_inferred_total",
        "counter",
        "Frames inferred per camera (the rest were skipped by the motion gate or the cadence).",
        &per_camera(&|i| s.inference.get(i).map_or(0.0, |l| l.inferred as f64)),
    );
    e.family(
        "xl_agent_inference_seconds_total",
        "counter",
        "Time in session.run per camera (a batch's time split among its frames).",
        &per_camera(&|i| s.inference.get(i).map_or(0.0, |l| l.infer.as_secs_f64())),
    );
    e.family(
        "xl_agent_camera_online",
        "gauge",
        "1 while the camera delivers frames.",
        &per_camera(&|i| counter(i).map_or(0.0, |c| c.online.load(Ordering::Relaxed) as u8 as f64)),
    );
    e.family(
        "xl_agent_camera_reconnects_total",
        "counter",
        "Times the camera's stream was lost.",
        &per_camera(&|i| counter(i).map_or(0.0, |c| c.reconnects.load(Ordering::Relaxed) as f64)),
    );
    let raised: Vec<(String, u64)> = s
        .raised
        .iter()
        .map(|((rule, kind), n)| (labels(&[("rule", rule), ("kind", kind)]), *n))
        .collect();
    e.family("xl_agent_alarms_raised_total", "counter", "Alarms raised, by rule.", &raised);
    let mut crossings = Vec::new();
    for set in s.rules {
        let camera = s.cameras.get(set.camera).map_or("", String::as_str);
        for rule in &set.rules {
            if let Some(c) = rule.counts() {
                crossings.push((
                    labels(&[("camera", camera), ("rule", &rule.id), ("direction", "a_to_b")]),
                    c.a_to_b,
                ));
                crossings.push((
                    labels(&[("camera", camera), ("rule", &rule.id), ("direction", "b_to_a")]),
                    c.b_to_a,
                ));
            }
        }
    }
    e.family(
        "xl_agent_line_crossings_total",
        "counter",
        "Crossings of each counting line, both ways.",
        &crossings,
    );
    e.histogram(
        "xl_agent_frame_age_seconds",
        "Age of inferred frames when their detections are ready, from the arrival of their first packet (the jitter buffer, decoding and waiting for the detector included).",
        s.frame_age,
    );
    e.single(
        "xl_agent_evidence_queue",
        "gauge",
        "Event messages waiting for their pictures, seal and outbox write (off the detector thread).",
        s.evidence.0,
    );
    e.single(
        "xl_agent_evidence_queue_full_total",
        "counter",
        "Times the detector thread waited because the evidence queue was full.",
        s.evidence.1,
    );
    e.single(
        "xl_agent_outbox_alarms",
        "gauge",
        "Alarms, event updates and pictures waiting for the center's receipt.",
        s.outbox.messages(),
    );
    e.single(
        "xl_agent_outbox_clip_chunks",
        "gauge",
        "Pieces of event clips waiting for the center's receipt.",
        s.outbox.clip_chunks_waiting(),
    );
    e.single("xl_agent_outbox_bytes", "gauge", "Size of all that waits.", s.outbox.bytes());
    e.single(
        "xl_agent_outbox_write_failures_total",
        "counter",
        "Outbox writes that failed (a full disk): the messages wait in memory meanwhile.",
        s.writes.failures.load(Ordering::Relaxed),
    );
    e.single(
        "xl_agent_outbox_kept_in_memory",
        "gauge",
        "Messages kept in memory because the outbox cannot write them now.",
        s.writes.kept.load(Ordering::Relaxed),
    );
    let drops = &s.outbox.drops;
    e.single(
        "xl_agent_outbox_dropped_total",
        "counter",
        "Alarms given up because the outbox was full or they were too old.",
        drops.alarms.load(Ordering::Relaxed) + drops.expired.load(Ordering::Relaxed),
    );
    e.single(
        "xl_agent_outbox_clips_dropped_total",
        "counter",
        "Event clips given up unsent (the outbox was full, or their alarm was given up).",
        drops.clips.load(Ordering::Relaxed),
    );
    e.single(
        "xl_agent_errors_total",
        "counter",
        "Inference failures and alarms that could not be stored.",
        s.errors,
    );
    e.single(
        "xl_agent_config_version",
        "gauge",
        "Version of the pushed config in force (0: the local file).",
        s.config_version,
    );
    e.finish()
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let page = metrics.page();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], page) }
        }),
    );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!("metrics endpoint stopped: {e}");
    }
}
