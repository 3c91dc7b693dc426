//! Passwords at the embedded broker (`--mqtt-passwords`): an agent logging in with the password
//! registered for it delivers its alarms; one with a wrong password is refused at connect, as is
//! a box with its right password under another's client id (another box's, or the center's,
//! which would throw that client off); `xl-center broker-password` makes the pair of lines an
//! installer needs.

mod common;

use std::process::Command;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

use tokio_util::sync::CancellationToken;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_testkit::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_agents_with_their_registered_password_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    let mut center_key = String::new();
    for agent in ["pw-village", "guessing-village"] {
        center_key = scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    // The installer's step: one command gives the agent's line and the registry's line.
    let out = Command::new(common::workspace_binary("xl-center"))
        .args(["broker-password", "pw-village"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let [agent_line, registry_line] = lines[..] else { panic!("two lines: {text}") };
    assert!(
        agent_line.starts_with("password = \"")
            && registry_line.starts_with("pw-village = \"pbkdf2-sha256$"),
        "{text}"
    );
    let registry = center_dir.join("agent-keys.toml");
    let keys = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, format!("[passwords]\n{registry_line}\n{keys}")).unwrap();

    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        passwords: true,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let url = format!("mqtt://{}", center.mqtt_addr);
    let mut agent =
        common::start_scripted_agent(dir.path(), "pw-village", &url, &center_key, agent_line, 20);
    let _guesser = common::start_scripted_agent(
        dir.path(),
        "guessing-village",
        &url,
        &center_key,
        "password = \"guess\"",
        20,
    );
    // pw-village's own password, under client ids that are not its own: refused, and the center
    // stays connected (every alarm still arrives).
    let password = agent_line.trim_start_matches("password = \"").trim_end_matches('"');
    let addr: std::net::SocketAddr = center.mqtt_addr.parse().unwrap();
    for (login, client_id, expected) in [
        ("pw-village", "xl-center-ingest", false),
        ("pw-village", "xl-agent-guessing-village", false),
        ("pw-village", "xl-agent-pw-village~doctor", false),
        // Its doctor's login, with the same password, under the doctor's client id only.
        ("pw-village~doctor", "xl-agent-pw-village~doctor", true),
        ("pw-village~doctor", "xl-agent-pw-village", false),
    ] {
        let accepted = connects(addr, client_id, login, password).await;
        assert_eq!(accepted, expected, "client id {client_id} as {login}");
    }
    common::wait_delivered(dir.path(), &mut agent, "pw-village").await;
    assert_eq!(
        center.store.len(),
        20,
        "the agent with its password got every alarm through, the guesser none"
    );
    let refused = std::fs::read_to_string(dir.path().join("guessing-village.log")).unwrap();
    // rumqttd closes the connection without a refusal code; the center's log names the user.
    assert!(refused.contains("unreachable"), "{refused}");
    shutdown.cancel();
    center.join().await;
}

/// Whether the broker at `addr` accepts a connection as `client_id` with this login.
async fn connects(addr: std::net::SocketAddr, client_id: &str, user: &str, password: &str) -> bool {
    let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_credentials(user, password);
    let (_client, mut events) = AsyncClient::new(opts, 10);
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    answer.unwrap_or(false)
}
