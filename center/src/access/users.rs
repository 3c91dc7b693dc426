//! The center's user accounts: `users.toml` in the data directory, written only by the
//! `xl-center user` commands (through [`add_user`] and [`set_password`]) and read by the running
//! center, which notices changes within a [`RECHECK`](crate::watched_file::RECHECK) so a new user can log in without a restart.
//! Passwords are stored as argon2id PHC strings.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::watched_file::{WatchError, WatchedFile};

const HEADER: &str = "\
# Users of the xueliang center. Edit with `xl-center user add|passwd|list`; passwords are argon2id hashes.
# Those commands rewrite this file: comments other than this header are not kept.

";

const MIN_PASSWORD: usize = 10;

/// What a user may do at the center.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including user accounts.
    Admin,
    /// A 综治中心 duty officer: all alarms and the workflow actions on them.
    DutyOfficer,
    /// A police station's or other responder unit's user: only alarms dispatched to its unit.
    Police,
    /// Fleet and configuration, no alarm pictures.
    Installer,
}

const ROLES: [Role; 4] = [Role::Admin, Role::DutyOfficer, Role::Police, Role::Installer];

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::DutyOfficer => "duty_officer",
            Role::Police => "police",
            Role::Installer => "installer",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = UsersError;

    fn from_str(s: &str) -> Result<Self, UsersError> {
        ROLES
            .into_iter()
            .find(|r| r.to_string() == s)
            .ok_or_else(|| UsersError::UnknownRole(s.to_owned()))
    }
}

/// A user account, without its password hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct User {
    /// The login name (the key in the file).
    pub login: String,
    /// The display name; the login when none was given.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The responder unit of a police user; `None` for the other roles.
    pub unit: Option<String>,
}

/// Why a user cannot be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The login is taken.
    #[error("user {0:?} exists already; use `xl-center user passwd {0}`")]
    Exists(String),
    /// No user has this login.
    #[error("no user {login:?} (users: {users})")]
    NoUser {
        /// The login concerned.
        login: String,
        /// The users file.
        users: String,
    },
    /// A police user was given no unit.
    #[error("a police user needs --unit (the responder unit it belongs to)")]
    NeedsUnit,
    /// A unit was given for a role that has none.
    #[error("only police users belong to a unit; leave out --unit for role {0}")]
    UnitNotAllowed(Role),
    /// The password is too short.
    #[error("passwords must have at least {MIN_PASSWORD} characters")]
    ShortPassword,
    /// A login (`what` = "login") or unit has characters or a length that is not allowed.
    #[error("{what} {name:?} may only use letters, digits, '-', '_' and '.' (1-64)")]
    BadName {
        /// What the name is of.
        what: &'static str,
        /// The name refused.
        name: String,
    },
    /// The role is not one of the known ones.
    #[error("unknown role {0:?} (roles: admin, duty_officer, police, installer)")]
    UnknownRole(String),
    /// The users file cannot be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The users file exists but does not parse; it must be fixed before it can be changed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Hashing failed (no randomness for the salt, or argon2 refused the input).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// One `[users.LOGIN]` table of the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    password: String,
}

/// The file as a whole. It is read with raw tables as `T`, so an error can name its user.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOf<T> {
    #[serde(default)]
    users: BTreeMap<String, T>,
}

/// A parsed account: the user and their PHC hash string (checked to parse when read).
struct Account {
    user: User,
    hash: String,
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check(login: &str, role: Role, unit: Option<&str>) -> Result<(), UsersError> {
    if !valid_name(login) {
        return Err(UsersError::BadName { what: "login", name: login.to_owned() });
    }
    match (role, unit) {
        (Role::Police, None) => Err(UsersError::NeedsUnit),
        (Role::Police, Some(u)) if !valid_name(u) => {
            Err(UsersError::BadName { what: "unit", name: u.to_owned() })
        }
        (Role::Police, Some(_)) => Ok(()),
        (_, Some(_)) => Err(UsersError::UnitNotAllowed(role)),
        (_, None) => Ok(()),
    }
}

/// The file's entries, each checked; an error names the user it is in. The commands that
/// rewrite the file skip checking the `hashes`, so that `passwd` can replace a broken one.
fn parse_entries(text: &str, hashes: bool) -> Result<BTreeMap<String, Entry>, String> {
    let raw: FileOf<toml::Table> =
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let mut entries = BTreeMap::new();
    for (login, table) in raw.users {
        let at = |e: &dyn std::fmt::Display| {
            format!("users.{login}: {}", e.to_string().trim_end().replace('\n', " "))
        };
        let entry: Entry = toml::Value::Table(table).try_into().map_err(|e| at(&e))?;
        check(&login, entry.role, entry.unit.as_deref()).map_err(|e| match e {
            // The command-line wording would be misleading for someone editing the file.
            UsersError::NeedsUnit => {
                at(&"role police needs unit = \"...\" (the responder unit it belongs to)")
            }
            UsersError::UnitNotAllowed(role) => {
                at(&format!("only police users have a unit, not {role}"))
            }
            e => at(&e),
        })?;
        if hashes {
            PasswordHash::new(&entry.password)
                .map_err(|e| at(&format!("password is not an argon2 hash ({e}); set one with `xl-center user passwd {login}`")))?;
        }
        entries.insert(login, entry);
    }
    Ok(entries)
}

fn parse(text: &str) -> Result<BTreeMap<String, Account>, String> {
    Ok(parse_entries(text, true)?
        .into_iter()
        .map(|(login, e)| {
            let user = User {
                name: e.name.unwrap_or_else(|| login.clone()),
                login: login.clone(),
                role: e.role,
                unit: e.unit,
            };
            (login, Account { user, hash: e.password })
        })
        .collect())
}

/// The user accounts, read again when their file changes.
#[derive(Debug)]
pub struct Users {
    file: WatchedFile<BTreeMap<String, Account>>,
}

impl Users {
    /// Reads the users at `path`; a missing file counts as no users (and is not created).
    pub fn open(path: &Path) -> Result<Self, WatchError> {
        let file = WatchedFile::open(path, None, parse)?;
        match file.current().len() {
            0 => info!("no users in {} yet (`xl-center user add` makes one)", path.display()),
            n => info!("{n} users in {}", path.display()),
        }
        Ok(Self { file })
    }

