//! The web console in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/console.mjs`) against a center started here, fed signed alarms over its real
//! MQTT broker. A duty officer logs in (after a wrong password), sees a new alarm arrive live,
//! opens it by keyboard and by mouse, acknowledges and dispatches it; a police station's user on
//! a phone-sized screen receives it, goes on scene and closes it with feedback, which the duty
//! officer's open page shows without a reload. An event opens (one row, 持续中), its agent's
//! updates change that same row and the open detail in place (peak count, duration, a better
//! picture; no second row, no second tone, the officer's note and choices kept), its end shows
//! 已结束 with its duration, and the state filter 持续中/已结束 shows only such events, also as
//! they end live. Every control is reachable with Tab, every picture has a text alternative,
//! and the language toggles. Screenshots are left in `target/console-screenshots/`.
//!
//! Before the browser starts, `xl-scripted-agent` (agent `village-d`) delivers one event, its
//! update and its end through the agent's real outbox and publisher, receipted by the center:
//! the browser finds it already ended.
//!
//! Video clips: a real H.264 fragmented MP4 (GStreamer's test picture, 4 s), sealed in 16 KiB
//! signed chunks, arrives for the alarm the duty officer has open and for the earlier one. Its
//! player appears in the open detail without a reload and plays to its very end (a real,
//! finite duration, the one the agent signed), its download link shows the SHA-256 and brings
//! exactly the signed bytes; the station's card of the dispatched alarm has its player too and
//! plays it, and the station has no player, nor the clip, of the alarm not dispatched to it.
//!
//! The script asks for messages on its stdout: `need-alarm ID` an alarm, `need-event ID PEOPLE`
//! an alarm opening an event with PEOPLE people, `need-update ID SEQ PEAK DURATION_MS
//! ongoing|ended [picture] [reminder]` an update of event ID (with a better, 400 px wide
//! picture; a reminder that it still goes on). This side seals and publishes each as agent
//! `village-a` and answers nothing, so the browser can only learn of it live. `need-clip ID`
//! asks for a clip of stored alarm ID, which this side seals and publishes in chunks as the
//! agent whose alarm it is. The script ends with `done`; a `fail: ...` line or a non-zero exit
//! fails this test with the script's stderr. Needs `scripts/setup.sh` (Debian's `chromium`,
//! `npm ci` in `tests/browser`; GStreamer's x264enc).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::access::{Role, add_user};
use xueliang_center::domain::EventState;
use xueliang_center::running::start;
use xueliang_proto::topics::Topics;
use xueliang_proto::{
    Alarm, ClipChunk, Detection, EventUpdate, RuleKind, SCHEMA_VERSION, Severity,
};
use xueliang_testkit::scenario;

const DUTY_PASSWORD: &str = "duty-officer-password";
const POLICE_PASSWORD: &str = "police-a-password";
/// Stored before the browser starts, routed to nobody: the duty officer sees it, station A not.
const EARLIER_ALARM: &str = "village-b-000";
/// The scripted agent whose event has ended before the browser starts, and that event's id.
const SCRIPTED_AGENT: &str = "village-d";
const ENDED_EVENT: &str = "village-d-cam-0-00000";
/// The whole test, browser included.
const DEADLINE: Duration = Duration::from_secs(90);
/// The clips: this wide and high, this long at 10 frames a second, sent in chunks of this size.
const CLIP_SIZE: (u32, u32) = (320, 240);
const CLIP_MS: u64 = 4000;
const CLIP_CHUNK_BYTES: usize = 16 * 1024;

const ROUTING: &str = r#"
[[unit]]
id = "pcs-a"
name = "A镇派出所"
type = "police_station"

[[unit]]
id = "patrol-a"
name = "A村网格员"
type = "village_patrol"

[[group]]
id = "area-a"
name = "A村水库"
cameras = ["village-a/*"]

[[route]]
id = "a"
groups = ["area-a"]
units = ["pcs-a", "patrol-a"]
"#;

/// A real JPEG a browser renders: grey, a red rectangle where the "person" is. The earlier
/// alarm's is half the size, so the detail pane's picture tells which alarm it shows.
fn snapshot(width: u32, height: u32) -> Vec<u8> {
    let (x0, y0, x1, y1) = (width * 2 / 5, height / 4, width * 3 / 5, height * 3 / 4);
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let inside = (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
        let border = inside && (x - x0 < 3 || x1 - x < 3 || y - y0 < 3 || y1 - y < 3);
        if border { image::Rgb([220, 30, 30]) } else { image::Rgb([128, 128, 128]) }
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .expect("JPEG encodes");
    jpeg
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `n` people, side by side.
fn people(n: u32) -> Vec<Detection> {
    (0..n)
        .map(|i| Detection {
            class_name: "person".into(),
            score: 0.9,
            r#box: Some(xueliang_proto::Box {
                x1: 0.1 + 0.08 * i as f32,
                y1: 0.3,
                x2: 0.15 + 0.08 * i as f32,
                y2: 0.7,
            }),
            ..Default::default()
        })
        .collect()
}

