//! Event rules: detections in a zone over time become one event, not one per frame.

use std::time::{Duration, Instant};

use crate::config::{RuleConfig, SeverityConfig};
use crate::detection::Detection;
use crate::geometry::Polygon;

/// A rule's decision that an event happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index of the rule in the rule set.
    pub rule: usize,
    /// The detections that made it fire.
    pub detections: Vec<Detection>,
}

/// Zone intrusion: an object of a watched class stands in the zone (its box's bottom-centre,
/// where it touches the ground, is inside) for `min_frames` consecutive inferred frames.
///
/// After firing, the rule stays quiet until the zone has been empty for `min_frames` frames
/// and the cooldown has passed, so one visit is one alarm.
#[derive(Debug, Clone)]
pub struct ZoneIntrusion {
    /// Rule id.
    pub id: String,
    /// Zone id.
    pub zone_id: String,
    /// Camera index the zone belongs to.
    pub camera: usize,
    /// The zone.
    pub zone: Polygon,
    /// Class indices that count.
    pub classes: Vec<u16>,
    /// Minimum score.
    pub min_score: f32,
    /// Consecutive frames needed.
    pub min_frames: u32,
    /// Quiet time after an alarm.
    pub cooldown: Duration,
    /// Alarm urgency.
    pub severity: SeverityConfig,
    hits: u32,
    misses: u32,
    armed: bool,
    last_fired: Option<Instant>,
}

impl ZoneIntrusion {
    /// A rule from its config, with class names already resolved to indices.
    pub fn new(cfg: &RuleConfig, camera: usize, zone: Polygon, classes: Vec<u16>) -> Self {
        Self {
            id: cfg.id.clone(),
            zone_id: cfg.zone.clone(),
            camera,
            zone,
            classes,
            min_score: cfg.min_score,
            min_frames: cfg.min_frames,
            cooldown: Duration::from_secs_f32(cfg.cooldown_s),
            severity: cfg.severity,
            hits: 0,
            misses: 0,
            armed: true,
            last_fired: None,
        }
    }

    /// Feeds one inferred frame's detections (of this rule's camera) at time `now`; returns the
    /// detections that triggered an alarm, if one fires now.
    pub fn update(&mut self, detections: &[Detection], now: Instant) -> Option<Vec<Detection>> {
        let inside: Vec<Detection> = detections
            .iter()
            .filter(|d| {
                d.score >= self.min_score
                    && self.classes.contains(&d.class)
                    && self.zone.contains(d.bbox.bottom_centre())
            })
            .copied()
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
        let cooled = self
            .last_fired
            .is_none_or(|t| now.duration_since(t) >= self.cooldown);
        if self.armed && cooled && self.hits >= self.min_frames {
            self.armed = false;
            self.last_fired = Some(now);
            return Some(inside);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleKindConfig;
    use crate::geometry::BoxN;

    fn rule(min_frames: u32, cooldown_s: f32) -> ZoneIntrusion {
        let cfg = RuleConfig {
            id: "r".into(),
            kind: RuleKindConfig::ZoneIntrusion,
            zone: "z".into(),
            classes: vec!["person".into()],
            min_score: 0.5,
            min_frames,
            cooldown_s,
            severity: SeverityConfig::High,
        };
        let zone = Polygon::new(&[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]).unwrap();
        ZoneIntrusion::new(&cfg, 0, zone, vec![0])
    }

    fn person(y2: f32, score: f32) -> Detection {
        Detection {
            class: 0,
            score,
            bbox: BoxN { x1: 0.4, y1: y2 - 0.2, x2: 0.5, y2 },
        }
    }

    #[test]
    fn fires_once_per_visit_after_min_frames() {
        let mut r = rule(2, 0.0);
        let t = Instant::now();
        let inside = [person(0.8, 0.9)];
        assert!(r.update(&inside, t).is_none(), "needs 2 frames");
        assert_eq!(r.update(&inside, t).map(|d| d.len()), Some(1));
        for _ in 0..10 {
            assert!(r.update(&inside, t).is_none(), "same visit");
        }
        // The zone empties for 2 frames: the next visit fires again.
        r.update(&[], t);
        r.update(&[], t);
        r.update(&inside, t);
        assert!(r.update(&inside, t).is_some());
    }

    #[test]
    fn ignores_objects_outside_the_zone_weak_or_of_other_classes() {
        let mut r = rule(1, 0.0);
        let t = Instant::now();
        let mut car = person(0.8, 0.9);
        car.class = 2;
        assert!(r.update(&[person(0.3, 0.9), person(0.8, 0.4), car], t).is_none());
    }

    #[test]
    fn cooldown_holds_back_a_second_visit() {
        let mut r = rule(1, 60.0);
        let t = Instant::now();
        assert!(r.update(&[person(0.8, 0.9)], t).is_some());
        r.update(&[], t);
        assert!(r.update(&[person(0.8, 0.9)], t + Duration::from_secs(5)).is_none());
        assert!(r.update(&[person(0.8, 0.9)], t + Duration::from_secs(61)).is_some());
    }
}
