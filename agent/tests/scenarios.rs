//! Scenario tests on real footage: `vtest.avi` (PETS2009 S2.L1, a campus walkway seen from
//! above, 10 fps) through the agent's own replay (camera source, inference loop at the default
//! `detect_fps = 5`, tracker, rules, events), on the clip's own clock from 12:00 Beijing time.
//!
//! Where the PETS09 labels are present (`../shared/eval/`, or `$PETS_GT`), the expected line
//! crossings and the people who stay are computed from them; elsewhere the committed figures
//! below, computed the same way, stand in.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::detect::{Detector, DetectorOptions, ort_library};
use xueliang_agent::evidence::Outgoing;
use xueliang_agent::geometry::{BoxN, Line, Point, Polygon};
use xueliang_agent::source::Recording;
use xueliang_agent::tools::eval::GroundTruth;
use xueliang_agent::tools::replay::{ReplayOptions, ReplayReport};
use xueliang_proto::{Alarm, RuleKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn vtest() -> PathBuf {
    root().join(".cache/footage/vtest.avi")
}

/// The PETS09 labels of `vtest.avi`, when this machine has them.
fn ground_truth() -> Option<GroundTruth> {
    let path = std::env::var_os("PETS_GT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/eval/PETS09-S2L1/gt.txt"));
    path.is_file().then(|| GroundTruth::load(&path).expect("readable labels"))
}

const WIDTH: f32 = 768.0;
const HEIGHT: f32 = 576.0;

/// A counting line across the walkway, drawn downwards: side A is the right of the picture.
const LINE: [[f32; 2]; 2] = [[0.45, 0.3], [0.45, 1.0]];
/// Crossings of `LINE` by the labelled people (A→B, B→A), computed from `gt.txt` by
/// [`labelled_crossings`], for machines without the labels.
const LABELLED_CROSSINGS: (u64, u64) = (18, 13);

/// Where two people stand and talk for about 15 s at the start; a dozen others walk through.
const MEETING_POINT: [[f32; 2]; 4] = [[0.46, 0.38], [0.60, 0.38], [0.60, 0.52], [0.46, 0.52]];
/// The ids of the two in the labels.
const STAYERS: [u32; 2] = [9, 15];

/// The walkway (most of the picture).
const WALKWAY: [[f32; 2]; 4] = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]];

fn points(p: &[[f32; 2]]) -> String {
    format!("[{}]", p.iter().map(|[x, y]| format!("[{x}, {y}]")).collect::<Vec<_>>().join(", "))
}

/// An agent config watching `clip` as camera "walkway", with `extra` (masks, zones, lines,
/// rules) appended.
fn config(dir: &Path, clip: &Path, camera_extra: &str, extra: &str) -> AgentConfig {
    let model = root().join(".cache/models/nanodet_g416_coco.onnx");
    assert!(model.is_file(), "run `make setup` first: {} is missing", model.display());
    let text = format!(
        "agent_id = \"scenario\"\n[model]\npath = \"{}\"\nthreads = 1\n[[cameras]]\nid = \"walkway\"\nurl = \"file://{}\"\n{camera_extra}\n{extra}",
        model.display(),
        clip.display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, &text).unwrap();
    AgentConfig::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Replays `clip` from 2026-07-01 12:00 Beijing time.
fn replay(config: &AgentConfig, clip: &Path) -> ReplayReport {
    gst::init().unwrap();
    let options = DetectorOptions::cpu(ort_library(config.model.onnxruntime.as_deref()), 1, 1);
    let detector = Detector::open(&config.model.path, None, &options).expect("the model loads");
    let start_ms = "2026-07-01T12:00:00+08:00".parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let options = ReplayOptions { clip: clip.to_owned(), camera: "walkway".into(), start_ms };
    options.run(config, detector).expect("the clip replays").0
}

/// The alarms of rule `rule`, with their frame numbers.
fn alarms<'r>(report: &'r ReplayReport, rule: &str) -> Vec<(usize, &'r Alarm)> {
    report.alarms().filter(|(_, a)| a.rule_id == rule).collect()
}

/// The frames where events of rule `rule` ended (each event's end is an update with `ended`).
fn ends(report: &ReplayReport, rule: &str) -> Vec<usize> {
    let ids: Vec<&str> = alarms(report, rule).iter().map(|(_, a)| a.id.as_str()).collect();
    report
        .updates()
        .filter(|(_, u)| u.ended && ids.contains(&u.event_id.as_str()))
        .map(|(f, _)| f)
        .collect()
}

