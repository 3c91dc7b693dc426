//! A decoded camera frame: the GStreamer sample (I420 or NV12, full resolution) and when it was
//! taken.

use std::sync::OnceLock;
use std::time::Instant;

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::yuv::{Yuv, YuvToRgb};

/// Why a sample could not be read as a 4:2:0 frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The sample lacks caps or a buffer, or its caps are not raw I420 or NV12 video.
    #[error("sample is not I420 or NV12 video: {0}")]
    Format(String),
    /// The buffer could not be mapped for reading.
    #[error("cannot map frame buffer: {0}")]
    Map(String),
}

/// Milliseconds on the process's monotonic clock (from its first call): what frame times and
/// every duration are measured on.
pub fn mono_now_ms() -> i64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// One decoded frame of one camera, kept as the decoder produced it (no copy, no conversion).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Index of the camera in the configuration.
    pub camera: usize,
    /// Wall-clock capture time, UTC milliseconds (when the agent received it): for timestamps
    /// and schedules only.
    pub captured_ms: i64,
    /// Monotonic capture time, milliseconds ([`mono_now_ms`], or a recording's own clock): for
    /// every duration (cadence, dwell, cooldown, an event's end), so a wall clock stepped by NTP
    /// neither fires nor silences a timer.
    pub mono_ms: i64,
    sample: gst::Sample,
    info: gst_video::VideoInfo,
}

impl Frame {
    /// Wraps an appsink sample whose caps are `video/x-raw` in I420 or NV12, captured at
    /// `captured_ms` (wall clock) and `mono_ms` (monotonic clock).
    pub fn new(
        camera: usize,
        sample: gst::Sample,
        captured_ms: i64,
        mono_ms: i64,
    ) -> Result<Self, FrameError> {
        let caps = sample.caps().ok_or_else(|| FrameError::Format("no caps".into()))?;
        let info =
            gst_video::VideoInfo::from_caps(caps).map_err(|e| FrameError::Format(e.to_string()))?;
        if !matches!(info.format(), gst_video::VideoFormat::I420 | gst_video::VideoFormat::Nv12) {
            return Err(FrameError::Format(format!("{:?}", info.format())));
        }
        if sample.buffer().is_none() {
            return Err(FrameError::Format("no buffer".into()));
        }
        Ok(Self { camera, captured_ms, mono_ms, sample, info })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.info.width() as usize
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.info.height() as usize
    }

    /// The pixel layout: `I420` or `NV12`.
    pub fn format(&self) -> &'static str {
        self.info.format().to_str()
    }

    /// The frame's presentation time in its stream, ms (a recording's own clock).
    pub fn pts_ms(&self) -> Option<i64> {
        self.sample.buffer()?.pts().map(|t| t.mseconds() as i64)
    }

    /// Runs `f` on the frame's planes, mapped read-only for the duration of the call.
    pub fn with_yuv<R>(&self, f: impl FnOnce(&Yuv<'_>) -> R) -> Result<R, FrameError> {
        let buffer = self.sample.buffer().ok_or_else(|| FrameError::Format("no buffer".into()))?;
        let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &self.info)
            .map_err(|e| FrameError::Map(e.to_string()))?;
        let plane = |i: u32| vf.plane_data(i).map_err(|e| FrameError::Map(e.to_string()));
        let strides = vf.plane_stride();
        let colorimetry = self.info.colorimetry();
        let matrix = match (colorimetry.matrix(), colorimetry.range()) {
            (_, gst_video::VideoColorRange::Range0_255) => YuvToRgb::BT601_FULL,
            (gst_video::VideoColorMatrix::Bt709, _) => YuvToRgb::BT709,
            _ => YuvToRgb::BT601,
        };
        let (y_stride, uv_stride) = (strides[0] as usize, strides[1] as usize);
        let (w, h) = (self.width(), self.height());
        let yuv = if self.info.format() == gst_video::VideoFormat::Nv12 {
            Yuv::nv12(plane(0)?, plane(1)?, y_stride, uv_stride, w, h, matrix)
        } else {
            Yuv::new(plane(0)?, plane(1)?, plane(2)?, y_stride, uv_stride, w, h, matrix)
        }
        .map_err(|e| FrameError::Map(e.to_string()))?;
        Ok(f(&yuv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `format` sample of an 8×4 picture: a luma ramp, red on the left and blue on the right.
    fn sample(format: gst_video::VideoFormat) -> gst::Sample {
        let info = gst_video::VideoInfo::builder(format, 8, 4).build().unwrap();
        let mut data = vec![0u8; info.size()];
        let (offsets, strides) = (info.offset(), info.stride());
        for r in 0..4 {
            for c in 0..8 {
                data[offsets[0] + r * strides[0] as usize + c] = (40 + 20 * c + r) as u8;
            }
        }
        for r in 0..2 {
            for c in 0..4 {
                let (u, v) = if c < 2 { (90, 240) } else { (240, 110) };
                if format == gst_video::VideoFormat::Nv12 {
                    let at = offsets[1] + r * strides[1] as usize + 2 * c;
                    (data[at], data[at + 1]) = (u, v);
                } else {
                    data[offsets[1] + r * strides[1] as usize + c] = u;
                    data[offsets[2] + r * strides[2] as usize + c] = v;
                }
            }
        }
        let caps = info.to_caps().unwrap();
        gst::Sample::builder().buffer(&gst::Buffer::from_mut_slice(data)).caps(&caps).build()
    }

    #[test]
    fn an_nv12_frame_reads_as_the_same_picture_as_its_i420_twin() {
        gst::init().unwrap();
        let rgb = |format| {
            let frame = Frame::new(0, sample(format), 0, 0).unwrap();
            let mut out = Vec::new();
            frame.with_yuv(|yuv| yuv.to_rgb(&mut out)).unwrap();
            (frame.format(), out)
        };
        let (i420, nv12) = (rgb(gst_video::VideoFormat::I420), rgb(gst_video::VideoFormat::Nv12));
        assert_eq!((i420.0, nv12.0), ("I420", "NV12"));
        assert_eq!(i420.1, nv12.1);
        // Red on the left, blue on the right.
        assert!(i420.1[0] > i420.1[2] && i420.1[7 * 3 + 2] > i420.1[7 * 3]);
    }
}
