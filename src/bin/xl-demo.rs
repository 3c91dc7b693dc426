//! `xl-demo`: a real clip through a real agent to the center, on one machine.
//!
//! Starts `xl-center` (embedded broker, sled store in a fresh directory), serves `vtest.avi` over
//! RTSP as a camera, starts `xl-agent` with the rules a county would set on such a place (people
//! on the walkway, someone staying at the meeting point), and prints events as the center
//! stores, updates and ends them. Runs until Ctrl-C or SIGTERM, or for `--for DURATION`; then
//! prints `demo: N events stored (X ongoing, Y ended)` and exits 0 only if N ≥ 1.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::process::{Child, Command};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// Beside the walkway's intrusion rule: someone staying at the spot where people stop to talk
/// (the clip's two who stand there ~15 s), as a county watches a bridge or a reservoir steps.
const DEMO_RULES: &str = r#"
[[zones]]
id = "meeting-point"
camera = "campus-walkway"
points = [[0.46, 0.38], [0.60, 0.38], [0.60, 0.52], [0.46, 0.52]]

[[rules]]
id = "meeting-point-loitering"
kind = "loitering"
zone = "meeting-point"
classes = ["person"]
dwell_s = 10
severity = "medium"
"#;

/// The demo users' password (a demo only: a real center has no default password).
const DEMO_PASSWORD: &str = "xueliang-demo";

/// One user per role: login, role, unit.
const DEMO_USERS: [(&str, &str, Option<&str>); 4] = [
    ("admin", "admin", None),
    ("duty", "duty_officer", None),
    ("police", "police", Some("pcs-dongcheng")),
    ("installer", "installer", None),
];

/// The demo county's responder units and routing.
const DEMO_ROUTING: &str = r#"time_zone = "Asia/Shanghai"

[[unit]]
id = "pcs-dongcheng"
name = "东城派出所"
type = "police_station"

[[unit]]
id = "patrol-demo-village"
name = "示范村网格员"
type = "village_patrol"

[[unit]]
id = "township-dongcheng"
name = "东城镇综治办"
type = "township_office"

[[group]]
id = "demo-village"
name = "示范村 校园步道"
cameras = ["demo-village/*"]

[[route]]
id = "intrusion"
groups = ["demo-village"]
kinds = ["zone_intrusion"]
units = ["patrol-demo-village", "pcs-dongcheng"]

[escalation]
after_s = 300
units = ["township-dongcheng"]
"#;

