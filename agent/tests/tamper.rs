//! Tamper detection on real footage: `vtest.avi` (PETS09 S2.L1, 768×576, 10 fps, a campus
//! walkway seen from above) decoded by the agent's own reader, looped, its planes altered in
//! memory (an infrared night and its dawn, a street lamp going off over half the view, a cover,
//! a sprayed lens, a turned camera) and fed to the detector on the clip's clock (100 ms a frame).
//! Every clip runs past `min_duration_ms` + `adopt_ms` with margin, so a repeated or late alarm
//! would show. Run with `--nocapture` for each clip's figures.

use std::path::{Path, PathBuf};

use xueliang_agent::rules::camera_tamper::{Tamper, TamperDetector, TamperSettings};
use xueliang_agent::source::{Recording, Yuv, YuvToRgb};

/// Milliseconds per frame of the clip (10 fps).
const STEP_MS: i64 = 100;

fn vtest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/footage/vtest.avi")
}

/// One frame's I420 planes, rows packed.
struct Planes {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    width: usize,
    height: usize,
}

impl Planes {
    /// Chroma width.
    fn cw(&self) -> usize {
        self.width.div_ceil(2)
    }

    fn image(&self) -> Yuv<'_> {
        let (w, h) = (self.width, self.height);
        Yuv::new(&self.y, &self.u, &self.v, w, w.div_ceil(2), w, h, YuvToRgb::BT601).unwrap()
    }

    /// Grey: both chroma planes at 128.
    fn grey(&mut self) {
        self.u.fill(128);
        self.v.fill(128);
    }
}

/// `vtest.avi` frame by frame, from the start again at its end.
struct Clip {
    recording: Recording,
}

impl Clip {
    fn open() -> Self {
        let path = vtest();
        assert!(path.is_file(), "run `make setup` first: {} is missing", path.display());
        Self { recording: Recording::open(&path).unwrap() }
    }

    fn next(&mut self) -> Planes {
        let frame = match self.recording.next_frame().unwrap() {
            Some(frame) => frame,
            None => {
                self.recording = Recording::open(&vtest()).unwrap();
                self.recording.next_frame().unwrap().expect("a frame")
            }
        };
        let (w, h) = (frame.width(), frame.height());
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let copy = |plane: &[u8], stride: usize, w: usize, h: usize| {
            (0..h).flat_map(|r| &plane[r * stride..][..w]).copied().collect::<Vec<u8>>()
        };
        frame
            .with_yuv(|img| Planes {
                y: copy(img.y, img.y_stride, w, h),
                u: copy(img.u, img.uv_stride, cw, ch),
                v: copy(img.v, img.uv_stride, cw, ch),
                width: w,
                height: h,
            })
            .unwrap()
    }
}

/// A small deterministic noise source (xorshift).
struct Noise(u64);

impl Noise {
    /// Roughly normal, standard deviation about `amplitude` / 2.
    fn sample(&mut self, amplitude: i32) -> i32 {
        let mut draw = || {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) % (amplitude as u64 + 1)) as i32
        };
        draw() - draw()
    }
}

/// Feeds `frames` frames of the looped clip, each altered by `alter` (frame index, planes,
/// noise), to a default detector at the clip's times; returns what it answered for each frame.
fn run(
    frames: usize,
    mut alter: impl FnMut(usize, &mut Planes, &mut Noise),
) -> Vec<Option<Tamper>> {
    let mut clip = Clip::open();
    let mut detector = TamperDetector::new(TamperSettings::default());
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    (0..frames)
        .map(|i| {
            let mut planes = clip.next();
            alter(i, &mut planes, &mut noise);
            detector.check(&planes.image(), i as i64 * STEP_MS)
        })
        .collect()
}

/// The episodes in `answers`: first and last frame of each run of one kind.
fn episodes(answers: &[Option<Tamper>]) -> Vec<(usize, usize, Tamper)> {
    let mut out: Vec<(usize, usize, Tamper)> = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        let Some(kind) = *answer else { continue };
        match out.last_mut() {
            Some((_, last, k)) if *k == kind && *last + 1 == i => *last = i,
            _ => out.push((i, i, kind)),
        }
    }
    out
}

