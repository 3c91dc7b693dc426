//! The county's broker set-up (`deploy/mosquitto/`: a real Mosquitto with its dynamic-security
//! plugin, the center keeping boxes' accounts there) attacked by clients nobody here wrote
//! (`mosquitto_sub`, `mosquitto_pub`) while two boxes enrolled through the API deliver their
//! alarms over TLS: strangers get nothing, a box with its own password reads nothing of another
//! and speaks for nobody, no one takes another's client id, and every alarm is stored.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Api, Reaper};
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::ingest::BrokerConnection;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_proto::v1::agent_status;
use xueliang_proto::{AgentStatus, CenterStatus, Message};

const CENTER_PW: &str = "center-pw";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Starts Mosquitto with the shipped config, the plugin's file made as the README makes it;
/// only the ports and file locations change. Returns it, its plain port (the center's) and its
/// TLS port (the boxes'); the county CA is `dir/certs/ca.pem`.
fn start_mosquitto(dir: &Path) -> (Reaper, u16, u16) {
    let dynsec = dir.join("dynamic-security.json");
    let init = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&dynsec)
        .args(["xl-center", CENTER_PW])
        .output()
        .expect("mosquitto_ctrl (make setup)");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let certs = dir.join("certs");
    let made = Command::new(deploy().join("tls/make-certs.sh"))
        .arg(&certs)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, tls_port) = (free(), free());
    let shipped = std::fs::read_to_string(deploy().join("mosquitto/xueliang.conf")).unwrap();
    let mut conf = String::new();
    for line in shipped.lines() {
        let mut words = line.split_whitespace();
        let line = match (words.next(), words.next()) {
            (Some("listener"), Some("8883")) => format!("listener {tls_port} 127.0.0.1"),
            (Some("listener"), _) => format!("listener {port} 127.0.0.1"),
            (Some("cafile"), _) => format!("cafile {}", certs.join("ca.pem").display()),
            (Some("certfile"), _) => format!("certfile {}", certs.join("server.pem").display()),
            (Some("keyfile"), _) => format!("keyfile {}", certs.join("server.key").display()),
            (Some("plugin_opt_config_file"), _) => {
                format!("plugin_opt_config_file {}", dynsec.display())
            }
            _ => line.to_owned(),
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    // Test-only: keep the persistence file here, and stay the user who owns this directory.
    conf.push_str(&format!("persistence_location {}/\nuser root\n", dir.display()));
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).unwrap())
        .spawn()
        .expect("mosquitto (make setup)");
    let reaper = Reaper(child);
    common::wait_listening(port);
    common::wait_listening(tls_port);
    (reaper, port, tls_port)
}

/// A `mosquitto_sub`/`mosquitto_pub` on the plain port as `user` (none: anonymous) under
/// `client_id` (none: a random one).
fn client(tool: &str, port: u16, user: Option<(&str, &str)>, client_id: Option<&str>) -> Command {
    let mut c = Command::new(tool);
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"]);
    if let Some((u, p)) = user {
        c.args(["-u", u, "-P", p]);
    }
    if let Some(id) = client_id {
        c.args(["-i", id]);
    }
    c
}

/// Publishes `payload` to `topic` (retained if `retain`) as `user`, under `client_id`.
fn publish(port: u16, user: (&str, &str), client_id: &str, topic: &str, retain: bool) -> Output {
    let mut c = client("mosquitto_pub", port, Some(user), Some(client_id));
    c.args(["-t", topic, "-m", "forged"]);
    if retain {
        c.arg("-r");
    }
    c.output().unwrap()
}

