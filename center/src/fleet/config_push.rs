//! Configuration push: the center keeps one versioned config per agent, publishes it retained
//! and signed on `{prefix}/{agent}/config` (again after every reconnect, since a broker restart
//! may lose retained messages), and records the agent's ConfigAck.

use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use xueliang_proto::endpoint::{has_password, now_ms};
use xueliang_proto::signing::{CONFIG_SIGNATURE_FIELD, SigningKey};
use xueliang_proto::topics::{Topics, is_valid_agent_id};
use xueliang_proto::v1::agent_status;
use xueliang_proto::{AgentConfig, AgentStatus, ConfigAck, Message, SCHEMA_VERSION};

use crate::store::{Store, StoreError};

/// Largest config document accepted.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Why a push was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The agent id is not a valid topic level.
    #[error(
        "{0:?} is not a valid agent id (1-64 letters, digits, '-' or '_'; not center or dispatch)"
    )]
    AgentId(String),
    /// The document is not TOML, or too big.
    #[error("the config is not valid TOML: {0}")]
    Toml(String),
    /// A camera URL carries a password, which everyone who may read the config topic would see.
    #[error(
        "{0} carries a camera password, which would travel over the broker: push the URL without it and put `CAMERA_ID = \"user:password\"` under [camera_logins] in the box's own config file"
    )]
    Secret(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signature could not be made.
    #[error("cannot sign the config: {0}")]
    Sign(String),
    /// The broker client is gone (the center is stopping).
    #[error("cannot publish the config: {0}")]
    Publish(String),
}

/// The agent's answer to a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    /// The version answered.
    pub version: u64,
    /// Whether the agent runs it.
    pub applied: bool,
    /// Why not, if it does not.
    pub reason: String,
    /// When the agent answered, UTC ms.
    pub time_ms: i64,
}

/// One agent's pushed config, as served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The agent.
    pub agent_id: String,
    /// Increases with every push.
    pub version: u64,
    /// The TOML document.
    pub config_toml: String,
    /// When it was pushed, UTC ms.
    pub issued_time_ms: i64,
    /// The agent's last answer (to this or an earlier version).
    pub ack: Option<AckRecord>,
}

/// Pushes configs to agents.
#[derive(Debug, Clone)]
pub struct ConfigPush {
    configs: sled::Tree,
    store: Store,
    client: AsyncClient,
    topics: Topics,
    key: Arc<SigningKey>,
}

fn parse(bytes: &[u8]) -> Result<ConfigRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { id: "agent config".into(), message: e.to_string() })
}

