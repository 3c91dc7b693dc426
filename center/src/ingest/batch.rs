//! What a batch of publishes becomes, decided without I/O: each publish is an agent's report to
//! record, a snapshot to attach, a valid alarm (its record routed) to store, a valid update of
//! an event to apply, a valid chunk of an event's clip to write, something refused to
//! dead-letter, or nothing to keep; and what is held gets receipted to its agent. The event
//! loop (`eventloop.rs`) then does the storing, flushing, acknowledging and publishing.

use std::collections::BTreeMap;

use rumqttc::Publish;
use tracing::warn;
use xueliang_proto::signing::{RECEIPT_SIGNATURE_FIELD, SignatureError, SigningKey, VerifyingKey};
use xueliang_proto::topics::{Topics, is_valid_agent_id};
use xueliang_proto::{
    AgentStatus, Alarm, ClipChunk, ConfigAck, EventUpdate, Health, Message, Receipt,
    SCHEMA_VERSION, Snapshot, decode_limited,
};

use super::validate::{Refusal, validate, validate_all, validate_clip, validate_update};
use crate::cases::facts;
use crate::domain::AlarmRecord;
use crate::fleet::AgentKeys;
use crate::routing::Routing;
use crate::store::Proof;

/// A report an agent sent about itself, on its own topic.
#[derive(Debug)]
pub(super) enum Report {
    /// Its answer to a pushed config.
    ConfigAck(ConfigAck),
    /// Its retained status (or last will).
    Status(AgentStatus),
    /// Its periodic Health.
    Health(Health),
}

impl Report {
    /// What it is, for the log.
    pub(super) fn what(&self) -> &'static str {
        match self {
            Report::ConfigAck(_) => "config answer",
            Report::Status(_) => "agent status",
            Report::Health(_) => "agent health",
        }
    }
}

