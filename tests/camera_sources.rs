//! Camera sources against a real RTSP server (gst-rtsp-server) serving real footage: a camera
//! whose server dies is reported offline once its loss has lasted `offline_after_s`, and back
//! when the server returns, while another camera keeps flowing; short drops are reconnected
//! without a word; H.265 cameras decode like H.264 ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use xueliang_agent::config::{CameraConfig, Transport};
use xueliang_agent::source::Frame;
use xueliang_agent::source::{CameraEvent, CameraOutputs, CameraSource, FrameHub, Pace};
use xueliang_testkit::rtsp_server::{Codec, RtspServer};
use xueliang_testkit::scenario;

fn camera(id: &str, url: String, transport: Transport) -> CameraConfig {
    CameraConfig { transport, frame_timeout_s: 2.0, ..CameraConfig::new(id, url) }
}

struct Cameras {
    hub: Arc<FrameHub>,
    events: Receiver<CameraEvent>,
    stop: Arc<AtomicBool>,
    sources: Vec<CameraSource>,
    frames: Vec<Frame>,
}

impl Cameras {
    fn start(configs: Vec<CameraConfig>) -> Self {
        let hub = Arc::new(FrameHub::new(configs.len()));
        let (tx, events) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let sources = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                CameraSource::spawn(
                    i,
                    c,
                    CameraOutputs {
                        hub: hub.clone(),
                        events: tx.clone(),
                        counters: Arc::default(),
                        ring: None,
                    },
                    stop.clone(),
                    Pace::Live,
                )
                .unwrap()
            })
            .collect();
        Self { hub, events, stop, sources, frames: Vec::new() }
    }

    /// Takes frames for `period`; returns how many each camera delivered and the events seen.
    fn collect(&mut self, period: Duration) -> ([usize; 2], Vec<CameraEvent>) {
        let mut counts = [0; 2];
        let mut events = Vec::new();
        let until = Instant::now() + period;
        while Instant::now() < until {
            if self.hub.take_batch(0..2, |_| true, 2, Duration::from_millis(50), &mut self.frames) {
                for f in &self.frames {
                    counts[f.camera] += 1;
                }
            }
            events.extend(self.events.try_iter());
        }
        (counts, events)
    }

    /// Takes frames until `pred` holds for an event, at most `limit`; returns frames per camera
    /// meanwhile and the time it took.
    fn until_event(
        &mut self,
        limit: Duration,
        pred: impl Fn(&CameraEvent) -> bool,
    ) -> ([usize; 2], Duration) {
        let t0 = Instant::now();
        let mut counts = [0; 2];
        while t0.elapsed() < limit {
            let (c, events) = self.collect(Duration::from_millis(200));
            counts[0] += c[0];
            counts[1] += c[1];
            if events.iter().any(&pred) {
                return (counts, t0.elapsed());
            }
        }
        panic!("no such camera event within {limit:?}");
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.sources {
            s.join();
        }
    }
}

#[test]
fn a_lost_camera_is_reported_and_comes_back_while_the_other_keeps_flowing() {
    let clip = scenario::vtest();
    let flaky = RtspServer::serve_file(&clip, "gate").unwrap();
    let port = flaky.port();
    let steady = RtspServer::serve_file(&clip, "road").unwrap();
    let gate =
        CameraConfig { offline_after_s: 3.0, ..camera("gate", flaky.url("gate"), Transport::Tcp) };
    let mut cams = Cameras::start(vec![gate, camera("road", steady.url("road"), Transport::Udp)]);
    let (counts, _) =
        cams.until_event(Duration::from_secs(20), |e| *e == CameraEvent::Online { camera: 0 });
    let (more, _) = cams.collect(Duration::from_secs(2));
    assert!(more[0] > 5 && counts[1] + more[1] > 5, "both cameras deliver: {counts:?} {more:?}");

    // The gate camera's server dies mid-stream.
    drop(flaky);
    let (during, took) = cams.until_event(Duration::from_secs(15), |e| {
        matches!(e, CameraEvent::Offline { camera: 0, .. })
    });
    assert!(took < Duration::from_secs(10), "offline reported after {took:?}");
    let (outage, events) = cams.collect(Duration::from_secs(3));
    assert_eq!(outage[0], 0, "no frames from a dead camera");
    assert!(during[1] + outage[1] > 10, "the other camera kept flowing: {during:?} {outage:?}");
    assert!(
        !events.iter().any(|e| matches!(e, CameraEvent::Offline { camera: 1, .. })),
        "{events:?}"
    );

    // The server returns at the same address: the camera reconnects by itself.
    let back = RtspServer::serve_file_on(&clip, "gate", port).unwrap();
    let (_, took) =
        cams.until_event(Duration::from_secs(20), |e| *e == CameraEvent::Back { camera: 0 });
    assert!(took < Duration::from_secs(12), "back after {took:?}");
    let (after, _) = cams.collect(Duration::from_secs(2));
    assert!(after[0] > 5 && after[1] > 5, "frames resume: {after:?}");
    cams.stop();
    drop(back);
}

