//! `xl-center salvage`: every alarm record that can still be read from a damaged store, written
//! as `xl-center export` writes them (JSON Lines, oldest first). It never writes to the store it
//! is given: sled repairs a log as it opens it (it cuts a torn tail, zeroes segments), so each
//! try opens a fresh copy of sled's files, beside the output.
//!
//! What it tries, in order, until sled opens a copy: the files as they were; without sled's
//! snapshot (`snap.*`, then rebuilt from the whole log); with a fresh `conf`; without both.
//! In the copy it reads the `alarms` tree from its start and from its end up to the first
//! damaged node each way, then looks up every id the time index, the snapshots and the proofs
//! name, which reaches the records between two damaged nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use xueliang_center::domain::AlarmRecord;

/// The exit code of a command that found the store corrupt (sysexits' `EX_DATAERR`); the unit
/// file names it in `RestartPreventExitStatus=`, so systemd does not restart into it forever.
pub const CORRUPT_STORE_EXIT: u8 = 65;

/// The store's trees salvage reads (their names in `store/index.rs` and `store/proofs.rs`).
const ALARMS: &str = "alarms";
/// Trees whose keys name alarm ids: the time index (time, then the id), the snapshots (the id)
/// and the proofs (the id, then a NUL and an update's number).
const ID_TREES: [&str; 3] = ["alarms_by_time", "snapshots", "proofs"];

/// The arguments of `xl-center salvage`.
#[derive(clap::Args)]
pub struct SalvageArgs {
    /// Directory of the damaged store (only read: salvage works on copies).
    #[arg(long, visible_alias = "data", default_value = "/var/lib/xueliang-center")]
    data_dir: PathBuf,
    /// Where the records go (JSON Lines, as `xl-center export` writes them). The copies of the
    /// store are made in its directory, which needs room for one.
    #[arg(long, visible_alias = "output", short)]
    out: PathBuf,
}

/// What to do about a corrupt store in `dir`: the lines printed when a command refuses it.
pub fn advice(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "xl-center will not run on a corrupt store, and exits with code {CORRUPT_STORE_EXIT} \
         (systemd does not restart it). As root:
  1. Keep a copy of it as it is:
       cp -a {d}/. {d}.corrupt-$(date -u +%Y%m%dT%H%M%SZ)
  2. Save the alarm records that can still be read (the store is only read):
       xl-center salvage --data-dir {d} --out /var/backups/xueliang/salvage-$(date -u +%Y%m%dT%H%M%SZ).jsonl
  3. Restore the newest backup (it moves this directory aside and starts the center):
       xl-center-restore $(ls -t /var/backups/xueliang/xueliang-center-*.tar.gz | head -n 1) --data-dir {d}
     (in a checkout: deploy/center/restore.sh)
  4. The salvaged file holds the records as `xl-center export` writes them. xl-center has no \
         import: the alarms stored after that backup stay in that file (read it, or keep it \
         with the case files); they do not go back into the store. Boxes send again what the \
         center had not confirmed to them."
    )
}

