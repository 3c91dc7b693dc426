//! A problem found in a config, and the checks every section shares: unique ids, polygons.

use crate::geometry::Polygon;

/// One problem in a config: the option it concerns, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The option's key path, e.g. `rules[2].zone` (`crate::config::locate` finds its line).
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when that is not obvious from the message.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `at`.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self { at: at.into(), message: message.into(), hint: None }
    }

    /// The same problem with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Ids as a hint lists them: in order, each once.
pub(super) fn ids<'a>(all: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for id in all {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Duplicate ids in the `what` array, reported at the second use.
pub(super) fn check_unique<'a>(
    what: &str,
    ids: impl Iterator<Item = &'a str>,
    problems: &mut Vec<Problem>,
) {
    let mut seen = std::collections::HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i) {
            problems.push(
                Problem::new(
                    format!("{what}[{i}].id"),
                    format!("{id:?} is already the id of {what}[{first}]"),
                )
                .hint("ids must be unique: rename one"),
            );
        }
    }
}

/// A polygon's points: at least 3, on the picture, edges not crossing.
pub(super) fn check_polygon(at: &str, points: &[[f32; 2]], problems: &mut Vec<Problem>) {
    match Polygon::new(points) {
        Err(e) if points.iter().flatten().any(|c| *c > 1.0) => problems.push(
            Problem::new(at, e).hint("divide pixels by the picture's width and height (probe-camera prints them): x 120 of 768 is 0.156"),
        ),
        Err(e) => problems.push(Problem::new(at, e)),
        Ok(poly) => {
            if let Some((i, j)) = poly.self_intersection() {
                problems.push(
                    Problem::new(at, format!("the polygon crosses itself (edge {i} crosses edge {j})"))
                        .hint("list the points in order around the area, clockwise or anticlockwise"),
                );
            }
        }
    }
}
