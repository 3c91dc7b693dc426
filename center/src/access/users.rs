//! The center's user accounts: `users.toml` in the data directory, written only by the
//! `xl-center user` commands (through [`add_user`], [`set_password`], [`set_disabled`] and
//! [`remove_user`]) and read by the running center, which notices changes within a
//! [`RECHECK`](crate::watched_file::RECHECK): a new user can log in without a restart, and a
//! disabled or removed user, or one whose password changed, is logged out.
//! Passwords are stored as argon2id PHC strings. Each account has a session stamp (a digest of
//! its hash and its `session_epoch`) that its sessions carry: a new password or a disable
//! changes it, which ends every session opened before.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use std::cell::RefCell;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use tracing::info;
use xueliang_proto::signing::{hex, sha256};

use crate::watched_file::{WatchError, WatchedFile};

const HEADER: &str = "\
# Users of the xueliang center. Edit with `xl-center user add|passwd|disable|enable|remove|list`;
# passwords are argon2id hashes; `disabled = true` refuses a user; raising `session_epoch` ends
# the user's sessions. Those commands rewrite this file: comments other than this header are not kept.

";

const MIN_PASSWORD: usize = 10;

/// The longest password, in bytes: longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

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
    /// The password is too long.
    #[error("passwords may have at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
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
    /// Refused at log-in and on every request (`xl-center user disable`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// Raised by `xl-center user disable`: the sessions opened before end for good.
    #[serde(default, skip_serializing_if = "is_zero")]
    session_epoch: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The file as a whole. It is read with raw tables as `T`, so an error can name its user.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOf<T> {
    #[serde(default)]
    users: BTreeMap<String, T>,
}

/// A parsed account: the user, their PHC hash string (checked to parse when read), whether they
/// are refused, and the stamp their sessions must carry.
struct Account {
    user: User,
    hash: String,
    disabled: bool,
    stamp: String,
}

/// What a session must carry to stay open: a digest of the password hash and the epoch, so a
/// new password or a raised epoch ends the sessions opened before.
fn stamp(hash: &str, epoch: u32) -> String {
    hex(&sha256(format!("{hash}\n{epoch}").as_bytes())[..16])
}

/// Whether `login` could name a user (1-64 letters, digits, '-', '_', '.'); the API refuses
/// any other at once, without hashing.
pub fn valid_login(login: &str) -> bool {
    valid_name(login)
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
            let stamp = stamp(&e.password, e.session_epoch);
            (login, Account { user, hash: e.password, disabled: e.disabled, stamp })
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

    /// The user with this login (disabled or not).
    pub fn get(&self, login: &str) -> Option<User> {
        self.current().get(login).map(|a| a.user.clone())
    }

    /// Whether the user with this login is disabled.
    pub fn is_disabled(&self, login: &str) -> bool {
        self.current().get(login).is_some_and(|a| a.disabled)
    }

    /// The user a session of `login` carrying `stamp` stands for: none if the user was removed
    /// or disabled, or their password changed, since the session was opened.
    pub fn session_user(&self, login: &str, stamp: &str) -> Option<User> {
        let users = self.current();
        let account = users.get(login).filter(|a| !a.disabled && a.stamp == stamp)?;
        Some(account.user.clone())
    }

    /// All users, sorted by login.
    pub fn list(&self) -> Vec<User> {
        self.current().values().map(|a| a.user.clone()).collect()
    }

    /// The user, and the stamp for their new session, if `password` is theirs and they are not
    /// disabled. Costs one argon2 verification even for an unknown login, so timing does not
    /// reveal which logins exist.
    pub fn verify(&self, login: &str, password: &str) -> Option<Verified> {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let users = self.current();
        let account = users.get(login);
        let hash = match account {
            Some(a) => a.hash.as_str(),
            None => DUMMY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default()),
        };
        let ok = verify_hash(hash, password.as_bytes());
        account
            .filter(|a| ok && !a.disabled)
            .map(|a| Verified { user: a.user.clone(), stamp: a.stamp.clone() })
    }
}

/// A user whose password was just verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Who.
    pub user: User,
    /// What their new session carries ([`Users::session_user`]).
    pub stamp: String,
}

thread_local! {
    /// argon2's working memory (19 MiB with the default parameters), kept by each thread that
    /// verifies: allocated once instead of at every log-in, which the allocator did not give
    /// back to the system (hundreds of MiB after a flood of log-ins).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to the argon2 PHC string `hash` (compared in constant time).
fn verify_hash(hash: &str, password: &[u8]) -> bool {
    let check = |memory: &mut Vec<Block>| -> Option<bool> {
        let phc = PasswordHash::new(hash).ok()?;
        let expected = phc.hash?;
        let params = Params::try_from(&phc).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let mut salt = [0u8; 64];
        let salt = phc.salt?.decode_b64(&mut salt).ok()?;
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params);
        let done =
            argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks]);
        // What is left of the computation does not stay in memory.
        memory[..blocks].fill(Block::default());
        done.ok()?;
        Some(Output::new(&out).ok()? == expected)
    };
    MEMORY.with_borrow_mut(|memory| check(memory)).unwrap_or(false)
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
    if password.chars().count() < MIN_PASSWORD {
        Err(UsersError::ShortPassword)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(UsersError::LongPassword)
    } else {
        Ok(())
    }
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
/// the running center reads either the old file or the new one, never half of one. The new file
/// gets the owner of the one it replaces (else of the directory): run as root on the data
/// directory of a service running as its own user, the running service can still read it.
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
        let owner = std::fs::metadata(path).or_else(|_| std::fs::metadata(dir))?;
        let mine = file.metadata()?;
        if (owner.uid(), owner.gid()) != (mine.uid(), mine.gid()) {
            std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))?;
        }
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
        disabled: false,
        session_epoch: 0,
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

