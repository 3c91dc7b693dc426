//! `xl-agent bench`: the real inference loop on recorded clips, timed per stage, against bare
//! `session.run` on the same model and threads in the same run.
//!
//! Three phases in one process: (1) the clip is decoded alone, which gives the decode and
//! convert cost per frame; (2) the loop runs with one on-demand source per camera (every
//! decoded frame is inferred, so the detector never waits and never wastes a decode); (3) bare
//! `session.run` calls, half before and half after the loop so machine noise hits both alike.
//! The ratio is the loop's frames/s over bare runs/s: 1.0 means the loop costs nothing beyond
//! inference itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{CameraConfig, MotionConfig};
use crate::detect::{CameraSlot, InferenceLoop, LoopStats, MotionGate, Tiling};
use crate::detect::{Detection, Detector, DetectorError};
use crate::source::{CameraOutputs, CameraSource, Frame, FrameHub, Pace};
use crate::source::{Recording, RecordingError};
use crate::tools::measure::{cpu_time, peak_rss_mib};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The recording each camera plays.
    pub clip: PathBuf,
    /// Simultaneous cameras.
    pub cameras: usize,
    /// Frames through the loop (after warm-up).
    pub frames: u64,
    /// Frames per camera through the loop before it is measured.
    pub warmup: u64,
    /// Bare `session.run` calls.
    pub bare_runs: usize,
    /// Also run the loop with the motion gate on, and report what it saves.
    pub motion: bool,
    /// Times the loop and the bare runs are measured, for their spread.
    pub repeats: usize,
}

/// One repeat of the loop against bare runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Repeat {
    /// Wall time per frame through the whole loop, ms.
    pub loop_ms: f64,
    /// `session.run` per frame inside the loop, ms.
    pub infer_ms: f64,
    /// One bare `session.run`, ms.
    pub bare_ms: f64,
    /// Loop frames/s ÷ bare runs/s.
    pub ratio: f64,
}

/// Milliseconds per frame of each stage.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stages {
    /// Decoding (CPU time of the decode-only phase, all threads).
    pub decode_ms: f64,
    /// `videoconvert` (near zero: decoders' I420 passes through).
    pub convert_ms: f64,
    /// Motion gate check.
    pub gate_ms: f64,
    /// Frame → input tensor (scale, colour, normalize).
    pub preprocess_ms: f64,
    /// `session.run` inside the loop.
    pub infer_ms: f64,
    /// Head decode and NMS.
    pub postprocess_ms: f64,
}

/// One run of the loop.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoopFigures {
    /// Frames taken from the cameras.
    pub frames: u64,
    /// Frames inferred.
    pub inferred: u64,
    /// Frames per second through the whole loop.
    pub fps: f64,
    /// Process CPU time per frame, ms (all threads: decode, loop, ONNX Runtime).
    pub cpu_ms_per_frame: f64,
    /// Per-stage time.
    pub stages: Stages,
}

/// Score from which an object of the first frame counts as found (the usual rules' `min_score`).
pub const FOUND_MIN_SCORE: f32 = 0.5;

/// An object the detector finds in the clip's first frame.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// Class name, from the model card.
    pub class: String,
    /// Confidence 0..1.
    pub score: f32,
    /// Where: x1, y1, x2, y2 in normalized image coordinates.
    pub bbox: [f32; 4],
}

/// What `xl-agent bench` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Model id.
    pub model: String,
    /// Clip.
    pub clip: String,
    /// Frame size.
    pub width: usize,
    /// Frame size.
    pub height: usize,
    /// Cameras.
    pub cameras: usize,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Largest batch.
    pub max_batch: usize,
    /// The objects found in the clip's first frame (score ≥ [`FOUND_MIN_SCORE`]), best first.
    pub first_frame: Vec<Found>,
    /// The loop with every frame inferred: the median repeat.
    pub ungated: LoopFigures,
    /// Every repeat, in order.
    pub repeats: Vec<Repeat>,
    /// Bare `session.run` calls per second.
    pub bare_runs_per_s: f64,
    /// Loop frames/s ÷ bare runs/s.
    pub ratio: f64,
    /// The loop with the motion gate on, when asked for.
    pub gated: Option<LoopFigures>,
    /// CPU saved per frame by the gate (1 − gated CPU ÷ ungated CPU).
    pub gate_saving: Option<f64>,
    /// Peak resident memory of the process, MiB.
    pub max_rss_mib: f64,
}

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The clip could not be decoded.
    #[error(transparent)]
    Clip(#[from] RecordingError),
    /// The detector failed.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// A camera thread could not start, or frames stopped coming.
    #[error("{0}")]
    Source(String),
}

