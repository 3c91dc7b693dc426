//! The installers, run into a scratch root as an image build runs them (`--root DIR`):
//! `deploy/agent/install.sh` puts every file where the agent and systemd look for it, with its
//! mode and owner (the user `xueliang` made by `systemd-sysusers --root`); writes a config from
//! the template that `xl-agent check-config` accepts as it is and with its example camera, zone
//! and rule uncommented, and that `xl-agent enroll` against a live center edits in place; and,
//! run again, replaces the program but leaves the enrolled config and the outbox alone. `deploy/center/install.sh` does the
//! same for the center. Both refuse an architecture other than x86_64 and aarch64, and a program
//! built for another than the box's (the aarch64 install is in `tests/aarch64.rs`). `systemd-analyze verify` accepts both installed units,
//! `systemd-analyze security` rates them, and the center's example settings use only flags
//! `xl-center serve` has.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, text};
use tokio_util::sync::CancellationToken;
use xueliang_center::running::{BrokerChoice, start};

const AGENT_ID: &str = "village-box-07";
const MODELS: &str = "usr/share/xueliang/models";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An artifact `make setup` puts in `.cache/`.
fn cached(rel: &str) -> PathBuf {
    let path = repo().join(".cache").join(rel);
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (it fetches ONNX Runtime and the model)",
        path.display()
    );
    path
}

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the installer tests check root-owned files: run them as root (make test does)"
    );
}

/// The agent's installer into `root`, with the workspace's binary and `make setup`'s artifacts.
fn install_agent(root: &Path, extra: &[&str]) -> String {
    run(Command::new(repo().join("deploy/agent/install.sh"))
        .arg("--root")
        .arg(root)
        .arg("--bin")
        .arg(common::workspace_binary("xl-agent"))
        .arg("--onnxruntime")
        .arg(cached("onnxruntime/libonnxruntime.so.1.31.1"))
        .arg("--model")
        .arg(cached("models/nanodet_g416_coco.onnx"))
        .args(extra))
}

fn install_center(root: &Path) -> String {
    run(&mut center_installer(root))
}

/// The center's installer into `root`, with the workspace's binary, for the host boxes reach
/// as `center.county.test`.
fn center_installer(root: &Path) -> Command {
    let mut cmd = Command::new(repo().join("deploy/center/install.sh"));
    cmd.arg("--root").arg(root).arg("--bin").arg(common::workspace_binary("xl-center"));
    cmd.args(["--host", "center.county.test"]);
    cmd
}

/// Field `field` (2: uid/gid) of entry `name` in `root`'s `/etc/{file}`.
fn etc_entry(root: &Path, file: &str, name: &str) -> Vec<String> {
    let table = std::fs::read_to_string(root.join("etc").join(file)).unwrap();
    table
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f[0] == name)
        .unwrap_or_else(|| panic!("no {name} in {}/etc/{file}:\n{table}", root.display()))
}

/// Asserts `root/rel` has permission bits `mode` and owner `uid:gid`.
fn assert_owned(root: &Path, rel: &str, mode: u32, uid: u32, gid: u32) {
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{rel} installed: {e}"));
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        mode,
        "{rel}: mode {:o}, expected {mode:o}",
        meta.permissions().mode() & 0o7777
    );
    assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{rel}: owner");
}

