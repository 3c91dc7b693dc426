//! An in-process RTSP server (gst-rtsp-server) that serves a video file as a camera would:
//! H.264 over RTP, on an ephemeral port, restarting the clip for each new client.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RtspServerError {
    /// GStreamer is not usable.
    #[error("GStreamer: {0}")]
    Gstreamer(String),
    /// The clip is absent.
    #[error("video file {0} not found (run `make setup`)")]
    Missing(String),
    /// The server could not bind.
    #[error("RTSP server cannot listen: {0}")]
    Bind(String),
}

/// The video codec a served stream is encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    /// H.264 baseline.
    H264,
    /// H.265 (HEVC).
    H265,
}

/// A running RTSP server; stops when dropped.
#[derive(Debug)]
pub struct RtspServer {
    port: u16,
    server: rtsp::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
}

impl RtspServer {
    /// Serves `clip` (any format GStreamer decodes), re-encoded as H.264, at `/{mount}` on
    /// 127.0.0.1 and a free port.
    pub fn serve_file(clip: &Path, mount: &str) -> Result<Self, RtspServerError> {
        Self::serve_file_on(clip, mount, 0)
    }

    /// Like [`Self::serve_file`] on a given port (0: any free one), so a test can stop a
    /// camera and bring it back at the same address.
    pub fn serve_file_on(clip: &Path, mount: &str, port: u16) -> Result<Self, RtspServerError> {
        Self::serve(clip, mount, port, Codec::H264)
    }

    /// Serves `clip` re-encoded with `codec` at `/{mount}` on `port` (0: any free one).
    pub fn serve(
        clip: &Path,
        mount: &str,
        port: u16,
        codec: Codec,
    ) -> Result<Self, RtspServerError> {
        let encode = match codec {
            Codec::H264 => {
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=2000 ! \
                 video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
            }
            Codec::H265 => {
                "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=2000 ! \
                 rtph265pay name=pay0 pt=96 config-interval=1"
            }
        };
        let launch = |location: &str| {
            format!("( filesrc location=\"{location}\" ! decodebin ! videoconvert ! {encode} )")
        };
        Self::serve_mounts(clip, &[(mount.to_owned(), launch)], port)
    }

    /// Serves `clip` as H.264 at several sizes, one mount per `(mount, width, height)`: a
    /// camera's sub-stream and main stream.
    pub fn serve_sizes(clip: &Path, mounts: &[(&str, u32, u32)]) -> Result<Self, RtspServerError> {
        let mounts: Vec<(String, _)> = mounts
            .iter()
            .map(|&(mount, width, height)| {
                let launch = move |location: &str| {
                    format!(
                        "( filesrc location=\"{location}\" ! decodebin ! videoconvert ! \
                         videoscale ! video/x-raw,width={width},height={height} ! \
                         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 \
                         bitrate=2000 ! video/x-h264,profile=baseline ! \
                         rtph264pay name=pay0 pt=96 config-interval=1 )"
                    )
                };
                (mount.to_owned(), launch)
            })
            .collect();
        Self::serve_mounts(clip, &mounts, 0)
    }

    /// Serves MP4 files as they are (no re-encoding, so serving costs next to no CPU), one per
    /// `(mount, file, codec)`: synthetic cameras for capacity measurements.
    pub fn serve_mp4s(streams: &[(String, PathBuf, Codec)]) -> Result<Self, RtspServerError> {
        let mut launches = Vec::with_capacity(streams.len());
        for (mount, file, codec) in streams {
            let location = quoted(file)?;
            let (parse, pay) = match codec {
                Codec::H264 => ("h264parse", "rtph264pay"),
                Codec::H265 => ("h265parse", "rtph265pay"),
            };
            launches.push((
                mount.clone(),
                format!(
                    "( filesrc location=\"{location}\" ! qtdemux ! {parse} ! \
                     {pay} name=pay0 pt=96 config-interval=1 )"
                ),
            ));
        }
        Self::serve_launches(launches, 0)
    }

    /// Serves `clip` at each `(mount, launch)`, the launch line made from the file's path.
    fn serve_mounts(
        clip: &Path,
        mounts: &[(String, impl Fn(&str) -> String)],
        port: u16,
    ) -> Result<Self, RtspServerError> {
        let location = quoted(clip)?;
        let launches = mounts.iter().map(|(m, launch)| (m.clone(), launch(&location))).collect();
        Self::serve_launches(launches, port)
    }

    /// Serves each `(mount, launch line)` on `port` (0: any free one).
    fn serve_launches(mounts: Vec<(String, String)>, port: u16) -> Result<Self, RtspServerError> {
        gst::init().map_err(|e| RtspServerError::Gstreamer(e.to_string()))?;
        let mounts: Vec<(String, String)> = mounts
            .into_iter()
            .map(|(m, launch)| (format!("/{}", m.trim_start_matches('/')), launch))
            .collect();

        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || {
                let ctx = glib::MainContext::new();
                let main_loop = glib::MainLoop::new(Some(&ctx), false);
                let server = rtsp::RTSPServer::new();
                server.set_address("127.0.0.1");
                server.set_service(&port.to_string());
                if let Some(points) = server.mount_points() {
                    for (mount, launch) in &mounts {
                        let factory = rtsp::RTSPMediaFactory::new();
                        factory.set_launch(launch);
                        // Each client gets its own pipeline: a reconnecting camera replays the clip.
                        factory.set_shared(false);
                        points.add_factory(mount, factory);
                    }
                }
                let attached = ctx
                    .with_thread_default(|| server.attach(Some(&ctx)))
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match attached {
                    Ok(_id) => {
                        let _ =
                            tx.send(Ok((server.bound_port(), main_loop.clone(), server.clone())));
                        ctx.with_thread_default(|| main_loop.run()).ok();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| RtspServerError::Bind(e.to_string()))?;
        let (port, main_loop, server) = rx
            .recv()
            .map_err(|e| RtspServerError::Bind(e.to_string()))?
            .map_err(RtspServerError::Bind)?;
        let port =
            u16::try_from(port).map_err(|_| RtspServerError::Bind(format!("port {port}")))?;
        Ok(Self { port, server, main_loop, thread: Some(thread) })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a mount, e.g. `rtsp://127.0.0.1:PORT/walkway`.
    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{}", self.port, mount.trim_start_matches('/'))
    }
}

/// `file`'s path for a launch line, or what is missing.
fn quoted(file: &Path) -> Result<String, RtspServerError> {
    if !file.is_file() {
        return Err(RtspServerError::Missing(file.display().to_string()));
    }
    Ok(file.display().to_string().replace('"', "\\\""))
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // Cut every client, as a camera that loses power would; their media stop with them.
        self.server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
