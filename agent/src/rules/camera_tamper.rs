//! Camera tamper detection: a lens covered, blurred or sprayed, or a camera turned away from its
//! view raises one alarm per episode, so a blinded camera is noticed instead of silently
//! reporting nothing.
//!
//! Each frame is reduced to a few features read with a stride (a 1080p frame costs well under a
//! millisecond): a grid of mean luma, the grid's spread (standard deviation), and the sharpness
//! (RMS of neighbouring-pixel differences at full resolution, on sparse rows), which falls when
//! the lens is defocused or sprayed. They are compared with a reference that follows the scene
//! slowly, so dusk and weather are learned, and only while nothing is suspected, so a tamper is
//! never learned. Lighting changes brightness and contrast but not structure: the grid is matched
//! to the reference's mean and spread before its cells are compared, and lost detail counts as
//! blur only when it fell clearly more than the coarse contrast.

use crate::source::Yuv;

/// Grid columns.
const COLS: usize = 32;
/// Grid rows.
const ROWS: usize = 18;
/// Grid cells.
const CELLS: usize = COLS * ROWS;

/// Tamper detection settings for one camera.
#[derive(Debug, Clone)]
pub struct TamperSettings {
    /// A condition must hold this long to be an episode, and clear this long to end one: 3000 ms.
    pub min_duration_ms: i64,
    /// A moved view held this long becomes the new reference, after its one alarm: 30000 ms.
    pub adopt_ms: i64,
    /// Time constant of the reference's exponential average: 60000 ms.
    pub reference_tau_ms: i64,
    /// Mean luma below which the image is dark: 40 (limited-range black is 16).
    pub dark_luma: f32,
    /// Darkness counts only this far (luma) below the reference's mean, so night does not: 30.
    pub dark_drop: f32,
    /// Grid spread, as a fraction of the reference's, below which the image is flat: 0.25.
    pub flat_ratio: f32,
    /// Sharpness, as a fraction of the reference's, below which fine detail is lost: 0.4.
    pub blur_ratio: f32,
    /// Blur also needs sharpness below this times the spread ratio (dimming lowers both): 0.6.
    pub blur_vs_contrast: f32,
    /// Luma change of a grid cell, after matching brightness and contrast, that counts: 16.
    pub cell_delta: f32,
    /// Fraction of changed grid cells that makes the view moved: 0.5.
    pub moved_fraction: f32,
    /// Reference grid spread (luma) below which the scene is too featureless to compare: 4.
    pub min_spread: f32,
    /// Reference sharpness below which the scene is too featureless to compare: 2.
    pub min_sharpness: f32,
}

impl Default for TamperSettings {
    /// Defaults for a fixed camera at about 5 frames per second.
    fn default() -> Self {
        Self {
            min_duration_ms: 3000,
            adopt_ms: 30_000,
            reference_tau_ms: 60_000,
            dark_luma: 40.0,
            dark_drop: 30.0,
            flat_ratio: 0.25,
            blur_ratio: 0.4,
            blur_vs_contrast: 0.6,
            cell_delta: 16.0,
            moved_fraction: 0.5,
            min_spread: 4.0,
            min_sharpness: 2.0,
        }
    }
}

/// What was done to the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// The image went dark or flat: a hand, cloth or tape over the lens.
    Covered,
    /// The image lost its fine detail: the lens sprayed or defocused.
    Blurred,
    /// The scene changed as a whole: the camera was turned.
    Moved,
}

impl Tamper {
    /// A short English description for alarms and logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Tamper::Covered => "lens covered",
            Tamper::Blurred => "view blurred or sprayed",
            Tamper::Moved => "view moved",
        }
    }
}

/// The features of one frame, or of the reference.
#[derive(Debug, Clone)]
struct Features {
    grid: [f32; CELLS],
    mean: f32,
    spread: f32,
    sharpness: f32,
}

