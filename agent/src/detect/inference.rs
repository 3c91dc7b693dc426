//! The inference loop: takes the newest due frame of each camera from the hub, lets the motion
//! gate skip still scenes (unless the camera's rules need every frame), batches the tiles of
//! the rest (each camera's watched area, see [`super::Tiling`]) into as few detector runs as
//! the model's batch allows, and keeps each camera's latest detections, merged across its
//! tiles, for the rules. The agent,
//! `xl-agent replay`, `xl-agent bench` and the scenario tests run this same loop.
//!
//! Cadence is kept on the frames' own monotonic times, so a recording played faster than real
//! time is inferred exactly as the live camera would be.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::error;

use super::detection::{Detection, nms_classwise};
use super::detector::{Detector, DetectorError};
use super::motion::MotionGate;
use super::regions::Tiling;
use crate::geometry::BoxN;
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
    /// What part of its picture is inferred, in how many tiles.
    pub tiling: Tiling,
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
    /// The tiles of the step's inferred frames: (index in [`Self::frames`], tile).
    jobs: Vec<(usize, BoxN)>,
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
            jobs: Vec::with_capacity(max_batch),
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

        // Gate, then lay out the tiles of each frame that needs inference.
        self.jobs.clear();
        self.inferred.clear();
        let input = self.detector.input_size();
        for (index, frame) in self.frames.iter().enumerate() {
            let slot = &mut self.cameras[frame.camera];
            let interval = slot.interval.as_millis() as i64;
            let now = frame.mono_ms;
            let on_time = self.next_due[frame.camera].filter(|d| now - d < interval);
            self.next_due[frame.camera] = Some(on_time.unwrap_or(now) + interval);
            let t = Instant::now();
            let infer = match &mut slot.gate {
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
                let size = (frame.width(), frame.height());
                let tiles = slot.tiling.tiles(size, input);
                self.jobs.extend(tiles.iter().map(|t| (index, *t)));
                self.detections[frame.camera].clear();
            }
        }
        if self.jobs.is_empty() {
            return Ok(true);
        }
        let max = self.detector.max_batch();
        for chunk in self.jobs.chunks(max) {
            let batch = chunk.len();
            let t = Instant::now();
            for (slot, &(index, tile)) in chunk.iter().enumerate() {
                let frame = &self.frames[index];
                if let Err(e) = frame.with_yuv(|yuv| self.detector.prepare(batch, slot, yuv, tile))
                {
                    // The slot keeps the previous image; the frame counts as not inferred.
                    error!(camera = frame.camera, "{e}");
                    self.inferred[index] = false;
                }
            }
            self.stats.preprocess += t.elapsed();
            let (infer, post) = self.detector.infer(batch, &mut self.batch_out)?;
            self.stats.infer += infer;
            self.stats.postprocess += post;
            self.stats.runs += 1;
            let share = infer / batch as u32;
            for (slot, &(index, tile)) in chunk.iter().enumerate() {
                let camera = self.frames[index].camera;
                self.camera_stats[camera].infer += share;
                if self.inferred[index] {
                    let found = &mut self.batch_out[slot];
                    self.cameras[camera].tiling.keep_whole(tile, found);
                    self.detections[camera].extend_from_slice(found);
                }
            }
        }
        let mut last = usize::MAX;
        for &(index, _) in &self.jobs {
            if index == last || !self.inferred[index] {
                continue;
            }
            last = index;
            let camera = self.frames[index].camera;
            self.stats.inferred += 1;
            self.camera_stats[camera].inferred += 1;
            if self.cameras[camera].tiling.tiles_laid() > 1 {
                nms_classwise(&mut self.detections[camera], self.detector.nms_iou);
            }
        }
        Ok(true)
    }
}
