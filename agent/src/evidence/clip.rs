//! Event clips: when an event opens, the camera's [`StreamRing`] is held from `pre_s` before
//! it; when the event has ended and `post_s` more has arrived (or the clip reached `max_s`), the
//! stretch is cut from the keyframe at or before its start and muxed as fragmented MP4 without
//! re-encoding. A camera with privacy masks has its clip decoded, blacked out under the masks
//! (the same blocks as its pictures) and encoded again, so no masked pixel leaves the box; that
//! work runs on this thread at low priority, never on the detector's. The clip is sealed in
//! chunks and handed to the alarm chain, which keeps it in the outbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tracing::{info, warn};
use xueliang_proto::{ClipChunk, RuleKind, SCHEMA_VERSION};

use super::events::Outgoing;
use super::picture::MaskBlocks;
use super::seal::Sealer;
use crate::config::{AgentConfig, ClipStream};
use crate::geometry::Polygon;
use crate::source::{Cut, StreamRing, mono_now_ms};
use xueliang_proto::endpoint::now_ms;

/// A clip whose stream stalls is cut this long after it was due, with what there is.
const STALL_MS: i64 = 5_000;

/// Longest a clip may take to mux (or to re-encode) before it is given up.
const MUX_DEADLINE: Duration = Duration::from_secs(300);

/// One camera's clip source.
#[derive(Debug, Clone)]
pub struct CameraClips {
    /// The camera's id.
    pub camera_id: String,
    /// Its kept compressed video.
    pub ring: Arc<StreamRing>,
    /// Which stream that is: `record` or `detect`.
    pub stream: &'static str,
    /// Its privacy masks: a clip is encoded again with them blacked out.
    pub masks: Vec<Polygon>,
}

/// What a clip maker hands over: the event's id and the sealed chunks (`(chunk id, payload)`).
pub type Deliver = Box<dyn Fn(&str, Vec<(String, Vec<u8>)>) + Send>;

/// How clips are cut, from the `[clips]` section.
#[derive(Debug, Clone)]
struct Settings {
    agent_id: String,
    pre_ms: i64,
    post_ms: i64,
    max_ms: i64,
    chunk_bytes: usize,
    masked_kbps: u32,
    /// Where muxed files are written before they are read back (the data directory's).
    work_dir: PathBuf,
}

/// A change the clip maker is told of.
#[derive(Debug)]
enum Request {
    Opened { camera_id: String, event_id: String, at_mono_ms: i64, lasting: bool },
    Ended { event_id: String, duration_ms: i64 },
}

/// A clip being recorded (its ring held from its start).
#[derive(Debug)]
struct InProgress {
    camera: usize,
    event_id: String,
    event_mono_ms: i64,
    from_mono_ms: i64,
    /// When the clip ends: the event's end plus `post_s`, once known.
    until_mono_ms: Option<i64>,
    hold: u64,
}

impl InProgress {
    fn due_at(&self, max_ms: i64) -> i64 {
        let cap = self.from_mono_ms + max_ms;
        self.until_mono_ms.map_or(cap, |u| u.min(cap))
    }
}

/// Each camera's clip sources, from a config: one per camera whose clips are not off.
pub fn camera_clips(config: &AgentConfig, rings: &[Option<Arc<StreamRing>>]) -> Vec<CameraClips> {
    config
        .cameras
        .iter()
        .zip(rings)
        .filter_map(|(c, ring)| {
            let stream = match c.clips_from() {
                ClipStream::Record => "record",
                ClipStream::Detect => "detect",
                ClipStream::Off => return None,
            };
            // A mask that does not parse (the config's checks refuse it) must not let a clip
            // out unmasked: that camera has no clips.
            let masks = c.privacy_masks.iter().map(|m| Polygon::new(m).ok()).collect::<Option<_>>();
            Some(CameraClips {
                camera_id: c.id.clone(),
                ring: ring.clone()?,
                stream,
                masks: masks?,
            })
        })
        .collect()
}

/// The clip maker's thread.
#[derive(Debug)]
pub struct ClipMaker {
    requests: mpsc::Sender<Request>,
    handle: std::thread::JoinHandle<()>,
}

/// How long [`ClipMaker::finish`] waits for the last clips.
const FINISH_WAIT: Duration = Duration::from_secs(10);

