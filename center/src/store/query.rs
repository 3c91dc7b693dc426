//! Querying stored alarms: filters, newest event first, in pages with an opaque cursor. The
//! most selective index a filter allows is walked backwards over the time range; the other
//! filters are checked on the records it yields. A record that cannot be read is skipped. At a
//! tier above, the events forwarded from below are counted by county.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use super::index::{
    ALARMS, BY_AGENT, BY_CAMERA, BY_STATUS, BY_TIME, BY_UNIT, index_prefix, time_key,
};
use super::{Store, StoreError};
use crate::domain::{AlarmRecord, EventState, Status};

/// Which alarms a query wants; every field set must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmFilter {
    /// Event time at or after, UTC ms.
    pub from_ms: Option<i64>,
    /// Event time before, UTC ms.
    pub to_ms: Option<i64>,
    /// Agent id.
    pub agent: Option<String>,
    /// Camera id (with `agent`, the camera index is used).
    pub camera: Option<String>,
    /// Rule kind, e.g. `zone_intrusion`.
    pub kind: Option<String>,
    /// Severity, e.g. `high`.
    pub severity: Option<String>,
    /// Workflow status.
    pub status: Option<Status>,
    /// Dispatched to this unit.
    pub unit: Option<String>,
    /// Whether the event goes on or has ended.
    pub state: Option<EventState>,
    /// Forwarded from this county (at a tier above).
    pub county: Option<String>,
}

impl AlarmFilter {
    /// Whether `r` passes every filter.
    pub fn matches(&self, r: &AlarmRecord) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.from_ms.is_none_or(|t| r.event_time_ms >= t)
            && self.to_ms.is_none_or(|t| r.event_time_ms < t)
            && is(&self.agent, &r.agent_id)
            && is(&self.camera, &r.camera_id)
            && is(&self.kind, &r.kind)
            && is(&self.severity, &r.severity)
            && self.status.is_none_or(|s| s == r.status)
            && self.unit.as_ref().is_none_or(|u| r.units_here().contains(u))
            && self.state.is_none_or(|s| s == r.state)
            && self
                .county
                .as_ref()
                .is_none_or(|c| r.forwarded.as_ref().is_some_and(|f| f.county == *c))
    }

    /// The index to walk and the prefix of its entries.
    fn index(&self) -> (usize, Vec<u8>) {
        match (&self.unit, &self.agent, &self.camera, self.status) {
            (Some(u), ..) => (BY_UNIT, index_prefix(&[u])),
            (None, Some(a), Some(c), _) => (BY_CAMERA, index_prefix(&[a, c])),
            (None, Some(a), None, _) => (BY_AGENT, index_prefix(&[a])),
            (None, None, _, Some(s)) => (BY_STATUS, index_prefix(&[s.as_str()])),
            _ => (BY_TIME, Vec::new()),
        }
    }
}

/// A time as UTC milliseconds or RFC 3339 (`2026-07-01T18:00:00+08:00`), as filters and the
/// export take it.
pub fn parse_time(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond()))
}

/// Where the next page starts: just before this (event time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    event_time_ms: i64,
    id: String,
}

impl Cursor {
    /// The opaque text form the API hands out.
    pub fn encode(&self) -> String {
        B64.encode(time_key(self.event_time_ms, &self.id))
    }

    /// Reads a cursor the API handed out.
    pub fn decode(text: &str) -> Result<Self, String> {
        let bad =
            || format!("cursor {text:?} is not one this API handed out (use next_cursor as it is)");
        let bytes = B64.decode(text).map_err(|_| bad())?;
        if bytes.len() < 9 {
            return Err(bad());
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[..8]);
        let event_time_ms = (u64::from_be_bytes(t) ^ (1 << 63)) as i64;
        let id = String::from_utf8(bytes[8..].to_vec()).map_err(|_| bad())?;
        Ok(Self { event_time_ms, id })
    }
}

/// One page of alarms.
#[derive(Debug)]
pub struct Page {
    /// Newest event first.
    pub alarms: Vec<AlarmRecord>,
    /// Where the next page starts; none when this is the last.
    pub next: Option<Cursor>,
}

