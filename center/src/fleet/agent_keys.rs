//! The registry of agents' public keys: a TOML file the administrator keeps (`xl-agent key` on
//! a box prints its line). An alarm counts only if it verifies against the key registered for
//! the agent whose topic it came on. The file is read again when it changes, so a new box is
//! accepted without restarting the center.
//!
//! The same file holds the agents' passwords at the embedded broker, as PBKDF2 hashes
//! (`xl-center broker-password AGENT` makes one), used when the broker requires them.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::pbkdf2;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Deserialize;
use tracing::info;
use xueliang_proto::signing::VerifyingKey;

use crate::watched_file::{WatchError, WatchedFile};

const TEMPLATE: &str = "\
# With `xl-center serve --mqtt-passwords`, each agent's password at the embedded broker, hashed:
#   village-7 = \"pbkdf2-sha256$...\"   (`xl-center broker-password village-7` makes one)
[passwords]

# Public keys of the agents whose alarms this center accepts, one line per box:
#   village-7 = \"<44 characters of base64>\"
# On the box, `xl-agent key --config /etc/xueliang/agent.toml` prints its line; it can be
# appended to this file as it is. The center reads this file again when it changes.
[agents]
";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    agents: BTreeMap<String, String>,
    #[serde(default)]
    passwords: BTreeMap<String, String>,
}

/// The registry's content.
struct Registry {
    keys: HashMap<String, VerifyingKey>,
    passwords: HashMap<String, PasswordHash>,
}

/// The agents' keys, from their file.
#[derive(Debug)]
pub struct AgentKeys {
    file: WatchedFile<Registry>,
    /// Serializes the center's own edits (enrolments).
    writing: std::sync::Mutex<()>,
}

/// A PBKDF2-HMAC-SHA256 password hash: `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Iterations of new hashes: passwords are generated (high entropy), and a broker restart makes
/// every box log in at once.
const ITERATIONS: u32 = 10_000;

impl PasswordHash {
    /// A fresh hash of `password`.
    pub fn new(password: &str) -> Self {
        let mut salt = vec![0u8; 16];
        let _ = SystemRandom::new().fill(&mut salt);
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        let mut hash = vec![0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &mut hash,
        );
        Self { iterations, salt, hash }
    }

    /// Whether `password` is the one hashed.
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.hash)
        )
    }
}

impl std::str::FromStr for PasswordHash {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not a password hash (`xl-center broker-password` makes one)");
        let mut parts = s.split('$');
        let (Some("pbkdf2-sha256"), Some(n), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            iterations: n.parse().map_err(|_| bad())?,
            salt: B64.decode(salt).map_err(|_| bad())?,
            hash: B64.decode(hash).map_err(|_| bad())?,
        })
    }
}

fn parse(text: &str) -> Result<Registry, String> {
    let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let mut keys = HashMap::new();
    for (agent, key) in file.agents {
        keys.insert(agent.clone(), key.parse().map_err(|e| format!("agents.{agent}: {e}"))?);
    }
    let mut passwords = HashMap::new();
    for (agent, hash) in file.passwords {
        passwords
            .insert(agent.clone(), hash.parse().map_err(|e| format!("passwords.{agent}: {e}"))?);
    }
    Ok(Registry { keys, passwords })
}

impl AgentKeys {
    /// Reads the registry at `path`, creating an empty, commented one if there is none.
    pub fn open(path: &Path) -> Result<Self, WatchError> {
        let file = WatchedFile::open(path, Some(TEMPLATE), parse)?;
        info!("{} agent keys registered in {}", file.current().keys.len(), path.display());
        Ok(Self { file, writing: std::sync::Mutex::new(()) })
    }

    /// Registers `agent` with `key` (and its broker password's hash), replacing what was
    /// registered for it (a box replaced on site enrols again). The file is edited line by line,
    /// so the administrator's comments and order stay, and replaced whole (write, then rename).
    pub fn register(
        &self,
        agent: &str,
        key: &str,
        password: Option<&PasswordHash>,
    ) -> std::io::Result<()> {
        self.edit(|text| {
            let text = set_entry(text, "agents", agent, Some(key));
            match password {
                Some(hash) => set_entry(&text, "passwords", agent, Some(&hash.to_string())),
                None => text,
            }
        })?;
        info!(agent, "registered in {}", self.path().display());
        Ok(())
    }

    /// Removes `agent`'s key and password: nothing it sends is stored any more, and it cannot
    /// log in to the embedded broker.
    pub fn unregister(&self, agent: &str) -> std::io::Result<()> {
        self.edit(|text| {
            set_entry(&set_entry(text, "agents", agent, None), "passwords", agent, None)
        })?;
        info!(agent, "removed from {}", self.path().display());
        Ok(())
    }

