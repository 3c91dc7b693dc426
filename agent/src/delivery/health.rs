//! The agent's periodic Health report: per camera decode and inference rates, inference time,
//! reconnects and last error; the outbox's depth, oldest age and drops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{CameraHealth, Health, SCHEMA_VERSION};

use super::outbox::Outbox;
use crate::detect::CameraLoopStats;
use crate::source::CameraCounters;

/// Builds a Health report every interval from the counters since the last one.
#[derive(Debug)]
pub struct HealthReporter {
    agent_id: String,
    camera_ids: Vec<String>,
    counters: Vec<Arc<CameraCounters>>,
    interval: Duration,
    last: Instant,
    last_frames: Vec<u64>,
    last_loop: Vec<CameraLoopStats>,
}

impl HealthReporter {
    /// A reporter for cameras `camera_ids` (in loop order) with their source counters.
    pub fn new(
        agent_id: &str,
        camera_ids: Vec<String>,
        counters: Vec<Arc<CameraCounters>>,
        interval: Duration,
    ) -> Self {
        let n = camera_ids.len();
        Self {
            agent_id: agent_id.to_owned(),
            camera_ids,
            counters,
            interval,
            last: Instant::now(),
            last_frames: vec![0; n],
            last_loop: vec![CameraLoopStats::default(); n],
        }
    }

    /// A report, when the interval has passed since the last one.
    pub fn due(
        &mut self,
        loop_stats: &[CameraLoopStats],
        outbox: &Outbox,
        errors: u64,
    ) -> Option<Health> {
        let elapsed = self.last.elapsed();
        if elapsed < self.interval {
            return None;
        }
        self.last = Instant::now();
        let secs = elapsed.as_secs_f32();
        let mut cameras = Vec::with_capacity(self.camera_ids.len());
        for (i, id) in self.camera_ids.iter().enumerate() {
            let c = &self.counters[i];
            let frames = c.frames.load(Ordering::Relaxed);
            let now = loop_stats.get(i).copied().unwrap_or_default();
            let then = self.last_loop[i];
            let inferred = now.inferred - then.inferred;
            cameras.push(CameraHealth {
                camera_id: id.clone(),
                online: c.online.load(Ordering::Relaxed),
                decode_fps: (frames - self.last_frames[i]) as f32 / secs,
                infer_fps: inferred as f32 / secs,
                inference_ms: if inferred > 0 {
                    (now.infer - then.infer).as_secs_f32() * 1000.0 / inferred as f32
                } else {
                    0.0
                },
                reconnects: c.reconnects.load(Ordering::Relaxed),
                last_error: c.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            });
            self.last_frames[i] = frames;
            self.last_loop[i] = now;
        }
        let oldest = outbox.oldest_event_time_ms().map_or(0, |t| (now_ms() - t).max(0) as u64);
        let drops = &outbox.drops;
        Some(Health {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: self.agent_id.clone(),
            time_ms: now_ms(),
            cameras,
            outbox_depth: outbox.messages() as u64,
            outbox_oldest_age_ms: oldest,
            outbox_dropped: drops.alarms.load(Ordering::Relaxed)
                + drops.expired.load(Ordering::Relaxed),
            errors,
        })
    }
}