impl Store {
    /// Up to `limit` alarms passing `filter`, newest event first, starting after `cursor`; a
    /// record that cannot be read is left out (logged and counted), never failing the page.
    pub fn query(
        &self,
        filter: &AlarmFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (tree, prefix) = filter.index();
        let with = |t: i64, id: &str| {
            let mut k = prefix.clone();
            k.extend_from_slice(&time_key(t, id));
            k
        };
        let start = with(filter.from_ms.unwrap_or(i64::MIN), "");
        let mut end = match filter.to_ms {
            Some(t) => with(t, ""),
            None => {
                let mut k = prefix.clone();
                k.extend_from_slice(&[0xff; 9]);
                k
            }
        };
        if let Some(c) = cursor {
            end = end.min(with(c.event_time_ms, &c.id));
        }
        let mut alarms = Vec::with_capacity(limit.min(512));
        let mut next = None;
        for entry in self.trees[tree].range(start..end).rev() {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[prefix.len() + 8..]).into_owned();
            let Some(bytes) = self.trees[ALARMS].get(id.as_bytes())? else {
                continue;
            };
            let Ok(record) = self.parse(&id, &bytes) else { continue };
            if !filter.matches(&record) {
                continue;
            }
            if alarms.len() == limit {
                let last: &AlarmRecord = &alarms[limit - 1];
                next = Some(Cursor { event_time_ms: last.event_time_ms, id: last.id.clone() });
                break;
            }
            alarms.push(record);
        }
        Ok(Page { alarms, next })
    }

    /// Calls `each` with every alarm passing `filter`, oldest event first (export); a record
    /// that cannot be read is left out, as from a page.
    pub fn for_each(
        &self,
        filter: &AlarmFilter,
        mut each: impl FnMut(AlarmRecord) -> std::io::Result<()>,
    ) -> Result<(), ExportError> {
        for entry in self.trees[BY_TIME].iter() {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            let Some(bytes) = self.trees[ALARMS].get(id.as_bytes())? else {
                continue;
            };
            if let Ok(r) = self.parse(&id, &bytes)
                && filter.matches(&r)
            {
                each(r)?;
            }
        }
        Ok(())
    }
}

/// One county's events as the tier above counts them ([`Store::count_by_county`]).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CountyCounts {
    /// The county (as its center forwards: its name at the city).
    pub county: String,
    /// Its events.
    pub events: u64,
    /// Those still going on.
    pub ongoing: u64,
    /// By workflow status (as the county has it).
    pub by_status: BTreeMap<String, u64>,
    /// By kind.
    pub by_kind: BTreeMap<String, u64>,
}

