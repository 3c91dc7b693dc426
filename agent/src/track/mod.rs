//! Multi-object tracking for one camera: gives each detected object an id that stays the same
//! from frame to frame, so rules (line crossing, loitering, zone dwell, stopped vehicles) can
//! follow one object. It is ByteTrack-like and greedy: confident detections are matched to
//! constant-velocity predictions by IoU, then by centre distance (small fast objects at low frame
//! rates); weak detections only extend tracks seen in the previous frame, so a flickering detector
//! neither breaks tracks nor invents them. Tracks survive occlusions of up to `max_lost_ms`.

use crate::detect::Detection;
use crate::geometry::BoxN;

/// Furthest ahead a box is extrapolated: a lost object has likely stopped or turned by then, and
/// extrapolating further would only carry its prediction away from where it reappears.
const MAX_PREDICT_MS: i64 = 1000;

/// Time constant of the velocity average, in ms: smooths detector jitter at high frame rates
/// while following real changes of speed within a few frames at 5 frames/s.
const VELOCITY_TAU_MS: f32 = 300.0;

/// Stage 1b gate: most distance between predicted and detected centres, in diagonals of the
/// track's box. One diagonal reaches objects that moved just past their own width even before
/// their velocity is known.
const CENTRE_GATE: f32 = 1.0;

/// Detection scores a track keeps for its median.
pub const SCORES_KEPT: usize = 15;

/// Tracker tuning.
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// Detections scoring at least this start tracks and are matched first.
    pub high_score: f32,
    /// Least IoU between a track's predicted box and a detection for them to match.
    pub match_iou: f32,
    /// A confirmed track unseen this long (ms) is dropped: the occlusion tolerance.
    pub max_lost_ms: i64,
    /// Matched frames before a track is confirmed (reported).
    pub min_hits: u32,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self { high_score: 0.5, match_iou: 0.2, max_lost_ms: 2000, min_hits: 2 }
    }
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// 1, 2, 3… per tracker, never reused.
    pub id: u64,
    /// Class of the detections it follows.
    pub class: u16,
    /// Score of the last matched detection.
    pub score: f32,
    /// Scores of the last matched detections (up to [`SCORES_KEPT`]), oldest first overwritten.
    scores: [f32; SCORES_KEPT],
    /// Box of the last matched detection.
    pub bbox: BoxN,
    /// Frames matched so far.
    pub hits: u32,
    /// Time (monotonic ms) of the first detection.
    pub first_ms: i64,
    /// Time (monotonic ms) of the last matched detection.
    pub last_seen_ms: i64,
    /// Matched in the latest update.
    pub seen_now: bool,
    /// Matched at least `min_hits` times (stays true once set).
    pub confirmed: bool,
    /// Smoothed velocity of the box centre, per ms.
    vx: f32,
    vy: f32,
    /// Whether `vx`, `vy` come from at least one measured step.
    velocity_known: bool,
}

impl Track {
    fn new(id: u64, d: &Detection, t_ms: i64, min_hits: u32) -> Self {
        Self {
            id,
            class: d.class,
            score: d.score,
            scores: [d.score; SCORES_KEPT],
            bbox: d.bbox,
            hits: 1,
            first_ms: t_ms,
            last_seen_ms: t_ms,
            seen_now: true,
            confirmed: min_hits <= 1,
            vx: 0.0,
            vy: 0.0,
            velocity_known: false,
        }
    }

    /// The median score of the track's last detections: one lucky detection does not make an
    /// object, nor does one weak frame unmake it.
    pub fn median_score(&self) -> f32 {
        let n = (self.hits as usize).clamp(1, SCORES_KEPT);
        let mut s = [0.0f32; SCORES_KEPT];
        s[..n].copy_from_slice(&self.scores[..n]);
        let s = &mut s[..n];
        s.sort_by(f32::total_cmp);
        if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
    }

    /// The box moved to where its centre should be at `t_ms`, size kept.
    fn predict(&self, t_ms: i64) -> BoxN {
        let dt = t_ms.saturating_sub(self.last_seen_ms).clamp(0, MAX_PREDICT_MS) as f32;
        let (dx, dy) = (self.vx * dt, self.vy * dt);
        BoxN {
            x1: self.bbox.x1 + dx,
            y1: self.bbox.y1 + dy,
            x2: self.bbox.x2 + dx,
            y2: self.bbox.y2 + dy,
        }
    }

