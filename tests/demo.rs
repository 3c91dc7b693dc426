//! `xl-demo` stops everything it started, however it is stopped: SIGTERM (a clean stop with its
//! summary line) and SIGKILL (its broker, center and agent follow it). Before, a `kill` of the
//! demo left its center and agent running, holding the console's port. Its broker keeps
//! strangers out and the box to its own topics.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reaper, workspace_binary};

/// The pids whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …: the command may hold spaces, so read after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(&pid.to_string()) {
            out.push(child);
        }
    }
    out
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Starts the demo on a free console port and returns it once its agent runs, with the pids of
/// its broker, center and agent, the console's port and the broker's.
fn start_demo(dir: &std::path::Path) -> (Reaper, Vec<u32>, u16, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(workspace_binary("xl-demo"))
        .args(["--data-dir", &dir.display().to_string(), "--http", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start xl-demo");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut broker = 0;
    loop {
        let line = lines.next().expect("the demo ended before its agent ran").unwrap();
        if let Some(rest) = line.strip_prefix("demo: Mosquitto at mqtt://127.0.0.1:") {
            broker = rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        if line.starts_with("demo: agent running") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the demo did not start its agent");
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let started_children = children(child.id());
    assert_eq!(started_children.len(), 3, "the demo runs Mosquitto, a center and an agent");
    (Reaper(child), started_children, port, broker)
}

/// What `mosquitto_sub` as `login` (none: anonymous) under `client_id` gets of everything in
/// 2 s, and what it says.
fn read_everything(port: u16, login: Option<(&str, &str)>, client_id: &str) -> (String, String) {
    let mut sub = Command::new("mosquitto_sub");
    sub.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", client_id]);
    if let Some((user, password)) = login {
        sub.args(["-u", user, "-P", password]);
    }
    let out = sub.args(["-t", "#", "-v", "-W", "2"]).output().expect("mosquitto_sub (make setup)");
    (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Waits until none of `pids` lives and the console's port is free again.
fn assert_all_gone(pids: &[u32], port: u16, how: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|p| alive(*p)) || TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "after {how}, still running: {:?}; port {port} free: {}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
            TcpListener::bind(("127.0.0.1", port)).is_ok()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_stops_the_demo_with_its_broker_center_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, started, port, broker) = start_demo(dir.path());
    // The demo's broker is the county's: a stranger does not get in, and the box's own password
    // (its doctor's login, which has no topic) reads nothing.
    let (seen, said) = read_everything(broker, None, "stranger");
    assert!(seen.is_empty() && said.contains("not authorised"), "anonymous: {seen} {said}");
    let config = std::fs::read_to_string(dir.path().join("agent.toml")).unwrap();
    assert!(config.contains("persistent_session = true"), "enrolment asks for a session: {config}");
    let password = config.lines().find_map(|l| l.strip_prefix("password = ")).unwrap();
    let login = ("demo-village~doctor", password.trim_matches('"'));
    let (seen, said) = read_everything(broker, Some(login), "xl-agent-demo-village~doctor");
    assert!(seen.is_empty() && said.contains("denied"), "the box's login: {seen} {said}");
    // SAFETY: kill(2) on the child we spawned and have not reaped.
    unsafe { libc::kill(demo.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = demo.0.wait().unwrap();
    assert!(status.code().is_some(), "the demo stopped cleanly, not by the signal: {status}");
    assert_all_gone(&started, port, "SIGTERM");
}

#[test]
fn sigkill_of_the_demo_takes_its_broker_center_and_agent_along() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, started, port, _) = start_demo(dir.path());
    demo.0.kill().unwrap();
    demo.0.wait().unwrap();
    assert_all_gone(&started, port, "SIGKILL");
}
