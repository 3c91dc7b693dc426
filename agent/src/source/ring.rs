//! Each camera's last seconds of compressed video, as its parser hands it on: the record stream
//! (decoded only for an event's picture) or the detect stream (tapped before its decoder). Kept from a keyframe on,
//! bounded in time and memory, so an event's clip can start before the event without decoding
//! or encoding anything. An open event holds the buffer from its clip's start until the clip is
//! cut.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;

/// One access unit (a frame's compressed bytes) and when it arrived.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The parser's buffer (shared, not copied), with its timestamps and keyframe flag.
    pub buffer: gst::Buffer,
    /// Arrival on the monotonic clock, ms (the clock frames and events use).
    pub mono_ms: i64,
    /// Arrival, UTC ms.
    pub wall_ms: i64,
}

impl Unit {
    /// Whether a decoder can start here.
    pub fn keyframe(&self) -> bool {
        !self.buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
    }
}

/// A stretch of one stream cut from the ring: it starts with a keyframe.
#[derive(Debug, Clone)]
pub struct Cut {
    /// The stream's caps (H.264 or H.265, as the parser output them).
    pub caps: gst::Caps,
    /// The access units, in order.
    pub units: Vec<Unit>,
}

/// Counters of a ring, for metrics and tests.
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Access units buffered since start.
    pub units: AtomicU64,
    /// Bytes buffered now.
    pub bytes: AtomicU64,
    /// Access units given up to stay within the memory bound while held by an event.
    pub overflowed: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    caps: Option<gst::Caps>,
    units: VecDeque<Unit>,
    bytes: usize,
    /// Hold id → the earliest time (mono ms) it needs kept.
    holds: BTreeMap<u64, i64>,
    next_hold: u64,
}

/// One camera's buffer of compressed video.
#[derive(Debug)]
pub struct StreamRing {
    state: Mutex<State>,
    keep_ms: i64,
    max_bytes: usize,
    /// What was buffered and given up.
    pub counters: RingCounters,
}

/// Whether `caps` are a stream the ring can keep and a clip can carry unchanged.
pub fn clip_codec(caps: &gst::CapsRef) -> bool {
    caps.structure(0).is_some_and(|s| s.name() == "video/x-h264" || s.name() == "video/x-h265")
}