/// Prints the figures of one clip and returns its episodes.
fn report(name: &str, answers: &[Option<Tamper>]) -> Vec<(usize, usize, Tamper)> {
    let found = episodes(answers);
    match found.first() {
        None => println!("{name}: no Some in {} frames", answers.len()),
        Some(&(first, ..)) => {
            println!("{name}: first Some at frame {first}; episodes (first, last, kind): {found:?}")
        }
    }
    found
}

/// Luma as an infrared camera at night shows it, by day luma: a brightness jump and a gamma.
fn infrared_curve() -> [f32; 256] {
    std::array::from_fn(|y| 255.0 * (y as f32 / 255.0).powf(0.8))
}

/// `p` as an infrared camera at night shows it: grey, brighter, with another gamma and
/// contrast, foliage (the grass: U well below 128) brighter still as infrared reflects off it,
/// lit by an illuminator that falls off towards the corners, with sensor noise.
fn infrared(p: &mut Planes, curve: &[f32; 256], noise: &mut Noise) {
    let (w, h, cw) = (p.width, p.height, p.cw());
    for r in 0..h {
        for x in 0..w {
            let foliage = (1.5 * (128.0 - p.u[r / 2 * cw + x / 2] as f32)).clamp(0.0, 40.0);
            let (dx, dy) = (x as f32 / w as f32 - 0.5, r as f32 / h as f32 - 0.5);
            let lamp = 1.0 - 0.9 * (dx * dx + dy * dy);
            let luma = &mut p.y[r * w + x];
            let night = 40.0 + 1.3 * (curve[*luma as usize] + foliage) * lamp;
            *luma = (night + noise.sample(6) as f32).round().clamp(0.0, 255.0) as u8;
        }
    }
    p.grey();
}

/// `p`'s luma scaled by `gain(x, y)` above black (16).
fn relight(p: &mut Planes, gain: impl Fn(usize, usize) -> f32) {
    let w = p.width;
    for (i, luma) in p.y.iter_mut().enumerate() {
        *luma = (16.0 + (*luma as f32 - 16.0) * gain(i % w, i / w)).round().clamp(0.0, 255.0) as u8;
    }
}

/// `p`'s luma box-blurred with `radius` (clamped at the borders), rows then columns.
fn box_blur(p: &mut Planes, radius: usize) {
    let (w, h) = (p.width, p.height);
    for r in 0..h {
        let row = blur_line(&p.y[r * w..][..w], radius);
        p.y[r * w..][..w].copy_from_slice(&row);
    }
    for c in 0..w {
        let column: Vec<u8> = (0..h).map(|r| p.y[r * w + c]).collect();
        for (r, value) in blur_line(&column, radius).into_iter().enumerate() {
            p.y[r * w + c] = value;
        }
    }
}

/// `line` box-blurred with `radius`, from running sums.
fn blur_line(line: &[u8], radius: usize) -> Vec<u8> {
    let n = line.len();
    let mut prefix = vec![0u32; n + 1];
    for (i, &v) in line.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v as u32;
    }
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(radius), (i + radius).min(n - 1));
            ((prefix[b + 1] - prefix[a]) as f32 / (b - a + 1) as f32).round() as u8
        })
        .collect()
}

/// `p` seen by a camera turned by half its width (what left the view on one side comes in on
/// the other).
fn turn_half(p: &mut Planes) {
    let (w, cw) = (p.width, p.cw());
    for row in p.y.chunks_exact_mut(w) {
        row.rotate_left(w / 2);
    }
    for row in p.u.chunks_exact_mut(cw).chain(p.v.chunks_exact_mut(cw)) {
        row.rotate_left(cw / 2);
    }
}

/// `p` mirrored left to right.
fn mirror(p: &mut Planes) {
    let (w, cw) = (p.width, p.cw());
    for row in p.y.chunks_exact_mut(w) {
        row.reverse();
    }
    for row in p.u.chunks_exact_mut(cw).chain(p.v.chunks_exact_mut(cw)) {
        row.reverse();
    }
}

