//! `xl-agent check-config` against a set of broken configs (`tests/broken-configs/`): each file
//! states, in `# expect:` lines at its top, exactly what the installer must read (every problem
//! as `line:column: option: message`, with its hint) and the command must exit 2.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_xl-agent");

#[test]
fn every_broken_config_gets_its_exact_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken-configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> =
            text.lines().filter_map(|l| l.strip_prefix("# expect: ")).collect();
        assert!(!expected.is_empty(), "{} states no # expect: lines", file.display());
        let out = Command::new(BIN).arg("check-config").arg(&file).output().unwrap();
        let prefix = format!("{}:", file.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = stdout.lines().map(|l| l.strip_prefix(&prefix).unwrap_or(l)).collect();
        assert_eq!(got, expected, "{}", file.display());
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let n = expected.iter().filter(|l| !l.starts_with("    hint:")).count();
        assert!(stderr.contains(&format!("{n} problem")), "{}: {stderr}", file.display());
    }
}

#[test]
fn the_documented_example_passes_with_the_real_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join(".cache/models/nanodet_g416_coco.onnx");
    assert!(model.is_file(), "run `make setup` first: {} is missing", model.display());
    let example = std::fs::read_to_string(root.join("deploy/agent.example.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        example.replace(
            "/usr/share/xueliang/models/nanodet_g416_coco.onnx",
            &model.display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new(BIN).arg("check-config").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with(": ok (2 cameras, 2 zones, 1 lines, 6 rules)\n")
    );
}
