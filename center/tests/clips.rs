//! An event's video clip served by a running center: whole, by byte range (206) and refused
//! beyond its end (416), as a download; to the roles that see pictures, a police station only
//! for the alarms dispatched to it; each user's viewing audited once however many ranges it
//! takes.

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, RANGE,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_center::access::{AuditLog, Role, add_user};
use xueliang_center::domain::{Action, AlarmRecord, Request, apply};
use xueliang_center::running::{BrokerChoice, CenterConfig, start};
use xueliang_center::store::{Backend, Clips, Put};
use xueliang_proto::signing::sha256;
use xueliang_proto::{Alarm, ClipChunk, Message};

const PASSWORD: &str = "a long enough password";

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

/// `GET {base}{path}` as `token` with `range`: the status, the headers and the body.
async fn get(
    base: &str,
    token: &str,
    path: &str,
    range: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token);
    if let Some(range) = range {
        request = request.header(RANGE, range);
    }
    let resp = request.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// Stores an alarm of agent `a` and dispatches it to `unit`.
fn dispatched_event(store: &xueliang_center::store::Store, id: &str, unit: &str) {
    // Now: the center's retention deletes older alarms.
    let alarm = Alarm {
        id: id.into(),
        agent_id: "a".into(),
        camera_id: "c".into(),
        event_time_ms: xueliang_proto::endpoint::now_ms(),
        ..Default::default()
    };
    store.insert(&AlarmRecord::from_alarm(&alarm, 1), b"").unwrap();
    let units = [unit.to_owned()];
    for action in [Action::Acknowledge, Action::Dispatch] {
        store
            .update(id, |r| {
                apply(
                    r,
                    &Request { action, by: "duty", at_ms: 2, note: "", units: &units, late: None },
                )
            })
            .unwrap();
    }
}

/// Puts clip `clip_id` of event `event` (agent `a`) in chunks of 1000 bytes, as ingest does.
fn put_clip(clips: &Clips, clip_id: &str, event: &str, bytes: &[u8]) {
    let mut last = None;
    for (i, data) in bytes.chunks(1000).enumerate() {
        let chunk = ClipChunk {
            clip_id: clip_id.into(),
            agent_id: "a".into(),
            camera_id: "c".into(),
            event_id: event.into(),
            start_time_ms: 1000,
            duration_ms: 21_000,
            size: bytes.len() as u64,
            sha256: sha256(bytes).into(),
            width: 1920,
            height: 1080,
            stream: "record".into(),
            offset: i as u64 * 1000,
            data: data.to_vec().into(),
            ..Default::default()
        };
        let signed = ClipChunk { offset: 0, data: Default::default(), ..chunk.clone() };
        let now = xueliang_proto::endpoint::now_ms();
        last = Some(clips.put("a", &chunk, &signed.encode_to_vec(), now).unwrap());
    }
    assert!(matches!(last, Some(Put::Completed(_))), "{last:?}");
}

