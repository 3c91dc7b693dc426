//! The agent's signing key: every alarm leaves the box sealed with it, so the center can tell
//! it came from this box and was not changed on the way.

use std::path::{Path, PathBuf};

use xueliang_proto::signing::{ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, SignatureError, SigningKey, sha256};
use xueliang_proto::{Alarm, Message};

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
    /// snapshot (which may be stripped or sent later without breaking the seal).
    pub fn seal(&self, mut alarm: Alarm) -> Result<Vec<u8>, SignatureError> {
        alarm.snapshot_sha256 =
            if alarm.snapshot_jpeg.is_empty() { Default::default() } else { sha256(&alarm.snapshot_jpeg).into() };
        alarm.signature = Default::default();
        self.key.sign(alarm.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD])
    }
}
