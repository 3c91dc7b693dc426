//! `crowding`: at least `min_count` objects in the zone for `dwell_s`. The event goes on while
//! the crowd is there, so one gathering is one event however long it lasts.
//!
//! Objects are placed by their box's bottom-centre, where a person touches the ground.

use super::Hit;
use super::episode::Sight;
use crate::track::Track;

/// One crowding rule's gathering.
#[derive(Debug, Clone)]
pub struct Crowding {
    min_count: usize,
    dwell_ms: i64,
    /// Since when (monotonic ms) the crowd has been there.
    since: Option<i64>,
    /// Since when it has been thinner than `min_count`, within the grace.
    thinned_since: Option<i64>,
}

/// A crowd whose count dips below the threshold for less than this is the same crowd (people
/// hide behind each other for a moment).
const CROWD_GRACE_MS: i64 = 3000;

impl Crowding {
    /// A rule for `min_count` objects lasting `dwell_ms`.
    pub fn new(min_count: usize, dwell_ms: i64) -> Self {
        Self { min_count, dwell_ms, since: None, thinned_since: None }
    }

    /// One inferred frame's qualifying tracks inside the zone, at `t_ms` (monotonic).
    pub(super) fn see(&mut self, inside: &[&Track], t_ms: i64) -> Sight {
        if inside.len() < self.min_count {
            let thinned = *self.thinned_since.get_or_insert(t_ms);
            if t_ms - thinned >= CROWD_GRACE_MS {
                self.since = None;
            }
            return Sight::default();
        }
        self.thinned_since = None;
        let since = *self.since.get_or_insert(t_ms);
        let hits: Vec<Hit> = inside.iter().map(|t| Hit::of(t)).collect();
        let opening = (t_ms - since >= self.dwell_ms).then(|| {
            (hits.clone(), format!("{} objects for {} s", hits.len(), (t_ms - since) / 1000))
        });
        Sight { opening, holding: Some(hits) }
    }
}