#[derive(Parser)]
#[command(name = "xl-demo", about = "Run center + RTSP camera (vtest.avi) + agent and show alarms")]
struct Args {
    /// Stop after this long (e.g. 90s, 5m); without it, run until Ctrl-C.
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Where the center and the agent keep their data (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP address of the center's API (default 127.0.0.1:8080, or a free port if taken).
    #[arg(long)]
    http: Option<SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) =
        s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 90s or 5m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to {} (build the workspace: cargo build --release --workspace)",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

fn spawn(bin: &Path, args: &[&str], log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut command = Command::new(bin);
    command
        .args(args)
        .env(
            "ORT_DYLIB_PATH",
            std::env::var_os("ORT_DYLIB_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(scenario::onnxruntime),
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .kill_on_drop(true);
    // However the demo ends (even SIGKILL), what it started goes with it: the kernel sends
    // SIGTERM to the child when the thread that spawned it dies (the demo runs on one thread).
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command.spawn().with_context(|| format!("start {}", bin.display()))
}

/// What `bin args` prints given `input` on its standard input, or why it failed.
async fn output(bin: &Path, args: &[&str], input: &str) -> anyhow::Result<String> {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(n) if n >= 1 => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<usize> {
    // Registered before any child starts: a SIGTERM from then on stops the demo cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let center_bin = sibling_binary("xl-center")?;
    let agent_bin = sibling_binary("xl-agent")?;
    let _tmp;
    let dir = match args.data_dir {
        Some(d) => d,
        None => {
            _tmp = tempfile::tempdir()?;
            _tmp.path().to_owned()
        }
    };
    std::fs::create_dir_all(&dir)?;

    let camera = RtspServer::serve_file(&scenario::vtest(), "campus-walkway")?;
    let camera_url = camera.url("campus-walkway");
    println!("demo: camera (vtest.avi over RTSP) at {camera_url}");

    let http = match args.http {
        Some(a) => a,
        None if TcpListener::bind("127.0.0.1:8080").is_ok() => "127.0.0.1:8080".parse()?,
        None => SocketAddr::from(([127, 0, 0, 1], free_port()?)),
    };
    let mqtt_port = free_port()?;
    let center_log = dir.join("center.log");
    let store_dir = dir.join("center-store");
    let store_arg = store_dir.display().to_string();
    let config_path = dir.join("agent.toml");
    let config_arg = config_path.display().to_string();

    // Keys as an installer exchanges them: the center's goes into the agent's config, the
    // agent's into the center's registry.
    let center_key = output(&center_bin, &["key", "--data-dir", &store_arg], "").await?;
    let center_key = center_key
        .trim()
        .strip_prefix("center_key = ")
        .context("`xl-center key` printed no key")?
        .trim_matches('"')
        .to_owned();
    let config = scenario::agent_toml(
        "demo-village",
        &camera_url,
        &format!("mqtt://127.0.0.1:{mqtt_port}"),
        &center_key,
    ) + DEMO_RULES;
    std::fs::write(&config_path, config)?;
    let agent_line = output(&agent_bin, &["key", "--config", &config_arg], "").await?;
    scenario::register_agent(&store_dir.join("agent-keys.toml"), agent_line.trim())?;

    // The county's responder units and routing, and one user per role, as county IT sets them up.
    std::fs::write(store_dir.join("routing.toml"), DEMO_ROUTING)?;
    for (login, role, unit) in DEMO_USERS {
        let mut args = vec![
            "user",
            "add",
            login,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
            &store_arg,
        ];
        args.extend(unit.iter().flat_map(|u| ["--unit", u]));
        output(&center_bin, &args, DEMO_PASSWORD).await?;
    }

    let mut center = spawn(
        &center_bin,
        &[
            "serve",
            "--data-dir",
            &store_arg,
            "--http",
            &http.to_string(),
            "--mqtt-listen",
            &format!("127.0.0.1:{mqtt_port}"),
        ],
        &center_log,
    )?;
    let api = format!("http://{http}");
    let started = Instant::now();
    while reqwest::get(format!("{api}/healthz")).await.is_err() {
        if let Some(status) = center.try_wait()? {
            bail!("xl-center exited ({status}):\n{}", tail(&center_log, 10));
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("xl-center did not answer in 20 s:\n{}", tail(&center_log, 10));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("demo: console at {api}/ (log {})", center_log.display());
    let logins: Vec<&str> = DEMO_USERS.iter().map(|(login, ..)| *login).collect();
    println!(
        "demo: log in as {} with password {DEMO_PASSWORD} (duty: the duty officer's console; police: the station's view on a phone)",
        logins.join(", ")
    );
    let client = xueliang_testkit::center_client::login(
        &api,
        "duty",
        DEMO_PASSWORD,
        Some(Duration::from_secs(5)),
    )
    .await?;

    let agent_log = dir.join("agent.log");
    let mut agent = spawn(&agent_bin, &["run", "--config", &config_arg], &agent_log)?;
    println!("demo: agent running with {} (log {})", config_path.display(), agent_log.display());
    match args.duration {
        Some(d) => println!("demo: running for {:.0}s", d.as_secs_f32()),
        None => println!("demo: running until Ctrl-C (or SIGTERM)"),
    }

    let mut seen = HashMap::new();
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = tick.tick() => {}
        }
        if let Some(status) = agent.try_wait()? {
            bail!("xl-agent exited ({status}):\n{}", tail(&agent_log, 10));
        }
        if let Some(status) = center.try_wait()? {
            bail!("xl-center exited ({status}):\n{}", tail(&center_log, 10));
        }
        print_events(&client, &api, &mut seen).await;
    }

    // Stop the agent first, take the last alarms it sent, then stop the center.
    stop(&mut agent, "agent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_events(&client, &api, &mut seen).await;
    stop(&mut center, "center").await;
    let n = seen.len();
    let ongoing = seen.values().filter(|s| s.as_str() == "ongoing").count();
    println!("demo: {n} events stored ({ongoing} ongoing, {} ended)", n - ongoing);
    drop(camera);
    Ok(n)
}

/// Asks the center for its newest events and prints those it began, and those that ended,
/// since the last time, oldest first; `seen` holds each event's state as last printed.
async fn print_events(client: &reqwest::Client, api: &str, seen: &mut HashMap<String, String>) {
    let Ok(resp) = client.get(format!("{api}/api/alarms?limit=500")).send().await else {
        return;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return;
    };
    let alarms = body["alarms"].as_array().cloned().unwrap_or_default();
    for a in alarms.iter().rev() {
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        let state = a["state"].as_str().unwrap_or("ended").to_owned();
        let before = seen.insert(id.clone(), state.clone());
        if before.is_none() {
            println!(
                "event {id}  {}/{}  {} ({})  {} object(s)  snapshot {} KB  {api}/api/alarms/{id}/snapshot",
                a["agent_id"].as_str().unwrap_or_default(),
                a["camera_id"].as_str().unwrap_or_default(),
                a["kind"].as_str().unwrap_or_default(),
                a["severity"].as_str().unwrap_or_default(),
                a["detections"].as_array().map_or(0, Vec::len),
                a["snapshot_bytes"].as_u64().unwrap_or(0) / 1024,
            );
        }
        if state == "ended"
            && before.as_deref() != Some("ended")
            && a["update_seq"].as_u64() > Some(0)
        {
            println!(
                "ended {id}  {}  after {} s, at most {} object(s)",
                a["kind"].as_str().unwrap_or_default(),
                a["duration_ms"].as_u64().unwrap_or(0) / 1000,
                a["peak_count"].as_u64().unwrap_or(0),
            );
        }
    }
}

/// SIGTERM, so the process shuts down cleanly; SIGKILL if it has not stopped in 10 s.
async fn stop(child: &mut Child, name: &str) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        eprintln!("demo: {name} did not stop in 10 s; killing it");
        let _ = child.kill().await;
    }
}
