//! Frame → model input: resize an I420 frame straight into a reused NCHW f32 tensor.
//!
//! One pass does scaling (bilinear luma, nearest chroma), colour conversion, channel order and
//! normalization, so no intermediate RGB image is made. Index tables are rebuilt only when the
//! source size changes: nothing is allocated per frame. Frames are stretched to the input or
//! letterboxed (aspect kept, the rest padded), as the model card says.

use crate::source::{RgbTables, Yuv, YuvToRgb};

/// Order of the colour planes in the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV-trained models such as NanoDet).
    Bgr,
}

/// How pixel values are normalized: `(value - mean) / std`, per input plane, values 0..255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Plane order.
    pub order: ChannelOrder,
    /// Mean per input plane (in plane order).
    pub mean: [f32; 3],
    /// Standard deviation per input plane (in plane order).
    pub std: [f32; 3],
}

/// How a frame is fitted into the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The whole frame scaled to the input size, aspect ratio not kept.
    Stretch,
    /// Scaled to fit with its aspect ratio, centred, the border filled with grey `pad` (0..255).
    Letterbox {
        /// Border value on every channel before normalization.
        pad: u8,
    },
}

/// Where the frame landed in the model input, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Content {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Content {
    /// Maps a box in input pixels to normalized frame coordinates, clamped to the frame.
    pub fn to_frame(self, x1: f32, y1: f32, x2: f32, y2: f32) -> crate::geometry::BoxN {
        let nx = |v: f32| ((v - self.x) / self.w).clamp(0.0, 1.0);
        let ny = |v: f32| ((v - self.y) / self.h).clamp(0.0, 1.0);
        crate::geometry::BoxN { x1: nx(x1), y1: ny(y1), x2: nx(x2), y2: ny(y2) }
    }
}

/// One output coordinate's two source neighbours, the weight of the second (0..=256), and
/// the nearest chroma sample.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    lo: u32,
    hi: u32,
    w: u32,
    chroma: u32,
}

/// Resizes and normalizes frames into a model-input buffer of fixed size.
#[derive(Debug)]
pub struct Preprocessor {
    width: usize,
    height: usize,
    scale: [f32; 3],
    bias: [f32; 3],
    order: ChannelOrder,
    resize: Resize,
    src: (usize, usize),
    content: Content,
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    /// Colour tables of the last frame's matrix.
    tables: Option<(YuvToRgb, Box<RgbTables>)>,
    /// One output row's chroma terms (R, G, B), reused.
    chroma_row: Vec<[f32; 3]>,
}

impl Preprocessor {
    /// A preprocessor producing `width`×`height` planes.
    pub fn new(width: usize, height: usize, norm: Normalization, resize: Resize) -> Self {
        Self {
            width,
            height,
            scale: norm.std.map(|s| 1.0 / s),
            bias: [0, 1, 2].map(|i| -norm.mean[i] / norm.std[i]),
            order: norm.order,
            resize,
            src: (0, 0),
            content: Content::default(),
            xs: Vec::with_capacity(width),
            ys: Vec::with_capacity(height),
            tables: None,
            chroma_row: Vec::with_capacity(width),
        }
    }

    /// Number of f32 values one image occupies (3 × width × height).
    pub fn len(&self) -> usize {
        3 * self.width * self.height
    }

