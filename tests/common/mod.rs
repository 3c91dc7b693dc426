//! Shared steps of the end-to-end tests: a real agent run in-process against a real center.

// Each test file compiles this module for itself and uses part of it.
#![allow(dead_code)]

pub mod chaos_proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::runtime::Agent;
use xueliang_center::access::{Role, Users, add_user};
use xueliang_center::domain::AlarmRecord;
use xueliang_center::running::{BrokerChoice, CenterConfig, RunningCenter, start};
use xueliang_center::store::{Backend, Store};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// The walkway scenario running: a center, `vtest.avi` as an RTSP camera, and an agent.
pub struct Scenario {
    /// The center.
    pub center: RunningCenter,
    camera: Option<RtspServer>,
    camera_port: u16,
    agent: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Scenario {
    /// Starts the center on `broker` (store in `dir`), the camera, and agent `agent_id`
    /// publishing to the broker the center uses.
    pub async fn start(dir: &Path, agent_id: &str, broker: BrokerChoice) -> Self {
        Self::start_with(dir, agent_id, broker, "").await
    }

    /// [`Scenario::start`] with `extra` TOML appended to the agent's config.
    pub async fn start_with(dir: &Path, agent_id: &str, broker: BrokerChoice, extra: &str) -> Self {
        Self::start_tuned(dir, agent_id, broker, extra, |_| {}).await
    }

    /// [`Scenario::start_with`], the agent's config then changed by `tune`.
    pub async fn start_tuned(
        dir: &Path,
        agent_id: &str,
        broker: BrokerChoice,
        extra: &str,
        tune: impl FnOnce(&mut AgentConfig),
    ) -> Self {
        Self::start_both_tuned(dir, agent_id, broker, extra, tune, |_| {}).await
    }

    /// [`Scenario::start_tuned`], the center's config changed by `tune_center` too.
    pub async fn start_both_tuned(
        dir: &Path,
        agent_id: &str,
        broker: BrokerChoice,
        extra: &str,
        tune: impl FnOnce(&mut AgentConfig),
        tune_center: impl FnOnce(&mut CenterConfig),
    ) -> Self {
        let shutdown = CancellationToken::new();
        let center_key = prepare_keys(dir, agent_id);
        let mut config = center_config(dir, broker);
        tune_center(&mut config);
        let center = start(config, shutdown.clone()).await.expect("center starts");
        let camera =
            RtspServer::serve_file(&scenario::vtest(), "campus-walkway").expect("RTSP server");
        let toml = scenario::agent_toml(
            agent_id,
            &camera.url("campus-walkway"),
            &format!("mqtt://{}", center.mqtt_addr),
            &center_key,
        ) + extra;
        let mut config =
            AgentConfig::parse(&toml, &dir.join("agent.toml")).expect("scenario config is valid");
        tune(&mut config);
        let agent = run_agent(config, shutdown.clone());
        let camera_port = camera.port();
        Self { center, camera: Some(camera), camera_port, agent, shutdown }
    }

    /// The camera's RTSP URL.
    pub fn camera_url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/campus-walkway", self.camera_port)
    }

    /// Cuts the camera off, as a power cut or a broken cable would.
    pub fn cut_camera(&mut self) {
        self.camera = None;
    }

    /// Brings the camera back at its old address.
    pub fn restore_camera(&mut self) {
        self.camera = Some(
            RtspServer::serve_file_on(&scenario::vtest(), "campus-walkway", self.camera_port)
                .expect("RTSP server on its old port"),
        );
    }

    /// Stops the agent and the center cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.agent.await.expect("agent task");
        self.center.join().await;
    }
}

/// The center's embedded broker on a free loopback port, without passwords or TLS.
pub fn embedded_broker() -> BrokerChoice {
    BrokerChoice::Embedded { listen: "127.0.0.1:0".parse().unwrap(), tls: None, passwords: false }
}

