//! Evidence pictures: the frame at full resolution with the zone or line, the boxes and their
//! track ids drawn, privacy masks blacked out, as a JPEG no larger than the configured cap.
//!
//! Masks are blacked out last, right before each encoding attempt and at that attempt's size,
//! over every 16×16 JPEG block they touch and one block around: a block that is entirely black
//! encodes exactly, and the decoder's chroma smoothing reaches only into neighbouring blocks,
//! so no pixel of a mask can come out anything but black.

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;

use crate::config::SnapshotConfig;
use crate::geometry::{Line, Point, Polygon};
use crate::rules::{Hit, Shape};
use crate::source::Frame;
use crate::source::Yuv;

/// Why a snapshot could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// JPEG encoding failed.
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
    /// Even the smallest attempt exceeded the cap.
    #[error("snapshot does not fit in {0} bytes")]
    TooLarge(usize),
}

/// A packed RGB8 picture.
#[derive(Debug, Clone)]
pub struct Rgb {
    /// Pixels, 3 bytes each, row by row.
    pub data: Vec<u8>,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

const ZONE_COLOUR: [u8; 3] = [255, 215, 0];
const BOX_COLOUR: [u8; 3] = [230, 30, 30];
const OTHER_COLOUR: [u8; 3] = [255, 140, 0];
const MASK_COLOUR: [u8; 3] = [0, 160, 255];
/// JPEG's largest block (a 4:2:0 macroblock), in pixels.
const BLOCK: usize = 16;

/// 3×5 glyphs, one row per 3 bits, for the few characters drawn on pictures.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        '#' => [5, 7, 5, 7, 5],
        _ => return None,
    })
}

