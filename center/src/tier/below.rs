//! The centers of the tier below that forward their events here, each by its name and its key
//! (`below.toml`), and where their API is, for the full pictures of their events:
//!
//! ```toml
//! [centers]
//! 330102 = { key = "Jm7uP1vCqW1y6wlx6pDqZk1vO1e1N4q8bDkB7lq5r2g=", url = "https://county-a.example:8443", ca = "/etc/xueliang/tls/county-a-ca.pem" }
//! 330103 = "3q2+7w0L5Lx2xXj1sQyIh1jWc1kq8Wm2m0eO3b2Gk6A="   # its key only: no pictures
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use xueliang_proto::signing::VerifyingKey;
use xueliang_proto::topics::is_valid_id;

use crate::watched_file::WatchError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    centers: BTreeMap<String, Entry>,
}

/// A center's line: its key, or its key and its API.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Key(String),
    Full(Full),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    key: String,
    url: Option<String>,
    ca: Option<PathBuf>,
}

/// A center of the tier below.
#[derive(Debug, Clone)]
struct Center {
    key: VerifyingKey,
    /// Its API's address and a client trusting its certificate, if pictures are fetched there.
    api: Option<(String, reqwest::Client)>,
}

/// The centers of the tier below and their keys.
#[derive(Debug, Clone, Default)]
pub struct Below {
    centers: BTreeMap<String, Center>,
}

impl Below {
    /// Reads `path`; none when it is absent.
    pub fn open(path: &Path) -> Result<Self, WatchError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(error) => return Err(WatchError::Io { path: path.to_owned(), error }),
        };
        let invalid = |message: String| WatchError::Invalid { path: path.to_owned(), message };
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut centers = BTreeMap::new();
        for (name, entry) in file.centers {
            if !is_valid_id(&name) {
                return Err(invalid(format!(
                    "center {name:?}: a name is 1-64 letters, digits, '-' or '_' (e.g. its division code)"
                )));
            }
            let Full { key, url, ca } = match entry {
                Entry::Key(key) => Full { key, url: None, ca: None },
                Entry::Full(full) => full,
            };
            let key = key.parse().map_err(|e| {
                invalid(format!("center {name}: {e} (write the key `xl-center key` prints there)"))
            })?;
            let api = match url {
                Some(url) => Some((
                    url.trim_end_matches('/').to_owned(),
                    client(ca.as_deref()).map_err(|e| invalid(format!("center {name}: {e}")))?,
                )),
                None if ca.is_some() => {
                    return Err(invalid(format!("center {name}: a ca without the url it is for")));
                }
                None => None,
            };
            centers.insert(name, Center { key, api });
        }
        Ok(Self { centers })
    }

    /// The key of center `name`, if it forwards here.
    pub fn key(&self, name: &str) -> Option<&VerifyingKey> {
        self.centers.get(name).map(|c| &c.key)
    }

    /// The API of center `name` (its address, and a client for it), if pictures are fetched
    /// there.
    pub fn api(&self, name: &str) -> Option<&(String, reqwest::Client)> {
        self.centers.get(name)?.api.as_ref()
    }

    /// Whether no center forwards here.
    pub fn is_empty(&self) -> bool {
        self.centers.is_empty()
    }

    /// The centers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.centers.keys().map(String::as_str)
    }
}

/// A client for a center's API, trusting the CA in `ca` (PEM) besides the usual roots.
fn client(ca: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("ca {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("ca {}: not a PEM certificate ({e})", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_keys_and_says_what_is_wrong() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("below.toml");
        assert!(Below::open(&path).expect("absent is none").is_empty());
        let key = "Jm7uP1vCqW1y6wlx6pDqZk1vO1e1N4q8bDkB7lq5r2g=";
        std::fs::write(&path, format!("[centers]\n330102 = \"{key}\"\n")).expect("written");
        let below = Below::open(&path).expect("valid");
        assert_eq!(below.names().collect::<Vec<_>>(), ["330102"]);
        assert!(below.key("330102").is_some() && below.key("330103").is_none());
        std::fs::write(&path, "[centers]\n\"a/b\" = \"x\"\n").expect("written");
        let e = Below::open(&path).expect_err("a bad name").to_string();
        assert!(e.contains("\"a/b\"") && e.contains("division code"), "{e}");
        std::fs::write(&path, "[centers]\n330102 = \"not a key\"\n").expect("written");
        let e = Below::open(&path).expect_err("a bad key").to_string();
        assert!(e.contains("330102") && e.contains("xl-center key"), "{e}");
        let full = format!("[centers]\n330102 = {{ key = \"{key}\", url = \"http://c:8443/\" }}\n");
        std::fs::write(&path, full).expect("written");
        let below = Below::open(&path).expect("valid");
        assert_eq!(below.api("330102").map(|a| a.0.as_str()), Some("http://c:8443"));
        let ca = format!(
            "[centers]\n330102 = {{ key = \"{key}\", url = \"https://c\", ca = \"/none.pem\" }}\n"
        );
        std::fs::write(&path, ca).expect("written");
        let e = Below::open(&path).expect_err("a missing CA").to_string();
        assert!(e.contains("/none.pem"), "{e}");
    }
}
