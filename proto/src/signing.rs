//! Ed25519 signatures over encoded messages, and the keys that make them.
//!
//! A signature covers the message's bytes as sent, minus the signature field and any field the
//! sender may strip on the way (an alarm's snapshot). Both sides cut those fields out of the
//! raw protobuf, field by field, without decoding: a reader that does not know a newer field
//! still verifies exactly what was signed (re-encoding through prost would drop it). The
//! signature field is appended last; protobuf allows fields in any order.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

/// Field number of `Alarm.snapshot_jpeg`, outside an alarm's signature.
pub const ALARM_SNAPSHOT_FIELD: u32 = 11;
/// Field number of `Alarm.signature`.
pub const ALARM_SIGNATURE_FIELD: u32 = 16;
/// Field number of `EventUpdate.snapshot_jpeg`, outside an update's signature.
pub const UPDATE_SNAPSHOT_FIELD: u32 = 12;
/// Field number of `EventUpdate.signature`.
pub const UPDATE_SIGNATURE_FIELD: u32 = 16;
/// Field number of `Receipt.signature`.
pub const RECEIPT_SIGNATURE_FIELD: u32 = 5;
/// Field number of `AgentConfig.signature`.
pub const CONFIG_SIGNATURE_FIELD: u32 = 6;
/// Field number of `CenterStatus.signature`.
pub const CENTER_STATUS_SIGNATURE_FIELD: u32 = 6;
/// Field number of `Dispatch.signature`.
pub const DISPATCH_SIGNATURE_FIELD: u32 = 9;
/// Field number of `TierEvent.signature`.
pub const TIER_EVENT_SIGNATURE_FIELD: u32 = 7;
/// Field number of `TierReceipt.signature`.
pub const TIER_RECEIPT_SIGNATURE_FIELD: u32 = 5;
/// Field number of `TierFleet.signature`.
pub const TIER_FLEET_SIGNATURE_FIELD: u32 = 5;
/// Field number of `TierFetch.signature`.
pub const TIER_FETCH_SIGNATURE_FIELD: u32 = 6;
/// Field numbers of `ClipChunk.offset` and `ClipChunk.data`, outside a chunk's signature (one
/// signature covers the clip's description in every chunk).
pub const CLIP_CHUNK_FIELDS: [u32; 2] = [14, 15];
/// Field number of `ClipChunk.signature`.
pub const CLIP_SIGNATURE_FIELD: u32 = 16;

/// Why signing, verifying or a key failed.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The message carries no signature.
    #[error("the message is not signed")]
    Missing,
    /// The signature does not match the key.
    #[error("the signature does not verify against the key registered for {0:?}")]
    Invalid(String),
    /// The payload is not well-formed protobuf.
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// A public key in text form is not 32 bytes of base64.
    #[error(
        "{0:?} is not a public key (expected 44 characters of base64, as `xl-agent key` prints)"
    )]
    BadPublicKey(String),
    /// A key file could not be read, written or parsed.
    #[error("key file {path}: {message}")]
    KeyFile {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// One field of an encoded message.
struct Field {
    number: u32,
    /// Its whole encoding (key, length, value).
    all: std::ops::Range<usize>,
    /// Its value (for a length-delimited field, the bytes after the length).
    value: std::ops::Range<usize>,
}

/// The fields of an encoded protobuf message, in order.
fn fields(payload: &[u8]) -> Result<Vec<Field>, SignatureError> {
    fn varint(b: &[u8], at: &mut usize) -> Result<u64, SignatureError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at).ok_or(SignatureError::Malformed("truncated varint"))?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SignatureError::Malformed("varint too long"))
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let start = at;
        let key = varint(payload, &mut at)?;
        let len = match key & 7 {
            0 => {
                varint(payload, &mut at)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(payload, &mut at)?)
                .map_err(|_| SignatureError::Malformed("length too large"))?,
            5 => 4,
            _ => return Err(SignatureError::Malformed("unsupported wire type")),
        };
        let value_start = at;
        at = at
            .checked_add(len)
            .filter(|&end| end <= payload.len())
            .ok_or(SignatureError::Malformed("truncated field"))?;
        let number = u32::try_from(key >> 3)
            .map_err(|_| SignatureError::Malformed("field number too large"))?;
        out.push(Field { number, all: start..at, value: value_start..at });
    }
    Ok(out)
}

/// The bytes a signature covers: `payload` without the fields numbered in `skip`.
pub fn signed_part(payload: &[u8], skip: &[u32]) -> Result<Vec<u8>, SignatureError> {
    let mut out = Vec::with_capacity(payload.len());
    for f in fields(payload)? {
        if !skip.contains(&f.number) {
            out.extend_from_slice(&payload[f.all]);
        }
    }
    Ok(out)
}

/// The value of the last field `number` in `payload`, if any.
fn field_value(payload: &[u8], number: u32) -> Result<Option<&[u8]>, SignatureError> {
    Ok(fields(payload)?.into_iter().rev().find(|f| f.number == number).map(|f| &payload[f.value]))
}

