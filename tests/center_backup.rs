//! `deploy/center/backup.sh` and `restore.sh` on a real `xl-center` process holding alarms an
//! agent delivered. A small stand-in for `systemctl` (`XL_SYSTEMCTL`) stops the center with
//! SIGTERM and starts it again, as systemd would. The test checks that a backup refuses a store
//! a running process still holds, that a full backup stops and restarts the center and yields
//! an archive which, restored into a fresh directory, serves and exports exactly the same
//! alarms; that a restore over an existing store moves the old one aside; that old archives
//! rotate; and that `--export-only` streams the records of the running center without stopping
//! it (and refuses a bad token). Without `--keep`, backups rotate to the newest 14.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xueliang_testkit::scenario;

const AGENT: &str = "backup-village";
const ALARMS: u32 = 30;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One xl-center "service": a stand-in for systemctl that starts and stops it on `data`.
struct Service {
    /// The systemctl stand-in (`SCRIPT start|stop|is-active xl-center.service`).
    systemctl: PathBuf,
    /// Its state: the center's pid, log, and the verbs it was called with.
    state: PathBuf,
    http: SocketAddr,
    mqtt: SocketAddr,
}

impl Service {
    fn new(dir: &Path, name: &str, data: &Path) -> Self {
        let state = dir.join(name);
        std::fs::create_dir_all(&state).unwrap();
        let (http, mqtt) = (free_port(), free_port());
        let script = format!(
            r#"#!/usr/bin/env bash
# systemctl, as far as backup.sh and restore.sh use it, for one xl-center process.
set -u
state='{state}'
alive() {{ [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }}
echo "$1" >>"$state/calls"
case "$1" in
is-active)
    [ -f "$state/pid" ] && alive "$(cat "$state/pid")"
    ;;
stop)
    [ -f "$state/pid" ] || exit 0
    pid=$(cat "$state/pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 300); do
        if ! alive "$pid"; then rm -f "$state/pid"; exit 0; fi
        sleep 0.1
    done
    echo "xl-center did not stop within 30 s" >&2
    exit 1
    ;;
start)
    '{bin}' serve --data-dir '{data}' --http 127.0.0.1:{http} --mqtt-listen 127.0.0.1:{mqtt} \
        </dev/null >>"$state/center.log" 2>&1 &
    pid=$!
    echo "$pid" >"$state/pid"
    for _ in $(seq 300); do
        if ! alive "$pid"; then rm -f "$state/pid"; echo "xl-center exited: $state/center.log" >&2; exit 1; fi
        (exec 3<>/dev/tcp/127.0.0.1/{http}) 2>/dev/null && exit 0
        sleep 0.1
    done
    echo "xl-center does not listen on {http}" >&2
    exit 1
    ;;
*)
    exit 1
    ;;
esac
"#,
            state = state.display(),
            bin = common::workspace_binary("xl-center").display(),
            data = data.display(),
        );
        let systemctl = dir.join(format!("{name}-systemctl"));
        std::fs::write(&systemctl, script).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&systemctl).status().unwrap();
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self { systemctl, state, http: at(http), mqtt: at(mqtt) }
    }

    fn ctl(&self, verb: &str) -> bool {
        Command::new(&self.systemctl).args([verb, "xl-center.service"]).status().unwrap().success()
    }

    fn start(&self) {
        assert!(self.ctl("start"), "the center starts:\n{}", self.log());
    }

    fn stop(&self) {
        assert!(self.ctl("stop"), "the center stops");
    }

    fn is_active(&self) -> bool {
        self.ctl("is-active")
    }

    /// Verbs the stand-in was called with since the last call, in order (is-active left out).
    fn take_calls(&self) -> Vec<String> {
        let path = self.state.join("calls");
        let calls = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::remove_file(&path).ok();
        calls.lines().filter(|c| *c != "is-active").map(str::to_owned).collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("center.log")).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new(&self.systemctl).args(["stop", "xl-center.service"]).status();
    }
}

/// Runs a deploy/center script with `XL_SYSTEMCTL` set.
fn script(name: &str, systemctl: &Path, args: &[&str]) -> Output {
    Command::new(repo().join("deploy/center").join(name))
        .env("XL_SYSTEMCTL", systemctl)
        .args(args)
        .output()
        .unwrap()
}