impl Features {
    /// Sets `mean` and `spread` from the grid.
    fn summarize(&mut self) {
        self.mean = self.grid.iter().sum::<f32>() / CELLS as f32;
        let var = self.grid.iter().map(|g| (g - self.mean).powi(2)).sum::<f32>() / CELLS as f32;
        self.spread = var.sqrt();
    }
}

/// The slowly updated reference, for one frame size.
#[derive(Debug)]
struct Reference {
    features: Features,
    width: usize,
    height: usize,
    /// Clock of the last update.
    updated: i64,
}

/// Where the current episode stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Episode {
    /// Nothing suspected.
    Idle,
    /// A condition has held since this clock, not yet long enough to alarm.
    Suspected(i64),
    /// Alarmed; the condition has been clear since this clock, if it is.
    Alarmed(Option<i64>),
}

/// One camera's tamper state.
#[derive(Debug)]
pub struct TamperDetector {
    settings: TamperSettings,
    reference: Option<Reference>,
    /// Milliseconds seen, summing only forward steps of the frame time, so a clock set back
    /// never stalls or skips a timer.
    clock: i64,
    last_t_ms: Option<i64>,
    episode: Episode,
    /// Clock since which the view has been moved without a break.
    moved_since: Option<i64>,
}

impl TamperDetector {
    /// A detector whose first frame becomes its reference.
    pub fn new(settings: TamperSettings) -> Self {
        Self {
            settings,
            reference: None,
            clock: 0,
            last_t_ms: None,
            episode: Episode::Idle,
            moved_since: None,
        }
    }

    /// Checks one frame at `t_ms`; returns `Some` once per episode, when it has lasted
    /// `min_duration_ms`.
    pub fn check(&mut self, img: &Yuv<'_>, t_ms: i64) -> Option<Tamper> {
        let cur = measure(img)?;
        let step = self.last_t_ms.map_or(0, |last| t_ms.saturating_sub(last).max(0));
        self.clock = self.clock.saturating_add(step);
        self.last_t_ms = Some(t_ms);
        let clock = self.clock;

        let size = (img.width, img.height);
        let Some(reference) = self.reference.as_mut().filter(|r| (r.width, r.height) == size)
        else {
            // First frame, or the camera's resolution changed: nothing to compare with yet.
            self.reference = Some(Reference {
                features: cur,
                width: img.width,
                height: img.height,
                updated: clock,
            });
            self.episode = Episode::Idle;
            self.moved_since = None;
            return None;
        };
        let mut condition = classify(&self.settings, &cur, &reference.features);

        if condition == Some(Tamper::Moved) {
            let since = *self.moved_since.get_or_insert(clock);
            // A camera turned for good watches its new view, and can alarm again when turned back.
            if matches!(self.episode, Episode::Alarmed(_))
                && clock - since >= self.settings.adopt_ms
            {
                reference.features = cur.clone();
                reference.updated = clock;
                condition = None;
                self.moved_since = None;
            }
        } else {
            self.moved_since = None;
        }

        let min = self.settings.min_duration_ms;
        let mut alarm = None;
        self.episode = match (self.episode, condition) {
            (Episode::Idle, Some(_)) => Episode::Suspected(clock),
            (Episode::Alarmed(_), Some(_)) => Episode::Alarmed(None),
            (Episode::Suspected(_), None) => Episode::Idle,
            (Episode::Alarmed(None), None) => Episode::Alarmed(Some(clock)),
            (Episode::Alarmed(Some(clear)), None) if clock - clear >= min => Episode::Idle,
            (episode, _) => episode,
        };
        if let (Episode::Suspected(since), Some(kind)) = (self.episode, condition)
            && clock - since >= min
        {
            self.episode = Episode::Alarmed(None);
            alarm = Some(kind);
        }
        if self.episode == Episode::Idle {
            follow(reference, &cur, clock, self.settings.reference_tau_ms);
        }
        alarm
    }
}

