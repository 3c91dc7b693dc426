//! `loitering`: one object stays in the zone longer than `dwell_s`. Dwell is measured per
//! track, so passers-by never add up to a loiterer; it starts again when the track leaves the
//! zone, and a track id that switches under the same person (a new track appearing where one
//! was lost) keeps its dwell. The event goes on while
//! someone in the zone has stayed longer than `dwell_s`.
//!
//! Objects are placed by their box's bottom-centre, where a person touches the ground.

use std::collections::HashMap;

use super::Hit;
use super::episode::Sight;
use super::handover::Handover;
use crate::geometry::Point;
use crate::track::Track;

/// One loitering rule's dwell per track.
#[derive(Debug, Clone)]
pub struct Loitering {
    dwell_ms: i64,
    /// Since when (monotonic ms) each track inside has been inside, and where it was last.
    since: HashMap<u64, (i64, Point)>,
    handover: Handover,
}

impl Loitering {
    /// A rule opening after `dwell_ms` in the zone; a vanished track's dwell waits `keep_ms` to
    /// be taken over.
    pub fn new(dwell_ms: i64, keep_ms: i64) -> Self {
        Self { dwell_ms, since: HashMap::new(), handover: Handover::new(keep_ms) }
    }

    /// One inferred frame's qualifying tracks inside the zone, of all those `visible`, at
    /// `t_ms` (monotonic).
    pub(super) fn see(&mut self, inside: &[&Track], visible: &[&Track], t_ms: i64) -> Sight {
        let handover = &mut self.handover;
        self.since.retain(|id, (since, p)| {
            let here = inside.iter().any(|t| t.id == *id);
            // Lost, not walked out: its dwell may be taken over.
            if !here && !visible.iter().any(|t| t.id == *id) {
                handover.vanished(*id, *p, *since, t_ms);
            }
            here
        });
        let mut loiterers = Vec::new();
        let mut longest = 0;
        for t in inside {
            let p = t.bbox.bottom_centre();
            let since = match self.since.get(&t.id) {
                Some((since, _)) => *since,
                None => self.handover.take_over(t, t_ms).unwrap_or(t_ms),
            };
            self.since.insert(t.id, (since, p));
            let stayed = t_ms - since;
            if stayed >= self.dwell_ms {
                longest = longest.max(stayed);
                loiterers.push(Hit::of(t));
            }
        }
        Sight::of(loiterers, || format!("stayed {} s", longest / 1000))
    }
}
