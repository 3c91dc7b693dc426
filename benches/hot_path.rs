//! Criterion benchmarks of the agent's per-frame CPU work outside ONNX Runtime: preprocessing
//! (I420 frame → normalized model input), NanoDet head decode, class-wise NMS, the motion gate,
//! the tracker and rules, and the tamper check. Run: `make bench` (or `cargo bench --bench
//! hot_path`).

// criterion_group! makes a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use xueliang_agent::config::AgentConfig;
use xueliang_agent::detect::heads::Head;
use xueliang_agent::detect::{Detection, nms_classwise};
use xueliang_agent::detect::{HeadKind, ModelCard};
use xueliang_agent::detect::{MotionGate, MotionSettings};
use xueliang_agent::detect::{Preprocessor, WHOLE};
use xueliang_agent::geometry::BoxN;
use xueliang_agent::rules::camera_tamper::{TamperDetector, TamperSettings};
use xueliang_agent::rules::{FrameTime, Observation, RuleSet};
use xueliang_agent::source::{Yuv, YuvToRgb};

/// A 768×576 frame (vtest.avi's size) with texture, so no branch is predictable by accident.
fn frame() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (w, h) = (768, 576);
    let y = (0..w * h).map(|i| ((i * 7 + i / w * 13) % 220 + 16) as u8).collect();
    let c = (0..(w / 2) * (h / 2)).map(|i| (i % 64 + 96) as u8).collect();
    (y, c, (0..(w / 2) * (h / 2)).map(|i| (i % 48 + 104) as u8).collect())
}

fn card() -> ModelCard {
    ModelCard::parse(include_str!("../models/nanodet_g416_coco.card.toml")).expect("shipped card")
}

fn preprocess(c: &mut Criterion) {
    let planes = frame();
    let img = Yuv::new(&planes.0, &planes.1, &planes.2, 768, 384, 768, 576, YuvToRgb::BT601)
        .expect("planes");
    let card = card();
    let mut pre = Preprocessor::new(416, 416, card.normalization, card.resize);
    let mut out = vec![0.0f32; pre.len()];
    c.bench_function("preprocess 768x576 I420 → 416x416 BGR f32", |b| {
        b.iter(|| pre.run(black_box(&img), WHOLE, &mut out))
    });
}

fn head_decode(c: &mut Criterion) {
    let shapes: Vec<Vec<i64>> =
        [2704, 676, 169].iter().flat_map(|&n| [vec![1, n, 80], vec![1, n, 44]]).collect();
    let head = Head::new(HeadKind::Nanodet, &shapes, 416, 416, 80).expect("nanodet head");
    // Scores as a real frame has them: nearly all tiny, a few dozen over the threshold.
    let mut rng = fastrand::Rng::with_seed(7);
    let outputs: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| {
            let n = (s[1] * s[2]) as usize;
            if s[2] == 80 {
                (0..n).map(|_| if rng.u32(0..2000) == 0 { 0.6 } else { rng.f32() * 0.05 }).collect()
            } else {
                (0..n).map(|_| rng.f32() * 4.0).collect()
            }
        })
        .collect();
    let slices: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
    let mut dets = Vec::with_capacity(512);
    c.bench_function("nanodet head decode 416 (3549 anchors × 80 classes)", |b| {
        b.iter(|| {
            dets.clear();
            head.decode(black_box(&slices), 0.3, &mut dets);
        })
    });
}

fn nms(c: &mut Criterion) {
    let mut rng = fastrand::Rng::with_seed(3);
    let candidates: Vec<Detection> = (0..300)
        .map(|_| {
            let (x, y) = (rng.f32() * 0.9, rng.f32() * 0.9);
            Detection {
                class: rng.u16(0..3),
                score: rng.f32(),
                bbox: BoxN { x1: x, y1: y, x2: x + 0.05 + rng.f32() * 0.05, y2: y + 0.1 },
            }
        })
        .collect();
    let mut dets = Vec::with_capacity(300);
    c.bench_function("class-wise NMS, 300 candidates", |b| {
        b.iter(|| {
            dets.clear();
            dets.extend_from_slice(&candidates);
            nms_classwise(black_box(&mut dets), 0.6);
        })
    });
}

