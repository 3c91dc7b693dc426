//! `xl-agent probe-camera`: connects to a camera exactly as the agent would and reports what it
//! sends (codec, resolution, frame rate, how long the first picture took), and keeps a frame on
//! which the configured zones, lines and privacy masks can be drawn, so an installer checks the
//! geometry on site before leaving.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::config::{CameraConfig, Decoder, Transport, redact_url};
use crate::source::Frame;
use crate::source::{Pace, build_pipeline, decoder_in, describe_decoder, error_text};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The pipeline could not be built or started.
    #[error("{0}")]
    Pipeline(String),
    /// The camera refused, failed or sent nothing in time.
    #[error("{url}: {reason}")]
    Stream {
        /// The address used.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// What a camera sends.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The compressed format, e.g. `H.264 (main)`.
    pub codec: String,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Frames per second the stream announces, if it does.
    pub nominal_fps: Option<f32>,
    /// Frames per second received during the probe.
    pub measured_fps: f32,
    /// From connecting to the first decoded frame.
    pub first_frame: Duration,
    /// Whether the stream is RTSP, whose frames the agent holds in a jitter buffer.
    pub rtsp: bool,
    /// The decoder GStreamer chose, e.g. `avdec_h264 (software)`.
    pub decoder: String,
    /// The last frame received.
    pub frame: Frame,
}

impl ProbeReport {
    /// The report as the installer reads it.
    pub fn text(&self) -> String {
        let nominal =
            self.nominal_fps.map_or(String::new(), |f| format!(" (stream announces {f:.1})"));
        let latency = if self.rtsp {
            format!(
                "\nbuffering         {} ms (RTSP jitter buffer, set by the agent)",
                crate::source::RTSP_LATENCY_MS
            )
        } else {
            String::new()
        };
        format!(
            "codec             {}\ndecoder           {}, frames in {}\nresolution        {}x{}\nframe rate        {:.1} fps{nominal}\nfirst frame after {} ms{latency}\n",
            self.codec,
            self.decoder,
            self.frame.format(),
            self.width,
            self.height,
            self.measured_fps,
            self.first_frame.as_millis()
        )
    }
}

/// Connects to `url` over `transport`, reads frames for `duration` after the first, and
/// reports. Nothing runs after it returns.
pub fn probe(
    url: &str,
    transport: Transport,
    decoder: Decoder,
    duration: Duration,
) -> Result<ProbeReport, ProbeError> {
    let mut camera = CameraConfig::new("probe", url);
    camera.transport = transport;
    camera.decoder = decoder;
    let (pipeline, sink) =
        build_pipeline(&camera, Pace::Live, None).map_err(ProbeError::Pipeline)?;
    let stream = |reason: String| ProbeError::Stream { url: redact_url(url), reason };
    let result = (|| {
        let start = Instant::now();
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| stream(format!("cannot start: {e}")))?;
        let bus = pipeline.bus().ok_or_else(|| stream("pipeline has no bus".into()))?;
        let mut first: Option<(Duration, Instant)> = None;
        let mut frames = 0u32;
        let mut last = None;
        loop {
            let limit = match first {
                None => Duration::from_secs(15),
                Some((_, at)) => duration.saturating_sub(at.elapsed()),
            };
            if first.is_none() && start.elapsed() > limit {
                return Err(stream("no frame within 15 s: is the URL (path, user, password) right, and the camera's stream on?".into()));
            }
            if first.is_some() && limit.is_zero() {
                break;
            }
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
                let frame = Frame::new(
                    0,
                    sample,
                    xueliang_proto::endpoint::now_ms(),
                    crate::source::mono_now_ms(),
                )
                .map_err(|e| stream(e.to_string()))?;
                if first.is_none() {
                    first = Some((start.elapsed(), Instant::now()));
                } else {
                    frames += 1;
                }
                last = Some(frame);
            }
            while let Some(msg) = bus.pop() {
                match msg.view() {
                    gst::MessageView::Error(e) => return Err(stream(error_text(e))),
                    gst::MessageView::Eos(_) => return Err(stream("the stream ended".into())),
                    _ => {}
                }
            }
        }
        let (first_frame, since) = first.ok_or_else(|| stream("no frame".into()))?;
        let frame = last.ok_or_else(|| stream("no frame".into()))?;
        let (codec, nominal_fps) = stream_format(&pipeline);
        let decoder = decoder_in(&pipeline).map_or("unknown".into(), |d| describe_decoder(&d));
        Ok(ProbeReport {
            codec,
            width: frame.width(),
            height: frame.height(),
            nominal_fps,
            measured_fps: frames as f32 / since.elapsed().as_secs_f32().max(0.001),
            first_frame,
            rtsp: url.starts_with("rtsp"),
            decoder,
            frame,
        })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The compressed format fed to the video decoder, and the frame rate its caps announce.
fn stream_format(pipeline: &gst::Pipeline) -> (String, Option<f32>) {
    let Some(caps) =
        decoder_in(pipeline).and_then(|d| d.static_pad("sink")).and_then(|p| p.current_caps())
    else {
        return ("unknown".into(), None);
    };
    let Some(s) = caps.structure(0) else {
        return ("unknown".into(), None);
    };
    let name = match s.name().as_str() {
        "video/x-h264" => "H.264".to_owned(),
        "video/x-h265" => "H.265".to_owned(),
        "image/jpeg" => "MJPEG".to_owned(),
        "video/mpeg" => format!("MPEG-{}", s.get::<i32>("mpegversion").unwrap_or(2)),
        other => other.to_owned(),
    };
    let codec = match s.get::<String>("profile") {
        Ok(p) => format!("{name} ({p})"),
        Err(_) => name,
    };
    let fps = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f32 / f.denom() as f32);
    (codec, fps)
}
