//! Normalized image geometry: boxes and polygons in 0..1 coordinates.

/// A point in normalized image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// 0 = left edge, 1 = right edge.
    pub x: f32,
    /// 0 = top edge, 1 = bottom edge.
    pub y: f32,
}

/// An axis-aligned box in normalized image coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BoxN {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

impl BoxN {
    /// Area (0 for an empty box).
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union with `other`.
    pub fn iou(&self, other: &BoxN) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// The middle of the bottom edge: where a standing person or a vehicle touches the ground.
    pub fn bottom_centre(&self) -> Point {
        Point {
            x: (self.x1 + self.x2) * 0.5,
            y: self.y2,
        }
    }
}

/// A simple polygon in normalized coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    /// Builds a polygon from `[x, y]` pairs, refusing fewer than 3 points or points off the image.
    pub fn new(points: &[[f32; 2]]) -> Result<Self, String> {
        if points.len() < 3 {
            return Err(format!(
                "polygon has {} points, needs at least 3",
                points.len()
            ));
        }
        if let Some([x, y]) = points
            .iter()
            .find(|[x, y]| !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y))
        {
            return Err(format!(
                "point [{x}, {y}] is outside the image: coordinates are normalized to 0..1"
            ));
        }
        Ok(Self {
            points: points.iter().map(|&[x, y]| Point { x, y }).collect(),
        })
    }

    /// The vertices.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Whether `p` lies inside (even-odd rule).
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        let n = self.points.len();
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_in_polygon_handles_concave_shapes() {
        // An L shape.
        let l = Polygon::new(&[
            [0.0, 0.0],
            [0.5, 0.0],
            [0.5, 0.5],
            [1.0, 0.5],
            [1.0, 1.0],
            [0.0, 1.0],
        ])
        .unwrap();
        assert!(l.contains(Point { x: 0.25, y: 0.25 }));
        assert!(l.contains(Point { x: 0.75, y: 0.75 }));
        assert!(!l.contains(Point { x: 0.75, y: 0.25 }));
    }

    #[test]
    fn polygons_are_validated() {
        assert!(Polygon::new(&[[0.0, 0.0], [1.0, 1.0]]).is_err());
        assert!(Polygon::new(&[[0.0, 0.0], [1.5, 1.0], [0.0, 1.0]])
            .unwrap_err()
            .contains("normalized"));
    }

    #[test]
    fn iou_of_boxes() {
        let a = BoxN { x1: 0.0, y1: 0.0, x2: 0.5, y2: 0.5 };
        let b = BoxN { x1: 0.25, y1: 0.0, x2: 0.75, y2: 0.5 };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoxN { x1: 0.6, y1: 0.6, x2: 0.7, y2: 0.7 }), 0.0);
    }
}
