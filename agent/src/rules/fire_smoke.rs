//! `fire_smoke`: detections of fire or smoke (not tracks: flames do not keep a shape) in the
//! zone, or anywhere, for `min_frames` consecutive frames; the event goes on while they are seen.
//! Detections are placed by their box's centre.

use super::Hit;
use super::episode::Sight;
use crate::detect::Detection;
use crate::geometry::Polygon;

/// One fire-or-smoke rule's frame count.
#[derive(Debug, Clone)]
pub struct FireSmoke {
    min_frames: u32,
    frames: u32,
}

impl FireSmoke {
    /// A rule needing `min_frames` frames.
    pub fn new(min_frames: u32) -> Self {
        Self { min_frames, frames: 0 }
    }

    /// One frame's qualifying detections, with the zone (`None`: the whole picture).
    pub(super) fn see(&mut self, detections: &[Detection], zone: Option<&Polygon>) -> Sight {
        let inside: Vec<Hit> = detections
            .iter()
            .filter(|d| zone.is_none_or(|z| z.contains(d.bbox.centre())))
            .map(|d| Hit { track: 0, detection: *d })
            .collect();
        if inside.is_empty() {
            self.frames = 0;
            return Sight::default();
        }
        self.frames = self.frames.saturating_add(1);
        let opening = (self.frames >= self.min_frames)
            .then(|| (inside.clone(), format!("seen in {} frames", self.frames)));
        Sight { opening, holding: Some(inside) }
    }
}