/// What one publish of a batch is.
#[derive(Debug)]
pub(super) enum Item {
    /// A report to record.
    Report(Report),
    /// A snapshot that followed its alarm, from `agent`, to attach to the alarm.
    Snapshot {
        /// The agent whose topic it came on.
        agent: String,
        /// The picture and its alarm's id.
        snapshot: Snapshot,
    },
    /// A valid alarm and its record, routed and located.
    Alarm {
        /// The record to store.
        record: Box<AlarmRecord>,
        /// The alarm as received (its snapshot is stored beside the record).
        alarm: Box<Alarm>,
        /// The message as its agent signed it, kept beside the record (none if the agent's key
        /// was removed since the alarm was verified).
        proof: Option<Proof>,
    },
    /// A valid update of an event, from `agent`, to apply to the event's record.
    Update {
        /// The agent whose topic it came on (and whose key signed it).
        agent: String,
        /// The update.
        update: Box<EventUpdate>,
        /// The message as its agent signed it, kept if the update is applied.
        proof: Option<Proof>,
    },
    /// A chunk its agent signed that this center will never store: dead-lettered, and named in
    /// the agent's receipt as refused so it gives the clip up.
    ClipRefused {
        /// The agent whose topic it came on (and whose key signed it).
        agent: String,
        /// `{clip_id}@{offset}`.
        chunk: String,
        /// Why.
        reason: String,
    },
    /// A valid chunk of an event's clip, from `agent`, to write.
    Clip {
        /// The agent whose topic it came on (and whose key signed it).
        agent: String,
        /// The chunk.
        chunk: Box<ClipChunk>,
        /// The chunk as signed: encoded without its offset and data.
        signed: Vec<u8>,
    },
    /// An alarm or update its agent signed that this center will never store (out of bounds):
    /// dead-lettered, and named in the agent's receipt as refused so it forgets it.
    SignedRefused {
        /// The agent whose topic it came on (and whose key signed it).
        agent: String,
        /// The alarm's or update's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Refused, for this reason: dead-letter it.
    Refused(String),
    /// Nothing to keep (a malformed report, the center's own status), only to acknowledge.
    Ignored,
}

/// Decodes a report `agent` sent on its own topic; one that does not decode or names another
/// agent is logged and ignored (it is not an alarm: nothing to keep).
fn report<M: Message + Default>(
    p: &Publish,
    agent: &str,
    what: &str,
    agent_of: impl Fn(&M) -> &str,
    wrap: impl FnOnce(M) -> Report,
) -> Item {
    match decode_limited::<M>(&p.payload) {
        Ok(m) if agent_of(&m) == agent => Item::Report(wrap(m)),
        Ok(_) => {
            warn!(topic = %p.topic, "{what} names another agent; ignored");
            Item::Ignored
        }
        Err(e) => {
            warn!(topic = %p.topic, "malformed {what}: {e}");
            Item::Ignored
        }
    }
}

/// What each publish of `batch` is, in the batch's order. Alarms are validated against `keys`
/// (on several threads) and given `routing`'s units and location, as received at `now_ms`;
/// clips are at most `max_clip_bytes`.
pub(super) fn sort(
    topics: &Topics,
    keys: &AgentKeys,
    routing: &Routing,
    batch: &[Publish],
    now_ms: i64,
    max_clip_bytes: u64,
) -> Vec<Item> {
    let mut verdicts = validate_all(topics, keys, batch, now_ms);
    let mut items = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        let item = if let Some(agent) = topics.agent_of(&p.topic, "config/ack") {
            report(p, agent, "config answer", |a: &ConfigAck| &a.agent_id, Report::ConfigAck)
        } else if let Some(agent) = topics.agent_of(&p.topic, "status") {
            // The center's own retained status comes back on `center/status`: not an agent's.
            match is_valid_agent_id(agent) {
                true => {
                    report(p, agent, "agent status", |s: &AgentStatus| &s.agent_id, Report::Status)
                }
                false => Item::Ignored,
            }
        } else if let Some(agent) = topics.agent_of(&p.topic, "health") {
            report(p, agent, "agent health", |h: &Health| &h.agent_id, Report::Health)
        } else if let Some(agent) = topics.agent_of(&p.topic, "snapshot") {
            match decode_limited::<Snapshot>(&p.payload) {
                Ok(snapshot) => Item::Snapshot { agent: agent.to_owned(), snapshot },
                Err(e) => Item::Refused(e.to_string()),
            }
        } else if let Some(agent) = topics.agent_of(&p.topic, "event") {
            match validate_update(topics, keys, &p.topic, &p.payload, now_ms) {
                Ok(u) => Item::Update {
                    agent: agent.to_owned(),
                    update: Box::new(u),
                    proof: proof(keys, agent, &p.payload, Proof::update),
                },
                Err(refusal) => refused(agent, refusal),
            }
        } else if let Some(agent) = topics.agent_of(&p.topic, "clip") {
            match validate_clip(topics, keys, &p.topic, &p.payload, max_clip_bytes) {
                Ok((chunk, signed)) => {
                    Item::Clip { agent: agent.to_owned(), chunk: Box::new(chunk), signed }
                }
                Err((reason, None)) => Item::Refused(reason),
                Err((reason, Some(chunk))) => {
                    Item::ClipRefused { agent: agent.to_owned(), chunk, reason }
                }
            }
        } else {
            let verdict = verdicts[i]
                .take()
                .unwrap_or_else(|| validate(topics, keys, &p.topic, &p.payload, now_ms));
            match verdict {
                Ok(alarm) => {
                    let mut record = AlarmRecord::from_alarm(&alarm, now_ms);
                    record.routed_to = routing.route(&facts(&record));
                    record.location =
                        routing.location(&record.agent_id, &record.camera_id).unwrap_or_default();
                    let proof = proof(keys, &alarm.agent_id, &p.payload, Proof::alarm);
                    Item::Alarm { record: Box::new(record), alarm: Box::new(alarm), proof }
                }
                Err(refusal) => match topics.agent_of(&p.topic, "alarm") {
                    Some(agent) => refused(agent, refusal),
                    None => Item::Refused(refusal.0),
                },
            }
        };
        items.push(item);
    }
    items
}