    /// Replaces the file with `change` of its text (write, then rename), and reads it again.
    fn edit(&self, change: impl FnOnce(&str) -> String) -> std::io::Result<()> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.file.path();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TEMPLATE.to_owned(),
            Err(e) => return Err(e),
        };
        let tmp = path.with_extension("toml.new");
        std::fs::write(&tmp, change(&text))?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)?;
        // At once, not at the next periodic check: the box logs in to the broker right away.
        self.file.reload().map_err(std::io::Error::other)
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The key registered for `agent`, reading the file again if it changed. An edit that
    /// breaks the file is logged and the keys read before stay in force.
    pub fn get(&self, agent: &str) -> Option<VerifyingKey> {
        self.file.current().keys.get(agent).cloned()
    }

    /// The agents with a registered key.
    pub fn agents(&self) -> Vec<String> {
        let mut agents: Vec<String> = self.file.current().keys.keys().cloned().collect();
        agents.sort();
        agents
    }

    /// Whether `password` is the one registered for `agent` at the embedded broker.
    pub fn check_password(&self, agent: &str, password: &str) -> bool {
        self.file.current().passwords.get(agent).is_some_and(|h| h.verify(password))
    }
}

/// `text` with `agent = "value"` as the only entry for `agent` in table `[table]` (added, with
/// the table if need be), or with none if `value` is `None`.
fn set_entry(text: &str, table: &str, agent: &str, value: Option<&str>) -> String {
    let header = format!("[{table}]");
    let mut out = Vec::new();
    let mut current = String::new();
    let mut placed = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed.to_owned();
        }
        let is_entry = current == header
            && trimmed.split_once('=').is_some_and(|(k, _)| k.trim().trim_matches('"') == agent);
        if is_entry {
            continue;
        }
        out.push(line.to_owned());
        if let Some(value) = value.filter(|_| trimmed == header && !placed) {
            out.push(format!("{agent} = \"{value}\""));
            placed = true;
        }
    }
    if let Some(value) = value.filter(|_| !placed) {
        out.push(header);
        out.push(format!("{agent} = \"{value}\""));
    }
    out.join("\n") + "\n"
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
        std::thread::sleep(crate::watched_file::RECHECK + std::time::Duration::from_millis(50));
        std::fs::write(&path, format!("{TEMPLATE}village-7 = \"{KEY}\"\n")).unwrap();
        assert_eq!(keys.get("village-7"), Some(KEY.parse().unwrap()));
        assert_eq!(keys.agents(), ["village-7"]);
    }

    #[test]
    fn broker_passwords_are_checked_against_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-keys.toml");
        let hash = PasswordHash::new("s3cret");
        assert_eq!(hash.to_string().parse::<PasswordHash>().unwrap(), hash);
        std::fs::write(&path, format!("[passwords]\nvillage-7 = \"{hash}\"\n")).unwrap();
        let keys = AgentKeys::open(&path).unwrap();
        assert!(keys.check_password("village-7", "s3cret"));
        assert!(!keys.check_password("village-7", "guess"));
        assert!(!keys.check_password("village-8", "s3cret"));
        std::fs::write(&path, "[passwords]\nvillage-7 = \"plain\"\n").unwrap();
        let err = AgentKeys::open(&path).unwrap_err().to_string();
        assert!(err.contains("passwords.village-7: \"plain\" is not a password hash"), "{err}");
    }

    #[test]
    fn registering_replaces_an_agents_entries_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-keys.toml");
        std::fs::write(&path, "# county boxes\n[agents]\nvillage-1 = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\" # the school\nvillage-7 = \"old\"\n").unwrap();
        let keys = AgentKeys::open(&path).unwrap_err();
        assert!(
            keys.to_string().contains("village-7"),
            "an unusable old key is refused at open: {keys}"
        );
        std::fs::write(
            &path,
            format!("# county boxes\n[agents]\nvillage-1 = \"{KEY}\" # the school\n"),
        )
        .unwrap();
        let keys = AgentKeys::open(&path).unwrap();
        let hash = PasswordHash::new("pw");
        keys.register("village-7", KEY, Some(&hash)).unwrap();
        keys.register("village-7", KEY, Some(&hash)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# county boxes\n[agents]\nvillage-7 = "), "{text}");
        assert!(text.contains("# the school"), "{text}");
        assert_eq!(text.matches("village-7 =").count(), 2, "one key and one password: {text}");
        assert_eq!(keys.get("village-7"), Some(KEY.parse().unwrap()), "in force at once");
        assert!(keys.check_password("village-7", "pw"));
        keys.unregister("village-7").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("village-7"), "{text}");
        assert!(text.contains("village-1 = ") && text.contains("# the school"), "{text}");
        assert!(keys.get("village-7").is_none() && !keys.check_password("village-7", "pw"));
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
