//! What the agents signed, kept beside the records, so that a stored alarm can be proved later
//! to be what its agent sent. At ingest each new alarm's message is kept as received, without
//! its picture (outside the signature, and deleted by retention sooner than the record; its
//! signed hash stays in the message), under the alarm's id; each update applied to its event
//! under the event's id, a NUL and the update's sequence number. Each comes with the key
//! registered for the agent then. They are written in the transaction that stores the record
//! or applies the update, and deleted with the alarm ([`Store`]'s `remove`).
//!
//! Checking one ([`Store::prove`]) verifies every kept message against the key registered for
//! the agent now, replays the alarm and its updates into a record, and compares what the agent
//! said (ids, camera, rule, kind, times, zone, detections, picture hash, model, the event's
//! course) with the stored record, and the stored picture with its signed hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, SignatureError, UPDATE_SIGNATURE_FIELD,
    UPDATE_SNAPSHOT_FIELD, VerifyingKey, hex, sha256, signed_part,
};
use xueliang_proto::{Alarm, EventUpdate, Message, decode_limited};

use super::{Store, StoreError};
use crate::domain::{AlarmRecord, raised};

/// The tree of kept messages.
pub(super) const PROOFS: &str = "proofs";

/// An agent's signed message as the center received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The public key (base64) registered for the agent when the message arrived.
    pub key: String,
    /// The message as received without its picture (base64): what the signature covers, and
    /// the signature.
    pub signed: String,
}

impl Proof {
    /// The proof of an alarm received as `payload`, verified with `key`.
    pub fn alarm(payload: &[u8], key: &VerifyingKey) -> Result<Self, SignatureError> {
        Self::new(payload, ALARM_SNAPSHOT_FIELD, key)
    }

    /// The proof of an event's update received as `payload`, verified with `key`.
    pub fn update(payload: &[u8], key: &VerifyingKey) -> Result<Self, SignatureError> {
        Self::new(payload, UPDATE_SNAPSHOT_FIELD, key)
    }

    fn new(payload: &[u8], picture: u32, key: &VerifyingKey) -> Result<Self, SignatureError> {
        Ok(Self { key: key.to_string(), signed: B64.encode(signed_part(payload, &[picture])?) })
    }

    /// The message, if its bytes verify against `key` of `agent`; `what` names it in errors.
    fn open<M: Message + Default>(
        &self,
        key: &VerifyingKey,
        fields: (u32, u32),
        agent: &str,
        what: &str,
    ) -> Result<M, ProofError> {
        let unreadable = |message: String| ProofError::Unreadable { what: what.into(), message };
        let bytes = B64.decode(&self.signed).map_err(|e| unreadable(e.to_string()))?;
        let (signature, picture) = fields;
        key.verify(&bytes, signature, &[picture], agent).map_err(|e| ProofError::Signature {
            what: what.into(),
            reason: e.to_string(),
            kept_key: self.key.clone(),
        })?;
        decode_limited(&bytes).map_err(|e| unreadable(e.to_string()))
    }

    fn to_json(&self) -> Vec<u8> {
        // Two strings: serializing cannot fail.
        serde_json::to_vec(self).expect("a Proof serializes")
    }
}

/// What is kept of one alarm: its message and those of the updates applied to its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proofs {
    /// The alarm as received.
    pub alarm: Proof,
    /// Its event's updates applied, in order.
    pub updates: Vec<Proof>,
}

/// A stored alarm proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proved {
    /// The agent that signed it.
    pub agent: String,
    /// Its registered public key (base64).
    pub key: String,
    /// When the agent saw the event, UTC ms.
    pub event_time_ms: i64,
    /// Updates of its event proved with it.
    pub updates: usize,
}

impl std::fmt::Display for Proved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = jiff::Timestamp::from_millisecond(self.event_time_ms)
            .map_or_else(|_| format!("{} ms", self.event_time_ms), |t| t.to_string());
        write!(f, "signed by agent {} key {} at {at}", self.agent, self.key)?;
        match self.updates {
            0 => Ok(()),
            1 => write!(f, ", with 1 update of its event"),
            n => write!(f, ", with {n} updates of its event"),
        }
    }
}

/// A field of the stored record that is not what the agent signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The record's field.
    pub field: &'static str,
    /// What the store holds.
    pub stored: String,
    /// What the signed messages say.
    pub signed: String,
}

