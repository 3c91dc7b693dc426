//! `vehicle_stopped`: a vehicle in the zone that has not moved for `dwell_s`.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground. A track the filter rejects in a frame (a weak detection that kept the track alive)
//! neither advances nor resets the state kept per track id.

use std::collections::HashMap;

use super::cooldown::PerTrack;
use super::{Firing, Hit};
use crate::geometry::{Point, Polygon};
use crate::track::Track;

/// A stopped vehicle: a track in the zone that has not moved for `dwell_ms`.
#[derive(Debug, Clone)]
pub struct Stopped {
    dwell_ms: i64,
    /// Where each track last moved to, and when.
    anchor: HashMap<u64, (Point, i64)>,
    cooldown: PerTrack,
}

/// A move of more than this fraction of the box's larger side counts as moving: relative to the
/// box, so a distant car is judged as fairly as a near one.
const STILL_FRACTION: f32 = 0.25;

impl Stopped {
    /// A rule firing after `dwell_ms` without moving.
    pub fn new(dwell_ms: i64, cooldown_ms: i64) -> Self {
        Self { dwell_ms, anchor: HashMap::new(), cooldown: PerTrack::new(cooldown_ms) }
    }

    /// One frame's filtered tracks.
    pub fn update(
        &mut self,
        tracks: &[&Track],
        zone: &Polygon,
        t_ms: i64,
        alive: impl Fn(u64) -> bool,
    ) -> Option<Firing> {
        self.anchor.retain(|id, _| alive(*id));
        self.cooldown.retain(&alive);
        let mut hits = Vec::new();
        let mut longest = 0;
        for t in tracks {
            let p = t.bbox.bottom_centre();
            let size = (t.bbox.x2 - t.bbox.x1).max(t.bbox.y2 - t.bbox.y1);
            let anchor = self.anchor.entry(t.id).or_insert((p, t_ms));
            if (p.x - anchor.0.x).hypot(p.y - anchor.0.y) > STILL_FRACTION * size {
                *anchor = (p, t_ms);
                continue;
            }
            let still = t_ms - anchor.1;
            if zone.contains(p) && still >= self.dwell_ms && self.cooldown.ready(t.id, t_ms) {
                self.cooldown.fire(t.id, t_ms);
                longest = longest.max(still);
                hits.push(Hit::of(t));
            }
        }
        (!hits.is_empty()).then(|| (hits, format!("still for {} s", longest / 1000)))
    }
}
