//! `vehicle_stopped`: a vehicle in the zone that has not moved for `dwell_s`. The event goes on
//! while a vehicle has stood still in the zone that long; cars driving through never count, and
//! a parked car whose track id switches (a new track where one vanished) keeps its stillness.
//!
//! Objects are placed by their box's bottom-centre, where the wheels touch the ground.

use std::collections::HashMap;

use super::Hit;
use super::episode::Sight;
use super::handover::Handover;
use crate::geometry::{Point, Polygon};
use crate::track::Track;

/// One stopped-vehicle rule's stillness per track.
#[derive(Debug, Clone)]
pub struct VehicleStopped {
    dwell_ms: i64,
    /// Where each track last moved to, and when (monotonic ms).
    anchor: HashMap<u64, (Point, i64)>,
    handover: Handover,
}

/// A move of more than this fraction of the box's larger side counts as moving: relative to the
/// box, so a distant car is judged as fairly as a near one.
const STILL_FRACTION: f32 = 0.25;

impl VehicleStopped {
    /// A rule opening after `dwell_ms` without moving; a vanished track's stillness waits
    /// `keep_ms` to be taken over.
    pub fn new(dwell_ms: i64, keep_ms: i64) -> Self {
        Self { dwell_ms, anchor: HashMap::new(), handover: Handover::new(keep_ms) }
    }

    /// One inferred frame's qualifying tracks, the zone, at `t_ms` (monotonic).
    pub(super) fn see(&mut self, tracks: &[&Track], zone: &Polygon, t_ms: i64) -> Sight {
        let handover = &mut self.handover;
        self.anchor.retain(|id, (p, since)| {
            let here = tracks.iter().any(|t| t.id == *id);
            if !here {
                handover.vanished(*id, *p, *since, t_ms);
            }
            here
        });
        let mut stopped = Vec::new();
        let mut longest = 0;
        for t in tracks {
            let p = t.bbox.bottom_centre();
            let size = (t.bbox.x2 - t.bbox.x1).max(t.bbox.y2 - t.bbox.y1);
            if !self.anchor.contains_key(&t.id) {
                let since = self.handover.take_over(t, t_ms).unwrap_or(t_ms);
                self.anchor.insert(t.id, (p, since));
            }
            let Some(anchor) = self.anchor.get_mut(&t.id) else { continue };
            if (p.x - anchor.0.x).hypot(p.y - anchor.0.y) > STILL_FRACTION * size {
                *anchor = (p, t_ms);
                continue;
            }
            let still = t_ms - anchor.1;
            if !zone.contains(p) {
                continue;
            }
            if still >= self.dwell_ms {
                longest = longest.max(still);
                stopped.push(Hit::of(t));
            }
        }
        Sight::of(stopped, || format!("still for {} s", longest / 1000))
    }
}
