//! The agent's signing key: every alarm and event update leaves the box sealed with it, so the
//! center can tell it came from this box and was not changed on the way.

use std::path::{Path, PathBuf};

use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, SignatureError, SigningKey,
    UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD, sha256, signed_part,
};
use xueliang_proto::{Alarm, EventUpdate, Message, SCHEMA_VERSION, Snapshot};

/// What a sealed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// An `Alarm`.
    Alarm,
    /// An `EventUpdate`.
    Update,
}

/// A sealed message, ready for the outbox.
#[derive(Debug)]
pub struct Sealed {
    /// The message's id.
    pub id: String,
    /// What it is.
    pub kind: MessageKind,
    /// The encoded, signed message.
    pub message: Vec<u8>,
    /// The encoded Snapshot message that follows the alarm, when its picture was too big to
    /// travel with it.
    pub snapshot: Option<Vec<u8>>,
}

/// The key file inside the agent's data directory.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agent.key")
}

/// Seals alarms with the agent's key.
#[derive(Debug)]
pub struct Sealer {
    key: SigningKey,
}

impl Sealer {
    /// Loads the agent's key from `data_dir`, creating it on first start.
    pub fn open(data_dir: &Path) -> Result<Self, SignatureError> {
        Ok(Self { key: SigningKey::load_or_create(&key_path(data_dir))? })
    }

    /// The public key the center must have registered for this agent.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Encodes `alarm` with its snapshot's hash and the signature over everything but the
    /// snapshot (which may be stripped or sent later without breaking the seal). A snapshot
    /// over `send_after` bytes is cut out of the alarm into a Snapshot message of its own.
    pub fn seal(&self, mut alarm: Alarm, send_after: usize) -> Result<Sealed, SignatureError> {
        alarm.snapshot_sha256 = if alarm.snapshot_jpeg.is_empty() {
            Default::default()
        } else {
            sha256(&alarm.snapshot_jpeg).into()
        };
        alarm.snapshot_follows = alarm.snapshot_jpeg.len() > send_after;
        alarm.signature = Default::default();
        let signed =
            self.key.sign(alarm.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD])?;
        if !alarm.snapshot_follows {
            return Ok(Sealed {
                id: alarm.id,
                kind: MessageKind::Alarm,
                message: signed,
                snapshot: None,
            });
        }
        let snapshot = Snapshot {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: alarm.agent_id,
            alarm_id: alarm.id.clone(),
            jpeg: alarm.snapshot_jpeg,
        };
        Ok(Sealed {
            // The signature does not cover the picture: cutting it out keeps the seal intact.
            kind: MessageKind::Alarm,
            message: signed_part(&signed, &[ALARM_SNAPSHOT_FIELD])?,
            snapshot: Some(snapshot.encode_to_vec()),
            id: alarm.id,
        })
    }

    /// Encodes `update` with its picture's hash and the signature over everything but the
    /// picture. Its picture travels with it: the event log keeps update pictures small.
    pub fn seal_update(&self, mut update: EventUpdate) -> Result<Sealed, SignatureError> {
        update.snapshot_sha256 = if update.snapshot_jpeg.is_empty() {
            Default::default()
        } else {
            sha256(&update.snapshot_jpeg).into()
        };
        update.signature = Default::default();
        let message = self.key.sign(
            update.encode_to_vec(),
            UPDATE_SIGNATURE_FIELD,
            &[UPDATE_SNAPSHOT_FIELD],
        )?;
        Ok(Sealed { id: update.id, kind: MessageKind::Update, message, snapshot: None })
    }
}
