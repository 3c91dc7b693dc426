//! The agent's signing key: every alarm and event update leaves the box sealed with it, so the
//! center can tell it came from this box and was not changed on the way.

use std::path::{Path, PathBuf};

use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, CLIP_CHUNK_FIELDS, CLIP_SIGNATURE_FIELD,
    SignatureError, SigningKey, UPDATE_SIGNATURE_FIELD, UPDATE_SNAPSHOT_FIELD, sha256, signed_part,
};
use xueliang_proto::{
    Alarm, ClipChunk, EventUpdate, Message, SCHEMA_VERSION, Snapshot, clip_chunk_id, decode_limited,
};

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

impl Sealed {
    /// Bytes it takes in the outbox: the message and the snapshot that follows it.
    pub fn bytes(&self) -> usize {
        self.message.len() + self.snapshot.as_ref().map_or(0, Vec::len)
    }
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

    /// Cuts `clip` into chunks of at most `chunk_bytes`, each carrying `description` (its size
    /// and hash filled in here) signed once: `(chunk id, encoded ClipChunk)` in order.
    pub fn seal_clip(
        &self,
        mut description: ClipChunk,
        clip: &[u8],
        chunk_bytes: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, SignatureError> {
        description.size = clip.len() as u64;
        description.sha256 = sha256(clip).into();
        description.offset = 0;
        description.data = Default::default();
        description.signature = Default::default();
        let signed =
            self.key.sign(description.encode_to_vec(), CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS)?;
        // Re-encoded with each chunk's offset and data: this build knows every field, so the
        // description's bytes come out exactly as signed.
        let signed = decode_limited::<ClipChunk>(&signed)
            .map_err(|_| SignatureError::Malformed("a clip description"))?;
        let chunk_bytes = chunk_bytes.max(1);
        Ok(clip
            .chunks(chunk_bytes)
            .enumerate()
            .map(|(i, data)| {
                let offset = (i * chunk_bytes) as u64;
                let chunk = ClipChunk { offset, data: data.to_vec().into(), ..signed.clone() };
                (clip_chunk_id(&chunk.clip_id, offset), chunk.encode_to_vec())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueliang_proto::signing::VerifyingKey;

    #[test]
    fn every_chunk_of_a_clip_proves_its_origin_and_they_add_up_to_the_signed_hash() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::open(dir.path()).unwrap();
        let key: VerifyingKey = sealer.public_key().parse().unwrap();
        let clip: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let description =
            ClipChunk { clip_id: "c1".into(), event_id: "e1".into(), ..Default::default() };
        let chunks = sealer.seal_clip(description, &clip, 4096).unwrap();
        assert_eq!(
            chunks.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["c1@0", "c1@4096", "c1@8192"]
        );
        let mut joined = Vec::new();
        for (_, payload) in &chunks {
            key.verify(payload, CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS, "the agent").unwrap();
            let chunk: ClipChunk = decode_limited(payload).unwrap();
            assert_eq!(chunk.offset as usize, joined.len());
            joined.extend_from_slice(&chunk.data);
        }
        assert_eq!(joined, clip);
        let first: ClipChunk = decode_limited(&chunks[0].1).unwrap();
        assert_eq!((first.size, first.sha256.to_vec()), (10_000, sha256(&clip)));
        // A chunk whose description was changed on the way does not verify.
        let forged = ClipChunk { event_id: "e2".into(), ..first }.encode_to_vec();
        assert!(
            key.verify(&forged, CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS, "the agent").is_err()
        );
    }
}
