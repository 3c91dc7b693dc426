//! `xl-demo`: a real clip through a real agent to the center, on one machine.
//!
//! Starts Mosquitto as a county runs it (every client logs in; its dynamic-security plugin keeps
//! each box to its own topics), `xl-center` (keeping the boxes' accounts there; sled store in a
//! fresh directory), serves `vtest.avi` over RTSP as a camera, enrols `xl-agent` as an installer
//! does, runs it with the rules a county would set on such a place (people on the walkway,
//! someone staying at the meeting point), and prints events as the center stores, updates and
//! ends them. Runs until Ctrl-C or SIGTERM, or for `--for DURATION`; then
//! prints `demo: N events stored (X ongoing, Y ended)` and exits 0 only if N ≥ 1.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
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

fn spawn(bin: &Path, args: &[&str], log: &Path, env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut command = Command::new(bin);
    command
        .args(args)
        .envs(env.iter().copied())
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
    let center_bin = scenario::sibling_binary("xl-center")?;
    let agent_bin = scenario::sibling_binary("xl-agent")?;
    let _tmp;
    let dir = match args.data_dir {
        Some(d) => d,
        None => {
            _tmp = tempfile::tempdir()?;
            _tmp.path().to_owned()
        }
    };
    std::fs::create_dir_all(&dir)?;

    // A camera's two streams: the sub-stream the box decodes to detect, the main stream it
    // keeps compressed for clips.
    let camera = RtspServer::serve_sizes(
        &scenario::vtest(),
        &[("campus-walkway-sub", 384, 288), ("campus-walkway-main", 768, 576)],
    )?;
    let camera_url = camera.url("campus-walkway-sub");
    let record_url = camera.url("campus-walkway-main");
    println!("demo: camera (vtest.avi over RTSP): detect {camera_url}, record {record_url}");

    let http = match args.http {
        Some(a) => a,
        None if TcpListener::bind("127.0.0.1:8080").is_ok() => "127.0.0.1:8080".parse()?,
        None => SocketAddr::from(([127, 0, 0, 1], scenario::free_port()?)),
    };
    let mqtt_port = scenario::free_port()?;
    let center_log = dir.join("center.log");
    let store_dir = dir.join("center-store");
    let store_arg = store_dir.display().to_string();
    let config_path = dir.join("agent.toml");
    let config_arg = config_path.display().to_string();

    // The box's config as an installer writes it before enrolment: its camera and rules.
    // Enrolment fills in [mqtt]: the broker, its password there, and the center's key.
    let config = scenario::agent_toml("demo-village", &camera_url, "mqtt://unset", "")
        .replace("center_key = \"\"\n", "")
        + DEMO_RULES;
    let config = scenario::with_record_stream(&config, &record_url);
    std::fs::write(&config_path, config)?;
    std::fs::create_dir_all(&store_dir)?;
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

    let broker_password = xueliang_center::access::generate_password();
    let mosquitto = start_mosquitto(&dir, mqtt_port, &broker_password).await?;
    let broker_url = format!("mqtt://127.0.0.1:{mqtt_port}");
    println!("demo: Mosquitto at {broker_url} (log {})", dir.join("mosquitto.log").display());
    let mut center = spawn(
        &center_bin,
        &[
            "serve",
            "--data-dir",
            &store_arg,
            "--http",
            &http.to_string(),
            "--broker-url",
            &broker_url,
            "--broker-username",
            "xl-center",
            "--broker-accounts",
            "--agent-mqtt-url",
            &broker_url,
        ],
        &center_log,
        &[("XL_BROKER_PASSWORD", &broker_password)],
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

    enrol(&api, &agent_bin, &config_arg).await?;
    let agent_log = dir.join("agent.log");
    let mut agent = spawn(&agent_bin, &["run", "--config", &config_arg], &agent_log, &[])?;
    println!("demo: agent running with {} (log {})", config_path.display(), agent_log.display());
    match args.duration {
        Some(d) => println!("demo: running for {:.0}s", d.as_secs_f32()),
        None => println!("demo: running until Ctrl-C (or SIGTERM)"),
    }

    let mut seen = Seen::default();
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
    let mut mosquitto = mosquitto;
    stop(&mut mosquitto, "mosquitto").await;
    let n = seen.events.len();
    let ongoing = seen.events.values().filter(|s| s.as_str() == "ongoing").count();
    println!(
        "demo: {n} events stored ({ongoing} ongoing, {} ended), {} clip(s)",
        n - ongoing,
        seen.clips.len()
    );
    drop(camera);
    Ok(n)
}

/// Starts Mosquitto on loopback `port` with its files in `dir`, as a county's is set up: no
/// anonymous clients, and the dynamic-security plugin with the center's login (`xl-center`,
/// `password`) as its admin.
async fn start_mosquitto(dir: &Path, port: u16, password: &str) -> anyhow::Result<Child> {
    let plugin = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/mosquitto_dynamic_security.so")))
        .find(|p| p.is_file())
        .context("Mosquitto's dynamic-security plugin is not installed: apt install mosquitto")?;
    let accounts = dir.join("mosquitto-accounts.json");
    let _ = std::fs::remove_file(&accounts);
    let ctrl = Path::new("mosquitto_ctrl");
    let accounts_arg = accounts.display().to_string();
    output(ctrl, &["dynsec", "init", &accounts_arg, "xl-center", password], "").await?;
    // Mosquitto started as root drops to the user `mosquitto`, who could not write its
    // accounts file here: it stays whoever runs the demo.
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_config_file {accounts_arg}\npersistence false\nuser {user}\n\
             message_size_limit 1100000\n",
            plugin.display()
        ),
    )?;
    let log = dir.join("mosquitto.log");
    let conf_arg = conf.display().to_string();
    let mut child = spawn(Path::new("mosquitto"), &["-c", &conf_arg], &log, &[])?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("mosquitto exited ({status}):\n{}", tail(&log, 10));
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("mosquitto did not listen in 10 s:\n{}", tail(&log, 10));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(child)
}