/// The config of a center storing in `dir/center` (HTTP on a free port), with the test admin.
/// With `XL_TEST_STORE=postgres` the center keeps its records in a fresh database on the test
/// process's own PostgreSQL server, so the same tests check both stores.
pub fn center_config(dir: &Path, broker: BrokerChoice) -> CenterConfig {
    add_test_admin(&dir.join("center"));
    let mut config = CenterConfig::new(dir.join("center"), "127.0.0.1:0".parse().unwrap(), broker);
    config.store = test_store(&dir.join("center"));
    config
}

/// The store `XL_TEST_STORE` asks for, for the center storing in `center_dir`: `postgres` (a
/// database of its own on the test process's server) or, by default, the embedded one.
pub fn test_store(center_dir: &Path) -> Backend {
    Backend::postgres_or_embedded(xueliang_pgtest::store_asked(center_dir))
}

/// The store of the center that stored in `center_dir`, opened to read what it kept.
pub fn open_store(center_dir: &Path) -> Store {
    Store::open_with(&test_store(center_dir), center_dir).expect("the center's store opens")
}

/// Login and password of the admin the tests' centers have.
pub const TEST_ADMIN: (&str, &str) = ("test-admin", "test-admin-password");

/// Adds [`TEST_ADMIN`] to the users of the center storing in `center_dir` (once).
pub fn add_test_admin(center_dir: &Path) {
    let path = center_dir.join("users.toml");
    if Users::open(&path).expect("users file").get(TEST_ADMIN.0).is_none() {
        add_user(&path, TEST_ADMIN.0, None, Role::Admin, None, TEST_ADMIN.1)
            .expect("test admin added");
    }
}

/// A logged-in API client.
#[derive(Clone)]
pub struct Api {
    /// `http://host:port`.
    pub base: String,
    /// Sends the session's bearer token.
    pub client: reqwest::Client,
}

impl Api {
    /// Logs in to the center at `http` as `login`; panics if refused.
    pub async fn login(http: SocketAddr, login: &str, password: &str) -> Self {
        let base = format!("http://{http}");
        let client = xueliang_testkit::center_client::login(&base, login, password, None)
            .await
            .expect("logged in");
        Self { base, client }
    }

    /// Logs in as [`TEST_ADMIN`].
    pub async fn admin(http: SocketAddr) -> Self {
        Self::login(http, TEST_ADMIN.0, TEST_ADMIN.1).await
    }

    /// `GET {base}{path}`.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// `POST {base}{path}`.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    /// `PUT {base}{path}`.
    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(format!("{}{path}", self.base))
    }

    /// `DELETE {base}{path}`.
    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(format!("{}{path}", self.base))
    }

    /// A new enrolment token for `agent` (`POST /api/enrolments`, asserting 201): the token, and
    /// the command the county gives the installer.
    pub async fn enrolment(&self, agent: &str) -> serde_json::Value {
        let resp = self
            .post("/api/enrolments")
            .json(&serde_json::json!({ "agent_id": agent }))
            .send()
            .await
            .expect("API request");
        assert_eq!(resp.status(), 201, "POST /api/enrolments for {agent}");
        resp.json().await.expect("JSON body")
    }

    /// `GET {base}{path}` as JSON, asserting 200.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let resp = self.get(path).send().await.expect("API request");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("JSON body")
    }
}

/// Keys for the center of [`center_config`] and the agent of [`start_agent`] in `dir`: the
/// agent registered, and the center's public key returned.
pub fn prepare_keys(dir: &Path, agent_id: &str) -> String {
    scenario::prepare_keys(&dir.join("center"), agent_id, &dir.join("agent-data")).expect("keys")
}

/// Builds the walkway-scenario agent (state in `dir/agent-data`, `extra` TOML appended to its
/// config) and runs it until `shutdown`.
pub fn start_agent(
    agent_id: &str,
    camera_url: &str,
    mqtt_url: &str,
    center_key: &str,
    extra: &str,
    dir: &Path,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let toml = scenario::agent_toml(agent_id, camera_url, mqtt_url, center_key) + extra;
    let config =
        AgentConfig::parse(&toml, &dir.join("agent.toml")).expect("scenario config is valid");
    run_agent(config, shutdown)
}

