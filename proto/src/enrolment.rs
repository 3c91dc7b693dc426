//! The enrolment exchange over HTTP (`POST /api/enroll`): what a box sends with its one-time
//! token and what the center answers. JSON, not protobuf: it is the one call a box makes before
//! it has a broker to speak to.

use serde::{Deserialize, Serialize};

use crate::signing::{hex, sha256};

/// The fingerprint of a center's public key (base64, as `xl-center key` prints it): the first
/// 16 hex digits of its SHA-256, in groups of four. The enrolment command the county shows
/// carries it, and the box refuses a center whose key does not match, before writing anything:
/// whoever answers on the network in the county's place cannot enrol it.
pub fn key_fingerprint(center_key: &str) -> String {
    let digest = hex(&sha256(center_key.trim().as_bytes()));
    let groups: Vec<&str> = (0..4).map(|g| &digest[4 * g..4 * g + 4]).collect();
    groups.join("-")
}

/// Whether `typed` (case and dashes do not matter) is the fingerprint of `center_key`.
pub fn fingerprint_matches(typed: &str, center_key: &str) -> bool {
    let norm = |t: &str| -> String {
        t.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect()
    };
    !norm(typed).is_empty() && norm(typed) == norm(&key_fingerprint(center_key))
}

/// Sent by the box (`xl-agent enroll`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token, as typed: case, spaces and dashes do not matter.
    pub token: String,
    /// The box's Ed25519 public key, base64 (`xl-agent key`).
    pub public_key: String,
    /// The box's host name, for the audit log.
    #[serde(default)]
    pub hostname: String,
}

/// What an enrolled box receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    /// Its agent id.
    pub agent_id: String,
    /// The broker agents connect to.
    pub mqtt_url: String,
    /// Its login at the broker, when the broker checks passwords.
    pub mqtt_username: Option<String>,
    /// Its password there (generated at enrolment; the center keeps only a hash).
    pub mqtt_password: Option<String>,
    /// The broker keeps sessions across drops (Mosquitto): the box should ask for one, so that
    /// receipts sent while its link was down still reach it.
    #[serde(default)]
    pub mqtt_persistent_session: bool,
    /// The center's public key, to trust receipts and pushed configs.
    pub center_key: String,
    /// The config pushed to this agent id so far (TOML; empty if none).
    pub config_toml: String,
    /// Its version (0: none).
    #[serde(default)]
    pub config_version: u64,
    /// The same config as the signed `AgentConfig` message the broker carries (base64), which
    /// the box keeps as the config in force: it runs from the first start, and the retained
    /// copy it then receives is already in force, not applied a second time.
    #[serde(default)]
    pub config_message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_short_typable_and_tells_keys_apart() {
        let a = "khtM2NVnebbiD1IHd9xtCBz6HzCr02Qx7vFKjdq2G+k=";
        let b = "AAAM2NVnebbiD1IHd9xtCBz6HzCr02Qx7vFKjdq2G+k=";
        let fp = key_fingerprint(a);
        assert_eq!(fp.len(), 19, "{fp}");
        assert!(fingerprint_matches(&fp.to_uppercase().replace('-', ""), a));
        assert!(!fingerprint_matches(&fp, b));
        assert!(!fingerprint_matches("", a));
    }
}