/// The tamper a frame shows against the reference, most severe first.
fn classify(s: &TamperSettings, cur: &Features, r: &Features) -> Option<Tamper> {
    if cur.mean < s.dark_luma && r.mean - cur.mean >= s.dark_drop {
        return Some(Tamper::Covered);
    }
    if r.spread < s.min_spread || r.sharpness < s.min_sharpness {
        return None;
    }
    let contrast = cur.spread / r.spread;
    let sharpness = cur.sharpness / r.sharpness;
    if sharpness < s.blur_ratio && contrast < s.flat_ratio {
        return Some(Tamper::Covered);
    }
    if sharpness < s.blur_ratio && sharpness < s.blur_vs_contrast * contrast {
        return Some(Tamper::Blurred);
    }
    (changed_fraction(s.cell_delta, cur, r) >= s.moved_fraction).then_some(Tamper::Moved)
}

/// Fraction of grid cells that differ from the reference's by more than `delta`, once the frame's
/// grid is matched to the reference's mean and spread (so lighting alone changes nothing).
fn changed_fraction(delta: f32, cur: &Features, r: &Features) -> f32 {
    // Bounded so a near-flat frame is not amplified into noise.
    let gain = (r.spread / cur.spread.max(f32::EPSILON)).clamp(0.25, 4.0);
    let changed = cur
        .grid
        .iter()
        .zip(&r.grid)
        .filter(|&(&c, &r_cell)| ((c - cur.mean) * gain + r.mean - r_cell).abs() > delta)
        .count();
    changed as f32 / CELLS as f32
}

/// Moves the reference towards `cur` by the time since its last update.
fn follow(r: &mut Reference, cur: &Features, clock: i64, tau_ms: i64) {
    // Capped at one time constant: a single frame after a gap (it may hold a passing truck)
    // never replaces the reference outright.
    let dt = (clock - r.updated).clamp(0, tau_ms.max(0));
    let alpha = if tau_ms > 0 { 1.0 - (-(dt as f32) / tau_ms as f32).exp() } else { 1.0 };
    r.updated = clock;
    let f = &mut r.features;
    for (g, c) in f.grid.iter_mut().zip(&cur.grid) {
        *g += alpha * (c - *g);
    }
    f.sharpness += alpha * (cur.sharpness - f.sharpness);
    f.summarize();
}

