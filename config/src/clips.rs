//! `[clips]`: how much video an event's clip holds around it, and how clips travel.

use serde::Deserialize;

use super::Problem;

/// Event clips (which stream each camera's come from is the camera's `clip_stream`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipsConfig {
    /// Seconds of video before the event (the clip starts at the keyframe at or before).
    #[serde(default = "default_pre")]
    pub pre_s: f32,
    /// Seconds of video after the event ends.
    #[serde(default = "default_post")]
    pub post_s: f32,
    /// Longest clip, seconds: an event that lasts an hour gets its first `max_s`.
    #[serde(default = "default_max")]
    pub max_s: f32,
    /// Seconds of compressed video each camera keeps while nothing happens (at least `pre_s`
    /// plus one keyframe interval).
    #[serde(default = "default_buffer")]
    pub buffer_s: f32,
    /// Most memory one camera's buffer may hold, MiB: a stream of a higher bitrate than
    /// expected loses its oldest seconds first.
    #[serde(default = "default_buffer_mib")]
    pub max_buffer_mib: u32,
    /// Size of the pieces a clip travels in, KiB: one is sent again after a link cut.
    #[serde(default = "default_chunk")]
    pub chunk_kib: u32,
    /// Bitrate of clips encoded again to black out privacy masks, kbit/s.
    #[serde(default = "default_masked_kbps")]
    pub masked_kbps: u32,
}

fn default_pre() -> f32 {
    5.0
}

fn default_post() -> f32 {
    10.0
}

fn default_max() -> f32 {
    60.0
}

fn default_buffer() -> f32 {
    10.0
}

fn default_buffer_mib() -> u32 {
    32
}

fn default_chunk() -> u32 {
    128
}

fn default_masked_kbps() -> u32 {
    1000
}

impl Default for ClipsConfig {
    fn default() -> Self {
        Self {
            pre_s: default_pre(),
            post_s: default_post(),
            max_s: default_max(),
            buffer_s: default_buffer(),
            max_buffer_mib: default_buffer_mib(),
            chunk_kib: default_chunk(),
            masked_kbps: default_masked_kbps(),
        }
    }
}

impl ClipsConfig {
    pub(super) fn problems(&self, p: &mut Vec<Problem>) {
        if !(0.0..=60.0).contains(&self.pre_s) {
            p.push(Problem::new("clips.pre_s", "must be in [0, 60]"));
        }
        if !(0.0..=120.0).contains(&self.post_s) {
            p.push(Problem::new("clips.post_s", "must be in [0, 120]"));
        }
        if !(self.max_s >= 5.0 && self.max_s <= 600.0) {
            p.push(Problem::new("clips.max_s", "must be in [5, 600]"));
        }
        if !(self.buffer_s >= self.pre_s + 1.0 && self.buffer_s <= 120.0) {
            p.push(
                Problem::new("clips.buffer_s", "must be at least pre_s + 1 and at most 120")
                    .hint("the buffer must reach back past pre_s to the keyframe before it"),
            );
        }
        if !(1..=1024).contains(&self.max_buffer_mib) {
            p.push(Problem::new("clips.max_buffer_mib", "must be in 1..1024"));
        }
        // Four chunks are in flight at once: on a 1 Mbit/s link, 4 × 128 KiB arrive well within
        // the 20 s a receipt is waited for.
        if !(16..=128).contains(&self.chunk_kib) {
            p.push(Problem::new("clips.chunk_kib", "must be in 16..128"));
        }
        if !(100..=20_000).contains(&self.masked_kbps) {
            p.push(Problem::new("clips.masked_kbps", "must be in 100..20000"));
        }
    }
}
