//! An event's clip from a real agent to the real center over a bad village link: the camera's
//! sub-stream detected, its main stream kept for the clip; the clip travels in small chunks
//! through a proxy that cuts and stalls the link, resumes, arrives once, hashes to what the
//! agent signed, decodes, has the main stream's size, starts at a keyframe before the event and
//! lasts pre + event + post; the center serves it with range requests.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::chaos_proxy::ChaosProxy;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::runtime::Agent;
use xueliang_center::domain::AlarmRecord;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// Seconds of video before and after the event, and the longest clip.
const PRE_S: i64 = 3;
const POST_S: i64 = 3;
const MAX_S: i64 = 20;
/// The test camera's keyframe interval: 25 frames of vtest.avi's 10 a second.
const GOP_MS: i64 = 2_500;

/// People walk across the walkway all the time: each crossing of its middle is an instant
/// event, whose clip is PRE_S before it and POST_S after.
const CROSSING: &str = r#"
[[lines]]
id = "middle"
camera = "campus-walkway"
points = [[0.5, 0.3], [0.5, 1.0]]

[[rules]]
id = "middle-crossing"
kind = "line_crossing"
line = "middle"
direction = "both"
classes = ["person"]
min_score = 0.5
cooldown_s = 5
severity = "medium"
"#;

/// Frames, size and the first frame's keyframe flag of an MP4, decoded as a player would.
fn decode(mp4: &[u8]) -> (usize, (i32, i32), bool) {
    gst::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, mp4).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! tee name=t \
         t. ! queue ! appsink name=coded sync=false \
         t. ! queue ! avdec_h264 ! appsink name=raw sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = |n| pipeline.by_name(n).unwrap().downcast::<gst_app::AppSink>().unwrap();
    let (coded, raw) = (sink("coded"), sink("raw"));
    pipeline.set_state(gst::State::Playing).unwrap();
    let first = coded.pull_sample().expect("a first frame");
    let keyframe = !first.buffer().unwrap().flags().contains(gst::BufferFlags::DELTA_UNIT);
    while coded.pull_sample().is_ok() {}
    let (mut frames, mut size) = (0, (0, 0));
    while let Ok(sample) = raw.pull_sample() {
        let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
        size = (s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap());
        frames += 1;
    }
    let _ = pipeline.set_state(gst::State::Null);
    (frames, size, keyframe)
}

fn sha256_hex(bytes: &[u8]) -> String {
    xueliang_proto::signing::hex(&xueliang_proto::signing::sha256(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_clip_crosses_a_bad_link_once_whole_and_signed() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broker = BrokerChoice::Embedded {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        tls: None,
        passwords: false,
    };
    let center_key = common::prepare_keys(dir.path(), "clip-village");
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    // The link misbehaves for the first minute: the clip is cut, sent and resumed within it.
    let proxy = ChaosProxy::start(port, Duration::from_secs(60), fastrand::u64(..)).await;
    let camera = RtspServer::serve_sizes(
        &scenario::vtest(),
        &[("campus-walkway-sub", 384, 288), ("campus-walkway-main", 768, 576)],
    )
    .expect("RTSP server");
    let toml = scenario::agent_toml(
        "clip-village",
        &camera.url("campus-walkway-sub"),
        &format!("mqtt://127.0.0.1:{}", proxy.port),
        &center_key,
    ) + &format!(
        "\n[clips]\npre_s = {PRE_S}\npost_s = {POST_S}\nmax_s = {MAX_S}\nbuffer_s = 8\n\
         chunk_kib = 16\n{CROSSING}"
    );
    let toml = scenario::with_record_stream(&toml, &camera.url("campus-walkway-main"));
    let config = AgentConfig::parse(&toml, &dir.path().join("agent.toml")).expect("valid config");
    let agent = Agent::build(config).expect("agent builds");
    let agent = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { agent.run(shutdown).await.expect("agent runs") }
    });

    // The first event whose clip has arrived, of those that opened once the record stream had
    // been kept long enough to hold their pre-roll (the stream starts with the agent).
    let pre_roll_from = xueliang_proto::endpoint::now_ms() + 12_000;
    let api = common::Api::admin(center.http_addr).await;
    let started = Instant::now();
    let alarm: AlarmRecord = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let body = api.json("/api/alarms").await;
        let alarms: Vec<AlarmRecord> = serde_json::from_value(body["alarms"].clone()).unwrap();
        let seen: Vec<(i64, usize)> =
            alarms.iter().map(|a| (a.event_time_ms - pre_roll_from, a.clips.len())).collect();
        assert!(started.elapsed() < Duration::from_secs(180), "no clip in 3 minutes: {seen:?}");
        let found =
            alarms.into_iter().find(|a| a.event_time_ms >= pre_roll_from && !a.clips.is_empty());
        if let Some(a) = found {
            break a;
        }
    };
    let m = &proxy.mischief;
    let mischief = m.cuts.load(std::sync::atomic::Ordering::Relaxed)
        + m.stalls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(mischief >= 3, "the link misbehaved while the clip travelled");
    assert_eq!(alarm.clips.len(), 1, "one clip per event: {:?}", alarm.clips);
    let clip = &alarm.clips[0];
    assert_eq!((clip.width, clip.height), (768, 576), "cut from the record stream");
    assert_eq!(clip.stream, "record");
    assert!(!clip.masked);

    // The bytes the center serves are the ones the agent signed.
    let resp = api.get(&format!("/api/clips/{}", clip.clip_id)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/mp4");
    let mp4 = resp.bytes().await.unwrap();
    assert_eq!(mp4.len() as u64, clip.size);
    assert_eq!(sha256_hex(&mp4), clip.sha256);
    // A player's range request.
    let part = api
        .get(&format!("/api/clips/{}", clip.clip_id))
        .header("Range", "bytes=100-1123")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), mp4.slice(100..1124));

    // It decodes: the main stream's size, from a keyframe, every frame of its length.
    let (frames, size, keyframe) = decode(&mp4);
    assert_eq!(size, (768, 576));
    assert!(keyframe, "the clip starts at a keyframe");
    let seconds = clip.duration_ms as f64 / 1000.0;
    assert!((frames as f64 - seconds * 10.0).abs() <= 2.0, "{frames} frames in {seconds} s");

    // Pre-roll: it starts at the keyframe at or before PRE_S before the event.
    let before = alarm.event_time_ms - clip.start_time_ms;
    assert!(
        (PRE_S * 1000 - 300..=PRE_S * 1000 + GOP_MS + 300).contains(&before),
        "starts {before} ms before the event"
    );
    // A crossing is instant: the clip lasts to POST_S after it.
    let clip_end = clip.start_time_ms + clip.duration_ms as i64;
    let wanted_end = alarm.event_time_ms + POST_S * 1000;
    assert!(
        (clip_end - wanted_end).abs() <= 1_000,
        "ends {} ms from {wanted_end}",
        clip_end - wanted_end
    );

    shutdown.cancel();
    agent.await.unwrap();
    center.join().await;
    drop(camera);
}
