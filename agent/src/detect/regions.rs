//! Which parts of a camera's picture are inferred. Stretching a whole 4 MP frame into a 416×416
//! input makes a distant person a few pixels tall, below what any detector finds; so each
//! camera infers the zones and lines its rules watch (with a margin, so that an object standing
//! on an edge is seen whole), cut into tiles of the model's shape when the area is larger than
//! the input, at most `detect_tiles` of them. The area is decided when the config loads; the
//! tiles once per frame size. Boxes found in a tile are mapped back to the frame; an object cut
//! by a tile's edge and seen whole in the neighbouring tile is dropped, and the rest are
//! suppressed across tiles as within one.

use crate::config::{AgentConfig, DetectArea, Needs, RuleKindConfig};
use crate::geometry::BoxN;

use super::detection::Detection;

/// The whole picture.
pub const WHOLE: BoxN = BoxN { x1: 0.0, y1: 0.0, x2: 1.0, y2: 1.0 };

/// Margin above a watched zone, as a fraction of its height, plus [`MARGIN_MIN`] of the
/// picture: room for the body of someone whose feet are on its far edge.
const MARGIN_ABOVE: f32 = 0.25;
/// Margin on the other sides, as a fraction of the zone's size, plus a tenth of
/// [`MARGIN_MIN`].
const MARGIN: f32 = 0.05;
/// The least margin above, as a fraction of the picture.
const MARGIN_MIN: f32 = 0.02;
/// Around a line, a fraction of its length on every side: tracks are followed up to it and
/// beyond.
const LINE_MARGIN: f32 = 0.25;
/// Neighbouring tiles overlap by at least this fraction of a tile, so that an object cut by
/// one tile's edge is whole in the next one.
const OVERLAP: f32 = 0.15;
/// Tiles are scaled up by a third at most (source pixels per input pixel ≥ 0.75): more
/// blurs people the detector then misses (measured on a pair standing at a small zone).
const MIN_SCALE: f32 = 0.75;
/// Source pixels per input pixel that one more tile is not worth going below: objects shrink
/// at most by half (a person 60 px tall in the picture is still 30 px for the model).
const DETAIL: f32 = 2.0;
/// A layout this close to the finest the tile limit allows is fine enough: fewer tiles win.
const CLOSE_ENOUGH: f32 = 1.1;
/// A box this close to a tile's edge (as a fraction of the tile) is cut by it.
const EDGE: f32 = 0.01;

/// What one camera infers: its watched area and how many tiles it may cost.
#[derive(Debug, Clone)]
pub struct Tiling {
    /// The watched area (normalized); `None` for the whole picture.
    area: Option<BoxN>,
    max_tiles: usize,
    /// The frame and input size the tiles were laid out for.
    laid_for: Option<((usize, usize), (usize, usize))>,
    layout: Layout,
}

/// Tiles laid out over an area.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    /// The tiles, normalized.
    tiles: Vec<BoxN>,
    /// The least overlap of neighbouring tiles, across and down (normalized).
    overlap: (f32, f32),
    /// The bounding box of the tiles: an edge of a tile inside it has a neighbour beyond.
    outer: BoxN,
}

impl Layout {
    /// The whole picture in one piece.
    fn whole() -> Self {
        Self { tiles: vec![WHOLE], overlap: (0.0, 0.0), outer: WHOLE }
    }
}

impl Tiling {
    /// The whole picture in one piece: what tools without rules infer.
    pub fn whole() -> Self {
        Self { area: None, max_tiles: 1, laid_for: None, layout: Layout::whole() }
    }

    /// Camera `camera` of `config`: its rules' zones and lines, or the whole picture when its
    /// `detect_area` is `frame`, a rule watches the whole camera, or no rule uses detections.
    pub fn of_camera(config: &AgentConfig, camera: usize) -> Self {
        let cam = &config.cameras[camera];
        let area = match cam.detect_area {
            DetectArea::Frame => None,
            DetectArea::Zones => watched_area(config, &cam.id),
        };
        Self::new(area, cam.detect_tiles as usize)
    }

