//! The registry of agents' public keys: a TOML file the administrator keeps (`xl-agent key` on
//! a box prints its line). An alarm counts only if it verifies against the key registered for
//! the agent whose topic it came on. The file is read again when it changes, so a new box is
//! accepted without restarting the center.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tracing::{error, info};
use xueliang_proto::signing::VerifyingKey;

/// Why the key file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// It cannot be read or created.
    #[error("agent keys {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// It does not parse, or a key is malformed.
    #[error("agent keys {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

const TEMPLATE: &str = "\
# Public keys of the agents whose alarms this center accepts, one line per box:
#   village-7 = \"<44 characters of base64>\"
# On the box, `xl-agent key --config /etc/xueliang/agent.toml` prints its line.
# The center reads this file again when it changes.
[agents]
";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    agents: BTreeMap<String, String>,
}

struct Loaded {
    keys: HashMap<String, VerifyingKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The agents' keys, from their file.
#[derive(Debug)]
pub struct AgentKeys {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} keys", self.keys.len())
    }
}

/// How often at most the file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

fn read(path: &Path) -> Result<(HashMap<String, VerifyingKey>, Option<SystemTime>), KeysError> {
    let io = |error| KeysError::Io { path: path.to_owned(), error };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let invalid = |message: String| KeysError::Invalid { path: path.to_owned(), message };
    let file: KeysFile = toml::from_str(&text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
    let mut keys = HashMap::new();
    for (agent, key) in file.agents {
        let key = key.parse().map_err(|e| invalid(format!("agents.{agent}: {e}")))?;
        keys.insert(agent, key);
    }
    Ok((keys, modified))
}

impl AgentKeys {
    /// Reads the registry at `path`, creating an empty, commented one if there is none.
    pub fn open(path: &Path) -> Result<Self, KeysError> {
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|error| KeysError::Io { path: path.to_owned(), error })?;
            }
            std::fs::write(path, TEMPLATE).map_err(|error| KeysError::Io { path: path.to_owned(), error })?;
        }
        let (keys, modified) = read(path)?;
        info!("{} agent keys registered in {}", keys.len(), path.display());
        Ok(Self { path: path.to_owned(), loaded: Mutex::new(Loaded { keys, modified, checked: Instant::now() }) })
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key registered for `agent`, reading the file again if it changed. An edit that
    /// breaks the file is logged and the keys read before stay in force.
    pub fn get(&self, agent: &str) -> Option<VerifyingKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= RECHECK {
            loaded.checked = Instant::now();
            let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
            if modified != loaded.modified {
                match read(&self.path) {
                    Ok((keys, modified)) => {
                        info!("{} agent keys registered in {} (file changed)", keys.len(), self.path.display());
                        *loaded = Loaded { keys, modified, checked: Instant::now() };
                    }
                    Err(e) => {
                        error!("{e}; the keys read before stay in force");
                        loaded.modified = modified;
                    }
                }
            }
        }
        loaded.keys.get(agent).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    #[test]
    fn a_new_registry_is_a_commented_template_and_edits_are_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-keys.toml");
        let keys = AgentKeys::open(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("xl-agent key"));
        assert!(keys.get("village-7").is_none());
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        std::fs::write(&path, format!("{TEMPLATE}village-7 = \"{KEY}\"\n")).unwrap();
        assert_eq!(keys.get("village-7"), Some(KEY.parse().unwrap()));
        // A broken edit keeps the keys in force.
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        std::fs::write(&path, "[agents]\nvillage-7 = \"short\"\n").unwrap();
        assert!(keys.get("village-7").is_some());
    }

    #[test]
    fn a_bad_key_names_the_agent_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-keys.toml");
        std::fs::write(&path, "[agents]\nvillage-7 = \"short\"\n").unwrap();
        let err = AgentKeys::open(&path).unwrap_err().to_string();
        assert!(err.contains("agents.village-7: \"short\" is not a public key"), "{err}");
    }
}
