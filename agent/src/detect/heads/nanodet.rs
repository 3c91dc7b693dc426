//! Decoding of the NanoDet head: per-stride class scores and distribution-of-distance boxes.
//!
//! Per stride s the model gives class scores `[1, N, C]` (sigmoid applied) and box logits
//! `[1, N, 4 × (R+1)]`: for each side (left, top, right, bottom) a softmax over R+1 bins whose
//! expectation × s is the distance from the anchor centre `((col + 0.5) s, (row + 0.5) s)`.

use crate::detect::Detection;
use crate::geometry::BoxN;

/// One output level (stride) of the head.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Pixels per grid cell.
    pub stride: usize,
    /// Grid columns.
    pub cols: usize,
    /// Grid rows.
    pub rows: usize,
    /// Index of the class-score output.
    pub scores: usize,
    /// Index of the box output.
    pub boxes: usize,
}

/// The head's layout, found from the output shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct NanodetHead {
    /// Levels, finest first.
    pub levels: Vec<Level>,
    /// Number of classes.
    pub classes: usize,
    /// Bins per side (R + 1).
    pub bins: usize,
}

impl NanodetHead {
    /// Matches `[1, N, C]` score outputs with `[1, N, 4·bins]` box outputs of the same N.
    ///
    /// `shapes` are the model's output shapes in output order; the input is `width`×`height`.
    pub fn from_output_shapes(
        shapes: &[Vec<i64>],
        width: usize,
        height: usize,
    ) -> Result<Self, String> {
        let dims: Vec<(usize, usize)> = shapes
            .iter()
            .map(|s| match s.as_slice() {
                [1, n, c] if *n > 0 && *c > 0 => Ok((*n as usize, *c as usize)),
                other => Err(format!("output shape {other:?} is not [1, N, C]")),
            })
            .collect::<Result<_, _>>()?;
        // Box outputs have 4·bins channels with bins a small number; score outputs have C ≠ that.
        let mut chans: Vec<usize> = dims.iter().map(|d| d.1).collect();
        chans.sort_unstable();
        chans.dedup();
        let [a, b] = chans[..] else {
            return Err(format!(
                "expected two kinds of output (class scores and boxes), found channel counts {chans:?}"
            ));
        };
        let (box_ch, classes) = if a % 4 == 0 && a < b { (a, b) } else { (b, a) };
        if box_ch % 4 != 0 {
            return Err(format!("no box output with 4 × bins channels among {chans:?}"));
        }
        let mut levels = Vec::new();
        for (si, &(n, c)) in dims.iter().enumerate() {
            if c != classes {
                continue;
            }
            let bi = dims
                .iter()
                .position(|&(bn, bc)| bn == n && bc == box_ch)
                .ok_or_else(|| format!("no box output for the {n}-anchor score output"))?;
            // Grids round up, as the network's strided convolutions do.
            let stride = (2..=6)
                .map(|p| 1usize << p)
                .find(|s| width.div_ceil(*s) * height.div_ceil(*s) == n)
                .ok_or_else(|| {
                    format!("{n} anchors match no stride for a {width}x{height} input")
                })?;
            let (cols, rows) = (width.div_ceil(stride), height.div_ceil(stride));
            levels.push(Level { stride, cols, rows, scores: si, boxes: bi });
        }
        levels.sort_by_key(|l| l.stride);
        if levels.is_empty() {
            return Err("no score outputs".into());
        }
        Ok(Self { levels, classes, bins: box_ch / 4 })
    }

    /// Appends every (anchor, class) with score ≥ `threshold` of one level to `out`, boxes in
    /// input pixels.
    pub fn decode_level(
        &self,
        level: &Level,
        scores: &[f32],
        boxes: &[f32],
        threshold: f32,
        out: &mut Vec<Detection>,
    ) {
        let (c, nb) = (self.classes, self.bins);
        let anchors = level.cols * level.rows;
        if scores.len() < anchors * c || boxes.len() < anchors * 4 * nb {
            return;
        }
        for i in 0..anchors {
            let row_scores = &scores[i * c..][..c];
            let mut decoded: Option<BoxN> = None;
            for (class, &score) in row_scores.iter().enumerate() {
                if score < threshold {
                    continue;
                }
                let bbox = *decoded.get_or_insert_with(|| {
                    let (col, row) = (i % level.cols, i / level.cols);
                    let s = level.stride as f32;
                    let (cx, cy) = ((col as f32 + 0.5) * s, (row as f32 + 0.5) * s);
                    let d = &boxes[i * 4 * nb..][..4 * nb];
                    let side = |k: usize| expectation(&d[k * nb..][..nb]) * s;
                    BoxN { x1: cx - side(0), y1: cy - side(1), x2: cx + side(2), y2: cy + side(3) }
                });
                out.push(Detection { class: class as u16, score, bbox });
            }
        }
    }
}

/// Expected bin index under a softmax of `logits`.
fn expectation(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0, 0.0);
    for (j, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * j as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<Vec<i64>> {
        vec![
            vec![1, 2704, 80],
            vec![1, 2704, 44],
            vec![1, 676, 80],
            vec![1, 676, 44],
            vec![1, 169, 80],
            vec![1, 169, 44],
        ]
    }

    #[test]
    fn finds_the_three_nanodet_levels_from_shapes() {
        let h = NanodetHead::from_output_shapes(&shapes(), 416, 416).unwrap();
        assert_eq!(h.classes, 80);
        assert_eq!(h.bins, 11);
        let strides: Vec<_> =
            h.levels.iter().map(|l| (l.stride, l.cols, l.scores, l.boxes)).collect();
        assert_eq!(strides, [(8, 52, 0, 1), (16, 26, 2, 3), (32, 13, 4, 5)]);
    }

    #[test]
    fn refuses_other_heads_with_a_reason() {
        let err = NanodetHead::from_output_shapes(&[vec![1, 84, 8400]], 640, 640).unwrap_err();
        assert!(err.contains("two kinds") || err.contains("not"), "{err}");
    }

    #[test]
    fn decodes_one_anchor_into_a_box_around_its_centre() {
        let h = NanodetHead::from_output_shapes(&shapes(), 416, 416).unwrap();
        let level = &h.levels[2]; // stride 32, 13×13
        let mut scores = vec![0.0; 169 * 80];
        let mut boxes = vec![0.0; 169 * 44];
        let anchor = 13 * 6 + 6; // centre cell: centre (208, 208)
        scores[anchor * 80] = 0.9; // class 0
        // Each side: all weight on bin 2 → distance 2 × 32 = 64 px.
        for k in 0..4 {
            boxes[anchor * 44 + k * 11 + 2] = 50.0;
        }
        let mut out = Vec::new();
        h.decode_level(level, &scores, &boxes, 0.5, &mut out);
        assert_eq!(out.len(), 1);
        let b = out[0].bbox;
        assert!((b.x1 - 144.0).abs() < 0.5 && (b.x2 - 272.0).abs() < 0.5, "{b:?}");
        assert!((b.y1 - 144.0).abs() < 0.5 && (b.y2 - 272.0).abs() < 0.5, "{b:?}");
    }
}