    /// A zone whose bounding box is `zone`, watched as a camera's rules would be (with the
    /// margin), in at most `max_tiles` tiles.
    pub fn around(zone: BoxN, max_tiles: usize) -> Self {
        Self::new(Some(with_margin(zone)), max_tiles)
    }

    fn new(area: Option<BoxN>, max_tiles: usize) -> Self {
        Self { area, max_tiles: max_tiles.max(1), laid_for: None, layout: Layout::whole() }
    }

    /// How many tiles the last frame size took.
    pub fn tiles_laid(&self) -> usize {
        self.layout.tiles.len()
    }

    /// The tiles (normalized) of a `frame`-sized picture for an `input`-sized model.
    pub fn tiles(&mut self, frame: (usize, usize), input: (usize, usize)) -> &[BoxN] {
        if self.laid_for != Some((frame, input)) {
            self.layout = match self.area {
                None => Layout::whole(),
                Some(area) => layout(area, frame, input, self.max_tiles),
            };
            self.laid_for = Some((frame, input));
        }
        &self.layout.tiles
    }

    /// Drops from `dets`, found in `tile`, the objects cut by one of its edges that another
    /// tile sees whole: a box touching an edge with a neighbour beyond it, and narrower there
    /// than the two tiles' overlap. (An object wider than the overlap is cut in both tiles; its
    /// pieces stay, for the suppression across tiles.)
    pub fn keep_whole(&self, tile: BoxN, dets: &mut Vec<Detection>) {
        let l = &self.layout;
        if l.tiles.len() < 2 {
            return;
        }
        let outer = l.outer;
        let (ex, ey) = ((tile.x2 - tile.x1) * EDGE, (tile.y2 - tile.y1) * EDGE);
        let (ox, oy) = l.overlap;
        dets.retain(|d| {
            let b = d.bbox;
            let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
            let cut_across = (tile.x1 > outer.x1 && b.x1 - tile.x1 < ex)
                || (tile.x2 < outer.x2 && tile.x2 - b.x2 < ex);
            let cut_down = (tile.y1 > outer.y1 && b.y1 - tile.y1 < ey)
                || (tile.y2 < outer.y2 && tile.y2 - b.y2 < ey);
            !((cut_across && w < ox) || (cut_down && h < oy))
        });
    }
}

/// The bounding box of the zones and lines that camera `id`'s detecting rules watch, with a
/// margin; `None` when one of them watches the whole camera or none uses detections.
fn watched_area(config: &AgentConfig, id: &str) -> Option<BoxN> {
    let mut area: Option<BoxN> = None;
    let mut add = |b: BoxN| {
        area = Some(area.map_or(b, |a| BoxN {
            x1: a.x1.min(b.x1),
            y1: a.y1.min(b.y1),
            x2: a.x2.max(b.x2),
            y2: a.y2.max(b.y2),
        }));
    };
    for rule in &config.rules {
        if rule.kind == RuleKindConfig::CameraTamper {
            continue;
        }
        let zone = rule.zone.as_ref().and_then(|z| config.zones.iter().find(|x| &x.id == z));
        let line = rule.line.as_ref().and_then(|l| config.lines.iter().find(|x| &x.id == l));
        match (zone, line) {
            (Some(zone), _) if rule.kind.needs() != Needs::Line && zone.camera == id => {
                add(with_margin(bounds(&zone.points)));
            }
            (_, Some(line)) if rule.kind.needs() == Needs::Line && line.camera == id => {
                let b = bounds(&line.points);
                let m = (b.x2 - b.x1).hypot(b.y2 - b.y1) * LINE_MARGIN;
                add(within(BoxN { x1: b.x1 - m, y1: b.y1 - m, x2: b.x2 + m, y2: b.y2 + m }));
            }
            (Some(_), _) | (_, Some(_)) => {}
            _ if rule.camera.as_deref() == Some(id) => return None,
            _ => {}
        }
    }
    area
}

