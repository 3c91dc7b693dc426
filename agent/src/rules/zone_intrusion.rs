//! `zone_intrusion`: an object in the zone for `min_frames` inferred frames.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground. A track the filter rejects in a frame (a weak detection that kept the track alive)
//! neither advances nor resets the state kept per track id.

use std::collections::HashMap;

use super::cooldown::PerTrack;
use super::{Firing, Hit};
use crate::geometry::Polygon;
use crate::track::Track;

/// Zone intrusion: a track in the zone for `min_frames` consecutive inferred frames.
#[derive(Debug, Clone)]
pub struct Intrusion {
    min_frames: u32,
    frames_in: HashMap<u64, u32>,
    cooldown: PerTrack,
}

impl Intrusion {
    /// A rule needing `min_frames` frames, each object quiet `cooldown_ms` after its alarm.
    pub fn new(min_frames: u32, cooldown_ms: i64) -> Self {
        Self { min_frames, frames_in: HashMap::new(), cooldown: PerTrack::new(cooldown_ms) }
    }

    /// One frame's filtered tracks; every object in the zone that is not cooling down joins
    /// the alarm of the first one that qualifies, so a group is one alarm.
    pub fn update(
        &mut self,
        tracks: &[&Track],
        zone: &Polygon,
        t_ms: i64,
        alive: impl Fn(u64) -> bool,
    ) -> Option<Firing> {
        self.frames_in.retain(|id, _| alive(*id));
        self.cooldown.retain(&alive);
        for t in tracks {
            if zone.contains(t.bbox.bottom_centre()) {
                *self.frames_in.entry(t.id).or_default() += 1;
            } else {
                self.frames_in.remove(&t.id);
            }
        }
        let ready =
            |t: &&&Track| self.frames_in.contains_key(&t.id) && self.cooldown.ready(t.id, t_ms);
        if !tracks.iter().filter(ready).any(|t| self.frames_in[&t.id] >= self.min_frames) {
            return None;
        }
        let hits: Vec<Hit> = tracks.iter().filter(ready).map(|t| Hit::of(t)).collect();
        for h in &hits {
            self.cooldown.fire(h.track, t_ms);
        }
        let detail = format!("{} in the zone", hits.len());
        Some((hits, detail))
    }
}
