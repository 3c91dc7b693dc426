//! Camera tamper detection: a lens covered, blurred or sprayed, or a camera turned away from its
//! view, reported as an episode that starts when the condition has held a while and ends when it
//! has been gone as long, so a blinded camera is noticed instead of silently reporting nothing.
//!
//! Each frame is reduced to a few features read from a sample of its pixels (a 1080p frame
//! costs well under a millisecond): a grid of mean luma and its spread; from a few whole rows of
//! every grid cell, at full resolution, the sharpness (RMS of neighbouring-pixel differences),
//! which falls when the lens is defocused or sprayed, and a histogram of gradient orientations
//! in each quarter of the cell (where the edges are and which way they run); and the colour
//! (chroma energy). They are compared with a reference that follows the scene slowly while
//! nothing is suspected, so a tamper is never learned.
//!
//! Lighting changes intensity, not where the edges are: dusk, a street lamp going off over half
//! the view, or the day/night switch of an infrared camera (the picture turns grey, brighter and
//! differently contrasted) leave each cell's normalised orientation histogram nearly as it was,
//! while a turned camera changes it in most textured cells. So a view is moved only when its
//! structure changed; a covered lens loses its structure and goes dark or flat; a blurred or
//! sprayed lens loses fine detail clearly more than coarse contrast. A sudden change of lighting
//! or colour mode with the structure intact is relearned: once it has settled for `settle_ms`,
//! the new view becomes the reference outright instead of being followed for minutes.

use crate::source::Yuv;

/// Grid columns.
const COLS: usize = 32;
/// Grid rows.
const ROWS: usize = 18;
/// Grid cells.
const CELLS: usize = COLS * ROWS;
/// Sub-blocks per cell side whose edges are told apart (where in the cell an edge is).
const SUB: usize = 2;
/// Unsigned gradient orientations: horizontal, vertical and the two diagonals. Unsigned, so an
/// edge whose sides swap brightness (infrared reflects differently) keeps its orientation.
const ORIENTATIONS: usize = 4;
/// Histogram bins per cell.
const BINS: usize = SUB * SUB * ORIENTATIONS;
/// Rows read per sub-block, whatever the resolution.
const ROW_SAMPLES: usize = 2;

/// Tamper detection settings for one camera.
#[derive(Debug, Clone)]
pub struct TamperSettings {
    /// A condition must hold this long to start an episode, and be gone as long to end it: 3 s.
    pub min_duration_ms: i64,
    /// A moved view held this long becomes the new reference, which ends its episode: 30000 ms.
    pub adopt_ms: i64,
    /// Time constant of the reference's exponential average: 60000 ms.
    pub reference_tau_ms: i64,
    /// A relit view (same edges, new light) steady this long becomes the reference: 2000 ms.
    pub settle_ms: i64,
    /// Mean luma change within which a relit view counts as steady: 8.
    pub settle_luma: f32,
    /// Relit views are learned only with fewer changed cells than this share of a move's: 0.5.
    pub relearn_share: f32,
    /// Mean luma step from the reference that is a change of lighting: 20.
    pub relight_luma: f32,
    /// Chroma energy ratio (lower over higher, frame and reference) of a colour-mode switch: 0.25.
    pub mode_switch_ratio: f32,
    /// Chroma energy (mean |U-128| + |V-128|) below which a picture is grey anyway: 3.
    pub min_chroma: f32,
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
    /// Fraction of grid cells whose luma changed that makes the light changed: 0.5.
    pub relit_fraction: f32,
    /// Gradient energy (luma step per pixel) of noise: cells below twice it have no edges: 2.
    pub noise_energy: f32,
    /// Share of cells, the reference's most textured (and those near), whose edges count: 0.3.
    pub textured_share: f32,
    /// Structure distance of a cell (0 same, 1 disjoint) beyond which it changed: 0.35.
    pub cell_change: f32,
    /// Fraction of compared cells whose edges changed that makes the view moved: 0.5.
    pub moved_fraction: f32,
    /// The same across a colour-mode switch (infrared reflects differently): 0.8.
    pub switch_moved_fraction: f32,
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
            settle_ms: 2000,
            settle_luma: 8.0,
            relearn_share: 0.5,
            relight_luma: 20.0,
            mode_switch_ratio: 0.25,
            min_chroma: 3.0,
            dark_luma: 40.0,
            dark_drop: 30.0,
            flat_ratio: 0.25,
            blur_ratio: 0.4,
            blur_vs_contrast: 0.6,
            cell_delta: 16.0,
            relit_fraction: 0.5,
            noise_energy: 2.0,
            textured_share: 0.3,
            cell_change: 0.35,
            moved_fraction: 0.5,
            switch_moved_fraction: 0.8,
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
    /// Mean |U-128| + |V-128|: near zero in a grey (infrared) picture.
    chroma: f32,
    /// Mean gradient magnitude per sample, by cell, sub-block and orientation (`CELLS × BINS`).
    edges: Vec<f32>,
    /// Each cell's total of `edges`.
    energy: [f32; CELLS],
}

