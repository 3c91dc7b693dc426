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

    /// The centre.
    pub fn centre(&self) -> Point {
        Point { x: (self.x1 + self.x2) * 0.5, y: (self.y1 + self.y2) * 0.5 }
    }

    /// The middle of the bottom edge: where a standing person or a vehicle touches the ground.
    pub fn bottom_centre(&self) -> Point {
        Point { x: (self.x1 + self.x2) * 0.5, y: self.y2 }
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
            return Err(format!("polygon has {} points, needs at least 3", points.len()));
        }
        if let Some([x, y]) =
            points.iter().find(|[x, y]| !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y))
        {
            return Err(format!(
                "point [{x}, {y}] is outside the image: coordinates are normalized to 0..1"
            ));
        }
        Ok(Self { points: points.iter().map(|&[x, y]| Point { x, y }).collect() })
    }

    /// The vertices.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The first pair of edges that cross each other (by the index of their first vertex), if
    /// any: such a polygon's inside is not what its author meant.
    pub fn self_intersection(&self) -> Option<(usize, usize)> {
        let n = self.points.len();
        let edge = |i: usize| (self.points[i], self.points[(i + 1) % n]);
        for i in 0..n {
            for j in i + 2..n {
                // Edges i and j share a vertex when j is the edge before i (wrapping).
                if (j + 1) % n == i {
                    continue;
                }
                let ((a, b), (c, d)) = (edge(i), edge(j));
                if segments_cross(a, b, c, d) {
                    return Some((i, j));
                }
            }
        }
        None
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

/// `> 0` when `p` is to the right of the direction `a → b` on the picture (y grows downwards),
/// `< 0` to its left, 0 on the line.
fn cross(a: Point, b: Point, p: Point) -> f32 {
    (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
}

/// Whether segments `a–b` and `c–d` cross at a point inside both.
fn segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    (d1 > 0.0) != (d2 > 0.0)
        && (d3 > 0.0) != (d4 > 0.0)
        && d1 != 0.0
        && d2 != 0.0
        && d3 != 0.0
        && d4 != 0.0
}

/// Which side of a counting line a point is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// On the left of someone walking the line from its first point to its second, with the
    /// picture read as a map (top = north): for a line drawn downwards, the right of the picture.
    A,
    /// The other side.
    B,
}

/// A counting line: a segment between two normalized points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// First point.
    pub a: Point,
    /// Second point.
    pub b: Point,
}

impl Line {
    /// Builds a line from exactly two `[x, y]` points on the image, not equal.
    pub fn new(points: &[[f32; 2]]) -> Result<Self, String> {
        let [[ax, ay], [bx, by]] = points else {
            return Err(format!("a line has exactly 2 points, not {}", points.len()));
        };
        if let Some([x, y]) =
            points.iter().find(|[x, y]| !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y))
        {
            return Err(format!(
                "point [{x}, {y}] is outside the image: coordinates are normalized to 0..1"
            ));
        }
        if (ax - bx).hypot(ay - by) < 0.01 {
            return Err("the two points are the same place: a line needs length".into());
        }
        Ok(Self { a: Point { x: *ax, y: *ay }, b: Point { x: *bx, y: *by } })
    }

    /// Signed distance of `p` from the line (normalized units): negative on side A.
    pub fn distance(&self, p: Point) -> f32 {
        cross(self.a, self.b, p) / (self.b.x - self.a.x).hypot(self.b.y - self.a.y)
    }

    /// The side `p` is on, or `None` within `margin` of the line (where jitter would flip it).
    pub fn side(&self, p: Point, margin: f32) -> Option<Side> {
        let d = self.distance(p);
        if d < -margin {
            Some(Side::A)
        } else if d > margin {
            Some(Side::B)
        } else {
            None
        }
    }

    /// Whether the move `from → to` passes through the segment itself (not its extension).
    pub fn crossed_by(&self, from: Point, to: Point) -> bool {
        let (d1, d2) = (cross(from, to, self.a), cross(from, to, self.b));
        let (d3, d4) = (cross(self.a, self.b, from), cross(self.a, self.b, to));
        (d1 >= 0.0) != (d2 >= 0.0) && (d3 >= 0.0) != (d4 >= 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_in_polygon_handles_concave_shapes() {
        // An L shape.
        let l =
            Polygon::new(&[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]])
                .unwrap();
        assert!(l.contains(Point { x: 0.25, y: 0.25 }));
        assert!(l.contains(Point { x: 0.75, y: 0.75 }));
        assert!(!l.contains(Point { x: 0.75, y: 0.25 }));
    }

    #[test]
    fn polygons_are_validated() {
        assert!(Polygon::new(&[[0.0, 0.0], [1.0, 1.0]]).is_err());
        assert!(
            Polygon::new(&[[0.0, 0.0], [1.5, 1.0], [0.0, 1.0]]).unwrap_err().contains("normalized")
        );
    }

    #[test]
    fn self_intersections_are_found() {
        let bowtie = Polygon::new(&[[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]).unwrap();
        assert_eq!(bowtie.self_intersection(), Some((0, 2)));
        let square = Polygon::new(&[[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]).unwrap();
        assert_eq!(square.self_intersection(), None);
    }

    #[test]
    fn line_sides_and_crossings() {
        // Drawn downwards: side A is the right of the picture.
        let line = Line::new(&[[0.5, 0.2], [0.5, 0.8]]).unwrap();
        let (right, left) = (Point { x: 0.6, y: 0.5 }, Point { x: 0.4, y: 0.5 });
        assert_eq!(line.side(right, 0.01), Some(Side::A));
        assert_eq!(line.side(left, 0.01), Some(Side::B));
        assert_eq!(line.side(Point { x: 0.505, y: 0.5 }, 0.01), None);
        assert!(line.crossed_by(right, left));
        // Past the end of the segment: not a crossing.
        assert!(!line.crossed_by(Point { x: 0.6, y: 0.9 }, Point { x: 0.4, y: 0.9 }));
        assert!(Line::new(&[[0.5, 0.5], [0.5, 0.5]]).is_err());
        assert!(Line::new(&[[0.5, 0.5]]).is_err());
    }

    #[test]
    fn iou_of_boxes() {
        let a = BoxN { x1: 0.0, y1: 0.0, x2: 0.5, y2: 0.5 };
        let b = BoxN { x1: 0.25, y1: 0.0, x2: 0.75, y2: 0.5 };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(a.iou(&BoxN { x1: 0.6, y1: 0.6, x2: 0.7, y2: 0.7 }), 0.0);
    }
}
