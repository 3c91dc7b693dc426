//! The inference loop: takes the newest due frame of each camera from the hub, lets the motion
//! gate skip still scenes (unless the camera's rules need every frame), batches the rest into
//! one detector run, and keeps each camera's latest detections for the rules. The agent,
//! `xl-agent replay`, `xl-agent bench` and the scenario tests run this same loop.
//!
//! Cadence is kept on the frames' own monotonic times, so a recording played faster than real
//! time is inferred exactly as the live camera would be.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::error;

use super::detection::Detection;
use super::detector::{Detector, DetectorError};
use super::motion::MotionGate;
use crate::source::Frame;
use crate::source::FrameHub;

/// Time and counts accumulated by the loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopStats {
    /// Frames taken from the hub.
    pub frames: u64,
    /// Frames inferred (the rest were skipped by the motion gate).
    pub inferred: u64,
    /// Detector runs (one per batch).
    pub runs: u64,
    /// Motion gate checks.
    pub gate: Duration,
    /// Frame → input tensor.
    pub preprocess: Duration,
    /// `session.run`.
    pub infer: Duration,
    /// Head decode, box mapping and NMS.
    pub postprocess: Duration,
}

/// One camera's share of the loop's work.
#[derive(Debug, Clone, Copy, Default)]
pub struct CameraLoopStats {
    /// Frames of this camera inferred.
    pub inferred: u64,
    /// Its share of `session.run` time (a batch's time split evenly among its frames).
    pub infer: Duration,
}

/// One camera's place in the loop.
#[derive(Debug)]
pub struct CameraSlot {
    /// Time between two detections (zero: as often as frames come).
    pub interval: Duration,
    /// The motion gate, if enabled for this camera.
    pub gate: Option<MotionGate>,
    /// Whether the camera's source waits for each frame to be taken (a recording decoded on
    /// demand): then frames not due are taken too, and skipped, so decoding goes on.
    pub on_demand: bool,
}

/// The loop's state; see the module documentation.
#[derive(Debug)]
pub struct InferenceLoop {
    detector: Detector,
    hub: Arc<FrameHub>,
    cameras: Vec<CameraSlot>,
    /// When each camera is next due (monotonic frame time, ms); a camera keeps its cadence (5/s
    /// stays 5/s whatever the frame timing) but never bursts to catch up after a stall.
    next_due: Vec<Option<i64>>,
    /// Cameras whose rules need every due frame inferred now (the motion gate is bypassed).
    always: Vec<bool>,
    next: usize,
    /// The due frames of the last step, in the order they were taken.
    pub frames: Vec<Frame>,
    /// For each of [`Self::frames`]: whether it was inferred (the motion gate may skip one).
    pub inferred: Vec<bool>,
    /// Per camera: the detections of its last inferred frame (normalized coordinates).
    pub detections: Vec<Vec<Detection>>,
    batch_out: Vec<Vec<Detection>>,
    batch_cameras: Vec<usize>,
    /// Totals since the loop started.
    pub stats: LoopStats,
    /// Per camera, since the loop started.
    pub camera_stats: Vec<CameraLoopStats>,
}

impl InferenceLoop {
    /// A loop over `cameras` (indexed as in the hub) with one detector.
    pub fn new(detector: Detector, hub: Arc<FrameHub>, cameras: Vec<CameraSlot>) -> Self {
        let n = cameras.len();
        let max_batch = detector.max_batch();
        Self {
            detector,
            hub,
            next_due: vec![None; n],
            always: vec![false; n],
            next: 0,
            frames: Vec::with_capacity(max_batch),
            inferred: Vec::with_capacity(max_batch),
            detections: (0..n).map(|_| Vec::with_capacity(256)).collect(),
            batch_out: (0..max_batch).map(|_| Vec::with_capacity(256)).collect(),
            batch_cameras: Vec::with_capacity(max_batch),
            cameras,
            stats: LoopStats::default(),
            camera_stats: vec![CameraLoopStats::default(); n],
        }
    }

