//! Rule sets on synthetic detections: each real situation is one event, opened once at the right
//! time, going on while it lasts, and ended `end_after_s` after it stops. Every run lasts longer
//! than the rule's dwell + cooldown + end time, so a repeat would show.

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
         privacy_masks = [[[0.8, 0.0], [1.0, 0.0], [1.0, 0.3], [0.8, 0.3]]]\n\
         object_masks = [[[0.0, 0.0], [0.2, 0.0], [0.2, 0.3], [0.0, 0.3]]]\n{rest}"
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

/// What happened to which rule, at which frame.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Opened { rule: usize, objects: usize, lasting: bool },
    Ended { rule: usize, last_held_frame: i64 },
}

/// Feeds `frames` frames 200 ms apart from `start` (wall clock; the monotonic clock starts at
/// 0); `place(k)` gives frame k's detections. Returns the openings and ends with their frame
/// numbers, and the largest number of objects an open event was seen with, per rule.
fn run(
    set: &mut RuleSet,
    frames: usize,
    start: i64,
    place: impl Fn(usize) -> Vec<Detection>,
) -> (Vec<(usize, Seen)>, Vec<usize>) {
    let mut out = Vec::new();
    let mut peak = vec![0; set.rules.len()];
    for k in 0..frames {
        let t = FrameTime { mono_ms: k as i64 * 200, wall_ms: start + k as i64 * 200 };
        let detections = place(k);
        for c in set.update(&Observation { detections: &detections, t, size: (1000, 1000) }) {
            match c {
                Change::Opened { rule, hits, lasting, .. } => {
                    peak[rule] = peak[rule].max(hits.len());
                    out.push((k, Seen::Opened { rule, objects: hits.len(), lasting }));
                }
                Change::Ongoing { rule, hits } => peak[rule] = peak[rule].max(hits.len()),
                Change::Ended { rule, last_held } => {
                    out.push((k, Seen::Ended { rule, last_held_frame: last_held.mono_ms / 200 }))
                }
            }
        }
    }
    (out, peak)
}

#[test]
fn an_intrusion_is_one_event_for_a_group_and_ends_after_the_zone_empties() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"z\"\nmin_frames = 3\n"
    ));
    // Two people walk into the zone together; a third joins at frame 60; all leave at 200;
    // the run goes on 60 s more (dwell + cooldown 30 s + end 10 s).
    let (seen, peak) = run(&mut set, 500, NOON, |k| {
        if k >= 200 {
            return Vec::new();
        }
        let y = (0.3 + k as f32 * 0.01).min(0.8);
        let mut d = vec![at(PERSON, 0.25, y), at(PERSON, 0.35, y)];
        if k >= 60 {
            d.push(at(PERSON, 0.45, 0.9));
        }
        d
    });
    // Confirmed tracks (2 frames) in the zone (from y 0.5, frame 20) for 3 frames.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, Seen::Opened { rule: 0, objects: 2, lasting: true }, "{seen:?}");
    assert!((20..=24).contains(&seen[0].0), "{seen:?}");
    assert_eq!(peak[0], 3, "the newcomer joined the same event");
    assert_eq!(seen[1], (249, Seen::Ended { rule: 0, last_held_frame: 199 }), "10 s after");
}

#[test]
fn a_switched_track_id_inside_an_event_changes_nothing() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"in\"\nkind = \"zone_intrusion\"\nzone = \"z\"\n\
         [[rules]]\nid = \"stay\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 10\n"
    ));
    // One person stands 60 s; the detector misses them for 3 s in the middle (longer than the
    // tracker keeps a lost track: they come back under a new id).
    let (seen, _) = run(&mut set, 600, NOON, |k| match k {
        150..165 => Vec::new(),
        0..300 => vec![at(PERSON, 0.3, 0.8)],
        _ => Vec::new(),
    });
    let opened: Vec<_> = seen.iter().filter(|(_, s)| matches!(s, Seen::Opened { .. })).collect();
    let ended: Vec<_> = seen.iter().filter(|(_, s)| matches!(s, Seen::Ended { .. })).collect();
    assert_eq!(opened.len(), 2, "one event per rule: {seen:?}");
    assert_eq!(ended.len(), 2, "each ended once, after the person left: {seen:?}");
    assert!(ended.iter().all(|(k, _)| *k == 349), "{seen:?}");
}