/// Seals alarm `id` as `agent` (camera `pond`, one person; with `event`, opening an event with
/// that many people) and publishes it on the agent's alarm topic.
async fn publish_alarm(
    mqtt: &rumqttc::AsyncClient,
    sealer: &Sealer,
    agent: &str,
    id: &str,
    (w, h): (u32, u32),
    event: Option<u32>,
) {
    let alarm = Alarm {
        id: id.into(),
        agent_id: agent.into(),
        camera_id: "pond".into(),
        rule_id: "pond-intrusion".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: now_ms(),
        zone_id: "reservoir".into(),
        detections: people(event.unwrap_or(1)),
        snapshot_jpeg: snapshot(w, h).into(),
        frame_width: w,
        frame_height: h,
        opens_event: event.is_some(),
        ..Default::default()
    };
    let sealed = sealer.seal(alarm, usize::MAX).expect("alarm sealed");
    mqtt.publish(format!("xl/v1/{agent}/alarm"), QoS::AtLeastOnce, false, sealed.message)
        .await
        .expect("alarm published");
}

/// Seals and publishes, as `village-a`, the update the script asked for with
/// `need-update EVENT SEQ PEAK DURATION_MS ongoing|ended [picture] [reminder]` (`args`: after
/// `need-update`).
async fn publish_update(mqtt: &rumqttc::AsyncClient, sealer: &Sealer, args: &str) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let [event, seq, peak, duration, state, rest @ ..] = words.as_slice() else {
        panic!("the script asked for a malformed update: need-update {args}");
    };
    let (seq, peak): (u32, u32) = (seq.parse().unwrap(), peak.parse().unwrap());
    let ended = match *state {
        "ended" => true,
        "ongoing" => false,
        other => panic!("need-update: {other:?} is neither ongoing nor ended"),
    };
    let picture = rest.contains(&"picture");
    let reminder = rest.contains(&"reminder");
    let now = now_ms();
    let update = EventUpdate {
        schema_version: SCHEMA_VERSION as i32,
        id: format!("{event}-u{seq}"),
        agent_id: "village-a".into(),
        event_id: (*event).into(),
        seq,
        time_ms: now,
        ended,
        end_time_ms: if ended { now } else { 0 },
        duration_ms: duration.parse().unwrap(),
        peak_count: peak,
        detections: people(peak),
        snapshot_jpeg: if picture { snapshot(400, 300).into() } else { Default::default() },
        frame_width: if picture { 400 } else { 0 },
        frame_height: if picture { 300 } else { 0 },
        reminder,
        ..Default::default()
    };
    let sealed = sealer.seal_update(update).expect("update sealed");
    mqtt.publish("xl/v1/village-a/event", QoS::AtLeastOnce, false, sealed.message)
        .await
        .expect("update published");
}

/// A UUIDv7 (time-ordered, as agents name their clips), made here: the test kit has no uuid.
fn uuid_v7() -> String {
    let ms = now_ms() as u64 & 0xffff_ffff_ffff;
    let rand = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        fastrand::u16(..0x1000),
        0x8000 | (rand >> 48) as u16 & 0x3fff,
        rand & 0xffff_ffff_ffff
    )
}

