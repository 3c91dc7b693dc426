//! Bridging a switched track id: when a track vanishes and a new one appears where it was, soon
//! after, the new one takes over what the old one had built up (how long it stayed, how long it
//! stood still). Night, an occlusion or a flickering score often gives one person a new id;
//! without this, a loiterer would start from zero each time. Only a track born after the other
//! vanished (or the same track, back after a missed frame) takes over: someone who was already
//! walking about when another left is someone else.

use crate::geometry::Point;
use crate::track::Track;

/// What tracks that vanished had built up, for a new track that appears where they were.
#[derive(Debug, Clone)]
pub(super) struct Handover {
    /// How long (ms) a vanished track's state waits to be taken over.
    keep_ms: i64,
    /// Each vanished track: its id, where it was, its state, when it vanished (monotonic ms).
    gone: Vec<Gone>,
}

/// A vanished track, as [`Handover`] keeps it.
#[derive(Debug, Clone, Copy)]
struct Gone {
    id: u64,
    at: Point,
    state: i64,
    t_ms: i64,
}

impl Handover {
    /// A handover keeping vanished tracks' states `keep_ms`.
    pub fn new(keep_ms: i64) -> Self {
        Self { keep_ms, gone: Vec::new() }
    }

    /// Track `id`, at `p` with `state`, vanished at `t_ms`.
    pub fn vanished(&mut self, id: u64, p: Point, state: i64, t_ms: i64) {
        self.gone.push(Gone { id, at: p, state, t_ms });
    }

    /// The state track `track` takes over at `t_ms`, if a track vanished near where it is
    /// recently, before it was born (or it is that track, back); the nearest such one, which is
    /// then used up.
    pub fn take_over(&mut self, track: &Track, t_ms: i64) -> Option<i64> {
        self.gone.retain(|g| t_ms - g.t_ms <= self.keep_ms);
        let b = &track.bbox;
        let p = b.bottom_centre();
        let reach = (0.5 * (b.x2 - b.x1).max(b.y2 - b.y1)).max(0.03);
        let (i, _) = self
            .gone
            .iter()
            .enumerate()
            .filter(|(_, g)| g.id == track.id || track.first_ms >= g.t_ms)
            .map(|(i, g)| (i, (g.at.x - p.x).hypot(g.at.y - p.y)))
            .filter(|(_, d)| *d <= reach)
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(self.gone.swap_remove(i).state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detection;
    use crate::geometry::BoxN;
    use crate::track::{Tracker, TrackerSettings};

    /// A confirmed track of a person standing at (`x`, 0.8), born at `born_ms`.
    fn person(x: f32, born_ms: i64) -> Track {
        let mut tracker = Tracker::new(TrackerSettings::default());
        let d = Detection {
            class: 0,
            score: 0.9,
            bbox: BoxN { x1: x - 0.02, y1: 0.7, x2: x + 0.02, y2: 0.8 },
        };
        tracker.update(&[d], born_ms);
        tracker.tracks()[0].clone()
    }

    #[test]
    fn a_track_born_where_one_vanished_takes_its_state_once() {
        let mut h = Handover::new(10_000);
        h.vanished(1, Point { x: 0.3, y: 0.8 }, 1234, 500);
        assert_eq!(h.take_over(&person(0.6, 1000), 1000), None, "too far");
        assert_eq!(h.take_over(&person(0.31, 1000), 1000), Some(1234));
        assert_eq!(h.take_over(&person(0.31, 1200), 1200), None, "used up");
        h.vanished(1, Point { x: 0.3, y: 0.8 }, 99, 0);
        assert_eq!(h.take_over(&person(0.3, 10_001), 10_001), None, "too late");
    }

    #[test]
    fn someone_already_about_when_another_vanished_is_someone_else() {
        let mut h = Handover::new(10_000);
        h.vanished(7, Point { x: 0.3, y: 0.8 }, 1234, 5000);
        assert_eq!(h.take_over(&person(0.3, 2000), 6000), None, "born before: another person");
    }
}