/// Crossings of `line` by the labelled people: their feet, frame to frame.
fn labelled_crossings(gt: &GroundTruth, line: &Line) -> (u64, u64) {
    let (mut a_to_b, mut b_to_a) = (0, 0);
    for boxes in gt.tracks().values() {
        let feet: Vec<Point> = boxes
            .iter()
            .map(|(_, b)| Point { x: (b.x1 + b.x2) / 2.0 / WIDTH, y: b.y2 / HEIGHT })
            .collect();
        for pair in feet.windows(2) {
            let (d0, d1) = (line.distance(pair[0]), line.distance(pair[1]));
            if (d0 < 0.0) != (d1 < 0.0) && line.crossed_by(pair[0], pair[1]) {
                if d0 < 0.0 { a_to_b += 1 } else { b_to_a += 1 }
            }
        }
    }
    (a_to_b, b_to_a)
}

/// The labelled person whose box best overlaps `b` (normalized) in `frame`.
fn labelled_person(gt: &GroundTruth, frame: usize, b: &BoxN) -> Option<u32> {
    let px = BoxN { x1: b.x1 * WIDTH, y1: b.y1 * HEIGHT, x2: b.x2 * WIDTH, y2: b.y2 * HEIGHT };
    gt.frame(frame as u32)
        .iter()
        .filter(|g| !g.ignore)
        .map(|g| (g.id, px.iou(&BoxN { x1: g.x1, y1: g.y1, x2: g.x2, y2: g.y2 })))
        .filter(|(_, iou)| *iou > 0.2)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(id, _)| id)
}

fn within(measured: u64, expected: u64, tolerance: f64) -> bool {
    (measured as f64 - expected as f64).abs() <= tolerance * expected as f64
}

#[test]
fn walkway_crossings_loitering_and_schedules_on_real_footage() {
    let dir = tempfile::tempdir().unwrap();
    let rules = format!(
        r#"
[[lines]]
id = "middle"
camera = "walkway"
points = {line}
[[zones]]
id = "meeting-point"
camera = "walkway"
points = {meeting}
[[zones]]
id = "walkway"
camera = "walkway"
points = {walkway}
[[rules]]
id = "crossings"
kind = "line_crossing"
line = "middle"
cooldown_s = 0
[[rules]]
id = "loitering"
kind = "loitering"
zone = "meeting-point"
dwell_s = 8
[[rules]]
id = "intrusion"
kind = "zone_intrusion"
zone = "walkway"
[[rules]]
id = "intrusion-at-dusk"
kind = "zone_intrusion"
zone = "walkway"
schedule = {{ windows = [{{ from = "18:00", to = "22:00" }}] }}
[[rules]]
id = "tamper"
kind = "camera_tamper"
camera = "walkway"
"#,
        line = points(&LINE),
        meeting = points(&MEETING_POINT),
        walkway = points(&WALKWAY),
    );
    let report = replay(&config(dir.path(), &vtest(), "", &rules), &vtest());
    assert_eq!(report.frames, 795);
    let gt = ground_truth();
    let events = |rule: &str| alarms(&report, rule);

    // Line crossing: both directions within ±15 % of the labels.
    let line = Line::new(&LINE).unwrap();
    let expected = match &gt {
        Some(gt) => {
            let counted = labelled_crossings(gt, &line);
            assert_eq!(counted, LABELLED_CROSSINGS, "the committed figures are the labels' own");
            counted
        }
        None => LABELLED_CROSSINGS,
    };
    let counts = report.counts.iter().find(|(id, _)| id == "crossings").expect("line counts").1;
    eprintln!(
        "crossings A→B {} (labels {}), B→A {} (labels {})",
        counts.a_to_b, expected.0, counts.b_to_a, expected.1
    );
    assert!(
        within(counts.a_to_b, expected.0, 0.15),
        "A→B {} against {} labelled",
        counts.a_to_b,
        expected.0
    );
    assert!(
        within(counts.b_to_a, expected.1, 0.15),
        "B→A {} against {} labelled",
        counts.b_to_a,
        expected.1
    );
    let alarmed: usize = events("crossings").iter().map(|(_, a)| a.detections.len()).sum();
    assert_eq!(
        alarmed as u64,
        counts.a_to_b + counts.b_to_a,
        "direction both: every crossing alarms"
    );
    assert!(events("crossings").iter().all(|(_, a)| {
        a.kind == RuleKind::LineCrossing as i32
            && !a.opens_event
            && a.detections.iter().all(|d| d.track_id != 0)
    }));

    // Loitering: the two who stay ~15 s (8 s dwell) are an event, ended once they have gone;
    // the dozen who walk through open none.
    let loitering = events("loitering");
    let frames = |alarms: &[(usize, &Alarm)]| alarms.iter().map(|(f, _)| *f).collect::<Vec<_>>();
    let ended = ends(&report, "loitering");
    assert!((1..=2).contains(&loitering.len()), "began {:?} ended {ended:?}", frames(&loitering));
    assert_eq!(ended.len(), loitering.len(), "began {:?} ended {ended:?}", frames(&loitering));
    for (frame, a) in &loitering {
        assert!(a.opens_event);
        let b = a.detections[0].r#box.expect("a box");
        let hit = BoxN { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 };
        assert!(Polygon::new(&MEETING_POINT).unwrap().contains(hit.bottom_centre()));
        if let Some(gt) = &gt {
            let who = labelled_person(gt, *frame, &hit);
            assert!(
                who.is_some_and(|id| STAYERS.contains(&id)),
                "loitering at frame {frame} by labelled person {who:?}, not one who stays"
            );
        }
    }

    // A walkway never empty for long is one intrusion event, updated while it lasts and ended
    // with the clip: not an alarm per person or per cooldown.
    let intrusion = events("intrusion");
    assert_eq!(
        intrusion.len(),
        1,
        "began {:?} ended {:?}",
        frames(&intrusion),
        ends(&report, "intrusion")
    );
    assert_eq!(ends(&report, "intrusion").len(), 1);
    let peak = report
        .updates()
        .filter(|(_, u)| u.event_id == intrusion[0].1.id)
        .map(|(_, u)| u.peak_count)
        .max()
        .unwrap_or(0);
    assert!(peak >= 4, "the walkway holds several people at once: peak {peak}");
    // Schedules: the same zone does not fire with a rule armed only at dusk.
    assert!(events("intrusion-at-dusk").is_empty());
    // Ordinary motion is not tampering.
    assert!(events("tamper").is_empty(), "{:?}", events("tamper"));
}

