//! `[[cameras]]`: each camera's streams (detect and record), detection rate, motion gate, clips
//! and privacy masks.

use std::time::Duration;

use serde::Deserialize;
use xueliang_proto::topics::is_valid_id;

use super::Problem;
use super::problem::check_polygon;

/// How RTSP data travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// UDP first, then TCP (rtspsrc's default).
    #[default]
    Auto,
    /// Interleaved in the RTSP TCP connection (for NAT and lossy links).
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// Which video decoders a camera's stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decoder {
    /// GStreamer's choice: a VA-API decoder where a GPU offers one, else software.
    #[default]
    Auto,
    /// Software decoders only (FFmpeg's): the CPU decodes.
    Software,
    /// VA-API hardware decoders (the iGPU decodes); software where none takes the stream.
    Va,
}

/// What part of a camera's picture the detector looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectArea {
    /// The zones and lines its rules watch, with a margin, at the model's resolution (tiled
    /// when larger): small distant objects stay detectable and the rest costs nothing. The
    /// whole picture when a rule watches the whole camera or no rule uses detections.
    #[default]
    Zones,
    /// The whole picture, scaled to the model's input.
    Frame,
}

/// Which stream a camera's event clips are cut from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipStream {
    /// The main stream (`record_url`): full resolution, the most bytes.
    Record,
    /// The sub-stream decoded for detection: a fraction of the bytes.
    Detect,
    /// No clips from this camera.
    Off,
}

/// One camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera id: one MQTT topic level.
    pub id: String,
    /// The stream decoded for detection, every frame: the camera's sub-stream (`rtsp://…`, or
    /// `file://…` to replay a recording at its own pace). `url` is the older name.
    #[serde(alias = "url")]
    pub detect_url: String,
    /// The camera's main stream, received and kept compressed for event clips and pictures,
    /// decoded only to draw an event's picture (or to black privacy masks out of a clip).
    #[serde(default)]
    pub record_url: Option<String>,
    /// Which stream event clips are cut from: `record`, `detect` or `off` (default: `record`
    /// when `record_url` is set, else `detect`).
    #[serde(default)]
    pub clip_stream: Option<ClipStream>,
    /// RTSP transport.
    #[serde(default)]
    pub transport: Transport,
    /// Detections per second on this camera.
    #[serde(default = "default_detect_fps")]
    pub detect_fps: f32,
    /// Seconds without a frame before the connection counts as lost (and is made again).
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_s: f32,
    /// Seconds of continuous loss before the camera is reported offline (a `camera_offline`
    /// event, which ends when it is back): a drop shorter than this is no event.
    #[serde(default = "default_offline_after")]
    pub offline_after_s: f32,
    /// The motion gate: still scenes are not inferred again.
    #[serde(default)]
    pub motion: MotionConfig,
    /// Decode keyframes only (one frame per group of pictures, a small fraction of the CPU), for
    /// very weak boxes; `frame_timeout_s` must exceed the camera's keyframe interval.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Decoder threads (0: one per core). One suits a box with several cameras: they decode in
    /// parallel anyway, and every extra thread holds frames in memory.
    #[serde(default = "default_decode_threads")]
    pub decode_threads: u32,
    /// Which decoders may decode the detect stream: `auto`, `software` or `va`.
    #[serde(default)]
    pub decoder: Decoder,
    /// What the detector looks at: `zones` (the watched zones and lines) or `frame`.
    #[serde(default)]
    pub detect_area: DetectArea,
    /// Most model-sized tiles one frame's watched area is cut into (1-16): more tiles see
    /// smaller objects and cost one inference each.
    #[serde(default = "default_detect_tiles")]
    pub detect_tiles: u32,
    /// Polygons (normalized) that must never be seen: windows and yards of homes. They are
    /// blacked out of every picture before it is encoded, and detections inside are dropped.
    #[serde(default)]
    pub privacy_masks: Vec<Vec<[f32; 2]>>,
    /// Polygons (normalized) where detections are ignored: a poster of a person, a parked
    /// tractor, a tree that moves like one. An object whose box's bottom-centre is inside does
    /// not count for any rule; unlike privacy masks, the pixels are kept.
    #[serde(default)]
    pub object_masks: Vec<Vec<[f32; 2]>>,
}

fn default_offline_after() -> f32 {
    60.0
}

fn default_decode_threads() -> u32 {
    1
}

fn default_detect_tiles() -> u32 {
    4
}