/// Why a stored alarm is not proved.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// No alarm has this id.
    #[error("no alarm {0} is stored")]
    NoAlarm(String),
    /// Nothing signed is kept for it.
    #[error(
        "no signed message is kept for alarm {0} (stored by a center that did not keep them yet)"
    )]
    NotKept(String),
    /// Its agent has no key registered now.
    #[error("no key is registered for agent {0:?} now: its signature cannot be checked")]
    NoKey(String),
    /// A kept message does not verify.
    #[error("{what}: {reason} (it arrived signed with key {kept_key})")]
    Signature {
        /// The message (`the alarm`, `update 3`).
        what: String,
        /// Why.
        reason: String,
        /// The key registered when it arrived, as kept beside it.
        kept_key: String,
    },
    /// A kept message is not readable.
    #[error("{what} as kept is unreadable: {message}")]
    Unreadable {
        /// The message.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The stored record is not what was signed.
    #[error("the stored record is not what the agent signed: {}", describe(.0))]
    Mismatch(Vec<Mismatch>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(mismatches: &[Mismatch]) -> String {
    let each: Vec<String> = mismatches
        .iter()
        .map(|m| format!("{} is {} but was signed as {}", m.field, m.stored, m.signed))
        .collect();
    each.join("; ")
}

/// The key of event `id`'s update number `seq`: after the id's own key, in order of `seq`.
fn update_key(id: &str, seq: u32) -> Vec<u8> {
    let mut k = update_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix of event `id`'s updates' keys (ids never hold a NUL).
pub(super) fn update_prefix(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k
}

/// Serialized proofs, ready for a transaction: an alarm's under its id.
pub(super) fn alarm_entry(id: &str, proof: &Proof) -> (Vec<u8>, Vec<u8>) {
    (id.as_bytes().to_vec(), proof.to_json())
}

/// An update's proof under its event's id and its sequence number.
pub(super) fn update_entry(event_id: &str, seq: u32, proof: &Proof) -> (Vec<u8>, Vec<u8>) {
    (update_key(event_id, seq), proof.to_json())
}

/// Compares the fields of `stored` an agent signed with those of `signed`.
fn compare(stored: &AlarmRecord, signed: &AlarmRecord) -> Vec<Mismatch> {
    let mut out = Vec::new();
    macro_rules! fields {
        ($($f:ident),*) => {$(
            if stored.$f != signed.$f {
                out.push(Mismatch {
                    field: stringify!($f),
                    stored: format!("{:?}", stored.$f),
                    signed: format!("{:?}", signed.$f),
                });
            }
        )*};
    }
    fields!(
        id,
        agent_id,
        camera_id,
        rule_id,
        kind,
        severity,
        event_time_ms,
        zone_id,
        detections,
        snapshot_sha256,
        snapshot_follows,
        frame_width,
        frame_height,
        model_id,
        model_version,
        state,
        ended_ms,
        duration_ms,
        peak_count,
        update_seq,
        updated_ms,
        reminders
    );
    out
}

impl Store {
    /// What is kept signed of alarm `id`, if anything.
    pub fn proofs(&self, id: &str) -> Result<Option<Proofs>, ProofError> {
        let parse = |what: String, bytes: &[u8]| {
            serde_json::from_slice::<Proof>(bytes)
                .map_err(|e| ProofError::Unreadable { what, message: e.to_string() })
        };
        let Some(bytes) = self.proofs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let alarm = parse("the alarm".into(), &bytes)?;
        let mut updates = Vec::new();
        for (i, entry) in self.proofs.scan_prefix(update_prefix(id)).values().enumerate() {
            let bytes = entry?;
            updates.push(parse(format!("update {} of the event", i + 1), &bytes)?);
        }
        Ok(Some(Proofs { alarm, updates }))
    }

    /// Proves alarm `id` with `key`, the key registered for its agent now (none: none is):
    /// every kept message verifies, and the stored record and picture are what they signed.
    pub fn prove(&self, id: &str, key: Option<&VerifyingKey>) -> Result<Proved, ProofError> {
        let record = self.get(id)?.ok_or_else(|| ProofError::NoAlarm(id.to_owned()))?;
        let proofs = self.proofs(id)?.ok_or_else(|| ProofError::NotKept(id.to_owned()))?;
        let agent = record.agent_id.as_str();
        let key = key.ok_or_else(|| ProofError::NoKey(agent.to_owned()))?;
        let alarm: Alarm = proofs.alarm.open(
            key,
            (ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD),
            agent,
            "the alarm",
        )?;
        let mut signed = AlarmRecord::from_alarm(&alarm, record.received_time_ms);
        let mut mismatches = Vec::new();
        let registered = key.to_string();
        // The key kept beside a message that verifies with the registered key was edited.
        for proof in std::iter::once(&proofs.alarm).chain(&proofs.updates) {
            if proof.key != registered {
                mismatches.push(Mismatch {
                    field: "key",
                    stored: format!("{:?}", proof.key),
                    signed: format!("{registered:?}"),
                });
            }
        }
        for (i, proof) in proofs.updates.iter().enumerate() {
            let what = format!("update {} of the event", i + 1);
            let u: EventUpdate =
                proof.open(key, (UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD), agent, &what)?;
            if u.event_id != record.id || u.agent_id != record.agent_id {
                mismatches.push(Mismatch {
                    field: "update",
                    stored: format!("{what} kept for event {:?}", record.id),
                    signed: format!("for event {:?} of agent {:?}", u.event_id, u.agent_id),
                });
            }
            signed.apply_update(&u);
        }
        // The center's own change: escalation raises the severity one step.
        if record.escalated {
            signed.severity = raised(&signed.severity).to_owned();
        }
        mismatches.extend(compare(&record, &signed));
        if let Some(jpeg) = self.snapshot(id)? {
            let hash = hex(&sha256(&jpeg));
            if hash != signed.snapshot_sha256 {
                mismatches.push(Mismatch {
                    field: "snapshot",
                    stored: format!("a picture hashing to {hash}"),
                    signed: format!("{:?}", signed.snapshot_sha256),
                });
            }
        }
        if !mismatches.is_empty() {
            return Err(ProofError::Mismatch(mismatches));
        }
        Ok(Proved {
            agent: alarm.agent_id,
            key: registered,
            event_time_ms: alarm.event_time_ms,
            updates: proofs.updates.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Inserted;
    use xueliang_proto::signing::SigningKey;

    fn signed_alarm(key: &SigningKey, id: &str) -> Vec<u8> {
        let a = Alarm {
            id: id.into(),
            agent_id: "a".into(),
            camera_id: "gate".into(),
            event_time_ms: 1_000,
            opens_event: true,
            snapshot_jpeg: b"jpeg".to_vec().into(),
            snapshot_sha256: sha256(b"jpeg").into(),
            ..Default::default()
        };
        key.sign(a.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD]).unwrap()
    }

    #[test]
    fn a_kept_alarm_and_its_updates_prove_the_record_and_edits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        let agent = SigningKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let key: VerifyingKey = agent.public_key().parse().unwrap();
        let payload = signed_alarm(&agent, "e");
        let alarm: Alarm = decode_limited(&payload).unwrap();
        let record = AlarmRecord::from_alarm(&alarm, 7);
        let proof = Proof::alarm(&payload, &key).unwrap();
        assert!(!B64.decode(&proof.signed).unwrap().ends_with(b"jpeg"), "no picture kept");
        let rows = [(&record, &b"jpeg"[..], Some(&proof))];
        assert_eq!(s.insert_batch(&rows).unwrap(), [Inserted::New]);
        let update = EventUpdate {
            id: "u2".into(),
            event_id: "e".into(),
            agent_id: "a".into(),
            seq: 2,
            peak_count: 4,
            ended: true,
            end_time_ms: 2_000,
            ..Default::default()
        };
        let update =
            agent.sign(update.encode_to_vec(), UPDATE_SIGNATURE_FIELD, &[UPDATE_SNAPSHOT_FIELD]);
        let update = update.unwrap();
        let u: EventUpdate = decode_limited(&update).unwrap();
        s.apply_update("a", &u, Some(&Proof::update(&update, &key).unwrap())).unwrap();

        let proved = s.prove("e", Some(&key)).unwrap();
        assert_eq!((proved.agent.as_str(), proved.updates), ("a", 1));
        assert!(proved.to_string().starts_with(&format!("signed by agent a key {key} at 1970-")));

        // Another agent's key, or none: refused.
        let other = SigningKey::load_or_create(&dir.path().join("b.key")).unwrap();
        let other: VerifyingKey = other.public_key().parse().unwrap();
        assert!(matches!(s.prove("e", Some(&other)), Err(ProofError::Signature { .. })));
        assert!(matches!(s.prove("e", None), Err(ProofError::NoKey(a)) if a == "a"));
        assert!(matches!(s.prove("nope", Some(&key)), Err(ProofError::NoAlarm(_))));

        // The stored record edited: the fields named.
        s.update("e", |r| {
            r.camera_id = "elsewhere".into();
            r.peak_count = 1;
            Ok::<_, ()>(())
        })
        .unwrap();
        let err = s.prove("e", Some(&key)).unwrap_err().to_string();
        assert_eq!(
            err,
            "the stored record is not what the agent signed: camera_id is \"elsewhere\" but was \
             signed as \"gate\"; peak_count is 1 but was signed as 4"
        );
        // Retention deletes what is kept with the alarm.
        s.remove("e").unwrap();
        assert!(s.proofs.is_empty());
    }
}
