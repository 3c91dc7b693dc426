//! A corrupt store, with real processes: a real `xl-center` stores the alarms a scripted agent
//! delivers and is stopped; then copies of its data directory are damaged three ways:
//!
//! 1. sled's snapshot file with flipped bytes: sled refuses to open the store, `xl-center serve`
//!    (and `export`) exit with the corrupt store's code (65) and say what to do, naming the data
//!    directory; `xl-center salvage` exports every alarm, byte for byte as `xl-center export` did
//!    before the damage, and leaves the damaged files as they were;
//! 2. the newest part of the log (the newest alarm's node): sled replays it at open and refuses
//!    the store (65); salvage gives the store as it was before the damaged message;
//! 3. a node in an older part of the log: sled opens the store but cannot read that node;
//!    salvage reads around it and counts every record it lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use xueliang_testkit::scenario;

const AGENT: &str = "corrupt-village";
const ALARMS: u32 = 120;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn xl_center(args: &[&str], data: &Path) -> Output {
    Command::new(common::workspace_binary("xl-center"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

/// `xl-center export` of a stopped center's store: JSON Lines.
fn export(data: &Path) -> String {
    let out = xl_center(&["export"], data);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `xl-center salvage` of `data` into `out`: the file and what it said.
fn salvage(data: &Path, out: &Path) -> (String, String) {
    let run = Command::new(common::workspace_binary("xl-center"))
        .args(["salvage", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    (std::fs::read_to_string(out).unwrap(), text(&run))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `xl-center serve` on `data`, which must exit by itself within 30 s (it is killed otherwise).
fn serve_expecting_exit(data: &Path) -> Output {
    let free = free_port;
    let mut child = Command::new(common::workspace_binary("xl-center"))
        .arg("serve")
        .args(["--http", &format!("127.0.0.1:{}", free())])
        .args(["--mqtt-listen", &format!("127.0.0.1:{}", free())])
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("xl-center serve ran on a corrupt store:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// A copy of the data directory `data` as `name` beside it.
fn copy_of(data: &Path, name: &str) -> PathBuf {
    let copy = data.with_file_name(name);
    let status = Command::new("cp").arg("-a").arg(data).arg(&copy).status().unwrap();
    assert!(status.success());
    copy
}

/// Every file of sled's in `dir` with its bytes, to show salvage left them alone.
fn sled_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .filter(|(name, _)| name == "db" || name == "conf" || name.starts_with("snap."))
        .collect();
    files.sort();
    files
}

/// Overwrites `bytes.len()` bytes of `file` at `at`.
fn overwrite(file: &Path, at: usize, bytes: &[u8]) {
    let mut content = std::fs::read(file).unwrap();
    content[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(file, content).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_refused_with_what_to_do_and_salvage_exports_what_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    let center_key = scenario::prepare_keys(&data, AGENT, &dir.path().join(AGENT)).unwrap();
    let mqtt = free_port();
    let mut center = common::Reaper(
        Command::new(common::workspace_binary("xl-center"))
            .arg("serve")
            .args(["--http", &format!("127.0.0.1:{}", free_port())])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("center.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    common::wait_listening(mqtt);
    let mut agent = common::start_scripted_agent(
        dir.path(),
        AGENT,
        &format!("mqtt://127.0.0.1:{mqtt}"),
        &center_key,
        "",
        ALARMS,
    );
    common::wait_delivered(dir.path(), &mut agent, AGENT).await;
    // Stopped as systemd stops it: SIGTERM, and the store flushed.
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    unsafe { libc::kill(center.0.id() as i32, libc::SIGTERM) };
    assert!(center.0.wait().unwrap().success());
    // The export also makes sled write a snapshot file (it does at every open after writes).
    let before = export(&data);
    assert_eq!(before.lines().count(), ALARMS as usize);

    // 1. The snapshot file damaged: sled refuses to open the store.
    let broken = copy_of(&data, "snapshot-damaged");
    let snap = sled_files(&broken)
        .into_iter()
        .map(|(name, _)| name)
        .rfind(|name| name.starts_with("snap."))
        .expect("sled wrote a snapshot file");
    let snap = broken.join(snap);
    let len = std::fs::metadata(&snap).unwrap().len() as usize;
    overwrite(&snap, len / 2, &[0x5a; 16]);
    let untouched = sled_files(&broken);

    let out = serve_expecting_exit(&broken);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(65), "{said}");
    let d = broken.display();
    for expected in [
        format!("the alarm store in {d} is corrupt"),
        format!("cp -a {d}/. {d}.corrupt-"),
        format!("xl-center salvage --data-dir {d} --out "),
        format!(
            "xl-center-restore $(ls -t /var/backups/xueliang/xueliang-center-*.tar.gz | head -n 1) --data-dir {d}"
        ),
        "deploy/center/restore.sh".to_owned(),
        "xl-center has no import".to_owned(),
        "exits with code 65".to_owned(),
    ] {
        assert!(said.contains(&expected), "{expected:?} in:\n{said}");
    }
    // The other commands that open the store refuse it the same way.
    let out = xl_center(&["export"], &broken);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));

    let salvaged_file = dir.path().join("salvaged.jsonl");
    let (salvaged, said) = salvage(&broken, &salvaged_file);
    assert!(said.contains("without its snapshot file"), "{said}");
    assert!(said.contains(&format!("wrote {ALARMS} alarm records")), "{said}");
    assert!(said.contains("0 unreadable records skipped"), "{said}");
    assert_eq!(salvaged, before, "every alarm, as xl-center export wrote it before the damage");
    assert_eq!(sled_files(&broken), untouched, "salvage only reads the store it is given");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".xl-center-salvage"))
        .collect();
    assert!(leftovers.is_empty(), "its copies are deleted: {leftovers:?}");

    // Where sled's log holds each record's newest copy: a node of the alarms tree.
    let ids: Vec<String> = before
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into()
        })
        .collect();
    let log = std::fs::read(data.join("db")).unwrap();
    let newest_copy = |id: &str| {
        let needle = format!("{{\"id\":\"{id}\"");
        let at = log.windows(needle.len()).rposition(|w| w == needle.as_bytes());
        at.expect("the record is in sled's log as it was stored") + needle.len()
    };
    // sled's log is made of 512 KiB segments; the one written last is read again at every open.
    let segment = |at: usize| at / (512 << 10);
    let all: Vec<&str> = before.lines().collect();
    let ids_of = |jsonl: &str| -> Vec<String> {
        jsonl
            .lines()
            .map(|l| {
                assert!(all.contains(&l), "what is salvaged is as it was stored: {l}");
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into()
            })
            .collect()
    };

    // 2. Damage in the newest part of the log (the newest alarm's node): sled replays that part
    // at open, meets a message that fails its checksum and refuses the store.
    let newest = ids.last().unwrap();
    let broken = copy_of(&data, "log-tail-damaged");
    overwrite(&broken.join("db"), newest_copy(newest), b"DAMAGED!");
    let out = serve_expecting_exit(&broken);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out));
    let (salvaged, said) = salvage(&broken, &dir.path().join("salvaged-2.jsonl"));
    assert!(said.contains("without its snapshot file"), "{said}");
    let kept = ids_of(&salvaged);
    assert!(
        !kept.is_empty() && kept.len() < ALARMS as usize && !kept.contains(newest),
        "the store as it was before the damaged message: {} of {ALARMS}\n{said}",
        kept.len()
    );
    eprintln!("log tail damaged: {} of {ALARMS} alarms salvaged\n{said}", kept.len());

    // 3. Damage in an older segment: sled opens the store, but one node of the alarms tree
    // cannot be read; salvage reads around it and counts what it lost.
    let tip = segment(newest_copy(newest));
    let victim = ids
        .iter()
        .find(|id| segment(newest_copy(id)) != tip)
        .expect("some record's newest copy lies in an older segment");
    let broken = copy_of(&data, "node-damaged");
    overwrite(&broken.join("db"), newest_copy(victim), b"DAMAGED!");
    let (salvaged, said) = salvage(&broken, &dir.path().join("salvaged-3.jsonl"));
    assert!(said.contains("opened a copy of the store as it was"), "{said}");
    assert!(said.contains("damaged tree: alarms"), "{said}");
    let kept = ids_of(&salvaged);
    let lost = ALARMS as usize - kept.len();
    assert!(lost > 0 && !kept.contains(victim), "the damaged node's records are lost:\n{said}");
    assert!(
        said.contains(&format!("{lost} unreadable records skipped")),
        "each record lost is counted (the time index names them all):\n{said}"
    );
    eprintln!(
        "node damaged: {} of {ALARMS} alarms salvaged, {lost} counted lost\n{said}",
        kept.len()
    );
}
