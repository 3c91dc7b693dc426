//! The enrolment exchange over HTTP (`POST /api/enroll`): what a box sends with its one-time
//! token and what the center answers. JSON, not protobuf: it is the one call a box makes before
//! it has a broker to speak to.

use serde::{Deserialize, Serialize};

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