/// Runs the salvage.
pub fn run(args: SalvageArgs) -> anyhow::Result<()> {
    let SalvageArgs { data_dir, out } = args;
    let db_file = data_dir.join("db");
    if !db_file.is_file() {
        bail!("{} holds no alarm store (no file db): give --data-dir", data_dir.display());
    }
    // sled holds a lock on `db` while it has the store open: a copy taken under a running
    // center would not be consistent.
    let lock = std::fs::File::open(&db_file)
        .with_context(|| format!("cannot read {}", db_file.display()))?;
    if let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock() {
        bail!(
            "the store in {} is in use by a running xl-center: stop it first",
            data_dir.display()
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let work = Workspace(parent.join(format!(".xl-center-salvage-{}", std::process::id())));
    let (db, how) = open_a_copy(&data_dir, &work.0)?;
    eprintln!("salvage: sled opened a copy of the store {how}");

    let mut found = Found::default();
    let alarms = match db.open_tree(ALARMS) {
        Ok(t) => Some(t),
        Err(e) => {
            found.damaged.push(format!("{ALARMS} (cannot be opened: {})", describe(&e)));
            None
        }
    };
    if let Some(alarms) = &alarms {
        let (records, broken) = read_tree(alarms);
        found.records = records;
        if let Some(why) = broken {
            found.damaged.push(format!("{ALARMS} ({why})"));
            // Ids the damaged nodes hid from the scans, as far as another tree names them.
            let mut ids = BTreeSet::new();
            for name in ID_TREES {
                match db.open_tree(name) {
                    Ok(t) => {
                        let (entries, broken) = read_tree(&t);
                        if let Some(why) = broken {
                            found.damaged.push(format!("{name} ({why})"));
                        }
                        ids.extend(entries.into_keys().filter_map(|k| id_in(name, &k)));
                    }
                    Err(e) => {
                        found.damaged.push(format!("{name} (cannot be opened: {})", describe(&e)))
                    }
                }
            }
            for id in ids {
                if found.records.contains_key(&id) {
                    continue;
                }
                let got = quietly(|| alarms.get(&id));
                match got {
                    Ok(Ok(Some(v))) => {
                        found.records.insert(id, v.to_vec());
                    }
                    // Named by a tree retention cleans after the record (no alarm now).
                    Ok(Ok(None)) => {}
                    Ok(Err(_)) | Err(_) => found.unfound += 1,
                }
            }
        }
    }

    let mut parsed: Vec<AlarmRecord> = Vec::with_capacity(found.records.len());
    let mut unparsable = 0u64;
    for bytes in found.records.values() {
        match serde_json::from_slice::<AlarmRecord>(bytes) {
            Ok(r) => parsed.push(r),
            Err(_) => unparsable += 1,
        }
    }
    // The export's order: event time, then id (the time index's).
    parsed.sort_by(|a, b| (a.event_time_ms, &a.id).cmp(&(b.event_time_ms, &b.id)));
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    for r in &parsed {
        serde_json::to_writer(&mut file, r)?;
        file.write_all(b"\n")?;
    }
    file.flush().with_context(|| format!("cannot write {}", out.display()))?;
    drop(db);
    drop(lock);

    for tree in &found.damaged {
        eprintln!("salvage: damaged tree: {tree}");
    }
    let unreadable = unparsable + found.unfound;
    eprintln!(
        "salvage: wrote {} alarm records to {} (JSON Lines, as xl-center export writes them); \
         {unreadable} unreadable records skipped ({unparsable} do not parse, {} named by an \
         index but unreadable); {} unreadable trees",
        parsed.len(),
        out.display(),
        found.unfound,
        found.damaged.len(),
    );
    if !found.damaged.is_empty() {
        eprintln!(
            "salvage: a record in a damaged part of the alarms tree that no index, snapshot or \
             proof names is lost without being counted"
        );
    }
    Ok(())
}

/// What the salvage read.
#[derive(Default)]
struct Found {
    /// Records by id, as stored.
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Ids another tree names whose record could not be read.
    unfound: u64,
    /// Trees that could not be opened or read to the end, with why.
    damaged: Vec<String>,
}

/// The alarm id a key of tree `name` names.
fn id_in(name: &str, key: &[u8]) -> Option<Vec<u8>> {
    let id = match name {
        "alarms_by_time" => key.get(8..)?,
        _ => key.split(|b| *b == 0).next()?,
    };
    (!id.is_empty()).then(|| id.to_vec())
}

/// Every entry of `tree` read from its start and from its end, each way up to the first error
/// (sled's iterator returns that error again and again rather than step over a bad node), and
/// the error, if any.
fn read_tree(tree: &sled::Tree) -> (BTreeMap<Vec<u8>, Vec<u8>>, Option<String>) {
    let mut entries = BTreeMap::new();
    let mut broken = None;
    let scan = |reverse: bool, entries: &mut BTreeMap<Vec<u8>, Vec<u8>>| {
        let scanned = quietly(|| {
            let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
                if reverse { Box::new(tree.iter().rev()) } else { Box::new(tree.iter()) };
            for entry in iter {
                let (k, v) = entry.map_err(|e| describe(&e))?;
                entries.insert(k.to_vec(), v.to_vec());
            }
            Ok::<_, String>(())
        });
        match scanned {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => Some(format!("sled failed reading it: {panic}")),
        }
    };
    if let Some(e) = scan(false, &mut entries) {
        let from_start = entries.len();
        scan(true, &mut entries);
        broken = Some(format!(
            "{from_start} entries read from its start, {} from its end, then: {e}",
            entries.len() - from_start
        ));
    }
    (entries, broken)
}

/// Runs `f`, turning a panic into its message, unprinted: sled 0.34 panics on some damage (a
/// page its log cannot place), which here is a finding, not a crash. (The command runs alone,
/// so swapping the process's panic hook for a moment hides no other thread's panic.)
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

/// sled's error in words (its own text of a corruption ends in an empty backtrace).
fn describe(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(at), .. } => format!("damaged data at {at:?}"),
        sled::Error::Corruption { at: None, .. } => "damaged data".to_owned(),
        e => e.to_string(),
    }
}