impl Store {
    /// The events forwarded from below whose event time is in `from_ms..to_ms`, counted by
    /// county, in the order of the counties' names; a record that cannot be read is left out.
    pub fn count_by_county(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<CountyCounts>, StoreError> {
        let mut counties: BTreeMap<String, CountyCounts> = BTreeMap::new();
        for entry in self.trees[BY_TIME].range(time_key(from_ms, "")..time_key(to_ms, "")) {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            let Some(bytes) = self.trees[ALARMS].get(id.as_bytes())? else { continue };
            let Ok(r) = self.parse(&id, &bytes) else { continue };
            let Some(f) = &r.forwarded else { continue };
            let c = counties.entry(f.county.clone()).or_default();
            c.events += 1;
            c.ongoing += u64::from(r.state == EventState::Ongoing);
            *c.by_status.entry(r.status.as_str().to_owned()).or_default() += 1;
            *c.by_kind.entry(r.kind.clone()).or_default() += 1;
        }
        Ok(counties.into_iter().map(|(county, c)| CountyCounts { county, ..c }).collect())
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_record as record;

    fn store_with(records: &[(&str, &str, &str, i64)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        for (id, agent, camera, t) in records {
            let mut r = record(id);
            (r.agent_id, r.camera_id, r.event_time_ms) =
                (agent.to_string(), camera.to_string(), *t);
            s.insert(&r, b"").unwrap();
        }
        (dir, s)
    }

    fn ids(p: &Page) -> Vec<&str> {
        p.alarms.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let records: Vec<(String, i64)> =
            (0..25).map(|i| (format!("a{i:02}"), 1000 + (i / 2) as i64)).collect();
        let refs: Vec<(&str, &str, &str, i64)> =
            records.iter().map(|(id, t)| (id.as_str(), "v1", "c1", *t)).collect();
        let (_d, s) = store_with(&refs);
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = s.query(&AlarmFilter::default(), cursor.as_ref(), 10).unwrap();
            seen.extend(ids(&page).into_iter().map(str::to_owned));
            match page.next {
                Some(c) => cursor = Some(Cursor::decode(&c.encode()).unwrap()),
                None => break,
            }
        }
        let mut expected: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        expected.reverse();
        assert_eq!(seen, expected);
    }

    #[test]
    fn filters_use_indexes_and_combine() {
        let (_d, s) = store_with(&[
            ("a", "v1", "c1", 10),
            ("b", "v1", "c2", 20),
            ("c", "v2", "c1", 30),
            ("d", "v1", "c1", 40),
        ]);
        let q = |f: AlarmFilter| ids(&s.query(&f, None, 10).unwrap()).join(",");
        assert_eq!(q(AlarmFilter { agent: Some("v1".into()), ..Default::default() }), "d,b,a");
        assert_eq!(
            q(AlarmFilter {
                agent: Some("v1".into()),
                camera: Some("c1".into()),
                ..Default::default()
            }),
            "d,a"
        );
        assert_eq!(q(AlarmFilter { camera: Some("c1".into()), ..Default::default() }), "d,c,a");
        assert_eq!(
            q(AlarmFilter { from_ms: Some(20), to_ms: Some(40), ..Default::default() }),
            "c,b"
        );
        assert_eq!(
            q(AlarmFilter { agent: Some("v1".into()), from_ms: Some(15), ..Default::default() }),
            "d,b"
        );
        assert_eq!(
            q(AlarmFilter {
                status: Some(Status::New),
                kind: Some("zone_intrusion".into()),
                ..Default::default()
            }),
            "d,c,b,a"
        );
        assert_eq!(q(AlarmFilter { status: Some(Status::Resolved), ..Default::default() }), "");
        assert_eq!(q(AlarmFilter { unit: Some("pcs-1".into()), ..Default::default() }), "");
        assert!(Cursor::decode("nonsense!").unwrap_err().contains("use next_cursor as it is"));
    }

    #[test]
    fn forwarded_events_are_filtered_and_counted_by_county() {
        use crate::domain::Forwarded;
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        let from = |county: &str| {
            Some(Forwarded { county: county.into(), by: "city".into(), seq: 1, at_ms: 1 })
        };
        for (id, county, t, status, kind) in [
            ("a", Some("330102"), 10, Status::New, "zone_intrusion"),
            ("b", Some("330102"), 20, Status::Dispatched, "loitering"),
            ("c", Some("330103"), 30, Status::New, "zone_intrusion"),
            ("d", None, 40, Status::New, "zone_intrusion"),
            ("e", Some("330103"), 50, Status::New, "zone_intrusion"),
        ] {
            let mut r = record(id);
            (r.event_time_ms, r.status, r.kind) = (t, status, kind.into());
            r.forwarded = county.and_then(from);
            s.insert(&r, b"").unwrap();
        }
        let q = |f: AlarmFilter| ids(&s.query(&f, None, 10).unwrap()).join(",");
        assert_eq!(q(AlarmFilter { county: Some("330102".into()), ..Default::default() }), "b,a");
        assert_eq!(q(AlarmFilter { county: Some("330109".into()), ..Default::default() }), "");
        let counted = s.count_by_county(0, 50).unwrap();
        let names: Vec<&str> = counted.iter().map(|c| c.county.as_str()).collect();
        assert_eq!(
            names,
            ["330102", "330103"],
            "by name; the center's own event and one after `to` not"
        );
        let a = &counted[0];
        assert_eq!((a.events, a.ongoing), (2, 0));
        assert_eq!(a.by_status, BTreeMap::from([("dispatched".into(), 1), ("new".into(), 1)]));
        assert_eq!(
            a.by_kind,
            BTreeMap::from([("loitering".into(), 1), ("zone_intrusion".into(), 1)])
        );
        assert_eq!(counted[1].events, 1);
    }
}