/// What `user` receives on `topic` in `secs` seconds, one `topic payload` line each, while
/// `during` runs; and `mosquitto_sub`'s own complaints.
fn watch(
    port: u16,
    user: Option<(&str, &str)>,
    client_id: Option<&str>,
    topic: &str,
    secs: u32,
    during: impl FnOnce(),
) -> (String, String) {
    let sub = client("mosquitto_sub", port, user, client_id)
        .args(["-t", topic, "-v", "-W", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    during();
    let out = sub.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The retained center status as the center's own login reads it.
fn retained_center_status(port: u16) -> CenterStatus {
    let out = client("mosquitto_sub", port, Some(("xl-center", CENTER_PW)), None)
        .args(["-t", "xl/v1/center/status", "-C", "1", "-W", "5", "-F", "%x"])
        .output()
        .unwrap();
    let bytes = hex(String::from_utf8_lossy(&out.stdout).trim());
    CenterStatus::decode(bytes.as_slice()).expect("the retained status is a CenterStatus")
}

/// The bytes `mosquitto_sub -F %x` printed.
fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A new token for box `agent`, redeemed through the API as `xl-agent enroll` does (its key
/// made in `dir/{agent}`): the center's answer.
async fn redeem(api: &Api, dir: &Path, agent: &str) -> reqwest::Response {
    let created = api.enrolment(agent).await;
    let key = Sealer::open(&dir.join(agent)).unwrap().public_key();
    reqwest::Client::new()
        .post(format!("{}/api/enroll", api.base))
        .json(&serde_json::json!({"token": created["token"], "public_key": key}))
        .send()
        .await
        .unwrap()
}

/// Enrols box `agent` ([`redeem`]); returns its broker password.
async fn enrol(api: &Api, dir: &Path, agent: &str, agents_url: &str) -> String {
    let resp = redeem(api, dir, agent).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let enrolled: xueliang_proto::enrolment::Enrolled = resp.json().await.unwrap();
    assert_eq!(enrolled.mqtt_url, agents_url);
    assert_eq!(enrolled.mqtt_username.as_deref(), Some(agent));
    assert!(enrolled.mqtt_persistent_session, "Mosquitto keeps the box's session");
    enrolled.mqtt_password.expect("a broker password")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_box_reads_or_speaks_for_another_and_strangers_get_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_mosquitto, port, tls_port) = start_mosquitto(dir);
    let agents_url = format!("mqtts://127.0.0.1:{tls_port}");
    let broker = BrokerChoice::External(BrokerConnection {
        host: "127.0.0.1".into(),
        port,
        credentials: Some(("xl-center".into(), CENTER_PW.into())),
        tls: None,
    });
    let mut config = common::center_config(dir, broker);
    config.broker_accounts = true;
    config.agent_mqtt_url = Some(agents_url.clone());
    let shutdown = CancellationToken::new();
    let center = start(config.clone(), shutdown.clone()).await.expect("center starts");
    let api = Api::admin(center.http_addr).await;
    let pw_a = enrol(&api, dir, "box-a", &agents_url).await;
    let pw_b = enrol(&api, dir, "box-b", &agents_url).await;
    // A box may not take the name of a login that is not a box's: the center's own would be
    // replaced, and the center thrown off the broker. Refused, and the token still works.
    let resp = redeem(&api, dir, "xl-center").await;
    assert_eq!(resp.status(), 502);
    let said = resp.text().await.unwrap();
    assert!(said.contains("not a box's") && said.contains("still works"), "{said}");
    let enrolments = api.json("/api/enrolments").await;
    let unused = enrolments.as_array().unwrap().iter().find(|e| e["agent_id"] == "xl-center");
    assert!(unused.is_some_and(|e| e["used_ms"].is_null()), "{enrolments}");
    // The attacker: an enrolled box of the county, with its own password (stolen, or a box
    // taken over), not delivering anything itself.
    let pw_c = enrol(&api, dir, "box-c", &agents_url).await;
    let ca = dir.join("certs/ca.pem");
    let box_mqtt = |pw: &str| {
        format!("password = \"{pw}\"\ntls_ca = \"{}\"\npersistent_session = true", ca.display())
    };
    // Box b delivers through the whole attack (at 20 alarms a second); box a its own too.
    let (count_a, count_b) = (20, 700);
    let mut box_a = common::start_scripted_agent(
        dir,
        "box-a",
        &agents_url,
        &center.center_key,
        &box_mqtt(&pw_a),
        count_a,
    );
    let mut box_b = common::start_scripted_agent(
        dir,
        "box-b",
        &agents_url,
        &center.center_key,
        &box_mqtt(&pw_b),
        count_b,
    );
    let pw_c_again = pw_c.clone();
    let c = ("box-c", pw_c);
    let attacks = tokio::task::spawn_blocking(move || {
        // A stranger does not get in, under any client id.
        for id in [None, Some("xl-center-ingest")] {
            let (seen, err) = watch(port, None, id, "xl/v1/#", 2, || {});
            assert_eq!(seen, "", "an anonymous client read {seen}");
            assert!(err.contains("not authorised"), "{err}");
        }
        let c = (c.0, c.1.as_str());
        // Box c reads nothing of anyone else's: not everything, not box b's alarms, receipts
        // or config, nor the dispatches; its own receipts it may read.
        for topic in [
            "xl/v1/#",
            "xl/v1/+/alarm",
            "xl/v1/box-b/alarm",
            "xl/v1/box-b/receipt",
            "xl/v1/box-b/config",
            "xl/v1/dispatch/#",
        ] {
            let (seen, err) = watch(port, Some(c), Some("xl-agent-box-c"), topic, 2, || {});
            assert_eq!(seen, "", "box c read {topic}");
            assert!(err.contains("denied"), "box c subscribed to {topic}: {err}");
        }
        let (_, err) =
            watch(port, Some(c), Some("xl-agent-box-c"), "xl/v1/box-c/receipt", 1, || {});
        assert!(!err.contains("denied"), "box c may hear its own receipts: {err}");
        // Its doctor's login gets in, under its own client id only, and may read nothing.
        let doctor = ("box-c~doctor", c.1);
        let (seen, err) = watch(port, Some(doctor), Some("xl-agent-box-c~doctor"), "#", 2, || {});
        assert!(seen.is_empty() && err.contains("denied"), "the doctor: {seen} {err}");
        // Nobody takes another's client id: the center's, box b's, box c's doctor's.
        for id in ["xl-center-ingest", "xl-agent-box-b", "xl-agent-box-c~doctor"] {
            let out = publish(port, c, id, "xl/v1/box-c/health", false);
            assert!(!out.status.success(), "box c connected as {id}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("not authorised"));
        }
        // What box c publishes for others reaches nobody: a forged center status (retained
        // and not), a dispatch, box b's status, health and alarm. The center's login, which
        // reads everything, sees none of it.
        let forged = [
            ("xl/v1/center/status", true),
            ("xl/v1/center/status", false),
            ("xl/v1/dispatch/pcs-qingshan", false),
            ("xl/v1/box-b/status", true),
            ("xl/v1/box-b/health", false),
            ("xl/v1/box-b/alarm", false),
        ];
        let (seen, _) = watch(port, Some(("xl-center", CENTER_PW)), None, "xl/v1/#", 3, || {
            for (topic, retain) in forged {
                // MQTT 3.1.1 acknowledges a refused publish like any other; the broker drops it.
                assert!(publish(port, c, "xl-agent-box-c", topic, retain).status.success());
            }
        });
        assert!(!seen.contains("forged"), "the forgeries arrived: {seen}");
        let status = retained_center_status(port);
        assert!(status.online && !status.signature.is_empty(), "{status:?}");
        // A wrong password is refused.
        let wrong =
            publish(port, ("box-c", "guess"), "xl-agent-box-c", "xl/v1/box-c/health", false);
        assert!(!wrong.status.success());
    });
    attacks.await.expect("every attack failed");
    // Box b still delivering, the fleet page shows it as it is, not as box c said.
    assert!(box_b.0.try_wait().unwrap().is_none(), "box b delivers longer than the attacks");
    let fleet = api.json("/api/fleet").await;
    let b = fleet["agents"].as_array().unwrap().iter().find(|x| x["agent_id"] == "box-b");
    assert!(b.is_some_and(|b| b["online"] == true), "box b as the fleet page shows it: {b:?}");

    common::wait_delivered(dir, &mut box_a, "box-a").await;
    common::wait_delivered(dir, &mut box_b, "box-b").await;
    assert_eq!(
        center.stats.stored.load(Ordering::Relaxed),
        u64::from(count_a + count_b),
        "every alarm of both boxes stored through the attack"
    );

    // The county removes box c: its logins are gone at once.
    let resp = api.delete("/api/agents/box-c").send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let again =
        publish(port, ("box-c", &pw_c_again), "xl-agent-box-c", "xl/v1/box-c/health", false);
    assert!(!again.status.success(), "a removed box still logs in");
    // It shows offline, now and after a restart (its retained status says so).
    let status = tokio::task::spawn_blocking(move || {
        let out = client("mosquitto_sub", port, Some(("xl-center", CENTER_PW)), None)
            .args(["-t", "xl/v1/box-c/status", "-C", "1", "-W", "5", "-F", "%x"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    });
    let status = AgentStatus::decode(hex(&status.await.unwrap()).as_slice()).unwrap();
    assert_eq!(status.state(), agent_status::State::Offline, "{status:?}");
    let mut shown = serde_json::Value::Null;
    for _ in 0..50 {
        let fleet = api.json("/api/fleet").await;
        let c = fleet["agents"].as_array().unwrap().iter().find(|x| x["agent_id"] == "box-c");
        shown = c.cloned().unwrap_or_default();
        if shown["online"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["online"], false, "box c on the fleet page: {shown}");
    let trail = api.json("/api/audit?target=box-c").await;
    assert!(trail.to_string().contains("remove_agent"), "{trail}");
    shutdown.cancel();
    center.join().await;

    // Started again on the same broker, the center finds its role in place and runs.
    let shutdown = CancellationToken::new();
    let center = start(config, shutdown.clone()).await.expect("the center starts again");
    let online = tokio::task::spawn_blocking(move || {
        (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(500));
            retained_center_status(port).online
        })
    });
    assert!(online.await.unwrap(), "the restarted center says it ingests");
    shutdown.cancel();
    center.join().await;
}