/// A directory for the copies, deleted when dropped.
struct Workspace(PathBuf);

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a copy of the store in `data_dir` in `work`, trying the ways the module names, and
/// says which one opened it.
fn open_a_copy(data_dir: &Path, work: &Path) -> anyhow::Result<(sled::Db, &'static str)> {
    const TRIES: [(bool, bool, &str); 4] = [
        (true, true, "as it was"),
        (false, true, "without its snapshot file (sled rebuilt it from the whole log)"),
        (true, false, "with a fresh conf file"),
        (false, false, "without its snapshot file and with a fresh conf file"),
    ];
    let mut failures = Vec::new();
    for (n, (snapshot, conf, how)) in TRIES.into_iter().enumerate() {
        let copy = work.join(format!("try-{n}"));
        copy_sled_files(data_dir, &copy, snapshot, conf)
            .with_context(|| format!("cannot copy the store to {}", copy.display()))?;
        let opened = quietly(|| sled::Config::new().path(&copy).open());
        match opened {
            Ok(Ok(db)) => return Ok((db, how)),
            Ok(Err(e)) => failures.push(format!("{how}: {}", describe(&e))),
            Err(panic) => failures.push(format!("{how}: sled failed recovering its log: {panic}")),
        }
        let _ = std::fs::remove_dir_all(&copy);
    }
    bail!(
        "sled opens no copy of the store in {}, so nothing can be salvaged from it: {}",
        data_dir.display(),
        failures.join("; ")
    )
}

/// Copies sled's files (`db`, `blobs/`, and `conf` and `snap.*` if asked) from `from` into a new
/// directory `to`.
fn copy_sled_files(from: &Path, to: &Path, snapshot: bool, conf: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to.join("blobs"))?;
    std::fs::copy(from.join("db"), to.join("db"))?;
    if conf && from.join("conf").exists() {
        std::fs::copy(from.join("conf"), to.join("conf"))?;
    }
    for entry in std::fs::read_dir(from)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        // A snapshot being written (`.generating`) is not one sled reads.
        if snapshot && name.starts_with("snap.") && !name.ends_with(".generating") {
            std::fs::copy(from.join(&*name), to.join(&*name))?;
        }
    }
    if let Ok(blobs) = std::fs::read_dir(from.join("blobs")) {
        for entry in blobs {
            let entry = entry?;
            std::fs::copy(entry.path(), to.join("blobs").join(entry.file_name()))?;
        }
    }
    Ok(())
}
