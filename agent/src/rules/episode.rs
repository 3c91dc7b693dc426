//! One rule's event, from open to end: it opens when the rule's kind says so (and the rule's
//! cooldown since its last event has passed), goes on while the kind says the situation holds,
//! and ends once that has been false for `end_after`. The state is the rule's, not any track's,
//! so a track lost and found under a new id inside one event changes nothing.

use super::{FrameTime, Hit};

/// What a kind sees in one frame.
#[derive(Debug, Default)]
pub(super) struct Sight {
    /// The event may open now, with these objects and a short description.
    pub opening: Option<(Vec<Hit>, String)>,
    /// The situation holds now (an open event goes on), with these objects.
    pub holding: Option<Vec<Hit>>,
}

impl Sight {
    /// The situation holds with `hits`, which may also open the event, described by `detail`;
    /// nothing when there are none.
    pub(super) fn of(hits: Vec<Hit>, detail: impl FnOnce() -> String) -> Self {
        if hits.is_empty() {
            return Self::default();
        }
        Self { opening: Some((hits.clone(), detail())), holding: Some(hits) }
    }
}

/// What became of the event in one frame.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// It opened.
    Opened(Vec<Hit>, String),
    /// It goes on with these objects.
    Goes(Vec<Hit>),
    /// It ended; the situation last held at this time.
    Ended(FrameTime),
}

/// The lifecycle of one rule's events.
#[derive(Debug, Clone)]
pub(super) struct Episode {
    end_after_ms: i64,
    cooldown_ms: i64,
    /// The open event: when its situation last held.
    open: Option<FrameTime>,
    /// When the last event ended (monotonic ms), for the cooldown.
    ended_mono_ms: Option<i64>,
}

impl Episode {
    /// Events that end `end_after_ms` after their situation stops holding, and a new one no
    /// sooner than `cooldown_ms` after an end.
    pub fn new(end_after_ms: i64, cooldown_ms: i64) -> Self {
        Self { end_after_ms, cooldown_ms, open: None, ended_mono_ms: None }
    }

    /// One frame at `t`.
    pub fn step(&mut self, t: FrameTime, sight: Sight) -> Option<Step> {
        match self.open {
            Some(last) => {
                if let Some(hits) = sight.holding.or(sight.opening.map(|(hits, _)| hits)) {
                    self.open = Some(t);
                    return Some(Step::Goes(hits));
                }
                if t.mono_ms - last.mono_ms >= self.end_after_ms {
                    return self.end();
                }
                None
            }
            None => {
                let (hits, detail) = sight.opening?;
                let cooled =
                    self.ended_mono_ms.is_none_or(|end| t.mono_ms - end >= self.cooldown_ms);
                if !cooled {
                    return None;
                }
                self.open = Some(t);
                Some(Step::Opened(hits, detail))
            }
        }
    }

    /// Ends the open event now, if there is one (its rule left its schedule, its camera was
    /// lost, its config replaced).
    pub fn end(&mut self) -> Option<Step> {
        let last = self.open.take()?;
        self.ended_mono_ms = Some(last.mono_ms);
        Some(Step::Ended(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> FrameTime {
        FrameTime { mono_ms: s * 1000, wall_ms: 1_782_878_400_000 + s * 1000 }
    }

    fn seen(opening: bool, holding: bool) -> Sight {
        Sight {
            opening: opening.then(|| (Vec::new(), "x".into())),
            holding: holding.then(Vec::new),
        }
    }

    #[test]
    fn an_event_opens_once_goes_on_and_ends_after_its_end_time() {
        let mut e = Episode::new(10_000, 0);
        assert_eq!(e.step(at(0), seen(false, true)), None, "holding alone opens nothing");
        assert!(matches!(e.step(at(1), seen(true, true)), Some(Step::Opened(..))));
        assert!(matches!(e.step(at(2), seen(true, true)), Some(Step::Goes(_))), "not twice");
        // The situation stops at 2 s: quiet until 12 s, then the end, dated 2 s.
        for s in 3..12 {
            assert_eq!(e.step(at(s), seen(false, false)), None, "{s}");
        }
        assert_eq!(e.step(at(12), seen(false, false)), Some(Step::Ended(at(2))));
        assert_eq!(e.end(), None, "nothing left open");
    }

    #[test]
    fn a_gap_shorter_than_the_end_time_is_the_same_event() {
        let mut e = Episode::new(10_000, 0);
        e.step(at(0), seen(true, true));
        e.step(at(9), seen(false, false));
        assert!(matches!(e.step(at(9), seen(false, true)), Some(Step::Goes(_))));
        assert_eq!(e.step(at(18), seen(false, false)), None, "9 s after it last held");
        assert_eq!(e.step(at(19), seen(false, false)), Some(Step::Ended(at(9))));
    }

    #[test]
    fn the_cooldown_counts_from_the_end() {
        let mut e = Episode::new(1000, 30_000);
        e.step(at(0), seen(true, true));
        e.step(at(1), seen(false, false));
        assert_eq!(e.step(at(20), seen(true, true)), None, "20 s after the end");
        assert!(matches!(e.step(at(30), seen(true, true)), Some(Step::Opened(..))));
    }

    #[test]
    fn ending_by_hand_dates_the_end_when_it_last_held() {
        let mut e = Episode::new(10_000, 0);
        assert_eq!(e.end(), None);
        e.step(at(0), seen(true, true));
        e.step(at(4), seen(false, true));
        assert_eq!(e.end(), Some(Step::Ended(at(4))));
    }
}
