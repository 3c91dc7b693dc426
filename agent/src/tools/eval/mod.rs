//! Detector accuracy on labelled footage: AP50 (PASCAL VOC, all-point interpolation), and recall
//! and precision at the alarm threshold, for one class.
//!
//! Matching per frame follows VOC: detections in descending score take the unmatched label they
//! overlap most with IoU ≥ 0.5; a detection whose best overlap is an ignore region counts neither
//! way; a second detection of an already matched label is a false positive.

mod ground_truth;
mod place;

pub use ground_truth::{GroundTruth, GtBox};
pub use place::{Canvas, Placement};

use std::path::PathBuf;

use serde::Serialize;

use crate::detect::{Detection, Detector, DetectorError, Tiling};
use crate::geometry::BoxN;
use crate::source::{Frame, Recording, RecordingError};

/// IoU a detection needs with a label to count as finding it.
pub const IOU_MATCH: f32 = 0.5;

/// Scored outcomes of every detection of the evaluated class.
#[derive(Debug, Default)]
pub struct Matches {
    /// (score, true positive) per counted detection.
    scored: Vec<(f32, bool)>,
    /// Labels (not ignore regions) seen.
    pub labels: usize,
    /// Frames evaluated.
    pub frames: usize,
}

fn iou(a: &BoxN, b: &GtBox) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = w * h;
    let union = a.area() + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

impl Matches {
    /// Adds one frame: `dets` are boxes in pixels with scores, `gt` its labels.
    pub fn add_frame(&mut self, gt: &[GtBox], dets: &mut [(BoxN, f32)]) {
        self.frames += 1;
        self.labels += gt.iter().filter(|g| !g.ignore).count();
        dets.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let mut taken = vec![false; gt.len()];
        for (bbox, score) in dets.iter() {
            let best = gt
                .iter()
                .enumerate()
                .map(|(i, g)| (i, iou(bbox, g)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, o)) if o >= IOU_MATCH => {
                    if gt[i].ignore {
                        continue;
                    }
                    let tp = !taken[i];
                    taken[i] = true;
                    self.scored.push((*score, tp));
                }
                _ => self.scored.push((*score, false)),
            }
        }
    }

    /// Average precision at IoU 0.5 over all frames added.
    pub fn ap50(&self) -> f32 {
        if self.labels == 0 {
            return 0.0;
        }
        let mut sorted = self.scored.clone();
        sorted.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut points = Vec::with_capacity(sorted.len());
        let (mut tp, mut fp) = (0usize, 0usize);
        for (_, hit) in &sorted {
            if *hit {
                tp += 1;
            } else {
                fp += 1;
            }
            points.push((tp as f32 / self.labels as f32, tp as f32 / (tp + fp) as f32));
        }
        // Precision envelope from the right, then area under the recall steps.
        for i in (0..points.len().saturating_sub(1)).rev() {
            points[i].1 = points[i].1.max(points[i + 1].1);
        }
        let mut ap = 0.0;
        let mut last_recall = 0.0;
        for (recall, precision) in points {
            ap += (recall - last_recall) * precision;
            last_recall = recall;
        }
        ap
    }

    /// Recall and precision counting only detections with score ≥ `threshold`.
    pub fn at(&self, threshold: f32) -> (f32, f32) {
        let kept = self.scored.iter().filter(|(s, _)| *s >= threshold);
        let (tp, n) = kept.fold((0, 0), |(tp, n), (_, hit)| (tp + usize::from(*hit), n + 1));
        let recall = if self.labels > 0 { tp as f32 / self.labels as f32 } else { 0.0 };
        let precision = if n > 0 { tp as f32 / n as f32 } else { 0.0 };
        (recall, precision)
    }
}

/// What `xl-agent eval` measures.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The recording.
    pub clip: PathBuf,
    /// Its labels.
    pub gt: GroundTruth,
    /// The evaluated class's index in the model.
    pub class: u16,
    /// Evaluate frames 1, 1 + every, 1 + 2·every, …
    pub every: usize,
    /// The alarm threshold for recall and precision.
    pub threshold: f32,
}

