//! When a rule is armed: weekly time windows and date ranges in the box's time zone.
//!
//! A summer drowning-prevention season at the reservoir, at dusk:
//!
//! ```toml
//! [rules.schedule]
//! windows = [
//!   { days = ["mon", "tue", "wed", "thu", "fri"], from = "18:00", to = "22:00" },
//!   { days = ["sat", "sun"], from = "16:00", to = "02:00" },  # to < from: into the next day
//! ]
//! dates = [
//!   { from = "06-01", to = "09-15" },            # MM-DD: every year, may wrap the new year
//!   { from = "2026-10-01", to = "2026-10-07" },  # YYYY-MM-DD: once
//! ]
//! ```
//!
//! A rule is armed when some window contains the local time and some date range contains the
//! local date; no windows means all day, no dates every date. A window belongs to the day it
//! starts on, `days` absent or empty means every day, `to` may be `24:00` and date ranges are
//! inclusive. The strings are checked and compiled once by [`Schedule::new`], because
//! [`Schedule::active`] runs for every rule on every inferred frame.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use serde::Deserialize;

/// Minutes in a day.
const DAY: i32 = 24 * 60;
/// Minutes in a week.
const WEEK: i32 = 7 * DAY;

/// Day names as written in the config, Monday first (as jiff's Monday-zero offsets).
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Day names as written in problem messages.
const DAY_TITLES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

const TIME_HINT: &str = "write HH:MM, 00:00 to 23:59 (to may be 24:00)";
const DAYS_HINT: &str = "days are mon, tue, wed, thu, fri, sat, sun; leave days out for every day";
const EMPTY_WINDOW_HINT: &str = "to before from runs past midnight into the next day; \
     for a whole day write from = \"00:00\", to = \"24:00\"";
const OVERLAP_HINT: &str = "merge them into one window or change the times";
const DATE_HINT: &str = "write MM-DD (every year) or YYYY-MM-DD (once)";
const NO_SUCH_DATE_HINT: &str =
    "months are 01 to 12 and have 28 to 31 days (02-29 only in leap years)";
const MIXED_DATES_HINT: &str = "write both as MM-DD (every year) or both as YYYY-MM-DD (once)";
const EMPTY_DATES_HINT: &str = "put the earlier date in from";

/// A rule's schedule as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Weekly time windows; none means all day every day.
    #[serde(default)]
    pub windows: Vec<WindowConfig>,
    /// Date ranges; none means every date.
    #[serde(default)]
    pub dates: Vec<DatesConfig>,
}

/// A weekly time window: from `from` to `to` on each of `days`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The days the window starts on, `mon` to `sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM`, inclusive.
    pub from: String,
    /// End, `HH:MM` or `24:00`, exclusive; before `from`, it is on the next day.
    pub to: String,
}

/// An inclusive date range: both ends `MM-DD` (every year) or both `YYYY-MM-DD` (once).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesConfig {
    /// First date.
    pub from: String,
    /// Last date; for `MM-DD`, before `from` wraps the new year.
    pub to: String,
}

/// A problem in a schedule: where (a key path relative to the schedule, e.g. "windows[1].from"
/// or "dates[0]"), what, and a hint on how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleProblem {
    /// Key path relative to the schedule, e.g. `windows[1].from`.
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// A checked schedule, ready to answer whether a moment is inside it.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// One span per window and day; empty means all day every day.
    spans: Vec<Span>,
    /// Empty means every date.
    dates: Vec<DateRange>,
}

/// A window on one day, in minutes since Monday 00:00, start inclusive, end exclusive. An end
/// past the end of the week runs into the next Monday.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: i32,
    end: i32,
}

/// A checked date range, both ends inclusive.
#[derive(Debug, Clone, Copy)]
enum DateRange {
    /// (month, day) every year; `from` after `to` wraps the new year.
    Yearly { from: (i8, i8), to: (i8, i8) },
    /// Once, `from` not after `to`.
    Once { from: Date, to: Date },
}

/// One end of a date range.
enum DateEnd {
    Yearly(i8, i8),
    Once(Date),
}

