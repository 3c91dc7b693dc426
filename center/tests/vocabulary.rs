//! What the console is told instead of keeping its own copies, from a running center: the
//! user's permissions and views (`GET /api/me`) and the steps each status allows
//! (`GET /api/vocabulary`).

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_center::access::{Role, add_user};
use xueliang_center::running::{BrokerChoice, CenterConfig, start};
use xueliang_center::store::Backend;

const PASSWORD: &str = "a long enough password";

async fn get(base: &str, token: &str, path: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

async fn login(base: &str, login: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({ "login": login, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_is_told_the_permissions_and_the_steps_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (user, role, unit) in [
        ("duty", Role::DutyOfficer, None),
        ("pcs", Role::Police, Some("pcs-a")),
        ("fitter", Role::Installer, None),
    ] {
        add_user(&data.join("users.toml"), user, None, role, unit, PASSWORD).unwrap();
    }
    let any = "127.0.0.1:0".parse().unwrap();
    let broker = BrokerChoice::Embedded { listen: any, tls: None, passwords: false };
    let stop = CancellationToken::new();
    let mut config = CenterConfig::new(data, any, broker);
    // XL_TEST_STORE=postgres: the same test on PostgreSQL.
    config.store = Backend::postgres_or_embedded(xueliang_pgtest::store_asked(&config.data_dir));
    let center = start(config, stop.clone()).await.unwrap();
    let base = format!("http://{}", center.http_addr);

    let duty = login(&base, "duty").await;
    let me = get(&base, &duty, "/api/me").await;
    assert_eq!((me["login"].as_str(), me["role"].as_str()), (Some("duty"), Some("duty_officer")));
    assert_eq!(me["permissions"], json!(["read_alarms", "act_on_alarms", "read_fleet"]));
    assert_eq!(me["views"], json!(["alarms", "fleet"]));
    let police = get(&base, &login(&base, "pcs").await, "/api/me").await;
    assert_eq!(
        (&police["unit"], &police["permissions"], &police["views"]),
        (&json!("pcs-a"), &json!(["read_alarms", "respond"]), &json!(["alarms"]))
    );
    let fitter = get(&base, &login(&base, "fitter").await, "/api/me").await;
    assert_eq!(fitter["views"], json!(["fleet"]), "an installer opens the fleet first and only");

    let v = get(&base, &duty, "/api/vocabulary").await;
    assert_eq!(
        v["statuses"],
        json!(["new", "acknowledged", "dispatched", "resolved", "false_alarm"])
    );
    assert_eq!(v["severities"], json!(["info", "low", "medium", "high", "critical"]));
    // The contract's nine rule kinds, then the center's six supervision events.
    assert_eq!(v["kinds"].as_array().unwrap().len(), 15);
    assert_eq!(v["kinds"][9], "agent_offline");
    assert_eq!(v["center_steps"], json!(["acknowledge", "dispatch", "resolve", "false-alarm"]));
    assert_eq!(v["unit_steps"], json!(["receive", "on-scene", "close"]));
    assert_eq!(
        v["steps_allowed"],
        json!({
            "new": ["acknowledge"],
            "acknowledged": ["dispatch", "resolve", "false-alarm"],
            "dispatched": ["dispatch", "resolve", "false-alarm"],
            "resolved": [],
            "false_alarm": [],
        })
    );
    assert_eq!(
        v["unit_steps_allowed"],
        json!({ "none": ["receive"], "receive": ["on-scene", "close"], "on-scene": ["close"], "close": [] })
    );
    let anonymous = reqwest::get(format!("{base}/api/vocabulary")).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    stop.cancel();
    center.join().await;
}
