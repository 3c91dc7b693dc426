//! The agent as a service, without systemd: the test plays systemd's notify socket and
//! Prometheus. The agent says READY=1 once running, keeps pinging WATCHDOG=1 while its detector
//! loop goes round (with no broker reachable), and serves its metrics: frames, cameras online,
//! line crossings, the outbox.

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page
}

/// The value of the sample `line_start` (metric and labels) on `page`.
fn value(page: &str, line_start: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(line_start).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {line_start} in\n{page}"))
}

#[test]
fn ready_watchdog_pings_and_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join(".cache/models/nanodet_g416_coco.onnx");
    assert!(model.is_file(), "run `make setup` first: {} is missing", model.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"service-box\"\ndata_dir = \"data\"\nmetrics_listen = \"127.0.0.1:{port}\"\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:1\"\ninsecure = true\n[model]\npath = \"{}\"\n\
             [[cameras]]\nid = \"walkway\"\nurl = \"file://{}\"\n\
             [[lines]]\nid = \"middle\"\ncamera = \"walkway\"\npoints = [[0.45, 0.3], [0.45, 1.0]]\n\
             [[rules]]\nid = \"count\"\nkind = \"line_crossing\"\nline = \"middle\"\n",
            model.display(),
            root.join(".cache/footage/vtest.avi").display()
        ),
    )
    .unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_xl-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut states = Vec::new();
    let start = Instant::now();
    while states.iter().filter(|s: &&String| *s == "WATCHDOG=1").count() < 8
        && start.elapsed() < Duration::from_secs(30)
    {
        match socket.recv(&mut buf) {
            Ok(n) => states.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    let page = metrics(port);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(states.first().map(String::as_str), Some("READY=1"), "{states:?}");
    assert_eq!(
        states[1..].iter().filter(|s| *s == "WATCHDOG=1").count(),
        8,
        "a ping every half period: {states:?}"
    );

    // About 4 s of a 10 fps clip.
    assert!(value(&page, "xl_agent_frames_decoded_total{camera=\"walkway\"}") >= 20.0, "{page}");
    assert!(value(&page, "xl_agent_frames_inferred_total{camera=\"walkway\"}") >= 5.0, "{page}");
    assert_eq!(value(&page, "xl_agent_camera_online{camera=\"walkway\"}"), 1.0);
    value(
        &page,
        "xl_agent_line_crossings_total{camera=\"walkway\",rule=\"count\",direction=\"a_to_b\"}",
    );
    // No broker: every alarm raised waits in the outbox.
    let raised: f64 = page
        .lines()
        .filter(|l| l.starts_with("xl_agent_alarms_raised_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(raised >= 1.0, "the line counted someone within 4 s: {page}");
    assert_eq!(value(&page, "xl_agent_outbox_alarms"), raised, "{page}");
    assert_eq!(value(&page, "xl_agent_config_version"), 0.0);
}
