//! `fire_smoke`: detections of fire or smoke, with a model that has such classes.
//!
//! Detections, not tracks (flames do not keep a shape), placed by their box's centre.

use super::cooldown::PerRule;
use super::{Firing, Hit};
use crate::detect::Detection;
use crate::geometry::Polygon;

/// Fire or smoke: detections of the watched classes (not tracks: flames do not keep a shape) in
/// the zone, or anywhere, for `min_frames` consecutive frames. Re-arms after as many clear ones.
#[derive(Debug, Clone)]
pub struct Presence {
    min_frames: u32,
    hits: u32,
    misses: u32,
    armed: bool,
    cooldown: PerRule,
}

impl Presence {
    /// A rule needing `min_frames` frames.
    pub fn new(min_frames: u32, cooldown_ms: i64) -> Self {
        Self { min_frames, hits: 0, misses: 0, armed: true, cooldown: PerRule::new(cooldown_ms) }
    }

    /// One frame's filtered detections, with the zone (`None`: the whole picture).
    pub fn update(
        &mut self,
        detections: &[Detection],
        zone: Option<&Polygon>,
        t_ms: i64,
    ) -> Option<Firing> {
        let inside: Vec<Hit> = detections
            .iter()
            .filter(|d| zone.is_none_or(|z| z.contains(d.bbox.centre())))
            .map(|d| Hit { track: 0, detection: *d })
            .collect();
        if inside.is_empty() {
            self.hits = 0;
            self.misses += 1;
            if self.misses >= self.min_frames {
                self.armed = true;
            }
            return None;
        }
        self.misses = 0;
        self.hits += 1;
        if self.armed && self.hits >= self.min_frames && self.cooldown.ready(t_ms) {
            self.armed = false;
            self.cooldown.fire(t_ms);
            let detail = format!("seen in {} frames", self.hits);
            return Some((inside, detail));
        }
        None
    }
}