/// The features of `img`, or `None` when its planes do not hold its size.
fn measure(img: &Yuv<'_>) -> Option<Features> {
    let (w, h, stride) = (img.width, img.height, img.y_stride);
    // The fields are public, so the planes are checked here rather than trusted.
    let needed = stride.checked_mul(h.checked_sub(1)?)?.checked_add(w)?;
    if w == 0 || stride < w || img.y.len() < needed {
        return None;
    }
    let row = |y: usize| &img.y[y * stride..][..w];

    let mut f = Features { grid: [0.0; CELLS], mean: 0.0, spread: 0.0, sharpness: 0.0 };
    // About 8-15 samples a side per cell, whatever the resolution.
    for (cell, value) in f.grid.iter_mut().enumerate() {
        let (cx, cy) = (cell % COLS, cell / COLS);
        let (x0, y0) = (cx * w / COLS, cy * h / ROWS);
        let x1 = ((cx + 1) * w / COLS).max(x0 + 1).min(w);
        let y1 = ((cy + 1) * h / ROWS).max(y0 + 1).min(h);
        let (sx, sy) = (((x1 - x0) / 8).max(1), ((y1 - y0) / 8).max(1));
        let (mut sum, mut n) = (0u32, 0u32);
        for y in (y0..y1).step_by(sy) {
            for &p in row(y)[x0..x1].iter().step_by(sx) {
                sum += p as u32;
                n += 1;
            }
        }
        *value = sum as f32 / n.max(1) as f32;
    }
    f.summarize();

    // Differences need full resolution (blur spreads an edge over neighbouring pixels), but not
    // every row: about 100 whole rows, which the compiler vectorizes. Each row is summed in u32
    // (twice the SIMD lanes of u64), which cannot overflow within this many columns.
    let cols = w.min(32_768);
    let sy = (h / 100).max(1);
    let (mut sum, mut n) = (0u64, 0u64);
    for y in (0..h - 1).step_by(sy) {
        let (this, below) = (&row(y)[..cols], &row(y + 1)[..cols]);
        sum += this
            .iter()
            .zip(&this[1..])
            .zip(below)
            .map(|((&a, &right), &down)| {
                let (dx, dy) = (right as i32 - a as i32, down as i32 - a as i32);
                (dx * dx + dy * dy) as u32
            })
            .sum::<u32>() as u64;
        n += cols as u64 - 1;
    }
    f.sharpness = if n == 0 { 0.0 } else { (sum as f64 / n as f64).sqrt() as f32 };
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{YuvToRgb, tests::flat};

    const W: usize = 320;
    const H: usize = 180;
    /// 5 frames per second.
    const STEP: i64 = 200;

    /// I420 planes: Y, U, V.
    type Planes = (Vec<u8>, Vec<u8>, Vec<u8>);

    /// A `w`×`h` frame whose luma is `f(x, y)`.
    fn frame(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Planes {
        let (mut y, u, v) = flat(w, h, (0, 128, 128));
        for (i, p) in y.iter_mut().enumerate() {
            *p = f(i % w, i / w);
        }
        (y, u, v)
    }

    /// The test scene's luma: blocks of varied luma, some with fine vertical or horizontal stripes.
    fn scene_luma(x: usize, y: usize) -> u8 {
        let mut hash = ((x / 24) as u32).wrapping_mul(0x9E37_79B9)
            ^ ((y / 20) as u32).wrapping_mul(0x85EB_CA6B);
        hash ^= hash >> 15;
        hash = hash.wrapping_mul(0x2C1B_3C6D);
        hash ^= hash >> 12;
        let base = 40 + (hash % 140) as u8;
        let stripe = match (hash >> 8) % 3 {
            0 => x % 4 < 2,
            1 => y % 4 < 2,
            _ => false,
        };
        base + if stripe { 24 } else { 0 }
    }

    fn scene(w: usize, h: usize) -> Planes {
        frame(w, h, scene_luma)
    }

    /// `planes` box-blurred with `radius`, clamped at the borders.
    fn box_blur(planes: &Planes, radius: usize) -> Planes {
        let y = &planes.0;
        let mean = |sum: u32, n: usize| (sum as f32 / n as f32).round() as u8;
        let mut rows = vec![0u8; W * H];
        for r in 0..H {
            for c in 0..W {
                let (a, b) = (c.saturating_sub(radius), (c + radius).min(W - 1));
                let sum: u32 = y[r * W + a..=r * W + b].iter().map(|&p| p as u32).sum();
                rows[r * W + c] = mean(sum, b - a + 1);
            }
        }
        frame(W, H, |c, r| {
            let (a, b) = (r.saturating_sub(radius), (r + radius).min(H - 1));
            let sum: u32 = (a..=b).map(|rr| rows[rr * W + c] as u32).sum();
            mean(sum, b - a + 1)
        })
    }

    /// `planes` as a `w`×`h` image whose luma rows are `stride` bytes apart.
    fn image(planes: &Planes, stride: usize, w: usize, h: usize) -> Yuv<'_> {
        let (y, u, v) = planes;
        Yuv::new(y, u, v, stride, stride.div_ceil(2), w, h, YuvToRgb::BT601).unwrap()
    }

    fn check(
        det: &mut TamperDetector,
        planes: &Planes,
        w: usize,
        h: usize,
        t: i64,
    ) -> Option<Tamper> {
        det.check(&image(planes, w, w, h), t)
    }

    /// Feeds one 320×180 frame at 5 fps over `from..to` ms; returns the alarms with their times.
    fn feed(det: &mut TamperDetector, planes: &Planes, from: i64, to: i64) -> Vec<(i64, Tamper)> {
        (from..to)
            .step_by(STEP as usize)
            .filter_map(|t| check(det, planes, W, H, t).map(|a| (t, a)))
            .collect()
    }

    fn detector() -> TamperDetector {
        TamperDetector::new(TamperSettings::default())
    }

    #[test]
    fn the_test_scene_is_textured_and_its_blur_loses_detail() {
        let (sharp, blurred) = (scene(W, H), box_blur(&scene(W, H), 8));
        let measured = |p: &Planes| measure(&image(p, W, W, H)).unwrap();
        let (s, b) = (measured(&sharp), measured(&blurred));
        assert!(s.spread > 30.0 && s.sharpness > 10.0, "{} {}", s.spread, s.sharpness);
        assert!(b.sharpness < 0.25 * s.sharpness, "{} {}", b.sharpness, s.sharpness);
        assert!(b.spread > 0.5 * s.spread, "{} {}", b.spread, s.spread);
    }

    #[test]
    fn ordinary_motion_does_not_alarm() {
        let mut det = detector();
        let base = scene(W, H);
        // A 60×40 bright square (4 % of the image) crossing again and again for 60 s.
        let mut alarms = vec![];
        for t in (0..60_000).step_by(STEP as usize) {
            let (sx, sy) = ((t / 100) as usize % (W - 60), 30 + (t / 400) as usize % (H - 70));
            let walker = frame(W, H, |x, y| {
                let inside = (sx..sx + 60).contains(&x) && (sy..sy + 40).contains(&y);
                if inside { 230 } else { base.0[y * W + x] }
            });
            alarms.extend(check(&mut det, &walker, W, H, t));
        }
        assert_eq!(alarms, []);
    }

    #[test]
    fn lighting_changes_do_not_alarm() {
        let mut det = detector();
        let base = scene(W, H);
        let brighter = frame(W, H, |x, y| scene_luma(x, y).saturating_add(40));
        // A third of the light: contrast and sharpness fall to a third, below the blur ratio.
        let dimmer = frame(W, H, |x, y| 16 + (scene_luma(x, y) - 16) / 3);
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        alarms.extend(feed(&mut det, &brighter, 20_000, 40_000));
        alarms.extend(feed(&mut det, &base, 40_000, 50_000));
        alarms.extend(feed(&mut det, &dimmer, 50_000, 70_000));
        assert_eq!(alarms, []);
    }

    #[test]
    fn covering_the_lens_alarms_once_per_episode() {
        let mut det = detector();
        let (base, black) = (scene(W, H), flat(W, H, (16, 128, 128)));
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // A hand passing by is shorter than an episode.
        alarms.extend(feed(&mut det, &black, 20_000, 22_000));
        alarms.extend(feed(&mut det, &base, 22_000, 30_000));
        assert_eq!(alarms, []);
        alarms.extend(feed(&mut det, &black, 30_000, 35_000));
        assert_eq!(alarms, [(33_000, Tamper::Covered)], "once, 3 s into the cover");
        alarms.extend(feed(&mut det, &base, 35_000, 45_000));
        alarms.extend(feed(&mut det, &black, 45_000, 50_000));
        assert_eq!(alarms, [(33_000, Tamper::Covered), (48_000, Tamper::Covered)]);
    }

    #[test]
    fn a_flat_cover_that_is_not_dark_is_covered() {
        let mut det = detector();
        // Grey cloth with a little sensor noise.
        let cloth = frame(W, H, |x, y| 120 + ((x * 7 + y * 13) % 5) as u8);
        let mut alarms = feed(&mut det, &scene(W, H), 0, 20_000);
        alarms.extend(feed(&mut det, &cloth, 20_000, 30_000));
        assert_eq!(alarms, [(23_000, Tamper::Covered)]);
    }

    #[test]
    fn a_scene_dark_from_the_start_is_watched_not_alarmed() {
        let mut det = detector();
        // Night without infrared: mean luma about 33.
        let night = frame(W, H, |x, y| 16 + (scene_luma(x, y) - 16) / 6);
        let mut alarms = feed(&mut det, &night, 0, 30_000);
        assert_eq!(alarms, []);
        alarms.extend(feed(&mut det, &flat(W, H, (16, 128, 128)), 30_000, 35_000));
        assert_eq!(alarms, [(33_000, Tamper::Covered)], "flat, though not darker by much");
    }

    #[test]
    fn blurring_the_lens_alarms_once() {
        let mut det = detector();
        let base = scene(W, H);
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        alarms.extend(feed(&mut det, &box_blur(&base, 8), 20_000, 25_000));
        alarms.extend(feed(&mut det, &base, 25_000, 35_000));
        assert_eq!(alarms, [(23_000, Tamper::Blurred)]);
    }

    #[test]
    fn a_moved_view_alarms_once_then_becomes_the_reference() {
        let mut det = detector();
        let base = scene(W, H);
        let turned = frame(W, H, |x, y| scene_luma(x + W / 4, y));
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // Adopted 30 s into the move, then watched for over 60 s.
        alarms.extend(feed(&mut det, &turned, 20_000, 120_000));
        assert_eq!(alarms, [(23_000, Tamper::Moved)]);
        // Turning it back is a move against the adopted view.
        alarms.extend(feed(&mut det, &base, 120_000, 130_000));
        assert_eq!(alarms, [(23_000, Tamper::Moved), (123_000, Tamper::Moved)]);
    }

    #[test]
    fn time_counts_not_frames() {
        let mut det = detector();
        let (base, black) = (scene(W, H), flat(W, H, (16, 128, 128)));
        assert_eq!(feed(&mut det, &base, 0, 20_000), []);
        // One frame every 1.5 s: the alarm comes 3 s in, on the third frame.
        assert_eq!(check(&mut det, &black, W, H, 20_000), None);
        assert_eq!(check(&mut det, &black, W, H, 21_500), None);
        assert_eq!(check(&mut det, &black, W, H, 23_000), Some(Tamper::Covered));
        assert_eq!(feed(&mut det, &base, 23_200, 33_000), []);
        // A clock set back neither stalls nor skips the timer: 3 s of frames make the episode.
        assert_eq!(check(&mut det, &black, W, H, 33_000), None);
        assert_eq!(feed(&mut det, &black, 1_000, 4_000), []);
        assert_eq!(check(&mut det, &black, W, H, 4_000), Some(Tamper::Covered));
    }

    #[test]
    fn resolution_changes_and_bad_frames_neither_panic_nor_alarm() {
        let mut det = detector();
        let mut alarms = feed(&mut det, &scene(W, H), 0, 10_000);
        let mut t = 10_000;
        for (w, h) in [(640, 360), (321, 181), (1, 1), (2, 1), (1, 3), (31, 17), (W, H)] {
            let planes = scene(w, h);
            for _ in 0..25 {
                alarms.extend(check(&mut det, &planes, w, h, t).map(|a| (t, a)));
                t += STEP;
            }
        }
        assert_eq!(alarms, []);

        // Planes shorter than their size claims, built without `Yuv::new`.
        let planes = scene(W, H);
        let good = image(&planes, W, W, H);
        for bad in [
            Yuv { y: &planes.0[..W * H - 1], ..good },
            Yuv { y_stride: W - 1, ..good },
            Yuv { width: 0, ..good },
            Yuv { height: 0, ..good },
            Yuv { y_stride: usize::MAX, ..good },
        ] {
            assert_eq!(det.check(&bad, t), None);
        }

        // Still watched after all that, here with padded rows.
        let (w, h, stride) = (W, H, W + 16);
        let padded = |f: fn(usize, usize) -> u8| {
            frame(stride, h, move |x, y| if x < w { f(x, y) } else { 0 })
        };
        let (base, black) = (padded(scene_luma), padded(|_, _| 16));
        let alarms: Vec<_> = (0..50)
            .filter_map(|i| {
                let p = if i < 25 { &base } else { &black };
                det.check(&image(p, stride, w, h), t + i * STEP)
            })
            .collect();
        assert_eq!(alarms, [Tamper::Covered]);
    }

    #[test]
    fn descriptions() {
        assert_eq!(Tamper::Covered.describe(), "lens covered");
        assert_eq!(Tamper::Blurred.describe(), "view blurred or sprayed");
        assert_eq!(Tamper::Moved.describe(), "view moved");
    }
}