#[test]
fn line_crossings_are_counted_both_ways_and_alarm_in_the_watched_direction() {
    let mut set = rules(
        "[[lines]]\nid = \"l\"\ncamera = \"cam\"\npoints = [[0.5, 0.2], [0.5, 1.0]]\n\
         [[rules]]\nid = \"r\"\nkind = \"line_crossing\"\nline = \"l\"\ndirection = \"a_to_b\"\ncooldown_s = 0\n",
    );
    // Person 1 walks right→left (A→B), person 2 left→right (B→A), person 3 dithers on the line.
    let (seen, _) = run(&mut set, 60, NOON, |k| {
        let t = k as f32 / 59.0;
        vec![
            at(PERSON, 0.8 - 0.6 * t, 0.5),
            at(PERSON, 0.2 + 0.6 * t, 0.8),
            at(PERSON, 0.5 + if k % 2 == 0 { 0.004 } else { -0.004 }, 0.65),
        ]
    });
    let counts = set.rules[0].counts().unwrap();
    assert_eq!((counts.a_to_b, counts.b_to_a), (1, 1));
    assert_eq!(seen.len(), 1, "only A→B alarms: {seen:?}");
    assert_eq!(seen[0].1, Seen::Opened { rule: 0, objects: 1, lasting: false }, "instant");
}

#[test]
fn loitering_opens_for_who_stays_not_for_who_walks_through() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 10\n"
    ));
    // One person stands at (0.3, 0.8) for 40 s; others cross the zone in 8 s, one after another,
    // for 90 s: they never keep the event open once the stayer has gone.
    let (seen, _) = run(&mut set, 450, NOON, |k| {
        let walker = at(PERSON, ((k % 50) as f32 * 0.02).min(0.99), 0.7);
        if k < 200 { vec![at(PERSON, 0.3, 0.8), walker] } else { vec![walker] }
    });
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, 51, "10 s at 5 frames/s after the track is confirmed");
    assert_eq!(seen[0].1, Seen::Opened { rule: 0, objects: 1, lasting: true });
    assert!(matches!(seen[1].1, Seen::Ended { .. }), "the walkers do not hold it: {seen:?}");
}

#[test]
fn a_crowd_is_one_event_and_a_stopped_car_is_not_a_moving_one() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"crowd\"\nkind = \"crowding\"\nzone = \"z\"\nmin_count = 4\ndwell_s = 5\n\
         [[rules]]\nid = \"parked\"\nkind = \"vehicle_stopped\"\nzone = \"z\"\ndwell_s = 20\n"
    ));
    let (seen, _) = run(&mut set, 400, NOON, |k| {
        let mut d: Vec<Detection> =
            (0..5).map(|i| at(PERSON, 0.05 + i as f32 * 0.1, 0.9)).collect();
        d.push(at(CAR, 0.5, 0.7));
        d.push(at(CAR, (0.01 + k as f32 * 0.004).min(0.99), 0.6));
        d
    });
    let opened: Vec<(&str, usize)> = seen
        .iter()
        .filter_map(|(k, s)| match s {
            Seen::Opened { rule, .. } => Some((set.rules[*rule].id.as_str(), *k)),
            Seen::Ended { .. } => None,
        })
        .collect();
    assert_eq!(opened, [("crowd", 26), ("parked", 101)], "{seen:?}");
    assert_eq!(seen.len(), 2, "both go on to the end of the run: {seen:?}");
}

