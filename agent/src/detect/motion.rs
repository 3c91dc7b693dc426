//! The motion gate: a frame whose scene has not changed since the last inferred frame of its
//! camera is not inferred again; its camera keeps the last detections.
//!
//! The luma plane is averaged into a small grid (a few thousand cells, read with a stride so a
//! 1080p frame costs well under a millisecond) and compared with the grid of the last inferred
//! frame. Cells under a mask (swaying trees, a road outside the watched area) never count. A
//! frame is inferred when enough cells changed, or when the last inference is older than the
//! refresh interval, so slow changes and lighting drift are still seen.

use std::time::Duration;

use crate::config::MotionConfig;
use crate::geometry::{Point, Polygon};
use crate::source::Yuv;

/// Grid columns.
const COLS: usize = 64;
/// Grid rows.
const ROWS: usize = 36;

/// Gate settings for one camera.
#[derive(Debug, Clone)]
pub struct MotionSettings {
    /// Mean luma change (0..255) that makes a cell count as changed.
    pub cell_delta: u8,
    /// Fraction of unmasked cells that must change for a frame to be inferred.
    pub min_changed: f32,
    /// Infer at least this often even in a still scene.
    pub refresh: Duration,
    /// Regions ignored by the gate, in normalized image coordinates.
    pub masks: Vec<Polygon>,
}

/// One camera's gate state.
#[derive(Debug)]
pub struct MotionGate {
    settings: MotionSettings,
    /// Cells outside every mask.
    counted: Vec<bool>,
    counted_cells: usize,
    reference: Vec<u16>,
    current: Vec<u16>,
    /// When the last frame was inferred, monotonic ms.
    last_inferred: Option<i64>,
}

impl MotionGate {
    /// The gate a camera's `[cameras.motion]` settings describe, or `None` when it is off.
    pub fn from_config(cfg: &MotionConfig) -> Result<Option<Self>, String> {
        if !cfg.enabled {
            return Ok(None);
        }
        let masks = cfg
            .masks
            .iter()
            .map(|m| Polygon::new(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("motion mask: {e}"))?;
        Ok(Some(Self::new(MotionSettings {
            cell_delta: cfg.cell_delta,
            min_changed: cfg.min_changed,
            refresh: Duration::from_secs_f32(cfg.refresh_s),
            masks,
        })))
    }

    /// A gate with no reference yet: its first frame is always inferred.
    pub fn new(settings: MotionSettings) -> Self {
        let counted: Vec<bool> = (0..COLS * ROWS)
            .map(|i| {
                let p = Point {
                    x: ((i % COLS) as f32 + 0.5) / COLS as f32,
                    y: ((i / COLS) as f32 + 0.5) / ROWS as f32,
                };
                !settings.masks.iter().any(|m| m.contains(p))
            })
            .collect();
        let counted_cells = counted.iter().filter(|c| **c).count();
        Self {
            settings,
            counted,
            counted_cells,
            reference: vec![0; COLS * ROWS],
            current: vec![0; COLS * ROWS],
            last_inferred: None,
        }
    }

    /// Whether `img`, captured at `now_ms` (monotonic), must be inferred; if so, it becomes the
    /// new reference.
    pub fn check(&mut self, img: &Yuv<'_>, now_ms: i64) -> bool {
        thumbnail(img, &mut self.current);
        let refresh = self.settings.refresh.as_millis() as i64;
        let due = self.last_inferred.is_none_or(|t| now_ms - t >= refresh);
        let infer = due || self.changed_fraction() >= self.settings.min_changed;
        if infer {
            std::mem::swap(&mut self.reference, &mut self.current);
            self.last_inferred = Some(now_ms);
        }
        infer
    }

    /// Fraction of counted cells whose mean luma moved by more than the cell delta.
    fn changed_fraction(&self) -> f32 {
        if self.counted_cells == 0 {
            return 0.0;
        }
        let delta = self.settings.cell_delta as u16;
        let changed = self
            .current
            .iter()
            .zip(&self.reference)
            .zip(&self.counted)
            .filter(|((c, r), counted)| **counted && c.abs_diff(**r) > delta)
            .count();
        changed as f32 / self.counted_cells as f32
    }
}

/// Mean luma of each grid cell, sampling every other pixel of every other row.
fn thumbnail(img: &Yuv<'_>, out: &mut [u16]) {
    let (w, h) = (img.width, img.height);
    for (cell, value) in out.iter_mut().enumerate() {
        let (cx, cy) = (cell % COLS, cell / COLS);
        let (x0, x1) = (cx * w / COLS, ((cx + 1) * w / COLS).max(cx * w / COLS + 1).min(w));
        let (y0, y1) = (cy * h / ROWS, ((cy + 1) * h / ROWS).max(cy * h / ROWS + 1).min(h));
        let (mut sum, mut n) = (0u32, 0u32);
        for y in (y0..y1).step_by(2) {
            let row = &img.y[y * img.y_stride..];
            for x in (x0..x1).step_by(2) {
                sum += row[x] as u32;
                n += 1;
            }
        }
        *value = (sum / n.max(1)) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{YuvToRgb, tests::flat};

    fn settings(masks: Vec<Polygon>) -> MotionSettings {
        MotionSettings {
            cell_delta: 12,
            min_changed: 0.002,
            refresh: Duration::from_secs(10),
            masks,
        }
    }

    /// A grey frame with a bright square at (x, y) in pixels.
    fn scene(square_at: Option<(usize, usize)>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (mut y, u, v) = flat(320, 180, (100, 128, 128));
        if let Some((sx, sy)) = square_at {
            for r in sy..sy + 20 {
                y[r * 320 + sx..r * 320 + sx + 20].fill(220);
            }
        }
        (y, u, v)
    }

    fn check(gate: &mut MotionGate, planes: &(Vec<u8>, Vec<u8>, Vec<u8>), t: i64) -> bool {
        let img =
            Yuv::new(&planes.0, &planes.1, &planes.2, 320, 160, 320, 180, YuvToRgb::BT601).unwrap();
        gate.check(&img, t)
    }

    #[test]
    fn a_still_scene_is_skipped_until_something_moves_or_the_refresh_is_due() {
        let t0 = 0;
        let mut gate = MotionGate::new(settings(vec![]));
        let still = scene(None);
        assert!(check(&mut gate, &still, t0), "first frame");
        assert!(!check(&mut gate, &still, t0 + 1000));
        assert!(check(&mut gate, &scene(Some((100, 100))), t0 + 2000));
        assert!(!check(&mut gate, &scene(Some((100, 100))), t0 + 3000));
        assert!(check(&mut gate, &scene(Some((100, 100))), t0 + 13000), "refresh");
    }

    #[test]
    fn motion_under_a_mask_does_not_count() {
        let t0 = 0;
        let mask = Polygon::new(&[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]).unwrap();
        let mut gate = MotionGate::new(settings(vec![mask]));
        assert!(check(&mut gate, &scene(None), t0));
        assert!(!check(&mut gate, &scene(Some((40, 80))), t0 + 1000), "left half masked");
        assert!(check(&mut gate, &scene(Some((240, 80))), t0 + 2000));
    }
}
