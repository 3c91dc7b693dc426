//! Scenario tests on real footage: `vtest.avi` (PETS2009 S2.L1, a campus walkway seen from
//! above, 10 fps) through the real detector, tracker, rules and evidence, every other frame (as
//! `detect_fps = 5` would), on the clip's own clock starting at 12:00 Beijing time.
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
use xueliang_agent::geometry::{BoxN, Line, Point, Polygon};
use xueliang_agent::source::Recording;
use xueliang_agent::tools::eval::GroundTruth;
use xueliang_agent::tools::replay::{ReplayOptions, ReplayReport};
use xueliang_proto::RuleKind;

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

/// Replays `clip` from 2026-07-01 12:00 Beijing time, every other frame.
fn replay(config: &AgentConfig, clip: &Path, snapshots: bool) -> ReplayReport {
    gst::init().unwrap();
    let options = DetectorOptions {
        library: ort_library(config.model.onnxruntime.as_deref()),
        threads: 1,
        max_batch: 1,
    };
    let mut detector = Detector::open(&config.model.path, None, &options).expect("the model loads");
    let start_ms = "2026-07-01T12:00:00+08:00".parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let options = ReplayOptions {
        clip: clip.to_owned(),
        camera: "walkway".into(),
        start_ms,
        every: 2,
        snapshots,
    };
    options.run(config, &mut detector).expect("the clip replays")
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
    let report = replay(&config(dir.path(), &vtest(), "", &rules), &vtest(), false);
    assert_eq!(report.frames, 795);
    let gt = ground_truth();
    let events =
        |rule: &str| report.events.iter().filter(|e| e.rule_id == rule).collect::<Vec<_>>();

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
    let alarmed: usize = events("crossings").iter().map(|e| e.hits.len()).sum();
    assert_eq!(
        alarmed as u64,
        counts.a_to_b + counts.b_to_a,
        "direction both: every crossing alarms"
    );
    assert!(
        events("crossings")
            .iter()
            .all(|e| e.kind == RuleKind::LineCrossing && e.hits.iter().all(|h| h.track != 0))
    );

    // Loitering: the two who stay ~15 s fire (8 s dwell); the dozen who walk through do not.
    let loitering = events("loitering");
    assert!((1..=2).contains(&loitering.len()), "{loitering:?}");
    for e in &loitering {
        let hit = &e.hits[0].detection.bbox;
        assert!(Polygon::new(&MEETING_POINT).unwrap().contains(hit.bottom_centre()));
        if let Some(gt) = &gt {
            let who = labelled_person(gt, e.frame, hit);
            assert!(
                who.is_some_and(|id| STAYERS.contains(&id)),
                "loitering at frame {} by labelled person {who:?}, not one who stays",
                e.frame
            );
        }
    }

    // Schedules: the same zone fires at noon, and not with a rule armed only at dusk.
    assert!(events("intrusion").len() >= 10, "{}", events("intrusion").len());
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
    let report = replay(&config(dir.path(), &vtest(), &camera, rules), &vtest(), true);

    let all: Vec<_> = report.detections.iter().flat_map(|(_, d)| d.iter()).collect();
    assert!(all.len() > 1000, "people are detected outside the mask: {}", all.len());
    assert!(all.iter().all(|d| !mask.contains(d.bbox.centre())), "a detection under the mask");

    assert!(report.events.len() >= 10, "{}", report.events.len());
    for e in &report.events {
        assert!(e.hits.iter().all(|h| !mask.contains(h.detection.bbox.centre())));
        let img = image::load_from_memory(&e.jpeg).expect("a JPEG").to_rgb8();
        let (w, h) = img.dimensions();
        let mut lit_outside = 0u64;
        for (x, y, px) in img.enumerate_pixels() {
            let p = Point { x: (x as f32 + 0.5) / w as f32, y: (y as f32 + 0.5) / h as f32 };
            if mask.contains(p) {
                assert_eq!(
                    px.0,
                    [0, 0, 0],
                    "pixel ({x}, {y}) under the mask in the picture of frame {}",
                    e.frame
                );
            } else if px.0.iter().any(|&c| c > 40) {
                lit_outside += 1;
            }
        }
        assert!(lit_outside > (w * h / 2) as u64, "the rest of the scene is in the picture");
    }
}

/// Writes the first `frames` frames of `src` to `dst` (H.264 in Matroska, 10 fps), with `edit`
/// applied to each frame's planes (Y, U, V; width, height) before encoding.
fn splice(
    src: &Path,
    dst: &Path,
    frames: usize,
    edit: impl Fn(usize, &mut [u8], &mut [u8], &mut [u8], usize, usize),
) {
    gst::init().unwrap();
    let mut clip = Recording::open(src).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time ! videoconvert ! x264enc speed-preset=ultrafast key-int-max=20 ! matroskamux ! filesink location=\"{}\"",
        dst.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let appsrc = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for i in 0..frames {
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
        edit(i, &mut y, &mut u, &mut v, w, h);
        if i == 0 {
            let caps = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(10, 1))
                .build();
            appsrc.set_caps(Some(&caps));
        }
        let mut buffer = gst::Buffer::from_mut_slice([y, u, v].concat());
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::from_mseconds(i as u64 * 100));
        appsrc.push_buffer(buffer).unwrap();
    }
    appsrc.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(
        matches!(msg.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))),
        "encoding: {msg:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
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
fn covering_or_blurring_the_lens_raises_one_tamper_alarm_each() {
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
    let report = replay(&config(dir.path(), &clip, "", rules), &clip, true);
    let seen: Vec<(usize, &str)> =
        report.events.iter().map(|e| (e.frame, e.detail.as_str())).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, "lens covered");
    assert!((230..=250).contains(&seen[0].0), "about 3 s into the covering: {seen:?}");
    assert_eq!(seen[1].1, "view blurred or sprayed");
    assert!((430..=450).contains(&seen[1].0), "about 3 s into the blur: {seen:?}");
    assert!(report.events.iter().all(|e| e.kind == RuleKind::CameraTamper && !e.jpeg.is_empty()));
}