/// The bounding box of `points`.
fn bounds(points: &[[f32; 2]]) -> BoxN {
    let start = BoxN { x1: f32::MAX, y1: f32::MAX, x2: f32::MIN, y2: f32::MIN };
    points.iter().fold(start, |b, [x, y]| BoxN {
        x1: b.x1.min(*x),
        y1: b.y1.min(*y),
        x2: b.x2.max(*x),
        y2: b.y2.max(*y),
    })
}

/// `b` clipped to the picture.
fn within(b: BoxN) -> BoxN {
    BoxN { x1: b.x1.max(0.0), y1: b.y1.max(0.0), x2: b.x2.min(1.0), y2: b.y2.min(1.0) }
}

/// A zone's bounding box `b` grown by the margins, within the picture.
fn with_margin(b: BoxN) -> BoxN {
    let (w, h) = (b.x2 - b.x1, b.y2 - b.y1);
    let (side, above) = (w * MARGIN + MARGIN_MIN / 10.0, h * MARGIN_ABOVE + MARGIN_MIN);
    let below = h * MARGIN + MARGIN_MIN / 10.0;
    within(BoxN { x1: b.x1 - side, y1: b.y1 - above, x2: b.x2 + side, y2: b.y2 + below })
}

/// Tiles needed along one side `len` pixels long for tiles `tile` pixels long.
fn count(len: f32, tile: f32) -> usize {
    if len <= tile { 1 } else { ((len - tile) / (tile * (1.0 - OVERLAP))).ceil() as usize + 1 }
}

/// `n` tiles `tile` long over `[start, start + len)`, kept inside `[0, frame)`.
fn spread(start: f32, len: f32, tile: f32, n: usize, frame: f32) -> impl Iterator<Item = f32> {
    let step = if n > 1 { (len - tile) / (n - 1) as f32 } else { 0.0 };
    let first = if n > 1 { start } else { start + (len - tile) / 2.0 };
    (0..n).map(move |i| (first + i as f32 * step).clamp(0.0, (frame - tile).max(0.0)))
}

