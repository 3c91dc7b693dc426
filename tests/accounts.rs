//! Accounts and log-in at the county center, over real HTTP: a user disabled with
//! `xl-center user disable` while watching the alarm feed loses the feed within seconds and
//! their next call is 401; a new password or a removal ends the user's sessions; a session left
//! unused ends after the idle timeout; a request from another site's page (a foreign `Origin` or
//! `Referer`, or a form's body) is refused; every answer carries the security headers; and a
//! flood of 10,000 failed log-ins against the real `xl-center serve` (one address, many logins)
//! leaves its memory and its audit log within bounds, every attempt counted, while a genuine
//! user still logs in.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, workspace_binary};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_center::access::{AuditLog, Role, add_user};
use xueliang_center::running::{BrokerChoice, CenterConfig, RunningCenter, start};
use xueliang_testkit::bench::memory_kib;

const PASSWORD: &str = "a-long-test-password";

fn embedded() -> BrokerChoice {
    common::embedded_broker()
}

/// A center in `dir/center` with users duty-1, duty-2 (duty officers) and police-1, its config
/// changed by `tune`.
async fn center(
    dir: &Path,
    tune: impl FnOnce(&mut CenterConfig),
) -> (RunningCenter, CancellationToken) {
    let users = dir.join("center/users.toml");
    for (login, role, unit) in [
        ("duty-1", Role::DutyOfficer, None),
        ("duty-2", Role::DutyOfficer, None),
        ("police-1", Role::Police, Some("pcs-a")),
    ] {
        add_user(&users, login, None, role, unit, PASSWORD).unwrap();
    }
    let mut config = common::center_config(dir, embedded());
    tune(&mut config);
    let shutdown = CancellationToken::new();
    (start(config, shutdown.clone()).await.expect("center starts"), shutdown)
}

