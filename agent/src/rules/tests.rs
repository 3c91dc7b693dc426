//! Rule sets on synthetic detections: each kind fires once per event, at the right time.

use std::path::Path;

use super::*;
use crate::geometry::BoxN;

const PERSON: u16 = 0;
const CAR: u16 = 2;

fn card() -> ModelCard {
    ModelCard::parse(include_str!("../../../models/nanodet_g416_coco.card.toml"))
        .expect("shipped card")
}

/// A rule set for camera "cam" with `rest` (zones, lines, rules) appended to a minimal config.
fn rules(rest: &str) -> RuleSet {
    let text = format!(
        "agent_id = \"a\"\n[model]\npath = \"m.onnx\"\n[[cameras]]\nid = \"cam\"\nurl = \"rtsp://x/\"\n\
         privacy_masks = [[[0.8, 0.0], [1.0, 0.0], [1.0, 0.3], [0.8, 0.3]]]\n{rest}"
    );
    let config = AgentConfig::parse(&text, Path::new("/tmp/a.toml")).expect("valid config");
    RuleSet::new(&config, 0, &card()).expect("rules resolve")
}

/// An object whose feet are at (x, y).
fn at(class: u16, x: f32, y: f32) -> Detection {
    Detection { class, score: 0.9, bbox: BoxN { x1: x - 0.02, y1: y - 0.12, x2: x + 0.02, y2: y } }
}

const ZONE: &str = "[[zones]]\nid = \"z\"\ncamera = \"cam\"\npoints = [[0.0, 0.5], [0.6, 0.5], [0.6, 1.0], [0.0, 1.0]]\n";

/// 2026-07-01 12:00 in Asia/Shanghai (a Wednesday), UTC ms.
const NOON: i64 = 1_782_878_400_000;

/// Feeds `frames` frames 200 ms apart; `place(k)` gives frame k's detections. Returns the events
/// with their frame numbers.
fn run(
    set: &mut RuleSet,
    frames: usize,
    start: i64,
    place: impl Fn(usize) -> Vec<Detection>,
) -> Vec<(usize, Event)> {
    let mut out = Vec::new();
    for k in 0..frames {
        for e in set.update(&place(k), start + k as i64 * 200) {
            out.push((k, e));
        }
    }
    out
}

#[test]
fn intrusion_fires_once_per_object_and_a_group_is_one_alarm() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"z\"\nmin_frames = 3\ncooldown_s = 600\n"
    ));
    // Two people walk down into the zone together and stay; a third comes later.
    let events = run(&mut set, 100, NOON, |k| {
        let y = (0.3 + k as f32 * 0.01).min(0.8);
        let mut d = vec![at(PERSON, 0.2, y), at(PERSON, 0.3, y)];
        if k >= 60 {
            d.push(at(PERSON, 0.45, 0.9));
        }
        d
    });
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].1.hits.len(), 2, "the pair is one alarm");
    assert!(events[0].1.hits.iter().all(|h| h.track != 0));
    assert_eq!(events[1].1.hits.len(), 1, "the newcomer alone");
    assert!(events[1].0 >= 62, "after min_frames of the newcomer: {}", events[1].0);
}

#[test]
fn line_crossings_are_counted_both_ways_and_alarm_in_the_watched_direction() {
    let mut set = rules(
        "[[lines]]\nid = \"l\"\ncamera = \"cam\"\npoints = [[0.5, 0.2], [0.5, 1.0]]\n\
         [[rules]]\nid = \"r\"\nkind = \"line_crossing\"\nline = \"l\"\ndirection = \"a_to_b\"\ncooldown_s = 0\n",
    );
    // Person 1 walks right→left (A→B), person 2 left→right (B→A), person 3 dithers on the line.
    let events = run(&mut set, 60, NOON, |k| {
        let t = k as f32 / 59.0;
        vec![
            at(PERSON, 0.8 - 0.6 * t, 0.5),
            at(PERSON, 0.2 + 0.6 * t, 0.8),
            at(PERSON, 0.5 + if k % 2 == 0 { 0.004 } else { -0.004 }, 0.65),
        ]
    });
    let counts = set.rules[0].counts().unwrap();
    assert_eq!((counts.a_to_b, counts.b_to_a), (1, 1));
    assert_eq!(events.len(), 1, "only A→B alarms: {events:?}");
    assert!(events[0].1.detail.starts_with("crossed A→B"), "{}", events[0].1.detail);
}

#[test]
fn loitering_fires_for_who_stays_not_for_who_walks_through() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 10\n"
    ));
    // 30 s: one person stands at (0.3, 0.8); another crosses the zone in 8 s.
    let events = run(&mut set, 150, NOON, |k| {
        let walker = at(PERSON, (k as f32 * 0.015).min(0.99), 0.7);
        vec![at(PERSON, 0.3, 0.8), walker]
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, 51, "10 s at 5 frames/s after the track is confirmed");
    let b = events[0].1.hits[0].detection.bbox;
    assert!((b.bottom_centre().x - 0.3).abs() < 0.01, "the one who stayed");
}

#[test]
fn a_crowd_is_one_alarm_and_a_stopped_car_is_not_a_moving_one() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"crowd\"\nkind = \"crowding\"\nzone = \"z\"\nmin_count = 4\ndwell_s = 5\n\
         [[rules]]\nid = \"parked\"\nkind = \"vehicle_stopped\"\nzone = \"z\"\ndwell_s = 20\n"
    ));
    let events = run(&mut set, 200, NOON, |k| {
        let mut d: Vec<Detection> =
            (0..5).map(|i| at(PERSON, 0.05 + i as f32 * 0.1, 0.9)).collect();
        d.push(at(CAR, 0.5, 0.7));
        d.push(at(CAR, (0.01 + k as f32 * 0.004).min(0.99), 0.6));
        d
    });
    let fired: Vec<(&str, usize)> =
        events.iter().map(|(k, e)| (set.rules[e.rule].id.as_str(), *k)).collect();
    assert_eq!(fired, [("crowd", 26), ("parked", 101)], "{events:?}");
    assert_eq!(events[1].1.hits[0].detection.bbox.bottom_centre().x, 0.5);
}

#[test]
fn outside_its_schedule_a_rule_is_silent_and_forgets() {
    let rule = "[[rules]]\nid = \"r\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 10\n\
                schedule = { windows = [{ from = \"18:00\", to = \"22:00\" }] }\n";
    let mut set = rules(&format!("{ZONE}{rule}"));
    let stay = |_| vec![at(PERSON, 0.3, 0.8)];
    assert!(run(&mut set, 100, NOON, stay).is_empty(), "noon is outside 18:00-22:00");
    // From 17:59:55 the dwell starts only at 18:00, so it completes at 18:00:10.
    let before_six = NOON + 6 * 3_600_000 - 5_000;
    let events = run(&mut set, 100, before_six, stay);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, 75, "5 s to 18:00, then 10 s of dwell");
}

#[test]
fn detections_under_a_privacy_mask_never_reach_the_rules() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"z\"\nmin_frames = 1\n"
    ));
    let masked = at(PERSON, 0.9, 0.25);
    set.update(&[masked, at(PERSON, 0.3, 0.9)], NOON);
    assert_eq!(set.detections().len(), 1);
    assert!(!set.detections().contains(&masked));
}
