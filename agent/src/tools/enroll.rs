//! `xl-agent enroll`: registers this box with the county center using a one-time token, and
//! writes what the center answers into the box's config: its agent id, the broker's URL and this
//! box's password there, the center's key; the config the center has for it is kept as a pushed
//! config (signed), as if it had arrived over MQTT.
//!
//! The config file is edited, not rewritten: an installer's comments and cameras stay. It holds
//! a broker password, so it is written mode 0640, readable by the group of the data directory
//! (the service's user); the key the box made is handed to the data directory's owner, as the
//! service runs as that user while enrolment runs as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, value};
pub use xueliang_proto::enrolment::Enrolled;
use xueliang_proto::enrolment::{EnrollRequest, fingerprint_matches, key_fingerprint};

use crate::config::AgentConfig;
use crate::delivery::PushedConfigs;
use crate::evidence::Sealer;

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The center could not be reached.
    #[error(
        "cannot reach the center at {url}: {error}; check the address and that this box reaches the county network"
    )]
    Unreachable {
        /// The address used.
        url: String,
        /// What went wrong.
        error: String,
    },
    /// The center that answered is not the one the command names.
    #[error(
        "the center at {url} has key fingerprint {found}, not {expected} as the enrolment command says: nothing was written. Check the address (another machine may be answering in the county's place) or ask the county's administrator for the command again"
    )]
    WrongCenter {
        /// The address used.
        url: String,
        /// The fingerprint the command gave.
        expected: String,
        /// The fingerprint of the key that answered.
        found: String,
    },
    /// The county CA given could not be used.
    #[error(
        "--center-ca {path}: {error}; give the county CA (ca.pem, made on the center by deploy/tls/make-certs.sh)"
    )]
    Ca {
        /// The file given.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The center refused (a used, expired or mistyped token, …).
    #[error("the center refused the enrolment: {0}")]
    Refused(String),
    /// The existing config does not parse.
    #[error("{path}: {error}; fix it or move it aside, then enrol again")]
    Config {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// A file could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The key could not be made.
    #[error(transparent)]
    Key(#[from] xueliang_proto::signing::SignatureError),
}

/// What to enrol.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The center's HTTP address, e.g. `https://10.20.0.2:8443`.
    pub center: String,
    /// The county CA that signed the center's HTTPS certificate (and the broker's): trusted
    /// besides the system's, and written as `mqtt.tls_ca` when the broker is `mqtts://`.
    pub center_ca: Option<PathBuf>,
    /// The token from the county's administrator.
    pub token: String,
    /// The fingerprint of the center's key from the same command; `None` (a lab's
    /// `--insecure`) trusts whichever center answers.
    pub center_key_fingerprint: Option<String>,
    /// The config file to write (edited if it exists).
    pub config: PathBuf,
    /// The data directory (for the key); by default the config's, else `/var/lib/xueliang`.
    pub data_dir: Option<PathBuf>,
}

/// A config for a box that has none yet: the installed model, the data directory.
const NEW_CONFIG: &str = r#"# xl-agent configuration, written by `xl-agent enroll`; see deploy/agent.example.toml for
# every option. Cameras, zones and rules may also come from the county center (pushed configs).
data_dir = "/var/lib/xueliang"
timezone = "Asia/Shanghai"

[model]
path = "/usr/share/xueliang/models/nanodet_g416_coco.onnx"
"#;

impl EnrollOptions {
    /// Enrols: makes or reads the box's key, redeems the token, writes the config.
    pub async fn run(&self) -> Result<Enrolled, EnrollError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |error| EnrollError::Io { path, error }
        };
        let existing = match std::fs::read_to_string(&self.config) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&self.config)(e)),
        };
        let mut doc: DocumentMut = existing.as_deref().unwrap_or(NEW_CONFIG).parse().map_err(
            |e: toml_edit::TomlError| EnrollError::Config {
                path: self.config.clone(),
                error: e.to_string(),
            },
        )?;
        let base = self.config.parent().unwrap_or(Path::new("/"));
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => doc
                .get("data_dir")
                .and_then(Item::as_str)
                .map_or_else(|| PathBuf::from("/var/lib/xueliang"), |d| base.join(d)),
        };
        std::fs::create_dir_all(&data_dir).map_err(io(&data_dir))?;
        let sealer = Sealer::open(&data_dir)?;
        hand_over(&data_dir).map_err(io(&data_dir))?;

        let url = format!("{}/api/enroll", self.center.trim_end_matches('/'));
        let client = county_client(self.center_ca.as_deref()).map_err(|error| EnrollError::Ca {
            path: self.center_ca.clone().unwrap_or_default(),
            error,
        })?;
        let hint = match self.center_ca {
            None if self.center.starts_with("https:") => {
                "; a center whose certificate the county CA signed needs --center-ca /etc/xueliang/ca.pem"
            }
            _ => "",
        };
        let unreachable = |error: String| EnrollError::Unreachable {
            url: self.center.clone(),
            error: format!("{error}{hint}"),
        };
        let hostname =
            std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_owned();
        let public_key = sealer.public_key();
        let response = client
            .post(&url)
            .timeout(std::time::Duration::from_secs(20))
            .json(&EnrollRequest { token: self.token.clone(), public_key, hostname })
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}: {body}"));
            return Err(EnrollError::Refused(message));
        }
        let enrolled: Enrolled = response.json().await.map_err(|e| {
            unreachable(format!("not an enrolment answer ({e}): is this the center's address?"))
        })?;
        if let Some(expected) = &self.center_key_fingerprint
            && !fingerprint_matches(expected, &enrolled.center_key)
        {
            return Err(EnrollError::WrongCenter {
                url: self.center.clone(),
                expected: expected.clone(),
                found: key_fingerprint(&enrolled.center_key),
            });
        }

        doc["agent_id"] = value(enrolled.agent_id.clone());
        doc["center_url"] = value(self.center.trim_end_matches('/').to_owned());
        if self.data_dir.is_some() || doc.get("data_dir").is_none() {
            doc["data_dir"] = value(data_dir.display().to_string());
        }
        if !doc.contains_table("mqtt") {
            doc["mqtt"] = toml_edit::table();
        }
        let mqtt = &mut doc["mqtt"];
        mqtt["url"] = value(enrolled.mqtt_url.clone());
        mqtt["center_key"] = value(enrolled.center_key.clone());
        if let Some(user) = &enrolled.mqtt_username {
            mqtt["username"] = value(user.clone());
        }
        if let Some(password) = &enrolled.mqtt_password {
            mqtt["password"] = value(password.clone());
        }
        if enrolled.mqtt_persistent_session {
            mqtt["persistent_session"] = value(true);
        }
        if let Some(ca) = &self.center_ca
            && enrolled.mqtt_url.starts_with("mqtts://")
            && mqtt.get("tls_ca").is_none()
        {
            let ca = std::path::absolute(ca).map_err(io(ca))?;
            mqtt["tls_ca"] = value(ca.display().to_string());
        }
        let text = doc.to_string();
        write_private(&self.config, &text, &data_dir).map_err(io(&self.config))?;
        if let Some(message) = &enrolled.config_message {
            keep_pushed(&text, &self.config, message)?;
            hand_over(&data_dir).map_err(io(&data_dir))?;
        }
        Ok(enrolled)
    }
}

