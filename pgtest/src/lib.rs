//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory and `postgres`
//! on a free loopback port, from Debian's binaries (`/usr/lib/postgresql/<version>/bin`), never
//! the machine's own server. As root (PostgreSQL refuses to run as root) it runs as the
//! `postgres` user that Debian's package creates.
//!
//! [`shared`] is one server for a whole test process, one fresh database per test; it stops
//! when the process exits (the kernel signals it), and the next run removes what is left.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of the servers' temporary directories, so that a later run finds stale ones.
const DIR_PREFIX: &str = "xl-pgtest-";

/// A PostgreSQL server of the test's own; stopped and deleted when dropped.
pub struct Server {
    child: Child,
    port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    databases: AtomicU32,
}

/// Why the server could not start.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn fail(what: impl Into<String>) -> Error {
    Error(what.into())
}

impl Server {
    /// Initialises a cluster in a temporary directory and starts it on a free port. `durable`
    /// keeps PostgreSQL's fsync on (benchmarks); tests turn it off for speed.
    pub fn start(durable: bool) -> Result<Self, Error> {
        remove_stale();
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| fail(format!("cannot make a temporary directory: {e}")))?;
        // SAFETY: geteuid has no preconditions.
        let owner = if unsafe { libc::geteuid() } == 0 { Some(postgres_user()?) } else { None };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                fail(format!("cannot give {} to postgres: {e}", dir.path().display()))
            })?;
        }
        let data = dir.path().join("data");
        let out = as_owner(Command::new(bin.join("initdb")), owner)
            .args(["--auth=trust", "--username=xl", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .arg("-D")
            .arg(&data)
            .output()
            .map_err(|e| fail(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr))));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("no free port: {e}")))?
            .port();
        let mut cmd = as_owner(Command::new(bin.join("postgres")), owner);
        cmd.arg("-D").arg(&data).arg("-k").arg(dir.path());
        cmd.args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]);
        cmd.args(["-c", "max_connections=200", "-c", "shared_buffers=128MB"]);
        if !durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            cmd.args(["-c", "full_page_writes=off"]);
        }
        let log = std::fs::File::create(dir.path().join("server.log"))
            .map_err(|e| fail(format!("cannot write the server's log: {e}")))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to stop the server
        // (immediate shutdown) when the thread that started it ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| fail(format!("cannot start postgres: {e}")))?;
        let server = Self { child, port, bin, dir, databases: AtomicU32::new(0) };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "xl"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("server.log"));
                return Err(fail(format!("postgres did not start: {}", log.unwrap_or_default())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://xl@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a database of its own and returns its address.
    pub fn database(&self) -> Result<String, Error> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "xl", &name])
            .output()
            .map_err(|e| fail(format!("cannot run createdb: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!("createdb failed: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(self.url(&name))
    }

    /// Runs `sql` in database `name` with psql, returning what it printed (unaligned, no
    /// headers).
    pub fn psql(&self, name: &str, sql: &str) -> Result<String, Error> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "xl", "-d", name])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .map_err(|e| fail(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!("psql failed: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the postmaster stops its backends too.
        // SAFETY: kill with a pid of our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let _ = self.child.wait();
    }
}

/// One server for the whole test process, started by the first caller. It lives as long as
/// the process: it is started from a thread that never ends, so the kernel stops it (parent
/// death signal) only when the process exits.
pub fn shared() -> Result<&'static Server, Error> {
    static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(Server::start(false).map_err(|e| e.0));
                loop {
                    std::thread::park();
                }
            });
            rx.recv().map_err(|e| e.to_string()).and_then(|r| r)
        })
        .as_ref()
        .map_err(|e| fail(e.clone()))
}

/// Removes the directories of servers whose process is gone (a shared one is never dropped).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let named =
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !named {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        let running = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(60)));
        if !running && old {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Debian's PostgreSQL binaries, the newest version installed.
fn bin_dir() -> Result<PathBuf, Error> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| fail("PostgreSQL is not installed (/usr/lib/postgresql): run make setup"))?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| fail("no postgres binary in /usr/lib/postgresql/*/bin: run make setup"))
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), Error> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| fail(format!("/etc/passwd: {e}")))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| fail("running as root, and there is no postgres user to run PostgreSQL as (install Debian's postgresql package)"))
}

fn as_owner(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
        // Its own home, not root's, for any file it looks for.
        cmd.env("HOME", "/var/lib/postgresql");
    }
    cmd
}

/// What `XL_TEST_STORE` asks the tests to store in: with `postgres`, the address of a database
/// on [`shared`], the same one each time for the same `key` (a test that reopens its store
/// finds its records); with `sled` or nothing, `None` (the embedded store).
///
/// # Panics
/// On another value, or when the server cannot start: the test cannot run as asked.
pub fn store_asked(key: &Path) -> Option<String> {
    static DATABASES: OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, String>>> =
        OnceLock::new();
    match std::env::var("XL_TEST_STORE").as_deref() {
        Ok("postgres") => {
            let mut known =
                DATABASES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
            let url = match known.get(key) {
                Some(url) => url.clone(),
                None => {
                    let server = shared().unwrap_or_else(|e| panic!("XL_TEST_STORE=postgres: {e}"));
                    let url =
                        server.database().unwrap_or_else(|e| panic!("XL_TEST_STORE=postgres: {e}"));
                    known.insert(key.to_owned(), url.clone());
                    url
                }
            };
            Some(url)
        }
        Ok("sled") | Ok("") | Err(_) => None,
        Ok(other) => panic!("XL_TEST_STORE={other}: write postgres or sled"),
    }
}
