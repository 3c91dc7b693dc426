//! The fleet: what the center knows of each agent from its retained status (online, or offline
//! by its last will), its periodic Health (cameras, inference, outbox) and its registered key.
//! Kept in the store so the picture survives a restart of the center.

use serde::{Deserialize, Serialize};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{AgentStatus, Health};

use crate::store::{Store, StoreError};

/// One camera as the agent last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraView {
    /// Camera id.
    pub camera_id: String,
    /// Whether frames arrive.
    pub online: bool,
    /// Frames decoded per second.
    pub decode_fps: f32,
    /// Frames inferred per second.
    pub infer_fps: f32,
    /// Mean inference time, ms.
    pub inference_ms: f32,
    /// Reconnections since the agent started.
    pub reconnects: u64,
    /// The last error, if any.
    pub last_error: String,
}

/// An agent's last Health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    /// When the agent measured it, UTC ms.
    pub time_ms: i64,
    /// Its cameras.
    pub cameras: Vec<CameraView>,
    /// Alarms waiting in its outbox.
    pub outbox_depth: u64,
    /// Age of the oldest, ms.
    pub outbox_oldest_age_ms: u64,
    /// Alarms its outbox dropped (full disk).
    pub outbox_dropped: u64,
    /// Errors counted.
    pub errors: u64,
}

/// One agent as the fleet page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    /// Agent id.
    pub agent_id: String,
    /// Online, offline, or `None` if it was never heard from.
    pub online: Option<bool>,
    /// Since when (UTC ms, as the center heard it).
    pub since_ms: Option<i64>,
    /// Its software version.
    pub version: String,
    /// The version of the pushed config it runs (0 = its local file).
    pub config_version: u64,
    /// When the center last heard from it, UTC ms.
    pub last_seen_ms: Option<i64>,
    /// Its last Health.
    pub health: Option<HealthView>,
    /// Whether its key is registered (its alarms are accepted).
    pub registered: bool,
    /// Its clock minus the center's when each of its last Health reports arrived, ms, newest
    /// last (a report delayed on the way makes the box look behind; a wrong clock shows in all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clock_offsets_ms: Vec<i64>,
}

/// Health reports whose clock offsets are kept: a wrong clock shows in all of them, a report
/// delayed in a queue (the center was down) in one.
const OFFSETS_KEPT: usize = 3;

impl AgentView {
    /// How far its clock is off, ms: the smallest offset of its last Health reports, once
    /// there are enough of them.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        if self.clock_offsets_ms.len() < OFFSETS_KEPT {
            return None;
        }
        self.clock_offsets_ms.iter().copied().min_by_key(|o| o.unsigned_abs())
    }
}

impl AgentView {
    fn unknown(agent_id: &str) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            online: None,
            since_ms: None,
            version: String::new(),
            config_version: 0,
            last_seen_ms: None,
            health: None,
            registered: false,
            clock_offsets_ms: Vec::new(),
        }
    }
}

/// The fleet tree.
#[derive(Debug, Clone)]
pub struct Fleet {
    tree: crate::store::Tree,
}