/// An HTTP client for the county's center that trusts the county CA `ca` (PEM) besides the
/// system's roots.
pub fn county_client(ca: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| e.to_string())?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("not a PEM certificate ({e})"))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Keeps the county's config for this box (the signed message, checked against the center's
/// key just received) where the agent keeps a pushed config: it runs from the first start, and
/// the retained copy it receives on connecting is already in force.
fn keep_pushed(config_text: &str, config_path: &Path, message: &str) -> Result<(), EnrollError> {
    let bad = |error: String| {
        EnrollError::Refused(format!("the center's config for this box is unusable: {error}"))
    };
    let config =
        AgentConfig::parse_unchecked(config_text, config_path).map_err(|e| bad(e.to_string()))?;
    let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, message)
        .map_err(|e| bad(e.to_string()))?;
    let remote = PushedConfigs::new(&config);
    remote.open(&payload).map_err(|e| bad(e.to_string()))?;
    remote
        .save(&payload)
        .map_err(|error| EnrollError::Io { path: remote.saved_path().to_owned(), error })
}

/// A reqwest error with its causes (the first line alone says only "error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Gives the files of `dir` to `dir`'s owner (enrolment runs as root; the service does not).
fn hand_over(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid()))?;
        }
    }
    Ok(())
}

/// Writes `text` to `path` (then renames it into place), mode 0640, group of `data_dir`.
fn write_private(path: &Path, text: &str, data_dir: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o640))?;
    let gid = std::fs::metadata(data_dir)?.gid();
    std::os::unix::fs::chown(&tmp, None, Some(gid))?;
    std::fs::rename(&tmp, path)
}