/// Refuses a `login` not in `entries`, naming those that are.
fn known(entries: &BTreeMap<String, Entry>, login: &str) -> Result<(), UsersError> {
    if entries.contains_key(login) {
        return Ok(());
    }
    let users = if entries.is_empty() {
        "none".to_owned()
    } else {
        entries.keys().cloned().collect::<Vec<_>>().join(", ")
    };
    Err(UsersError::NoUser { login: login.to_owned(), users })
}

/// Changes the entry of `login` in the file at `path` with `edit`, which returns whether it
/// changed anything (the file is rewritten only then).
fn change(
    path: &Path,
    login: &str,
    edit: impl FnOnce(&mut Entry) -> Result<bool, UsersError>,
) -> Result<bool, UsersError> {
    let mut entries = load(path)?;
    known(&entries, login)?;
    let changed = entries.get_mut(login).map_or(Ok(false), edit)?;
    if changed {
        save(path, entries)?;
    }
    Ok(changed)
}

/// Sets a user's password; the sessions they opened with the old one end.
pub fn set_password(path: &Path, login: &str, password: &str) -> Result<(), UsersError> {
    check_password(password)?;
    change(path, login, |entry| {
        entry.password = hash_password(password)?;
        Ok(true)
    })?;
    Ok(())
}

/// Disables (`true`) or enables a user; returns whether that changed anything. Disabling ends
/// their sessions for good (enabling again does not bring them back): the running center
/// answers their next request 401 and ends their open event streams.
pub fn set_disabled(path: &Path, login: &str, disabled: bool) -> Result<bool, UsersError> {
    change(path, login, |entry| {
        if entry.disabled == disabled {
            return Ok(false);
        }
        entry.disabled = disabled;
        if disabled {
            entry.session_epoch = entry.session_epoch.wrapping_add(1);
        }
        Ok(true)
    })
}

/// Removes a user; the running center ends their sessions.
pub fn remove_user(path: &Path, login: &str) -> Result<(), UsersError> {
    let mut entries = load(path)?;
    known(&entries, login)?;
    entries.remove(login);
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
        let user = users.verify("pcs-qingshan-1", PW).unwrap().user;
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
            assert_eq!(users.verify(login, PW).map(|v| v.user.role), Some(role));
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

    #[test]
    fn the_file_gets_the_owner_of_its_directory() {
        let (dir, path) = setup();
        // Run as root (county IT on the service's data directory, owned by the service's
        // user), the file is the service's; otherwise the chown fails and both are ours.
        let _ = std::os::unix::fs::chown(dir.path(), Some(4321), Some(4321));
        let dir_owner = std::fs::metadata(dir.path()).unwrap();
        add_user(&path, "zhang-san", None, Role::DutyOfficer, None, PW).unwrap();
        set_disabled(&path, "zhang-san", true).unwrap();
        let file = std::fs::metadata(&path).unwrap();
        assert_eq!((file.uid(), file.gid()), (dir_owner.uid(), dir_owner.gid()));
        assert_eq!(file.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn disabling_removing_or_a_new_password_ends_the_sessions_opened_before() {
        let (_dir, path) = setup();
        add_user(&path, "zhang-san", None, Role::DutyOfficer, None, PW).unwrap();
        let stamp = Users::open(&path).unwrap().verify("zhang-san", PW).unwrap().stamp;
        let live = |stamp: &str| Users::open(&path).unwrap().session_user("zhang-san", stamp);
        assert_eq!(live(&stamp).unwrap().login, "zhang-san");
        assert!(live("forged").is_none());

        assert!(set_disabled(&path, "zhang-san", true).unwrap());
        assert!(!set_disabled(&path, "zhang-san", true).unwrap(), "already disabled");
        let users = Users::open(&path).unwrap();
        assert!(users.is_disabled("zhang-san") && users.get("zhang-san").is_some());
        assert!(users.verify("zhang-san", PW).is_none(), "a disabled user cannot log in");
        assert!(live(&stamp).is_none());
        assert!(set_disabled(&path, "zhang-san", false).unwrap());
        assert!(live(&stamp).is_none(), "enabling again does not bring old sessions back");
        let stamp = Users::open(&path).unwrap().verify("zhang-san", PW).unwrap().stamp;
        assert!(live(&stamp).is_some());

        set_password(&path, "zhang-san", "another password").unwrap();
        assert!(live(&stamp).is_none(), "a new password ends the sessions");
        assert_eq!(
            set_disabled(&path, "li-si", true).unwrap_err().to_string(),
            "no user \"li-si\" (users: zhang-san)"
        );
        remove_user(&path, "zhang-san").unwrap();
        assert!(Users::open(&path).unwrap().is_empty());
        assert!(remove_user(&path, "zhang-san").is_err());
        assert_eq!(
            add_user(&path, "x", None, Role::Admin, None, &"x".repeat(MAX_PASSWORD_BYTES + 1))
                .unwrap_err()
                .to_string(),
            "passwords may have at most 1024 bytes"
        );
        assert!(valid_login("pcs-qingshan-1") && !valid_login(&"a".repeat(65)));
        assert!(!valid_login("a b") && !valid_login(""));
    }
}
