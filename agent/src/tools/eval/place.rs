//! Distant people: each frame of the clip shrunk and placed inside a large picture (a far
//! corner of a 4 MP camera's view), its labels mapped the same way, so that accuracy on small
//! objects is measured on real footage with real labels.

use crate::geometry::BoxN;
use crate::source::{Yuv, YuvToRgb};

use super::GtBox;

/// Where the clip's frames go: a `canvas`-sized picture, the frame shrunk by `scale` with its
/// top-left corner at `at` (pixels).
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    /// The large picture's width and height.
    pub canvas: (usize, usize),
    /// The frame's size in it, as a fraction of its own.
    pub scale: f32,
    /// The placed frame's top-left corner.
    pub at: (usize, usize),
}

/// A reused canvas: planes of the large picture.
#[derive(Debug)]
pub struct Canvas {
    placement: Placement,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    matrix: YuvToRgb,
}

impl Placement {
    /// The placement of `frame`-sized frames in the lower right third of `canvas`, shrunk by
    /// `scale`; `None` if they would not fit.
    pub fn far_corner(canvas: (usize, usize), frame: (usize, usize), scale: f32) -> Option<Self> {
        let (w, h) = ((frame.0 as f32 * scale) as usize, (frame.1 as f32 * scale) as usize);
        let at = ((canvas.0 * 2 / 3).min(canvas.0.checked_sub(w)?), canvas.1 / 10);
        (scale > 0.0 && at.1 + h <= canvas.1).then_some(Self { canvas, scale, at })
    }

    /// The placed frame's area in the canvas, normalized.
    pub fn area(&self, frame: (usize, usize)) -> BoxN {
        let (cw, ch) = (self.canvas.0 as f32, self.canvas.1 as f32);
        let (x, y) = (self.at.0 as f32, self.at.1 as f32);
        let (w, h) = (frame.0 as f32 * self.scale, frame.1 as f32 * self.scale);
        BoxN { x1: x / cw, y1: y / ch, x2: (x + w) / cw, y2: (y + h) / ch }
    }

    /// A label of the frame, where it lands in the canvas (pixels).
    pub fn label(&self, g: &GtBox) -> GtBox {
        let map = |v: f32, o: usize| o as f32 + v * self.scale;
        GtBox {
            x1: map(g.x1, self.at.0),
            y1: map(g.y1, self.at.1),
            x2: map(g.x2, self.at.0),
            y2: map(g.y2, self.at.1),
            ..*g
        }
    }
}

impl Canvas {
    /// A grey canvas for `placement`.
    pub fn new(placement: Placement) -> Self {
        let (w, h) = placement.canvas;
        let c = w.div_ceil(2) * h.div_ceil(2);
        Self {
            placement,
            y: vec![110; w * h],
            u: vec![128; c],
            v: vec![128; c],
            matrix: YuvToRgb::BT601,
        }
    }

    /// Draws `frame` shrunk into its place (each pixel the mean of the frame's pixels it
    /// covers, as a lens would), then lends the canvas.
    pub fn with_frame<R>(&mut self, frame: &Yuv<'_>, f: impl FnOnce(&Yuv<'_>) -> R) -> R {
        let p = self.placement;
        let (cw, ch) = p.canvas;
        let (w, h) =
            ((frame.width as f32 * p.scale) as usize, (frame.height as f32 * p.scale) as usize);
        let inv = 1.0 / p.scale;
        let span = |d: usize, max: usize| {
            let a = (d as f32 * inv) as usize;
            (a.min(max - 1), (((d + 1) as f32 * inv) as usize).clamp(a + 1, max))
        };
        for dy in 0..h.min(ch - p.at.1) {
            let (y0, y1) = span(dy, frame.height);
            for dx in 0..w.min(cw - p.at.0) {
                let (x0, x1) = span(dx, frame.width);
                let mut sum = 0u32;
                for sy in y0..y1 {
                    sum += frame.y[sy * frame.y_stride..][x0..x1]
                        .iter()
                        .map(|&v| v as u32)
                        .sum::<u32>();
                }
                let n = ((y1 - y0) * (x1 - x0)) as u32;
                self.y[(p.at.1 + dy) * cw + p.at.0 + dx] = (sum / n) as u8;
            }
        }
        // Chroma: the nearest sample is enough at this size.
        let ccw = cw.div_ceil(2);
        for dy in 0..h.min(ch - p.at.1).div_ceil(2) {
            let sy = (((2 * dy) as f32 * inv) as usize / 2).min(frame.height.div_ceil(2) - 1);
            for dx in 0..w.min(cw - p.at.0).div_ceil(2) {
                let sx = (((2 * dx) as f32 * inv) as usize / 2).min(frame.width.div_ceil(2) - 1);
                let at = (p.at.1 / 2 + dy) * ccw + p.at.0 / 2 + dx;
                (self.u[at], self.v[at]) = frame.chroma(sy, sx);
            }
        }
        self.matrix = frame.matrix;
        match Yuv::new(&self.y, &self.u, &self.v, cw, ccw, cw, ch, self.matrix) {
            Ok(img) => f(&img),
            // The planes are sized for the canvas above.
            Err(e) => unreachable!("canvas planes: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_area_land_where_the_frame_is_drawn() {
        let p = Placement::far_corner((2560, 1440), (768, 576), 0.4).unwrap();
        let g = GtBox { id: 1, x1: 0.0, y1: 0.0, x2: 768.0, y2: 576.0, ignore: false };
        let l = p.label(&g);
        let a = p.area((768, 576));
        assert!((l.x1 / 2560.0 - a.x1).abs() < 1e-4 && (l.y2 / 1440.0 - a.y2).abs() < 1e-4);
        assert!((l.y2 - l.y1 - 230.4).abs() < 0.01);
        // A white frame drawn into the grey canvas shows where its label says.
        let (y, u, v) = (vec![235u8; 768 * 576], vec![128u8; 384 * 288], vec![128u8; 384 * 288]);
        let frame = Yuv::new(&y, &u, &v, 768, 384, 768, 576, YuvToRgb::BT601).unwrap();
        let mut canvas = Canvas::new(p);
        canvas.with_frame(&frame, |img| {
            let at = |x: f32, y: f32| img.y[y as usize * img.y_stride + x as usize];
            assert_eq!(at(l.x1 + 2.0, l.y1 + 2.0), 235);
            assert_eq!(at(l.x2 - 2.0, l.y2 - 2.0), 235);
            assert_eq!(at(l.x1 - 2.0, l.y1 + 2.0), 110);
            assert_eq!(at(l.x2 + 2.0, l.y2 + 2.0), 110);
        });
    }
}