/// The ids of the alarms the center at `http` serves.
async fn served_ids(http: SocketAddr) -> Vec<String> {
    let body = common::Api::admin(http).await.json("/api/alarms?limit=500").await;
    let mut ids: Vec<String> = body["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// `xl-center export --data-dir DIR` (the center stopped): JSON Lines.
fn export(data: &Path) -> String {
    let out = Command::new(common::workspace_binary("xl-center"))
        .arg("export")
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn ids_of(jsonl: &str) -> Vec<String> {
    let mut ids: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().ends_with(suffix)).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_to_the_same_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    let center_key = scenario::prepare_keys(&data, AGENT, &dir.path().join(AGENT)).unwrap();
    common::add_test_admin(&data);
    let center = Service::new(dir.path(), "center", &data);
    center.start();

    // An agent delivers its alarms.
    let mut agent = common::start_scripted_agent(
        dir.path(),
        AGENT,
        &format!("mqtt://{}", center.mqtt),
        &center_key,
        "",
        ALARMS,
    );
    common::wait_delivered(dir.path(), &mut agent, AGENT).await;
    let stored = served_ids(center.http).await;
    assert_eq!(stored.len(), ALARMS as usize, "{}", center.log());

    // A backup that cannot stop the center refuses to copy a store in use.
    let backups = dir.path().join("backups");
    let out = script(
        "backup.sh",
        Path::new("true"),
        &["--data-dir", data.to_str().unwrap(), "--out", backups.to_str().unwrap()],
    );
    assert!(
        !out.status.success() && text(&out).contains("still holds the store"),
        "{}",
        text(&out)
    );
    assert!(files_in(&backups, ".tar.gz").is_empty(), "no archive of a store in use");
    center.take_calls();

    // The full backup: stop, archive, start.
    let args =
        ["--data-dir", data.to_str().unwrap(), "--out", backups.to_str().unwrap(), "--keep", "2"];
    let out = script("backup.sh", &center.systemctl, &args);
    let report = text(&out);
    assert!(out.status.success(), "{report}\n{}", center.log());
    assert_eq!(center.take_calls(), ["stop", "start"], "{report}");
    assert!(center.is_active(), "the center runs again after the backup");
    let archives = files_in(&backups, ".tar.gz");
    assert_eq!(archives.len(), 1, "{report}");
    let archive = archives[0].clone();
    assert!(
        report.contains(&format!(
            "archived {} to {}",
            data.canonicalize().unwrap().display(),
            archive.display()
        )),
        "{report}"
    );
    assert!(report.contains("center down ") && report.contains("outboxes"), "{report}");
    assert_eq!(served_ids(center.http).await, stored, "the restarted center serves what it had");

    // --keep 2: a third backup deletes the oldest archive.
    for _ in 0..2 {
        let out = script("backup.sh", &center.systemctl, &args);
        assert!(out.status.success(), "{}", text(&out));
    }
    let rotated = files_in(&backups, ".tar.gz");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert!(!rotated.contains(&archive), "the oldest went: {rotated:?}");
    center.take_calls();

    // --export-only: the records from the running center, no stop.
    let token = {
        let resp = reqwest::Client::new()
            .post(format!("http://{}/api/login", center.http))
            .json(&serde_json::json!({ "login": common::TEST_ADMIN.0, "password": common::TEST_ADMIN.1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    };
    let exports = dir.path().join("exports");
    let url = format!("http://{}", center.http);
    let export_only = |token: &str| {
        Command::new(repo().join("deploy/center/backup.sh"))
            .args(["--export-only", "--url", &url, "--out", exports.to_str().unwrap()])
            .env("XL_SYSTEMCTL", &center.systemctl)
            .env("XL_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = export_only("not-a-session");
    assert!(!out.status.success() && text(&out).contains("401"), "{}", text(&out));
    assert!(files_in(&exports, ".jsonl.gz").is_empty(), "nothing kept of a refused export");
    let out = export_only(&token);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("exported {ALARMS} alarm records")), "{}", text(&out));
    assert!(center.take_calls().is_empty(), "--export-only never stops the center");
    let [exported] = &files_in(&exports, ".jsonl.gz")[..] else { panic!("one export") };
    let gunzip = Command::new("gzip").arg("-dc").arg(exported).output().unwrap();
    assert_eq!(ids_of(&String::from_utf8(gunzip.stdout).unwrap()), stored);

    // The original, stopped: what a restore must give back.
    center.stop();
    let original = export(&data);
    assert_eq!(ids_of(&original), stored);

    // Restore the newest archive into a fresh directory; the stand-in starts a center on it.
    let newest =
        rotated.iter().max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap()).unwrap();
    let restored = dir.path().join("restored");
    let second = Service::new(dir.path(), "restored-center", &restored);
    let out = script(
        "restore.sh",
        &second.systemctl,
        &[newest.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}\n{}", text(&out), second.log());
    assert_eq!(second.take_calls(), ["start"], "nothing to stop, then started");
    assert_eq!(
        served_ids(second.http).await,
        stored,
        "the restored center serves the same alarms (and its users log in)"
    );
    second.stop();
    assert_eq!(export(&restored), original, "exactly the same alarm records, timelines included");

    // Restoring over an existing store moves it aside first (the center stopped, left stopped).
    std::fs::write(restored.join("marker"), "the store before the restore").unwrap();
    let out = script(
        "restore.sh",
        &second.systemctl,
        &[rotated[0].to_str().unwrap(), "--data-dir", restored.to_str().unwrap(), "--no-start"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!second.is_active());
    assert!(!restored.join("marker").exists());
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("restored.before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(aside[0].join("marker")).unwrap(),
        "the store before the restore"
    );
    assert_eq!(ids_of(&export(&restored)), stored);

    // Not an archive of backup.sh: refused before anything stops.
    let junk = dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not a tarball").unwrap();
    second.take_calls();
    let out = script(
        "restore.sh",
        &second.systemctl,
        &[junk.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()],
    );
    assert!(
        !out.status.success() && text(&out).contains("does not read as a .tar.gz"),
        "{}",
        text(&out)
    );
    assert!(second.take_calls().is_empty());
}

#[test]
fn backups_rotate_to_the_newest_fourteen_by_default_and_keep_0_keeps_all() {
    let dir = tempfile::tempdir().unwrap();
    // A stopped center's data directory: backup.sh needs only its store's file to lock.
    let data = dir.path().join("center");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("db"), b"a store").unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // 20 older archives, a day apart, and an export beside them (another kind, left alone).
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let old: Vec<PathBuf> = (1..=20)
        .map(|d| {
            let path = backups.join(format!("xueliang-center-202601{d:02}T033000Z.tar.gz"));
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(now - day * (21 - d)).unwrap();
            path
        })
        .collect();
    let export = backups.join("xueliang-center-export-20260101T033000Z.jsonl.gz");
    std::fs::File::create(&export).unwrap().set_modified(now - day * 30).unwrap();
    // `false`: the center is not running, so nothing is stopped or started.
    let backup = |extra: &[&str]| {
        let mut args =
            vec!["--data-dir", data.to_str().unwrap(), "--out", backups.to_str().unwrap()];
        args.extend(extra);
        let out = script("backup.sh", Path::new("false"), &args);
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };

    let report = backup(&[]);
    let kept = files_in(&backups, ".tar.gz");
    assert_eq!(kept.len(), 14, "{report}");
    // The new archive and the 13 newest of the old ones; the 7 oldest deleted, and said so.
    assert_eq!(kept.iter().filter(|p| !old.contains(p)).count(), 1, "{kept:?}");
    for (i, path) in old.iter().enumerate() {
        assert_eq!(kept.contains(path), i >= 7, "{}: {report}", path.display());
    }
    assert_eq!(report.matches("deleted old ").count(), 7, "{report}");
    assert!(report.contains("(--keep 14)"), "{report}");
    assert!(export.exists(), "an export is not a full backup's archive");

    let report = backup(&["--keep", "0"]);
    assert_eq!(files_in(&backups, ".tar.gz").len(), 15, "--keep 0 keeps all: {report}");
    assert!(!report.contains("deleted old"), "{report}");
}