/// The result of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Frames evaluated.
    pub frames: usize,
    /// Labels in them.
    pub labels: usize,
    /// Average precision at IoU 0.5.
    pub ap50: f32,
    /// The alarm threshold.
    pub threshold: f32,
    /// Recall at the threshold.
    pub recall: f32,
    /// Precision at the threshold.
    pub precision: f32,
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The clip could not be decoded.
    #[error(transparent)]
    Clip(#[from] RecordingError),
    /// The detector failed.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// The clip is shorter than its labels or has no labelled frame.
    #[error("{0}")]
    Mismatch(String),
}

/// Distant people: the whole-frame stretch against zone-aware tiles, on the clip's frames
/// placed small in a large picture.
#[derive(Debug, Clone, Serialize)]
pub struct DistantReport {
    /// The large picture's width and height.
    pub canvas: (usize, usize),
    /// The frames' scale in it.
    pub scale: f32,
    /// Labelled people's heights in the large picture: 10th percentile, median, 90th, pixels.
    pub person_px: [f32; 3],
    /// The whole picture stretched to the model's input.
    pub stretch: EvalReport,
    /// The zone covering the placed frames, inferred as a camera's rules would have it.
    pub zones: EvalReport,
    /// Tiles the zone took per frame.
    pub tiles: usize,
}

impl EvalOptions {
    /// Decodes every frame and calls `f` with the sampled ones and their frame number (the
    /// first is 1); checks the clip against its labels.
    fn sampled(
        &self,
        mut f: impl FnMut(&Frame, u32) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        let mut clip = Recording::open(&self.clip)?;
        let mut index = 0usize;
        while let Some(frame) = clip.next_frame()? {
            let number = index as u32 + 1;
            index += 1;
            if (number as usize - 1).is_multiple_of(self.every.max(1)) {
                f(&frame, number)?;
            }
        }
        let last = self.gt.last_frame() as usize;
        if index < last {
            return Err(EvalError::Mismatch(format!(
                "clip {} has {index} frames but its labels go to frame {last}: wrong clip for these labels?",
                self.clip.display()
            )));
        }
        Ok(())
    }

    /// Scores `dets` (normalized, of a `w`×`h` picture) against `gt` in `matches`.
    fn score(&self, dets: &[Detection], (w, h): (f32, f32), gt: &[GtBox], matches: &mut Matches) {
        let mut boxes: Vec<(BoxN, f32)> = dets
            .iter()
            .filter(|d| d.class == self.class)
            .map(|d| {
                let b = d.bbox;
                (BoxN { x1: b.x1 * w, y1: b.y1 * h, x2: b.x2 * w, y2: b.y2 * h }, d.score)
            })
            .collect();
        matches.add_frame(gt, &mut boxes);
    }

    /// Decodes every frame, detects on the sampled ones, and scores them. The detector's
    /// candidate threshold should be low (0.05) so the whole precision–recall curve is seen.
    pub fn run(&self, detector: &mut Detector) -> Result<Matches, EvalError> {
        let mut matches = Matches::default();
        let mut dets: Vec<Detection> = Vec::with_capacity(256);
        self.sampled(|frame, number| {
            let size = (frame.width() as f32, frame.height() as f32);
            frame.with_yuv(|yuv| detector.detect(yuv, &mut dets)).map_err(mismatch)??;
            self.score(&dets, size, self.gt.frame(number), &mut matches);
            Ok(())
        })?;
        if matches.labels == 0 {
            return Err(EvalError::Mismatch("no labels of the class in the sampled frames".into()));
        }
        Ok(matches)
    }