/// A polygon over the two who stand at the meeting point.
const MASK: [[f32; 2]; 4] = [[0.42, 0.15], [0.64, 0.15], [0.64, 0.55], [0.42, 0.55]];

#[test]
fn a_privacy_mask_hides_people_from_the_rules_and_every_picture() {
    let dir = tempfile::tempdir().unwrap();
    let mask = Polygon::new(&MASK).unwrap();
    if let Some(gt) = ground_truth() {
        // The labels put people under the mask for the first ~15 s: there is something to hide.
        let hidden = (1..150)
            .filter(|&f| {
                gt.frame(f).iter().any(|b| {
                    mask.contains(Point {
                        x: (b.x1 + b.x2) / 2.0 / WIDTH,
                        y: (b.y1 + b.y2) / 2.0 / HEIGHT,
                    })
                })
            })
            .count();
        assert!(hidden > 100, "{hidden}");
    }
    let rules = "[[zones]]\nid = \"all\"\ncamera = \"walkway\"\npoints = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n\
                 [[rules]]\nid = \"anyone\"\nkind = \"zone_intrusion\"\nzone = \"all\"\nmin_frames = 1\n";
    let camera = format!("privacy_masks = [{}]", points(&MASK));
    let report = replay(&config(dir.path(), &vtest(), &camera, rules), &vtest());

    let all: Vec<_> = report.detections.iter().flat_map(|(_, d)| d.iter()).collect();
    assert!(all.len() > 1000, "people are detected outside the mask: {}", all.len());
    assert!(all.iter().all(|d| !mask.contains(d.bbox.centre())), "a detection under the mask");

    // Every picture sent: the opening alarms' and the better views of the updates.
    let pictures: Vec<(usize, &[u8], &[xueliang_proto::Detection])> = report
        .alarms()
        .map(|(f, a)| (f, a.snapshot_jpeg.as_ref(), a.detections.as_slice()))
        .chain(
            report
                .updates()
                .filter(|(_, u)| !u.snapshot_jpeg.is_empty())
                .map(|(f, u)| (f, u.snapshot_jpeg.as_ref(), u.detections.as_slice())),
        )
        .collect();
    assert!(pictures.len() >= 3, "an alarm and better views: {}", pictures.len());
    for (frame, jpeg, detections) in pictures {
        let centre = |d: &xueliang_proto::Detection| {
            let b = d.r#box.expect("a box");
            Point { x: (b.x1 + b.x2) / 2.0, y: (b.y1 + b.y2) / 2.0 }
        };
        assert!(detections.iter().all(|d| !mask.contains(centre(d))));
        let img = image::load_from_memory(jpeg).expect("a JPEG").to_rgb8();
        let (w, h) = img.dimensions();
        let mut lit_outside = 0u64;
        for (x, y, px) in img.enumerate_pixels() {
            let p = Point { x: (x as f32 + 0.5) / w as f32, y: (y as f32 + 0.5) / h as f32 };
            if mask.contains(p) {
                assert_eq!(
                    px.0,
                    [0, 0, 0],
                    "pixel ({x}, {y}) under the mask in the picture of frame {frame}"
                );
            } else if px.0.iter().any(|&c| c > 40) {
                lit_outside += 1;
            }
        }
        assert!(lit_outside > (w * h / 2) as u64, "the rest of the scene is in the picture");
    }
}

