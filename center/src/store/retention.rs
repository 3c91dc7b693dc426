//! Retention: pictures of people are kept no longer than needed. Snapshots older than their
//! limit go first (the record stays, marked), then whole alarms older than theirs, each with
//! all its index entries in one transaction, so no index ever points at nothing. Video clips
//! have their own sweep (`clips.rs`), run before this one. The sweeps are store work; the cases
//! service runs them hourly and audits what they deleted.

use super::index::{BY_TIME, time_key};
use super::{Store, StoreError};

/// How long what is kept, in days (alarms and snapshots by the alarm's event time, clips by
/// when the center completed them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Alarm records.
    pub alarm_days: u32,
    /// Snapshots (at most `alarm_days`).
    pub snapshot_days: u32,
    /// Video clips (at most `alarm_days`).
    pub clip_days: u32,
    /// Dead letters, from their last refusal.
    pub dead_letter_days: u32,
    /// The audit log (at least `alarm_days`), swept by the audit log itself.
    pub audit_days: u32,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Snapshots deleted.
    pub snapshots: usize,
    /// Alarms deleted.
    pub alarms: usize,
}

/// A day, ms.
pub(crate) const DAY_MS: i64 = 24 * 3600 * 1000;

/// The oldest event a box may still send: its outbox keeps a message for
/// `outbox.max_age_days` after its event (7 days by default, a setting without an upper bound),
/// so this allows a box set to keep a month. Ingest refuses older event times, and the ids of
/// deleted alarms are remembered this long (and a day for clocks), so that an alarm sent again
/// after retention deleted its record (or after a restore) is not stored again as new.
pub(crate) const MAX_EVENT_AGE_MS: i64 = 30 * DAY_MS;

/// Ids of alarms whose event time is before `before_ms`.
pub(super) fn ids_before(store: &Store, before_ms: i64) -> Result<Vec<String>, StoreError> {
    store.trees[BY_TIME]
        .range(..time_key(before_ms, ""))
        .map(|e| e.map(|(k, _)| String::from_utf8_lossy(&k[8..]).into_owned()))
        .collect()
}

impl Store {
    /// Deletes what `retention` no longer keeps at `now_ms`: snapshots first, then alarms.
    pub fn sweep(&self, retention: Retention, now_ms: i64) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        let snapshot_days = retention.snapshot_days.min(retention.alarm_days);
        for id in ids_before(self, now_ms - i64::from(snapshot_days) * DAY_MS)? {
            if self.snapshot(&id)?.is_some() {
                self.expire_snapshot(&id)?;
                swept.snapshots += 1;
            }
        }
        for id in ids_before(self, now_ms - i64::from(retention.alarm_days) * DAY_MS)? {
            self.remove(&id)?;
            swept.alarms += 1;
        }
        let forget_before = now_ms - MAX_EVENT_AGE_MS - DAY_MS;
        for entry in self.deleted.iter() {
            let (id, bytes) = entry?;
            let event_time = serde_json::from_slice::<super::Owner>(&bytes)
                .map_or(i64::MIN, |o| o.event_time_ms);
            if event_time < forget_before {
                self.deleted.remove(id)?;
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, AlarmRecord, Request, Status, apply, test_record as record};
    use crate::store::AlarmFilter;

    #[test]
    fn old_snapshots_go_first_then_old_alarms_with_their_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        let now = 100 * DAY_MS;
        for (id, age_days) in [("fresh", 1), ("month", 40), ("year", 400)] {
            let mut r = record(id);
            r.event_time_ms = now - age_days * DAY_MS;
            s.insert(&r, b"jpeg").unwrap();
            let units = vec!["pcs-1".to_string()];
            for action in [Action::Acknowledge, Action::Dispatch] {
                s.update(id, |r| {
                    apply(
                        r,
                        &Request { action, by: "z", at_ms: 0, note: "", units: &units, late: None },
                    )
                })
                .unwrap();
            }
        }
        let swept = s
            .sweep(
                Retention {
                    alarm_days: 365,
                    snapshot_days: 30,
                    clip_days: 30,
                    dead_letter_days: 30,
                    audit_days: 1095,
                },
                now,
            )
            .unwrap();
        assert_eq!(swept, Swept { snapshots: 2, alarms: 1 });
        assert!(s.snapshot("fresh").unwrap().is_some());
        assert!(s.snapshot("month").unwrap().is_none());
        assert!(s.get("month").unwrap().unwrap().snapshot_expired);
        assert!(s.get("year").unwrap().is_none());
        for filter in [
            AlarmFilter::default(),
            AlarmFilter { status: Some(Status::Dispatched), ..Default::default() },
            AlarmFilter { unit: Some("pcs-1".into()), ..Default::default() },
            AlarmFilter { agent: Some("a".into()), ..Default::default() },
            AlarmFilter { agent: Some("a".into()), camera: Some("c".into()), ..Default::default() },
        ] {
            let ids: Vec<String> =
                s.query(&filter, None, 10).unwrap().alarms.into_iter().map(|r| r.id).collect();
            assert_eq!(ids, ["fresh", "month"], "{filter:?}");
        }
        for t in &s.trees[BY_TIME..] {
            assert_eq!(t.len(), 2, "no entry left for a deleted alarm");
        }
        assert_eq!(
            s.sweep(
                Retention {
                    alarm_days: 365,
                    snapshot_days: 30,
                    clip_days: 30,
                    dead_letter_days: 30,
                    audit_days: 1095,
                },
                now
            )
            .unwrap(),
            Swept::default()
        );
    }

    #[test]
    fn alarms_are_kept_by_agent_and_id_and_a_deleted_one_is_not_stored_again() {
        use crate::store::Inserted;
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        let now = 100 * DAY_MS;
        let mine = AlarmRecord { event_time_ms: now - 20 * DAY_MS, ..record("x") };
        let theirs = AlarmRecord { agent_id: "other".into(), ..mine.clone() };
        assert_eq!(s.insert(&mine, b"").unwrap(), Inserted::New);
        assert_eq!(s.insert(&mine, b"").unwrap(), Inserted::Duplicate);
        assert_eq!(s.insert(&theirs, b"").unwrap(), Inserted::Taken);
        let days = |alarm_days| Retention {
            alarm_days,
            snapshot_days: alarm_days,
            clip_days: alarm_days,
            dead_letter_days: 30,
            audit_days: 1095,
        };
        assert_eq!(s.sweep(days(7), now).unwrap().alarms, 1);
        // Sent again within the month a box may keep it: remembered, not new.
        assert_eq!(s.insert(&mine, b"").unwrap(), Inserted::Deleted);
        assert_eq!(s.insert(&theirs, b"").unwrap(), Inserted::Taken);
        assert!(s.get("x").unwrap().is_none(), "not stored again");
        // Forgotten once no box may send it (ingest refuses its event time by then).
        s.sweep(days(7), now + 12 * DAY_MS).unwrap();
        assert_eq!(s.deleted.len(), 0);
    }
}