/// Motion gate settings of one camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Whether frames of a still scene skip inference.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mean luma change (0..255) of a grid cell that counts as a change.
    #[serde(default = "default_cell_delta")]
    pub cell_delta: u8,
    /// Fraction (0..1) of the unmasked grid cells that must change to infer a frame.
    #[serde(default = "default_min_changed")]
    pub min_changed: f32,
    /// Infer at least every this many seconds, even in a still scene.
    #[serde(default = "default_refresh")]
    pub refresh_s: f32,
    /// Polygons (normalized) whose changes the gate ignores: trees, water, a busy road.
    #[serde(default)]
    pub masks: Vec<Vec<[f32; 2]>>,
}

fn default_true() -> bool {
    true
}

fn default_cell_delta() -> u8 {
    10
}

fn default_min_changed() -> f32 {
    0.001
}

fn default_refresh() -> f32 {
    2.0
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cell_delta: default_cell_delta(),
            min_changed: default_min_changed(),
            refresh_s: default_refresh(),
            masks: Vec::new(),
        }
    }
}

fn default_detect_fps() -> f32 {
    5.0
}

fn default_frame_timeout() -> f32 {
    5.0
}

impl CameraConfig {
    /// A camera at `url` with every other setting at its default.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            detect_url: url.into(),
            record_url: None,
            clip_stream: None,
            transport: Transport::default(),
            detect_fps: default_detect_fps(),
            frame_timeout_s: default_frame_timeout(),
            offline_after_s: default_offline_after(),
            motion: MotionConfig::default(),
            keyframes_only: false,
            decode_threads: default_decode_threads(),
            decoder: Decoder::default(),
            detect_area: DetectArea::default(),
            detect_tiles: default_detect_tiles(),
            privacy_masks: Vec::new(),
            object_masks: Vec::new(),
        }
    }

    /// The stream clips are cut from, if any (see [`CameraConfig::clip_stream`]).
    pub fn clips_from(&self) -> ClipStream {
        match (self.clip_stream, &self.record_url) {
            (Some(s), _) => s,
            (None, Some(_)) => ClipStream::Record,
            (None, None) => ClipStream::Detect,
        }
    }

    /// Time between two inferences on this camera.
    pub fn detect_interval(&self) -> Duration {
        Duration::from_secs_f32(1.0 / self.detect_fps)
    }
}

impl CameraConfig {
    /// Problems of camera `i`.
    pub(super) fn problems(&self, i: usize, p: &mut Vec<Problem>) {
        let at = |key: &str| format!("cameras[{i}].{key}");
        if !is_valid_id(&self.id) {
            p.push(Problem::new(
                at("id"),
                format!("{:?} must be 1-64 letters, digits, '-' or '_'", self.id),
            ));
        }
        let streams =
            [("detect_url", Some(&self.detect_url)), ("record_url", self.record_url.as_ref())];
        for (key, url) in streams {
            if let Some(url) = url
                && !["rtsp://", "rtsps://", "file://"].iter().any(|s| url.starts_with(s))
            {
                p.push(Problem::new(
                    at(key),
                    format!("{url:?} must start with rtsp://, rtsps:// or file://"),
                ));
            }
        }
        if self.clip_stream == Some(ClipStream::Record) && self.record_url.is_none() {
            p.push(
                Problem::new(at("clip_stream"), "is \"record\" but the camera has no record_url")
                    .hint(
                        "set record_url to the camera's main stream, or clip_stream = \"detect\"",
                    ),
            );
        }
        if !(self.detect_fps > 0.0 && self.detect_fps <= 60.0) {
            p.push(Problem::new(at("detect_fps"), "must be in (0, 60]"));
        }
        if !(1..=16).contains(&self.detect_tiles) {
            p.push(Problem::new(at("detect_tiles"), "must be 1 to 16"));
        }
        if !(self.frame_timeout_s >= 1.0) {
            p.push(Problem::new(at("frame_timeout_s"), "must be at least 1"));
        }
        if !(self.offline_after_s >= 0.0) {
            p.push(Problem::new(at("offline_after_s"), "must not be negative"));
        }
        let m = &self.motion;
        if !(m.min_changed >= 0.0 && m.min_changed <= 1.0) {
            p.push(Problem::new(at("motion.min_changed"), "must be in [0, 1]"));
        }
        if !(m.refresh_s > 0.0) {
            p.push(Problem::new(at("motion.refresh_s"), "must be positive"));
        }
        for (k, mask) in m.masks.iter().enumerate() {
            check_polygon(&at(&format!("motion.masks[{k}]")), mask, p);
        }
        for (k, mask) in self.privacy_masks.iter().enumerate() {
            check_polygon(&at(&format!("privacy_masks[{k}]")), mask, p);
        }
        for (k, mask) in self.object_masks.iter().enumerate() {
            check_polygon(&at(&format!("object_masks[{k}]")), mask, p);
        }
    }
}