impl Features {
    /// Sets `mean`, `spread` and `energy` from the grid and the edges.
    fn summarize(&mut self) {
        self.mean = self.grid.iter().sum::<f32>() / CELLS as f32;
        let var = self.grid.iter().map(|g| (g - self.mean).powi(2)).sum::<f32>() / CELLS as f32;
        self.spread = var.sqrt();
        for (e, bins) in self.energy.iter_mut().zip(self.edges.chunks_exact(BINS)) {
            *e = bins.iter().sum();
        }
    }

    /// Moves these features towards `cur` by `alpha`.
    fn blend(&mut self, cur: &Features, alpha: f32) {
        for (g, c) in self.grid.iter_mut().zip(&cur.grid) {
            *g += alpha * (c - *g);
        }
        for (e, c) in self.edges.iter_mut().zip(&cur.edges) {
            *e += alpha * (c - *e);
        }
        self.sharpness += alpha * (cur.sharpness - self.sharpness);
        self.chroma += alpha * (cur.chroma - self.chroma);
        self.summarize();
    }
}

/// Slowly updated features, for one frame size.
#[derive(Debug)]
struct Reference {
    features: Features,
    width: usize,
    height: usize,
    /// Clock of the last update.
    updated: i64,
}

impl Reference {
    /// Moves the features towards `cur` by the time since the last update.
    fn follow(&mut self, cur: &Features, clock: i64, tau_ms: i64) {
        // Capped at one time constant: a single frame after a gap (it may hold a passing truck)
        // never replaces the reference outright.
        let dt = (clock - self.updated).clamp(0, tau_ms.max(0));
        let alpha = if tau_ms > 0 { 1.0 - (-(dt as f32) / tau_ms as f32).exp() } else { 1.0 };
        self.updated = clock;
        self.features.blend(cur, alpha);
    }
}

/// What a frame shows against the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    /// The tamper it shows, most severe first.
    tamper: Option<Tamper>,
    /// Its lighting or colour mode changed.
    relit: bool,
}