fn motion_gate(c: &mut Criterion) {
    let planes = frame();
    let img = Yuv::new(&planes.0, &planes.1, &planes.2, 768, 384, 768, 576, YuvToRgb::BT601)
        .expect("planes");
    let mut gate = MotionGate::new(MotionSettings {
        cell_delta: 10,
        min_changed: 0.001,
        refresh: Duration::from_secs(3600),
        masks: Vec::new(),
    });
    c.bench_function("motion gate check 768x576", |b| b.iter(|| gate.check(black_box(&img), 0)));
}

/// One camera's privacy mask, tracker and six rules of every tracked kind, fed 20 people
/// walking: the per-frame cost of turning detections into events.
fn rules(c: &mut Criterion) {
    let text = r#"agent_id = "bench"
[model]
path = "m.onnx"
[[cameras]]
id = "cam"
url = "rtsp://x/"
privacy_masks = [[[0.8, 0.0], [1.0, 0.0], [1.0, 0.2], [0.8, 0.2]]]
[[zones]]
id = "z"
camera = "cam"
points = [[0.05, 0.3], [0.95, 0.3], [0.95, 0.98], [0.05, 0.98]]
[[lines]]
id = "l"
camera = "cam"
points = [[0.5, 0.2], [0.5, 1.0]]
[[rules]]
id = "intrusion"
kind = "zone_intrusion"
zone = "z"
[[rules]]
id = "loitering"
kind = "loitering"
zone = "z"
[[rules]]
id = "crowd"
kind = "crowding"
zone = "z"
[[rules]]
id = "parked"
kind = "vehicle_stopped"
zone = "z"
[[rules]]
id = "line"
kind = "line_crossing"
line = "l"
[[rules]]
id = "dusk"
kind = "zone_intrusion"
zone = "z"
schedule = { windows = [{ from = "18:00", to = "22:00" }], dates = [{ from = "06-01", to = "09-15" }] }
"#;
    let config =
        AgentConfig::parse(text, std::path::Path::new("/tmp/bench.toml")).expect("bench config");
    let mut set = RuleSet::new(&config, 0, &card()).expect("rules");
    let walkers = |k: i64| -> Vec<Detection> {
        (0..20)
            .map(|i| {
                let x = ((i as f32 * 0.05 + k as f32 * 0.004) % 0.9) + 0.05;
                let y = 0.35 + i as f32 * 0.03;
                Detection {
                    class: 0,
                    score: 0.8,
                    bbox: BoxN { x1: x - 0.02, y1: y - 0.12, x2: x + 0.02, y2: y },
                }
            })
            .collect()
    };
    let frames: Vec<Vec<Detection>> = (0..100).map(walkers).collect();
    let mut k = 0usize;
    let mut t = 1_782_878_400_000i64;
    c.bench_function("tracker + 6 rules, 20 people (per frame)", |b| {
        b.iter(|| {
            k = (k + 1) % frames.len();
            t += 200;
            let seen = Observation {
                detections: black_box(&frames[k]),
                t: FrameTime { mono_ms: t, wall_ms: t },
                size: (768, 576),
            };
            black_box(set.update(&seen))
        })
    });
}

fn tamper(c: &mut Criterion) {
    let planes = frame();
    let img = Yuv::new(&planes.0, &planes.1, &planes.2, 768, 384, 768, 576, YuvToRgb::BT601)
        .expect("planes");
    let mut detector = TamperDetector::new(TamperSettings::default());
    let mut t = 0i64;
    c.bench_function("tamper check 768x576", |b| {
        b.iter(|| {
            t += 200;
            black_box(detector.check(black_box(&img), t))
        })
    });
}

criterion_group!(benches, preprocess, head_decode, nms, motion_gate, rules, tamper);
criterion_main!(benches);