impl Fleet {
    /// Opens the fleet kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self { tree: store.open_tree("fleet")? })
    }

    fn change(&self, agent: &str, f: impl Fn(&mut AgentView)) -> Result<(), StoreError> {
        self.tree.fetch_and_update(agent.as_bytes(), |old| {
            let mut view = old
                .and_then(|b| serde_json::from_slice::<AgentView>(b).ok())
                .unwrap_or_else(|| AgentView::unknown(agent));
            f(&mut view);
            // Plain fields: serializing cannot fail.
            Some(serde_json::to_vec(&view).expect("an AgentView serializes"))
        })?;
        Ok(())
    }

    /// Records a status the agent (or its last will) published, heard at `now_ms`.
    pub fn record_status(&self, status: &AgentStatus, now_ms: i64) -> Result<(), StoreError> {
        let online = status.state() == State::Online;
        self.change(&status.agent_id, |v| {
            if v.online != Some(online) {
                v.online = Some(online);
                v.since_ms = Some(now_ms);
            }
            if online {
                v.version = status.version.clone();
                v.config_version = status.config_version;
                v.last_seen_ms = Some(now_ms);
            }
        })
    }

    /// Records a Health report heard at `now_ms`.
    pub fn record_health(&self, h: &Health, now_ms: i64) -> Result<(), StoreError> {
        let health = HealthView {
            time_ms: h.time_ms,
            cameras: h
                .cameras
                .iter()
                .map(|c| CameraView {
                    camera_id: c.camera_id.clone(),
                    online: c.online,
                    decode_fps: c.decode_fps,
                    infer_fps: c.infer_fps,
                    inference_ms: c.inference_ms,
                    reconnects: c.reconnects,
                    last_error: c.last_error.clone(),
                })
                .collect(),
            outbox_depth: h.outbox_depth,
            outbox_oldest_age_ms: h.outbox_oldest_age_ms,
            outbox_dropped: h.outbox_dropped,
            errors: h.errors,
        };
        self.change(&h.agent_id, |v| {
            v.health = Some(health.clone());
            v.last_seen_ms = Some(now_ms);
            if h.time_ms > 0 {
                v.clock_offsets_ms.push(h.time_ms - now_ms);
                let extra = v.clock_offsets_ms.len().saturating_sub(OFFSETS_KEPT);
                v.clock_offsets_ms.drain(..extra);
            }
        })
    }

    /// Forgets the boxes not `registered` (their keys removed) and not heard from since
    /// `before_ms`; returns how many.
    pub fn sweep(&self, registered: &[String], before_ms: i64) -> Result<usize, StoreError> {
        let mut swept = 0;
        for entry in self.tree.iter() {
            let (key, bytes) = entry?;
            let view = serde_json::from_slice::<AgentView>(&bytes).ok();
            let heard = view.as_ref().and_then(|v| v.last_seen_ms.max(v.since_ms)).unwrap_or(0);
            let agent = String::from_utf8_lossy(&key);
            if !registered.iter().any(|r| *r == agent) && heard < before_ms {
                self.tree.remove(&key)?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Every agent heard from or `registered`: offline first, then never heard from, then
    /// online; by id within each.
    pub fn list(&self, registered: &[String]) -> Result<Vec<AgentView>, StoreError> {
        let mut out: Vec<AgentView> = Vec::new();
        for entry in self.tree.iter() {
            let (_, bytes) = entry?;
            if let Ok(v) = serde_json::from_slice::<AgentView>(&bytes) {
                out.push(v);
            }
        }
        for agent in registered {
            match out.iter_mut().find(|v| &v.agent_id == agent) {
                Some(v) => v.registered = true,
                None => out.push(AgentView { registered: true, ..AgentView::unknown(agent) }),
            }
        }
        let rank = |v: &AgentView| match v.online {
            Some(false) => 0,
            None => 1,
            Some(true) => 2,
        };
        out.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.agent_id.cmp(&b.agent_id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(agent: &str, state: State, config_version: u64) -> AgentStatus {
        AgentStatus {
            agent_id: agent.into(),
            state: state as i32,
            version: "0.1.0".into(),
            config_version,
            ..Default::default()
        }
    }

    #[test]
    fn offline_agents_come_first_with_the_time_they_went_offline() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(&Store::for_test(dir.path()).unwrap()).unwrap();
        fleet.record_status(&status("b-village", State::Online, 3), 100).unwrap();
        fleet.record_status(&status("a-village", State::Online, 1), 100).unwrap();
        fleet.record_status(&status("b-village", State::Online, 3), 150).unwrap();
        fleet.record_status(&status("b-village", State::Offline, 0), 200).unwrap();
        let health = Health {
            agent_id: "a-village".into(),
            outbox_depth: 4,
            cameras: vec![Default::default()],
            ..Default::default()
        };
        fleet.record_health(&health, 300).unwrap();
        let list = fleet.list(&["a-village".into(), "c-village".into()]).unwrap();
        let summary: Vec<_> = list
            .iter()
            .map(|v| (v.agent_id.as_str(), v.online, v.since_ms, v.registered))
            .collect();
        assert_eq!(
            summary,
            [
                ("b-village", Some(false), Some(200), false),
                ("c-village", None, None, true),
                ("a-village", Some(true), Some(100), true)
            ]
        );
        assert_eq!(list[0].config_version, 3, "the last will does not erase what was known");
        assert_eq!(list[2].health.as_ref().map(|h| h.outbox_depth), Some(4));
        assert_eq!(list[2].last_seen_ms, Some(300));
    }

    #[test]
    fn boxes_unregistered_and_long_silent_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(&Store::for_test(dir.path()).unwrap()).unwrap();
        for (agent, heard) in [("old", 100), ("kept", 100), ("recent", 900)] {
            fleet.record_status(&status(agent, State::Online, 1), heard).unwrap();
        }
        assert_eq!(fleet.sweep(&["kept".into()], 500).unwrap(), 1);
        let left: Vec<String> = fleet.list(&[]).unwrap().into_iter().map(|v| v.agent_id).collect();
        assert_eq!(left, ["kept", "recent"]);
    }

    #[test]
    fn a_clock_is_off_when_every_recent_report_says_so_not_one_delayed_report() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(&Store::for_test(dir.path()).unwrap()).unwrap();
        let health = |time_ms| Health { agent_id: "a".into(), time_ms, ..Default::default() };
        let offset = || fleet.list(&[]).unwrap()[0].clock_offset_ms();
        // Delayed in a queue, then fresh: the fresh one counts.
        for (sent, heard) in [(1_000, 600_000), (2_000, 600_100), (600_200, 600_200)] {
            fleet.record_health(&health(sent), heard).unwrap();
        }
        assert_eq!(offset(), Some(0));
        // Five minutes ahead, every time.
        for heard in [700_000, 730_000, 760_000] {
            fleet.record_health(&health(heard + 300_000), heard).unwrap();
        }
        assert_eq!(offset(), Some(300_000));
        assert_eq!(fleet.list(&[]).unwrap()[0].clock_offsets_ms.len(), 3);
    }
}