/// Whether two files have the same bytes (`cmp`: the agent binary is large).
fn same_file(a: &Path, b: &Path) -> bool {
    Command::new("cmp").arg("-s").arg(a).arg(b).status().unwrap().success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_installs_enrols_then_upgrades_in_place_keeping_config_and_outbox() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");

    // A missing artifact stops the installer with what to do, before anything is installed.
    let out = Command::new(repo().join("deploy/agent/install.sh"))
        .arg("--root")
        .arg(&root)
        .args([
            "--bin",
            common::workspace_binary("xl-agent").to_str().unwrap(),
            "--model",
            "/nonexistent/m.onnx",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out).contains("make setup"), "{}", text(&out));
    assert!(!root.join("usr/bin/xl-agent").exists());

    let log = install_agent(&root, &["--agent-id", AGENT_ID]);
    assert!(log.contains("install: installed /usr/bin/xl-agent"), "{log}");
    assert!(
        log.contains("next: enrol this box")
            && log.contains("xl-agent enroll --center URL --token T --center-key-fingerprint F"),
        "{log}"
    );

    // The user and group systemd-sysusers made in the root.
    let user = etc_entry(&root, "passwd", "xueliang");
    let group = etc_entry(&root, "group", "xueliang");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), group[2].parse().unwrap());
    assert_eq!(user[3].parse::<u32>().unwrap(), gid, "the user's primary group is xueliang");
    assert_eq!(user[5], "/var/lib/xueliang", "home = the data directory");
    assert_eq!(user[6], "/usr/sbin/nologin", "no login");
    assert!(uid > 0 && uid < 1000, "a system user: {uid}");

    let files = [
        ("usr/bin/xl-agent", 0o755),
        ("usr/lib/xueliang/libonnxruntime.so.1", 0o644),
        ("usr/share/xueliang/models/nanodet_g416_coco.onnx", 0o644),
        ("usr/share/xueliang/models/nanodet_g416_coco.card.toml", 0o644),
        ("usr/share/xueliang/models/nanodet_g416_coco.onnx.sha256", 0o644),
        ("usr/lib/sysusers.d/xueliang.conf", 0o644),
        ("usr/lib/tmpfiles.d/xueliang.conf", 0o644),
        ("etc/systemd/system/xl-agent.service", 0o644),
    ];
    for (rel, mode) in files {
        assert_owned(&root, rel, mode, 0, 0);
    }
    assert!(same_file(&common::workspace_binary("xl-agent"), &root.join("usr/bin/xl-agent")));
    assert!(same_file(
        &cached("onnxruntime/libonnxruntime.so.1.31.1"),
        &root.join("usr/lib/xueliang/libonnxruntime.so.1")
    ));
    assert!(same_file(
        &cached("models/nanodet_g416_coco.card.toml"),
        &root.join(MODELS).join("nanodet_g416_coco.card.toml")
    ));
    assert!(same_file(
        &repo().join("deploy/agent/xl-agent.service"),
        &root.join("etc/systemd/system/xl-agent.service")
    ));
    assert_eq!(
        std::fs::read_link(
            root.join("etc/systemd/system/multi-user.target.wants/xl-agent.service")
        )
        .unwrap(),
        Path::new("/etc/systemd/system/xl-agent.service"),
        "enabled as `systemctl enable` would"
    );
    assert_owned(&root, "var/lib/xueliang", 0o750, uid, gid);
    assert_owned(&root, "etc/xueliang", 0o750, 0, gid);
    assert_owned(&root, "etc/xueliang/agent.toml", 0o640, 0, gid);

    // The checksum the agent's doctor checks the model against: sha256sum's format, and right.
    let sums =
        std::fs::read_to_string(root.join(MODELS).join("nanodet_g416_coco.onnx.sha256")).unwrap();
    let (hash, name) = sums.trim_end().split_once("  ").expect("HASH  NAME");
    assert!(
        hash.len() == 64
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && name == "nanodet_g416_coco.onnx",
        "{sums}"
    );
    run(Command::new("sha256sum")
        .args(["--strict", "-c", "nanodet_g416_coco.onnx.sha256"])
        .current_dir(root.join(MODELS)));

    // The config from the template.
    let config_path = root.join("etc/xueliang/agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    for line in [
        &format!("agent_id = \"{AGENT_ID}\""),
        "data_dir = \"/var/lib/xueliang\"",
        "timezone = \"Asia/Shanghai\"",
        "path = \"/usr/share/xueliang/models/nanodet_g416_coco.onnx\"",
        "[mqtt]",
        "url = \"mqtt://xl-center.invalid:1883\"",
    ] {
        assert!(config.lines().any(|l| l == line), "the config has the line {line}:\n{config}");
    }
    assert!(
        config.contains("xl-agent enroll --center URL --token T --center-key-fingerprint F"),
        "it says how to enrol:\n{config}"
    );
    let placeholder = config
        .split('@')
        .skip(1)
        .step_by(2)
        .find(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    assert_eq!(placeholder, None, "every @PLACEHOLDER@ filled:\n{config}");
    // check-config (on a copy whose model path points into the root) accepts it as it is: no
    // cameras yet (enrolment brings them), and a placeholder broker it does not try to reach.
    let in_root = |text: &str| {
        text.replace("/usr/share/xueliang", root.join("usr/share/xueliang").to_str().unwrap())
    };
    let check = |text: &str| {
        let copy = dir.path().join("check.toml");
        std::fs::write(&copy, text).unwrap();
        Command::new(common::workspace_binary("xl-agent"))
            .arg("check-config")
            .arg(&copy)
            .output()
            .unwrap()
    };
    let out = check(&in_root(&config));
    assert!(
        out.status.success() && text(&out).contains("ok (0 cameras, 0 zones, 0 lines, 0 rules)"),
        "{}",
        text(&out)
    );
    // Its commented example (lines starting with '#' and no space) is a valid config too.
    let uncommented: String = config
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let out = check(&in_root(&uncommented));
    assert!(
        out.status.success() && text(&out).contains("ok (1 cameras, 1 zones, 0 lines, 1 rules)"),
        "{}",
        text(&out)
    );

    // Enrolment against a live center edits the installed config in place.
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        passwords: true,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let api = common::Api::admin(center.http_addr).await;
    let created = api.enrolment("east-village-03").await;
    let token = created["token"].as_str().unwrap().to_owned();
    // The fingerprint of the center's key, as the command the county shows carries it.
    let fingerprint = created["command"].as_str().unwrap().rsplit(' ').next().unwrap().to_owned();
    // --data-dir: the root's data directory (on the box it is the config's, /var/lib/xueliang).
    let data_dir = root.join("var/lib/xueliang");
    run(Command::new(common::workspace_binary("xl-agent"))
        .args([
            "enroll",
            "--center",
            &format!("http://{}", center.http_addr),
            "--token",
            &token,
            "--center-key-fingerprint",
            &fingerprint,
            "--config",
        ])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(&data_dir));
    shutdown.cancel();
    center.join().await;
    let enrolled = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        enrolled.starts_with("# xl-agent configuration of this edge box"),
        "the template's comments stay:\n{enrolled}"
    );
    assert!(
        enrolled.contains("agent_id = \"east-village-03\"")
            && !enrolled.contains("xl-center.invalid"),
        "{enrolled}"
    );
    assert_owned(&root, "etc/xueliang/agent.toml", 0o640, 0, gid);
    let out = check(&in_root(&enrolled));
    assert!(out.status.success(), "the enrolled config passes check-config: {}", text(&out));
    for key in std::fs::read_dir(&data_dir).unwrap() {
        let meta = key.unwrap().metadata().unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "the box's key belongs to the service's user"
        );
    }

    // Upgrade: the enrolled box holds undelivered alarms, and runs an older xl-agent.
    let outbox = data_dir.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(outbox.join("undelivered-alarm"), b"an alarm waiting for its receipt").unwrap();
    let kept_mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (config_mtime, outbox_mtime) =
        (kept_mtime(&config_path), kept_mtime(&outbox.join("undelivered-alarm")));
    std::fs::write(root.join("usr/bin/xl-agent"), b"#!/bin/sh\necho an older xl-agent\n").unwrap();

    let log = install_agent(&root, &["--agent-id", "another-id"]);
    assert!(log.contains("install: upgraded /usr/bin/xl-agent"), "{log}");
    assert!(log.contains("/usr/share/xueliang/models/nanodet_g416_coco.onnx unchanged"), "{log}");
    assert!(log.contains("/etc/xueliang/agent.toml kept as it is"), "{log}");
    assert!(!log.contains("next: enrol"), "the box is enrolled: {log}");
    assert!(
        same_file(&common::workspace_binary("xl-agent"), &root.join("usr/bin/xl-agent")),
        "the binary was replaced"
    );
    assert_owned(&root, "usr/bin/xl-agent", 0o755, 0, 0);
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), enrolled, "the config is untouched");
    assert_eq!(kept_mtime(&config_path), config_mtime);
    assert_owned(&root, "etc/xueliang/agent.toml", 0o640, 0, gid);
    assert_eq!(
        std::fs::read(outbox.join("undelivered-alarm")).unwrap(),
        b"an alarm waiting for its receipt"
    );
    assert_eq!(
        kept_mtime(&outbox.join("undelivered-alarm")),
        outbox_mtime,
        "the outbox is untouched"
    );
    assert_owned(&root, "var/lib/xueliang", 0o750, uid, gid);
    assert_eq!(
        etc_entry(&root, "passwd", "xueliang")[2].parse::<u32>().unwrap(),
        uid,
        "the same user"
    );
    let leftovers: Vec<_> =
        walk(&root).into_iter().filter(|p| p.to_string_lossy().ends_with(".xl-new")).collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[test]
