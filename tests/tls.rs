//! MQTT over TLS with rustls, with certificates made by the shipped `deploy/tls/make-certs.sh`:
//! against a real Mosquitto that requires client certificates, an agent with its certificate
//! delivers its alarms to the center (which has its own) and one without gets nothing through;
//! and agents reach the center's embedded broker over TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Reaper;
use tokio_util::sync::CancellationToken;
use xueliang::scenario;
use xueliang_center::broker::ServerTls;
use xueliang_center::center::{BrokerChoice, start};
use xueliang_center::ingest::BrokerConnection;
use xueliang_proto::tls::TlsFiles;

/// An `xl-replay` agent raising `count` alarms over `mqtts://`, with `client` certificate lines.
fn replay(dir: &Path, agent: &str, port: u16, center_key: &str, tls: &str, count: u32) -> Reaper {
    let toml = scenario::agent_toml(agent, "rtsp://127.0.0.1:9/unused", &format!("mqtts://127.0.0.1:{port}"), center_key)
        .replace("[mqtt]\n", &format!("[mqtt]\n{tls}\n"))
        .replace("data_dir = \"agent-data\"", &format!("data_dir = \"{agent}\""));
    let config = dir.join(format!("{agent}.toml"));
    std::fs::write(&config, toml).unwrap();
    let log = std::fs::File::create(dir.join(format!("{agent}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_xl-replay"))
        .args(["--config", config.to_str().unwrap(), "--count", &count.to_string(), "--per-second", "20", "--exit-when-delivered"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Reaper(child)
}

/// A CA, a broker certificate for 127.0.0.1 and client certificates, in `dir/certs`.
fn make_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    let made = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tls/make-certs.sh"))
        .arg(&certs)
        .args(["127.0.0.1", "tls-village", "xl-center"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    certs
}

/// Waits until `agent` has every alarm receipted (it then exits).
async fn wait_delivered(dir: &Path, agent: &mut Reaper, name: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_the_center_talk_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let pem = |name: &str| certs.join(name).display().to_string();
    let listener = format!(
        // Stay the user who owns the (private) key files.
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuser root\n",
        pem("ca.pem"),
        pem("server.pem"),
        pem("server.key")
    );
    let (_mosquitto, port) = common::start_mosquitto_with(dir.path(), 0, &listener);

    let center_dir = dir.path().join("center");
    let mut center_key = String::new();
    for agent in ["tls-village", "no-cert-village"] {
        center_key = scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::External(BrokerConnection {
        host: "127.0.0.1".into(),
        port,
        credentials: None,
        tls: Some(TlsFiles { ca: certs.join("ca.pem"), client: Some((certs.join("xl-center.pem"), certs.join("xl-center.key"))) }),
    });
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();

    let ca = format!("tls_ca = \"{}\"", pem("ca.pem"));
    let with_cert = format!("{ca}\ntls_client_cert = \"{}\"\ntls_client_key = \"{}\"", pem("tls-village.pem"), pem("tls-village.key"));
    let mut agent = replay(dir.path(), "tls-village", port, &center_key, &with_cert, 20);
    let _no_cert = replay(dir.path(), "no-cert-village", port, &center_key, &ca, 20);
    wait_delivered(dir.path(), &mut agent, "tls-village").await;
    assert_eq!(center.store.len(), 20, "the agent with a certificate got every alarm through, the other none");
    let refused = std::fs::read_to_string(dir.path().join("no-cert-village.log")).unwrap();
    assert!(refused.contains("unreachable"), "{refused}");
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_the_embedded_broker_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let center_key = scenario::prepare_keys(&dir.path().join("center"), "tls-village", &dir.path().join("tls-village")).unwrap();
    let shutdown = CancellationToken::new();
    let tls = ServerTls { cert: certs.join("server.pem"), key: certs.join("server.key") };
    let broker = BrokerChoice::Embedded { listen: "127.0.0.1:0".parse().unwrap(), tls: Some(tls) };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let port: u16 = center.mqtt_addr.rsplit(':').next().unwrap().parse().unwrap();
    let ca = format!("tls_ca = \"{}\"", certs.join("ca.pem").display());
    let mut agent = replay(dir.path(), "tls-village", port, &center_key, &ca, 20);
    wait_delivered(dir.path(), &mut agent, "tls-village").await;
    assert_eq!(center.store.len(), 20);
    shutdown.cancel();
    center.join().await;
}