#[test]
fn short_drops_say_nothing_and_a_long_outage_is_one_offline_and_one_back() {
    let clip = scenario::vtest();
    let server = RtspServer::serve_file(&clip, "gate").unwrap();
    let port = server.port();
    // The default: a camera is offline after 60 s of continuous loss.
    let gate = camera("gate", server.url("gate"), Transport::Tcp);
    assert_eq!(gate.offline_after_s, 60.0);
    let mut cams = Cameras::start(vec![gate]);
    cams.until_event(Duration::from_secs(20), |e| *e == CameraEvent::Online { camera: 0 });

    // Ten 2-second drops within about a minute: reconnected each time, nothing reported.
    let mut server = Some(server);
    let mut seen = Vec::new();
    let t0 = Instant::now();
    for _ in 0..10 {
        drop(server.take());
        let (_, events) = cams.collect(Duration::from_secs(2));
        seen.extend(events);
        server = Some(RtspServer::serve_file_on(&clip, "gate", port).unwrap());
        let (flowing, events) = cams.collect(Duration::from_secs(4));
        seen.extend(events);
        assert!(flowing[0] > 0, "frames again after a short drop");
    }
    eprintln!("ten drops in {:?}", t0.elapsed());
    let said: Vec<_> = seen.iter().filter(|e| !matches!(e, CameraEvent::Online { .. })).collect();
    assert!(said.is_empty(), "short drops are not an outage: {said:?}");

    // Down for 90 s: one offline (after 60 s), then one back when the server returns.
    drop(server.take());
    let (_, events) = cams.collect(Duration::from_secs(90));
    let offline: Vec<_> =
        events.iter().filter(|e| matches!(e, CameraEvent::Offline { .. })).collect();
    assert_eq!(offline.len(), 1, "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, CameraEvent::Back { .. })), "{events:?}");
    let _back = RtspServer::serve_file_on(&clip, "gate", port).unwrap();
    cams.until_event(Duration::from_secs(30), |e| *e == CameraEvent::Back { camera: 0 });
    let (_, events) = cams.collect(Duration::from_secs(3));
    let said: Vec<_> = events.iter().filter(|e| !matches!(e, CameraEvent::Online { .. })).collect();
    assert!(said.is_empty(), "one back, nothing more: {said:?}");
    cams.stop();
}

#[test]
fn an_h265_camera_decodes_at_full_resolution() {
    let clip = scenario::vtest();
    let server = RtspServer::serve(&clip, "hevc", 0, Codec::H265).unwrap();
    let mut cams = Cameras::start(vec![camera("hevc", server.url("hevc"), Transport::Tcp)]);
    cams.until_event(Duration::from_secs(20), |e| *e == CameraEvent::Online { camera: 0 });
    let mut frames = Vec::new();
    assert!(cams.hub.take_batch(0..1, |_| true, 1, Duration::from_secs(5), &mut frames));
    assert_eq!((frames[0].width(), frames[0].height()), (768, 576));
    cams.stop();
}

#[test]
fn keyframe_only_decoding_delivers_one_frame_per_group_of_pictures() {
    let clip = scenario::vtest();
    // The server sends a keyframe every 25 frames: 2.5 s of this 10 fps clip.
    let server = RtspServer::serve_file(&clip, "weak").unwrap();
    let mut keyframes = camera("weak", server.url("weak"), Transport::Tcp);
    keyframes.keyframes_only = true;
    keyframes.frame_timeout_s = 5.0;
    let all = camera("full", server.url("weak"), Transport::Tcp);
    let mut cams = Cameras::start(vec![keyframes, all]);
    cams.until_event(Duration::from_secs(20), |e| *e == CameraEvent::Online { camera: 0 });
    let (counts, events) = cams.collect(Duration::from_secs(6));
    assert!((1..=4).contains(&counts[0]), "keyframes only: {counts:?}");
    assert!(counts[1] > 30, "every frame: {counts:?}");
    assert!(!events.iter().any(|e| matches!(e, CameraEvent::Offline { .. })), "{events:?}");
    cams.stop();
}
