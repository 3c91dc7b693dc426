//! NanoDet through the whole detector (I420 frame → preprocess → ONNX Runtime → head → NMS) on
//! a real frame with people: the first frame of `vtest.avi` (PETS2009 S2.L1).

use std::path::Path;

use xueliang_agent::detect::{Detector, DetectorOptions, ort_library};
use xueliang_agent::source::Recording;

/// The three walkers of frame 1 as the PETS09 labels place them (x, y, w, h in pixels).
const PEOPLE: [[f32; 4]; 3] =
    [[499.0, 158.0, 31.0, 75.0], [258.0, 219.0, 33.0, 89.0], [633.0, 242.0, 42.0, 81.0]];

#[test]
fn nanodet_finds_the_people_of_a_real_frame_where_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join(".cache/models/nanodet_g416_coco.onnx");
    assert!(model.is_file(), "run `make setup` first: {} is missing", model.display());
    let options = DetectorOptions::cpu(ort_library(None), 1, 1);
    let mut detector = Detector::open(&model, None, &options).unwrap();

    let mut clip = Recording::open(&root.join(".cache/footage/vtest.avi")).unwrap();
    let frame = clip.next_frame().unwrap().expect("a first frame");
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let mut dets = Vec::new();
    frame.with_yuv(|yuv| detector.detect(yuv, &mut dets)).unwrap().unwrap();

    let people: Vec<_> = dets.iter().filter(|d| d.class == 0 && d.score >= 0.5).collect();
    for [x, y, bw, bh] in PEOPLE {
        let found = people.iter().any(|d| {
            let b = d.bbox;
            let (ix1, iy1) = ((b.x1 * w).max(x), (b.y1 * h).max(y));
            let (ix2, iy2) = ((b.x2 * w).min(x + bw), (b.y2 * h).min(y + bh));
            let inter = (ix2 - ix1).max(0.0) * (iy2 - iy1).max(0.0);
            let union = b.area() * w * h + bw * bh - inter;
            inter / union >= 0.5
        });
        assert!(found, "no person box over the walker at ({x}, {y}): {people:?}");
    }
    assert!(people.len() <= 6, "a few people, not clutter: {people:?}");
}
