//! Event clips on the box, from real RTSP streams: a camera's record stream kept compressed
//! (never decoded) beside its detect stream at another size, cut from a keyframe and muxed as
//! MP4 without re-encoding; a camera with a privacy mask has every frame of its clip black
//! under the mask.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use xueliang_agent::config::CameraConfig;
use xueliang_agent::evidence::{RecordStream, mux, record_frame};
use xueliang_agent::geometry::Polygon;
use xueliang_agent::source::{
    CameraOutputs, CameraSource, FrameHub, Pace, RecordSource, StreamRing, mono_now_ms,
};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// What a decoded MP4 holds: frame size, frame count, the first and last timestamps, and each
/// frame's luma plane (I420 Y, row by row) when asked.
struct Decoded {
    width: usize,
    height: usize,
    frames: usize,
    first_pts: gst::ClockTime,
    last_pts: gst::ClockTime,
    lumas: Vec<Vec<u8>>,
}

/// Decodes `mp4` with GStreamer as any player would (qtdemux, the H.264 decoder).
fn decode(mp4: &Path, keep_luma: bool) -> Decoded {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! \
         video/x-raw,format=I420 ! appsink name=sink sync=false",
        mp4.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut d = Decoded {
        width: 0,
        height: 0,
        frames: 0,
        first_pts: gst::ClockTime::MAX,
        last_pts: gst::ClockTime::ZERO,
        lumas: Vec::new(),
    };
    while let Ok(sample) = sink.pull_sample() {
        let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
        (d.width, d.height) =
            (s.get::<i32>("width").unwrap() as usize, s.get::<i32>("height").unwrap() as usize);
        let buffer = sample.buffer().unwrap();
        let pts = buffer.pts().unwrap();
        d.first_pts = d.first_pts.min(pts);
        d.last_pts = d.last_pts.max(pts);
        d.frames += 1;
        if keep_luma {
            let map = buffer.map_readable().unwrap();
            d.lumas.push(map[..d.width * d.height].to_vec());
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    d
}

/// Keeps `url`'s record stream in a ring for `seconds`, then cuts the last `cut_s` of it.
fn record(url: &str, seconds: u64) -> (Arc<StreamRing>, i64) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let ring = Arc::new(StreamRing::new(30_000, 64 << 20));
    let mut camera = CameraConfig::new("gate", "rtsp://127.0.0.1:9/unused");
    camera.record_url = Some(url.to_owned());
    let stop = Arc::new(AtomicBool::new(false));
    let source = RecordSource::spawn(camera, ring.clone(), stop.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    source.join();
    (ring, mono_now_ms())
}

#[test]
fn a_clip_from_the_record_stream_is_its_size_starts_at_a_keyframe_and_is_not_re_encoded() {
    gst::init().unwrap();
    let server =
        RtspServer::serve_sizes(&scenario::vtest(), &[("sub", 384, 288), ("main", 768, 576)])
            .expect("RTSP server");
    let (ring, now) = record(&server.url("main"), 9);
    let units = ring.counters.units.load(Ordering::Relaxed);
    assert!(units > 50, "the record stream was kept: {units} units");
    // 5 s asked for: the clip starts at the keyframe at or before (vtest.avi is 10 frames a
    // second, with a keyframe every 25 frames: 2.5 s).
    let cut = ring.cut(now - 5_000, now).expect("a cut");
    assert!(cut.units[0].keyframe());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let bytes = mux(&cut, None, &path).expect("muxed");
    std::fs::write(&path, &bytes).unwrap();
    let d = decode(&path, false);
    assert_eq!((d.width, d.height), (768, 576), "the record stream's size");
    // Every unit kept became a frame: nothing was dropped or encoded again.
    assert_eq!(d.frames, cut.units.len());
    let seconds = (d.last_pts - d.first_pts).mseconds() as f64 / 1000.0;
    assert!((4.8..=7.6).contains(&seconds), "{seconds} s: 5 s and at most one GOP more");
    // Fragmented: a movie header that announces fragments, then fragments.
    let has = |tag: &[u8]| bytes.windows(4).any(|w| w == tag);
    assert!(has(b"mvex") && has(b"moof"), "fragmented MP4");
    drop(server);
}

#[test]
fn a_pictures_record_frame_is_the_one_of_its_moment_not_the_keyframe_before() {
    gst::init().unwrap();
    let server =
        RtspServer::serve_sizes(&scenario::vtest(), &[("main", 768, 576)]).expect("RTSP server");
    let (ring, now) = record(&server.url("main"), 7);
    // A moment well into a group of pictures: eight frames after its keyframe.
    let kept = ring.cut(now - 5_000, now).expect("kept").units;
    let key = kept.iter().rposition(|u| u.keyframe() && u.mono_ms < now - 1_500).unwrap();
    let moment = kept[key + 8].mono_ms;
    let record = RecordStream { ring: ring.clone(), counters: Arc::default() };
    let frame = record_frame(&record, 0, moment).expect("the record frame");
    assert_eq!((frame.width(), frame.height(), frame.mono_ms), (768, 576, moment));
    assert_eq!(record.counters.record_decoded.load(Ordering::Relaxed), 9, "keyframe + 8");
    let luma = |f: &xueliang_agent::source::Frame| {
        f.with_yuv(|y| {
            (0..y.height)
                .flat_map(|r| &y.y[r * y.y_stride..][..y.width])
                .copied()
                .collect::<Vec<u8>>()
        })
        .unwrap()
    };
    // The same stretch muxed and decoded as a player would: its last frame is the picture's,
    // and differs from its first (people walk).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moment.mp4");
    std::fs::write(&path, mux(&ring.cut(moment, moment).unwrap(), None, &path).unwrap()).unwrap();
    let played = decode(&path, true);
    assert_eq!(played.frames, 9);
    let picture = luma(&frame);
    assert_eq!(&picture, played.lumas.last().unwrap(), "the frame of the moment");
    assert_ne!(&picture, &played.lumas[0], "not the keyframe");
    drop(server);
}

#[test]
fn without_a_record_stream_the_detect_stream_is_kept_on_its_way_to_the_decoder() {
    gst::init().unwrap();
    let server =
        RtspServer::serve_sizes(&scenario::vtest(), &[("sub", 384, 288)]).expect("RTSP server");
    let ring = Arc::new(StreamRing::new(30_000, 64 << 20));
    let hub = Arc::new(FrameHub::new(1));
    let (events, _events) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let outputs = CameraOutputs {
        hub: hub.clone(),
        events,
        counters: Arc::default(),
        ring: Some(ring.clone()),
    };
    let camera = CameraConfig::new("gate", server.url("sub"));
    let source = CameraSource::spawn(0, camera, outputs, stop.clone(), Pace::Live).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    source.join();
    let now = mono_now_ms();
    let cut = ring.cut(now - 3_000, now).expect("the detect stream was kept");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let bytes = mux(&cut, None, &path).expect("muxed");
    std::fs::write(&path, &bytes).unwrap();
    let d = decode(&path, false);
    assert_eq!((d.width, d.height), (384, 288), "the detect stream's size");
    assert_eq!(d.frames, cut.units.len());
}

#[test]
fn a_masked_cameras_clip_is_black_under_the_mask_in_every_frame() {
    gst::init().unwrap();
    let server =
        RtspServer::serve_sizes(&scenario::vtest(), &[("main", 768, 576)]).expect("RTSP server");
    let (ring, now) = record(&server.url("main"), 6);
    let cut = ring.cut(now - 3_000, now).expect("a cut");
    let mask = Polygon::new(&[[0.1, 0.1], [0.45, 0.15], [0.4, 0.6], [0.12, 0.5]]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let bytes = mux(&cut, Some((std::slice::from_ref(&mask), 1000)), &path).expect("muxed");
    std::fs::write(&path, &bytes).unwrap();
    let d = decode(&path, true);
    assert!(d.frames >= 25, "{} frames", d.frames);
    // H.264 is lossy: black may come back as luma up to a few levels above black (16).
    const TOLERANCE: u8 = 24;
    for (i, luma) in d.lumas.iter().enumerate() {
        for y in 0..d.height {
            for x in 0..d.width {
                let p = xueliang_agent::geometry::Point {
                    x: (x as f32 + 0.5) / d.width as f32,
                    y: (y as f32 + 0.5) / d.height as f32,
                };
                if mask.contains(p) {
                    let v = luma[y * d.width + x];
                    assert!(v <= TOLERANCE, "frame {i}: pixel ({x}, {y}) under the mask is {v}");
                }
            }
        }
    }
}
