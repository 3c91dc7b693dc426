//! `xl-center` on the command line: its key for agents' configs, and clear errors at start.

use std::process::Command;

fn xl_center(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xl-center")).args(args).output().expect("xl-center runs")
}

#[test]
fn key_prints_the_line_for_agents_configs_and_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = xl_center(&["key", "--data-dir", data]);
    assert!(first.status.success());
    let line = String::from_utf8(first.stdout).unwrap();
    assert!(line.starts_with("center_key = \"") && line.trim_end().ends_with('"'), "{line}");
    assert_eq!(line.trim().len(), "center_key = \"\"".len() + 44);
    let again = xl_center(&["key", "--data-dir", data]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), line, "the same key every time");
}

#[test]
fn a_broken_agent_key_registry_stops_the_start_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(&keys, "[agents]\nvillage-7 = \"not-a-key\"\n").unwrap();
    let out = xl_center(&[
        "serve",
        "--data-dir",
        dir.path().join("store").to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--mqtt-listen",
        "127.0.0.1:0",
        "--agent-keys",
        keys.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("error: agent keys {}: agents.village-7: \"not-a-key\" is not a public key", keys.display())),
        "{err}"
    );
}