impl ConfigPush {
    /// Configs kept in `store`, published through `client`, signed with `key`.
    pub fn new(
        store: &Store,
        client: AsyncClient,
        topics: Topics,
        key: Arc<SigningKey>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            configs: store.open_tree("agent_configs")?,
            store: store.clone(),
            client,
            topics,
            key,
        })
    }

    /// Stores `config_toml` as the agent's next version and publishes it.
    pub async fn push(&self, agent: &str, config_toml: String) -> Result<ConfigRecord, PushError> {
        if !is_valid_agent_id(agent) {
            return Err(PushError::AgentId(agent.to_owned()));
        }
        if config_toml.len() > MAX_CONFIG_BYTES {
            return Err(PushError::Toml(format!(
                "{} bytes is over the limit of {MAX_CONFIG_BYTES}",
                config_toml.len()
            )));
        }
        let table = toml::from_str::<toml::Table>(&config_toml)
            .map_err(|e| PushError::Toml(e.to_string().trim_end().to_owned()))?;
        let cameras = table.get("cameras").and_then(toml::Value::as_array);
        for (i, camera) in cameras.into_iter().flatten().enumerate() {
            for key in ["url", "detect_url", "record_url"] {
                if camera.get(key).and_then(toml::Value::as_str).is_some_and(has_password) {
                    return Err(PushError::Secret(format!("cameras[{i}].{key}")));
                }
            }
        }
        let issued_time_ms = now_ms();
        let updated = self
            .configs
            .update_and_fetch(agent.as_bytes(), |old| {
                let old = old.and_then(|b| parse(b).ok());
                let record = ConfigRecord {
                    agent_id: agent.to_owned(),
                    version: old.as_ref().map_or(1, |r| r.version + 1),
                    config_toml: config_toml.clone(),
                    issued_time_ms,
                    ack: old.and_then(|r| r.ack),
                };
                serde_json::to_vec(&record).ok()
            })
            .map_err(StoreError::from)?;
        let record = updated.as_deref().map(parse).transpose()?.ok_or_else(|| {
            PushError::Store(StoreError::Corrupt {
                id: "agent config".into(),
                message: "not written".into(),
            })
        })?;
        self.store.flush().await?;
        self.publish(&record).await?;
        info!(agent, version = record.version, "config pushed");
        Ok(record)
    }

    /// The signed `AgentConfig` message of `record`, as published (enrolment hands it to a new
    /// box, which keeps it as the config in force).
    pub fn signed(&self, record: &ConfigRecord) -> Result<Vec<u8>, PushError> {
        let message = AgentConfig {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: record.agent_id.clone(),
            version: record.version,
            config_toml: record.config_toml.clone(),
            issued_time_ms: record.issued_time_ms,
            signature: Default::default(),
        };
        self.key
            .sign(message.encode_to_vec(), CONFIG_SIGNATURE_FIELD, &[])
            .map_err(|e| PushError::Sign(e.to_string()))
    }

    async fn publish(&self, record: &ConfigRecord) -> Result<(), PushError> {
        let payload = self.signed(record)?;
        self.client
            .publish(self.topics.config(&record.agent_id), QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|e| PushError::Publish(e.to_string()))
    }

    /// Says on removed box `agent`'s status topic what its last will would have: offline
    /// (retained). A broker closes a deleted login's connection without its will, and the
    /// retained "online" would stay, on the fleet page too, after every restart of the center.
    pub async fn retire(&self, agent: &str) -> Result<(), PushError> {
        let offline = AgentStatus {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: agent.to_owned(),
            state: agent_status::State::Offline as i32,
            time_ms: now_ms(),
            ..Default::default()
        };
        self.client
            .publish(self.topics.status(agent), QoS::AtLeastOnce, true, offline.encode_to_vec())
            .await
            .map_err(|e| PushError::Publish(e.to_string()))
    }

    /// Publishes every stored config again (after a (re)connect to the broker).
    pub async fn republish_all(&self) {
        for entry in self.configs.iter().values() {
            match entry.map_err(StoreError::from).and_then(|v| parse(&v)) {
                Ok(record) => {
                    if let Err(e) = self.publish(&record).await {
                        warn!(agent = %record.agent_id, "{e}");
                    }
                }
                Err(e) => warn!("{e}"),
            }
        }
    }

    /// The agent's current config record.
    pub fn get(&self, agent: &str) -> Result<Option<ConfigRecord>, StoreError> {
        self.configs.get(agent.as_bytes())?.as_deref().map(parse).transpose()
    }

    /// Records an agent's answer.
    pub fn record_ack(&self, ack: &ConfigAck) -> Result<(), StoreError> {
        let answer = AckRecord {
            version: ack.version,
            applied: ack.applied,
            reason: ack.reason.clone(),
            time_ms: ack.time_ms,
        };
        if ack.applied {
            info!(agent = %ack.agent_id, version = ack.version, "config applied by the agent");
        } else {
            warn!(agent = %ack.agent_id, version = ack.version, "config refused by the agent: {}", ack.reason);
        }
        self.configs.update_and_fetch(ack.agent_id.as_bytes(), |old| {
            let mut record = old.and_then(|b| parse(b).ok())?;
            record.ack = Some(answer.clone());
            serde_json::to_vec(&record).ok()
        })?;
        Ok(())
    }
}
