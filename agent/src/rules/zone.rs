//! Rules about a zone: intrusion, loitering, stopped vehicles, crowds, and fire or smoke.
//!
//! Objects are placed by their box's bottom-centre, where a person or a vehicle touches the
//! ground. Track rules keep a little state per track id; a track the filter rejects in a frame
//! (a weak detection that kept the track alive) neither advances nor resets that state.

use std::collections::HashMap;

use super::Hit;
use super::cooldown::{PerRule, PerTrack};
use crate::detection::Detection;
use crate::geometry::{Point, Polygon};
use crate::tracker::Track;

/// What a zone rule reports when it fires: the objects, and a short description.
pub type Firing = (Vec<Hit>, String);

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
