//! Which objects a rule looks at: classes, the detection's score, the median score of its track,
//! and the box's size, area and shape.

use crate::detect::Detection;
use crate::geometry::BoxN;
use crate::track::Track;

/// A rule's object filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFilter {
    /// Class indices that count.
    pub classes: Vec<u16>,
    /// Least score of the detection in this frame.
    pub min_score: f32,
    /// Least median score over the track's recent detections: an object is confirmed on its
    /// history, not on one lucky frame.
    pub threshold: f32,
    /// Smallest box `[width, height]`, fractions of the picture.
    pub min_size: [f32; 2],
    /// Largest box `[width, height]`, fractions of the picture.
    pub max_size: [f32; 2],
    /// Box area, fractions of the picture's: least and most.
    pub area: [f32; 2],
    /// Box width ÷ height in pixels: least and most (a person standing is about 0.3–0.6).
    pub ratio: [f32; 2],
}

impl ObjectFilter {
    /// Whether a tracked object counts, in a picture of `aspect` (width ÷ height).
    pub fn accepts_track(&self, t: &Track, aspect: f32) -> bool {
        t.median_score() >= self.threshold && self.accepts(t.class, t.score, &t.bbox, aspect)
    }

    /// Whether a detection counts on its own (rules that do not track, such as fire).
    pub fn accepts_detection(&self, d: &Detection, aspect: f32) -> bool {
        d.score >= self.threshold && self.accepts(d.class, d.score, &d.bbox, aspect)
    }

    fn accepts(&self, class: u16, score: f32, bbox: &BoxN, aspect: f32) -> bool {
        let (w, h) = (bbox.x2 - bbox.x1, bbox.y2 - bbox.y1);
        let ratio = if h > 0.0 { w * aspect / h } else { f32::INFINITY };
        self.classes.contains(&class)
            && score >= self.min_score
            && (self.min_size[0]..=self.max_size[0]).contains(&w)
            && (self.min_size[1]..=self.max_size[1]).contains(&h)
            && (self.area[0]..=self.area[1]).contains(&(w * h))
            && (self.ratio[0]..=self.ratio[1]).contains(&ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> ObjectFilter {
        ObjectFilter {
            classes: vec![0],
            min_score: 0.5,
            threshold: 0.5,
            min_size: [0.02, 0.05],
            max_size: [0.5, 0.9],
            area: [0.0, 1.0],
            ratio: [0.0, f32::MAX],
        }
    }

    fn det(class: u16, score: f32, bbox: BoxN) -> Detection {
        Detection { class, score, bbox }
    }

    #[test]
    fn class_score_and_size_all_count() {
        let f = filter();
        let person = BoxN { x1: 0.1, y1: 0.1, x2: 0.15, y2: 0.3 };
        assert!(f.accepts_detection(&det(0, 0.6, person), 1.0));
        assert!(!f.accepts_detection(&det(2, 0.6, person), 1.0), "class");
        assert!(!f.accepts_detection(&det(0, 0.4, person), 1.0), "score");
        let narrow = BoxN { x1: 0.1, y1: 0.1, x2: 0.11, y2: 0.3 };
        assert!(!f.accepts_detection(&det(0, 0.6, narrow), 1.0), "too narrow");
        let wide = BoxN { x1: 0.0, y1: 0.0, x2: 1.0, y2: 0.3 };
        assert!(!f.accepts_detection(&det(0, 0.6, wide), 1.0), "too wide");
    }

    #[test]
    fn area_and_shape_in_pixels() {
        // 0.1 × 0.2 of a 16:9 picture: 0.1·16 / (0.2·9) ≈ 0.89 wide for 1 tall.
        let b = BoxN { x1: 0.1, y1: 0.1, x2: 0.2, y2: 0.3 };
        let f = ObjectFilter { ratio: [0.3, 0.8], ..filter() };
        assert!(!f.accepts_detection(&det(0, 0.9, b), 16.0 / 9.0), "too square for a person");
        assert!(f.accepts_detection(&det(0, 0.9, b), 4.0 / 3.0 * 0.75), "narrower picture");
        let f = ObjectFilter { area: [0.03, 1.0], ..filter() };
        assert!(!f.accepts_detection(&det(0, 0.9, b), 1.0), "0.02 of the picture is too small");
    }
}