impl Schedule {
    /// Always active (no schedule configured).
    pub fn always() -> Self {
        Self { spans: Vec::new(), dates: Vec::new() }
    }

    /// Checks and compiles a schedule; every problem is reported, not just the first.
    pub fn new(config: &ScheduleConfig) -> Result<Self, Vec<ScheduleProblem>> {
        let mut problems = Vec::new();
        // `None` for a window with problems: it is left out of the overlap check, whose
        // findings would only repeat them.
        let windows: Vec<Option<Vec<Span>>> = config
            .windows
            .iter()
            .enumerate()
            .map(|(i, window)| check_window(i, window, &mut problems))
            .collect();
        for (j, later) in windows.iter().enumerate() {
            for (i, earlier) in windows[..j].iter().enumerate() {
                let (Some(earlier), Some(later)) = (earlier, later) else {
                    continue;
                };
                if let Some(overlap) = first_overlap(earlier, later) {
                    let message = format!("windows[{j}] overlaps windows[{i}] on {overlap}");
                    problems.push(problem(format!("windows[{j}]"), message, OVERLAP_HINT));
                }
            }
        }
        let dates: Vec<DateRange> = config
            .dates
            .iter()
            .enumerate()
            .filter_map(|(i, dates)| check_dates(i, dates, &mut problems))
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        let spans = windows.into_iter().flatten().flatten().collect();
        Ok(Self { spans, dates })
    }

    /// Whether the schedule is active at `time` (UTC ms since the epoch) in `tz`.
    pub fn active(&self, time_ms: i64, tz: &TimeZone) -> bool {
        if self.spans.is_empty() && self.dates.is_empty() {
            return true;
        }
        // Only a broken clock gives a time outside jiff's years -9999 to 9999; then a rule armed
        // too often does less harm than one that misses an intrusion.
        let Ok(timestamp) = Timestamp::from_millisecond(time_ms) else {
            return true;
        };
        let local = tz.to_datetime(timestamp);
        let minute = i32::from(local.weekday().to_monday_zero_offset()) * DAY
            + i32::from(local.hour()) * 60
            + i32::from(local.minute());
        let date = local.date();
        (self.spans.is_empty() || self.spans.iter().any(|s| s.contains(minute)))
            && (self.dates.is_empty() || self.dates.iter().any(|d| d.contains(date)))
    }
}

/// The time zone named `name` (IANA, e.g. "Asia/Shanghai"), from jiff's bundled database; Err
/// says what to write.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    // The bundled database rather than the system's: a box's image may lack tzdata.
    TimeZoneDatabase::bundled()
        .get(name)
        .map_err(|_| format!("no time zone {name:?}: write an IANA name such as \"Asia/Shanghai\""))
}

impl Span {
    /// Whether the span contains `minute` (since Monday 00:00) of this week or, for a span
    /// running into the next week, of the next.
    fn contains(self, minute: i32) -> bool {
        (self.start..self.end).contains(&minute)
            || (self.start..self.end).contains(&(minute + WEEK))
    }
}

impl DateRange {
    /// Whether the range contains `date`.
    fn contains(self, date: Date) -> bool {
        match self {
            Self::Yearly { from, to } => {
                let day = (date.month(), date.day());
                if from <= to { from <= day && day <= to } else { from <= day || day <= to }
            }
            Self::Once { from, to } => from <= date && date <= to,
        }
    }
}