    /// Takes detection `d`, seen at `t_ms`, as the track's new state.
    fn hit(&mut self, d: &Detection, t_ms: i64, min_hits: u32) {
        let dt = t_ms.saturating_sub(self.last_seen_ms);
        // A clock that stands still or steps back gives no speed to measure.
        if dt > 0 {
            let dt = dt as f32;
            let (cx, cy) = centre(&self.bbox);
            let (nx, ny) = centre(&d.bbox);
            let (vx, vy) = ((nx - cx) / dt, (ny - cy) / dt);
            if self.velocity_known {
                // Weighting by elapsed time makes the smoothing the same at any frame rate.
                let a = 1.0 - (-dt / VELOCITY_TAU_MS).exp();
                self.vx += a * (vx - self.vx);
                self.vy += a * (vy - self.vy);
            } else {
                (self.vx, self.vy) = (vx, vy);
                self.velocity_known = true;
            }
        }
        self.score = d.score;
        self.scores[self.hits as usize % SCORES_KEPT] = d.score;
        self.bbox = d.bbox;
        self.hits = self.hits.saturating_add(1);
        self.last_seen_ms = t_ms;
        self.seen_now = true;
        self.confirmed |= self.hits >= min_hits;
    }
}

/// Gives detections stable track ids across the frames of one camera.
#[derive(Debug)]
pub struct Tracker {
    settings: TrackerSettings,
    /// Live tracks, oldest (lowest id) first.
    tracks: Vec<Track>,
    next_id: u64,
    scratch: Scratch,
}

impl Tracker {
    /// An empty tracker.
    pub fn new(settings: TrackerSettings) -> Self {
        Self { settings, tracks: Vec::new(), next_id: 1, scratch: Scratch::default() }
    }

    /// Feeds one frame's detections at time `t_ms`; returns every live track (seen now or lost
    /// less than `max_lost_ms`).
    ///
    /// Call it for every inferred frame, even one without detections: a miss is what drops
    /// spurious tracks. Detections with a non-finite score or box, or an empty box, are ignored.
    pub fn update(&mut self, detections: &[Detection], t_ms: i64) -> &[Track] {
        let s = &self.settings;
        // If frames stopped coming for a while, tracks lost before the pause may have expired.
        self.tracks.retain(|t| t.seen_now || t_ms.saturating_sub(t.last_seen_ms) < s.max_lost_ms);

        let sc = &mut self.scratch;
        sc.predicted.clear();
        sc.predicted.extend(self.tracks.iter().map(|t| t.predict(t_ms)));
        sc.assigned.clear();
        sc.assigned.resize(self.tracks.len(), None);
        sc.det_used.clear();
        // Marking unusable detections as used keeps them out of every stage.
        sc.det_used.extend(detections.iter().map(|d| !usable(d)));

        let high = s.high_score;
        let iou_cost = |p: &BoxN, b: &BoxN| {
            let iou = p.iou(b);
            (iou >= s.match_iou && iou > 0.0).then_some(1.0 - iou)
        };
        // Stage 1: confident detections against every track, by overlap with the prediction.
        sc.stage(&self.tracks, detections, |_| true, |d| d.score >= high, iou_cost);
        // Stage 1b: small fast objects at low frame rates may not overlap their prediction.
        sc.stage(
            &self.tracks,
            detections,
            |_| true,
            |d| d.score >= high,
            |p, b| {
                let (px, py) = centre(p);
                let (bx, by) = centre(b);
                let d = (bx - px).hypot(by - py) / (p.x2 - p.x1).hypot(p.y2 - p.y1);
                (d < CENTRE_GATE).then_some(d)
            },
        );
        // Stage 2: weak detections only extend tracks seen in the previous frame (ByteTrack), as
        // a weak detection is too often a false one to revive a lost track or start a new one.
        sc.stage(&self.tracks, detections, |t| t.seen_now, |d| d.score < high, iou_cost);

        for (t, a) in self.tracks.iter_mut().zip(&sc.assigned) {
            match *a {
                Some(di) => t.hit(&detections[di], t_ms, s.min_hits),
                None => t.seen_now = false,
            }
        }
        // An unconfirmed track that misses a frame was most likely a false detection.
        self.tracks.retain(|t| {
            t.seen_now || (t.confirmed && t_ms.saturating_sub(t.last_seen_ms) < s.max_lost_ms)
        });
        for (d, &used) in detections.iter().zip(&sc.det_used) {
            if !used && d.score >= high {
                self.tracks.push(Track::new(self.next_id, d, t_ms, s.min_hits));
                self.next_id += 1;
            }
        }
        &self.tracks
    }