impl Rgb {
    /// Converts an I420 frame.
    pub fn from_yuv(img: &Yuv<'_>) -> Self {
        let mut data = Vec::new();
        img.to_rgb(&mut data);
        Self { data, width: img.width, height: img.height }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.data[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Draws a line `thickness` pixels wide between two points in pixel coordinates.
    fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: [u8; 3], thickness: i64) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        let half = thickness / 2;
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let (x, y) = ((x0 + (x1 - x0) * t) as i64, (y0 + (y1 - y0) * t) as i64);
            for dy in -half..=half {
                for dx in -half..=half {
                    self.put(x + dx, y + dy, c);
                }
            }
        }
    }

    fn px(&self, x: f32, y: f32) -> (f32, f32) {
        (x * (self.width - 1) as f32, y * (self.height - 1) as f32)
    }

    /// Line width that stays visible on large frames.
    fn thickness(&self) -> i64 {
        (self.width.max(self.height) / 400).max(1) as i64 + 1
    }

    /// Outlines a normalized polygon.
    fn draw_polygon(&mut self, poly: &Polygon, colour: [u8; 3]) {
        let t = self.thickness();
        let pts = poly.points();
        for (i, a) in pts.iter().enumerate() {
            let b = pts[(i + 1) % pts.len()];
            let (pa, pb) = (self.px(a.x, a.y), self.px(b.x, b.y));
            self.line(pa, pb, colour, t);
        }
    }

    /// Writes `text` with its top-left corner at pixel `(x, y)`, on a dark backing so it reads
    /// on any scene.
    fn text(&mut self, x: f32, y: f32, text: &str, c: [u8; 3]) {
        let scale = self.thickness() + 1;
        let (x, y) = (x as i64, y as i64);
        for (k, ch) in text.chars().enumerate() {
            let Some(rows) = glyph(ch) else { continue };
            let x0 = x + k as i64 * 4 * scale;
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    let on = bits & (4 >> col) != 0;
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let colour = if on { c } else { [0, 0, 0] };
                            self.put(x0 + col * scale + dx, y + row as i64 * scale + dy, colour);
                        }
                    }
                }
            }
        }
    }

    /// Draws a counting line with its sides labelled A and B.
    pub fn draw_line(&mut self, line: &Line) {
        let t = self.thickness();
        let (a, b) = (self.px(line.a.x, line.a.y), self.px(line.b.x, line.b.y));
        self.line(a, b, ZONE_COLOUR, t * 2);
        // Labels a little off the middle, on each side (A on the left walking from a to b,
        // picture read as a map).
        let (mx, my) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let len = (b.0 - a.0).hypot(b.1 - a.1).max(1.0);
        let (nx, ny) = ((b.1 - a.1) / len, -(b.0 - a.0) / len);
        let off = 12.0 * (t + 1) as f32;
        self.text(mx + nx * off, my + ny * off, "A", ZONE_COLOUR);
        self.text(mx - nx * off, my - ny * off, "B", ZONE_COLOUR);
    }

    /// Draws what a rule watches.
    pub fn draw_shape(&mut self, shape: &Shape) {
        match shape {
            Shape::Zone(z) => self.draw_polygon(z, ZONE_COLOUR),
            Shape::Line(l) => self.draw_line(l),
            Shape::Camera => {}
        }
    }

    /// Outlines a privacy mask (for the installer's probe picture; alarms black masks out).
    pub fn draw_mask(&mut self, mask: &Polygon) {
        self.draw_polygon(mask, MASK_COLOUR);
    }

    /// Outlines each object's box, labelled with its track id: the ones `marked` (those that
    /// opened the event) in red and thicker, the others in amber.
    pub fn draw_hits(&mut self, hits: &[Hit], marked: impl Fn(&Hit) -> bool) {
        // Marked boxes last, so that they stay on top where boxes overlap.
        let (on_top, under): (Vec<&Hit>, Vec<&Hit>) = hits.iter().partition(|h| marked(h));
        let t = self.thickness();
        for (h, colour, t) in under
            .into_iter()
            .map(|h| (h, OTHER_COLOUR, t))
            .chain(on_top.into_iter().map(|h| (h, BOX_COLOUR, t + 2)))
        {
            let b = h.detection.bbox;
            let (tl, br) = (self.px(b.x1, b.y1), self.px(b.x2, b.y2));
            let (tr, bl) = ((br.0, tl.1), (tl.0, br.1));
            self.line(tl, tr, colour, t);
            self.line(tr, br, colour, t);
            self.line(br, bl, colour, t);
            self.line(bl, tl, colour, t);
            if h.track != 0 {
                let height = 6.0 * (t + 1) as f32;
                self.text(tl.0, (tl.1 - height).max(0.0), &format!("#{}", h.track), colour);
            }
        }
    }

    /// Blacks out `masks`, widened to whole JPEG blocks and one block around (see the module
    /// documentation).
    pub fn black_out(&mut self, masks: &[Polygon]) {
        let Some(blocks) = MaskBlocks::new(masks, self.width, self.height) else { return };
        for (bx, by) in blocks.iter() {
            for y in by * BLOCK..((by + 1) * BLOCK).min(self.height) {
                let row = y * self.width * 3;
                self.data[row + bx * BLOCK * 3..row + ((bx + 1) * BLOCK).min(self.width) * 3]
                    .fill(0);
            }
        }
    }

    /// Half the size in each direction (2×2 average).
    fn halved(&self) -> Self {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let at =
                        |xx: usize, yy: usize| self.data[(yy * self.width + xx) * 3 + c] as u32;
                    let sum = at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1);
                    data.push((sum / 4) as u8);
                }
            }
        }
        Self { data, width: w, height: h }
    }

    /// Encodes as JPEG at `quality`, lowering quality and then size until it fits `max_bytes`,
    /// with `masks` blacked out of every attempt.
    pub fn to_jpeg(
        &self,
        quality: u8,
        max_bytes: usize,
        masks: &[Polygon],
    ) -> Result<Vec<u8>, EvidenceError> {
        let mut img = std::borrow::Cow::Borrowed(self);
        loop {
            if !masks.is_empty() {
                img.to_mut().black_out(masks);
            }
            for q in [quality, quality.min(60), quality.min(40)] {
                let mut out = Vec::with_capacity(max_bytes.min(img.data.len()));
                JpegEncoder::new_with_quality(&mut out, q).encode(
                    &img.data,
                    img.width as u32,
                    img.height as u32,
                    ExtendedColorType::Rgb8,
                )?;
                if out.len() <= max_bytes {
                    return Ok(out);
                }
            }
            if img.width < 64 || img.height < 64 {
                return Err(EvidenceError::TooLarge(max_bytes));
            }
            img = std::borrow::Cow::Owned(img.halved());
        }
    }
}