/// Checks window `i`; its spans, one per day, if it has no problems.
fn check_window(
    i: usize,
    window: &WindowConfig,
    problems: &mut Vec<ScheduleProblem>,
) -> Option<Vec<Span>> {
    let at = format!("windows[{i}]");
    let from = parse_time(&window.from, false);
    let to = parse_time(&window.to, true);
    for (key, text, minutes) in [("from", &window.from, from), ("to", &window.to, to)] {
        if minutes.is_none() {
            let message = format!("{text:?} is not a time of day");
            problems.push(problem(format!("{at}.{key}"), message, TIME_HINT));
        }
    }
    let mut days = [window.days.is_empty(); 7];
    let mut days_known = true;
    for name in &window.days {
        match DAY_NAMES.iter().position(|d| d == name) {
            Some(day) => days[day] = true,
            None => {
                days_known = false;
                let message = format!("unknown day {name:?}");
                problems.push(problem(format!("{at}.days"), message, DAYS_HINT));
            }
        }
    }
    let (from, to) = (from?, to?);
    if from == to {
        let message = format!("the window is empty: from and to are both {}", window.from);
        problems.push(problem(at, message, EMPTY_WINDOW_HINT));
        return None;
    }
    if !days_known {
        return None;
    }
    let length = if from < to { to - from } else { to + DAY - from };
    let spans = (0..7).filter(|&day| days[day as usize]).map(|day| {
        let start = day * DAY + from;
        Span { start, end: start + length }
    });
    Some(spans.collect())
}

/// Minutes since midnight of `HH:MM`; `24:00` only for the end of a window.
fn parse_time(text: &str, end: bool) -> Option<i32> {
    let &[h1, h2, b':', m1, m2] = text.as_bytes() else {
        return None;
    };
    let hour = decimal(&[h1, h2])?;
    let minute = decimal(&[m1, m2])?;
    let valid = (hour < 24 && minute < 60) || (end && hour == 24 && minute == 0);
    valid.then_some(i32::from(hour) * 60 + i32::from(minute))
}

/// Where the earliest overlap in the week of two windows' spans is, as "Sat from 22:00 to
/// 02:00" (the day it starts on, like a window).
fn first_overlap(earlier: &[Span], later: &[Span]) -> Option<String> {
    let pairs = earlier.iter().flat_map(|a| later.iter().map(move |b| (a, b)));
    // A span runs at most a day past the end of the week, so shifting the later window by a
    // week either way finds every overlap across that boundary.
    let overlaps = pairs.flat_map(|(a, b)| {
        [-WEEK, 0, WEEK].map(|shift| (a.start.max(b.start + shift), a.end.min(b.end + shift)))
    });
    let (start, length) = overlaps
        .filter(|(start, end)| start < end)
        .map(|(start, end)| (start.rem_euclid(WEEK), end - start))
        .min()?;
    let (day, from) = (start / DAY, start % DAY);
    // Spans are at most a day long, so the overlap ends today (maybe at 24:00) or tomorrow.
    let to = from + length;
    let to = if to > DAY { to - DAY } else { to };
    Some(format!("{} from {} to {}", DAY_TITLES[day as usize], clock(from), clock(to)))
}

