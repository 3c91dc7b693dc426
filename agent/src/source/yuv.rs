//! Borrowed 4:2:0 images (I420: three planes; NV12: luma and interleaved chroma) and their
//! conversion to RGB.
//!
//! Decoders hand out I420 (software) or NV12 (hardware); both are read where they lie, and
//! converting only what is needed (the model-sized input, or a snapshot when an alarm fires) is
//! far cheaper than converting every decoded frame to RGB.

/// YUV → RGB coefficients for one colour matrix and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvToRgb {
    y_offset: f32,
    y_gain: f32,
    rv: f32,
    gu: f32,
    gv: f32,
    bu: f32,
}

impl YuvToRgb {
    /// BT.601 (SD video), limited range 16..235.
    pub const BT601: Self =
        Self { y_offset: 16.0, y_gain: 1.164, rv: 1.596, gu: 0.392, gv: 0.813, bu: 2.017 };
    /// BT.709 (HD video), limited range.
    pub const BT709: Self =
        Self { y_offset: 16.0, y_gain: 1.164, rv: 1.793, gu: 0.213, gv: 0.533, bu: 2.112 };
    /// BT.601, full range 0..255 (JPEG-style cameras).
    pub const BT601_FULL: Self =
        Self { y_offset: 0.0, y_gain: 1.0, rv: 1.402, gu: 0.344, gv: 0.714, bu: 1.772 };

    /// RGB of one sample, each channel 0..255 (not rounded).
    /// Per-value tables of the matrix: luma term, and the chroma terms of R, G and B.
    pub fn tables(&self) -> RgbTables {
        let mut t = RgbTables {
            luma: [0.0; 256],
            r_v: [0.0; 256],
            g_uv: ([0.0; 256], [0.0; 256]),
            b_u: [0.0; 256],
        };
        for i in 0..256 {
            let x = i as f32;
            t.luma[i] = (x - self.y_offset) * self.y_gain;
            t.r_v[i] = self.rv * (x - 128.0);
            t.g_uv.0[i] = -self.gu * (x - 128.0);
            t.g_uv.1[i] = -self.gv * (x - 128.0);
            t.b_u[i] = self.bu * (x - 128.0);
        }
        t
    }

    /// The RGB colour (0..255 per channel) of one Y, U, V sample.
    #[inline(always)]
    pub fn rgb(&self, y: u8, u: u8, v: u8) -> [f32; 3] {
        let c = (y as f32 - self.y_offset) * self.y_gain;
        let d = u as f32 - 128.0;
        let e = v as f32 - 128.0;
        [
            (c + self.rv * e).clamp(0.0, 255.0),
            (c - self.gu * d - self.gv * e).clamp(0.0, 255.0),
            (c + self.bu * d).clamp(0.0, 255.0),
        ]
    }
}

/// [`YuvToRgb`] as lookup tables: R = luma + r_v, G = luma + g_u + g_v, B = luma + b_u.
#[derive(Debug, Clone)]
pub struct RgbTables {
    /// Luma term by Y.
    pub luma: [f32; 256],
    /// Red's V term.
    pub r_v: [f32; 256],
    /// Green's U and V terms.
    pub g_uv: ([f32; 256], [f32; 256]),
    /// Blue's U term.
    pub b_u: [f32; 256],
}

/// A borrowed 4:2:0 image: sample `x` of chroma row `r` is `u[r * uv_stride + x * uv_step]`
/// (and the same in `v`).
#[derive(Debug, Clone, Copy)]
pub struct Yuv<'a> {
    /// Luma plane.
    pub y: &'a [u8],
    /// Blue-difference plane (half width, half height, rounded up).
    pub u: &'a [u8],
    /// Red-difference plane.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row.
    pub uv_stride: usize,
    /// Bytes from one chroma sample to the next in a row: 1 for I420, 2 for NV12.
    pub uv_step: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Colour conversion.
    pub matrix: YuvToRgb,
}

/// Why plane data does not describe an image.
#[derive(Debug, thiserror::Error)]
#[error("4:2:0 planes too small for {width}x{height}")]
pub struct PlaneSizeError {
    width: usize,
    height: usize,
}

