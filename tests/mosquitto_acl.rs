//! The shipped Mosquitto set-up (`deploy/mosquitto/`) on a real Mosquitto: agents authenticate,
//! an agent cannot speak on another agent's topics nor read its receipts, every agent hears the
//! center's status and none can forge it, a wrong password is refused, and the center's account
//! sees everything.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Reaper;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mosquitto")
}

/// Starts Mosquitto with the shipped config and ACL; only the ports and file locations change.
/// Returns it, its plain port (the center's) and its TLS port (the boxes'), the CA in
/// `dir/certs/ca.pem`.
fn start(dir: &Path) -> (Reaper, u16, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let passwd = dir.join("passwd");
    for (i, (user, pw)) in
        [("xl-center", "center-pw"), ("agent-a", "a-pw"), ("agent-b", "b-pw")].iter().enumerate()
    {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg("-b")
            .arg(&passwd)
            .args([user, pw])
            .status()
            .expect("mosquitto_passwd (make setup)");
        assert!(ok.success());
    }
    let shipped = std::fs::read_to_string(deploy().join("xueliang.conf")).unwrap();
    let mut conf = String::new();
    // The county CA and the broker's certificate, as the README makes them.
    let certs = dir.join("certs");
    let made = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tls/make-certs.sh"))
        .arg(&certs)
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let tls_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for line in shipped.lines() {
        let mut words = line.split_whitespace();
        let line = match (words.next(), words.next()) {
            (Some("listener"), Some("8883")) => format!("listener {tls_port} 127.0.0.1"),
            (Some("listener"), _) => format!("listener {port} 127.0.0.1"),
            (Some("cafile"), _) => format!("cafile {}", certs.join("ca.pem").display()),
            (Some("certfile"), _) => format!("certfile {}", certs.join("server.pem").display()),
            (Some("keyfile"), _) => format!("keyfile {}", certs.join("server.key").display()),
            (Some("password_file"), _) => format!("password_file {}", passwd.display()),
            (Some("acl_file"), _) => {
                format!("acl_file {}", deploy().join("xueliang.acl").display())
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
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (make setup)");
    let reaper = Reaper(child);
    common::wait_listening(port);
    common::wait_listening(tls_port);
    (reaper, port, tls_port)
}

fn client(tool: &str, port: u16, user: &str, pw: &str) -> Command {
    let mut c = Command::new(tool);
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", pw, "-q", "1"]);
    c
}

fn publish(port: u16, user: &str, pw: &str, topic: &str, msg: &str) -> Output {
    client("mosquitto_pub", port, user, pw).args(["-t", topic, "-m", msg]).output().unwrap()
}

/// Subscribes as `user` to `topic` for `secs` seconds, running `during` meanwhile; returns
/// what arrived, one `topic payload` line each.
fn watch(port: u16, user: &str, pw: &str, topic: &str, secs: u32, during: impl FnOnce()) -> String {
    let sub = client("mosquitto_sub", port, user, pw)
        .args(["-t", topic, "-v", "-W", &secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    during();
    String::from_utf8_lossy(&sub.wait_with_output().unwrap().stdout).into_owned()
}

#[test]
fn each_agent_speaks_and_hears_only_on_its_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let (_mosquitto, port, tls_port) = start(dir.path());

    let seen = watch(port, "xl-center", "center-pw", "xl/v1/+/alarm", 3, || {
        let forged = publish(port, "agent-a", "a-pw", "xl/v1/agent-b/alarm", "forged");
        // MQTT 3.1.1 acknowledges a denied publish like any other: the broker drops it.
        assert!(forged.status.success(), "{forged:?}");
        assert!(
            publish(port, "agent-a", "a-pw", "xl/v1/agent-a/alarm", "genuine").status.success()
        );
    });
    assert_eq!(seen.trim(), "xl/v1/agent-a/alarm genuine", "the center saw: {seen:?}");
    // Boxes connect over TLS, with the county CA; the same accounts and rules hold there.
    let ca = dir.path().join("certs/ca.pem");
    let over_tls = |topic: &str, msg: &str| {
        client("mosquitto_pub", tls_port, "agent-a", "a-pw")
            .arg("--cafile")
            .arg(&ca)
            .args(["-t", topic, "-m", msg])
            .output()
            .unwrap()
    };
    let seen = watch(port, "xl-center", "center-pw", "xl/v1/+/event", 3, || {
        assert!(over_tls("xl/v1/agent-b/event", "forged").status.success());
        let sent = over_tls("xl/v1/agent-a/event", "update");
        assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    });
    assert_eq!(seen.trim(), "xl/v1/agent-a/event update", "the center saw: {seen:?}");
    // Without the CA (or in the clear) a box does not get in on the TLS port.
    let plain = client("mosquitto_pub", tls_port, "agent-a", "a-pw")
        .args(["-t", "xl/v1/agent-a/alarm", "-m", "x"])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain MQTT on the TLS port");
    // A big snapshot travels after its alarm, on the agent's own snapshot topic.
    let pictures = watch(port, "xl-center", "center-pw", "xl/v1/+/snapshot", 2, || {
        assert!(
            publish(port, "agent-a", "a-pw", "xl/v1/agent-b/snapshot", "forged").status.success()
        );
        assert!(
            publish(port, "agent-a", "a-pw", "xl/v1/agent-a/snapshot", "picture").status.success()
        );
    });
    assert_eq!(pictures.trim(), "xl/v1/agent-a/snapshot picture");

    let eavesdropped = watch(port, "agent-a", "a-pw", "xl/v1/agent-b/receipt", 2, || {
        assert!(
            publish(port, "xl-center", "center-pw", "xl/v1/agent-b/receipt", "r1").status.success()
        );
    });
    assert_eq!(eavesdropped, "", "agent-a read agent-b's receipts");
    let own = watch(port, "agent-b", "b-pw", "xl/v1/agent-b/receipt", 2, || {
        assert!(
            publish(port, "xl-center", "center-pw", "xl/v1/agent-b/receipt", "r2").status.success()
        );
    });
    assert_eq!(own.trim(), "xl/v1/agent-b/receipt r2");

    // Every agent hears whether the center ingests, and none can say it for the center.
    let status = watch(port, "agent-a", "a-pw", "xl/v1/center/status", 2, || {
        assert!(publish(port, "agent-b", "b-pw", "xl/v1/center/status", "forged").status.success());
        assert!(
            publish(port, "xl-center", "center-pw", "xl/v1/center/status", "online")
                .status
                .success()
        );
    });
    assert_eq!(status.trim(), "xl/v1/center/status online");

    let wrong = publish(port, "agent-a", "not-the-password", "xl/v1/agent-a/alarm", "x");
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr).to_lowercase();
    assert!(err.contains("not authori"), "{err}");
}
