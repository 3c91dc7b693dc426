//! A camera's two streams on a real agent: the sub-stream decoded for detection, the main
//! stream kept compressed and decoded only to draw an event's picture, which then has the main
//! stream's size. A camera where nothing happens never has its main stream decoded.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::runtime::Agent;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// A second camera on the same streams with no rule: nothing ever happens on it.
fn quiet_camera(detect_url: &str, record_url: &str) -> String {
    format!(
        "\n[[cameras]]\nid = \"quiet\"\ndetect_url = \"{detect_url}\"\n\
         record_url = \"{record_url}\"\ntransport = \"tcp\"\ndetect_fps = 5\n"
    )
}

/// The value of metric `name` for camera `camera` on the agent's page at `addr`.
async fn metric(addr: &str, name: &str, camera: &str) -> f64 {
    let page = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let prefix = format!("{name}{{camera=\"{camera}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix} in\n{page}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_stream_is_decoded_only_for_pictures_which_have_its_size() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let broker = BrokerChoice::Embedded {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        tls: None,
        passwords: false,
    };
    let center_key = common::prepare_keys(dir.path(), "two-streams");
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let camera = RtspServer::serve_sizes(
        &scenario::vtest(),
        &[("campus-walkway-sub", 384, 288), ("campus-walkway-main", 768, 576)],
    )
    .expect("RTSP server");
    let (sub, main) = (camera.url("campus-walkway-sub"), camera.url("campus-walkway-main"));
    let toml =
        scenario::agent_toml("two-streams", &sub, &format!("mqtt://127.0.0.1:{port}"), &center_key)
            .replacen(
                "\ndata_dir = ",
                &format!("\nmetrics_listen = \"{metrics}\"\ndata_dir = "),
                1,
            )
            + &quiet_camera(&sub, &main);
    let toml = scenario::with_record_stream(&toml, &main);
    let config = AgentConfig::parse(&toml, &dir.path().join("agent.toml")).expect("valid config");
    let agent = Agent::build(config).expect("agent builds");
    let started = Instant::now();
    let agent = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { agent.run(shutdown).await.expect("agent runs") }
    });

    // People cross the walkway all the time: its intrusion opens an event whose picture is
    // drawn on the main stream.
    let alarm = common::wait_for_alarm_where(center.http_addr, Duration::from_secs(120), |a| {
        a.camera_id == "campus-walkway" && a.snapshot_bytes > 0
    })
    .await
    .expect("an alarm with its picture");
    assert_eq!((alarm.frame_width, alarm.frame_height), (768, 576), "the record stream's size");
    common::assert_snapshot_decodes(center.http_addr, &alarm).await;

    // The quiet camera runs twice as long as the busy one took, and at least 30 s (three spans
    // of kept video, a dozen keyframes).
    let until = started + (started.elapsed() * 2).max(Duration::from_secs(30));
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    let decoded = |camera| metric(&metrics, "xl_agent_record_frames_decoded_total", camera);
    let busy = decoded("campus-walkway").await;
    assert!(busy >= 1.0, "the busy camera's main stream was decoded for its pictures: {busy}");
    let quiet_frames = metric(&metrics, "xl_agent_frames_decoded_total", "quiet").await;
    let quiet_kept = metric(&metrics, "xl_agent_video_kept_bytes", "quiet").await;
    assert!(quiet_frames > 50.0, "the quiet camera's sub-stream is decoded: {quiet_frames}");
    assert!(quiet_kept > 100_000.0, "its main stream is kept: {quiet_kept} bytes");
    assert_eq!(decoded("quiet").await, 0.0, "but never decoded: nothing happened there");

    shutdown.cancel();
    agent.await.unwrap();
    center.join().await;
    drop(camera);
}
