//! Frame → model input: resize an I420 frame straight into a reused NCHW f32 tensor.
//!
//! One pass does scaling (bilinear luma, nearest chroma), colour conversion, channel order and
//! normalization, so no intermediate RGB image is made. Index tables are rebuilt only when the
//! source size changes: nothing is allocated per frame.

use crate::yuv::Yuv;

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

/// One output coordinate's two source neighbours and the weight of the second.
#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    lo: u32,
    hi: u32,
    w: f32,
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
    src: (usize, usize),
    xs: Vec<Tap>,
    ys: Vec<Tap>,
}

impl Preprocessor {
    /// A preprocessor producing `width`×`height` planes.
    pub fn new(width: usize, height: usize, norm: Normalization) -> Self {
        Self {
            width,
            height,
            scale: norm.std.map(|s| 1.0 / s),
            bias: [0, 1, 2].map(|i| -norm.mean[i] / norm.std[i]),
            order: norm.order,
            src: (0, 0),
            xs: Vec::with_capacity(width),
            ys: Vec::with_capacity(height),
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
                w: s - lo,
                chroma: (centre.min(src as u32 - 1)) / 2,
            });
        }
    }

    /// Writes `img`, stretched to the model size, into `out` (length [`Self::len`]).
    ///
    /// # Panics
    /// If `out` has the wrong length: that is a programming error, not an input error.
    pub fn run(&mut self, img: &Yuv<'_>, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "model input buffer size");
        if self.src != (img.width, img.height) {
            Self::taps(self.width, img.width, &mut self.xs);
            Self::taps(self.height, img.height, &mut self.ys);
            self.src = (img.width, img.height);
        }
        let plane = self.width * self.height;
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        let bgr = self.order == ChannelOrder::Bgr;
        let (sc, bs) = (self.scale, self.bias);
        for (oy, ty) in self.ys.iter().enumerate() {
            let r0 = &img.y[ty.lo as usize * img.y_stride..];
            let r1 = &img.y[ty.hi as usize * img.y_stride..];
            let ur = &img.u[ty.chroma as usize * img.uv_stride..];
            let vr = &img.v[ty.chroma as usize * img.uv_stride..];
            let row = oy * self.width;
            for (ox, tx) in self.xs.iter().enumerate() {
                let (a, b) = (tx.lo as usize, tx.hi as usize);
                let top = r0[a] as f32 + (r0[b] as f32 - r0[a] as f32) * tx.w;
                let bot = r1[a] as f32 + (r1[b] as f32 - r1[a] as f32) * tx.w;
                let luma = (top + (bot - top) * ty.w + 0.5) as u8;
                let c = tx.chroma as usize;
                let rgb = img.matrix.rgb(luma, ur[c], vr[c]);
                let i = row + ox;
                let (first, last) = if bgr { (rgb[2], rgb[0]) } else { (rgb[0], rgb[2]) };
                p0[i] = first * sc[0] + bs[0];
                p1[i] = rgb[1] * sc[1] + bs[1];
                p2[i] = last * sc[2] + bs[2];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yuv::{YuvToRgb, tests::flat};

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
        let mut p = Preprocessor::new(16, 16, NANODET);
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
        let mut p = Preprocessor::new(10, 5, rgb);
        let mut out = vec![0.0; p.len()];
        p.run(&img, &mut out);
        let row: Vec<f32> = out[..10].to_vec();
        assert!(row.windows(2).all(|w| w[1] > w[0]), "{row:?}");
        // Output pixel 0 covers source columns 0..10, centre 4.5: luma 16 + 9 → ~10.5 in RGB.
        assert!((row[0] - 1.164 * 9.0).abs() < 1.5, "{}", row[0]);
    }
}
