//! Decoding of the Ultralytics YOLO output layouts that users bring as their own models.
//!
//! - v8 / v11: one output `[1, 4 + C, N]`, channels first: `cx, cy, w, h` then C class scores
//!   (sigmoid applied, no objectness).
//! - v5: one output `[1, N, 5 + C]`, one row per candidate: `cx, cy, w, h, objectness` then C
//!   class probabilities; a candidate's class score is objectness × class probability.
//!
//! Boxes are in input pixels; the caller maps them back through the letterbox.

use crate::detect::Detection;
use crate::geometry::BoxN;

/// Which of the two layouts the output has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, 4 + C, N]`.
    ChannelsFirst,
    /// `[1, N, 5 + C]`.
    RowsWithObjectness,
}

/// The head's layout, found from the output shape and the card's class count.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloHead {
    /// Output layout.
    pub layout: Layout,
    /// Candidates per image.
    pub candidates: usize,
    /// Number of classes.
    pub classes: usize,
}

impl YoloHead {
    /// Matches the single output's shape against the two layouts for `classes` classes.
    pub fn from_output_shapes(shapes: &[Vec<i64>], classes: usize) -> Result<Self, String> {
        let [shape] = shapes else {
            return Err(format!("has {} outputs, a YOLO head has one", shapes.len()));
        };
        let (a, b) = match shape.as_slice() {
            [1, a, b] if *a > 0 && *b > 0 => (*a as usize, *b as usize),
            other => return Err(format!("output shape {other:?} is not [1, A, B]")),
        };
        let (layout, candidates) = if a == 4 + classes {
            (Layout::ChannelsFirst, b)
        } else if b == 5 + classes {
            (Layout::RowsWithObjectness, a)
        } else {
            return Err(format!(
                "output [1, {a}, {b}] fits neither [1, 4 + {classes}, N] (v8/v11) nor [1, N, 5 + {classes}] (v5) for the card's {classes} classes"
            ));
        };
        Ok(Self { layout, candidates, classes })
    }

    /// Number of f32 values of one image's output.
    pub fn len(&self) -> usize {
        match self.layout {
            Layout::ChannelsFirst => (4 + self.classes) * self.candidates,
            Layout::RowsWithObjectness => (5 + self.classes) * self.candidates,
        }
    }

    /// Whether the output is empty (never, for a matched head).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every (candidate, class) with score ≥ `threshold` of one image to `out`.
    pub fn decode(&self, output: &[f32], threshold: f32, out: &mut Vec<Detection>) {
        if output.len() < self.len() {
            return;
        }
        let n = self.candidates;
        let corner = |cx: f32, cy: f32, w: f32, h: f32| BoxN {
            x1: cx - w * 0.5,
            y1: cy - h * 0.5,
            x2: cx + w * 0.5,
            y2: cy + h * 0.5,
        };
        match self.layout {
            Layout::ChannelsFirst => {
                // Column-major candidates: scan class planes first so rejected candidates cost
                // one comparison per class and no box reads.
                for class in 0..self.classes {
                    let plane = &output[(4 + class) * n..][..n];
                    for (i, &score) in plane.iter().enumerate() {
                        if score >= threshold {
                            let at = |k: usize| output[k * n + i];
                            out.push(Detection {
                                class: class as u16,
                                score,
                                bbox: corner(at(0), at(1), at(2), at(3)),
                            });
                        }
                    }
                }
            }
            Layout::RowsWithObjectness => {
                let stride = 5 + self.classes;
                for row in output[..n * stride].chunks_exact(stride) {
                    let objectness = row[4];
                    if objectness < threshold {
                        continue;
                    }
                    for (class, &p) in row[5..].iter().enumerate() {
                        let score = objectness * p;
                        if score >= threshold {
                            out.push(Detection {
                                class: class as u16,
                                score,
                                bbox: corner(row[0], row[1], row[2], row[3]),
                            });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_both_layouts_and_refuses_others() {
        let v8 = YoloHead::from_output_shapes(&[vec![1, 84, 8400]], 80).unwrap();
        assert_eq!((v8.layout, v8.candidates), (Layout::ChannelsFirst, 8400));
        let v5 = YoloHead::from_output_shapes(&[vec![1, 25200, 85]], 80).unwrap();
        assert_eq!((v5.layout, v5.candidates), (Layout::RowsWithObjectness, 25200));
        let err = YoloHead::from_output_shapes(&[vec![1, 84, 8400]], 2).unwrap_err();
        assert!(err.contains("2 classes"), "{err}");
    }

    #[test]
    fn channels_first_candidates_become_corner_boxes() {
        let head = YoloHead { layout: Layout::ChannelsFirst, candidates: 3, classes: 2 };
        // Planes: cx, cy, w, h, class 0, class 1; candidate 1 is a class-1 box at (100, 50).
        let out = [
            0.0, 100.0, 0.0, //
            0.0, 50.0, 0.0, //
            0.0, 20.0, 0.0, //
            0.0, 40.0, 0.0, //
            0.1, 0.2, 0.0, //
            0.0, 0.9, 0.3, //
        ];
        let mut dets = Vec::new();
        head.decode(&out, 0.5, &mut dets);
        assert_eq!(dets.len(), 1);
        assert_eq!((dets[0].class, dets[0].score), (1, 0.9));
        assert_eq!(dets[0].bbox, BoxN { x1: 90.0, y1: 30.0, x2: 110.0, y2: 70.0 });
    }

    #[test]
    fn v5_scores_are_objectness_times_class() {
        let head = YoloHead { layout: Layout::RowsWithObjectness, candidates: 2, classes: 2 };
        let out = [
            10.0, 10.0, 4.0, 4.0, 0.9, 0.2, 0.8, //
            50.0, 50.0, 4.0, 4.0, 0.3, 1.0, 0.0, //
        ];
        let mut dets = Vec::new();
        head.decode(&out, 0.5, &mut dets);
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 1);
        assert!((dets[0].score - 0.72).abs() < 1e-6);
    }
}
