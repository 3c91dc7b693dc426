//! `zone_intrusion`: the zone holds a qualifying object for `min_frames` consecutive inferred
//! frames. The count is the zone's, not any one track's: a group entering together opens one
//! event, and an id switch does not restart it. The event goes on while anyone is in the zone.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground.

use super::Hit;
use super::episode::Sight;
use crate::track::Track;

/// The zone-level frame count of one intrusion rule.
#[derive(Debug, Clone)]
pub struct ZoneIntrusion {
    min_frames: u32,
    frames: u32,
}

impl ZoneIntrusion {
    /// A rule needing `min_frames` inferred frames with someone in the zone.
    pub fn new(min_frames: u32) -> Self {
        Self { min_frames, frames: 0 }
    }

    /// One inferred frame's qualifying tracks inside the zone.
    pub(super) fn see(&mut self, inside: &[&Track]) -> Sight {
        if inside.is_empty() {
            self.frames = 0;
            return Sight::default();
        }
        self.frames = self.frames.saturating_add(1);
        let hits: Vec<Hit> = inside.iter().map(|t| Hit::of(t)).collect();
        let opening = (self.frames >= self.min_frames)
            .then(|| (hits.clone(), format!("{} in the zone", hits.len())));
        Sight { opening, holding: Some(hits) }
    }
}