/// Builds the agent of `config` and runs it until `shutdown`.
fn run_agent(config: AgentConfig, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let agent = Agent::build(config).expect("agent builds (run `make setup` first)");
    tokio::spawn(async move {
        agent.run(shutdown).await.expect("agent runs");
    })
}

/// Polls `GET /api/alarms` until an alarm arrives or `timeout` passes.
pub async fn wait_for_alarm(http: SocketAddr, timeout: Duration) -> Option<AlarmRecord> {
    wait_for_alarm_where(http, timeout, |_| true).await
}

/// Polls `GET /api/alarms` until an alarm for which `pred` holds arrives, or `timeout` passes.
pub async fn wait_for_alarm_where(
    http: SocketAddr,
    timeout: Duration,
    pred: impl Fn(&AlarmRecord) -> bool,
) -> Option<AlarmRecord> {
    let api = Api::admin(http).await;
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(resp) = api.get("/api/alarms").send().await {
            assert_eq!(resp.status(), 200);
            let body: serde_json::Value = resp.json().await.expect("alarm list is JSON");
            let alarms: Vec<AlarmRecord> =
                serde_json::from_value(body["alarms"].clone()).expect("alarm records");
            if let Some(a) = alarms.into_iter().find(&pred) {
                return Some(a);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// The center's Prometheus page, read without logging in.
pub async fn metrics(http: SocketAddr) -> String {
    reqwest::get(format!("http://{http}/metrics")).await.unwrap().text().await.unwrap()
}

/// Fetches an alarm's snapshot and checks it is a JPEG of the camera's frame size.
pub async fn assert_snapshot_decodes(http: SocketAddr, alarm: &AlarmRecord) {
    let resp = Api::admin(http)
        .await
        .get(&format!("/api/alarms/{}/snapshot", alarm.id))
        .send()
        .await
        .expect("snapshot request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let bytes = resp.bytes().await.expect("snapshot body");
    assert_eq!(bytes.len(), alarm.snapshot_bytes);
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .expect("snapshot is a JPEG that decodes");
    assert_eq!((img.width(), img.height()), (alarm.frame_width, alarm.frame_height));
    assert_eq!((img.width(), img.height()), (768, 576), "vtest.avi at full resolution");
}

/// Checks the alarm says what the walkway scenario should say.
pub fn assert_walkway_intrusion(alarm: &AlarmRecord, agent_id: &str) {
    assert_eq!(alarm.agent_id, agent_id);
    assert_eq!(alarm.camera_id, "campus-walkway");
    assert_eq!(alarm.rule_id, "walkway-intrusion");
    assert_eq!(alarm.kind, "zone_intrusion");
    assert_eq!(alarm.severity, "high");
    assert_eq!(alarm.zone_id, "walkway");
    assert!(!alarm.detections.is_empty());
    for d in &alarm.detections {
        assert_eq!(d.class, "person");
        assert!(d.score >= 0.5, "{d:?}");
        // The box's bottom-centre (where the person stands) lies in the walkway zone.
        let (x, y) = ((d.bbox[0] + d.bbox[2]) / 2.0, d.bbox[3]);
        assert!((0.05..=0.95).contains(&x) && (0.35..=0.98).contains(&y), "{d:?}");
    }
}

/// Subscribes to `agent`'s health topic on the broker at `mqtt` and returns the first report.
pub async fn next_health(mqtt: &str, agent: &str, timeout: Duration) -> xueliang_proto::Health {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mqtt: SocketAddr = mqtt.parse().expect("broker address host:port");
    let opts =
        MqttOptions::new(format!("health-watch-{agent}"), mqtt.ip().to_string(), mqtt.port());
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let topic = xueliang_proto::topics::Topics::default().health(agent);
    client.subscribe(&topic, QoS::AtMostOnce).await.expect("subscribe");
    tokio::time::timeout(timeout, async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                return xueliang_proto::decode_limited(&p.payload).expect("a Health message");
            }
        }
    })
    .await
    .expect("a health report in time")
}

/// Kills the child process when the test ends, however it ends.
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Mosquitto (anonymous, in memory) on loopback `port` (0: a free one) with its files in
/// `dir`; returns it and its port once it listens.
pub fn start_mosquitto(dir: &Path, port: u16) -> (Reaper, u16) {
    start_mosquitto_with(dir, port, "")
}

/// [`start_mosquitto`] with `extra` lines for the listener (TLS files, say).
pub fn start_mosquitto_with(dir: &Path, port: u16, extra: &str) -> (Reaper, u16) {
    use std::process::{Command, Stdio};
    let port = match port {
        0 => std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
        p => p,
    };
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\n{extra}\nallow_anonymous true\npersistence false\nlog_dest stderr\n"),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed (make setup)");
    let reaper = Reaper(child);
    wait_listening(port);
    (reaper, port)
}