/// Seals `mp4` as `agent`'s clip of event (alarm) `event_id`, as its agent does, and publishes
/// every chunk at QoS 1 on the agent's clip topic; how many chunks it took.
async fn publish_clip(
    mqtt: &rumqttc::AsyncClient,
    sealer: &Sealer,
    agent: &str,
    event_id: &str,
    mp4: &[u8],
) -> usize {
    let description = ClipChunk {
        schema_version: SCHEMA_VERSION as i32,
        clip_id: uuid_v7(),
        agent_id: agent.into(),
        camera_id: "pond".into(),
        event_id: event_id.into(),
        start_time_ms: now_ms() - CLIP_MS as i64,
        duration_ms: CLIP_MS,
        width: CLIP_SIZE.0,
        height: CLIP_SIZE.1,
        stream: "record".into(),
        masked: false,
        ..Default::default()
    };
    let chunks = sealer.seal_clip(description, mp4, CLIP_CHUNK_BYTES).expect("clip sealed");
    let topic = Topics::default().clip(agent);
    for (_, payload) in &chunks {
        mqtt.publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .expect("clip chunk published");
    }
    chunks.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duty_officer_and_a_police_station_work_an_alarm_in_a_real_browser() {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let browser = common::browser_dir();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for old in std::fs::read_dir(&shots).unwrap().flatten() {
        let _ = std::fs::remove_file(old.path());
    }

    // The center: one police station and one village patrol for village A's cameras.
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    let mut center_key = String::new();
    for agent in ["village-a", "village-b", SCRIPTED_AGENT] {
        center_key = scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    std::fs::write(center_dir.join("routing.toml"), ROUTING).unwrap();
    let users = center_dir.join("users.toml");
    add_user(&users, "duty", Some("值班员"), Role::DutyOfficer, None, DUTY_PASSWORD).unwrap();
    add_user(&users, "police-a", Some("A镇民警"), Role::Police, Some("pcs-a"), POLICE_PASSWORD)
        .unwrap();
    // A GB/T 28181 platform above that nobody plays: the fleet page shows it unreachable.
    let free = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gb28181 = center_dir.join("gb28181.toml");
    std::fs::write(
        &gb28181,
        format!(
            "[center]\nid = \"34020000002000000001\"\ndomain = \"3402000000\"\nname = \"县中心\"\nlisten = \"127.0.0.1:{}\"\n\n\
             [[platform]]\nname = \"市雪亮平台\"\nid = \"34020000002000000002\"\ndomain = \"3402000000\"\n\
             address = \"127.0.0.1:{}\"\ntransport = \"udp\"\npassword = \"x\"\n",
            free(),
            free()
        ),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let mut config = common::center_config(dir.path(), broker);
    config.gb28181 = Some(gb28181);
    let center = start(config, shutdown.clone()).await.expect("center starts");
    let (mqtt, _incoming) =
        common::connect_when_ingesting(&center.mqtt_addr, "console-test-agents").await;
    let sealer_a = Sealer::open(&dir.path().join("village-a")).unwrap();
    let sealer_b = Sealer::open(&dir.path().join("village-b")).unwrap();
    // The clip the script asks for, made meanwhile.
    let clip_path = dir.path().join("clip.mp4");
    let making_clip =
        tokio::task::spawn_blocking(move || scenario::h264_clip(&clip_path, CLIP_SIZE, CLIP_MS));

    // One alarm already there when the duty officer logs in.
    publish_alarm(&mqtt, &sealer_b, "village-b", EARLIER_ALARM, (160, 120), None).await;
    let t0 = Instant::now();
    while center.store.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{EARLIER_ALARM} stored within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And one event, opened, updated and ended by a real agent's delivery (outbox, publisher,
    // receipts naming its updates: it exits only once nothing waits in its outbox).
    let mut scripted = common::start_scripted_agent_with(
        dir.path(),
        SCRIPTED_AGENT,
        &format!("mqtt://{}", center.mqtt_addr),
        &center_key,
        "",
        1,
        &["--snapshot-bytes", "2000", "--event-updates", "2", "--update-interval-ms", "500"],
    );
    common::wait_delivered(dir.path(), &mut scripted, SCRIPTED_AGENT).await;
    let ended = center.store.get(ENDED_EVENT).unwrap().expect("the scripted agent's event stored");
    assert_eq!(
        (ended.state, ended.update_seq, ended.peak_count, ended.duration_ms, ended.snapshot_bytes),
        (EventState::Ended, 2, 3, 1000, 2000),
        "the scripted agent's event after its update and end: {ended:?}"
    );
    assert!(ended.ended_ms.is_some(), "an ended event has its end time: {ended:?}");
    let mp4 = making_clip.await.unwrap().expect("the clip is made");
    assert!(mp4.len() > 2 * CLIP_CHUNK_BYTES, "a clip of several chunks: {} bytes", mp4.len());

    let mut child = tokio::process::Command::new("node")
        .arg(browser.join("console.mjs"))
        .current_dir(&browser)
        .env("XL_URL", format!("http://{}", center.http_addr))
        .env("XL_SHOTS", &shots)
        .env("XL_DUTY_USER", "duty")
        .env("XL_DUTY_PASSWORD", DUTY_PASSWORD)
        .env("XL_POLICE_USER", "police-a")
        .env("XL_POLICE_PASSWORD", POLICE_PASSWORD)
        .env("XL_ADMIN_USER", common::TEST_ADMIN.0)
        .env("XL_ADMIN_PASSWORD", common::TEST_ADMIN.1)
        .env("XL_EARLIER_ALARM", EARLIER_ALARM)
        .env("XL_ENDED_EVENT", ENDED_EVENT)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (Node.js ≥ 18 on PATH; scripts/setup.sh)");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let err_sink = stderr.clone();
    let err_task = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            err_sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Reads the script's protocol lines until `done`, or returns why the run failed.
    let outcome: Result<Vec<String>, String> = async {
        let mut shots_taken = Vec::new();
        loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Err(_) => {
                    return Err(format!(
                        "the browser test did not finish within {} s",
                        DEADLINE.as_secs()
                    ));
                }
                Ok(Err(e)) => return Err(format!("reading the script's output: {e}")),
                Ok(Ok(None)) => return Err("the script ended without saying done".into()),
                Ok(Ok(Some(line))) => line,
            };
            if let Some(id) = line.strip_prefix("need-alarm ") {
                let t = Instant::now();
                publish_alarm(&mqtt, &sealer_a, "village-a", id.trim(), (320, 240), None).await;
                eprintln!(
                    "console: published {id} ({} ms after the request was read)",
                    t.elapsed().as_millis()
                );
            } else if let Some(args) = line.strip_prefix("need-event ") {
                let (id, n) = args.trim().split_once(' ').expect("need-event ID PEOPLE");
                let n = n.parse().expect("need-event: PEOPLE is a number");
                publish_alarm(&mqtt, &sealer_a, "village-a", id, (320, 240), Some(n)).await;
                eprintln!("console: published event {id} with {n} people");
            } else if let Some(args) = line.strip_prefix("need-update ") {
                publish_update(&mqtt, &sealer_a, args).await;
                eprintln!("console: published update {}", args.trim());
            } else if let Some(id) = line.strip_prefix("need-clip ") {
                let id = id.trim();
                let agent = match center.store.get(id) {
                    Ok(Some(alarm)) => alarm.agent_id,
                    other => {
                        return Err(format!("need-clip {id}: no such alarm stored ({other:?})"));
                    }
                };
                let sealer = match agent.as_str() {
                    "village-a" => &sealer_a,
                    "village-b" => &sealer_b,
                    _ => return Err(format!("need-clip {id}: this test has no key of {agent}")),
                };
                let n = publish_clip(&mqtt, sealer, &agent, id, &mp4).await;
                eprintln!("console: published a clip of {id} ({} bytes, {n} chunks)", mp4.len());
            } else if let Some(path) = line.strip_prefix("shot ") {
                shots_taken.push(path.trim().to_owned());
            } else if let Some(what) = line.strip_prefix("fail: ") {
                return Err(what.to_owned());
            } else if line == "done" {
                return Ok(shots_taken);
            } else {
                eprintln!("console: {line}");
            }
        }
    }
    .await;

    // After `done` or `fail:` the script closes the browser and exits by itself.
    let status = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(status) => Some(status),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), err_task).await;
    let stderr = stderr.lock().unwrap().clone();
    // The token the administrator created in the browser is in the center, unused.
    let enrolments = common::Api::admin(center.http_addr).await.json("/api/enrolments").await;
    let made_in_browser = enrolments.as_array().is_some_and(|all| {
        all.iter().any(|e| e["agent_id"] == "village-c" && e["used_ms"].is_null())
    });
    let stderr_tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    shutdown.cancel();
    center.join().await;

    let shots_taken = match outcome {
        Err(why) => panic!(
            "console in the browser: {why}\n--- script stderr ---\n{stderr_tail}\n--- screenshots in {} ---",
            shots.display()
        ),
        Ok(shots) => shots,
    };
    match status {
        Some(Ok(s)) if s.success() => {}
        Some(Ok(s)) => panic!("the browser script said done but exited with {s}\n{stderr_tail}"),
        Some(Err(e)) => panic!("waiting for the browser script: {e}"),
        None => panic!("the browser script said done but did not exit within 10 s\n{stderr_tail}"),
    }
    assert!(
        made_in_browser,
        "no unused enrolment for village-c after the browser made one: {enrolments}"
    );
    for shot in &shots_taken {
        assert!(Path::new(shot).is_file(), "screenshot {shot} is missing");
        eprintln!("console: screenshot {shot}");
    }
    eprintln!("console: passed in {:.1} s", started.elapsed().as_secs_f64());
    drop(mqtt);
    drop(dir);
}