/// The proof of `payload`, verified just now with `agent`'s key, made by `make`.
fn proof(
    keys: &AgentKeys,
    agent: &str,
    payload: &[u8],
    make: fn(&[u8], &VerifyingKey) -> Result<Proof, SignatureError>,
) -> Option<Proof> {
    let key = keys.get(agent)?;
    // The payload verified, so it parses: this cannot fail.
    make(payload, &key).map_err(|e| warn!(agent, "cannot keep the signed message: {e}")).ok()
}

/// What a refused alarm or update of `agent` becomes: named back to the agent when it signed it.
fn refused(agent: &str, (reason, id): Refusal) -> Item {
    match id {
        Some(id) => Item::SignedRefused { agent: agent.to_owned(), id, reason },
        None => Item::Refused(reason),
    }
}

/// The receipts of a batch: one per agent, naming every alarm (and following snapshot, update
/// and clip chunk) of that agent the store holds, new or seen before.
#[derive(Debug, Default)]
pub(super) struct Receipts(BTreeMap<String, Receipt>);

impl Receipts {
    fn of(&mut self, agent: &str) -> &mut Receipt {
        self.0.entry(agent.to_owned()).or_insert_with(|| Receipt {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: agent.to_owned(),
            ..Default::default()
        })
    }

    /// `agent`'s alarm `id` is stored.
    pub(super) fn alarm(&mut self, agent: &str, id: String) {
        self.of(agent).alarm_ids.push(id);
    }

    /// The snapshot `agent` sent after its alarm `alarm_id` is stored.
    pub(super) fn snapshot(&mut self, agent: &str, alarm_id: String) {
        self.of(agent).snapshot_alarm_ids.push(alarm_id);
    }

    /// `agent`'s update `id` is applied.
    pub(super) fn update(&mut self, agent: &str, id: String) {
        self.of(agent).update_ids.push(id);
    }

    /// `agent`'s chunk of clip `clip_id` at `offset` is on disk.
    pub(super) fn clip_chunk(&mut self, agent: &str, clip_id: &str, offset: u64) {
        self.of(agent).clip_chunks.push(xueliang_proto::clip_chunk_id(clip_id, offset));
    }

    /// `agent`'s alarm or update `id` will never be stored.
    pub(super) fn refused(&mut self, agent: &str, id: String) {
        self.of(agent).refused_ids.push(id);
    }

    /// `agent`'s clip chunk `chunk` (`{clip_id}@{offset}`) will never be stored.
    pub(super) fn refused_clip_chunk(&mut self, agent: &str, chunk: String) {
        self.of(agent).refused_clip_chunks.push(chunk);
    }