    /// Whether the output is empty (never, for a real model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn taps(dst: usize, src: usize, out: &mut Vec<Tap>) {
        out.clear();
        let ratio = src as f32 / dst as f32;
        let last = (src - 1) as f32;
        for i in 0..dst {
            let s = ((i as f32 + 0.5) * ratio - 0.5).clamp(0.0, last);
            let lo = s.floor();
            let hi = (lo + 1.0).min(last);
            let centre = ((i as f32 + 0.5) * ratio) as u32;
            out.push(Tap {
                lo: lo as u32,
                hi: hi as u32,
                w: ((s - lo) * 256.0).round() as u32,
                chroma: (centre.min(src as u32 - 1)) / 2,
            });
        }
    }

    /// Where the last frame landed in the input (for mapping boxes back to the frame).
    pub fn content(&self) -> Content {
        self.content
    }

    /// Recomputes the fit and the index tables for a new source size.
    fn fit(&mut self, src_w: usize, src_h: usize) {
        let (w, h) = (self.width as f32, self.height as f32);
        let (cw, ch) = match self.resize {
            Resize::Stretch => (self.width, self.height),
            Resize::Letterbox { .. } => {
                let s = (w / src_w as f32).min(h / src_h as f32);
                let fit = |v: usize, max: usize| ((v as f32 * s).round() as usize).clamp(1, max);
                (fit(src_w, self.width), fit(src_h, self.height))
            }
        };
        let (x0, y0) = ((self.width - cw) / 2, (self.height - ch) / 2);
        self.content = Content { x: x0 as f32, y: y0 as f32, w: cw as f32, h: ch as f32 };
        Self::taps(cw, src_w, &mut self.xs);
        Self::taps(ch, src_h, &mut self.ys);
        self.src = (src_w, src_h);
    }

    /// Writes `img`, fitted to the model size, into `out` (length [`Self::len`]).
    ///
    /// # Panics
    /// If `out` has the wrong length: that is a programming error, not an input error.
    pub fn run(&mut self, img: &Yuv<'_>, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "model input buffer size");
        if self.src != (img.width, img.height) {
            self.fit(img.width, img.height);
        }
        let plane = self.width * self.height;
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        let bgr = self.order == ChannelOrder::Bgr;
        let (sc, bs) = (self.scale, self.bias);
        if let Resize::Letterbox { pad } = self.resize {
            let pad = pad as f32;
            p0.fill(pad * sc[0] + bs[0]);
            p1.fill(pad * sc[1] + bs[1]);
            p2.fill(pad * sc[2] + bs[2]);
        }
        if self.tables.as_ref().is_none_or(|(m, _)| *m != img.matrix) {
            self.tables = Some((img.matrix, Box::new(img.matrix.tables())));
        }
        let Some((_, t)) = &self.tables else { return };
        let (x0, y0) = (self.content.x as usize, self.content.y as usize);
        let (first, last) = if bgr { (2, 0) } else { (0, 2) };
        let cw = self.xs.len();
        self.chroma_row.resize(cw, [0.0; 3]);
        let mut chroma_of = usize::MAX;
        for (oy, ty) in self.ys.iter().enumerate() {
            // Chroma terms change every other source row only.
            if ty.chroma as usize != chroma_of {
                chroma_of = ty.chroma as usize;
                let ur = &img.u[chroma_of * img.uv_stride..];
                let vr = &img.v[chroma_of * img.uv_stride..];
                for (c, tx) in self.chroma_row.iter_mut().zip(&self.xs) {
                    let (u, v) = (ur[tx.chroma as usize] as usize, vr[tx.chroma as usize] as usize);
                    *c = [t.r_v[v], t.g_uv.0[u] + t.g_uv.1[v], t.b_u[u]];
                }
            }
            let r0 = &img.y[ty.lo as usize * img.y_stride..][..img.width];
            let r1 = &img.y[ty.hi as usize * img.y_stride..][..img.width];
            let (wy1, wy0) = (ty.w, 256 - ty.w);
            let row = (y0 + oy) * self.width + x0;
            let (o0, o1, o2) = (&mut p0[row..][..cw], &mut p1[row..][..cw], &mut p2[row..][..cw]);
            for (ox, (tx, c)) in self.xs.iter().zip(&self.chroma_row).enumerate() {
                let (a, b) = (tx.lo as usize, tx.hi as usize);
                let (wx1, wx0) = (tx.w, 256 - tx.w);
                let top = r0[a] as u32 * wx0 + r0[b] as u32 * wx1;
                let bot = r1[a] as u32 * wx0 + r1[b] as u32 * wx1;
                let luma = t.luma[((top * wy0 + bot * wy1 + (1 << 15)) >> 16) as usize];
                let rgb = [
                    (luma + c[0]).clamp(0.0, 255.0),
                    (luma + c[1]).clamp(0.0, 255.0),
                    (luma + c[2]).clamp(0.0, 255.0),
                ];
                o0[ox] = rgb[first] * sc[0] + bs[0];
                o1[ox] = rgb[1] * sc[1] + bs[1];
                o2[ox] = rgb[last] * sc[2] + bs[2];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{YuvToRgb, tests::flat};

    const NANODET: Normalization = Normalization {
        order: ChannelOrder::Bgr,
        mean: [103.53, 116.28, 123.675],
        std: [57.375, 57.12, 58.395],
    };

    #[test]
    fn a_flat_red_frame_normalizes_per_plane_in_bgr_order() {
        // Pure red in BT.601 limited range.
        let (y, u, v) = flat(64, 48, (81, 90, 240));
        let img = Yuv::new(&y, &u, &v, 64, 32, 64, 48, YuvToRgb::BT601).unwrap();
        let mut p = Preprocessor::new(16, 16, NANODET, Resize::Stretch);
        let mut out = vec![0.0; p.len()];
        p.run(&img, &mut out);
        let (b, g, r) = (out[0], out[256], out[512]);
        let expect = |v: f32, c: usize| (v - NANODET.mean[c]) / NANODET.std[c];
        assert!((r - expect(255.0, 2)).abs() < 0.1, "r {r}");
        assert!((g - expect(0.0, 1)).abs() < 0.1, "g {g}");
        assert!((b - expect(0.0, 0)).abs() < 0.1, "b {b}");
    }

    #[test]
    fn a_luma_gradient_survives_downscaling_in_order() {
        let (w, h) = (100, 10);
        let mut y = vec![0u8; w * h];
        for r in 0..h {
            for c in 0..w {
                y[r * w + c] = (16 + c * 2) as u8;
            }
        }
        let (_, u, v) = flat(w, h, (0, 128, 128));
        let img = Yuv::new(&y, &u, &v, w, w / 2, w, h, YuvToRgb::BT601).unwrap();
        let rgb = Normalization { order: ChannelOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] };
        let mut p = Preprocessor::new(10, 5, rgb, Resize::Stretch);
        let mut out = vec![0.0; p.len()];
        p.run(&img, &mut out);
        let row: Vec<f32> = out[..10].to_vec();
        assert!(row.windows(2).all(|w| w[1] > w[0]), "{row:?}");
        // Output pixel 0 covers source columns 0..10, centre 4.5: luma 16 + 9 → ~10.5 in RGB.
        assert!((row[0] - 1.164 * 9.0).abs() < 1.5, "{}", row[0]);
    }

    #[test]
    fn letterbox_centres_the_frame_and_pads_the_rest() {
        // A 4:3 frame into a square input: bands above and below.
        let (y, u, v) = flat(64, 48, (235, 128, 128));
        let img = Yuv::new(&y, &u, &v, 64, 32, 64, 48, YuvToRgb::BT601).unwrap();
        let plain = Normalization { order: ChannelOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] };
        let mut p = Preprocessor::new(32, 32, plain, Resize::Letterbox { pad: 114 });
        let mut out = vec![0.0; p.len()];
        p.run(&img, &mut out);
        let c = p.content();
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 4.0, 32.0, 24.0));
        assert_eq!(out[0], 114.0, "top band");
        assert_eq!(out[31 * 32], 114.0, "bottom band");
        assert!(out[16 * 32 + 16] > 250.0, "white content {}", out[16 * 32 + 16]);
        // A box covering the content maps back to the whole frame.
        let b = c.to_frame(0.0, 4.0, 32.0, 28.0);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.0, 0.0, 1.0, 1.0));
    }
}