    /// Ends the loop, giving back its detector.
    pub fn into_detector(self) -> Detector {
        self.detector
    }

    /// The detector (for its model card).
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The detector, mutably (for the bench's baseline runs).
    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    /// Whether camera `camera`'s every due frame must be inferred (its rules watch objects
    /// now), whatever its motion gate says.
    pub fn infer_every_frame(&mut self, camera: usize, always: bool) {
        if let Some(a) = self.always.get_mut(camera) {
            *a = always;
        }
    }

    /// Waits up to `timeout` for due frames and processes them; returns whether any were taken.
    /// Afterwards [`Self::frames`] holds the due ones, [`Self::inferred`] says which were
    /// inferred, and [`Self::detections`] holds their cameras' results.
    pub fn step(&mut self, timeout: Duration) -> Result<bool, DetectorError> {
        let n = self.cameras.len();
        let order = (0..n).map(|k| (self.next + k) % n);
        let (next_due, cameras) = (&self.next_due, &self.cameras);
        let due = |f: &Frame| next_due[f.camera].is_none_or(|d| f.mono_ms >= d);
        // Evaluated while waiting, so a camera that becomes due during the wait is served.
        let take = |f: &Frame| cameras[f.camera].on_demand || due(f);
        let max = self.detector.max_batch();
        if !self.hub.take_batch(order, take, max, timeout, &mut self.frames) {
            return Ok(false);
        }
        self.stats.frames += self.frames.len() as u64;
        if let Some(last) = self.frames.last() {
            self.next = (last.camera + 1) % n;
        }
        // A recording's frames between two due ones were taken only to go on decoding.
        self.frames.retain(|f| next_due[f.camera].is_none_or(|d| f.mono_ms >= d));

        // Gate, then write each frame that needs inference into the next batch slot.
        self.batch_cameras.clear();
        self.inferred.clear();
        for frame in &self.frames {
            let interval = self.cameras[frame.camera].interval.as_millis() as i64;
            let now = frame.mono_ms;
            let on_time = self.next_due[frame.camera].filter(|d| now - d < interval);
            self.next_due[frame.camera] = Some(on_time.unwrap_or(now) + interval);
            let t = Instant::now();
            let infer = match &mut self.cameras[frame.camera].gate {
                Some(gate) if !self.always[frame.camera] => {
                    frame.with_yuv(|yuv| gate.check(yuv, now)).unwrap_or(true)
                }
                Some(gate) => {
                    // Kept current, so it judges from the right reference when it is used again.
                    let _ = frame.with_yuv(|yuv| gate.check(yuv, now));
                    true
                }
                None => true,
            };
            self.stats.gate += t.elapsed();
            self.inferred.push(infer);
            if infer {
                self.batch_cameras.push(frame.camera);
            }
        }
        let batch = self.batch_cameras.len();
        if batch == 0 {
            return Ok(true);
        }
        let t = Instant::now();
        let mut slot = 0;
        for frame in &self.frames {
            if self.batch_cameras.get(slot) != Some(&frame.camera) {
                continue;
            }
            if let Err(e) = frame.with_yuv(|yuv| self.detector.prepare(batch, slot, yuv)) {
                // The slot keeps the previous image; its results are discarded below.
                error!(camera = frame.camera, "{e}");
                self.batch_cameras[slot] = usize::MAX;
            }
            slot += 1;
        }
        self.stats.preprocess += t.elapsed();
        let (infer, post) = self.detector.infer(batch, &mut self.batch_out)?;
        self.stats.infer += infer;
        self.stats.postprocess += post;
        self.stats.runs += 1;
        let share = infer / batch as u32;
        for (slot, &camera) in self.batch_cameras.iter().enumerate() {
            if let Some(dets) = self.detections.get_mut(camera) {
                std::mem::swap(dets, &mut self.batch_out[slot]);
                self.stats.inferred += 1;
                self.camera_stats[camera].inferred += 1;
                self.camera_stats[camera].infer += share;
            }
        }
        Ok(true)
    }
}