/// Lays `area` (normalized) of a `frame`-sized picture out in tiles of the `input`'s shape: the
/// fewest that keep [`DETAIL`] or come close to the finest `max_tiles` allow, scaled up by a
/// third at most.
fn layout(area: BoxN, frame: (usize, usize), input: (usize, usize), max_tiles: usize) -> Layout {
    let (fw, fh) = (frame.0 as f32, frame.1 as f32);
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    let (rx, ry) = (area.x1 * fw, area.y1 * fh);
    let (rw, rh) = (((area.x2 - area.x1) * fw).max(1.0), ((area.y2 - area.y1) * fh).max(1.0));
    // The least scale (source pixels per input pixel) at which `n` tiles cover the area.
    let tiles_at = |s: f32| count(rw, (iw * s).min(fw)) * count(rh, (ih * s).min(fh));
    let least = |n: usize| {
        let mut s = MIN_SCALE;
        while tiles_at(s) > n {
            s *= 1.02;
        }
        s
    };
    let finest = least(max_tiles);
    let scale = (1..=max_tiles)
        .map(least)
        .find(|&s| s <= DETAIL.max(finest * CLOSE_ENOUGH))
        .unwrap_or(finest);
    let (tw, th) = ((iw * scale).min(fw), (ih * scale).min(fh));
    if tw >= fw && th >= fh {
        return Layout::whole();
    }
    let xs: Vec<f32> = spread(rx, rw, tw, count(rw, tw), fw).collect();
    let ys: Vec<f32> = spread(ry, rh, th, count(rh, th), fh).collect();
    let least_overlap = |at: &[f32], tile: f32, size: f32| {
        at.windows(2).map(|p| (tile - (p[1] - p[0])).max(0.0) / size).fold(1.0, f32::min)
    };
    let mut tiles = Vec::with_capacity(xs.len() * ys.len());
    for y in &ys {
        for x in &xs {
            tiles.push(BoxN { x1: x / fw, y1: y / fh, x2: (x + tw) / fw, y2: (y + th) / fh });
        }
    }
    let outer = tiles.iter().fold(tiles[0], |o, t| BoxN {
        x1: o.x1.min(t.x1),
        y1: o.y1.min(t.y1),
        x2: o.x2.max(t.x2),
        y2: o.y2.max(t.y2),
    });
    Layout { tiles, overlap: (least_overlap(&xs, tw, fw), least_overlap(&ys, th, fh)), outer }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(x1: f32, y1: f32, x2: f32, y2: f32) -> BoxN {
        BoxN { x1, y1, x2, y2 }
    }

    #[test]
    fn a_small_distant_zone_is_one_tile_at_about_its_own_resolution() {
        // 300×200 px of a 2560×1440 picture, inferred at 416×416: scaled up by a third at most.
        let zone = area(0.7, 0.1, 0.7 + 300.0 / 2560.0, 0.1 + 200.0 / 1440.0);
        let tiles = layout(zone, (2560, 1440), (416, 416), 4).tiles;
        assert_eq!(tiles.len(), 1);
        let t = tiles[0];
        let (w, h) = ((t.x2 - t.x1) * 2560.0, (t.y2 - t.y1) * 1440.0);
        assert!((w - 312.0).abs() < 2.0 && (h - 312.0).abs() < 2.0, "{w}×{h}");
        assert!(t.x1 <= zone.x1 && t.x2 >= zone.x2 && t.y1 <= zone.y1 && t.y2 >= zone.y2);
    }

    #[test]
    fn a_large_area_is_tiled_within_the_limit_and_covered_with_overlap() {
        let l = layout(WHOLE, (2560, 1440), (416, 416), 4);
        assert!(l.tiles.len() <= 4 && l.tiles.len() > 1, "{l:?}");
        for x in [0.0, 0.3, 0.5, 0.7, 0.999] {
            for y in [0.0, 0.5, 0.999] {
                assert!(l.tiles.iter().any(|t| t.x1 <= x && x <= t.x2 && t.y1 <= y && y <= t.y2));
            }
        }
        let tile_w = l.tiles[0].x2 - l.tiles[0].x1;
        assert!(l.overlap.0 >= OVERLAP * tile_w * 0.99, "{l:?}");
        // One tile: the whole picture, stretched as before.
        assert_eq!(layout(WHOLE, (2560, 1440), (416, 416), 1).tiles, vec![WHOLE]);
    }

    #[test]
    fn an_object_cut_by_a_tile_edge_counts_only_where_it_is_whole() {
        let (left, right) = (area(0.0, 0.0, 0.6, 1.0), area(0.4, 0.0, 1.0, 1.0));
        let tiling = Tiling {
            layout: Layout { tiles: vec![left, right], overlap: (0.2, 0.0), outer: WHOLE },
            ..Tiling::whole()
        };
        let seen =
            |x1: f32, x2: f32| Detection { class: 0, score: 0.9, bbox: area(x1, 0.2, x2, 0.5) };
        // A person at 0.55-0.65 is cut by the left tile's right edge, whole in the right tile.
        let mut in_left = vec![seen(0.55, 0.6), seen(0.1, 0.2)];
        tiling.keep_whole(left, &mut in_left);
        assert_eq!(in_left, vec![seen(0.1, 0.2)]);
        let mut in_right = vec![seen(0.55, 0.65)];
        tiling.keep_whole(right, &mut in_right);
        assert_eq!(in_right.len(), 1);
        // A lorry wider than the overlap is cut in both: its pieces stay.
        let (mut a, mut b) = (vec![seen(0.3, 0.6)], vec![seen(0.4, 0.7)]);
        tiling.keep_whole(left, &mut a);
        tiling.keep_whole(right, &mut b);
        assert_eq!((a.len(), b.len()), (1, 1));
    }
}