impl StreamRing {
    /// A ring keeping the last `keep_ms` (more while held), at most `max_bytes`.
    pub fn new(keep_ms: i64, max_bytes: usize) -> Self {
        Self { state: Mutex::default(), keep_ms, max_bytes, counters: RingCounters::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection to the stream: its timestamps start again, so what was kept cannot be
    /// joined to what follows.
    pub fn restart(&self) {
        let mut s = self.lock();
        s.units.clear();
        s.bytes = 0;
        s.caps = None;
        self.counters.bytes.store(0, Ordering::Relaxed);
    }

    /// The stream's caps (set or changed): units of other caps are dropped.
    pub fn set_caps(&self, caps: gst::Caps) {
        let mut s = self.lock();
        if s.caps.as_ref() != Some(&caps) {
            s.units.clear();
            s.bytes = 0;
            s.caps = Some(caps);
        }
    }

    /// Keeps access unit `buffer`, arrived at `mono_ms` / `wall_ms`.
    pub fn push(&self, buffer: gst::Buffer, mono_ms: i64, wall_ms: i64) {
        let mut s = self.lock();
        if s.caps.is_none() {
            return;
        }
        let unit = Unit { buffer, mono_ms, wall_ms };
        // A clip must start at a keyframe: what comes before the first is of no use.
        if s.units.is_empty() && !unit.keyframe() {
            return;
        }
        s.bytes += unit.buffer.size();
        s.units.push_back(unit);
        self.counters.units.fetch_add(1, Ordering::Relaxed);
        self.trim(&mut s, mono_ms);
        self.counters.bytes.store(s.bytes as u64, Ordering::Relaxed);
    }

    /// Drops whole groups of pictures from the front while the next one starts early enough
    /// (before `keep_ms` ago and before every hold), or while over the memory bound.
    fn trim(&self, s: &mut State, now_ms: i64) {
        let held_from = s.holds.values().copied().min().unwrap_or(i64::MAX);
        let keep_from = (now_ms - self.keep_ms).min(held_from);
        loop {
            let Some(next) = s.units.iter().skip(1).position(Unit::keyframe).map(|i| i + 1) else {
                // One group of pictures over the bound (a camera with very rare keyframes, or
                // none): nothing whole can go, so all of it does; the next keyframe starts again.
                if s.bytes > self.max_bytes {
                    self.counters.overflowed.fetch_add(s.units.len() as u64, Ordering::Relaxed);
                    s.units.clear();
                    s.bytes = 0;
                }
                return;
            };
            if s.units[next].mono_ms > keep_from {
                if s.bytes <= self.max_bytes {
                    return;
                }
                // Wanted, but over the memory bound.
                self.counters.overflowed.fetch_add(next as u64, Ordering::Relaxed);
            }
            for unit in s.units.drain(..next) {
                s.bytes -= unit.buffer.size();
            }
        }
    }

    /// Keeps everything from `from_mono_ms` on until [`StreamRing::release`]; returns the hold.
    pub fn hold(&self, from_mono_ms: i64) -> u64 {
        let mut s = self.lock();
        s.next_hold += 1;
        let id = s.next_hold;
        s.holds.insert(id, from_mono_ms);
        id
    }

    /// Ends hold `id`.
    pub fn release(&self, id: u64) {
        self.lock().holds.remove(&id);
    }

    /// Arrival time (mono ms) of the newest unit, if any.
    pub fn newest_mono_ms(&self) -> Option<i64> {
        self.lock().units.back().map(|u| u.mono_ms)
    }

    /// The units from the last keyframe at or before `from_mono_ms` (or the first kept) to
    /// `to_mono_ms`; `None` when nothing of that stretch is kept.
    pub fn cut(&self, from_mono_ms: i64, to_mono_ms: i64) -> Option<Cut> {
        let s = self.lock();
        let caps = s.caps.clone()?;
        let start =
            s.units.iter().rposition(|u| u.keyframe() && u.mono_ms <= from_mono_ms).unwrap_or(0);
        let units: Vec<Unit> =
            s.units.iter().skip(start).take_while(|u| u.mono_ms <= to_mono_ms).cloned().collect();
        units.first().filter(|u| u.keyframe())?;
        Some(Cut { caps, units })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(size: usize, key: bool) -> gst::Buffer {
        let mut b = gst::Buffer::with_size(size).unwrap();
        if !key {
            b.get_mut().unwrap().set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        b
    }

    /// A ring fed 1 s groups of pictures at 10 fps from 0 to `until_ms`.
    fn fed(ring: &StreamRing, from_ms: i64, until_ms: i64) {
        for t in (from_ms..until_ms).step_by(100) {
            ring.push(unit(1000, t % 1000 == 0), t, 1_700_000_000_000 + t);
        }
    }

    fn ring(keep_ms: i64, max_bytes: usize) -> StreamRing {
        gst::init().unwrap();
        let r = StreamRing::new(keep_ms, max_bytes);
        r.set_caps(gst::Caps::builder("video/x-h264").build());
        r
    }

    #[test]
    fn keeps_whole_groups_of_pictures_back_to_the_time_asked() {
        let r = ring(3_000, 1 << 30);
        fed(&r, 0, 10_000);
        let cut = r.cut(0, i64::MAX).unwrap();
        // The newest unit is at 9.9 s; 3 s back is 6.9 s, whose group starts at 6 s.
        assert_eq!(cut.units.first().unwrap().mono_ms, 6_000);
        assert_eq!(cut.units.len(), 40);
        // A cut starts at the keyframe at or before the time asked.
        let cut = r.cut(7_500, 8_200).unwrap();
        assert_eq!(cut.units.first().unwrap().mono_ms, 7_000);
        assert_eq!(cut.units.last().unwrap().mono_ms, 8_200);
        assert!(cut.units[0].keyframe());
    }

    #[test]
    fn a_hold_keeps_an_event_from_its_start_until_released() {
        let r = ring(3_000, 1 << 30);
        fed(&r, 0, 5_000);
        let hold = r.hold(4_500);
        fed(&r, 5_000, 30_000);
        assert_eq!(r.cut(4_500, 30_000).unwrap().units.first().unwrap().mono_ms, 4_000);
        r.release(hold);
        fed(&r, 30_000, 31_000);
        assert_eq!(r.cut(0, i64::MAX).unwrap().units.first().unwrap().mono_ms, 27_000);
    }

    #[test]
    fn memory_bounds_even_a_held_ring_and_the_loss_is_counted() {
        let r = ring(3_000, 25_000);
        let _hold = r.hold(0);
        fed(&r, 0, 10_000);
        assert!(r.counters.bytes.load(Ordering::Relaxed) <= 25_000 + 10_000);
        assert!(r.counters.overflowed.load(Ordering::Relaxed) > 0);
        assert!(r.cut(0, i64::MAX).unwrap().units[0].keyframe());
    }

    #[test]
    fn a_stream_without_keyframes_is_bounded_too() {
        let r = ring(3_000, 25_000);
        r.push(unit(1000, true), 0, 0);
        for t in 1..100 {
            r.push(unit(1000, false), t * 100, t * 100);
        }
        assert!(r.counters.bytes.load(Ordering::Relaxed) <= 25_000);
        assert!(r.counters.overflowed.load(Ordering::Relaxed) > 0);
        assert!(r.cut(0, i64::MAX).is_none(), "nothing to start a clip from until a keyframe");
    }

    #[test]
    fn a_ring_starts_at_a_keyframe_and_a_new_connection_empties_it() {
        let r = ring(3_000, 1 << 30);
        r.push(unit(10, false), 0, 0);
        assert!(r.cut(0, i64::MAX).is_none(), "no keyframe yet");
        fed(&r, 1_000, 2_000);
        r.restart();
        assert!(r.cut(0, i64::MAX).is_none());
        r.push(unit(10, true), 3_000, 3_000);
        assert!(r.cut(0, i64::MAX).is_none(), "no caps yet after a restart");
    }
}
