//! Evidence pictures: the frame at full resolution with the zone and the boxes drawn, as a JPEG
//! no larger than the configured cap.

use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;

use crate::detection::Detection;
use crate::geometry::Polygon;
use crate::yuv::Yuv;

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

impl Rgb {
    /// Converts an I420 frame.
    pub fn from_yuv(img: &Yuv<'_>) -> Self {
        let mut data = Vec::new();
        img.to_rgb(&mut data);
        Self {
            data,
            width: img.width,
            height: img.height,
        }
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
    pub fn draw_polygon(&mut self, poly: &Polygon) {
        let t = self.thickness();
        let pts = poly.points();
        for (i, a) in pts.iter().enumerate() {
            let b = pts[(i + 1) % pts.len()];
            let (pa, pb) = (self.px(a.x, a.y), self.px(b.x, b.y));
            self.line(pa, pb, ZONE_COLOUR, t);
        }
    }

    /// Outlines each detection's box.
    pub fn draw_boxes(&mut self, dets: &[Detection]) {
        let t = self.thickness();
        for d in dets {
            let b = d.bbox;
            let (tl, br) = (self.px(b.x1, b.y1), self.px(b.x2, b.y2));
            let (tr, bl) = ((br.0, tl.1), (tl.0, br.1));
            self.line(tl, tr, BOX_COLOUR, t);
            self.line(tr, br, BOX_COLOUR, t);
            self.line(br, bl, BOX_COLOUR, t);
            self.line(bl, tl, BOX_COLOUR, t);
        }
    }

    /// Half the size in each direction (2×2 average).
    fn halved(&self) -> Self {
        let (w, h) = (self.width / 2, self.height / 2);
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| self.data[(yy * self.width + xx) * 3 + c] as u32;
                    let sum = at(2 * x, 2 * y) + at(2 * x + 1, 2 * y) + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1);
                    data.push((sum / 4) as u8);
                }
            }
        }
        Self { data, width: w, height: h }
    }

    /// Encodes as JPEG at `quality`, lowering quality and then size until it fits `max_bytes`.
    pub fn to_jpeg(&self, quality: u8, max_bytes: usize) -> Result<Vec<u8>, EvidenceError> {
        let mut img = std::borrow::Cow::Borrowed(self);
        loop {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BoxN;
    use crate::yuv::{YuvToRgb, tests::flat};

    #[test]
    fn draws_and_encodes_a_decodable_jpeg_within_the_cap() {
        let (y, u, v) = flat(320, 240, (120, 128, 128));
        let img = Yuv::new(&y, &u, &v, 320, 160, 320, 240, YuvToRgb::BT601).unwrap();
        let mut rgb = Rgb::from_yuv(&img);
        rgb.draw_polygon(&Polygon::new(&[[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]).unwrap());
        rgb.draw_boxes(&[Detection {
            class: 0,
            score: 0.9,
            bbox: BoxN { x1: 0.2, y1: 0.2, x2: 0.4, y2: 0.6 },
        }]);
        // A box corner is red.
        let i = ((0.2f32 * 239.0) as usize * 320 + (0.2f32 * 319.0) as usize) * 3;
        assert_eq!(&rgb.data[i..i + 3], &BOX_COLOUR);
        let jpeg = rgb.to_jpeg(80, 64 * 1024).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (320, 240));
    }

    #[test]
    fn shrinks_until_it_fits() {
        // Noise compresses badly.
        let data: Vec<u8> = (0..640 * 480 * 3).map(|_| fastrand::u8(..)).collect();
        let rgb = Rgb { data, width: 640, height: 480 };
        let jpeg = rgb.to_jpeg(95, 40 * 1024).unwrap();
        assert!(jpeg.len() <= 40 * 1024);
        let back = image::load_from_memory(&jpeg).unwrap();
        assert!(back.width() < 640);
    }
}
