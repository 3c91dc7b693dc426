//! `crowding`: at least `min_count` objects in the zone for `dwell_s`.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground. One alarm per gathering.

use super::cooldown::PerRule;
use super::{Firing, Hit};
use crate::geometry::Polygon;
use crate::track::Track;

/// A crowd: at least `min_count` tracks in the zone for `dwell_ms`. One alarm per gathering: the
/// rule re-arms once the crowd has thinned out for a few seconds.
#[derive(Debug, Clone)]
pub struct Crowding {
    min_count: usize,
    dwell_ms: i64,
    since: Option<i64>,
    thinned_since: Option<i64>,
    armed: bool,
    cooldown: PerRule,
}

/// A crowd whose count dips below the threshold for less than this is the same crowd (people
/// hide behind each other for a moment).
const CROWD_GRACE_MS: i64 = 3000;

impl Crowding {
    /// A rule for `min_count` objects lasting `dwell_ms`.
    pub fn new(min_count: usize, dwell_ms: i64, cooldown_ms: i64) -> Self {
        Self {
            min_count,
            dwell_ms,
            since: None,
            thinned_since: None,
            armed: true,
            cooldown: PerRule::new(cooldown_ms),
        }
    }

    /// One frame's filtered tracks.
    pub fn update(&mut self, tracks: &[&Track], zone: &Polygon, t_ms: i64) -> Option<Firing> {
        let inside: Vec<&&Track> =
            tracks.iter().filter(|t| zone.contains(t.bbox.bottom_centre())).collect();
        if inside.len() < self.min_count {
            let thinned = *self.thinned_since.get_or_insert(t_ms);
            if t_ms - thinned >= CROWD_GRACE_MS {
                self.since = None;
                self.armed = true;
            }
            return None;
        }
        self.thinned_since = None;
        let since = *self.since.get_or_insert(t_ms);
        if self.armed && t_ms - since >= self.dwell_ms && self.cooldown.ready(t_ms) {
            self.armed = false;
            self.cooldown.fire(t_ms);
            let detail = format!("{} objects for {} s", inside.len(), (t_ms - since) / 1000);
            return Some((inside.into_iter().map(|t| Hit::of(t)).collect(), detail));
        }
        None
    }
}