fn ms(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

impl BenchOptions {
    /// Runs the three phases with `detector` (its thread count is `threads`, for the report).
    pub fn run(&self, mut detector: Detector, threads: usize) -> Result<BenchReport, BenchError> {
        let (decode_ms, convert_ms, first) = self.decode_phase()?;
        let (width, height) = (first.width(), first.height());
        let first_frame = found(&mut detector, &first)?;
        let model = detector.card().name.clone();
        let max_batch = detector.max_batch();

        let mut inference = self.start_loop(detector, false)?;
        // Each repeat: bare runs, half before the loop and half after, so machine noise hits
        // both alike.
        let half = (self.bare_runs / 2).max(1);
        let mut runs = Vec::with_capacity(self.repeats.max(1));
        for _ in 0..self.repeats.max(1) {
            let mut bare = inference.0.detector_mut().time_bare_runs(half)?;
            let figures = self.measure(&mut inference)?;
            bare += inference.0.detector_mut().time_bare_runs(half)?;
            runs.push((figures, (2 * half) as f64 / bare.as_secs_f64()));
        }
        let detector = stop_loop(inference);
        let repeats: Vec<Repeat> = runs
            .iter()
            .map(|(f, bare)| Repeat {
                loop_ms: 1000.0 / f.fps,
                infer_ms: f.stages.infer_ms,
                bare_ms: 1000.0 / bare,
                ratio: f.fps / bare,
            })
            .collect();
        runs.sort_by(|a, b| a.0.fps.total_cmp(&b.0.fps));
        let (mut ungated, bare_runs_per_s) = runs[runs.len() / 2];
        ungated.stages.decode_ms = decode_ms;
        ungated.stages.convert_ms = convert_ms;

        let (gated, gate_saving) = if self.motion {
            let mut inference = self.start_loop(detector, true)?;
            let mut g = self.measure(&mut inference)?;
            stop_loop(inference);
            g.stages.decode_ms = decode_ms;
            g.stages.convert_ms = convert_ms;
            (Some(g), Some(1.0 - g.cpu_ms_per_frame / ungated.cpu_ms_per_frame))
        } else {
            (None, None)
        };
        Ok(BenchReport {
            model,
            clip: self.clip.display().to_string(),
            width,
            height,
            cameras: self.cameras,
            threads,
            max_batch,
            first_frame,
            ratio: ungated.fps / bare_runs_per_s,
            ungated,
            repeats,
            bare_runs_per_s,
            gated,
            gate_saving,
            max_rss_mib: peak_rss_mib(),
        })
    }

    /// Decodes the clip once, alone: CPU ms per frame for decode and for convert, and the
    /// first frame.
    fn decode_phase(&self) -> Result<(f64, f64, Frame), BenchError> {
        let mut clip = Recording::open(&self.clip)?;
        let cpu0 = cpu_time();
        let mut first = None;
        while let Some(frame) = clip.next_frame()? {
            first.get_or_insert(frame);
        }
        let cpu = cpu_time() - cpu0;
        let n = clip.frames as u64;
        let Some(first) = first else {
            return Err(BenchError::Source(format!(
                "clip {} has no video frames",
                self.clip.display()
            )));
        };
        let convert = clip.convert_time();
        Ok((ms(cpu.saturating_sub(convert), n), ms(convert, n), first))
    }

    fn start_loop(&self, detector: Detector, gated: bool) -> Result<RunningLoop, BenchError> {
        let abs = std::fs::canonicalize(&self.clip)
            .map_err(|e| BenchError::Source(format!("clip {}: {e}", self.clip.display())))?;
        let url = gstreamer::glib::filename_to_uri(&abs, None)
            .map_err(|e| BenchError::Source(e.to_string()))?
            .to_string();
        let hub = Arc::new(FrameHub::new(self.cameras));
        let stop = Arc::new(AtomicBool::new(false));
        let (events, _) = std::sync::mpsc::channel();
        let mut sources = Vec::new();
        for i in 0..self.cameras {
            let config = CameraConfig {
                detect_fps: 60.0,
                frame_timeout_s: 10.0,
                ..CameraConfig::new(format!("bench-{i}"), url.clone())
            };
            sources.push(
                CameraSource::spawn(
                    i,
                    config,
                    CameraOutputs {
                        hub: hub.clone(),
                        events: events.clone(),
                        counters: Arc::default(),
                        ring: None,
                    },
                    stop.clone(),
                    Pace::OnDemand,
                )
                .map_err(|e| BenchError::Source(e.to_string()))?,
            );
        }
        let mut slots = Vec::with_capacity(self.cameras);
        for _ in 0..self.cameras {
            let gate = if gated {
                MotionGate::from_config(&MotionConfig::default()).map_err(BenchError::Source)?
            } else {
                None
            };
            let tiling = Tiling::whole();
            slots.push(CameraSlot { interval: Duration::ZERO, gate, on_demand: true, tiling });
        }
        Ok((InferenceLoop::new(detector, hub, slots), sources, stop))
    }

    /// Warms up, then runs the loop for `frames` frames.
    fn measure(&self, running: &mut RunningLoop) -> Result<LoopFigures, BenchError> {
        let inference = &mut running.0;
        let step = |inference: &mut InferenceLoop| -> Result<(), BenchError> {
            if inference.step(Duration::from_secs(15))? {
                Ok(())
            } else {
                Err(BenchError::Source("no frame from the clip for 15 s".into()))
            }
        };
        let warmup = self.warmup * self.cameras as u64;
        while inference.stats.frames < warmup {
            step(inference)?;
        }
        let start: LoopStats = inference.stats;
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        while inference.stats.frames - start.frames < self.frames {
            step(inference)?;
        }
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        let s = inference.stats;
        let frames = s.frames - start.frames;
        let inferred = s.inferred - start.inferred;
        Ok(LoopFigures {
            frames,
            inferred,
            fps: frames as f64 / wall.as_secs_f64(),
            cpu_ms_per_frame: ms(cpu, frames),
            stages: Stages {
                decode_ms: 0.0,
                convert_ms: 0.0,
                gate_ms: ms(s.gate - start.gate, frames),
                preprocess_ms: ms(s.preprocess - start.preprocess, inferred),
                infer_ms: ms(s.infer - start.infer, inferred),
                postprocess_ms: ms(s.postprocess - start.postprocess, inferred),
            },
        })
    }
}

type RunningLoop = (InferenceLoop, Vec<CameraSource>, Arc<AtomicBool>);

/// What `detector` finds in `frame`, as the report lists it.
fn found(detector: &mut Detector, frame: &Frame) -> Result<Vec<Found>, BenchError> {
    let mut dets: Vec<Detection> = Vec::new();
    frame
        .with_yuv(|yuv| detector.detect(yuv, &mut dets))
        .map_err(|e| BenchError::Source(format!("the clip's first frame: {e}")))??;
    dets.retain(|d| d.score >= FOUND_MIN_SCORE);
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let classes = &detector.card().classes;
    Ok(dets
        .iter()
        .map(|d| Found {
            class: classes
                .get(usize::from(d.class))
                .cloned()
                .unwrap_or_else(|| d.class.to_string()),
            score: d.score,
            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        })
        .collect())
}

/// Stops the sources and returns the detector for the next phase.
fn stop_loop(running: RunningLoop) -> Detector {
    let (inference, sources, stop) = running;
    stop.store(true, Ordering::Relaxed);
    for s in sources {
        s.join();
    }
    inference.into_detector()
}

impl BenchReport {
    /// The first frame's objects by class, most frequent first: "person ×3, car ×1 (score ≥ 0.5)".
    fn first_frame_text(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for f in &self.first_frame {
            match counts.iter_mut().find(|(c, _)| *c == f.class) {
                Some((_, n)) => *n += 1,
                None => counts.push((&f.class, 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        let found: Vec<String> = counts.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
        let found = if found.is_empty() { "nothing".to_owned() } else { found.join(", ") };
        format!("{found} found (score ≥ {FOUND_MIN_SCORE})")
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "bench: {} on {} ({}x{}), {} camera(s), {} inference thread(s), batch ≤ {}\n",
            self.model,
            self.clip,
            self.width,
            self.height,
            self.cameras,
            self.threads,
            self.max_batch
        );
        out.push_str(&format!("  first frame: {}\n", self.first_frame_text()));
        let stage_lines = |f: &LoopFigures, out: &mut String| {
            let s = &f.stages;
            for (name, v) in [
                ("decode", s.decode_ms),
                ("convert", s.convert_ms),
                ("motion gate", s.gate_ms),
                ("preprocess", s.preprocess_ms),
                ("infer", s.infer_ms),
                ("postprocess", s.postprocess_ms),
            ] {
                out.push_str(&format!("    {name:<12} {v:>8.2} ms/frame\n"));
            }
            out.push_str(&format!(
                "    loop         {:>8.1} frames/s, {} of {} inferred, CPU {:.1} ms/frame\n",
                f.fps, f.inferred, f.frames, f.cpu_ms_per_frame
            ));
        };
        out.push_str("  every frame inferred (the median repeat):\n");
        stage_lines(&self.ungated, &mut out);
        out.push_str(&format!(
            "  bare session.run {:>8.1} runs/s ({:.2} ms)\n  ratio            {:>8.3} (loop frames/s ÷ bare runs/s)\n",
            self.bare_runs_per_s,
            1000.0 / self.bare_runs_per_s,
            self.ratio
        ));
        let spread = |f: &dyn Fn(&Repeat) -> f64| {
            let mut v: Vec<f64> = self.repeats.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            format!("{:.2} (min {:.2}, max {:.2})", v[v.len() / 2], v[0], v[v.len() - 1])
        };
        if !self.repeats.is_empty() {
            out.push_str(&format!(
                "  over {} repeats, median (min, max): in the loop {} ms/frame, of which inference {} ms; bare session.run {} ms; ratio {}\n",
                self.repeats.len(),
                spread(&|r| r.loop_ms),
                spread(&|r| r.infer_ms),
                spread(&|r| r.bare_ms),
                spread(&|r| r.ratio),
            ));
        }
        if let (Some(g), Some(saving)) = (&self.gated, self.gate_saving) {
            out.push_str("  with the motion gate:\n");
            stage_lines(g, &mut out);
            out.push_str(&format!(
                "  motion gate saves {:.0} % of CPU per frame\n",
                saving * 100.0
            ));
        }
        out.push_str(&format!("  peak resident memory {:.0} MiB\n", self.max_rss_mib));
        out
    }
}