/// A decoded frame's planes (Y, U, V), tightly packed, and its width and height.
type Planes = ([Vec<u8>; 3], usize, usize);

/// The first `frames` frames of `src`, decoded.
fn decode(src: &Path, frames: usize) -> Vec<Planes> {
    gst::init().unwrap();
    let mut clip = Recording::open(src).unwrap();
    (0..frames)
        .map(|_| {
            let frame = clip.next_frame().unwrap().expect("enough frames");
            let (w, h) = (frame.width(), frame.height());
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let (mut y, mut u, mut v) = (vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]);
            frame
                .with_yuv(|img| {
                    for r in 0..h {
                        y[r * w..(r + 1) * w]
                            .copy_from_slice(&img.y[r * img.y_stride..r * img.y_stride + w]);
                    }
                    for r in 0..ch {
                        u[r * cw..(r + 1) * cw]
                            .copy_from_slice(&img.u[r * img.uv_stride..r * img.uv_stride + cw]);
                        v[r * cw..(r + 1) * cw]
                            .copy_from_slice(&img.v[r * img.uv_stride..r * img.uv_stride + cw]);
                    }
                })
                .unwrap();
            ([y, u, v], w, h)
        })
        .collect()
}

/// Encodes `frames` to `dst` (H.264 in Matroska) at `fps`.
fn encode(dst: &Path, fps: i32, frames: impl Iterator<Item = Planes>) {
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! videoconvert ! x264enc speed-preset=ultrafast key-int-max=20 ! matroskamux ! filesink location=\"{}\"",
        dst.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let appsrc = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, ([y, u, v], w, h)) in frames.enumerate() {
        if i == 0 {
            let caps = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(fps, 1))
                .build();
            appsrc.set_caps(Some(&caps));
        }
        let mut buffer = gst::Buffer::from_mut_slice([y, u, v].concat());
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(i as u64 * 1000 / fps as u64));
        appsrc.push_buffer(buffer).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(300),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(
        matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))),
        "encoding: {msg:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Writes the first `frames` frames of `src` to `dst` (10 fps), with `edit` applied to each
/// frame's planes (Y, U, V; width, height) before encoding.
fn splice(
    src: &Path,
    dst: &Path,
    frames: usize,
    edit: impl Fn(usize, &mut [u8], &mut [u8], &mut [u8], usize, usize),
) {
    let decoded = decode(src, frames);
    encode(
        dst,
        10,
        decoded.into_iter().enumerate().map(|(i, ([mut y, mut u, mut v], w, h))| {
            edit(i, &mut y, &mut u, &mut v, w, h);
            ([y, u, v], w, h)
        }),
    );
}

/// `frame` with sensor-like noise on its luma (±`amplitude`, different every `seed`).
fn noisy(frame: &Planes, seed: u64, amplitude: i32) -> Planes {
    let ([y, u, v], w, h) = frame.clone();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let y = y
        .into_iter()
        .map(|p| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = ((state >> 33) % (2 * amplitude as u64 + 1)) as i32 - amplitude;
            (p as i32 + n).clamp(0, 255) as u8
        })
        .collect();
    ([y, u, v], w, h)
}

/// A box blur of radius `r` over the luma plane: a sprayed or defocused lens.
fn blur(y: &mut [u8], w: usize, h: usize, r: usize) {
    let mut tmp = vec![0u8; y.len()];
    for row in 0..h {
        for x in 0..w {
            let (a, b) = (x.saturating_sub(r), (x + r + 1).min(w));
            tmp[row * w + x] = (y[row * w + a..row * w + b].iter().map(|&p| p as u32).sum::<u32>()
                / (b - a) as u32) as u8;
        }
    }
    for x in 0..w {
        for row in 0..h {
            let (a, b) = (row.saturating_sub(r), (row + r + 1).min(h));
            y[row * w + x] =
                ((a..b).map(|k| tmp[k * w + x] as u32).sum::<u32>() / (b - a) as u32) as u8;
        }
    }
}