/// Enrols the box as an installer does: the county's admin makes a token, and `xl-agent enroll`
/// (the command the console shows) redeems it, writing the broker, its password and the
/// center's key into the config at `config`.
async fn enrol(api: &str, agent_bin: &Path, config: &str) -> anyhow::Result<()> {
    let admin = xueliang_testkit::center_client::login(api, "admin", DEMO_PASSWORD, None).await?;
    let resp = admin
        .post(format!("{api}/api/enrolments"))
        .json(&serde_json::json!({"agent_id": "demo-village"}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("the center made no enrolment token: {}", resp.text().await.unwrap_or_default());
    }
    let created: serde_json::Value = resp.json().await?;
    let command = created["command"].as_str().context("no enrolment command")?;
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    args.extend(["--config", config]);
    let said = output(agent_bin, &args, "").await?;
    println!("demo: box enrolled: {}", said.lines().next().unwrap_or_default());
    Ok(())
}

/// What the demo has printed so far.
#[derive(Default)]
struct Seen {
    /// Each event's state as last printed.
    events: HashMap<String, String>,
    /// The clips printed.
    clips: HashSet<String>,
}

/// Asks the center for its newest events and prints those it began, those that ended and the
/// clips that arrived since the last time, oldest first.
async fn print_events(client: &reqwest::Client, api: &str, seen: &mut Seen) {
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
        let before = seen.events.insert(id.clone(), state.clone());
        if before.is_none() {
            println!(
                "event {id}  {}/{}  {} ({})  {} object(s)  snapshot {}x{} {} KB  {api}/api/alarms/{id}/snapshot",
                a["agent_id"].as_str().unwrap_or_default(),
                a["camera_id"].as_str().unwrap_or_default(),
                a["kind"].as_str().unwrap_or_default(),
                a["severity"].as_str().unwrap_or_default(),
                a["detections"].as_array().map_or(0, Vec::len),
                a["frame_width"].as_u64().unwrap_or(0),
                a["frame_height"].as_u64().unwrap_or(0),
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
        for c in a["clips"].as_array().into_iter().flatten() {
            let clip = c["clip_id"].as_str().unwrap_or_default();
            if seen.clips.insert(clip.to_owned()) {
                println!(
                    "clip  {id}  {} s {}x{} ({} stream)  {} KB  sha256 {}…  {api}/api/clips/{clip}",
                    c["duration_ms"].as_u64().unwrap_or(0) / 1000,
                    c["width"].as_u64().unwrap_or(0),
                    c["height"].as_u64().unwrap_or(0),
                    c["stream"].as_str().unwrap_or_default(),
                    c["size"].as_u64().unwrap_or(0) / 1024,
                    c["sha256"].as_str().unwrap_or_default().get(..16).unwrap_or_default(),
                );
            }
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
