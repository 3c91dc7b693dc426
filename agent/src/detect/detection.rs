//! Detected objects and class-wise non-maximum suppression.

use crate::geometry::BoxN;

/// One object found by the detector in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Class index in the model's output.
    pub class: u16,
    /// Confidence 0..1.
    pub score: f32,
    /// Where, in normalized image coordinates.
    pub bbox: BoxN,
}

/// Keeps, per class, the best-scoring boxes that overlap no better box by more than `iou`.
///
/// Sorts `dets` in place (by class, then score) and truncates it to the survivors, so the
/// caller's buffer is reused and nothing is allocated.
pub fn nms_classwise(dets: &mut Vec<Detection>, iou: f32) {
    dets.sort_unstable_by(|a, b| a.class.cmp(&b.class).then(b.score.total_cmp(&a.score)));
    let mut kept = 0;
    for i in 0..dets.len() {
        let cand = dets[i];
        // Survivors of the same class are contiguous at the end of the kept prefix.
        let suppressed = dets[..kept]
            .iter()
            .rev()
            .take_while(|k| k.class == cand.class)
            .any(|k| k.bbox.iou(&cand.bbox) > iou);
        if !suppressed {
            dets[kept] = cand;
            kept += 1;
        }
    }
    dets.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: u16, score: f32, x: f32) -> Detection {
        Detection { class, score, bbox: BoxN { x1: x, y1: 0.0, x2: x + 0.2, y2: 0.2 } }
    }

    #[test]
    fn overlapping_boxes_of_one_class_collapse_to_the_best() {
        let mut d = vec![det(0, 0.6, 0.0), det(0, 0.9, 0.01), det(0, 0.7, 0.5)];
        nms_classwise(&mut d, 0.5);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].score, 0.9);
        assert_eq!(d[1].score, 0.7);
    }

    #[test]
    fn different_classes_never_suppress_each_other() {
        let mut d = vec![det(0, 0.9, 0.0), det(2, 0.8, 0.0), det(0, 0.5, 0.0)];
        nms_classwise(&mut d, 0.5);
        assert_eq!(d.len(), 2);
        assert!(d.iter().any(|x| x.class == 2));
    }
}