/// `xl-center ARGS --data-dir dir/center`, asserting it succeeds.
fn xl_center(dir: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(workspace_binary("xl-center"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("center"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xl-center runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

async fn status(api: &Api, path: &str) -> StatusCode {
    api.get(path).send().await.unwrap().status()
}

/// Waits up to 5 s for `path` to answer `want` (the center reads users.toml again within a
/// second of a change).
async fn until_status(api: &Api, path: &str, want: StatusCode) {
    let t0 = Instant::now();
    while status(api, path).await != want {
        assert!(t0.elapsed() < Duration::from_secs(5), "{path} never answered {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_removed_or_repassworded_users_are_logged_out_and_their_feed_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (center, shutdown) = center(dir.path(), |_| {}).await;
    let http = center.http_addr;

    // duty-1 watches the alarm feed; an admin disables them.
    let duty1 = Api::login(http, "duty-1", PASSWORD).await;
    let mut feed = duty1.get("/api/events").send().await.unwrap();
    assert_eq!(feed.status(), 200);
    assert_eq!(status(&duty1, "/api/stats").await, 200, "a duty officer sees the counters");
    let police = Api::login(http, "police-1", PASSWORD).await;
    let resp = police.get("/api/stats").send().await.unwrap();
    assert_eq!(resp.status(), 403, "a unit's user does not");
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "role police may not see the fleet or the center's counters"
    );

    let disabled_at = Instant::now();
    assert_eq!(
        xl_center(dir.path(), &["user", "disable", "duty-1"], ""),
        "duty-1 disabled: their sessions end\n"
    );
    // The stream ends (keep-alive comments may come first).
    let ended = loop {
        let left = Duration::from_secs(10).saturating_sub(disabled_at.elapsed());
        match tokio::time::timeout(left, feed.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) | Ok(Err(_)) => break disabled_at.elapsed(),
            Err(_) => panic!("the disabled user's event stream still open after 10 s"),
        }
    };
    println!(
        "the disabled user's event stream ended {} ms after `user disable`",
        ended.as_millis()
    );
    let resp = duty1.get("/api/alarms").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("disabled"),
        "says why"
    );
    let refused = reqwest::Client::new()
        .post(format!("http://{http}/api/login"))
        .json(&json!({ "login": "duty-1", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "a disabled user cannot log in");
    xl_center(dir.path(), &["user", "enable", "duty-1"], "");
    tokio::time::sleep(xueliang_center::watched_file::RECHECK + Duration::from_millis(100)).await;
    assert_eq!(status(&duty1, "/api/me").await, 401, "enabling does not bring the session back");
    let duty1 = Api::login(http, "duty-1", PASSWORD).await;
    assert_eq!(status(&duty1, "/api/me").await, 200);

    // duty-2 is logged in twice; their password is changed: both sessions end.
    let (first, second) =
        (Api::login(http, "duty-2", PASSWORD).await, Api::login(http, "duty-2", PASSWORD).await);
    assert_eq!(
        (status(&first, "/api/me").await, status(&second, "/api/me").await),
        (StatusCode::OK, StatusCode::OK)
    );
    xl_center(
        dir.path(),
        &["user", "passwd", "duty-2", "--password-stdin"],
        "a-new-long-password\n",
    );
    until_status(&first, "/api/me", StatusCode::UNAUTHORIZED).await;
    assert_eq!(status(&second, "/api/me").await, 401);
    let third = Api::login(http, "duty-2", "a-new-long-password").await;
    assert_eq!(status(&third, "/api/me").await, 200, "the new password works");
    assert_eq!(status(&duty1, "/api/me").await, 200, "other users' sessions go on");

    // Removed: their session ends; the audit log keeps what they did.
    xl_center(dir.path(), &["user", "remove", "duty-2"], "");
    until_status(&third, "/api/me", StatusCode::UNAUTHORIZED).await;
    let listing = xl_center(dir.path(), &["user", "list"], "");
    assert!(!listing.contains("duty-2") && listing.contains("duty-1"), "{listing}");
    let admin = Api::admin(http).await;
    let audit = admin.json("/api/audit?target=duty-2").await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "login"), "{audit}");

    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_left_unused_ends_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (center, shutdown) = center(dir.path(), |c| c.session_idle = Duration::from_secs(2)).await;
    let duty = Api::login(center.http_addr, "duty-1", PASSWORD).await;
    // Used every half second, it lives on past the idle timeout...
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        assert_eq!(status(&duty, "/api/me").await, 200, "{:?} after log-in", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // ...left alone longer, it ends.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let resp = duty.get("/api/me").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "the session ended or is unknown: log in again"
    );
    shutdown.cancel();
    center.join().await;
}

/// The session cookie a log-in sets.
async fn cookie_login(base: &str, login: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({ "login": login, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_other_sites_are_refused_and_answers_carry_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (center, shutdown) = center(dir.path(), |_| {}).await;
    let base = format!("http://{}", center.http_addr);
    let cookie = cookie_login(&base, "duty-1").await;
    let client = reqwest::Client::new();
    let with_cookie = |req: reqwest::RequestBuilder| req.header("cookie", &cookie);
    let step = format!("{base}/api/alarms/no-such-alarm/acknowledge");

    // The console's own requests pass (here: to an alarm that does not exist).
    let own = with_cookie(client.post(&step))
        .header("origin", &base)
        .json(&json!({ "note": "seen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 404, "{}", own.text().await.unwrap());

    // Another site's page: refused, whatever it sends.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/page"),
    ] {
        let resp = with_cookie(client.post(&step))
            .header(name, value)
            .json(&json!({ "note": "forged" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
        let error = resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("not of this center"), "{error}");
    }
    let logout = with_cookie(client.post(format!("{base}/api/logout")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403, "no log-out from another site");
    let login = client
        .post(format!("{base}/api/login"))
        .header("origin", "https://evil.example")
        .json(&json!({ "login": "duty-1", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403, "no log-in from another site");

    // A form's body (what a page of another site can send without asking): refused.
    for content_type in
        ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
    {
        let resp = with_cookie(client.post(&step))
            .header("content-type", content_type)
            .body(r#"{"note": "forged"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{content_type}");
    }
    assert_eq!(
        with_cookie(client.get(format!("{base}/api/me"))).send().await.unwrap().status(),
        200,
        "still logged in"
    );

    // An API client with its bearer token is not a browser: unaffected.
    let api = Api::login(center.http_addr, "duty-1", PASSWORD).await;
    let resp = api
        .post("/api/alarms/no-such-alarm/acknowledge")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Bounded log-in bodies: too long a login or password is refused before any hashing.
    for (login, password, want) in [
        ("a".repeat(65), PASSWORD.to_owned(), 400),
        ("duty-1".into(), "p".repeat(1025), 400),
        ("duty-1".into(), "p".repeat(20_000), 413),
    ] {
        let resp = client
            .post(format!("{base}/api/login"))
            .json(&json!({ "login": login, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            want,
            "login {} bytes, password {} bytes",
            login.len(),
            password.len()
        );
    }

    // Security headers on the console's page, its scripts, an API answer and an error.
    for path in ["/", "/console/main.js", "/api/me", "/api/no-such-route"] {
        let resp = with_cookie(client.get(format!("{base}{path}"))).send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(!h.contains_key("strict-transport-security"), "{path}: plain HTTP has no HSTS");
    }
    shutdown.cancel();
    center.join().await;
}

/// Failed log-in entries in the audit log, as the admin reads it.
async fn failure_entries(admin: &Api) -> Vec<Value> {
    let page = admin.json("/api/audit?limit=500").await;
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("login_failed"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_log_ins_stays_bounded_and_a_genuine_user_still_logs_in() {
    const ATTEMPTS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    common::add_test_admin(&data);
    add_user(&data.join("users.toml"), "duty-1", None, Role::DutyOfficer, None, PASSWORD).unwrap();
    let (mut child, http) = common::serve_center(
        &data,
        &dir.path().join("center.log"),
        &["--mqtt-listen", "127.0.0.1:0"],
    );
    let pid = child.0.id();
    let base = format!("http://{http}");
    let admin = Api::admin(http).await;
    let audit_before = failure_entries(&admin).await.len();
    let (rss_before, _) = memory_kib(pid);

    // 10,000 wrong passwords from this address, over 1,000 logins, 64 at a time.
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let answers = common::failed_log_ins(http, ATTEMPTS, Duration::ZERO).await;
    let flood = t0.elapsed();
    let (rss_after, peak) = memory_kib(pid);
    let failures = failure_entries(&admin).await;
    println!(
        "{ATTEMPTS} failed log-ins in {:.1} s, answers {answers:?}; center RSS {} MiB before, {} MiB after (peak {} MiB); audit log +{} entries",
        flood.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024,
        failures.len() - audit_before
    );
    assert_eq!(answers.values().sum::<usize>(), ATTEMPTS);
    assert!(answers.keys().all(|s| [401, 429, 503].contains(s)), "{answers:?}");
    assert!(answers[&429] > ATTEMPTS / 2, "most attempts were refused unverified: {answers:?}");
    assert!(
        failures.len() - audit_before <= 2,
        "the audit log grew by a bounded amount: {failures:#?}"
    );
    assert!(
        rss_after < rss_before + 128 * 1024,
        "memory stayed bounded: {rss_before} → {rss_after} KiB"
    );

    // The genuine user, never failing, logs in once this address's back-off has cleared.
    let mut genuine_refused = 0;
    let waited = Instant::now();
    loop {
        let resp = client
            .post(format!("{base}/api/login"))
            .json(&json!({ "login": "duty-1", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => break,
            429 | 503 => {
                genuine_refused += 1;
                let after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(after <= 30, "an address is locked out for at most 30 s, not {after}");
                tokio::time::sleep(Duration::from_secs(after)).await;
            }
            other => panic!("the genuine user's log-in answered {other}"),
        }
        assert!(waited.elapsed() < Duration::from_secs(70), "the genuine user could not log in");
    }
    println!(
        "the genuine user logged in after {:.1} s ({genuine_refused} refusals with Retry-After)",
        waited.elapsed().as_secs_f64()
    );

    // Stopped, the center writes the count of the flood's window: every attempt accounted for.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let stopped = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(stopped.elapsed() < Duration::from_secs(30), "the center stops on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = common::open_store(&data);
    let entries = AuditLog::open(&store).unwrap().list(None, None, 500).unwrap();
    let flood_entries: Vec<_> =
        entries.iter().filter(|e| e.action.starts_with("login_failed")).collect();
    assert!(flood_entries.len() <= 4, "{flood_entries:#?}");
    let first = flood_entries.iter().find(|e| e.action == "login_failed").unwrap();
    assert!(first.target.starts_with("flood-") && first.detail == "from 127.0.0.1", "{first:?}");
    let counted: usize = flood_entries
        .iter()
        .filter(|e| e.action == "login_failed_repeated")
        .map(|e| {
            assert_eq!(e.target, "127.0.0.1");
            let words: Vec<&str> = e.detail.split(' ').collect();
            words[0].parse::<usize>().unwrap() + words[5].parse::<usize>().unwrap()
        })
        .sum();
    let written = flood_entries.iter().filter(|e| e.action == "login_failed").count();
    assert_eq!(
        counted + written,
        ATTEMPTS + genuine_refused,
        "every attempt is counted: {flood_entries:#?}"
    );
}
