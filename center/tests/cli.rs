//! `xl-center` on the command line: its key for agents' configs, and clear errors at start.

use std::process::Command;

fn xl_center(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xl-center")).args(args).output().expect("xl-center runs")
}

#[test]
fn key_prints_the_line_for_agents_configs_and_keeps_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = xl_center(&["key", "--data-dir", data]);
    assert!(first.status.success());
    let line = String::from_utf8(first.stdout).unwrap();
    assert!(line.starts_with("center_key = \"") && line.trim_end().ends_with('"'), "{line}");
    assert_eq!(line.trim().len(), "center_key = \"\"".len() + 44);
    let again = xl_center(&["key", "--data-dir", data]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), line, "the same key every time");
}

#[test]
fn a_broken_agent_key_registry_stops_the_start_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(&keys, "[agents]\nvillage-7 = \"not-a-key\"\n").unwrap();
    let out = xl_center(&[
        "serve",
        "--data-dir",
        dir.path().join("store").to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--mqtt-listen",
        "127.0.0.1:0",
        "--agent-keys",
        keys.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "error: agent keys {}: agents.village-7: \"not-a-key\" is not a public key",
            keys.display()
        )),
        "{err}"
    );
}

fn xl_center_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xl-center"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xl-center runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn users_are_added_listed_and_given_new_passwords_with_clear_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = xl_center(&["user", "list", "--data-dir", data]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "no users yet: `xl-center user add LOGIN --role admin` makes one\n"
    );
    let out = xl_center(&[
        "user",
        "add",
        "zhang-san",
        "--role",
        "duty_officer",
        "--name",
        "张三",
        "--data-dir",
        data,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password is printed");
    assert_eq!(password.len(), 16);
    let out = xl_center_with_stdin(
        &[
            "user",
            "add",
            "pcs-a-1",
            "--role",
            "police",
            "--unit",
            "pcs-a",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        "a-chosen-password\n",
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "added pcs-a-1 (police, unit pcs-a)\n",
        "no password printed when chosen"
    );
    let listing =
        String::from_utf8(xl_center(&["user", "list", "--data-dir", data]).stdout).unwrap();
    let rows: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [vec!["pcs-a-1", "police", "pcs-a", "pcs-a-1"], vec!["zhang-san", "duty_officer", "张三"]]
    );
    let users = xueliang_center::access::Users::open(&dir.path().join("users.toml")).unwrap();
    assert!(
        users.verify("pcs-a-1", "a-chosen-password").is_some()
            && users.verify("zhang-san", password).is_some()
    );
    for (args, stdin, message) in [
        (
            vec!["user", "add", "zhang-san", "--role", "admin"],
            "",
            "error: user \"zhang-san\" exists already; use `xl-center user passwd zhang-san`",
        ),
        (
            vec!["user", "add", "li-si", "--role", "police"],
            "",
            "error: a police user needs --unit (the responder unit it belongs to)",
        ),
        (
            vec!["user", "add", "li-si", "--role", "admin", "--password-stdin"],
            "short\n",
            "error: passwords must have at least 10 characters",
        ),
        (
            vec!["user", "passwd", "wang-wu"],
            "",
            "error: no user \"wang-wu\" (users: pcs-a-1, zhang-san)",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--data-dir", data]);
        let out = xl_center_with_stdin(&args, stdin);
        assert!(!out.status.success());
        assert_eq!(String::from_utf8(out.stderr).unwrap().trim_end(), message, "{args:?}");
    }
    let out = xl_center(&["user", "add", "li-si", "--role", "boss", "--data-dir", data]);
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown role \"boss\" (roles: admin, duty_officer, police, installer)")
    );
    let out = xl_center_with_stdin(
        &["user", "passwd", "zhang-san", "--password-stdin", "--data-dir", data],
        "another-password\n",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "password of zhang-san changed\n");
    std::thread::sleep(
        xueliang_center::watched_file::RECHECK + std::time::Duration::from_millis(50),
    );
    assert!(
        users.verify("zhang-san", "another-password").is_some()
            && users.verify("zhang-san", password).is_none()
    );
}

#[test]
fn export_writes_json_lines_and_refuses_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let out = xl_center(&["export", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap().trim_end(),
        format!(
            "error: {} holds no alarm store (give --data-dir, or --store for PostgreSQL)",
            data.display()
        )
    );
    {
        let store = xueliang_center::store::Store::open(&data).unwrap();
        for (id, t) in [("b", 2), ("a", 1)] {
            let alarm = xueliang_proto::Alarm {
                id: id.into(),
                agent_id: "v".into(),
                event_time_ms: t,
                ..Default::default()
            };
            store
                .insert(&xueliang_center::domain::AlarmRecord::from_alarm(&alarm, 3), b"")
                .unwrap();
        }
        let out = xl_center(&["export", "--data-dir", data.to_str().unwrap()]);
        assert_eq!(
            String::from_utf8(out.stderr).unwrap().trim_end(),
            format!(
                "error: the store in {} is locked by a running xl-center (sled lets one process open it): stop the center first, or use GET /api/export as an admin",
                data.display()
            )
        );
    }
    let file = dir.path().join("alarms.jsonl");
    let out = xl_center(&[
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "exported 2 alarms\n");
    let ids: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, ["a", "b"], "oldest first");
}

#[test]
fn several_processes_are_refused_what_one_process_keeps_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |extra: &[&str]| {
        let args =
            [&["serve", "--data-dir", data.to_str().unwrap(), "--http", "127.0.0.1:0"], extra];
        let out = xl_center(&args.concat());
        assert!(!out.status.success(), "{extra:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let embedded = serve(&["--cluster", "county", "--broker-url", "mqtt://127.0.0.1:9"]);
    assert!(
        embedded.contains(
            "--cluster: several processes serve one county only from one PostgreSQL store \
             (--store postgres://…) and an external broker (--broker-url); the embedded store \
             is one process's"
        ),
        "{embedded}"
    );
    let named = serve(&["--cluster", "county/1", "--broker-url", "mqtt://127.0.0.1:9"]);
    assert!(named.contains("--cluster \"county/1\": a name of 1 to 64 letters"), "{named}");
    let no_broker = serve(&["--cluster", "county"]);
    assert!(no_broker.contains("--broker-url"), "{no_broker}");
}
