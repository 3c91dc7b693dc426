//! A configuration file the administrator edits while the center runs (agent keys, users,
//! routing): parsed at start, where an error stops the center, and parsed again when its
//! modification time changes, where an error is logged and what was read before stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info};

/// How often at most the file's modification time is looked at.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Why a watched file is unusable at start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// It cannot be read.
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// It does not parse; the message says where and what to fix.
    #[error("{path}: {message}")]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// `line L, column C: message`, pointing at where `span` of a file's `text` starts: how a file
/// the administrator edits by hand names a mistake.
pub fn at(text: &str, span: std::ops::Range<usize>, message: String) -> String {
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
}

/// Parses a file's text into `T`, or says what is wrong with it.
pub type Parser<T> = fn(&str) -> Result<T, String>;

struct State<T> {
    value: Arc<T>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The parsed content of a file, read again when the file changes.
pub struct WatchedFile<T> {
    path: PathBuf,
    parse: Parser<T>,
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for WatchedFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WatchedFile({})", self.path.display())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and parses the file; a missing file is read as empty text (nothing configured yet).
fn read<T>(path: &Path, parse: Parser<T>) -> Result<T, WatchError> {
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        r => r.map_err(|error| WatchError::Io { path: path.to_owned(), error })?,
    };
    parse(&text).map_err(|message| WatchError::Invalid { path: path.to_owned(), message })
}

impl<T> WatchedFile<T> {
    /// Reads and parses `path`; with `template`, a missing file is first created with it,
    /// without, it is read as empty text until it appears.
    pub fn open(path: &Path, template: Option<&str>, parse: Parser<T>) -> Result<Self, WatchError> {
        if let (false, Some(template)) = (path.exists(), template) {
            let io = |error| WatchError::Io { path: path.to_owned(), error };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            std::fs::write(path, template).map_err(io)?;
        }
        let when = modified(path);
        let value = Arc::new(read(path, parse)?);
        Ok(Self {
            path: path.to_owned(),
            parse,
            state: Mutex::new(State { value, modified: when, checked: Instant::now() }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again now (after this process changed it, so the change counts at once).
    pub fn reload(&self) -> Result<(), WatchError> {
        let when = modified(&self.path);
        let value = read(&self.path, self.parse)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = State { value: Arc::new(value), modified: when, checked: Instant::now() };
        Ok(())
    }

    /// The content, read again first if the file changed (at most once per [`RECHECK`]).
    pub fn current(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let when = modified(&self.path);
            if when != state.modified {
                state.modified = when;
                match read(&self.path, self.parse) {
                    Ok(value) => {
                        info!("{} read again (it changed)", self.path.display());
                        state.value = Arc::new(value);
                    }
                    Err(e) => error!("{e}; what was read before stays in force"),
                }
            }
        }
        state.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<u32, String> {
        text.trim().parse().map_err(|e| format!("not a number: {e}"))
    }

    #[test]
    fn edits_are_picked_up_and_a_broken_edit_keeps_the_last_good_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        let file = WatchedFile::open(&path, Some("1"), number).unwrap();
        assert_eq!(*file.current(), 1);
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        std::fs::write(&path, "2").unwrap();
        assert_eq!(*file.current(), 2);
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        std::fs::write(&path, "two").unwrap();
        assert_eq!(*file.current(), 2);
        std::fs::remove_file(&path).unwrap();
        let empty = WatchedFile::open(&path, None, |t| Ok(t.len())).unwrap();
        assert_eq!(*empty.current(), 0, "a missing file reads as empty");
        std::fs::write(&path, "x").unwrap();
        let err = WatchedFile::open(&path, None, number).unwrap_err().to_string();
        assert!(err.ends_with("n.txt: not a number: invalid digit found in string"), "{err}");
    }
}