#[test]
fn outside_its_schedule_a_rule_is_silent_forgets_and_ends_its_event() {
    let rule = "[[rules]]\nid = \"r\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 10\n\
                schedule = { windows = [{ from = \"18:00\", to = \"22:00\" }] }\n";
    let mut set = rules(&format!("{ZONE}{rule}"));
    let stay = |_| vec![at(PERSON, 0.3, 0.8)];
    assert!(run(&mut set, 300, NOON, stay).0.is_empty(), "noon is outside 18:00-22:00");
    // From 17:59:55 the dwell starts only at 18:00, so it completes at 18:00:10.
    let before_six = NOON + 6 * 3_600_000 - 5_000;
    let (seen, _) = run(&mut set, 100, before_six, stay);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, 75, "5 s to 18:00, then 10 s of dwell");
    // At 22:00 the rule is off: its open event ends then, though the person is still there.
    let before_ten = NOON + 10 * 3_600_000 - 5_000;
    let (seen, _) = run(&mut set, 100, before_ten, stay);
    assert!(matches!(seen.as_slice(), [(25, Seen::Ended { .. })]), "{seen:?}");
}

#[test]
fn masked_detections_never_reach_the_rules() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"z\"\nmin_frames = 1\n"
    ));
    let under_privacy = at(PERSON, 0.9, 0.25);
    let under_object_mask = at(PERSON, 0.1, 0.2);
    let t = FrameTime { mono_ms: 0, wall_ms: NOON };
    let d = [under_privacy, under_object_mask, at(PERSON, 0.3, 0.9)];
    set.update(&Observation { detections: &d, t, size: (1000, 1000) });
    assert_eq!(set.detections(), &[at(PERSON, 0.3, 0.9)]);
}

#[test]
fn an_object_counts_on_the_median_of_its_scores_not_one_lucky_frame() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"z\"\nmin_frames = 3\n\
         min_score = 0.4\nthreshold = 0.7\n"
    ));
    // A shape the detector scores 0.55 most frames and 0.95 now and then: never an object.
    let flicker = |k: usize| {
        let mut d = at(PERSON, 0.3, 0.8);
        d.score = if k.is_multiple_of(4) { 0.95 } else { 0.55 };
        vec![d]
    };
    assert!(run(&mut set, 300, NOON, flicker).0.is_empty());
    // A person scored 0.8: an event.
    let (seen, _) = run(&mut set, 10, NOON, |_| vec![at(PERSON, 0.3, 0.8)]);
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[test]
fn one_person_standing_ten_minutes_is_one_event_per_rule() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"in\"\nkind = \"zone_intrusion\"\nzone = \"z\"\n\
         [[rules]]\nid = \"stay\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 60\n"
    ));
    // 10 minutes at 5 frames/s, then 2 minutes of an empty zone.
    let (seen, _) =
        run(&mut set, 3600, NOON, |k| if k < 3000 { vec![at(PERSON, 0.3, 0.8)] } else { vec![] });
    let names: Vec<(&str, bool)> = seen
        .iter()
        .map(|(_, s)| match s {
            Seen::Opened { rule, .. } => (set.rules[*rule].id.as_str(), true),
            Seen::Ended { rule, .. } => (set.rules[*rule].id.as_str(), false),
        })
        .collect();
    assert_eq!(names, [("in", true), ("stay", true), ("in", false), ("stay", false)]);
}

#[test]
fn a_pictures_objects_are_those_the_rule_would_consider_inside_its_zone() {
    let mut set = rules(&format!(
        "{ZONE}[[rules]]\nid = \"r\"\nkind = \"loitering\"\nzone = \"z\"\ndwell_s = 2\n\
         classes = [\"person\"]\n"
    ));
    // A loiterer and a newcomer in the zone, a person outside it and a car inside.
    let (out, _) = run(&mut set, 30, NOON, |k| {
        let mut d = vec![at(PERSON, 0.1, 0.9), at(PERSON, 0.9, 0.9), at(CAR, 0.4, 0.9)];
        if k >= 20 {
            d.push(at(PERSON, 0.3, 0.7));
        }
        d
    });
    assert!(matches!(out.first(), Some((_, Seen::Opened { objects: 1, .. }))), "{out:?}");
    let in_view = set.in_view(0, (1000, 1000));
    assert_eq!(in_view.len(), 2, "the loiterer and the newcomer: {in_view:?}");
    assert!(in_view.iter().all(|h| h.detection.class == PERSON && h.track != 0));
}