/// Waits (up to 30 s) until something accepts connections on loopback `port`.
pub fn wait_listening(port: u16) {
    xueliang_testkit::bench::wait_listening(port, "the server").unwrap_or_else(|e| panic!("{e}"));
}

/// A binary of the workspace (`xl-center`, `xl-agent`), built beside this test by
/// `cargo test --workspace` (as `make test` runs it).
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let bin = exe.parent().and_then(Path::parent).expect("target directory").join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo test --workspace` (make test) or `cargo build --bins`",
        bin.display()
    );
    bin
}

/// Both streams of a finished command, stdout first: for assertions and failure messages.
pub fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `cmd`, asserting it succeeds (else failing with both its streams); returns its output.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, text(&out));
    out
}

/// Runs `cmd`, asserting it succeeds; returns its stdout and stderr.
pub fn run(cmd: &mut std::process::Command) -> String {
    text(&run_ok(cmd))
}

/// `xl-center serve` storing in `data` (its log in `log`), HTTP on a free loopback port, with
/// `broker` arguments (`--mqtt-listen ADDR` for its embedded broker, `--broker-url URL`);
/// returns it and its HTTP address once it listens.
pub fn serve_center(data: &Path, log: &Path, broker: &[&str]) -> (Reaper, SocketAddr) {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(log).unwrap();
    let child = Reaper(
        Command::new(workspace_binary("xl-center"))
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .args(broker)
            .arg("--data-dir")
            .arg(data)
            .args(["--store", &test_store(data).to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_listening(port);
    (child, ([127, 0, 0, 1], port).into())
}

/// The last 30 lines of the log at `path`, headed by its name, for a failure message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("── {}:\n{}\n", path.display(), lines[lines.len().saturating_sub(30)..].join("\n"))
}

/// The number `name` has in Prometheus `metrics`.
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
        as u64
}

/// `attempts` log-ins with a wrong password at the center at `http`, from this address over 1,000
/// logins in turn, 64 at a time, started evenly over `spread` (zero: as fast as they go); how
/// many got each HTTP status.
pub async fn failed_log_ins(
    http: SocketAddr,
    attempts: usize,
    spread: Duration,
) -> std::collections::BTreeMap<u16, usize> {
    let base = format!("http://{http}");
    let client = reqwest::Client::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut sent = tokio::task::JoinSet::new();
    let t0 = tokio::time::Instant::now();
    for i in 0..attempts {
        if !spread.is_zero() {
            tokio::time::sleep_until(t0 + spread.mul_f64(i as f64 / attempts as f64)).await;
        }
        let (client, base, permit) =
            (client.clone(), base.clone(), slots.clone().acquire_owned().await.unwrap());
        sent.spawn(async move {
            let resp = client
                .post(format!("{base}/api/login"))
                .json(
                    &serde_json::json!({ "login": format!("flood-{}", i % 1000), "password": "guess-123456" }),
                )
                .send()
                .await
                .unwrap();
            drop(permit);
            resp.status().as_u16()
        });
    }
    let mut answers = std::collections::BTreeMap::new();
    while let Some(status) = sent.join_next().await {
        *answers.entry(status.unwrap()).or_default() += 1;
    }
    answers
}

/// An `xl-scripted-agent` agent `agent` (state in `dir/{agent}`, log in `dir/{agent}.log`) raising
/// `count` alarms through the broker at `mqtt_url`, with `mqtt` lines added to its [mqtt]
/// section; it exits once every alarm is receipted.
pub fn start_scripted_agent(
    dir: &Path,
    agent: &str,
    mqtt_url: &str,
    center_key: &str,
    mqtt: &str,
    count: u32,
) -> Reaper {
    start_scripted_agent_with(dir, agent, mqtt_url, center_key, mqtt, count, &[])
}

/// [`start_scripted_agent`] with `extra` arguments for `xl-scripted-agent` (such as
/// `--event-updates 2`: each alarm opens an event, updated and then ended).
pub fn start_scripted_agent_with(
    dir: &Path,
    agent: &str,
    mqtt_url: &str,
    center_key: &str,
    mqtt: &str,
    count: u32,
    extra: &[&str],
) -> Reaper {
    let count = count.to_string();
    let args = [&["--count", count.as_str(), "--per-second", "20"], extra].concat();
    spawn_scripted_agent(dir, agent, mqtt_url, center_key, mqtt, &args)
}

/// [`start_scripted_agent_with`] raising its alarms at `per_second` instead of 20 a second.
pub fn start_scripted_agent_at(
    dir: &Path,
    agent: &str,
    mqtt_url: &str,
    center_key: &str,
    count: u32,
    per_second: f64,
    extra: &[&str],
) -> Reaper {
    let (count, rate) = (count.to_string(), per_second.to_string());
    let args = [&["--count", count.as_str(), "--per-second", rate.as_str()], extra].concat();
    spawn_scripted_agent(dir, agent, mqtt_url, center_key, "", &args)
}

/// `xl-scripted-agent --exit-when-delivered` with `args`, for [`start_scripted_agent_with`].
fn spawn_scripted_agent(
    dir: &Path,
    agent: &str,
    mqtt_url: &str,
    center_key: &str,
    mqtt: &str,
    args: &[&str],
) -> Reaper {
    let toml = scenario::agent_toml(agent, "rtsp://127.0.0.1:9/unused", mqtt_url, center_key)
        .replace("[mqtt]\n", &format!("[mqtt]\n{mqtt}\n"))
        .replace("data_dir = \"agent-data\"", &format!("data_dir = \"{agent}\""));
    let config = dir.join(format!("{agent}.toml"));
    std::fs::write(&config, toml).unwrap();
    let log = std::fs::File::create(dir.join(format!("{agent}.log"))).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_xl-scripted-agent"))
        .args(["--config", config.to_str().unwrap(), "--exit-when-delivered"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Reaper(child)
}

/// Waits (up to 60 s) until the `xl-scripted-agent` agent `name` has every alarm receipted and exits.
pub async fn wait_delivered(dir: &Path, agent: &mut Reaper, name: &str) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        assert!(t0.elapsed() < Duration::from_secs(60), "{name} delivered within 60 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success());
}

/// A client of the broker at `addr` named `client_id`, once the center says it ingests
/// (before, nobody is subscribed and a broker drops what is published), and what arrives on
/// the topics it subscribes to.
pub async fn connect_when_ingesting(
    addr: &str,
    client_id: &str,
) -> (rumqttc::AsyncClient, tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let addr: SocketAddr = addr.parse().unwrap();
    let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut events) = AsyncClient::new(opts, 100);
    client.subscribe("xl/v1/center/status", QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                let status: xueliang_proto::CenterStatus =
                    xueliang_proto::decode_limited(&p.payload).unwrap();
                if status.online {
                    return;
                }
            }
        }
    })
    .await
    .expect("the center says it ingests");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send(p);
            }
        }
    });
    (client, rx)
}

/// `tests/browser`, checked ready: node, its modules and the browser.
pub fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("XL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules/playwright-core is missing: run scripts/setup.sh (it runs npm ci there)",
        dir.display()
    );
    dir
}