    /// Confirmed tracks matched in the latest update: what rules look at.
    pub fn visible(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(|t| t.confirmed && t.seen_now)
    }

    /// Every live track, confirmed or not, seen now or briefly lost.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Whether track `id` is still alive (seen or briefly lost).
    pub fn alive(&self, id: u64) -> bool {
        self.tracks.iter().any(|t| t.id == id)
    }
}

/// Per-frame working buffers, kept between updates so that a frame allocates nothing once they
/// have grown to the scene's size.
#[derive(Debug, Default)]
struct Scratch {
    /// Predicted box per track.
    predicted: Vec<BoxN>,
    /// Detection index matched to each track.
    assigned: Vec<Option<usize>>,
    /// Whether each detection is matched (or unusable).
    det_used: Vec<bool>,
    /// Candidate (cost, track, detection) pairs of the current stage.
    pairs: Vec<(f32, usize, usize)>,
}

impl Scratch {
    /// One matching stage: among unmatched tracks passing `track_ok` and unused detections of the
    /// same class passing `det_ok`, takes the pairs `cost` accepts, cheapest first.
    fn stage(
        &mut self,
        tracks: &[Track],
        dets: &[Detection],
        track_ok: impl Fn(&Track) -> bool,
        det_ok: impl Fn(&Detection) -> bool,
        cost: impl Fn(&BoxN, &BoxN) -> Option<f32>,
    ) {
        self.pairs.clear();
        for (ti, (t, p)) in tracks.iter().zip(&self.predicted).enumerate() {
            if self.assigned[ti].is_some() || !track_ok(t) {
                continue;
            }
            for (di, d) in dets.iter().enumerate() {
                if self.det_used[di] || d.class != t.class || !det_ok(d) {
                    continue;
                }
                if let Some(c) = cost(p, &d.bbox) {
                    self.pairs.push((c, ti, di));
                }
            }
        }
        // Ties go to the older track, so the order of detections never decides.
        self.pairs
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for &(_, ti, di) in &self.pairs {
            if self.assigned[ti].is_none() && !self.det_used[di] {
                self.assigned[ti] = Some(di);
                self.det_used[di] = true;
            }
        }
    }
}

/// Whether `d` can be tracked: finite score and a finite, non-empty box.
fn usable(d: &Detection) -> bool {
    let b = &d.bbox;
    d.score.is_finite()
        && [b.x1, b.y1, b.x2, b.y2].iter().all(|v| v.is_finite())
        && b.x2 > b.x1
        && b.y2 > b.y1
}

