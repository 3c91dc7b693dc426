//! `xl-agent eval` and `xl-agent bench` on the real model and the real clip, through the binary
//! as a user runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_xl-agent");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> PathBuf {
    let m = repo().join(".cache/models/nanodet_g416_coco.onnx");
    assert!(m.is_file(), "run `make setup` first: {} is missing", m.display());
    m
}

fn clip() -> PathBuf {
    repo().join(".cache/footage/vtest.avi")
}

/// Runs the binary and parses its JSON report.
fn run_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// `xl-agent eval` of the set-up's model on `vtest.avi` against `gt`, with `extra` arguments.
fn eval(gt: &Path, extra: &[&str]) -> serde_json::Value {
    let (m, c) = (model(), clip());
    let mut args = vec!["eval", "--model", m.to_str().unwrap(), "--clip", c.to_str().unwrap()];
    args.extend(["--gt", gt.to_str().unwrap(), "--json"]);
    args.extend(extra);
    run_json(&args)
}

/// The PETS09-S2L1 labels (licence CC BY-NC-SA: used to measure, never copied into the repo).
fn labels() -> Option<PathBuf> {
    let path = std::env::var_os("XL_EVAL_GT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/eval/PETS09-S2L1/gt.txt"));
    path.is_file().then_some(path)
}

#[test]
fn eval_reproduces_the_reference_accuracy_on_pets09() {
    let Some(gt) = labels() else {
        eprintln!("SKIPPED: no PETS09-S2L1 gt.txt (set XL_EVAL_GT)");
        return;
    };
    let r = eval(&gt, &["--class", "person"]);
    assert_eq!(r["frames"], 159, "{r}");
    assert_eq!(r["labels"], 895, "{r}");
    let ap = r["ap50"].as_f64().unwrap();
    assert!(ap >= 0.90, "AP50 {ap} below the reference 0.911: {r}");
    assert!(r["recall"].as_f64().unwrap() >= 0.85, "{r}");
    assert!(r["precision"].as_f64().unwrap() >= 0.90, "{r}");
}

#[test]
fn far_away_people_are_found_only_where_their_zone_is_inferred() {
    let Some(gt) = labels() else {
        eprintln!("SKIPPED: no PETS09-S2L1 gt.txt (set XL_EVAL_GT)");
        return;
    };
    let r = eval(&gt, &["--distant", "2560x1440", "--distant-scale", "0.4", "--every", "25"]);
    // The walkers are 20-45 px tall in the 4 MP picture.
    let median = r["person_px"][1].as_f64().unwrap();
    assert!((25.0..40.0).contains(&median), "{r}");
    let (stretched, zone) =
        (r["stretch"]["ap50"].as_f64().unwrap(), r["zones"]["ap50"].as_f64().unwrap());
    assert!(stretched < 0.1, "stretched to 416×416 they are a few pixels tall: {r}");
    assert!(zone >= 0.85, "inferred at their zone's resolution they are found: {r}");
    assert_eq!(r["tiles"], 1, "{r}");
}

#[test]
fn eval_refuses_labels_that_do_not_fit_the_clip() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt.txt");
    std::fs::write(&gt, "5000,1,10,10,20,40,1,-1,-1,-1\n").unwrap();
    let (m, c) = (model(), clip());
    let out = Command::new(BIN)
        .args(["eval", "--model", m.to_str().unwrap(), "--clip", c.to_str().unwrap()])
        .arg("--gt")
        .arg(&gt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 795 frames but its labels go to frame 5000"), "{err}");
}

#[test]
fn bench_reports_every_stage_and_the_ratio_to_bare_runs() {
    let (m, c) = (model(), clip());
    let r = run_json(&[
        "bench",
        "--model",
        m.to_str().unwrap(),
        "--clip",
        c.to_str().unwrap(),
        "--cameras",
        "2",
        "--frames",
        "40",
        "--bare-runs",
        "10",
        "--repeats",
        "2",
        "--motion",
        "--json",
    ]);
    assert_eq!(r["repeats"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(768), Some(576)), "{r}");
    let loop_ = &r["ungated"];
    assert_eq!(loop_["frames"], 40, "{r}");
    assert_eq!(loop_["inferred"], 40, "every frame inferred without the gate: {r}");
    for stage in ["decode_ms", "preprocess_ms", "infer_ms", "postprocess_ms"] {
        let v = loop_["stages"][stage].as_f64().unwrap();
        assert!(v > 0.0, "{stage} {v}: {r}");
    }
    let ratio = r["ratio"].as_f64().unwrap();
    assert!(ratio > 0.3 && ratio < 1.5, "ratio {ratio}: {r}");
    assert!(r["gated"]["frames"] == 40, "{r}");
    assert!(r["max_rss_mib"].as_f64().unwrap() < 300.0, "{r}");
    // What the model finds in the first frame: the three people walking there, at least.
    let people = r["first_frame"].as_array().unwrap().iter().filter(|f| f["class"] == "person");
    assert!(people.count() >= 3, "{r}");
}