/// An Ed25519 key pair that signs what one party sends.
#[derive(Debug)]
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// Loads the key in `path` (PKCS#8), creating one readable only by its owner if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, SignatureError> {
        let err = |message: String| SignatureError::KeyFile { path: path.to_owned(), message };
        let der = match std::fs::read(path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| err(e.to_string()))?;
                write_private(path, der.as_ref()).map_err(|e| err(e.to_string()))?;
                der.as_ref().to_vec()
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| {
            err(format!("not an Ed25519 PKCS#8 key ({e}); move it away to make a new one"))
        })?;
        Ok(Self { pair })
    }

    /// The public key in text form (base64), as registered with the other side.
    pub fn public_key(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// Signs `payload` (which must not hold field `signature_field`) over all fields but
    /// `skip` and the signature, and appends the signature field.
    pub fn sign(
        &self,
        mut payload: Vec<u8>,
        signature_field: u32,
        skip: &[u32],
    ) -> Result<Vec<u8>, SignatureError> {
        let mut skipped = skip.to_vec();
        skipped.push(signature_field);
        let signature = self.pair.sign(&signed_part(&payload, &skipped)?);
        let sig = signature.as_ref();
        // Key (wire type 2) and a one-byte length: 64 < 128.
        let key = u64::from(signature_field) << 3 | 2;
        let mut k = key;
        loop {
            let byte = (k & 0x7f) as u8;
            k >>= 7;
            if k == 0 {
                payload.push(byte);
                break;
            }
            payload.push(byte | 0x80);
        }
        payload.push(sig.len() as u8);
        payload.extend_from_slice(sig);
        Ok(payload)
    }
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A public key that checks another party's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey([u8; 32]);

impl std::str::FromStr for VerifyingKey {
    type Err = SignatureError;

    fn from_str(text: &str) -> Result<Self, SignatureError> {
        B64.decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or_else(|| SignatureError::BadPublicKey(text.to_owned()))
    }
}

/// The text form (base64) that `FromStr` reads and `SigningKey::public_key` prints.
impl std::fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl VerifyingKey {
    /// Checks that `payload` carries in `signature_field` a valid signature over all fields
    /// but `skip` and the signature. `signer` names the key's owner in the error.
    pub fn verify(
        &self,
        payload: &[u8],
        signature_field: u32,
        skip: &[u32],
        signer: &str,
    ) -> Result<(), SignatureError> {
        let sig = field_value(payload, signature_field)?
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::Missing)?;
        let mut skipped = skip.to_vec();
        skipped.push(signature_field);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed_part(payload, &skipped)?, sig)
            .map_err(|_| SignatureError::Invalid(signer.to_owned()))
    }
}

/// SHA-256 of `bytes` (an alarm's snapshot hash).
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

/// Lower-case hex of `bytes`, as hashes are shown.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Alarm, Message, Receipt};

    fn key(dir: &Path, name: &str) -> SigningKey {
        SigningKey::load_or_create(&dir.join(name)).unwrap()
    }

    fn alarm() -> Alarm {
        Alarm {
            id: "a-1".into(),
            agent_id: "v1".into(),
            snapshot_jpeg: vec![1, 2, 3].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_alarm_verifies_and_decodes_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "agent.key");
        let public: VerifyingKey = k.public_key().parse().unwrap();
        let skip = [ALARM_SNAPSHOT_FIELD];
        let signed = k.sign(alarm().encode_to_vec(), ALARM_SIGNATURE_FIELD, &skip).unwrap();
        public.verify(&signed, ALARM_SIGNATURE_FIELD, &skip, "v1").unwrap();
        let decoded = Alarm::decode(signed.as_slice()).unwrap();
        assert_eq!(decoded.signature.len(), 64);
        assert_eq!(decoded.id, "a-1");

        // Another agent id in the same bytes: refused.
        let mut forged = decoded.clone();
        forged.agent_id = "v2".into();
        let err =
            public.verify(&forged.encode_to_vec(), ALARM_SIGNATURE_FIELD, &skip, "v1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the signature does not verify against the key registered for \"v1\""
        );
        // The snapshot stripped (the outbox under pressure): still valid.
        let mut stripped = decoded;
        stripped.snapshot_jpeg = Default::default();
        public.verify(&stripped.encode_to_vec(), ALARM_SIGNATURE_FIELD, &skip, "v1").unwrap();
        // Unsigned and signed by another key: refused.
        assert!(matches!(
            public.verify(&alarm().encode_to_vec(), ALARM_SIGNATURE_FIELD, &skip, "v1"),
            Err(SignatureError::Missing)
        ));
        let other = key(dir.path(), "other.key")
            .sign(alarm().encode_to_vec(), ALARM_SIGNATURE_FIELD, &skip)
            .unwrap();
        assert!(matches!(
            public.verify(&other, ALARM_SIGNATURE_FIELD, &skip, "v1"),
            Err(SignatureError::Invalid(_))
        ));
    }

    #[test]
    fn fields_unknown_to_the_reader_stay_covered() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "center.key");
        let mut payload =
            Receipt { agent_id: "v1".into(), alarm_ids: vec!["a".into()], ..Default::default() }
                .encode_to_vec();
        // A field from a newer contract (number 99, a string).
        payload.extend_from_slice(&[0x9a, 0x06, 2, b'h', b'i']);
        let signed = k.sign(payload, RECEIPT_SIGNATURE_FIELD, &[]).unwrap();
        let public: VerifyingKey = k.public_key().parse().unwrap();
        public.verify(&signed, RECEIPT_SIGNATURE_FIELD, &[], "center").unwrap();
        let mut changed = signed.clone();
        let at = changed.iter().position(|&b| b == b'h').unwrap();
        changed[at] = b'H';
        assert!(public.verify(&changed, RECEIPT_SIGNATURE_FIELD, &[], "center").is_err());
    }

    #[test]
    fn keys_persist_privately_and_bad_ones_are_explained() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/agent.key");
        let first = SigningKey::load_or_create(&path).unwrap().public_key();
        assert_eq!(SigningKey::load_or_create(&path).unwrap().public_key(), first);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, b"garbage").unwrap();
        let err = SigningKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("not an Ed25519 PKCS#8 key"), "{err}");
        let err = "abc".parse::<VerifyingKey>().unwrap_err().to_string();
        assert!(err.contains("expected 44 characters of base64"), "{err}");
        assert!(signed_part(&[0x0a, 5, 1], &[]).is_err(), "a truncated field is malformed");
    }
}