fn the_installers_refuse_other_architectures_and_programs_built_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_arg = root.to_str().unwrap();
    let x86_64_agent = common::workspace_binary("xl-agent");
    let refused = |script: &str, args: &[&str]| {
        let out = Command::new(repo().join(script)).args(args).output().unwrap();
        assert!(!out.status.success(), "{script} {args:?} refused:\n{}", text(&out));
        assert!(!root.join("usr/bin").exists(), "nothing installed");
        text(&out)
    };
    let agent = "deploy/agent/install.sh";
    let out = refused(agent, &["--root", root_arg, "--arch", "armv7l"]);
    assert!(
        out.contains("armv7l (32-bit ARM) is not supported: xueliang runs on x86_64 and aarch64"),
        "{out}"
    );
    let out = refused("deploy/center/install.sh", &["--root", root_arg, "--arch", "riscv64"]);
    assert!(out.contains("riscv64 is not supported: xueliang runs on x86_64 and aarch64"), "{out}");
    // This machine's program for the image of an aarch64 box.
    let out = refused(
        agent,
        &["--root", root_arg, "--arch", "arm64", "--bin", x86_64_agent.to_str().unwrap()],
    );
    assert!(
        out.contains(&format!("--bin {} is for x86_64, not for aarch64", x86_64_agent.display())),
        "{out}"
    );
    // --arch is for images only (--bin /nonexistent: nothing could be installed anyway).
    let out = refused(agent, &["--arch", "aarch64", "--bin", "/nonexistent"]);
    assert!(
        out.contains(
            "--arch aarch64, but this machine is x86_64: --arch is for the image of another box"
        ),
        "{out}"
    );
}