impl ClipMaker {
    /// Starts making the clips of `cameras` for `config`'s events, sealed by `sealer`, handed
    /// to `deliver`.
    pub fn spawn(
        config: &AgentConfig,
        cameras: Vec<CameraClips>,
        sealer: Arc<Sealer>,
        deliver: Deliver,
    ) -> std::io::Result<Self> {
        let c = &config.clips;
        let settings = Settings {
            agent_id: config.agent_id.clone(),
            pre_ms: (c.pre_s * 1000.0) as i64,
            post_ms: (c.post_s * 1000.0) as i64,
            max_ms: (c.max_s * 1000.0) as i64,
            chunk_bytes: c.chunk_kib as usize * 1024,
            masked_kbps: c.masked_kbps,
            work_dir: config.data_dir.join("clips"),
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new().name("clips".into()).spawn(move || {
            // Clips are never urgent: the detector and the cameras come first (threads the
            // muxing pipeline starts from here inherit this).
            // SAFETY: setpriority changes only this thread's nice value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            Worker { settings, cameras, sealer, deliver, recording: Vec::new() }.run(&rx);
        })?;
        Ok(Self { requests: tx, handle })
    }

    /// Tells the clip maker of a message the event logs made: an event's opening alarm starts
    /// its clip, its end sets when the clip ends.
    pub fn note(&self, message: &Outgoing) {
        let request = match message {
            Outgoing::Alarm { alarm, .. } => {
                let kind = RuleKind::of(alarm.kind);
                if matches!(kind, RuleKind::CameraOffline | RuleKind::CameraBack) {
                    return;
                }
                // The event's moment on the monotonic clock, from how long ago it was.
                let at_mono_ms = mono_now_ms() - (now_ms() - alarm.event_time_ms).max(0);
                Request::Opened {
                    camera_id: alarm.camera_id.clone(),
                    event_id: alarm.id.clone(),
                    at_mono_ms,
                    lasting: alarm.opens_event,
                }
            }
            Outgoing::Update { update: u, .. } if u.ended => {
                Request::Ended { event_id: u.event_id.clone(), duration_ms: u.duration_ms as i64 }
            }
            Outgoing::Update { .. } => return,
        };
        let _ = self.requests.send(request);
    }

    /// Cuts the clips still being recorded with what there is and waits up to [`FINISH_WAIT`]
    /// for them (a stopping agent then lets go of its outbox). A clip still being encoded again
    /// under privacy masks is left to finish on its own: a new config must not wait for it.
    pub fn finish(self) {
        let Self { requests, handle } = self;
        drop(requests);
        let deadline = std::time::Instant::now() + FINISH_WAIT;
        while !handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if handle.is_finished() {
            let _ = handle.join();
        } else {
            warn!("an event clip is still being encoded; it is finished in the background");
        }
    }
}

struct Worker {
    settings: Settings,
    cameras: Vec<CameraClips>,
    sealer: Arc<Sealer>,
    deliver: Deliver,
    recording: Vec<InProgress>,
}

impl Worker {
    fn run(mut self, rx: &mpsc::Receiver<Request>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(request) => self.handle(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.cut_due(false);
        }
        self.cut_due(true);
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Opened { camera_id, event_id, at_mono_ms, lasting } => {
                let Some(camera) = self.cameras.iter().position(|c| c.camera_id == camera_id)
                else {
                    return;
                };
                let from_mono_ms = at_mono_ms - self.settings.pre_ms;
                let hold = self.cameras[camera].ring.hold(from_mono_ms);
                self.recording.push(InProgress {
                    camera,
                    event_id,
                    event_mono_ms: at_mono_ms,
                    from_mono_ms,
                    until_mono_ms: (!lasting).then_some(at_mono_ms + self.settings.post_ms),
                    hold,
                });
            }
            Request::Ended { event_id, duration_ms } => {
                if let Some(r) = self.recording.iter_mut().find(|r| r.event_id == event_id) {
                    r.until_mono_ms = Some(r.event_mono_ms + duration_ms + self.settings.post_ms);
                }
            }
        }
    }

    /// Cuts every clip whose end has arrived (or is overdue); with `all`, every clip now.
    fn cut_due(&mut self, all: bool) {
        let now = mono_now_ms();
        let max_ms = self.settings.max_ms;
        let (due, waiting): (Vec<InProgress>, Vec<InProgress>) =
            std::mem::take(&mut self.recording).into_iter().partition(|r| {
                let at = r.due_at(max_ms);
                let newest = self.cameras[r.camera].ring.newest_mono_ms().unwrap_or(i64::MIN);
                all || newest >= at || now >= at + STALL_MS
            });
        self.recording = waiting;
        for r in due {
            let camera = &self.cameras[r.camera];
            let cut = camera.ring.cut(r.from_mono_ms, r.due_at(max_ms));
            camera.ring.release(r.hold);
            let Some(cut) = cut else {
                warn!(camera = %camera.camera_id, event = %r.event_id, "no video was kept for this event's clip (is the stream H.264 or H.265, and flowing?)");
                continue;
            };
            match self.make(camera, &r.event_id, &cut) {
                Ok(chunks) => (self.deliver)(&r.event_id, chunks),
                Err(e) => {
                    warn!(camera = %camera.camera_id, event = %r.event_id, "clip not made: {e}")
                }
            }
        }
    }