/// An event's picture still to be drawn: what it shows and the detect frame it was seen on.
/// It is drawn off the detector's thread, on that frame or on the record stream's frame of the
/// same moment (boxes are in fractions of the picture, so they fit either).
#[derive(Debug, Clone)]
pub struct PictureJob {
    /// The detect frame the objects were seen on.
    pub frame: Frame,
    /// The rule's zone or line.
    pub shape: Shape,
    /// The event's objects and every other object the rule considers in view.
    pub objects: Vec<Hit>,
    /// Track ids of the objects that opened the event: marked.
    pub openers: Vec<u64>,
    /// The camera's privacy masks, blacked out.
    pub masks: Vec<Polygon>,
    /// Quality and size cap.
    pub cfg: SnapshotConfig,
}

impl PictureJob {
    /// The picture drawn on `frame` (the detect frame or the record stream's), as a JPEG within
    /// the cap, masks blacked out; with the size of that frame.
    pub fn draw_on(&self, frame: &Frame) -> Result<(Vec<u8>, (usize, usize)), String> {
        let jpeg = frame
            .with_yuv(|yuv| {
                let mut rgb = Rgb::from_yuv(yuv);
                rgb.draw_shape(&self.shape);
                // An untracked event's objects (track 0: fire, smoke) are all marked as its own.
                rgb.draw_hits(&self.objects, |h| self.openers.contains(&h.track));
                rgb.to_jpeg(self.cfg.quality, self.cfg.max_bytes, &self.masks)
            })
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok((jpeg, (frame.width(), frame.height())))
    }
}

/// The 16×16 blocks of a `width`×`height` picture that masks black out: every block a mask
/// touches and one block around (see the module documentation). Pictures and re-encoded clips
/// (whose H.264 macroblocks are the same 16×16) share this rule.
#[derive(Debug, Clone)]
pub struct MaskBlocks {
    /// Blocks per row.
    columns: usize,
    blacked: Vec<bool>,
}

impl MaskBlocks {
    /// The blocks `masks` black out of a `width`×`height` picture; `None` when there is nothing
    /// to black out.
    pub fn new(masks: &[Polygon], width: usize, height: usize) -> Option<Self> {
        if masks.is_empty() || width == 0 || height == 0 {
            return None;
        }
        let (bw, bh) = (width.div_ceil(BLOCK), height.div_ceil(BLOCK));
        let mut touched = vec![false; bw * bh];
        for mask in masks {
            for y in 0..height {
                for (x0, x1) in row_spans(mask, y, width, height) {
                    for bx in x0 / BLOCK..=(x1 - 1) / BLOCK {
                        touched[(y / BLOCK) * bw + bx] = true;
                    }
                }
            }
        }
        let near = |bx: usize, by: usize, dx: i64, dy: i64| {
            let (x, y) = (bx as i64 + dx, by as i64 + dy);
            x >= 0
                && y >= 0
                && (x as usize) < bw
                && (y as usize) < bh
                && touched[y as usize * bw + x as usize]
        };
        let blacked = (0..bw * bh)
            .map(|i| (-1..=1).any(|dy| (-1..=1).any(|dx| near(i % bw, i / bw, dx, dy))))
            .collect();
        Some(Self { columns: bw, blacked })
    }

    /// The blacked-out blocks as (column, row).
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let columns = self.columns;
        self.blacked
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(move |(i, _)| (i % columns, i / columns))
    }

    /// The side of a block in pixels.
    pub const SIZE: usize = BLOCK;
}