#[test]
fn center_installs_then_upgrades_in_place_keeping_its_settings() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install_center(root);
    for (rel, mode) in [
        ("usr/bin/xl-center", 0o755),
        ("usr/sbin/xl-center-backup", 0o755),
        ("usr/sbin/xl-center-restore", 0o755),
        ("etc/systemd/system/xl-center.service", 0o644),
        ("etc/xueliang/center.env", 0o600),
    ] {
        assert_owned(root, rel, mode, 0, 0);
    }
    assert!(root.join("etc/systemd/system/multi-user.target.wants/xl-center.service").is_symlink());
    broker_works_as_installed(root);

    let env = root.join("etc/xueliang/center.env");
    let edited = "XL_CENTER_OPTS=\"--broker-url mqtt://127.0.0.1:1883 --broker-accounts --http 127.0.0.1:8080\"\n";
    std::fs::write(&env, edited).unwrap();
    std::fs::write(root.join("usr/bin/xl-center"), b"old").unwrap();
    let log = install_center(root);
    assert!(
        log.contains("upgraded /usr/bin/xl-center")
            && log.contains("/etc/xueliang/center.env kept"),
        "{log}"
    );
    assert!(same_file(&common::workspace_binary("xl-center"), &root.join("usr/bin/xl-center")));
    assert_eq!(std::fs::read_to_string(&env).unwrap(), edited);
    assert_owned(root, "etc/xueliang/center.env", 0o600, 0, 0);

    // Settings of an earlier version that this one refuses (the embedded broker in plain MQTT
    // for other machines) stop the installer before anything changes, saying what to add.
    let earlier = "XL_CENTER_OPTS=\"--mqtt-listen 0.0.0.0:1883 --mqtt-passwords\"\n";
    std::fs::write(&env, earlier).unwrap();
    std::fs::write(root.join("usr/bin/xl-center"), b"old").unwrap();
    let out = center_installer(root).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("--allow-plain-mqtt"), "{}", text(&out));
    assert_eq!(std::fs::read(root.join("usr/bin/xl-center")).unwrap(), b"old");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), earlier);
}

