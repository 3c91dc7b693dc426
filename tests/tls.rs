//! MQTT over TLS with rustls, with certificates made by the shipped `deploy/tls/make-certs.sh`:
//! against a real Mosquitto that requires client certificates, an agent with its certificate
//! delivers its alarms to the center (which has its own) and one without gets nothing through;
//! and agents reach the center's embedded broker over TLS.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_util::sync::CancellationToken;
use xueliang_center::ingest::{BrokerConnection, ServerTls};
use xueliang_center::running::{BrokerChoice, start};
use xueliang_service::tls::TlsFiles;
use xueliang_testkit::scenario;

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
        tls: Some(TlsFiles {
            ca: certs.join("ca.pem"),
            client: Some((certs.join("xl-center.pem"), certs.join("xl-center.key"))),
        }),
    });
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();

    let ca = format!("tls_ca = \"{}\"", pem("ca.pem"));
    let with_cert = format!(
        "{ca}\ntls_client_cert = \"{}\"\ntls_client_key = \"{}\"",
        pem("tls-village.pem"),
        pem("tls-village.key")
    );
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut agent =
        common::start_scripted_agent(dir.path(), "tls-village", &url, &center_key, &with_cert, 20);
    let _no_cert =
        common::start_scripted_agent(dir.path(), "no-cert-village", &url, &center_key, &ca, 20);
    common::wait_delivered(dir.path(), &mut agent, "tls-village").await;
    assert_eq!(
        center.store.len(),
        20,
        "the agent with a certificate got every alarm through, the other none"
    );
    let refused = std::fs::read_to_string(dir.path().join("no-cert-village.log")).unwrap();
    assert!(refused.contains("unreachable"), "{refused}");
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_the_embedded_broker_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let center_key = scenario::prepare_keys(
        &dir.path().join("center"),
        "tls-village",
        &dir.path().join("tls-village"),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let tls = ServerTls { cert: certs.join("server.pem"), key: certs.join("server.key") };
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
        passwords: false,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let ca = format!("tls_ca = \"{}\"", certs.join("ca.pem").display());
    let url = format!("mqtts://{}", center.mqtt_addr);
    let mut agent =
        common::start_scripted_agent(dir.path(), "tls-village", &url, &center_key, &ca, 20);
    common::wait_delivered(dir.path(), &mut agent, "tls-village").await;
    assert_eq!(center.store.len(), 20);
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_over_https_and_plain_http_or_mqtt_beyond_loopback_must_be_asked_for()
{
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let embedded = || common::embedded_broker();
    // Plain HTTP on every interface, without saying so: refused, with what to do.
    let mut config = common::center_config(dir.path(), embedded());
    config.http_listen = "0.0.0.0:0".parse().unwrap();
    let Err(refused) = start(config, CancellationToken::new()).await else {
        panic!("plain HTTP on 0.0.0.0 started without --allow-plain-http")
    };
    assert!(refused.to_string().contains("--allow-plain-http"), "{refused}");
    // Plain MQTT beyond loopback, from the embedded broker or to an external one: the same.
    let external = BrokerChoice::External(BrokerConnection {
        host: "192.0.2.7".into(),
        port: 1883,
        credentials: None,
        tls: None,
    });
    let on_every_interface =
        BrokerChoice::Embedded { listen: "0.0.0.0:0".parse().unwrap(), tls: None, passwords: true };
    for broker in [external, on_every_interface] {
        let config = common::center_config(dir.path(), broker);
        let Err(refused) = start(config, CancellationToken::new()).await else {
            panic!("plain MQTT beyond loopback started without --allow-plain-mqtt")
        };
        assert!(refused.to_string().contains("--allow-plain-mqtt"), "{refused}");
    }

    // Over HTTPS, with the county CA: log in (the session cookie is Secure), read the alarms.
    let shutdown = CancellationToken::new();
    let mut config = common::center_config(dir.path(), embedded());
    config.http_tls =
        Some(ServerTls { cert: certs.join("server.pem"), key: certs.join("server.key") });
    let center = start(config, shutdown.clone()).await.unwrap();
    let base = format!("https://127.0.0.1:{}", center.http_addr.port());
    let (login, password) = common::TEST_ADMIN;
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(certs.join("ca.pem"))
            .args(args)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let body = format!(r#"{{"login":"{login}","password":"{password}"}}"#);
    let (ok, answer) = curl(&[
        "-i",
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &format!("{base}/api/login"),
    ]);
    assert!(ok, "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a session cookie: {answer}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    let token = answer.split("\"token\":\"").nth(1).and_then(|t| t.split('"').next()).unwrap();
    let (ok, alarms) =
        curl(&["-H", &format!("authorization: Bearer {token}"), &format!("{base}/api/alarms")]);
    assert!(ok && alarms.contains("\"alarms\""), "{alarms}");
    // In the clear on the HTTPS port: no answer.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{}/healthz", center.http_addr.port()),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"), "plain HTTP got an answer");

    // A box enrols over HTTPS with the county CA, as the command the console shows says.
    let (ok, created) = curl(&[
        "-H",
        &format!("authorization: Bearer {token}"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"agent_id":"https-village"}"#,
        &format!("{base}/api/enrolments"),
    ]);
    assert!(ok, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let command = created["command"].as_str().unwrap();
    assert!(command.contains(" --center-ca /etc/xueliang/ca.pem "), "{command}");
    let ca = certs.join("ca.pem").display().to_string();
    let config = dir.path().join("https-village.toml").display().to_string();
    let enrol = |with_ca: bool| {
        let args = command.split_whitespace().skip(1).map(|a| match a {
            "/etc/xueliang/ca.pem" => ca.as_str(),
            a => a,
        });
        let args: Vec<&str> = if with_ca {
            args.collect()
        } else {
            // As a box would without the county CA: its system's roots only.
            let all: Vec<&str> = args.collect();
            let at = all.iter().position(|a| *a == "--center-ca").unwrap();
            all[..at].iter().chain(&all[at + 2..]).copied().collect()
        };
        Command::new(common::workspace_binary("xl-agent"))
            .args(args)
            .args([
                "--config",
                &config,
                "--data-dir",
                &dir.path().join("box").display().to_string(),
            ])
            .output()
            .unwrap()
    };
    let refused = enrol(false);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("--center-ca"), "{said}");
    assert!(!Path::new(&config).exists(), "nothing written");
    let enrolled = enrol(true);
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains("agent_id = \"https-village\""), "{written}");
    shutdown.cancel();
    center.join().await;
}