#[test]
fn covering_or_blurring_the_lens_is_one_tamper_event_each() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("tampered.mkv");
    // 60 s of the walkway: covered from 20 s to 27 s, blurred from 40 s to 47 s.
    splice(&vtest(), &clip, 600, |i, y, u, v, w, h| match i {
        200..270 => {
            y.fill(16);
            u.fill(128);
            v.fill(128);
        }
        400..470 => blur(y, w, h, 8),
        _ => {}
    });
    let rules = "[[rules]]\nid = \"tamper\"\nkind = \"camera_tamper\"\ncamera = \"walkway\"\ncooldown_s = 5\n";
    let report = replay(&config(dir.path(), &clip, "", rules), &clip);
    let seen: Vec<(usize, &str)> = report
        .messages
        .iter()
        .filter_map(|m| match &m.message {
            Outgoing::Alarm { detail, .. } => Some((m.frame, detail.as_str())),
            Outgoing::Update { .. } => None,
        })
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, "lens covered");
    assert!((230..=250).contains(&seen[0].0), "about 3 s into the covering: {seen:?}");
    assert_eq!(seen[1].1, "view blurred or sprayed");
    assert!((430..=450).contains(&seen[1].0), "about 3 s into the blur: {seen:?}");
    assert!(report.alarms().all(|(_, a)| a.kind == RuleKind::CameraTamper as i32
        && a.opens_event
        && !a.snapshot_jpeg.is_empty()));
    // Each ends once the view is back (within its end time, 10 s), before the next begins.
    let ends: Vec<usize> = report.updates().filter(|(_, u)| u.ended).map(|(f, _)| f).collect();
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!((270..400).contains(&ends[0]) && (470..=600).contains(&ends[1]), "{ends:?}");
}

#[test]
fn two_people_standing_ten_minutes_are_one_intrusion_and_one_loitering_event() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("frozen.mkv");
    // Two people talking at the meeting point (frame 130), frozen for 10 minutes with sensor
    // noise, then the same view with nobody there (frame 240) for 40 s; 2 frames a second.
    let decoded = decode(&vtest(), 241);
    let (talking, empty) = (&decoded[129], &decoded[239]);
    const STILL: usize = 10 * 60 * 2;
    const GONE: usize = 40 * 2;
    encode(
        &clip,
        2,
        (0..STILL + GONE).map(|i| noisy(if i < STILL { talking } else { empty }, i as u64, 6)),
    );
    let rules = format!(
        "[[zones]]\nid = \"meeting-point\"\ncamera = \"walkway\"\npoints = {}\n\
         [[rules]]\nid = \"intrusion\"\nkind = \"zone_intrusion\"\nzone = \"meeting-point\"\n\
         [[rules]]\nid = \"loitering\"\nkind = \"loitering\"\nzone = \"meeting-point\"\ndwell_s = 60\n",
        points(&MEETING_POINT)
    );
    let report = replay(&config(dir.path(), &clip, "detect_fps = 2", &rules), &clip);
    assert_eq!(report.frames, STILL + GONE);
    for (rule, opens_by) in [("intrusion", 10), ("loitering", 2 * 75)] {
        let began: Vec<usize> = alarms(&report, rule).iter().map(|(f, _)| *f).collect();
        let ended = ends(&report, rule);
        eprintln!("{rule}: began at frames {began:?}, ended at {ended:?}");
        assert_eq!(began.len(), 1, "{rule} opens once: {began:?}");
        assert!(began[0] <= opens_by, "{rule} opens at frame {}", began[0]);
        assert_eq!(ended.len(), 1, "{rule} ends once: {ended:?}");
        // After the people leave, within the end time (10 s) and a little.
        assert!(
            (STILL..=STILL + 2 * 15).contains(&ended[0]),
            "{rule} ends at frame {}, they left at {STILL}",
            ended[0]
        );
        let id = &alarms(&report, rule)[0].1.id;
        let updates: Vec<_> = report.updates().filter(|(_, u)| &u.event_id == id).collect();
        assert!(updates.iter().all(|(_, u)| !u.reminder), "no reminders unless asked for");
        let peak = updates.iter().map(|(_, u)| u.peak_count).max().unwrap_or(0);
        assert!((1..=3).contains(&peak), "{rule}: peak {peak} for two people");
    }
}