    /// Each sampled frame shrunk by `scale` into a `canvas`-sized picture, inferred whole
    /// (stretched) and zone-aware (the placed frame as the zone, at most `max_tiles` tiles).
    pub fn run_distant(
        &self,
        detector: &mut Detector,
        canvas: (usize, usize),
        scale: f32,
        max_tiles: usize,
        threshold: f32,
    ) -> Result<DistantReport, EvalError> {
        let (mut stretch, mut zones) = (Matches::default(), Matches::default());
        let mut heights = Vec::new();
        let mut drawn: Option<(Canvas, Placement, Tiling)> = None;
        let mut dets: Vec<Detection> = Vec::with_capacity(256);
        self.sampled(|frame, number| {
            let size = (frame.width(), frame.height());
            if drawn.is_none() {
                let placement = Placement::far_corner(canvas, size, scale).ok_or_else(|| {
                    EvalError::Mismatch(format!(
                        "frames of {}x{} at scale {scale} do not fit in {}x{}",
                        size.0, size.1, canvas.0, canvas.1
                    ))
                })?;
                let tiling = Tiling::around(placement.area(size), max_tiles);
                drawn = Some((Canvas::new(placement), placement, tiling));
            }
            let Some((picture, placement, tiling)) = drawn.as_mut() else { return Ok(()) };
            let gt: Vec<GtBox> = self.gt.frame(number).iter().map(|g| placement.label(g)).collect();
            heights.extend(gt.iter().filter(|g| !g.ignore).map(|g| g.y2 - g.y1));
            let whole = (canvas.0 as f32, canvas.1 as f32);
            frame
                .with_yuv(|yuv| {
                    picture.with_frame(yuv, |img| -> Result<(), EvalError> {
                        detector.detect(img, &mut dets)?;
                        self.score(&dets, whole, &gt, &mut stretch);
                        detector.detect_tiles(img, tiling, &mut dets)?;
                        self.score(&dets, whole, &gt, &mut zones);
                        Ok(())
                    })
                })
                .map_err(mismatch)??;
            Ok(())
        })?;
        if stretch.labels == 0 {
            return Err(EvalError::Mismatch("no labels of the class in the sampled frames".into()));
        }
        heights.sort_unstable_by(f32::total_cmp);
        let pct = |p: usize| heights[(heights.len() - 1) * p / 100];
        Ok(DistantReport {
            canvas,
            scale,
            person_px: [pct(10), pct(50), pct(90)],
            stretch: stretch.report(threshold),
            zones: zones.report(threshold),
            tiles: drawn.map_or(0, |(_, _, t)| t.tiles_laid()),
        })
    }
}

fn mismatch(e: impl std::fmt::Display) -> EvalError {
    EvalError::Mismatch(e.to_string())
}

impl Matches {
    /// The report at `threshold`.
    pub fn report(&self, threshold: f32) -> EvalReport {
        let (recall, precision) = self.at(threshold);
        EvalReport {
            frames: self.frames,
            labels: self.labels,
            ap50: self.ap50(),
            threshold,
            recall,
            precision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(x: f32, ignore: bool) -> GtBox {
        GtBox { id: 1, x1: x, y1: 0.0, x2: x + 10.0, y2: 10.0, ignore }
    }
    fn det(x: f32, s: f32) -> (BoxN, f32) {
        (BoxN { x1: x, y1: 0.0, x2: x + 10.0, y2: 10.0 }, s)
    }

    #[test]
    fn perfect_detections_give_ap_one() {
        let mut m = Matches::default();
        m.add_frame(&[gt(0.0, false), gt(50.0, false)], &mut [det(1.0, 0.9), det(50.0, 0.8)]);
        assert!((m.ap50() - 1.0).abs() < 1e-6);
        assert_eq!(m.at(0.5), (1.0, 1.0));
    }

    #[test]
    fn duplicates_and_misses_cost_precision_and_recall() {
        let mut m = Matches::default();
        // Two labels: one found twice (one duplicate FP), one missed; a stray FP scores highest.
        m.add_frame(
            &[gt(0.0, false), gt(50.0, false)],
            &mut [det(200.0, 0.95), det(0.0, 0.9), det(1.0, 0.6)],
        );
        // Curve: FP (r0,p0), TP (r.5,p.5), FP → AP = 0.5 × 0.5.
        assert!((m.ap50() - 0.25).abs() < 1e-6, "{}", m.ap50());
        assert_eq!(m.at(0.7), (0.5, 0.5));
    }

    #[test]
    fn detections_on_ignore_regions_do_not_count() {
        let mut m = Matches::default();
        m.add_frame(&[gt(0.0, false), gt(50.0, true)], &mut [det(50.0, 0.99), det(0.0, 0.9)]);
        assert_eq!(m.labels, 1);
        assert!((m.ap50() - 1.0).abs() < 1e-6);
    }
}