/// Where the current episode stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Episode {
    /// Nothing suspected.
    Idle,
    /// A condition has held since this clock, not yet long enough to be an episode.
    Suspected(i64),
    /// An episode of `kind`; the condition has been gone since `clear`, if it is.
    Alarmed { kind: Tamper, clear: Option<i64> },
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
    /// The condition of the last frame and since when it has held without a break.
    condition: Option<(Tamper, i64)>,
    /// A relit view being learned, since its clock: adopted once it has held `settle_ms`.
    relit: Option<(i64, Reference)>,
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
            condition: None,
            relit: None,
        }
    }

    /// Checks one frame at `t_ms` (a monotonic clock); returns the tamper episode under way:
    /// `Some(kind)` on every frame from when a condition has held `min_duration_ms` until it
    /// has been gone as long (or a moved view is adopted), else `None`. The kind is the one that
    /// started the episode, or another that has since held `min_duration_ms`. A frame whose
    /// planes do not hold its size changes nothing and gets the same answer.
    pub fn check(&mut self, img: &Yuv<'_>, t_ms: i64) -> Option<Tamper> {
        let Some(cur) = measure(img) else {
            return self.current();
        };
        let step = self.last_t_ms.map_or(0, |last| t_ms.saturating_sub(last).max(0));
        self.clock = self.clock.saturating_add(step);
        self.last_t_ms = Some(t_ms);
        let clock = self.clock;
        let s = &self.settings;

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
            self.condition = None;
            self.relit = None;
            return None;
        };
        let verdict = classify(s, &cur, &reference.features);
        let condition = verdict.tamper;
        self.condition = condition.map(|kind| match self.condition {
            Some((last, since)) if last == kind => (kind, since),
            _ => (kind, clock),
        });

        if let (Some((Tamper::Moved, since)), Episode::Alarmed { .. }) =
            (self.condition, self.episode)
            && clock - since >= s.adopt_ms
        {
            // A camera turned for good watches its new view, and is moved again when turned back.
            reference.features = cur;
            reference.updated = clock;
            self.episode = Episode::Idle;
            self.condition = None;
            self.relit = None;
            return None;
        }

        // New lighting with the structure intact: learned as soon as it is steady, instead of
        // followed for minutes (during which a cover would be judged against stale light).
        if condition.is_none() && verdict.relit {
            match &mut self.relit {
                Some((since, pending))
                    if (cur.mean - pending.features.mean).abs() <= s.settle_luma =>
                {
                    pending.follow(&cur, clock, s.settle_ms);
                    if clock - *since >= s.settle_ms {
                        reference.features = pending.features.clone();
                        reference.updated = clock;
                        self.relit = None;
                    }
                }
                _ => {
                    let pending = Reference {
                        features: cur.clone(),
                        width: img.width,
                        height: img.height,
                        updated: clock,
                    };
                    self.relit = Some((clock, pending));
                }
            }
        } else {
            self.relit = None;
        }

        let min = s.min_duration_ms;
        if condition.is_some() {
            if self.episode == Episode::Idle {
                self.episode = Episode::Suspected(clock);
            }
            match (self.episode, self.condition) {
                (Episode::Suspected(since), Some((kind, _))) if clock - since >= min => {
                    self.episode = Episode::Alarmed { kind, clear: None };
                }
                // Another kind (a hand first blurs, then covers) takes over once it has held.
                (Episode::Alarmed { kind, .. }, Some((now, since))) => {
                    let kind = if now != kind && clock - since >= min { now } else { kind };
                    self.episode = Episode::Alarmed { kind, clear: None };
                }
                _ => {}
            }
        } else {
            self.episode = match self.episode {
                Episode::Alarmed { kind, clear } => {
                    let clear = clear.unwrap_or(clock);
                    if clock - clear >= min {
                        Episode::Idle
                    } else {
                        Episode::Alarmed { kind, clear: Some(clear) }
                    }
                }
                _ => Episode::Idle,
            };
        }
        if self.episode == Episode::Idle && self.relit.is_none() {
            reference.follow(&cur, clock, s.reference_tau_ms);
        }
        self.current()
    }

    /// The kind of the episode under way.
    fn current(&self) -> Option<Tamper> {
        match self.episode {
            Episode::Alarmed { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// What `cur` shows against the reference `r`.
fn classify(s: &TamperSettings, cur: &Features, r: &Features) -> Verdict {
    let (low, high) = (cur.chroma.min(r.chroma), cur.chroma.max(r.chroma));
    let mode_switch = high >= s.min_chroma && low < s.mode_switch_ratio * high;
    let changed = structure_changed(s, cur, r);
    let moved = if mode_switch { s.switch_moved_fraction } else { s.moved_fraction };
    // Relit only with the edges well in place: a truck filling half the view also changes the
    // light, and must not become the reference.
    let relit = changed.is_none_or(|c| c < s.relearn_share * moved)
        && (mode_switch
            || (cur.mean - r.mean).abs() >= s.relight_luma
            || luma_changed(s.cell_delta, cur, r) >= s.relit_fraction);
    let verdict = |tamper| Verdict { tamper, relit };

    let intact = changed.is_some_and(|c| c < moved);
    // Dark with its structure intact is night or a lamp gone off, not a cover.
    if cur.mean < s.dark_luma && r.mean - cur.mean >= s.dark_drop && !intact {
        return verdict(Some(Tamper::Covered));
    }
    if r.spread < s.min_spread || r.sharpness < s.min_sharpness {
        return verdict(None);
    }
    let contrast = cur.spread / r.spread;
    let sharpness = cur.sharpness / r.sharpness;
    if sharpness < s.blur_ratio && contrast < s.flat_ratio {
        return verdict(Some(Tamper::Covered));
    }
    if sharpness < s.blur_ratio && sharpness < s.blur_vs_contrast * contrast {
        return verdict(Some(Tamper::Blurred));
    }
    verdict(changed.is_some_and(|c| c >= moved).then_some(Tamper::Moved))
}

/// Fraction of the reference's most textured cells whose edges changed, or `None` when the
/// reference has too few textured cells to tell.
fn structure_changed(s: &TamperSettings, cur: &Features, r: &Features) -> Option<f32> {
    let mut energies = r.energy;
    let top = ((CELLS as f32 * s.textured_share.clamp(0.0, 1.0)) as usize).clamp(1, CELLS);
    let (_, &mut nth, _) = energies.select_nth_unstable_by(CELLS - top, f32::total_cmp);
    // With a margin, so cells whose reference edges fade a little as it follows the scene do
    // not drop out at once; and twice the noise, as a cell only as textured as the noise has no
    // structure to lose.
    let threshold = (0.8 * nth).max(2.0 * s.noise_energy);
    let floor = s.noise_energy.max(f32::EPSILON);
    let (mut compared, mut changed) = (0usize, 0usize);
    for cell in 0..CELLS {
        let (er, ec) = (r.energy[cell], cur.energy[cell]);
        if er < threshold {
            continue;
        }
        let (a, b) = (&r.edges[cell * BINS..][..BINS], &cur.edges[cell * BINS..][..BINS]);
        // Each histogram normalised with the floor as one more, featureless bin: a cell that
        // lost its edges (covered, or turned to a blank wall) differs, one merely dimmed does not.
        let (na, nb) = (er + floor, ec + floor);
        let shape: f32 = a.iter().zip(b).map(|(x, y)| (x / na - y / nb).abs()).sum();
        let distance = (shape + (floor / na - floor / nb).abs()) / 2.0;
        compared += 1;
        changed += (distance > s.cell_change) as usize;
    }
    (compared >= CELLS / 32).then(|| changed as f32 / compared as f32)
}

/// Fraction of grid cells whose luma differs from the reference's by more than `delta`, once the
/// frame's grid is matched to the reference's mean and spread: high when the light changed
/// unevenly (or the view did).
fn luma_changed(delta: f32, cur: &Features, r: &Features) -> f32 {
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

/// The features of `img`, or `None` when its planes do not hold its size.
fn measure(img: &Yuv<'_>) -> Option<Features> {
    let (w, h, stride) = (img.width, img.height, img.y_stride);
    // The fields are public, so the planes are checked here rather than trusted.
    let needed = stride.checked_mul(h.checked_sub(1)?)?.checked_add(w)?;
    if w == 0 || stride < w || img.y.len() < needed {
        return None;
    }
    let (cw, ch, uv_stride, step) = (w.div_ceil(2), h.div_ceil(2), img.uv_stride, img.uv_step);
    let row_bytes = cw.checked_sub(1)?.checked_mul(step)?.checked_add(1)?;
    let uv_needed = uv_stride.checked_mul(ch - 1)?.checked_add(row_bytes)?;
    if step == 0 || uv_stride < row_bytes || img.u.len() < uv_needed || img.v.len() < uv_needed {
        return None;
    }
    let row = |y: usize| &img.y[y * stride..][..w];

    let mut f = Features {
        grid: [0.0; CELLS],
        mean: 0.0,
        spread: 0.0,
        sharpness: 0.0,
        chroma: 0.0,
        edges: vec![0.0; CELLS * BINS],
        energy: [0.0; CELLS],
    };
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
    f.sharpness = measure_gradients(img, &mut f.edges);
    f.summarize();

    // Colour on a sparse grid of about 64×36 chroma samples.
    let (sx, sy) = ((cw / 64).max(1), (ch / 36).max(1));
    let (mut sum, mut n) = (0u32, 0u32);
    for y in (0..ch).step_by(sy) {
        let (u, v) = (&img.u[y * uv_stride..][..row_bytes], &img.v[y * uv_stride..][..row_bytes]);
        for (&u, &v) in u.iter().step_by(step).zip(v.iter().step_by(step)).step_by(sx) {
            sum += (u as i32 - 128).unsigned_abs() + (v as i32 - 128).unsigned_abs();
            n += 1;
        }
    }
    f.chroma = sum as f32 / n.max(1) as f32;
    Some(f)
}

/// Fills `edges` (`CELLS × BINS`) with the mean gradient magnitude per sample of each cell's
/// sub-blocks and orientations, and returns the sharpness: the RMS of the same differences.
///
/// Differences need full resolution (blur spreads an edge over neighbouring pixels), but not
/// every row: a few whole rows of each sub-block, which the compiler vectorizes.
fn measure_gradients(img: &Yuv<'_>, edges: &mut [f32]) -> f32 {
    let (w, h, stride) = (img.width, img.height, img.y_stride);
    if w < 2 || h < 2 {
        return 0.0;
    }
    // Sub-block borders across the frame; the last column has no right neighbour.
    let xs: [usize; COLS * SUB + 1] = std::array::from_fn(|i| (i * w / (COLS * SUB)).min(w - 1));
    let (mut squares, mut total) = (0u64, 0u64);
    for cy in 0..ROWS {
        let mut acc = [[0u32; BINS]; COLS];
        let mut samples = [0u32; COLS];
        for by in 0..SUB {
            // The sub-block's rows, the last one with a row below.
            let ya = (cy * SUB + by) * h / (ROWS * SUB);
            let yb = ((cy * SUB + by + 1) * h / (ROWS * SUB)).min(h - 1);
            let step = (yb.saturating_sub(ya) / ROW_SAMPLES).max(1);
            for y in (ya..yb).step_by(step).take(ROW_SAMPLES) {
                let this = &img.y[y * stride..][..w];
                let below = &img.y[(y + 1) * stride..][..w];
                for (i, pair) in xs.windows(2).enumerate() {
                    let (xa, xb) = (pair[0], pair[1]);
                    let g = gradients(&this[xa..xb], &this[xa + 1..=xb], &below[xa..xb]);
                    let (cx, bx) = (i / SUB, i % SUB);
                    let block = (by * SUB + bx) * ORIENTATIONS;
                    for (a, s) in acc[cx][block..][..ORIENTATIONS].iter_mut().zip(g.orientations) {
                        *a += s;
                    }
                    samples[cx] += (xb - xa) as u32;
                    squares += g.squares as u64;
                }
            }
        }
        for cx in 0..COLS {
            let n = samples[cx].max(1) as f32;
            let out = &mut edges[(cy * COLS + cx) * BINS..][..BINS];
            for (o, &a) in out.iter_mut().zip(&acc[cx]) {
                *o = a as f32 / n;
            }
            total += samples[cx] as u64;
        }
    }
    if total == 0 { 0.0 } else { (squares as f64 / total as f64).sqrt() as f32 }
}

/// The differences of a row segment: gradient magnitude (|dx| + |dy|) summed by unsigned
/// orientation, in 45° sectors (horizontal, vertical, rising, falling), and dx² + dy² summed.
#[derive(Debug, Default)]
struct Gradients {
    orientations: [u32; ORIENTATIONS],
    squares: u32,
}

/// The [`Gradients`] of pixels, their right neighbours and the pixels below (a segment of at
/// most 32768 pixels, so the sums cannot overflow).
fn gradients(this: &[u8], right: &[u8], below: &[u8]) -> Gradients {
    let mut g = Gradients::default();
    for ((&a, &r), &d) in this.iter().zip(right).zip(below) {
        // In i16 (eight lanes where i32 has four): 70 × 255 still fits.
        let (gx, gy) = (r as i16 - a as i16, d as i16 - a as i16);
        let (ax, ay) = (gx.abs(), gy.abs());
        let magnitude = (ax + ay) as u32;
        // tan 67.5° ≈ 70/29. Selects rather than branches, so the loop vectorizes.
        let horizontal = ax * 29 > ay * 70;
        let vertical = ay * 29 > ax * 70;
        let falling = (gx ^ gy) < 0;
        let diagonal = !horizontal && !vertical;
        g.orientations[0] += if horizontal { magnitude } else { 0 };
        g.orientations[1] += if vertical { magnitude } else { 0 };
        g.orientations[2] += if diagonal && !falling { magnitude } else { 0 };
        g.orientations[3] += if diagonal && falling { magnitude } else { 0 };
        let (gx, gy) = (gx as i32, gy as i32);
        g.squares += (gx * gx + gy * gy) as u32;
    }
    g
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

    /// A well-mixed hash of two numbers.
    fn hash(a: usize, b: usize) -> u32 {
        let mut hash = (a as u32).wrapping_mul(0x9E37_79B9) ^ (b as u32).wrapping_mul(0x85EB_CA6B);
        hash ^= hash >> 15;
        hash = hash.wrapping_mul(0x2C1B_3C6D);
        hash ^= hash >> 12;
        hash
    }

    /// The test scene's luma: blocks of varied luma, some with fine vertical or horizontal stripes.
    fn scene_luma(x: usize, y: usize) -> u8 {
        let hash = hash(x / 24, y / 20);
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

    /// The test scene in colour: each block has its own hue, some (U < 128) like foliage.
    fn colour_scene() -> Planes {
        let (y, mut u, mut v) = scene(W, H);
        let cw = W.div_ceil(2);
        for (i, (u, v)) in u.iter_mut().zip(&mut v).enumerate() {
            let hash = hash((i % cw) * 2 / 24, (i / cw) * 2 / 20) >> 16;
            *u = 98 + (hash % 60) as u8;
            *v = 98 + ((hash >> 6) % 60) as u8;
        }
        (y, u, v)
    }

    /// `planes` as an infrared camera shows them at night: grey, brighter, with another gamma,
    /// foliage (U < 128) brighter still, lit by a lamp that falls off towards the corners, and
    /// with sensor noise.
    fn infrared(planes: &Planes) -> Planes {
        let (y, u, _) = planes;
        let cw = W.div_ceil(2);
        frame(W, H, |x, r| {
            let gamma = 255.0 * (y[r * W + x] as f32 / 255.0).powf(0.8);
            let foliage = (1.5 * (128.0 - u[r / 2 * cw + x / 2] as f32)).clamp(0.0, 40.0);
            let (dx, dy) = (x as f32 / W as f32 - 0.5, r as f32 / H as f32 - 0.5);
            let lamp = 1.0 - 1.4 * (dx * dx + dy * dy);
            let noise = (hash(x, r) % 7) as f32 - 3.0;
            (40.0 + 1.3 * (gamma + foliage) * lamp + noise).round().clamp(0.0, 255.0) as u8
        })
    }

    /// `planes` with the luma of its left half dimmed to `gain`, as when a street lamp goes off.
    fn left_half_dimmed(planes: &Planes, gain: f32) -> Planes {
        let (mut y, u, v) = planes.clone();
        for (i, p) in y.iter_mut().enumerate() {
            if i % W < W / 2 {
                *p = (16.0 + (*p as f32 - 16.0) * gain).round() as u8;
            }
        }
        (y, u, v)
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

    /// Feeds one 320×180 frame at 5 fps over `from..to` ms; returns the frames that reported an
    /// episode, with their times.
    fn feed(det: &mut TamperDetector, planes: &Planes, from: i64, to: i64) -> Vec<(i64, Tamper)> {
        (from..to)
            .step_by(STEP as usize)
            .filter_map(|t| check(det, planes, W, H, t).map(|a| (t, a)))
            .collect()
    }

    /// The episodes among `reports`: runs of frames `STEP` apart reporting one kind, as their
    /// first and last frame's times and the kind.
    fn episodes(reports: &[(i64, Tamper)]) -> Vec<(i64, i64, Tamper)> {
        let mut out: Vec<(i64, i64, Tamper)> = Vec::new();
        for &(t, kind) in reports {
            match out.last_mut() {
                Some((_, last, k)) if *k == kind && t - *last == STEP => *last = t,
                _ => out.push((t, t, kind)),
            }
        }
        out
    }

    fn detector() -> TamperDetector {
        TamperDetector::new(TamperSettings::default())
    }

    /// The reference's mean luma.
    fn reference_mean(det: &TamperDetector) -> f32 {
        det.reference.as_ref().unwrap().features.mean
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
    fn relit_test_scenes_defeat_a_comparison_of_cell_means() {
        // What the dusk tests below guard against: most cells' mean luma changes (beyond what
        // matching mean and spread explains), while the edges stay where they were.
        let s = TamperSettings::default();
        let day = measure(&image(&colour_scene(), W, W, H)).unwrap();
        for relit in [infrared(&colour_scene()), left_half_dimmed(&colour_scene(), 0.35)] {
            let night = measure(&image(&relit, W, W, H)).unwrap();
            let luma = luma_changed(s.cell_delta, &night, &day);
            let edges = structure_changed(&s, &night, &day).unwrap();
            assert!(luma >= s.relit_fraction.max(s.moved_fraction), "{luma}");
            assert!(edges < 0.5 * s.moved_fraction, "{edges}");
        }
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
    fn an_infrared_switch_is_relearned_not_alarmed() {
        let mut det = detector();
        let (day, night) = (colour_scene(), infrared(&colour_scene()));
        let night_mean = measure(&image(&night, W, W, H)).unwrap().mean;
        let mut alarms = feed(&mut det, &day, 0, 20_000);
        // Dusk: learned once steady (2 s), not followed for minutes.
        alarms.extend(feed(&mut det, &night, 20_000, 22_400));
        assert!((reference_mean(&det) - night_mean).abs() < 1.0, "{}", reference_mean(&det));
        alarms.extend(feed(&mut det, &night, 22_400, 60_000));
        // Dawn, the same way back.
        alarms.extend(feed(&mut det, &day, 60_000, 100_000));
        assert_eq!(alarms, []);
        // Still watched: the night view, then a cover over it.
        alarms.extend(feed(&mut det, &night, 100_000, 130_000));
        alarms.extend(feed(&mut det, &flat(W, H, (16, 128, 128)), 130_000, 135_000));
        assert_eq!(episodes(&alarms), [(133_000, 134_800, Tamper::Covered)]);
    }

    #[test]
    fn half_the_view_going_dark_is_relearned_not_alarmed() {
        let mut det = detector();
        let (lit, half) = (colour_scene(), left_half_dimmed(&colour_scene(), 0.35));
        let mut alarms = feed(&mut det, &lit, 0, 20_000);
        alarms.extend(feed(&mut det, &half, 20_000, 60_000));
        assert_eq!(alarms, []);
        let half_mean = measure(&image(&half, W, W, H)).unwrap().mean;
        assert!((reference_mean(&det) - half_mean).abs() < 1.0, "{}", reference_mean(&det));
        // A turn is still a turn.
        let mut turned = colour_scene();
        turned.0 = frame(W, H, |x, y| scene_luma(x + W / 4, y)).0;
        let turned = left_half_dimmed(&turned, 0.35);
        alarms.extend(feed(&mut det, &turned, 60_000, 65_000));
        assert_eq!(episodes(&alarms), [(63_000, 64_800, Tamper::Moved)]);
    }

    #[test]
    fn a_vehicle_filling_a_third_of_the_view_is_not_taken_for_new_light() {
        let mut det = detector();
        let base = scene(W, H);
        let parked = frame(W, H, |x, y| if x < W / 3 { 200 } else { scene_luma(x, y) });
        let base_mean = measure(&image(&base, W, W, H)).unwrap().mean;
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // Brighter by 28 on average, but a third of the edges are gone: not relit, so not learned
        // once steady (2 s), only followed slowly, as any scene.
        alarms.extend(feed(&mut det, &parked, 20_000, 22_400));
        assert!(reference_mean(&det) - base_mean < 3.0, "{} {base_mean}", reference_mean(&det));
        alarms.extend(feed(&mut det, &parked, 22_400, 40_000));
        alarms.extend(feed(&mut det, &base, 40_000, 70_000));
        assert_eq!(alarms, []);
    }

    #[test]
    fn a_cover_that_greys_the_picture_is_not_learned_as_a_colour_switch() {
        // A cover also drops the chroma and the brightness, as the infrared switch does.
        for cover in [flat(W, H, (16, 128, 128)), frame(W, H, |x, y| 120 + (hash(x, y) % 5) as u8)]
        {
            let mut det = detector();
            let mut alarms = feed(&mut det, &colour_scene(), 0, 20_000);
            alarms.extend(feed(&mut det, &cover, 20_000, 60_000));
            assert_eq!(episodes(&alarms), [(23_000, 59_800, Tamper::Covered)]);
        }
    }

    #[test]
    fn covering_the_lens_is_one_episode_until_it_has_been_gone_as_long() {
        let mut det = detector();
        let (base, black) = (scene(W, H), flat(W, H, (16, 128, 128)));
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // A hand passing by is shorter than an episode.
        alarms.extend(feed(&mut det, &black, 20_000, 22_000));
        alarms.extend(feed(&mut det, &base, 22_000, 30_000));
        assert_eq!(alarms, []);
        // From 3 s into the cover until 3 s after it is gone.
        alarms.extend(feed(&mut det, &black, 30_000, 35_000));
        alarms.extend(feed(&mut det, &base, 35_000, 45_000));
        assert_eq!(episodes(&alarms), [(33_000, 37_800, Tamper::Covered)]);
        // A cover lifted for less than 3 s does not split the episode.
        alarms.extend(feed(&mut det, &black, 45_000, 50_000));
        alarms.extend(feed(&mut det, &base, 50_000, 52_000));
        alarms.extend(feed(&mut det, &black, 52_000, 55_000));
        alarms.extend(feed(&mut det, &base, 55_000, 60_000));
        assert_eq!(
            episodes(&alarms),
            [(33_000, 37_800, Tamper::Covered), (48_000, 57_800, Tamper::Covered)]
        );
    }

    #[test]
    fn a_flat_cover_that_is_not_dark_is_covered() {
        let mut det = detector();
        // Grey cloth with a little sensor noise.
        let cloth = frame(W, H, |x, y| 120 + ((x * 7 + y * 13) % 5) as u8);
        let mut alarms = feed(&mut det, &scene(W, H), 0, 20_000);
        alarms.extend(feed(&mut det, &cloth, 20_000, 30_000));
        assert_eq!(episodes(&alarms), [(23_000, 29_800, Tamper::Covered)]);
    }

    #[test]
    fn a_scene_dark_from_the_start_is_watched_not_alarmed() {
        let mut det = detector();
        // Night without infrared: mean luma about 33.
        let night = frame(W, H, |x, y| 16 + (scene_luma(x, y) - 16) / 6);
        let mut alarms = feed(&mut det, &night, 0, 30_000);
        assert_eq!(alarms, []);
        alarms.extend(feed(&mut det, &flat(W, H, (16, 128, 128)), 30_000, 35_000));
        assert_eq!(episodes(&alarms), [(33_000, 34_800, Tamper::Covered)], "flat, if not darker");
    }

    #[test]
    fn blurring_the_lens_is_one_episode() {
        let mut det = detector();
        let base = scene(W, H);
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        alarms.extend(feed(&mut det, &box_blur(&base, 8), 20_000, 25_000));
        alarms.extend(feed(&mut det, &base, 25_000, 35_000));
        assert_eq!(episodes(&alarms), [(23_000, 27_800, Tamper::Blurred)]);
    }

    #[test]
    fn another_kind_takes_over_an_episode_once_it_has_held() {
        let mut det = detector();
        let base = scene(W, H);
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // Sprayed, then covered as well: one episode, blurred until the cover has held 3 s.
        alarms.extend(feed(&mut det, &box_blur(&base, 8), 20_000, 30_000));
        alarms.extend(feed(&mut det, &flat(W, H, (16, 128, 128)), 30_000, 40_000));
        assert_eq!(
            episodes(&alarms),
            [(23_000, 32_800, Tamper::Blurred), (33_000, 39_800, Tamper::Covered)]
        );
    }

    #[test]
    fn a_moved_view_is_one_episode_until_it_becomes_the_reference() {
        let mut det = detector();
        let base = scene(W, H);
        let turned = frame(W, H, |x, y| scene_luma(x + W / 4, y));
        let mut alarms = feed(&mut det, &base, 0, 20_000);
        // Adopted 30 s into the move, which ends the episode, then watched for over 60 s.
        alarms.extend(feed(&mut det, &turned, 20_000, 120_000));
        assert_eq!(episodes(&alarms), [(23_000, 49_800, Tamper::Moved)]);
        // Turning it back is a move against the adopted view.
        alarms.extend(feed(&mut det, &base, 120_000, 130_000));
        assert_eq!(
            episodes(&alarms),
            [(23_000, 49_800, Tamper::Moved), (123_000, 129_800, Tamper::Moved)]
        );
    }

    #[test]
    fn time_counts_not_frames() {
        let mut det = detector();
        let (base, black) = (scene(W, H), flat(W, H, (16, 128, 128)));
        assert_eq!(feed(&mut det, &base, 0, 20_000), []);
        // One frame every 1.5 s: the episode starts 3 s in, on the third frame.
        assert_eq!(check(&mut det, &black, W, H, 20_000), None);
        assert_eq!(check(&mut det, &black, W, H, 21_500), None);
        assert_eq!(check(&mut det, &black, W, H, 23_000), Some(Tamper::Covered));
        // And ends 3 s after the cover is gone, however many frames that is.
        let alarms = feed(&mut det, &base, 23_200, 33_000);
        assert_eq!(episodes(&alarms), [(23_200, 26_000, Tamper::Covered)]);
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
        let bad = [
            Yuv { y: &planes.0[..W * H - 1], ..good },
            Yuv { u: &planes.1[..10], ..good },
            Yuv { y_stride: W - 1, ..good },
            Yuv { uv_stride: W / 2 - 1, ..good },
            Yuv { width: 0, ..good },
            Yuv { height: 0, ..good },
            Yuv { y_stride: usize::MAX, ..good },
            Yuv { uv_stride: usize::MAX, ..good },
        ];
        for bad in bad {
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
                det.check(&image(p, stride, w, h), t + i * STEP).map(|a| (i, a))
            })
            .collect();
        // Covered from 3 s (15 frames) into the cover.
        assert_eq!(alarms, (40..50).map(|i| (i, Tamper::Covered)).collect::<Vec<_>>());
        // A bad frame during an episode changes nothing and gets the same answer.
        assert_eq!(det.check(&bad[0], t + 50 * STEP), Some(Tamper::Covered));
    }

    #[test]
    fn descriptions() {
        assert_eq!(Tamper::Covered.describe(), "lens covered");
        assert_eq!(Tamper::Blurred.describe(), "view blurred or sprayed");
        assert_eq!(Tamper::Moved.describe(), "view moved");
    }

    /// Not a pass/fail test: prints the time per frame (built as tests are, with less
    /// optimization than a release): `cargo test -p xueliang-agent tests::cost -- --nocapture`.
    #[test]
    fn cost() {
        for (w, h) in [(768, 576), (1920, 1080)] {
            let planes = scene(w, h);
            let mut det = detector();
            let frames = 100;
            let start = std::time::Instant::now();
            for i in 0..frames {
                check(&mut det, &planes, w, h, i * STEP);
            }
            println!("tamper check {w}x{h}: {:?} per frame", start.elapsed() / frames as u32);
        }
    }
}