impl<'a> Yuv<'a> {
    /// An I420 image; checks that the planes hold a `width`×`height` image with these strides.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        y: &'a [u8],
        u: &'a [u8],
        v: &'a [u8],
        y_stride: usize,
        uv_stride: usize,
        width: usize,
        height: usize,
        matrix: YuvToRgb,
    ) -> Result<Self, PlaneSizeError> {
        let img = Self { y, u, v, y_stride, uv_stride, uv_step: 1, width, height, matrix };
        if img.fits() { Ok(img) } else { Err(PlaneSizeError { width, height }) }
    }

    /// An NV12 image (`uv` holds U and V interleaved); checks that the planes hold a
    /// `width`×`height` image with these strides.
    pub fn nv12(
        y: &'a [u8],
        uv: &'a [u8],
        y_stride: usize,
        uv_stride: usize,
        width: usize,
        height: usize,
        matrix: YuvToRgb,
    ) -> Result<Self, PlaneSizeError> {
        let v = uv.get(1..).unwrap_or_default();
        let img = Self { y, u: uv, v, y_stride, uv_stride, uv_step: 2, width, height, matrix };
        if img.fits() { Ok(img) } else { Err(PlaneSizeError { width, height }) }
    }

    /// Whether the planes hold the image their strides and size say.
    fn fits(&self) -> bool {
        let (cw, ch) = (self.width.div_ceil(2), self.height.div_ceil(2));
        // A chroma row: its last sample is (cw - 1) steps after its first.
        let row = (cw.max(1) - 1) * self.uv_step + 1;
        self.width > 0
            && self.height > 0
            && self.y_stride >= self.width
            && self.uv_stride >= row
            && self.y.len() >= self.y_stride * (self.height - 1) + self.width
            && self.u.len() >= self.uv_stride * (ch - 1) + row
            && self.v.len() >= self.uv_stride * (ch - 1) + row
    }

    /// The U and V samples at chroma column `x` of chroma row `row`.
    #[inline(always)]
    pub fn chroma(&self, row: usize, x: usize) -> (u8, u8) {
        let at = row * self.uv_stride + x * self.uv_step;
        (self.u[at], self.v[at])
    }

    /// Converts the whole image to packed RGB8 (`width*height*3` bytes) into `out`.
    pub fn to_rgb(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.width * self.height * 3);
        for row in 0..self.height {
            let yr = &self.y[row * self.y_stride..][..self.width];
            for (col, &yv) in yr.iter().enumerate() {
                let (u, v) = self.chroma(row / 2, col / 2);
                let [r, g, b] = self.matrix.rgb(yv, u, v);
                out.extend_from_slice(&[(r + 0.5) as u8, (g + 0.5) as u8, (b + 0.5) as u8]);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An I420 image of one flat colour (Y, U, V).
    pub(crate) fn flat(
        width: usize,
        height: usize,
        yuv: (u8, u8, u8),
    ) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        (vec![yuv.0; width * height], vec![yuv.1; cw * ch], vec![yuv.2; cw * ch])
    }

    #[test]
    fn limited_range_black_white_and_red() {
        let m = YuvToRgb::BT601;
        assert_eq!(m.rgb(16, 128, 128).map(|c| c.round()), [0.0, 0.0, 0.0]);
        assert_eq!(m.rgb(235, 128, 128).map(|c| c.round()), [255.0, 255.0, 255.0]);
        let [r, g, b] = m.rgb(81, 90, 240);
        assert!(r > 250.0 && g < 5.0 && b < 5.0, "{r} {g} {b}");
    }

    #[test]
    fn short_planes_are_refused() {
        let (y, u, v) = flat(4, 4, (16, 128, 128));
        assert!(Yuv::new(&y, &u, &v, 4, 2, 4, 4, YuvToRgb::BT601).is_ok());
        assert!(Yuv::new(&y[..10], &u, &v, 4, 2, 4, 4, YuvToRgb::BT601).is_err());
        assert!(Yuv::new(&y, &u, &v, 4, 2, 5, 4, YuvToRgb::BT601).is_err());
    }

    #[test]
    fn nv12_reads_as_the_same_picture_as_i420() {
        // A 4×2 picture: left half red, right half blue, in both layouts.
        let y = [81u8, 81, 41, 41, 81, 81, 41, 41];
        let (u, v) = ([90u8, 240], [240u8, 110]);
        let uv = [90u8, 240, 240, 110];
        let i420 = Yuv::new(&y, &u, &v, 4, 2, 4, 2, YuvToRgb::BT601).unwrap();
        let nv12 = Yuv::nv12(&y, &uv, 4, 4, 4, 2, YuvToRgb::BT601).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        i420.to_rgb(&mut a);
        nv12.to_rgb(&mut b);
        assert_eq!(a, b);
        assert!(Yuv::nv12(&y, &uv[..3], 4, 4, 4, 2, YuvToRgb::BT601).is_err());
    }

    #[test]
    fn odd_sizes_convert_to_rgb() {
        let (y, u, v) = flat(5, 3, (235, 128, 128));
        let img = Yuv::new(&y, &u, &v, 5, 3, 5, 3, YuvToRgb::BT601).unwrap();
        let mut rgb = Vec::new();
        img.to_rgb(&mut rgb);
        assert_eq!(rgb.len(), 5 * 3 * 3);
        assert!(rgb.iter().all(|&c| c == 255));
    }
}
