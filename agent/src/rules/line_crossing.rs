//! Line crossing: a track whose ground point passes from one side of a counting line to the
//! other, through the segment itself. Crossings are counted both ways; the rule's direction says
//! which ones raise alarms.
//!
//! A side is only taken when the point is clearly off the line (a margin), so a person standing
//! on the line, whose box jitters by a few pixels, is not counted back and forth.

use std::collections::HashMap;

use super::Hit;
use super::cooldown::PerTrack;
use crate::config::DirectionConfig;
use crate::geometry::{Line, Point, Side};
use crate::track::Track;

/// Distance from the line (fraction of the picture) within which a point has no side.
const MARGIN: f32 = 0.01;

/// Crossings counted by one line rule since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// From side A to side B.
    pub a_to_b: u64,
    /// From side B to side A.
    pub b_to_a: u64,
}

/// One line rule's state.
#[derive(Debug, Clone)]
pub struct Crossing {
    direction: DirectionConfig,
    /// Each track's last clear side, and where it was then.
    last: HashMap<u64, (Side, Point)>,
    /// Counts so far.
    pub counts: Counts,
    cooldown: PerTrack,
}

impl Crossing {
    /// A rule alarming on crossings in `direction`.
    pub fn new(direction: DirectionConfig, cooldown_ms: i64) -> Self {
        Self {
            direction,
            last: HashMap::new(),
            counts: Counts::default(),
            cooldown: PerTrack::new(cooldown_ms),
        }
    }

    /// One frame's filtered tracks; returns the crossings that raise an alarm now.
    pub fn update(
        &mut self,
        tracks: &[&Track],
        line: &Line,
        t_ms: i64,
        alive: impl Fn(u64) -> bool,
    ) -> Option<(Vec<Hit>, String)> {
        self.last.retain(|id, _| alive(*id));
        self.cooldown.retain(&alive);
        let mut hits = Vec::new();
        let mut way = "";
        for t in tracks {
            let p = t.bbox.bottom_centre();
            let Some(side) = line.side(p, MARGIN) else { continue };
            let Some((before, from)) = self.last.insert(t.id, (side, p)) else { continue };
            if before == side || !line.crossed_by(from, p) {
                continue;
            }
            let (name, watched) = match side {
                Side::B => {
                    self.counts.a_to_b += 1;
                    ("A→B", self.direction != DirectionConfig::BToA)
                }
                Side::A => {
                    self.counts.b_to_a += 1;
                    ("B→A", self.direction != DirectionConfig::AToB)
                }
            };
            if watched && self.cooldown.ready(t.id, t_ms) {
                self.cooldown.fire(t.id, t_ms);
                way = name;
                hits.push(Hit::of(t));
            }
        }
        let detail =
            format!("crossed {way} (A→B {}, B→A {})", self.counts.a_to_b, self.counts.b_to_a);
        (!hits.is_empty()).then_some((hits, detail))
    }
}