/// The county's broker as the center's installer set it up in `root`: the shipped settings,
/// certificates made for this host, and accounts whose admin is the center's login, with the
/// password the installer wrote into center.env. Mosquitto started on them (only the ports and
/// paths moved into `root`) lets that login administer the accounts, and nobody else in.
fn broker_works_as_installed(root: &Path) {
    let env = std::fs::read_to_string(root.join("etc/xueliang/center.env")).unwrap();
    let password = env.lines().find_map(|l| l.strip_prefix("XL_BROKER_PASSWORD=")).unwrap();
    assert!(password.len() >= 24 && password != "CHANGE-ME", "{password}");
    assert!(env.contains("--broker-accounts"), "{env}");
    assert!(env.contains("--agent-mqtt-url mqtts://center.county.test:8883 "), "{env}");
    let accounts = root.join("var/lib/mosquitto/dynamic-security.json");
    assert_eq!(std::fs::metadata(&accounts).unwrap().permissions().mode() & 0o777, 0o600);
    let opts = env.lines().find(|l| l.starts_with("XL_CENTER_OPTS=")).unwrap();
    assert!(opts.contains("--http-tls-cert") && !opts.contains("--allow-plain-http"), "{opts}");
    let dropin =
        std::fs::read_to_string(root.join("etc/systemd/system/xl-center.service.d/https.conf"))
            .unwrap();
    assert!(dropin.contains("LoadCredential=server.pem:/etc/xueliang/tls/server.pem"), "{dropin}");
    let certs = root.join("etc/mosquitto/certs");
    for file in ["ca.pem", "server.pem", "server.key"] {
        assert!(same_file(&root.join("etc/xueliang/tls").join(file), &certs.join(file)), "{file}");
    }
    let installed =
        std::fs::read_to_string(root.join("etc/mosquitto/conf.d/xueliang.conf")).unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, tls_port) = (free(), free());
    let conf: String = installed
        .lines()
        .map(|line| {
            let line = match line.split_whitespace().next() {
                Some("listener") if line.contains("8883") => {
                    format!("listener {tls_port} 127.0.0.1")
                }
                Some("listener") => format!("listener {port} 127.0.0.1"),
                Some("cafile" | "certfile" | "keyfile" | "plugin_opt_config_file") => {
                    line.replacen(" /", &format!(" {}/", root.display()), 1)
                }
                Some("persistence") => "persistence false".into(),
                _ => line.to_owned(),
            };
            line + "\n"
        })
        .collect::<String>()
        + "user root\n";
    std::fs::write(root.join("mosquitto-test.conf"), conf).unwrap();
    let _mosquitto = common::Reaper(
        Command::new("mosquitto")
            .arg("-c")
            .arg(root.join("mosquitto-test.conf"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_listening(port);
    common::wait_listening(tls_port);
    let ctrl = |user: &str, password: &str| {
        Command::new("mosquitto_ctrl")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", password])
            .args(["dynsec", "listClients"])
            .output()
            .unwrap()
    };
    let out = ctrl("xl-center", password);
    assert!(out.status.success() && text(&out).contains("xl-center"), "{}", text(&out));
    assert!(!text(&ctrl("xl-center", "guess")).contains("xl-center\n"), "a wrong password");
}

#[test]
fn the_center_settings_examples_use_only_real_flags() {
    for example in ["center.env.mosquitto", "center.env.postgres"] {
        let path = repo().join("deploy/center").join(example);
        let env = std::fs::read_to_string(&path).unwrap();
        let opts = env
            .lines()
            .find_map(|l| l.strip_prefix("XL_CENTER_OPTS=\"")?.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{example}: one line XL_CENTER_OPTS=\"…\""));
        // The store, where one is named, parses as --store does.
        let store = env.lines().find_map(|l| l.strip_prefix("XL_STORE=")).unwrap_or("sled");
        // clap checks every flag and value before it prints the help, and starts nothing.
        let out = Command::new(common::workspace_binary("xl-center"))
            .arg("serve")
            .args(opts.split_whitespace())
            .args(["--store", store])
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: xl-center serve {opts}\n{}", text(&out));
        // Every flag the comments mention exists too.
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        let words = env.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
        for flag in
            words.filter(|w| w.starts_with("--")).map(|w| w.trim_end_matches(['.', ',', ':', ';']))
        {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{example} mentions {flag}, which xl-center serve does not have"
            );
        }
    }
}

#[test]
fn systemd_accepts_both_units() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install_agent(root, &["--agent-id", AGENT_ID]);
    install_center(root);
    // What the base system of an image brings: systemd's own units (sysinit.target,
    // network-online.target…) and chown (the center's ExecStartPre).
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(root.join("usr/lib/systemd/")));
    std::fs::copy("/usr/bin/chown", root.join("usr/bin/chown")).unwrap();

    // verify checks the units' syntax, their dependencies and that their programs exist in the
    // root; unknown or misspelt settings are warnings, on lines naming the unit file.
    let verify = || {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .args(["xl-agent.service", "xl-center.service"])
            .output()
            .expect("systemd-analyze is installed (Debian package systemd)")
    };
    let out = verify();
    let report = text(&out);
    assert!(out.status.success(), "systemd-analyze verify:\n{report}");
    let about_ours: Vec<&str> =
        report.lines().filter(|l| l.contains("xl-agent") || l.contains("xl-center")).collect();
    assert!(about_ours.is_empty(), "systemd-analyze verify warns:\n{report}");
    // It does look at the installed programs.
    std::fs::remove_file(root.join("usr/bin/xl-agent")).unwrap();
    let out = verify();
    assert!(!out.status.success() && text(&out).contains("/usr/bin/xl-agent"), "{}", text(&out));

    // The sandbox: an exposure of at most 2.0 on systemd's 0-10 scale ("OK" is up to 4.9).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(root.join("etc/systemd/system/xl-agent.service"))
        .arg(root.join("etc/systemd/system/xl-center.service"))
        .output()
        .unwrap();
    let report = text(&out);
    let scores: Vec<&str> =
        report.lines().filter(|l| l.contains("Overall exposure level")).collect();
    println!("{}", scores.join("\n"));
    assert!(out.status.success() && scores.len() == 2, "systemd-analyze security:\n{report}");
}