    fn current(&self) -> Arc<BTreeMap<String, Account>> {
        self.file.current()
    }

    /// Whether there are no users at all.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// The user with this login.
    pub fn get(&self, login: &str) -> Option<User> {
        self.current().get(login).map(|a| a.user.clone())
    }

    /// All users, sorted by login.
    pub fn list(&self) -> Vec<User> {
        self.current().values().map(|a| a.user.clone()).collect()
    }

    /// The user if `password` is theirs. Costs one argon2 verification even for an unknown login, so timing does not reveal which logins exist.
    pub fn verify(&self, login: &str, password: &str) -> Option<User> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let users = self.current();
        let account = users.get(login);
        let hash = match account {
            Some(a) => a.hash.as_str(),
            None => DUMMY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default()),
        };
        let ok = PasswordHash::new(hash)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        account.filter(|_| ok).map(|a| a.user.clone())
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ring::error::Unspecified> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(bytes)
}

fn hash_password(password: &str) -> Result<String, UsersError> {
    let bytes =
        random_bytes::<16>().map_err(|_| UsersError::Hash("no system randomness".into()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| UsersError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

fn check_password(password: &str) -> Result<(), UsersError> {
    if password.chars().count() < MIN_PASSWORD { Err(UsersError::ShortPassword) } else { Ok(()) }
}

fn load(path: &Path) -> Result<BTreeMap<String, Entry>, UsersError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_entries(&text, false)
            .map_err(|message| UsersError::Invalid { path: path.to_owned(), message }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(UsersError::Io { path: path.to_owned(), error }),
    }
}

/// Writes the entries to a 0600 temporary file next to `path` and renames it over `path`, so
/// the running center reads either the old file or the new one, never half of one.
fn save(path: &Path, entries: BTreeMap<String, Entry>) -> Result<(), UsersError> {
    let io = |error| UsersError::Io { path: path.to_owned(), error };
    let body = toml::to_string(&FileOf { users: entries })
        .map_err(|e| UsersError::Invalid { path: path.to_owned(), message: e.to_string() })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp); // a leftover from a crash; create_new refuses it otherwise
    let write = || -> std::io::Result<()> {
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // The mode above is subject to the umask; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(HEADER.as_bytes())?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; failing to is not worth an error.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Adds a user to the file at `path` (created with its header comment if missing, mode 0600, written atomically: temp file in the same dir + rename).
pub fn add_user(
    path: &Path,
    login: &str,
    name: Option<&str>,
    role: Role,
    unit: Option<&str>,
    password: &str,
) -> Result<User, UsersError> {
    check(login, role, unit)?;
    check_password(password)?;
    let mut entries = load(path)?;
    if entries.contains_key(login) {
        return Err(UsersError::Exists(login.to_owned()));
    }
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let entry = Entry {
        role,
        name: name.map(str::to_owned),
        unit: unit.map(str::to_owned),
        password: hash_password(password)?,
    };
    entries.insert(login.to_owned(), entry);
    save(path, entries)?;
    Ok(User {
        login: login.to_owned(),
        name: name.unwrap_or(login).to_owned(),
        role,
        unit: unit.map(str::to_owned),
    })
}

/// Sets a user's password.
pub fn set_password(path: &Path, login: &str, password: &str) -> Result<(), UsersError> {
    check_password(password)?;
    let mut entries = load(path)?;
    let users = if entries.is_empty() {
        "none".to_owned()
    } else {
        entries.keys().cloned().collect::<Vec<_>>().join(", ")
    };
    let entry = entries
        .get_mut(login)
        .ok_or_else(|| UsersError::NoUser { login: login.to_owned(), users })?;
    entry.password = hash_password(password)?;
    save(path, entries)
}

/// Generates a random password (e.g. 16 base64url characters from ring's SystemRandom) for when the admin does not give one.
pub fn generate_password() -> String {
    // Without system randomness no safe password can be made, and the center cannot work anyway.
    let bytes = random_bytes::<12>().expect("the system random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "correct horse battery";

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        (dir, path)
    }

    #[test]
    fn added_users_verify_only_with_their_password_and_the_file_is_private() {
        let (_dir, path) = setup();
        let added = add_user(
            &path,
            "pcs-qingshan-1",
            Some("青山派出所"),
            Role::Police,
            Some("pcs-qingshan"),
            PW,
        )
        .unwrap();
        add_user(&path, "zhang-san", None, Role::DutyOfficer, None, PW).unwrap();
        let users = Users::open(&path).unwrap();
        let user = users.verify("pcs-qingshan-1", PW).unwrap();
        assert_eq!(user, added);
        assert_eq!(
            (user.role, user.unit.as_deref(), user.name.as_str()),
            (Role::Police, Some("pcs-qingshan"), "青山派出所")
        );
        assert_eq!(users.get("zhang-san").unwrap().name, "zhang-san");
        assert!(users.verify("pcs-qingshan-1", "wrong password").is_none());
        assert!(users.verify("nobody", PW).is_none());
        let logins: Vec<_> = users.list().into_iter().map(|u| u.login).collect();
        assert_eq!(logins, ["pcs-qingshan-1", "zhang-san"]);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Users of the xueliang center.") && text.contains("$argon2id$"),
            "{text}"
        );
        assert!(!text.contains(PW), "{text}");
    }

    #[test]
    fn bad_changes_are_refused_with_what_to_fix_and_passwd_changes_the_password() {
        let (_dir, path) = setup();
        add_user(&path, "zhang-san", None, Role::DutyOfficer, None, PW).unwrap();
        let add = |login, role, unit, pw| {
            add_user(&path, login, None, role, unit, pw).unwrap_err().to_string()
        };
        assert_eq!(
            add("zhang-san", Role::Admin, None, PW),
            "user \"zhang-san\" exists already; use `xl-center user passwd zhang-san`"
        );
        assert_eq!(
            add("li-si", Role::Police, None, PW),
            "a police user needs --unit (the responder unit it belongs to)"
        );
        assert!(add("li-si", Role::Installer, Some("x"), PW).contains("leave out --unit"));
        assert_eq!(
            add("li-si", Role::Admin, None, "short"),
            "passwords must have at least 10 characters"
        );
        assert_eq!(
            add("li si", Role::Admin, None, PW),
            "login \"li si\" may only use letters, digits, '-', '_' and '.' (1-64)"
        );
        assert!("boss".parse::<Role>().unwrap_err().to_string().contains("duty_officer"));
        assert_eq!(
            ("duty_officer".parse::<Role>().unwrap(), Role::Police.to_string()),
            (Role::DutyOfficer, "police".into())
        );
        assert_eq!(
            set_password(&path, "x", PW).unwrap_err().to_string(),
            "no user \"x\" (users: zhang-san)"
        );
        set_password(&path, "zhang-san", "another password").unwrap();
        let users = Users::open(&path).unwrap();
        assert!(
            users.verify("zhang-san", PW).is_none()
                && users.verify("zhang-san", "another password").is_some()
        );
        assert_eq!(generate_password().len(), 16);
    }

    #[test]
    fn a_running_center_sees_new_users_even_when_the_file_was_missing() {
        let (_dir, path) = setup();
        let users = Users::open(&path).unwrap();
        assert!(users.is_empty() && !path.exists());
        for (login, role) in [("alice", Role::Admin), ("bob", Role::Installer)] {
            add_user(&path, login, None, role, None, PW).unwrap();
            std::thread::sleep(crate::watched_file::RECHECK + std::time::Duration::from_millis(50));
            assert_eq!(users.verify(login, PW).map(|u| u.role), Some(role));
        }
    }

    #[test]
    fn a_malformed_file_names_the_user() {
        let (_dir, path) = setup();
        add_user(&path, "zhang-san", None, Role::DutyOfficer, None, PW).unwrap();
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap().replace("duty_officer", "boss"),
        )
        .unwrap();
        let err = Users::open(&path).unwrap_err().to_string();
        assert!(err.contains("users.zhang-san: unknown variant `boss`"), "{err}");
        let err = add_user(&path, "li-si", None, Role::Admin, None, PW).unwrap_err().to_string();
        assert!(err.contains("users.zhang-san:"), "{err}");
        std::fs::write(&path, "[users.li-si]\nrole = \"police\"\npassword = \"x\"\n").unwrap();
        let err = Users::open(&path).unwrap_err().to_string();
        assert!(err.contains("users.li-si: role police needs unit"), "{err}");
        // A broken hash is refused by the center but can be replaced with `passwd`.
        std::fs::write(&path, "[users.li-si]\nrole = \"admin\"\npassword = \"x\"\n").unwrap();
        assert!(
            Users::open(&path)
                .unwrap_err()
                .to_string()
                .contains("set one with `xl-center user passwd li-si`")
        );
        set_password(&path, "li-si", PW).unwrap();
        assert!(Users::open(&path).unwrap().verify("li-si", PW).is_some());
    }
}
