//! `loitering`: one object in the zone for longer than `dwell_s`.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground. A track the filter rejects in a frame (a weak detection that kept the track alive)
//! neither advances nor resets the state kept per track id.

use std::collections::HashMap;

use super::cooldown::PerTrack;
use super::{Firing, Hit};
use crate::geometry::Polygon;
use crate::track::Track;

/// Loitering: a track stays in the zone longer than `dwell_ms`.
#[derive(Debug, Clone)]
pub struct Loitering {
    dwell_ms: i64,
    since: HashMap<u64, i64>,
    cooldown: PerTrack,
}

impl Loitering {
    /// A rule firing after `dwell_ms` in the zone.
    pub fn new(dwell_ms: i64, cooldown_ms: i64) -> Self {
        Self { dwell_ms, since: HashMap::new(), cooldown: PerTrack::new(cooldown_ms) }
    }

    /// One frame's filtered tracks.
    pub fn update(
        &mut self,
        tracks: &[&Track],
        zone: &Polygon,
        t_ms: i64,
        alive: impl Fn(u64) -> bool,
    ) -> Option<Firing> {
        self.since.retain(|id, _| alive(*id));
        self.cooldown.retain(&alive);
        let mut hits = Vec::new();
        let mut longest = 0;
        for t in tracks {
            if !zone.contains(t.bbox.bottom_centre()) {
                self.since.remove(&t.id);
                continue;
            }
            let since = *self.since.entry(t.id).or_insert(t_ms);
            if t_ms - since >= self.dwell_ms && self.cooldown.ready(t.id, t_ms) {
                self.cooldown.fire(t.id, t_ms);
                longest = longest.max(t_ms - since);
                hits.push(Hit::of(t));
            }
        }
        (!hits.is_empty()).then(|| (hits, format!("stayed {} s", longest / 1000)))
    }
}