/// Asserts one episode of `kind` that starts 3-4 s into a stretch of frames `from..to` and
/// ends (the first frame with `None` after it) within 4 s of its end.
fn assert_episode(found: (usize, usize, Tamper), kind: Tamper, from: usize, to: usize) {
    let (first, last, k) = found;
    assert_eq!(k, kind, "{found:?}");
    assert!((from + 30..=from + 40).contains(&first), "{found:?}");
    assert!((to..to + 40).contains(&last), "{found:?}");
}

#[test]
fn an_infrared_night_and_its_dawn_raise_nothing() {
    let curve = infrared_curve();
    // 20 s of day, dusk in 1 s (the exposure settling), 40 s of infrared night, dawn at once,
    // 30 s of day.
    let answers = run(900, |i, p, noise| {
        if (200..600).contains(&i) {
            let day = p.y.clone();
            infrared(p, &curve, noise);
            if i < 210 {
                let night = (i - 200) as f32 / 10.0;
                for (n, d) in p.y.iter_mut().zip(day) {
                    *n = (night * *n as f32 + (1.0 - night) * d as f32).round() as u8;
                }
            }
        }
    });
    assert_eq!(report("day → infrared night → day", &answers), []);
}

#[test]
fn a_street_lamp_going_off_over_half_the_view_raises_nothing() {
    // The left half at 35 % from 20 s on, a sharp boundary.
    let answers = run(600, |i, p, _| {
        let w = p.width;
        if i >= 200 {
            relight(p, |x, _| if x < w / 2 { 0.35 } else { 1.0 });
        }
    });
    assert_eq!(report("left half at 35 %", &answers), []);
    // The top half at 30 %, the boundary 60 px soft.
    let answers = run(600, |i, p, _| {
        let h = p.height as f32;
        if i >= 200 {
            relight(p, |_, y| 0.3 + 0.7 * ((y as f32 - h / 2.0) / 60.0 + 0.5).clamp(0.0, 1.0));
        }
    });
    assert_eq!(report("top half at 30 %, soft", &answers), []);
}

#[test]
fn a_cover_is_one_episode_each_time() {
    // Black tape for 10 s from 20 s, then grey cloth for 10 s from 45 s.
    let answers = run(700, |i, p, noise| {
        if (200..300).contains(&i) {
            p.y.fill(16);
            p.grey();
        } else if (450..550).contains(&i) {
            p.y.iter_mut().for_each(|luma| *luma = (120 + noise.sample(2)) as u8);
            p.grey();
        }
    });
    let found = report("black 20-30 s, grey cloth 45-55 s", &answers);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_episode(found[0], Tamper::Covered, 200, 300);
    assert_episode(found[1], Tamper::Covered, 450, 550);
}

#[test]
fn a_sprayed_lens_is_one_episode() {
    // Blurred (box, radius 8) for 10 s from 20 s.
    let answers = run(450, |i, p, _| {
        if (200..300).contains(&i) {
            box_blur(p, 8);
        }
    });
    let found = report("blur radius 8 at 20-30 s", &answers);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_episode(found[0], Tamper::Blurred, 200, 300);
}

#[test]
fn a_turned_camera_is_moved_until_its_view_is_adopted() {
    // Turned by half its width from 20 s for good: moved from 3 s in until the new view is
    // adopted 30 s into the move, then watched.
    let answers = run(700, |i, p, _| {
        if i >= 200 {
            turn_half(p);
        }
    });
    let found = report("turned half a width from 20 s", &answers);
    assert_eq!(found.len(), 1, "{found:?}");
    let (first, last, kind) = found[0];
    assert_eq!(kind, Tamper::Moved);
    assert!((230..=240).contains(&first), "{found:?}");
    assert_eq!(last, 499, "adopted 30 s into the move: {found:?}");
    // Mirrored for 10 s from 20 s: moved, and over once it is back.
    let answers = run(450, |i, p, _| {
        if (200..300).contains(&i) {
            mirror(p);
        }
    });
    let found = report("mirrored 20-30 s", &answers);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_episode(found[0], Tamper::Moved, 200, 300);
}
