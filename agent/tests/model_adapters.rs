//! The model adapters against tiny generated ONNX models run by the real ONNX Runtime: the YOLO
//! layout decoded through a letterbox in a batch of two, and bad models refused at load time
//! with an error that names the fault.

mod support;

use std::path::{Path, PathBuf};

use support::onnx::mean_model;
use xueliang_agent::config::Provider;
use xueliang_agent::detect::Detection;
use xueliang_agent::detect::ModelCard;
use xueliang_agent::detect::{Detector, DetectorOptions, WHOLE, ort_library};
use xueliang_agent::source::{Yuv, YuvToRgb};

const YOLO_CARD: &str = r#"name = "tiny-yolo"
version = "1"
head = "yolo"
classes = ["person", "car"]
[input]
size = [64, 64]
resize = "letterbox"
channels = "rgb"
std = [255, 255, 255]
"#;

fn options() -> DetectorOptions {
    DetectorOptions::cpu(ort_library(None), 1, 2)
}

fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A v8-layout model, 2 classes, 3 candidates: candidate 0 is a "car" at 0.9 centred at
/// (32, 32) 16×16; candidate 1 is a "person" at (10, 40) 8×8 scoring the image's mean value.
fn tiny_yolo(batch: Option<i64>) -> Vec<u8> {
    let (planes, k) = (6, 3);
    let mut bias = vec![0.0f32; planes * k];
    let mut weights = vec![0.0f32; planes * k];
    let mut set = |p: usize, c: usize, v: f32| bias[p * k + c] = v;
    for (p, v) in [32.0, 32.0, 16.0, 16.0, 0.0, 0.9].into_iter().enumerate() {
        set(p, 0, v);
    }
    for (p, v) in [10.0, 40.0, 8.0, 8.0].into_iter().enumerate() {
        set(p, 1, v);
    }
    weights[4 * k + 1] = 1.0;
    mean_model([batch, Some(3), Some(64), Some(64)], &[planes as i64, k as i64], bias, weights)
}

/// A 128×64 frame of one grey level.
fn frame(luma: u8) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (vec![luma; 128 * 64], vec![128; 64 * 32], vec![128; 64 * 32])
}

fn yuv(p: &(Vec<u8>, Vec<u8>, Vec<u8>)) -> Yuv<'_> {
    Yuv::new(&p.0, &p.1, &p.2, 128, 64, 128, 64, YuvToRgb::BT601).unwrap()
}

fn close(d: &Detection, b: [f32; 4]) -> bool {
    let got = [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2];
    got.iter().zip(b).all(|(g, e)| (g - e).abs() < 1e-3)
}

#[test]
fn yolo_layout_decodes_through_the_letterbox_for_each_image_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), &tiny_yolo(None));
    let card = ModelCard::parse(YOLO_CARD).unwrap();
    let mut det = Detector::load(&model, card, &options()).unwrap();
    assert_eq!(det.max_batch(), 2, "dynamic batch dimension");

    let (white, black) = (frame(235), frame(16));
    det.prepare(2, 0, &yuv(&white), WHOLE);
    det.prepare(2, 1, &yuv(&black), WHOLE);
    let mut outs = vec![Vec::new(), Vec::new()];
    det.infer(2, &mut outs).unwrap();

    // The 2:1 frame fills the 64×64 input's middle 64×32 band (rows 16..48).
    let car = [0.375, 0.25, 0.625, 0.75];
    let person = [6.0 / 64.0, 20.0 / 32.0, 14.0 / 64.0, 28.0 / 32.0];
    let white_dets = &outs[0];
    assert_eq!(white_dets.len(), 2, "{white_dets:?}");
    let c = white_dets.iter().find(|d| d.class == 1).unwrap();
    assert!((c.score - 0.9).abs() < 1e-5 && close(c, car), "{c:?}");
    let p = white_dets.iter().find(|d| d.class == 0).unwrap();
    // Mean input value: half white content, half grey (114) border.
    assert!((p.score - (0.5 + 0.5 * 114.0 / 255.0)).abs() < 0.02, "{p:?}");
    assert!(close(p, person), "{p:?}");
    // The black image's mean is too low for the person candidate: only the car remains.
    assert_eq!(outs[1].len(), 1, "{:?}", outs[1]);
    assert_eq!(outs[1][0].class, 1);

    // A single image goes through the batch-of-one binding.
    let mut one = Vec::new();
    det.detect(&yuv(&white), &mut one).unwrap();
    assert_eq!(one.len(), 2);
}

fn load_error(model: &[u8], card: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), model);
    let card = ModelCard::parse(card).unwrap();
    Detector::load(&path, card, &options()).unwrap_err().to_string()
}

#[test]
fn outputs_that_fit_no_adapter_are_refused_at_load() {
    let odd =
        mean_model([Some(1), Some(3), Some(64), Some(64)], &[6, 7], vec![0.0; 42], vec![0.0; 42]);
    let err = load_error(&odd, &YOLO_CARD.replace("[\"person\", \"car\"]", "\"coco\""));
    assert!(err.contains("not a YOLO head") && err.contains("fits neither"), "{err}");
    let nanodet = YOLO_CARD.replace("\"yolo\"", "\"nanodet\"");
    let err = load_error(&tiny_yolo(Some(1)), &nanodet);
    assert!(err.contains("not a NanoDet head"), "{err}");
}

#[test]
fn a_model_of_the_wrong_input_size_or_kind_is_refused_at_load() {
    let shipped = include_str!("../../models/nanodet_g416_coco.card.toml");
    let err = load_error(&tiny_yolo(Some(1)), shipped);
    assert!(err.contains("input is 64x64 but its model card says 416x416"), "{err}");
    let grey =
        mean_model([Some(1), Some(1), Some(64), Some(64)], &[6, 3], vec![0.0; 18], vec![0.0; 18]);
    let err = load_error(&grey, YOLO_CARD);
    assert!(err.contains("expected [1, 3, H, W]"), "{err}");
}

#[test]
fn a_provider_the_library_lacks_is_named_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let model = write(dir.path(), &tiny_yolo(None));
    let card = ModelCard::parse(YOLO_CARD).unwrap();
    // The set-up's ONNX Runtime is the CPU build: it has no OpenVINO.
    let options = DetectorOptions { provider: Provider::Openvino, ..options() };
    let err = Detector::load(&model, card, &options).unwrap_err().to_string();
    assert!(err.contains("model.provider = \"openvino\" cannot run"), "{err}");
    assert!(err.contains("set model.onnxruntime"), "{err}");
}
