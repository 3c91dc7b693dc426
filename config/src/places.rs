//! `[[zones]]` and `[[lines]]`: the places on a camera's picture that rules watch.

use serde::Deserialize;

use super::Problem;
use super::problem::{check_polygon, check_unique};
use crate::geometry::Line;

/// A named polygon on one camera's image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone id.
    pub id: String,
    /// The camera whose image the points refer to.
    pub camera: String,
    /// Vertices `[x, y]`, normalized: 0..1 from the image's left and top edges.
    pub points: Vec<[f32; 2]>,
}

/// A counting line on one camera's image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Line id.
    pub id: String,
    /// The camera whose image the points refer to.
    pub camera: String,
    /// Its two ends `[x, y]`, normalized. Side A is on the left of someone walking from the
    /// first point to the second, reading the picture as a map (top = north).
    pub points: Vec<[f32; 2]>,
}

/// Problems of the zones and lines; `check_camera` says whether a camera id exists.
pub(super) fn problems(
    zones: &[ZoneConfig],
    lines: &[LineConfig],
    check_camera: impl Fn(String, &str, &mut Vec<Problem>),
    p: &mut Vec<Problem>,
) {
    check_unique("zones", zones.iter().map(|z| z.id.as_str()), p);
    for (i, z) in zones.iter().enumerate() {
        check_camera(format!("zones[{i}].camera"), &z.camera, p);
        check_polygon(&format!("zones[{i}].points"), &z.points, p);
    }
    check_unique("lines", lines.iter().map(|l| l.id.as_str()), p);
    for (i, l) in lines.iter().enumerate() {
        check_camera(format!("lines[{i}].camera"), &l.camera, p);
        if let Err(e) = Line::new(&l.points) {
            p.push(Problem::new(format!("lines[{i}].points"), e));
        }
    }
}
