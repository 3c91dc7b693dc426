//! Configuration pushed by the center: checked for the center's signature and this agent's id,
//! answered with a ConfigAck, and kept on disk once applied so the box runs it after a restart
//! even while the broker is out of reach.

use std::path::{Path, PathBuf};

use tracing::warn;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{CONFIG_SIGNATURE_FIELD, SignatureError, VerifyingKey};
use xueliang_proto::{
    AgentConfig as Pushed, ConfigAck, DecodeError, SCHEMA_VERSION, decode_limited,
};

use crate::config::{AgentConfig, ConfigError};

/// Why a pushed config was refused (the reason goes back to the center in the ConfigAck).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The box has no center key to check the push with.
    #[error("this box has no mqtt.center_key, so it cannot tell a pushed config from a forged one")]
    NoCenterKey,
    /// The signature is missing or wrong.
    #[error("not signed by the center: {0}")]
    Signature(#[from] SignatureError),
    /// The payload is not an AgentConfig.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The push names another agent.
    #[error("the config is for agent {0:?}")]
    OtherAgent(String),
    /// The TOML is invalid for this box: every problem, with its option.
    #[error("{0}")]
    Config(String),
    /// The config is valid but the model or a rule cannot run on this box.
    #[error("{0}")]
    Unusable(String),
}

/// The agent's side of configuration push.
#[derive(Debug)]
pub struct PushedConfigs {
    agent_id: String,
    center_key: Option<VerifyingKey>,
    saved: PathBuf,
}

impl PushedConfigs {
    /// Pushes for the agent of `local` (whose center key checks them).
    pub fn new(local: &AgentConfig) -> Self {
        Self {
            agent_id: local.agent_id.clone(),
            // A config that passed validation holds a valid key or none.
            center_key: local.mqtt.center_key().ok().flatten(),
            saved: local.data_dir.join("pushed-config.pb"),
        }
    }

    /// Checks a pushed message: signed by the center, for this agent.
    pub fn open(&self, payload: &[u8]) -> Result<Pushed, PushError> {
        let key = self.center_key.as_ref().ok_or(PushError::NoCenterKey)?;
        key.verify(payload, CONFIG_SIGNATURE_FIELD, &[], "the center")?;
        let pushed: Pushed = decode_limited(payload)?;
        if pushed.agent_id != self.agent_id {
            return Err(PushError::OtherAgent(pushed.agent_id));
        }
        Ok(pushed)
    }

    /// `local` with the pushed config applied; `Err` says why it cannot be.
    pub fn merge(local: &AgentConfig, pushed: &Pushed) -> Result<AgentConfig, PushError> {
        let origin = PathBuf::from(format!("pushed config version {}", pushed.version));
        local.with_pushed(&pushed.config_toml, &origin).map_err(|e| {
            PushError::Config(match e {
                ConfigError::Invalid { problems, .. } => {
                    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                }
                ConfigError::Syntax { message, .. } => message,
                other => other.to_string(),
            })
        })
    }

    /// The config in force on this box: `local` with the kept pushed config applied (and its
    /// version), or `local` alone. For the installer's tools, which must see what the agent runs.
    pub fn in_force(local: &AgentConfig) -> (AgentConfig, Option<u64>) {
        match Self::new(local)
            .load_saved()
            .and_then(|p| Self::merge(local, &p).ok().map(|c| (c, p.version)))
        {
            Some((config, version)) => (config, Some(version)),
            None => (local.clone(), None),
        }
    }

    /// Keeps the applied message (signed, as received) for the next start.
    pub fn save(&self, payload: &[u8]) -> std::io::Result<()> {
        let tmp = self.saved.with_extension("pb.tmp");
        std::fs::write(&tmp, payload)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.saved)
    }

    /// The config applied before the last stop, checked again, if there is one.
    pub fn load_saved(&self) -> Option<Pushed> {
        let payload = match std::fs::read(&self.saved) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!("cannot read {}: {e}; running the local config", self.saved.display());
                return None;
            }
        };
        self.open(&payload)
            .inspect_err(|e| {
                warn!("{} is unusable ({e}); running the local config", self.saved.display())
            })
            .ok()
    }

    /// Where the applied config is kept.
    pub fn saved_path(&self) -> &Path {
        &self.saved
    }

    /// The answer to version `version`: applied, or refused with `reason`.
    pub fn ack(&self, version: u64, result: Result<(), String>) -> ConfigAck {
        ConfigAck {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: self.agent_id.clone(),
            version,
            applied: result.is_ok(),
            reason: result.err().unwrap_or_default(),
            time_ms: now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueliang_proto::Message;
    use xueliang_proto::signing::SigningKey;

    fn local(dir: &Path, center_key: Option<&str>) -> AgentConfig {
        let key = center_key.map_or(String::new(), |k| format!("center_key = \"{k}\"\n"));
        let toml = format!(
            "agent_id = \"v7\"\ndata_dir = \"data\"\n[mqtt]\n{key}[model]\npath = \"m.onnx\"\n\
             [[cameras]]\nid = \"gate\"\nurl = \"rtsp://10.0.0.5/1\"\n"
        );
        AgentConfig::parse(&toml, &dir.join("agent.toml")).unwrap()
    }

    fn signed(center: &SigningKey, agent: &str, version: u64) -> Vec<u8> {
        let m = Pushed {
            agent_id: agent.into(),
            version,
            config_toml: "[[cameras]]\nid = \"pond\"\nurl = \"rtsp://10.0.0.6/1\"\n".into(),
            ..Default::default()
        };
        center.sign(m.encode_to_vec(), CONFIG_SIGNATURE_FIELD, &[]).unwrap()
    }

    #[test]
    fn only_the_centers_signed_config_for_this_agent_is_taken_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let center = SigningKey::load_or_create(&dir.path().join("center.key")).unwrap();
        let impostor = SigningKey::load_or_create(&dir.path().join("impostor.key")).unwrap();
        let remote = PushedConfigs::new(&local(dir.path(), Some(&center.public_key())));
        std::fs::create_dir_all(dir.path().join("data")).unwrap();

        let good = signed(&center, "v7", 3);
        let pushed = remote.open(&good).unwrap();
        assert_eq!(
            PushedConfigs::merge(&local(dir.path(), None), &pushed).unwrap().cameras[0].id,
            "pond"
        );
        assert!(matches!(remote.open(&signed(&impostor, "v7", 4)), Err(PushError::Signature(_))));
        assert_eq!(
            remote.open(&signed(&center, "v8", 4)).unwrap_err().to_string(),
            "the config is for agent \"v8\""
        );
        let unkeyed = PushedConfigs::new(&local(dir.path(), None));
        assert!(matches!(unkeyed.open(&good), Err(PushError::NoCenterKey)));

        // Kept for the next start; a file changed on disk is not run.
        assert!(remote.load_saved().is_none());
        remote.save(&good).unwrap();
        assert_eq!(remote.load_saved().unwrap().version, 3);
        let mut tampered = good.clone();
        let at = tampered.iter().position(|&b| b == b'p').unwrap();
        tampered[at] = b'q';
        std::fs::write(remote.saved_path(), tampered).unwrap();
        assert!(remote.load_saved().is_none());
    }
}