    /// Each agent and its receipt, stamped `now_ms` and signed with the center's `key`; a
    /// receipt that cannot be signed is logged and left out (the agent publishes again).
    pub(super) fn signed(self, key: &SigningKey, now_ms: i64) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.0.len());
        for (agent, mut receipt) in self.0 {
            receipt.time_ms = now_ms;
            match key.sign(receipt.encode_to_vec(), RECEIPT_SIGNATURE_FIELD, &[]) {
                Ok(payload) => out.push((agent, payload)),
                Err(e) => warn!("cannot sign a receipt: {e}"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;
    use xueliang_proto::signing::{
        ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, CLIP_CHUNK_FIELDS, CLIP_SIGNATURE_FIELD,
    };
    use xueliang_proto::v1::agent_status::State;

    #[test]
    fn a_batch_sorts_into_reports_snapshots_alarms_and_refusals_without_a_broker() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = SigningKey::load_or_create(&dir.path().join("v1.key")).unwrap();
        let keys_file = dir.path().join("agent-keys.toml");
        std::fs::write(&keys_file, format!("[agents]\nv1 = \"{}\"\n", v1.public_key())).unwrap();
        let keys = AgentKeys::open(&keys_file).unwrap();
        let routing = Routing::parse(
            "[[unit]]\nid = \"pcs\"\nname = \"派出所\"\ntype = \"police_station\"\n\
             [[group]]\nid = \"pond\"\nname = \"水塘\"\ncameras = [\"v1/*\"]\n\
             [[route]]\nid = \"r\"\ngroups = [\"pond\"]\nunits = [\"pcs\"]\n",
        )
        .unwrap();
        let alarm = Alarm {
            id: "a-1".into(),
            agent_id: "v1".into(),
            camera_id: "c".into(),
            ..Default::default()
        };
        let sealed =
            v1.sign(alarm.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD]).unwrap();
        let status = |agent: &str| {
            AgentStatus {
                agent_id: agent.into(),
                state: State::Online as i32,
                ..Default::default()
            }
            .encode_to_vec()
        };
        let snapshot = Snapshot {
            alarm_id: "a-1".into(),
            jpeg: b"jpeg".to_vec().into(),
            ..Default::default()
        };
        let chunk = ClipChunk {
            clip_id: "k-1".into(),
            agent_id: "v1".into(),
            event_id: "a-1".into(),
            size: 3,
            sha256: vec![0; 32].into(),
            data: b"mp4".to_vec().into(),
            ..Default::default()
        };
        let chunk =
            v1.sign(chunk.encode_to_vec(), CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS).unwrap();
        let publish =
            |topic: &str, payload: Vec<u8>| Publish::new(topic, QoS::AtLeastOnce, payload);
        let batch = [
            publish("xl/v1/v1/alarm", sealed),
            publish("xl/v1/v1/alarm", alarm.encode_to_vec()),
            publish("xl/v1/v1/status", status("v1")),
            publish("xl/v1/v1/health", status("v2")),
            publish("xl/v1/center/status", b"\x08\x01".to_vec()),
            publish("xl/v1/v1/snapshot", snapshot.encode_to_vec()),
            publish("xl/v1/v1/snapshot", b"\xff\xff".to_vec()),
            publish("xl/v1/v1/clip", chunk),
        ];
        let items = sort(&Topics::default(), &keys, &routing, &batch, 7, 1 << 20);
        match &items[0] {
            Item::Alarm { record, proof, .. } => {
                let proof = proof.as_ref().expect("the signed message is kept");
                assert_eq!(proof.key, v1.public_key());
                assert_eq!(
                    (record.id.as_str(), record.received_time_ms, record.location.as_str()),
                    ("a-1", 7, "水塘")
                );
                assert_eq!(record.routed_to, ["pcs"]);
            }
            other => panic!("a signed alarm is stored, not {other:?}"),
        }
        assert!(matches!(&items[1], Item::Refused(r) if r == "the message is not signed"));
        assert!(matches!(&items[2], Item::Report(Report::Status(s)) if s.agent_id == "v1"));
        assert!(matches!(items[3], Item::Ignored), "a report naming another agent");
        assert!(matches!(items[4], Item::Ignored), "the center's own status");
        assert!(
            matches!(&items[5], Item::Snapshot { agent, snapshot } if agent == "v1" && snapshot.alarm_id == "a-1")
        );
        assert!(
            matches!(&items[6], Item::Refused(r) if r.contains("not a valid Snapshot")),
            "{:?}",
            items[6]
        );
        assert!(
            matches!(&items[7], Item::Clip { agent, chunk, signed } if agent == "v1" && chunk.data.as_ref() == b"mp4" && !signed.ends_with(b"mp4"))
        );

        let mut receipts = Receipts::default();
        receipts.alarm("v1", "a-1".into());
        receipts.snapshot("v1", "a-0".into());
        receipts.alarm("v2", "b-1".into());
        receipts.clip_chunk("v1", "k-1", 0);
        let signed = receipts.signed(&v1, 9);
        assert_eq!(signed.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["v1", "v2"]);
        let receipt = Receipt::decode(signed[0].1.as_slice()).unwrap();
        assert_eq!(
            (receipt.alarm_ids, receipt.snapshot_alarm_ids, receipt.time_ms),
            (vec!["a-1".to_string()], vec!["a-0".to_string()], 9)
        );
        assert_eq!(receipt.clip_chunks, ["k-1@0"]);
    }
}