/// The pixel spans `[x0, x1)` of row `y` whose centres are inside `poly` (even-odd rule).
fn row_spans(poly: &Polygon, y: usize, width: usize, height: usize) -> Vec<(usize, usize)> {
    let py = (y as f32 + 0.5) / height as f32;
    let pts = poly.points();
    let mut xs: Vec<f32> = Vec::new();
    for (i, a) in pts.iter().enumerate() {
        let b: Point = pts[(i + 1) % pts.len()];
        if (a.y > py) != (b.y > py) {
            xs.push(a.x + (py - a.y) * (b.x - a.x) / (b.y - a.y));
        }
    }
    xs.sort_by(f32::total_cmp);
    xs.chunks_exact(2)
        .filter_map(|pair| {
            // Pixel x is inside when its centre (x + 0.5) / width lies between the crossings.
            let x0 = (pair[0] * width as f32 - 0.5).ceil().max(0.0) as usize;
            let x1 =
                ((pair[1] * width as f32 - 0.5).floor() + 1.0).clamp(0.0, width as f32) as usize;
            (x0 < x1).then_some((x0, x1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detection;
    use crate::geometry::BoxN;
    use crate::source::{YuvToRgb, tests::flat};

    #[test]
    fn draws_and_encodes_a_decodable_jpeg_within_the_cap() {
        let (y, u, v) = flat(320, 240, (120, 128, 128));
        let img = Yuv::new(&y, &u, &v, 320, 160, 320, 240, YuvToRgb::BT601).unwrap();
        let mut rgb = Rgb::from_yuv(&img);
        rgb.draw_shape(&Shape::Zone(Polygon::new(&[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]).unwrap()));
        let hit = |track, x1, x2| Hit {
            track,
            detection: Detection { class: 0, score: 0.9, bbox: BoxN { x1, y1: 0.2, x2, y2: 0.6 } },
        };
        rgb.draw_hits(&[hit(12, 0.2, 0.4), hit(13, 0.6, 0.8)], |h| h.track == 12);
        // The object that opened the event is red, the other amber.
        let corner = |x: f32| ((0.2f32 * 239.0) as usize * 320 + (x * 319.0) as usize) * 3;
        assert_eq!(&rgb.data[corner(0.2)..corner(0.2) + 3], &BOX_COLOUR);
        assert_eq!(&rgb.data[corner(0.6)..corner(0.6) + 3], &OTHER_COLOUR);
        let jpeg = rgb.to_jpeg(80, 64 * 1024, &[]).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (320, 240));
    }

    #[test]
    fn no_pixel_of_a_mask_survives_encoding_at_any_size() {
        // Noise, the hardest case for ringing; a cap small enough to force halving.
        let data: Vec<u8> = (0..640 * 480 * 3).map(|_| fastrand::u8(..)).collect();
        let mut rgb = Rgb { data, width: 640, height: 480 };
        let mask = Polygon::new(&[[0.33, 0.21], [0.71, 0.27], [0.6, 0.77], [0.37, 0.6]]).unwrap();
        rgb.draw_line(&Line::new(&[[0.5, 0.0], [0.5, 1.0]]).unwrap());
        for cap in [400 * 1024, 40 * 1024] {
            let jpeg = rgb.to_jpeg(90, cap, std::slice::from_ref(&mask)).unwrap();
            let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
            let (w, h) = back.dimensions();
            let mut inside = 0;
            for (x, y, px) in back.enumerate_pixels() {
                let p = Point { x: (x as f32 + 0.5) / w as f32, y: (y as f32 + 0.5) / h as f32 };
                if mask.contains(p) {
                    inside += 1;
                    assert_eq!(px.0, [0, 0, 0], "pixel ({x}, {y}) of {w}×{h} inside the mask");
                }
            }
            assert!(inside > 1000, "{inside}");
        }
    }

    #[test]
    fn row_spans_follow_pixel_centres() {
        let square =
            Polygon::new(&[[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]).unwrap();
        assert_eq!(row_spans(&square, 5, 8, 8), vec![(2, 6)]);
        assert!(row_spans(&square, 0, 8, 8).is_empty());
    }

    #[test]
    fn shrinks_until_it_fits() {
        // Noise compresses badly.
        let data: Vec<u8> = (0..640 * 480 * 3).map(|_| fastrand::u8(..)).collect();
        let rgb = Rgb { data, width: 640, height: 480 };
        let jpeg = rgb.to_jpeg(95, 40 * 1024, &[]).unwrap();
        assert!(jpeg.len() <= 40 * 1024);
        let back = image::load_from_memory(&jpeg).unwrap();
        assert!(back.width() < 640);
    }
}