    /// Muxes `cut` (blacking out the camera's masks), seals it: the chunks to deliver.
    fn make(
        &self,
        camera: &CameraClips,
        event_id: &str,
        cut: &Cut,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let clip_id = uuid::Uuid::now_v7().to_string();
        std::fs::create_dir_all(&self.settings.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", self.settings.work_dir.display()))?;
        let path = self.settings.work_dir.join(format!("{clip_id}.mp4"));
        let masking = (!camera.masks.is_empty())
            .then_some((camera.masks.as_slice(), self.settings.masked_kbps));
        let started = std::time::Instant::now();
        let muxed = mux(cut, masking, &path);
        let _ = std::fs::remove_file(&path);
        let bytes = muxed?;
        let (first, last) = match (cut.units.first(), cut.units.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err("empty cut".into()),
        };
        let (width, height) = size_of(&cut.caps);
        let description = ClipChunk {
            schema_version: SCHEMA_VERSION as i32,
            clip_id,
            agent_id: self.settings.agent_id.clone(),
            camera_id: camera.camera_id.clone(),
            event_id: event_id.to_owned(),
            start_time_ms: first.wall_ms,
            duration_ms: span_ms(cut).unwrap_or((last.mono_ms - first.mono_ms).max(0) as u64),
            width,
            height,
            stream: camera.stream.to_owned(),
            masked: masking.is_some(),
            ..Default::default()
        };
        info!(
            camera = %camera.camera_id,
            event = %event_id,
            clip = %description.clip_id,
            bytes = bytes.len(),
            seconds = description.duration_ms / 1000,
            masked = description.masked,
            took_ms = started.elapsed().as_millis() as u64,
            "event clip made"
        );
        self.sealer
            .seal_clip(description, &bytes, self.settings.chunk_bytes)
            .map_err(|e| e.to_string())
    }
}

/// Width and height in `caps`, 0 when absent.
fn size_of(caps: &gst::Caps) -> (u32, u32) {
    let get = |field| {
        caps.structure(0).and_then(|s| s.get::<i32>(field).ok()).map_or(0, |v| v.max(0) as u32)
    };
    (get("width"), get("height"))
}

/// A unit's decoding (else presentation) time.
fn time_of(buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    buffer.dts().or(buffer.pts())
}

/// The cut's length from its timestamps: last minus first, plus one frame.
fn span_ms(cut: &Cut) -> Option<u64> {
    let times: Vec<gst::ClockTime> = cut.units.iter().filter_map(|u| u.buffer.pts()).collect();
    let (first, last) = (*times.iter().min()?, *times.iter().max()?);
    let frame = if times.len() > 1 {
        (last - first) / (times.len() as u64 - 1)
    } else {
        gst::ClockTime::ZERO
    };
    Some((last - first + frame).mseconds())
}

/// Muxes `cut` as fragmented MP4 at `path` and returns its bytes. With `masking` (masks, kbit/s)
/// the video is decoded, blacked out under the masks and encoded again as H.264.
pub fn mux(cut: &Cut, masking: Option<(&[Polygon], u32)>, path: &Path) -> Result<Vec<u8>, String> {
    gst::init().map_err(|e| e.to_string())?;
    let (parse, decode) = codec_elements(&cut.caps);
    let middle = match masking {
        None => String::new(),
        Some((_, kbps)) => format!(
            "{decode} max-threads=1 ! videoconvert ! video/x-raw,format=I420 ! \
             identity name=mask ! x264enc speed-preset=veryfast threads=1 bitrate={kbps} \
             key-int-max=50 ! video/x-h264,profile=high ! h264parse ! "
        ),
    };
    let launch = format!(
        "appsrc name=src format=time ! {parse} ! {middle}mp4mux fragment-duration=1000 ! \
         filesink name=sink"
    );
    let pipeline = gst::parse::launch(&launch)
        .map_err(|e| format!("cannot build the clip muxer: {e} (run `make setup`)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let element = |name: &str| pipeline.by_name(name).ok_or(format!("no {name} in the muxer"));
    element("sink")?.set_property("location", path.to_string_lossy().as_ref());
    let src = element("src")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| "appsrc is not an AppSrc".to_string())?;
    src.set_caps(Some(&cut.caps));
    if let Some((masks, _)) = masking {
        black_out_under(&element("mask")?, masks.to_vec())?;
    }
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("cannot start muxing: {e}"))?;
    let result = feed_and_wait(&pipeline, &src, cut);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    std::fs::read(path).map_err(|e| format!("cannot read the clip back: {e}"))
}

/// The parser and the decoder of a cut's codec (H.264 or H.265).
pub(super) fn codec_elements(caps: &gst::Caps) -> (&'static str, &'static str) {
    if caps.structure(0).is_some_and(|s| s.name() == "video/x-h265") {
        ("h265parse", "avdec_h265")
    } else {
        ("h264parse", "avdec_h264")
    }
}

/// Pushes the cut's units with times from zero, ends the stream and waits for the file.
fn feed_and_wait(pipeline: &gst::Pipeline, src: &gst_app::AppSrc, cut: &Cut) -> Result<(), String> {
    feed(src, cut)?;
    let bus = pipeline.bus().ok_or("muxer has no bus")?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(MUX_DEADLINE.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .ok_or("muxing took too long")?;
    match msg.view() {
        gst::MessageView::Error(e) => Err(crate::source::error_text(e)),
        _ => Ok(()),
    }
}

/// Pushes the cut's units into `src` with times from zero, then ends the stream.
pub(super) fn feed(src: &gst_app::AppSrc, cut: &Cut) -> Result<(), String> {
    let base = cut.units.iter().filter_map(|u| time_of(&u.buffer)).min();
    let first_mono = cut.units.first().map_or(0, |u| u.mono_ms);
    for unit in &cut.units {
        let mut buffer = unit.buffer.copy();
        let b = buffer.make_mut();
        match base {
            Some(base) => {
                b.set_pts(unit.buffer.pts().map(|t| t.saturating_sub(base)));
                b.set_dts(unit.buffer.dts().map(|t| t.saturating_sub(base)));
            }
            // Without timestamps, arrival times stand in.
            None => {
                let t = gst::ClockTime::from_mseconds((unit.mono_ms - first_mono).max(0) as u64);
                b.set_pts(t);
                b.set_dts(t);
            }
        }
        src.push_buffer(buffer).map_err(|e| format!("a frame was refused: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| format!("cannot end the stream: {e:?}"))?;
    Ok(())
}

/// Width and height of a frame.
type FrameSize = (u32, u32);

/// Blacks out `masks` in every frame passing `element` (I420, before the encoder).
fn black_out_under(element: &gst::Element, masks: Vec<Polygon>) -> Result<(), String> {
    let pad = element.static_pad("src").ok_or("mask element has no pad")?;
    // The grid is worked out once per frame size (the probe runs on one streaming thread).
    let blocks: std::sync::Mutex<Option<(FrameSize, Option<MaskBlocks>)>> = Default::default();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let mut blocks = blocks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(info_caps) =
            pad.current_caps().and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
        else {
            return gst::PadProbeReturn::Drop;
        };
        let size = (info_caps.width(), info_caps.height());
        if blocks.as_ref().is_none_or(|(s, _)| *s != size) {
            *blocks = Some((size, MaskBlocks::new(&masks, size.0 as usize, size.1 as usize)));
        }
        let Some((_, Some(grid))) = &*blocks else { return gst::PadProbeReturn::Ok };
        let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let owned = std::mem::replace(buffer, gst::Buffer::new());
        let Ok(mut frame) = gst_video::VideoFrame::from_buffer_writable(owned, &info_caps) else {
            // A frame that cannot be blacked out must not be encoded.
            return gst::PadProbeReturn::Drop;
        };
        black_out_i420(&mut frame, grid);
        *buffer = frame.into_buffer();
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Sets the blocks of `grid` to black in an I420 frame: luma 0, chroma neutral.
fn black_out_i420(
    frame: &mut gst_video::VideoFrame<gst_video::video_frame::Writable>,
    grid: &MaskBlocks,
) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    for (plane, value, scale) in [(0u32, 0u8, 1usize), (1, 128, 2), (2, 128, 2)] {
        let stride = frame.plane_stride()[plane as usize] as usize;
        let Ok(data) = frame.plane_data_mut(plane) else { continue };
        let (pw, ph) = (w.div_ceil(scale), h.div_ceil(scale));
        let side = MaskBlocks::SIZE / scale;
        for (bx, by) in grid.iter() {
            let (x0, x1) = (bx * side, ((bx + 1) * side).min(pw));
            for y in by * side..((by + 1) * side).min(ph) {
                if let Some(row) = data.get_mut(y * stride + x0..y * stride + x1) {
                    row.fill(value);
                }
            }
        }
    }
}