/// `HH:MM` of minutes since midnight (`24:00` for the end of the day).
fn clock(minutes: i32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Checks date range `i`; the compiled range if it has no problems.
fn check_dates(
    i: usize,
    dates: &DatesConfig,
    problems: &mut Vec<ScheduleProblem>,
) -> Option<DateRange> {
    let at = format!("dates[{i}]");
    let mut end = |key: &str, text: &str| {
        parse_date(text)
            .map_err(|(message, hint)| problems.push(problem(format!("{at}.{key}"), message, hint)))
            .ok()
    };
    let (from, to) = (end("from", &dates.from), end("to", &dates.to));
    let (message, hint) = match (from?, to?) {
        (DateEnd::Yearly(fm, fd), DateEnd::Yearly(tm, td)) => {
            return Some(DateRange::Yearly { from: (fm, fd), to: (tm, td) });
        }
        (DateEnd::Once(from), DateEnd::Once(to)) if from <= to => {
            return Some(DateRange::Once { from, to });
        }
        (DateEnd::Once(from), DateEnd::Once(to)) => {
            (format!("the range is empty: to {to} is before from {from}"), EMPTY_DATES_HINT)
        }
        _ => (
            format!("{:?} to {:?} mixes MM-DD and YYYY-MM-DD", dates.from, dates.to),
            MIXED_DATES_HINT,
        ),
    };
    problems.push(problem(at, message, hint));
    None
}

/// One end of a date range, `MM-DD` or `YYYY-MM-DD`; Err is a problem's message and hint.
fn parse_date(text: &str) -> Result<DateEnd, (String, &'static str)> {
    let malformed = || (format!("{text:?} is not a date"), DATE_HINT);
    let (yearly, year, month, day) = match *text.as_bytes() {
        // Checked against a leap year, so that 02-29 is a valid every-year date.
        [m1, m2, b'-', d1, d2] => (true, *b"2000", [m1, m2], [d1, d2]),
        [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] => {
            (false, [y1, y2, y3, y4], [m1, m2], [d1, d2])
        }
        _ => return Err(malformed()),
    };
    let (Some(year), Some(month), Some(day)) = (decimal(&year), decimal(&month), decimal(&day))
    else {
        return Err(malformed());
    };
    // Two digits always fit an i8.
    let date = Date::new(year, month as i8, day as i8)
        .map_err(|_| (format!("there is no date {text:?}"), NO_SUCH_DATE_HINT))?;
    Ok(if yearly { DateEnd::Yearly(date.month(), date.day()) } else { DateEnd::Once(date) })
}

/// The number written by ASCII decimal digits (at most four, so it fits).
fn decimal(digits: &[u8]) -> Option<i16> {
    digits.iter().try_fold(0i16, |n, &d| {
        let digit = d.checked_sub(b'0').filter(|&digit| digit < 10)?;
        Some(n * 10 + i16::from(digit))
    })
}

/// A problem with a hint.
fn problem(at: String, message: String, hint: &str) -> ScheduleProblem {
    ScheduleProblem { at, message, hint: Some(hint.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(toml_text: &str) -> Result<Schedule, Vec<ScheduleProblem>> {
        Schedule::new(&toml::from_str(toml_text).unwrap())
    }

    /// UTC ms of local `date_time` ("2026-07-01T19:30") in `zone`.
    fn ms(date_time: &str, zone: &str) -> i64 {
        let civil: jiff::civil::DateTime = date_time.parse().unwrap();
        civil.to_zoned(time_zone(zone).unwrap()).unwrap().timestamp().as_millisecond()
    }

    /// Whether `schedule` is active at local `date_time` in Asia/Shanghai.
    fn active(schedule: &Schedule, date_time: &str) -> bool {
        let shanghai = time_zone("Asia/Shanghai").unwrap();
        schedule.active(ms(date_time, "Asia/Shanghai"), &shanghai)
    }

    fn problems(toml_text: &str) -> Vec<(String, String)> {
        let problems = schedule(toml_text).unwrap_err();
        problems.into_iter().map(|p| (p.at, p.message)).collect()
    }

    fn one(at: &str, message: &str) -> Vec<(String, String)> {
        vec![(at.to_owned(), message.to_owned())]
    }

    #[test]
    fn weekday_windows() {
        let s = schedule(
            r#"windows = [{ days = ["mon", "tue", "wed", "thu", "fri"], from = "18:00", to = "22:00" }]"#,
        )
        .unwrap();
        // 2026-07-01 is a Wednesday, 07-04 a Saturday.
        assert!(!active(&s, "2026-07-01T17:59"));
        assert!(active(&s, "2026-07-01T18:00"));
        assert!(active(&s, "2026-07-01T21:59"));
        assert!(!active(&s, "2026-07-01T22:00"));
        assert!(!active(&s, "2026-07-04T19:00"));
    }

    #[test]
    fn missing_or_empty_days_mean_every_day() {
        for days in ["", r#"days = [], "#] {
            let s = schedule(&format!(r#"windows = [{{ {days}from = "08:00", to = "09:00" }}]"#))
                .unwrap();
            for day in 1..=7 {
                assert!(active(&s, &format!("2026-07-0{day}T08:30")), "{days} {day}");
                assert!(!active(&s, &format!("2026-07-0{day}T09:00")), "{days} {day}");
            }
        }
    }

    #[test]
    fn a_window_past_midnight_belongs_to_its_start_day() {
        let s =
            schedule(r#"windows = [{ days = ["sat"], from = "22:00", to = "02:00" }]"#).unwrap();
        assert!(!active(&s, "2026-07-04T21:59"));
        assert!(active(&s, "2026-07-04T22:00"));
        assert!(active(&s, "2026-07-05T00:00"));
        assert!(active(&s, "2026-07-05T01:59"));
        assert!(!active(&s, "2026-07-05T02:00"));
        // Saturday's early hours belong to Friday's window, Sunday night to Sunday's.
        assert!(!active(&s, "2026-07-04T01:00"));
        assert!(!active(&s, "2026-07-05T23:00"));
    }

    #[test]
    fn a_sunday_window_runs_into_monday() {
        let s =
            schedule(r#"windows = [{ days = ["sun"], from = "23:00", to = "01:00" }]"#).unwrap();
        assert!(active(&s, "2026-07-05T23:30"));
        assert!(active(&s, "2026-07-06T00:30"));
        assert!(!active(&s, "2026-07-06T01:00"));
        assert!(!active(&s, "2026-07-05T00:30"));
    }

    #[test]
    fn to_may_be_24_00() {
        let s = schedule(
            r#"windows = [
                { days = ["fri"], from = "20:00", to = "24:00" },
                { days = ["sun"], from = "00:00", to = "24:00" },
            ]"#,
        )
        .unwrap();
        assert!(active(&s, "2026-07-03T23:59"));
        assert!(!active(&s, "2026-07-04T00:00"));
        assert!(active(&s, "2026-07-05T00:00"));
        assert!(active(&s, "2026-07-05T23:59"));
        assert!(!active(&s, "2026-07-06T00:00"));
    }

    #[test]
    fn every_year_dates_may_wrap_the_new_year() {
        let s = schedule(r#"dates = [{ from = "12-01", to = "02-28" }]"#).unwrap();
        assert!(!active(&s, "2026-11-30T23:59"));
        assert!(active(&s, "2026-12-01T00:00"));
        assert!(active(&s, "2027-01-15T12:00"));
        assert!(active(&s, "2027-02-28T23:59"));
        assert!(!active(&s, "2027-03-01T00:00"));
        assert!(!active(&s, "2027-07-01T12:00"));

        let s = schedule(r#"dates = [{ from = "06-01", to = "09-15" }]"#).unwrap();
        assert!(!active(&s, "2030-05-31T23:59"));
        assert!(active(&s, "2030-06-01T00:00"));
        assert!(active(&s, "2030-09-15T23:59"));
        assert!(!active(&s, "2030-09-16T00:00"));
        assert!(!active(&s, "2031-01-01T00:00"));

        let leap_day = schedule(r#"dates = [{ from = "02-29", to = "02-29" }]"#).unwrap();
        assert!(active(&leap_day, "2028-02-29T12:00"));
        assert!(!active(&leap_day, "2027-02-28T12:00"));
        assert!(!active(&leap_day, "2027-03-01T12:00"));
    }

    #[test]
    fn full_dates_are_once() {
        let s = schedule(r#"dates = [{ from = "2026-10-01", to = "2026-10-07" }]"#).unwrap();
        assert!(!active(&s, "2026-09-30T23:59"));
        assert!(active(&s, "2026-10-01T00:00"));
        assert!(active(&s, "2026-10-07T23:59"));
        assert!(!active(&s, "2026-10-08T00:00"));
        assert!(!active(&s, "2027-10-03T12:00"));
        let one_day = schedule(r#"dates = [{ from = "2026-10-01", to = "2026-10-01" }]"#).unwrap();
        assert!(active(&one_day, "2026-10-01T12:00"));
    }

    #[test]
    fn summer_dusk_at_the_reservoir() {
        let s = schedule(
            r#"
            windows = [{ from = "18:00", to = "22:00" }]
            dates = [{ from = "06-01", to = "09-15" }, { from = "2026-10-01", to = "2026-10-07" }]
            "#,
        )
        .unwrap();
        assert!(active(&s, "2026-07-01T19:30"));
        assert!(!active(&s, "2026-07-01T17:00"));
        assert!(!active(&s, "2026-09-30T19:30"));
        assert!(active(&s, "2026-10-01T19:30"));
        assert!(!active(&s, "2026-10-01T17:00"));
        assert!(!active(&s, "2027-10-01T19:30"));
    }

    #[test]
    fn the_time_zone_matters() {
        let s = schedule(
            r#"
            windows = [{ from = "18:00", to = "22:00" }]
            dates = [{ from = "07-01", to = "07-01" }]
            "#,
        )
        .unwrap();
        let (shanghai, utc) = (time_zone("Asia/Shanghai").unwrap(), time_zone("UTC").unwrap());
        // 11:30 UTC is 19:30 in Shanghai.
        let instant = ms("2026-07-01T11:30", "UTC");
        assert!(s.active(instant, &shanghai));
        assert!(!s.active(instant, &utc));
        // 19:30 UTC on 06-30 is 03:30 on 07-01 in Shanghai: the right time in UTC, the right
        // date in Shanghai, active in neither.
        let instant = ms("2026-06-30T19:30", "UTC");
        assert!(!s.active(instant, &shanghai));
        assert!(!s.active(instant, &utc));
        assert!(s.active(ms("2026-07-01T19:30", "UTC"), &utc));
    }

    #[test]
    fn no_schedule_is_always_active() {
        let shanghai = time_zone("Asia/Shanghai").unwrap();
        for s in [Schedule::always(), Schedule::new(&ScheduleConfig::default()).unwrap()] {
            assert!(s.active(0, &shanghai));
            assert!(s.active(ms("2026-07-01T03:00", "UTC"), &shanghai));
        }
        // A time no clock gives errs on the side of arming.
        let s = schedule(r#"windows = [{ from = "18:00", to = "22:00" }]"#).unwrap();
        assert!(s.active(i64::MAX, &shanghai));
    }

    #[test]
    fn time_zones_by_name() {
        let shanghai = time_zone("Asia/Shanghai").unwrap();
        assert_eq!(shanghai.iana_name(), Some("Asia/Shanghai"));
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err(),
            "no time zone \"Mars/Olympus\": write an IANA name such as \"Asia/Shanghai\""
        );
    }

    #[test]
    fn the_config_syntax() {
        let config: ScheduleConfig = toml::from_str(
            r#"
            windows = [
              { days = ["mon", "tue", "wed", "thu", "fri"], from = "18:00", to = "22:00" },
              { days = ["sat", "sun"], from = "16:00", to = "02:00" },
            ]
            dates = [
              { from = "06-01", to = "09-15" },
              { from = "2026-10-01", to = "2026-10-07" },
            ]
            "#,
        )
        .unwrap();
        assert_eq!((config.windows.len(), config.dates.len()), (2, 2));
        assert!(Schedule::new(&config).is_ok());
        let typo = toml::from_str::<ScheduleConfig>(
            r#"windows = [{ day = ["mon"], from = "18:00", to = "22:00" }]"#,
        );
        assert!(typo.unwrap_err().to_string().contains("unknown field `day`"));
    }

    #[test]
    fn malformed_times() {
        for (bad, at) in [
            ("18.00", "from"),
            ("25:00", "from"),
            ("7:5", "from"),
            ("24:00", "from"),
            ("12:60", "to"),
            ("24:01", "to"),
            ("", "to"),
            ("１８:00", "to"),
        ] {
            let (from, to) = if at == "from" { (bad, "22:00") } else { ("18:00", bad) };
            let text = format!(r#"windows = [{{ from = "{from}", to = "{to}" }}]"#);
            let message = format!("{bad:?} is not a time of day");
            assert_eq!(problems(&text), one(&format!("windows[0].{at}"), &message), "{bad}");
        }
        let problems = schedule(r#"windows = [{ from = "7:5", to = "22:00" }]"#).unwrap_err();
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("write HH:MM, 00:00 to 23:59 (to may be 24:00)")
        );
    }

    #[test]
    fn unknown_days() {
        let text =
            r#"windows = [{ days = ["mon", "Tuesday", "daily"], from = "18:00", to = "22:00" }]"#;
        let found = schedule(text).unwrap_err();
        assert_eq!(
            found.iter().map(|p| (p.at.as_str(), p.message.as_str())).collect::<Vec<_>>(),
            [
                ("windows[0].days", "unknown day \"Tuesday\""),
                ("windows[0].days", "unknown day \"daily\"")
            ]
        );
        assert_eq!(
            found[0].hint.as_deref(),
            Some("days are mon, tue, wed, thu, fri, sat, sun; leave days out for every day")
        );
    }

    #[test]
    fn empty_windows() {
        let text = r#"windows = [{ from = "08:00", to = "09:00" }, { days = ["sun"], from = "18:00", to = "18:00" }]"#;
        assert_eq!(
            problems(text),
            one("windows[1]", "the window is empty: from and to are both 18:00")
        );
    }

    #[test]
    fn overlapping_windows() {
        let cases = [
            (
                r#"[{ days = ["sat"], from = "18:00", to = "22:00" }, { days = ["fri", "sat"], from = "21:00", to = "23:00" }]"#,
                "windows[1] overlaps windows[0] on Sat from 21:00 to 22:00",
            ),
            (
                r#"[{ days = ["sat"], from = "22:00", to = "02:00" }, { days = ["sun"], from = "01:00", to = "03:00" }]"#,
                "windows[1] overlaps windows[0] on Sun from 01:00 to 02:00",
            ),
            (
                r#"[{ days = ["sun"], from = "01:00", to = "03:00" }, { days = ["sat"], from = "22:00", to = "02:00" }]"#,
                "windows[1] overlaps windows[0] on Sun from 01:00 to 02:00",
            ),
            (
                r#"[{ days = ["mon"], from = "00:00", to = "06:00" }, { days = ["sun"], from = "23:00", to = "01:00" }]"#,
                "windows[1] overlaps windows[0] on Mon from 00:00 to 01:00",
            ),
            (
                r#"[{ days = ["wed"], from = "00:00", to = "24:00" }, { from = "20:00", to = "04:00" }]"#,
                "windows[1] overlaps windows[0] on Wed from 00:00 to 04:00",
            ),
        ];
        for (windows, message) in cases {
            let found = schedule(&format!("windows = {windows}")).unwrap_err();
            assert_eq!(found.len(), 1, "{windows}");
            assert_eq!((found[0].at.as_str(), found[0].message.as_str()), ("windows[1]", message));
            assert_eq!(
                found[0].hint.as_deref(),
                Some("merge them into one window or change the times")
            );
        }
    }

    #[test]
    fn adjacent_windows_do_not_overlap() {
        let s = schedule(
            r#"windows = [
                { from = "18:00", to = "22:00" },
                { days = ["mon", "tue", "wed", "thu", "fri", "sun"], from = "22:00", to = "02:00" },
                { days = ["sat"], from = "06:00", to = "18:00" },
                { days = ["sun"], from = "02:00", to = "06:00" },
            ]"#,
        )
        .unwrap();
        assert!(active(&s, "2026-07-06T01:00"));
        assert!(!active(&s, "2026-07-05T01:00"));
    }

    #[test]
    fn every_pair_of_overlapping_windows_is_reported() {
        let text = r#"windows = [{ from = "18:00", to = "22:00" }, { from = "19:00", to = "20:00" }, { from = "21:00", to = "23:00" }]"#;
        assert_eq!(
            problems(text),
            [
                ("windows[1]", "windows[1] overlaps windows[0] on Mon from 19:00 to 20:00"),
                ("windows[2]", "windows[2] overlaps windows[0] on Mon from 21:00 to 22:00"),
            ]
            .map(|(at, message)| (at.to_owned(), message.to_owned()))
        );
    }

    #[test]
    fn malformed_dates() {
        for bad in ["6-1", "06/01", "2026/10/01", "06-01x", "2026-1-01", "", "+6-01", "06-0１"] {
            let text = format!(r#"dates = [{{ from = "{bad}", to = "09-15" }}]"#);
            assert_eq!(
                problems(&text),
                one("dates[0].from", &format!("{bad:?} is not a date")),
                "{bad}"
            );
        }
        let found = schedule(r#"dates = [{ from = "06-01", to = "0915" }]"#).unwrap_err();
        assert_eq!(
            (found[0].at.as_str(), found[0].message.as_str()),
            ("dates[0].to", "\"0915\" is not a date")
        );
        assert_eq!(found[0].hint.as_deref(), Some("write MM-DD (every year) or YYYY-MM-DD (once)"));
    }

    #[test]
    fn impossible_dates() {
        for (bad, good) in [
            ("02-30", "03-01"),
            ("13-01", "12-01"),
            ("00-10", "01-10"),
            ("04-31", "04-30"),
            ("2026-02-29", "2026-03-01"),
        ] {
            let text = format!(r#"dates = [{{ from = "{good}", to = "{bad}" }}]"#);
            assert_eq!(
                problems(&text),
                one("dates[0].to", &format!("there is no date {bad:?}")),
                "{bad}"
            );
        }
        let found = schedule(r#"dates = [{ from = "02-30", to = "03-01" }]"#).unwrap_err();
        assert_eq!(
            found[0].hint.as_deref(),
            Some("months are 01 to 12 and have 28 to 31 days (02-29 only in leap years)")
        );
        assert!(schedule(r#"dates = [{ from = "2028-02-29", to = "2028-02-29" }]"#).is_ok());
    }

    #[test]
    fn mixed_date_forms() {
        let text =
            r#"dates = [{ from = "06-01", to = "09-15" }, { from = "06-01", to = "2026-09-15" }]"#;
        assert_eq!(
            problems(text),
            one("dates[1]", r#""06-01" to "2026-09-15" mixes MM-DD and YYYY-MM-DD"#)
        );
        let text = r#"dates = [{ from = "2026-06-01", to = "09-15" }]"#;
        let found = schedule(text).unwrap_err();
        assert_eq!(found[0].message, r#""2026-06-01" to "09-15" mixes MM-DD and YYYY-MM-DD"#);
        assert_eq!(
            found[0].hint.as_deref(),
            Some("write both as MM-DD (every year) or both as YYYY-MM-DD (once)")
        );
    }

    #[test]
    fn empty_full_date_ranges() {
        let text = r#"dates = [{ from = "2026-10-07", to = "2026-10-01" }]"#;
        let found = schedule(text).unwrap_err();
        assert_eq!(
            (found[0].at.as_str(), found[0].message.as_str()),
            ("dates[0]", "the range is empty: to 2026-10-01 is before from 2026-10-07")
        );
        assert_eq!(found[0].hint.as_deref(), Some("put the earlier date in from"));
    }

    #[test]
    fn several_problems_are_reported_together() {
        let found = schedule(
            r#"
            windows = [
              { days = ["mon", "funday"], from = "18.00", to = "22:00" },
              { from = "08:00", to = "08:00" },
              { days = ["tue"], from = "07:00", to = "09:00" },
              { days = ["tue", "wed"], from = "08:30", to = "10:00" },
            ]
            dates = [
              { from = "02-30", to = "2026-01-01" },
              { from = "2026-10-07", to = "2026-10-01" },
              { from = "06-01", to = "9-15" },
            ]
            "#,
        )
        .unwrap_err();
        let expected = [
            ("windows[0].from", "\"18.00\" is not a time of day"),
            ("windows[0].days", "unknown day \"funday\""),
            ("windows[1]", "the window is empty: from and to are both 08:00"),
            ("windows[3]", "windows[3] overlaps windows[2] on Tue from 08:30 to 09:00"),
            ("dates[0].from", "there is no date \"02-30\""),
            ("dates[1]", "the range is empty: to 2026-10-01 is before from 2026-10-07"),
            ("dates[2].to", "\"9-15\" is not a date"),
        ];
        assert_eq!(
            found.iter().map(|p| (p.at.as_str(), p.message.as_str())).collect::<Vec<_>>(),
            expected
        );
        assert!(found.iter().all(|p| p.hint.is_some()));
    }
}
