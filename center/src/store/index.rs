//! The alarm store's trees and the keys of its indexes. Every index entry is a key with an
//! empty value: the value's parts (each ended by a NUL), then the event time, then the alarm
//! id, so a range scan of one prefix walks one camera's (agent's, status's, unit's) alarms in
//! time order. The status index also holds, under [`ESCALATION`], the alarms escalation waits
//! on (new, never escalated) by the time they arrived, so that it reads only those due.

use super::engine::{Interrupted, View};
use crate::domain::{AlarmRecord, Status};

/// Positions of the trees in `Store::trees`.
pub(super) const ALARMS: usize = 0;
pub(super) const SNAPSHOTS: usize = 1;
pub(super) const BY_TIME: usize = 2;
pub(super) const BY_CAMERA: usize = 3;
pub(super) const BY_AGENT: usize = 4;
pub(super) const BY_STATUS: usize = 5;
pub(super) const BY_UNIT: usize = 6;
pub(super) const TREE_NAMES: [&str; 7] = [
    "alarms",
    "snapshots",
    "alarms_by_time",
    "alarms_by_camera",
    "alarms_by_agent",
    "alarms_by_status",
    "alarms_by_unit",
];

/// Version of the index layout; a store written with an older one is re-indexed at open.
pub(super) const INDEX_VERSION: &[u8] = b"3";

/// The prefix, in the status index, of the alarms escalation waits on (no status's name).
pub(super) const ESCALATION: &str = "escalation";

/// Time-index key: event time (big-endian, offset so negatives sort first), then the id.
pub(super) fn time_key(event_time_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&((event_time_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of an index's entries for one value: its parts, each ended by a NUL (ids never
/// hold one).
pub(crate) fn index_prefix(parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::new();
    for p in parts {
        k.extend_from_slice(p.as_bytes());
        k.push(0);
    }
    k
}

/// Moves a record's index entries in transaction `t` from `before` to `after` (both from
/// [`index_entries`]): those no longer there removed, the new ones added.
pub(super) fn move_entries(
    t: &[View<'_>],
    before: &[(usize, Vec<u8>)],
    after: &[(usize, Vec<u8>)],
) -> Result<(), Interrupted> {
    for (tree, k) in before.iter().filter(|e| !after.contains(e)) {
        t[*tree].remove(k.as_slice())?;
    }
    for (tree, k) in after.iter().filter(|e| !before.contains(e)) {
        t[*tree].insert(k.as_slice(), &[])?;
    }
    Ok(())
}

/// Every index entry of `r`: (tree, key).
pub(super) fn index_entries(r: &AlarmRecord) -> Vec<(usize, Vec<u8>)> {
    let t = time_key(r.event_time_ms, &r.id);
    let with = |parts: &[&str]| {
        let mut k = index_prefix(parts);
        k.extend_from_slice(&t);
        k
    };
    let mut out = vec![
        (BY_TIME, t.clone()),
        (BY_CAMERA, with(&[&r.agent_id, &r.camera_id])),
        (BY_AGENT, with(&[&r.agent_id])),
        (BY_STATUS, with(&[r.status.as_str()])),
    ];
    // By the units this center sent it to (not a county's, of an event forwarded from below).
    out.extend(r.units_here().iter().map(|u| (BY_UNIT, with(&[u]))));
    // An event forwarded from below is its county's to act on: never escalated here.
    if r.status == Status::New && !r.escalated && r.forwarded.is_none() {
        let mut k = index_prefix(&[ESCALATION]);
        k.extend_from_slice(&time_key(r.received_time_ms, &r.id));
        out.push((BY_STATUS, k));
    }
    out
}
