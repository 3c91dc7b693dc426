//! Frame → model input: resize a 4:2:0 frame (I420 or NV12), or one tile of it, straight into
//! a reused NCHW f32 tensor.
//!
//! One pass does cropping, scaling (bilinear luma, nearest chroma), colour conversion, channel
//! order and normalization, so no intermediate RGB image is made. Index tables are rebuilt only
//! when the source size or the tile changes: nothing is allocated per frame. The picture is
//! stretched to the input or letterboxed (aspect kept, the rest padded), as the model card says.

use crate::geometry::BoxN;
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

/// Where the picture landed in the model input, in input pixels, and which part of the frame
/// it was.
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
    /// The part of the frame fed to the input (normalized, on whole pixels).
    pub crop: BoxN,
}

impl Content {
    /// Maps a box in input pixels to normalized frame coordinates, clamped to the tile.
    pub fn to_frame(self, x1: f32, y1: f32, x2: f32, y2: f32) -> BoxN {
        let c = self.crop;
        let nx = |v: f32| c.x1 + ((v - self.x) / self.w).clamp(0.0, 1.0) * (c.x2 - c.x1);
        let ny = |v: f32| c.y1 + ((v - self.y) / self.h).clamp(0.0, 1.0) * (c.y2 - c.y1);
        BoxN { x1: nx(x1), y1: ny(y1), x2: nx(x2), y2: ny(y2) }
    }
}

/// A tile in whole source pixels: left, top, width, height.
type Rect = (usize, usize, usize, usize);

/// `crop` (normalized) of a `w`×`h` picture in whole pixels, at least one.
fn pixels(crop: BoxN, w: usize, h: usize) -> Rect {
    let x0 = ((crop.x1.clamp(0.0, 1.0) * w as f32).round() as usize).min(w - 1);
    let y0 = ((crop.y1.clamp(0.0, 1.0) * h as f32).round() as usize).min(h - 1);
    let x1 = ((crop.x2.clamp(0.0, 1.0) * w as f32).round() as usize).clamp(x0 + 1, w);
    let y1 = ((crop.y2.clamp(0.0, 1.0) * h as f32).round() as usize).clamp(y0 + 1, h);
    (x0, y0, x1 - x0, y1 - y0)
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
    /// The frame size and tile the index tables are for.
    src: (usize, usize, Rect),
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
            src: (0, 0, (0, 0, 0, 0)),
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

    /// Taps of `dst` outputs over the `len` source samples from `start`.
    fn taps(dst: usize, start: usize, len: usize, out: &mut Vec<Tap>) {
        out.clear();
        let ratio = len as f32 / dst as f32;
        let (first, last) = (start as f32, (start + len - 1) as f32);
        for i in 0..dst {
            let s = (first + (i as f32 + 0.5) * ratio - 0.5).clamp(first, last);
            let lo = s.floor();
            let hi = (lo + 1.0).min(last);
            let centre = start as u32 + ((i as f32 + 0.5) * ratio) as u32;
            out.push(Tap {
                lo: lo as u32,
                hi: hi as u32,
                w: ((s - lo) * 256.0).round() as u32,
                chroma: (centre.min((start + len) as u32 - 1)) / 2,
            });
        }
    }

    /// Where the last frame landed in the input (for mapping boxes back to the frame).
    pub fn content(&self) -> Content {
        self.content
    }

    /// Recomputes the fit and the index tables for a new source size or tile.
    fn fit(&mut self, frame_w: usize, frame_h: usize, tile: Rect) {
        let (tx, ty, src_w, src_h) = tile;
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
        let (fw, fh) = (frame_w as f32, frame_h as f32);
        let crop = BoxN {
            x1: tx as f32 / fw,
            y1: ty as f32 / fh,
            x2: (tx + src_w) as f32 / fw,
            y2: (ty + src_h) as f32 / fh,
        };
        self.content = Content { x: x0 as f32, y: y0 as f32, w: cw as f32, h: ch as f32, crop };
        Self::taps(cw, tx, src_w, &mut self.xs);
        Self::taps(ch, ty, src_h, &mut self.ys);
        self.src = (frame_w, frame_h, tile);
    }

    /// Writes the `tile` (normalized; [`crate::detect::WHOLE`] for the whole picture) of `img`,
    /// fitted to the model size, into `out` (length [`Self::len`]).
    ///
    /// # Panics
    /// If `out` has the wrong length: that is a programming error, not an input error.
    pub fn run(&mut self, img: &Yuv<'_>, tile: BoxN, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "model input buffer size");
        let rect = pixels(tile, img.width, img.height);
        if self.src != (img.width, img.height, rect) {
            self.fit(img.width, img.height, rect);
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
                for (c, tx) in self.chroma_row.iter_mut().zip(&self.xs) {
                    let (u, v) = img.chroma(chroma_of, tx.chroma as usize);
                    let (u, v) = (u as usize, v as usize);
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
    use crate::detect::WHOLE;
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
        p.run(&img, WHOLE, &mut out);
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
        p.run(&img, WHOLE, &mut out);
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
        p.run(&img, WHOLE, &mut out);
        let c = p.content();
        assert_eq!((c.x, c.y, c.w, c.h), (0.0, 4.0, 32.0, 24.0));
        assert_eq!(out[0], 114.0, "top band");
        assert_eq!(out[31 * 32], 114.0, "bottom band");
        assert!(out[16 * 32 + 16] > 250.0, "white content {}", out[16 * 32 + 16]);
        // A box covering the content maps back to the whole frame.
        let b = c.to_frame(0.0, 4.0, 32.0, 28.0);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.0, 0.0, 1.0, 1.0));
    }
    #[test]
    fn a_tile_is_cut_from_its_place_and_boxes_map_back_through_it() {
        // Left half black, right half white; the tile is the right half's top half.
        let (w, h) = (64, 48);
        let (mut y, u, v) = flat(w, h, (16, 128, 128));
        for r in 0..h {
            y[r * w + w / 2..][..w / 2].fill(235);
        }
        let img = Yuv::new(&y, &u, &v, w, w / 2, w, h, YuvToRgb::BT601).unwrap();
        let plain = Normalization { order: ChannelOrder::Rgb, mean: [0.0; 3], std: [1.0; 3] };
        let mut p = Preprocessor::new(16, 16, plain, Resize::Stretch);
        let mut out = vec![0.0; p.len()];
        let tile = crate::geometry::BoxN { x1: 0.5, y1: 0.0, x2: 1.0, y2: 0.5 };
        p.run(&img, tile, &mut out);
        assert!(out[..256].iter().all(|&r| r > 250.0), "only white pixels");
        let b = p.content().to_frame(0.0, 0.0, 16.0, 16.0);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.5, 0.0, 1.0, 0.5));
    }
}
