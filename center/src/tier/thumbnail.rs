//! The small picture an event travels upward with: its best picture, at most [`SIDE`] pixels
//! a side. The full picture stays where the event happened.

use std::io::Cursor;

use image::ImageReader;
use image::codecs::jpeg::JpegEncoder;

/// The longest side of a thumbnail, pixels.
pub const SIDE: u32 = 320;

/// JPEG quality of a thumbnail: small, and still telling a person from a car.
const QUALITY: u8 = 70;

/// A thumbnail of `jpeg` (itself, when it is no larger); none if it does not decode.
pub fn thumbnail(jpeg: &[u8]) -> Option<Vec<u8>> {
    let picture =
        ImageReader::with_format(Cursor::new(jpeg), image::ImageFormat::Jpeg).decode().ok()?;
    if picture.width() <= SIDE && picture.height() <= SIDE {
        return Some(jpeg.to_vec());
    }
    let small = picture.thumbnail(SIDE, SIDE).to_rgb8();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY).encode_image(&small).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90).encode_image(&picture).expect("encodes");
        out
    }

    #[test]
    fn shrinks_to_the_side_keeping_the_shape() {
        let big = jpeg(1920, 1080);
        let small = thumbnail(&big).expect("a thumbnail");
        let decoded = image::load_from_memory(&small).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (320, 180));
        assert!(small.len() * 10 < big.len(), "{} of {} bytes", small.len(), big.len());
    }

    #[test]
    fn a_small_picture_goes_as_it_is_and_garbage_not_at_all() {
        let small = jpeg(300, 200);
        assert_eq!(thumbnail(&small).as_deref(), Some(&small[..]));
        assert_eq!(thumbnail(b"not a picture"), None);
    }
}
