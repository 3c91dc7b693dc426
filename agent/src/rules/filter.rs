//! Which objects a rule looks at: classes, score and box size.

use crate::geometry::BoxN;

/// A rule's object filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFilter {
    /// Class indices that count.
    pub classes: Vec<u16>,
    /// Least score.
    pub min_score: f32,
    /// Smallest box `[width, height]`, fractions of the picture.
    pub min_size: [f32; 2],
    /// Largest box `[width, height]`, fractions of the picture.
    pub max_size: [f32; 2],
}

impl ObjectFilter {
    /// Whether an object of `class` seen with `score` in `bbox` counts.
    pub fn accepts(&self, class: u16, score: f32, bbox: &BoxN) -> bool {
        let (w, h) = (bbox.x2 - bbox.x1, bbox.y2 - bbox.y1);
        self.classes.contains(&class)
            && score >= self.min_score
            && w >= self.min_size[0]
            && h >= self.min_size[1]
            && w <= self.max_size[0]
            && h <= self.max_size[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_score_and_size_all_count() {
        let f = ObjectFilter {
            classes: vec![0],
            min_score: 0.5,
            min_size: [0.02, 0.05],
            max_size: [0.5, 0.9],
        };
        let person = BoxN { x1: 0.1, y1: 0.1, x2: 0.15, y2: 0.3 };
        assert!(f.accepts(0, 0.6, &person));
        assert!(!f.accepts(2, 0.6, &person), "class");
        assert!(!f.accepts(0, 0.4, &person), "score");
        assert!(!f.accepts(0, 0.6, &BoxN { x1: 0.1, y1: 0.1, x2: 0.11, y2: 0.3 }), "too narrow");
        assert!(!f.accepts(0, 0.6, &BoxN { x1: 0.0, y1: 0.0, x2: 1.0, y2: 0.3 }), "too wide");
    }
}