#[tokio::test]
async fn a_clip_is_served_by_range_to_those_who_see_its_event_and_each_viewing_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (user, role, unit) in [
        ("duty", Role::DutyOfficer, None),
        ("pcs-a", Role::Police, Some("pcs-a")),
        ("pcs-b", Role::Police, Some("pcs-b")),
        ("fitter", Role::Installer, None),
    ] {
        add_user(&data.join("users.toml"), user, None, role, unit, PASSWORD).unwrap();
    }
    let any = "127.0.0.1:0".parse().unwrap();
    let broker = BrokerChoice::Embedded { listen: any, tls: None, passwords: false };
    let stop = CancellationToken::new();
    let mut config = CenterConfig::new(data.clone(), any, broker);
    // XL_TEST_STORE=postgres: the same test on PostgreSQL.
    config.store = Backend::postgres_or_embedded(xueliang_pgtest::store_asked(&data));
    let clips_dir = config.clip_dir.clone();
    let center = start(config, stop.clone()).await.unwrap();
    let base = format!("http://{}", center.http_addr);

    // Two events, each dispatched to one station, each with a clip.
    let clips = Clips::open(&center.store, &clips_dir, 1 << 20).unwrap();
    let video: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    dispatched_event(&center.store, "e1", "pcs-a");
    dispatched_event(&center.store, "e2", "pcs-b");
    put_clip(&clips, "k1", "e1", &video);
    put_clip(&clips, "k2", "e2", b"another clip");
    center.store.flush().await.unwrap();

    let duty = login(&base, "duty").await;
    let (status, _, body) = get(&base, &duty, "/api/alarms/e1", None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let detail: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(detail["clips"][0]["clip_id"], "k1");
    assert_eq!(detail["clips"][0]["size"], 3000);
    assert_eq!(detail["clips"][0]["sha256"], xueliang_proto::signing::hex(&sha256(&video)));
    assert_eq!(
        (detail["clips"][0]["width"].as_u64(), detail["clips_expired"].as_bool()),
        (Some(1920), Some(false))
    );

    // Whole, then as a video element asks: from the start, a range further in, the end.
    let (status, headers, body) = get(&base, &duty, "/api/clips/k1", None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, video.as_slice()));
    assert_eq!(headers[CONTENT_TYPE], "video/mp4");
    assert_eq!(headers[ACCEPT_RANGES], "bytes");
    assert!(headers.get(CONTENT_DISPOSITION).is_none(), "played, not saved");
    for (range, expected, content_range) in [
        ("bytes=0-", 0..3000, "bytes 0-2999/3000"),
        ("bytes=1000-1999", 1000..2000, "bytes 1000-1999/3000"),
        ("bytes=2990-5000", 2990..3000, "bytes 2990-2999/3000"),
        ("bytes=-10", 2990..3000, "bytes 2990-2999/3000"),
    ] {
        let (status, headers, body) = get(&base, &duty, "/api/clips/k1", Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body, &video[expected], "{range}");
        assert_eq!(headers[CONTENT_RANGE], content_range, "{range}");
    }
    for range in ["bytes=3000-", "bytes=10-5", "bytes=x"] {
        let (status, headers, body) = get(&base, &duty, "/api/clips/k1", Some(range)).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(headers[CONTENT_RANGE], "bytes */3000", "{range}");
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            error["error"],
            "clip k1 has 3000 bytes: ask for one range within them (bytes=0-1023)"
        );
    }
    let (status, headers, body) = get(&base, &duty, "/api/clips/k1?download=1", None).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 3000));
    assert_eq!(headers[CONTENT_DISPOSITION], "attachment; filename=\"k1.mp4\"");
    assert_eq!(get(&base, &duty, "/api/clips/k1?download=yes", None).await.0, 400);
    assert_eq!(get(&base, &duty, "/api/clips/nope", None).await.0, 404);

    // A station sees the clips of what was dispatched to it, no other; an installer none.
    let pcs_a = login(&base, "pcs-a").await;
    let (status, _, body) = get(&base, &pcs_a, "/api/clips/k1", Some("bytes=0-99")).await;
    assert_eq!((status, body.as_slice()), (StatusCode::PARTIAL_CONTENT, &video[..100]));
    for (user, clip, error) in [
        ("pcs-a", "k2", "alarm e2 was not dispatched to your unit"),
        ("pcs-b", "k1", "alarm e1 was not dispatched to your unit"),
        ("fitter", "k1", "role installer may not read alarms or their pictures"),
    ] {
        let token = login(&base, user).await;
        let (status, _, body) = get(&base, &token, &format!("/api/clips/{clip}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user} {clip}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"], error);
    }
    assert_eq!(get(&base, "no-session", "/api/clips/k1", None).await.0, 401);
    let pcs_b = login(&base, "pcs-b").await;
    assert_eq!(get(&base, &pcs_b, "/api/clips/k2", None).await.0, 200);

    // Each user's viewing of a clip is one entry, however many requests it took.
    let audit = AuditLog::open(&center.store).unwrap();
    let views: Vec<(String, String)> = audit
        .list(Some("e1"), None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "view_clip")
        .map(|e| (e.user, e.detail))
        .collect();
    assert_eq!(views, [("pcs-a".into(), "k1".into()), ("duty".into(), "k1".into())]);
    // A download is its own entry, even right after a view.
    let downloads = audit.list(Some("e1"), None, 100).unwrap();
    let downloads: Vec<&str> =
        downloads.iter().filter(|e| e.action == "download_clip").map(|e| e.user.as_str()).collect();
    assert_eq!(downloads, ["duty"]);

    stop.cancel();
    center.join().await;
}