/// The centre of `b`.
fn centre(b: &BoxN) -> (f32, f32) {
    ((b.x1 + b.x2) * 0.5, (b.y1 + b.y2) * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 frames/s.
    const FRAME_MS: i64 = 200;

    fn det(class: u16, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Detection {
        Detection {
            class,
            score,
            bbox: BoxN { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 },
        }
    }

    /// A confidently detected person centred at (`cx`, 0.5).
    fn person(cx: f32) -> Detection {
        det(0, 0.8, cx, 0.5, 0.05, 0.12)
    }

    fn visible_ids(tr: &Tracker) -> Vec<u64> {
        tr.visible().map(|t| t.id).collect()
    }

    #[test]
    fn a_steady_walker_keeps_one_id_and_is_confirmed_after_min_hits() {
        let mut tr = Tracker::new(TrackerSettings::default());
        for k in 0..50i64 {
            let tracks = tr.update(&[person(0.1 + 0.01 * k as f32)], k * FRAME_MS);
            assert_eq!(tracks.len(), 1, "frame {k}");
            let t = &tracks[0];
            assert_eq!(t.id, 1, "frame {k}");
            assert_eq!(t.hits, k as u32 + 1);
            assert_eq!(t.confirmed, k >= 1, "frame {k}");
            assert!(t.seen_now);
            assert_eq!((t.first_ms, t.last_seen_ms), (0, k * FRAME_MS));
            let expected: &[u64] = if k >= 1 { &[1] } else { &[] };
            assert_eq!(visible_ids(&tr), expected, "frame {k}");
        }
    }

    #[test]
    fn a_short_occlusion_keeps_the_id_and_a_long_one_gives_a_new_id() {
        let mut tr = Tracker::new(TrackerSettings::default());
        // 0.04 per frame: after the gap the object is 0.16 further on, more than its box's
        // diagonal (0.13), so only the velocity prediction bridges the gap.
        let x = |k: i64| 0.1 + 0.04 * k as f32;
        for k in 0..5 {
            tr.update(&[person(x(k))], k * FRAME_MS);
        }
        assert_eq!(visible_ids(&tr), [1]);
        // Hidden for 3 frames (600 ms).
        for k in 5..8 {
            let tracks = tr.update(&[], k * FRAME_MS);
            assert_eq!(tracks.len(), 1);
            assert!(!tracks[0].seen_now);
            assert!(tr.visible().next().is_none());
            assert!(tr.alive(1));
        }
        for k in 8..12 {
            tr.update(&[person(x(k))], k * FRAME_MS);
            assert_eq!(visible_ids(&tr), [1], "frame {k}");
        }
        // Last seen at frame 11; hidden until the track has been unseen for max_lost_ms.
        for k in 12..21 {
            tr.update(&[], k * FRAME_MS);
            assert!(tr.alive(1), "frame {k}");
        }
        assert!(tr.update(&[], 21 * FRAME_MS).is_empty());
        assert!(!tr.alive(1));
        // It comes back exactly where it was last seen, yet as a new object.
        for k in 22..24 {
            tr.update(&[person(x(11))], k * FRAME_MS);
        }
        assert_eq!(visible_ids(&tr), [2]);
    }

    #[test]
    fn a_long_lost_track_is_not_extrapolated_far() {
        let mut tr = Tracker::new(TrackerSettings::default());
        // A distant car, 0.04 wide, moving 0.02 per frame, stops behind something within about
        // a second and shows again 1.8 s after it was last seen.
        let car = |cx: f32| det(2, 0.8, cx, 0.6, 0.04, 0.03);
        for k in 0..5i64 {
            tr.update(&[car(0.2 + 0.02 * k as f32)], k * FRAME_MS);
        }
        for k in 5..13 {
            tr.update(&[], k * FRAME_MS);
        }
        // Extrapolated for the whole 1.8 s, its prediction would be 0.08 (two diagonals) past it.
        tr.update(&[car(0.28 + 0.09)], 13 * FRAME_MS);
        assert_eq!(visible_ids(&tr), [1]);
    }

    #[test]
    fn two_walkers_passing_each_other_keep_their_ids() {
        let mut tr = Tracker::new(TrackerSettings::default());
        // On one line, towards each other; the offset start of `b` puts, mid-crossing, each
        // walker's detection nearer the other's last box than its own.
        let a = |k: i64| det(0, 0.8, 0.2 + 0.025 * k as f32, 0.5, 0.06, 0.15);
        let b = |k: i64| det(0, 0.8, 0.81 - 0.025 * k as f32, 0.5, 0.06, 0.15);
        let mut overlapping = 0;
        for k in 0..25i64 {
            let (da, db) = (a(k), b(k));
            if da.bbox.iou(&db.bbox) > 0.0 {
                overlapping += 1;
            }
            let tracks = tr.update(&[db, da], k * FRAME_MS);
            assert_eq!(tracks.len(), 2, "frame {k}");
            let track = |id: u64| tracks.iter().find(|t| t.id == id).unwrap();
            // `b` came first in the first frame, so it has id 1.
            assert_eq!(track(1).bbox, db.bbox, "frame {k}");
            assert_eq!(track(2).bbox, da.bbox, "frame {k}");
        }
        assert_eq!(overlapping, 2);
        assert_eq!(visible_ids(&tr), [1, 2]);
    }

    #[test]
    fn a_small_fast_object_whose_boxes_never_overlap_is_followed() {
        let mut tr = Tracker::new(TrackerSettings::default());
        // A ball 0.02 wide moving 0.025 per frame.
        let ball = |k: i64| det(32, 0.7, 0.1 + 0.025 * k as f32, 0.3, 0.02, 0.02);
        assert_eq!(ball(0).bbox.iou(&ball(1).bbox), 0.0);
        for k in 0..30i64 {
            let tracks = tr.update(&[ball(k)], k * FRAME_MS);
            assert_eq!(tracks.len(), 1, "frame {k}");
            assert_eq!(tracks[0].id, 1, "frame {k}");
        }
        assert_eq!(visible_ids(&tr), [1]);
    }

    #[test]
    fn weak_detections_continue_tracks_but_never_start_or_revive_them() {
        let mut tr = Tracker::new(TrackerSettings::default());
        let x = |k: i64| 0.1 + 0.01 * k as f32;
        let weak = |k: i64| det(0, 0.3, x(k), 0.5, 0.05, 0.12);
        for k in 0..5 {
            assert!(tr.update(&[weak(k)], k * FRAME_MS).is_empty());
        }
        for k in 5..7 {
            tr.update(&[person(x(k))], k * FRAME_MS);
        }
        assert_eq!(visible_ids(&tr), [1]);
        for k in 7..15 {
            let tracks = tr.update(&[weak(k)], k * FRAME_MS);
            assert_eq!(tracks.len(), 1);
            assert_eq!(tracks[0].score, 0.3);
            assert_eq!(visible_ids(&tr), [1], "frame {k}");
        }
        // Missed once, the track is lost: a weak detection where it should be does not bring it
        // back, nor start another.
        tr.update(&[], 15 * FRAME_MS);
        let tracks = tr.update(&[weak(16)], 16 * FRAME_MS);
        assert_eq!(tracks.len(), 1);
        assert!(!tracks[0].seen_now);
        // A confident one does.
        tr.update(&[person(x(17))], 17 * FRAME_MS);
        assert_eq!(visible_ids(&tr), [1]);
    }

    #[test]
    fn different_classes_never_match() {
        let mut tr = Tracker::new(TrackerSettings::default());
        for k in 0..3 {
            tr.update(&[person(0.5)], k * FRAME_MS);
        }
        assert_eq!(visible_ids(&tr), [1]);
        // The same box, weak or strong, but of another class.
        let weak_car = det(2, 0.3, 0.5, 0.5, 0.05, 0.12);
        let car = det(2, 0.9, 0.5, 0.5, 0.05, 0.12);
        let tracks = tr.update(&[weak_car], 3 * FRAME_MS);
        assert_eq!(tracks.len(), 1);
        assert!(!tracks[0].seen_now);
        tr.update(&[person(0.5)], 4 * FRAME_MS);
        let tracks = tr.update(&[car], 5 * FRAME_MS);
        assert_eq!(tracks.len(), 2);
        assert!(!tracks[0].seen_now);
        assert_eq!((tracks[1].id, tracks[1].class), (2, 2));
        // The person comes back to its own id.
        tr.update(&[person(0.5)], 6 * FRAME_MS);
        assert_eq!(visible_ids(&tr), [1]);
    }

    #[test]
    fn spurious_detections_never_become_visible_and_ids_are_never_reused() {
        let mut tr = Tracker::new(TrackerSettings::default());
        let mut flicker_ids = Vec::new();
        for k in 0..20i64 {
            // A real walker, and a one-frame false detection alternating between two places.
            let flicker = if k % 2 == 0 { 0.6 } else { 0.9 };
            let tracks = tr.update(&[person(0.1 + 0.01 * k as f32), person(flicker)], k * FRAME_MS);
            // The previous flicker is gone at once, not kept for max_lost_ms.
            assert_eq!(tracks.len(), 2, "frame {k}");
            assert_eq!(tracks[0].id, 1);
            flicker_ids.push(tracks[1].id);
            let expected: &[u64] = if k >= 1 { &[1] } else { &[] };
            assert_eq!(visible_ids(&tr), expected, "frame {k}");
        }
        // Even where a dropped track was, a new detection gets a fresh id.
        assert!(flicker_ids.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn bad_numbers_and_clock_steps_do_not_panic() {
        let mut tr = Tracker::new(TrackerSettings::default());
        let mut nan_box = person(0.5);
        nan_box.bbox.x2 = f32::NAN;
        let mut inf_box = person(0.5);
        inf_box.bbox.y1 = f32::NEG_INFINITY;
        let mut empty = person(0.5);
        empty.bbox.x2 = empty.bbox.x1;
        let bad = [det(0, f32::NAN, 0.5, 0.5, 0.05, 0.12), nan_box, inf_box, empty];
        for k in 0..5 {
            assert!(tr.update(&bad, k * FRAME_MS).is_empty());
        }
        // The clock steps back, then to the extremes: the object keeps its id.
        for t in [1000, 1200, 500, i64::MIN, i64::MAX, 0] {
            let tracks = tr.update(&[person(0.5), bad[0], bad[1]], t);
            assert_eq!(tracks.len(), 1, "t {t}");
            assert_eq!(tracks[0].id, 1, "t {t}");
        }
    }
}
