//! The center as a lower platform of a GB/T 28181 platform above, played by SIPp (Debian's
//! `sip-tester`, a SIP peer nobody here wrote) with the scenario in `tests/sip/`: it challenges
//! the REGISTER and verifies the digest, receives keepalives, asks the catalog, device info and
//! a camera's status, receives an alarm for an event a real agent raised on real footage, goes
//! away and comes back; what it received is read from its message trace.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reaper, Scenario};
use xueliang_center::domain::AlarmRecord;

const CENTER_ID: &str = "34020000002000000001";
const PLATFORM_ID: &str = "34020000002000000002";
const CAMERA_CODE: &str = "34020000001320000001";
const PASSWORD: &str = "xl-gb-test";

/// A port free on loopback for both UDP and TCP.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `gb28181.toml` for a center listening on `center_port`, its platform SIPp on
/// `platform_port` over `transport`, and camera `agent`/campus-walkway as a channel.
fn mapping(
    center_port: u16,
    platform_port: u16,
    transport: &str,
    charset: &str,
    expires_s: u32,
    agent: &str,
) -> String {
    format!(
        r#"[center]
id = "{CENTER_ID}"
domain = "3402000000"
name = "青山县综治中心"
listen = "127.0.0.1:{center_port}"

[[platform]]
name = "市雪亮平台"
id = "{PLATFORM_ID}"
domain = "3402000000"
address = "127.0.0.1:{platform_port}"
transport = "{transport}"
password = "{PASSWORD}"
register_expires_s = {expires_s}
keepalive_s = 1
keepalive_misses = 2
charset = "{charset}"

[[camera]]
camera = "{agent}/campus-walkway"
id = "{CAMERA_CODE}"
name = "校园步道"
place = "青山村村委会门前"
longitude = 117.2834
latitude = 31.8617

[[camera]]
camera = "{agent}/back-gate"
id = "34020000001310000002"
name = "后门"
"#
    )
}

/// SIPp playing the platform on `port` with the scenario `tests/sip/{scenario}.xml`, its trace
/// of messages in `dir/{name}.log`.
struct Sipp {
    _process: Reaper,
    trace: PathBuf,
    errors: PathBuf,
}

impl Sipp {
    fn start(dir: &Path, name: &str, port: u16, transport: &str) -> Self {
        Self::playing("upper-platform", dir, name, port, transport)
    }

    fn playing(scenario: &str, dir: &Path, name: &str, port: u16, transport: &str) -> Self {
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/sip/{scenario}.xml"));
        let (trace, errors) = (dir.join(format!("{name}.log")), dir.join(format!("{name}.errors")));
        let process = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", transport, "-nostdin"])
            // A call that ended is forgotten at once: a registration's refresh, on the same
            // Call-ID, is then a new call of the scenario, as a platform sees it.
            .args(["-deadcall_wait", "100"])
            .args(["-trace_msg", "-message_file"])
            .arg(&trace)
            .args(["-trace_err", "-error_file"])
            .arg(&errors)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp runs (Debian's sip-tester; make test installs it)");
        let sipp = Self { _process: Reaper(process), trace, errors };
        // SIPp listens before it writes its trace; a moment is enough on loopback.
        std::thread::sleep(Duration::from_millis(500));
        sipp
    }

    /// What SIPp received or sent so far.
    fn seen(&self) -> Vec<Seen> {
        parse_trace(&std::fs::read(&self.trace).unwrap_or_default())
    }

    /// The scenario's own failures (unexpected messages, a refused digest), as SIPp logged them.
    fn errors(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
    }
}

/// One message in SIPp's trace.
#[derive(Debug, Clone)]
struct Seen {
    /// Received by SIPp (else sent by it).
    received: bool,
    /// The start line and headers.
    head: String,
    /// The body, decoded as it declares (GB2312 or UTF-8).
    body: String,
}

impl Seen {
    fn start_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The first `<name>` element's text in the body.
    fn field(&self, name: &str) -> Option<String> {
        let start = self.body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = self.body[start..].find(&format!("</{name}>"))? + start;
        Some(self.body[start..end].to_owned())
    }

    fn cmd(&self) -> Option<String> {
        self.field("CmdType")
    }

    /// A MESSAGE the center sent with CmdType `cmd`.
    fn is_message(&self, cmd: &str) -> bool {
        self.received
            && self.start_line().starts_with("MESSAGE ")
            && self.cmd().as_deref() == Some(cmd)
    }
}

fn parse_trace(bytes: &[u8]) -> Vec<Seen> {
    let text = encoding_rs::mem::decode_latin1(bytes);
    let marker = "-----------------------------------------------";
    let mut out = Vec::new();
    for block in text.split(marker).skip(1) {
        let mut lines = block.splitn(3, '\n');
        let (_time, what, rest) =
            (lines.next(), lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
        let received = what.contains("message received");
        let message = rest.trim_start_matches(['\r', '\n']);
        let (head, body) = match message.find("\r\n\r\n") {
            Some(i) => (&message[..i], &message[i + 4..]),
            None => (message, ""),
        };
        // Back to the bytes SIPp logged, then decoded as the document says.
        let raw: Vec<u8> = body.chars().map(|c| c as u32 as u8).collect();
        let body = if body.contains("encoding=\"GB2312\"") {
            encoding_rs::GBK.decode(&raw).0.into_owned()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        out.push(Seen { received, head: head.to_owned(), body: body.trim_end().to_owned() });
    }
    out
}

/// Waits up to `within` for `found` to return something from SIPp's trace.
async fn wait_for<T>(
    sipp: &Sipp,
    within: Duration,
    what: &str,
    found: impl Fn(&[Seen]) -> Option<T>,
) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(t) = found(&sipp.seen()) {
            return t;
        }
        assert!(
            t0.elapsed() < within,
            "the platform did not see {what} within {within:?}; it saw:\n{}\nSIPp errors:\n{}",
            sipp.seen()
                .iter()
                .map(|s| format!("{} ({})", s.start_line(), s.cmd().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("\n"),
            sipp.errors()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The registration as the platform saw it: challenged, then accepted with the digest, asking
/// for `expires` seconds.
async fn assert_registered(sipp: &Sipp, expires: u32) {
    wait_for(sipp, Duration::from_secs(60), "a REGISTER answered 200 after its digest", |seen| {
        let answered = seen.iter().position(|s| {
            s.received
                && s.start_line().starts_with("REGISTER ")
                && s.head.contains("Authorization: Digest")
        })?;
        seen[answered..].iter().find(|s| !s.received && s.start_line() == "SIP/2.0 200 OK").cloned()
    })
    .await;
    let seen = sipp.seen();
    let first =
        seen.iter().find(|s| s.received && s.start_line().starts_with("REGISTER ")).unwrap();
    assert!(first.head.contains(&format!("Expires: {expires}\r\n")), "{}", first.head);
    assert!(first.head.contains(&format!("From: <sip:{CENTER_ID}@3402000000>")), "{}", first.head);
    assert!(seen.iter().any(|s| !s.received && s.start_line() == "SIP/2.0 401 Unauthorized"));
    assert!(!seen.iter().any(|s| s.start_line().contains("403")), "the digest was refused");
    let auth = seen.iter().find(|s| s.head.contains("Authorization: Digest")).unwrap();
    assert!(auth.head.contains(&format!("username=\"{CENTER_ID}\"")), "{}", auth.head);
    assert!(auth.head.contains("realm=\"3402000000\""), "{}", auth.head);
}

/// The center's answers to the scenario's queries, and its keepalives.
async fn assert_answers(sipp: &Sipp) {
    let keepalive = wait_for(sipp, Duration::from_secs(30), "a keepalive", |seen| {
        seen.iter().find(|s| s.is_message("Keepalive")).cloned()
    })
    .await;
    assert_eq!(keepalive.field("DeviceID").as_deref(), Some(CENTER_ID));
    assert_eq!(keepalive.field("Status").as_deref(), Some("OK"));

    let catalog = wait_for(sipp, Duration::from_secs(30), "the catalog", |seen| {
        seen.iter().find(|s| s.is_message("Catalog")).cloned()
    })
    .await;
    assert!(catalog.head.contains("Content-Type: Application/MANSCDP+xml"), "{}", catalog.head);
    assert_eq!(catalog.field("SN").as_deref(), Some("17430"), "{}", catalog.body);
    assert_eq!(catalog.field("SumNum").as_deref(), Some("2"));
    assert!(catalog.body.contains("<DeviceList Num=\"2\">"), "{}", catalog.body);
    let items: Vec<&str> = catalog.body.split("<Item>").skip(1).collect();
    let walkway = items.iter().find(|i| i.contains(CAMERA_CODE)).expect("the walkway is a channel");
    for field in [
        "<Name>校园步道</Name>",
        "<Address>青山村村委会门前</Address>",
        "<CivilCode>340200</CivilCode>",
        &format!("<ParentID>{CENTER_ID}</ParentID>"),
        "<Longitude>117.2834</Longitude>",
        "<Latitude>31.8617</Latitude>",
    ] {
        assert!(walkway.contains(field), "{field} not in {walkway}");
    }
    let back_gate = items.iter().find(|i| i.contains("34020000001310000002")).unwrap();
    assert!(
        back_gate.contains("<Status>OFF</Status>"),
        "a camera no box reports is off: {back_gate}"
    );

    let info = wait_for(sipp, Duration::from_secs(10), "the device info", |seen| {
        seen.iter().find(|s| s.is_message("DeviceInfo")).cloned()
    })
    .await;
    assert_eq!(info.field("DeviceID").as_deref(), Some(CENTER_ID));
    assert_eq!(info.field("DeviceName").as_deref(), Some("青山县综治中心"));
    assert_eq!(
        (info.field("Result").as_deref(), info.field("Channel").as_deref()),
        (Some("OK"), Some("2"))
    );

    let status = wait_for(sipp, Duration::from_secs(10), "the camera's status", |seen| {
        seen.iter().find(|s| s.is_message("DeviceStatus")).cloned()
    })
    .await;
    assert_eq!(status.field("DeviceID").as_deref(), Some(CAMERA_CODE));
    assert_eq!(status.field("Result").as_deref(), Some("OK"));
    // The scenario expected 488 for the PTZ command and 400 for the broken document: anything
    // else is an unexpected message in its error log.
    assert!(!sipp.errors().contains("unexpected"), "{}", sipp.errors());
}

/// The alarm SIPp received for event `id`, if it did.
fn alarm_of<'a>(seen: &'a [Seen], id: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| {
            s.is_message("Alarm") && s.field("AlarmDescription").is_some_and(|d| d.contains(id))
        })
        .collect()
}

/// `ms` as the local time of Asia/Shanghai, as alarms carry it.
fn beijing(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Sends `datagram` to the center's SIP port from a socket of its own; the answer's start line
/// within 3 s, if any.
fn raw_sip(center: SocketAddr, datagram: &[u8]) -> Option<String> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket.send_to(datagram, center).unwrap();
    let mut buf = vec![0; 65536];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n]).lines().next().map(str::to_owned)
}

/// A SIP request from `from` to the center, as a hostile or confused peer might send it.
fn request(method: &str, from: &str, local: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "{method} sip:{CENTER_ID}@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};rport;branch=z9hG4bK-{}\r\nFrom: <sip:{from}@3402000000>;tag=h1\r\nTo: <sip:{CENTER_ID}@3402000000>\r\nCall-ID: hostile-{}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        fastrand::u64(..),
        fastrand::u64(..),
        body.len()
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// A catalog query padded to 40 KB.
fn huge_query() -> Vec<u8> {
    let pad = "x".repeat(40_000);
    format!("<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>{CENTER_ID}</DeviceID><Pad>{pad}</Pad></Query>").into_bytes()
}

/// What the center says to hostile or confused SIP, and that it goes on working after it.
fn assert_hostile_sip_is_refused(center: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = socket.local_addr().unwrap().port();
    let answer = |bytes: Vec<u8>| {
        socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        socket.send_to(&bytes, center).unwrap();
        let mut buf = vec![0; 65536];
        socket.recv_from(&mut buf).ok().map(|(n, _)| {
            String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
        })
    };
    let query = b"<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000002000000001</DeviceID></Query>";
    let xml = "Application/MANSCDP+xml";
    // Not a platform of gb28181.toml: refused, and told nothing.
    assert_eq!(
        answer(request("MESSAGE", "34020000002000000099", local, xml, query)).as_deref(),
        Some("SIP/2.0 403 Forbidden")
    );
    // The platform's code, from another address: refused too.
    let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
    elsewhere.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let port = elsewhere.local_addr().unwrap().port();
    let forged = String::from_utf8(request("MESSAGE", PLATFORM_ID, port, xml, query)).unwrap();
    elsewhere.send_to(forged.replace("127.0.0.1:", "127.0.0.2:").as_bytes(), center).unwrap();
    let mut buf = vec![0; 65536];
    let n = elsewhere.recv_from(&mut buf).map(|(n, _)| n).unwrap_or(0);
    assert!(
        buf[..n].starts_with(b"SIP/2.0 403 Forbidden"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Declared GB2312, bytes that are not.
    let bad =
        b"<?xml version=\"1.0\" encoding=\"GB2312\"?><Query><CmdType>\xff\xff</CmdType></Query>";
    assert_eq!(
        answer(request("MESSAGE", PLATFORM_ID, local, xml, bad)).as_deref(),
        Some("SIP/2.0 415 Unsupported Media Type")
    );
    // An entity bomb.
    let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE q [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;\">]><Query><CmdType>&b;</CmdType><SN>1</SN><DeviceID>34020000002000000001</DeviceID></Query>";
    assert_eq!(
        answer(request("MESSAGE", PLATFORM_ID, local, xml, bomb)).as_deref(),
        Some("SIP/2.0 400 Bad Request")
    );
    // A huge document: the SIP stack reads 8 KiB of a datagram, so it arrives cut short.
    let big = answer(request("MESSAGE", PLATFORM_ID, local, xml, &huge_query()));
    assert_eq!(big.as_deref(), Some("SIP/2.0 400 Bad Request"));
    // Live video is not offered.
    let invite = answer(request("INVITE", PLATFORM_ID, local, "application/sdp", b"v=0\r\n"));
    assert_eq!(invite.as_deref(), Some("SIP/2.0 405 Method Not Allowed"));
    // Garbage, and a request cut short: no answer, no harm.
    assert_eq!(raw_sip(center, &[0xff; 900]), None);
    let cut = request("MESSAGE", PLATFORM_ID, local, xml, query);
    assert_eq!(raw_sip(center, &cut[..cut.len() / 2]), None);
}

/// The keys of an `xl-scripted-agent` box `agent` (state in `dir/{agent}`) and a mapping
/// (`dir/gb28181.toml`) for a center on a free port with its platform over UDP in GB2312:
/// the platform's port, the mapping, the center key.
fn scripted_box(dir: &Path, agent: &str) -> (u16, PathBuf, String) {
    let (center_port, platform_port) = (free_port(), free_port());
    let path = dir.join("gb28181.toml");
    std::fs::write(&path, mapping(center_port, platform_port, "udp", "GB2312", 3600, agent))
        .unwrap();
    let center_key =
        xueliang_testkit::scenario::prepare_keys(&dir.join("center"), agent, &dir.join(agent))
            .unwrap();
    (platform_port, path, center_key)
}

/// The ids of the events the center behind `api` stored.
async fn stored_ids(api: &common::Api) -> Vec<String> {
    let list = api.json("/api/alarms").await;
    let alarms = list["alarms"].as_array().unwrap();
    alarms.iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

async fn platform_state(api: &common::Api) -> serde_json::Value {
    api.json("/api/gb28181").await["platforms"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_platform_over_udp_sees_the_center_register_answer_and_report_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let (center_port, platform_port) = (free_port(), free_port());
    let agent = "gb-village";
    let path = dir.path().join("gb28181.toml");
    std::fs::write(&path, mapping(center_port, platform_port, "udp", "GB2312", 3600, agent))
        .unwrap();
    let first = Sipp::start(dir.path(), "platform-1", platform_port, "u1");
    let mut run = Scenario::start_both_tuned(
        dir.path(),
        agent,
        common::embedded_broker(),
        "",
        // Offline after 3 s of loss, to keep the test short.
        |c| c.cameras[0].offline_after_s = 3.0,
        |c| c.gb28181 = Some(path.clone()),
    )
    .await;
    let http = run.center.http_addr;
    let api = common::Api::admin(http).await;

    assert_registered(&first, 3600).await;
    assert_answers(&first).await;
    let state = platform_state(&api).await;
    assert_eq!(
        (state["state"].as_str(), state["id"].as_str()),
        (Some("registered"), Some(PLATFORM_ID)),
        "{state}"
    );

    // A real agent's event on real footage, as the platform is told of it.
    let event = common::wait_for_alarm_where(http, Duration::from_secs(120), |a| {
        a.kind == "zone_intrusion"
    })
    .await
    .expect("the walkway's intrusion within 120 s");
    let alarm = wait_for(&first, Duration::from_secs(30), "the intrusion's alarm", |seen| {
        alarm_of(seen, &event.id).first().map(|s| (*s).clone())
    })
    .await;
    assert!(
        alarm.body.starts_with("<?xml version=\"1.0\" encoding=\"GB2312\"?>"),
        "{}",
        alarm.body
    );
    assert!(alarm.field("SN").is_some_and(|sn| sn.parse::<u64>().is_ok()), "{}", alarm.body);
    assert_eq!(alarm.field("DeviceID").as_deref(), Some(CAMERA_CODE));
    assert_eq!(alarm.field("AlarmPriority").as_deref(), Some("2"), "high is priority 2");
    assert_eq!(alarm.field("AlarmMethod").as_deref(), Some("5"), "a video alarm");
    assert_eq!(alarm.field("AlarmTime"), Some(beijing(event.event_time_ms)));
    let description = alarm.field("AlarmDescription").unwrap();
    assert!(description.starts_with("区域入侵（高）：校园步道，"), "{description}");
    assert_eq!(
        (alarm.field("Longitude").as_deref(), alarm.field("Latitude").as_deref()),
        (Some("117.2834"), Some("31.8617"))
    );
    assert_eq!(alarm.field("AlarmType").as_deref(), Some("6"), "intrusion");
    assert_eq!(alarm.field("EventType").as_deref(), Some("1"), "entering");

    assert_hostile_sip_is_refused(SocketAddr::from(([127, 0, 0, 1], center_port)));
    let metrics = common::metrics(http).await;
    assert!(
        common::counter(&metrics, "xl_center_gb28181_requests_refused_total") >= 5,
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "xl_center_gb28181_registered{{platform=\"{PLATFORM_ID}\",name=\"市雪亮平台\"}} 1"
        )),
        "{metrics}"
    );

    // The platform restarts between two keepalives: it knows the center no more and refuses
    // its next keepalive; the center registers again at once.
    drop(first);
    let second = Sipp::start(dir.path(), "platform-2", platform_port, "u1");
    assert_registered(&second, 3600).await;
    let seen = second.seen();
    let refused =
        seen.iter().position(|s| !s.received && s.start_line() == "SIP/2.0 404 Not Found");
    let register = seen.iter().position(|s| s.received && s.start_line().starts_with("REGISTER "));
    assert!(refused < register && refused.is_some(), "registered again after a refused keepalive");

    // The platform goes away: its keepalives go unanswered and the center says so.
    drop(second);
    let t0 = Instant::now();
    while platform_state(&api).await["state"] == "registered" {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "still registered a minute after the platform left"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // An event while it is away: the camera goes dark, a device alarm.
    run.cut_camera();
    let offline =
        common::wait_for_alarm_where(http, Duration::from_secs(30), |a| a.kind == "camera_offline")
            .await
            .expect("a camera_offline event while the platform is away");
    run.restore_camera();

    // It comes back: the center registers again, and the alarm raised meanwhile arrives once.
    let third = Sipp::start(dir.path(), "platform-3", platform_port, "u1");
    assert_registered(&third, 3600).await;
    let lost = wait_for(&third, Duration::from_secs(60), "the offline camera's alarm", |seen| {
        alarm_of(seen, &offline.id).first().map(|s| (*s).clone())
    })
    .await;
    assert_eq!(lost.field("AlarmMethod").as_deref(), Some("2"), "a device alarm");
    assert_eq!(lost.field("AlarmType").as_deref(), Some("1"), "video loss");
    assert_eq!(lost.field("DeviceID").as_deref(), Some(CAMERA_CODE));

    // Every event stored so far reaches the platform, each exactly once across both runs.
    let list = api.json("/api/alarms?limit=500").await;
    let events: Vec<AlarmRecord> = serde_json::from_value(list["alarms"].clone()).unwrap();
    let reported: Vec<&AlarmRecord> =
        events.iter().filter(|e| e.kind != "camera_back" && e.agent_id == agent).collect();
    assert!(reported.len() >= 2, "{events:?}");
    let t0 = Instant::now();
    loop {
        let seen: Vec<Seen> = (1..=3)
            .flat_map(|n| {
                parse_trace(&std::fs::read(dir.path().join(format!("platform-{n}.log"))).unwrap())
            })
            .collect();
        let counts: Vec<(String, usize)> = reported
            .iter()
            .map(|e| (format!("{} {}", e.kind, e.id), alarm_of(&seen, &e.id).len()))
            .collect();
        assert!(counts.iter().all(|(_, n)| *n <= 1), "an event reported twice: {counts:?}");
        if counts.iter().all(|(_, n)| *n == 1) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not every event reached the platform: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let state = platform_state(&api).await;
    assert_eq!(state["state"], "registered", "{state}");
    assert!(state["registrations"].as_u64() >= Some(3), "{state}");
    assert!(state["keepalives_missed"].as_u64() >= Some(3), "{state}");
    assert!(!third.errors().contains("unexpected"), "{}", third.errors());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_platform_over_tcp_in_utf8_sees_the_center_register_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (center_port, platform_port) = (free_port(), free_port());
    let path = dir.path().join("gb28181.toml");
    std::fs::write(&path, mapping(center_port, platform_port, "tcp", "UTF-8", 30, "tcp-village"))
        .unwrap();
    let sipp = Sipp::start(dir.path(), "platform-tcp", platform_port, "t1");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.gb28181 = Some(path);
    let center =
        xueliang_center::running::start(config, shutdown.clone()).await.expect("center starts");
    assert_registered(&sipp, 30).await;
    assert_answers(&sipp).await;
    // Over TCP a huge document arrives whole, and is refused as too big.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", center_port)).unwrap();
    let local = tcp.local_addr().unwrap().port();
    let huge = request("MESSAGE", PLATFORM_ID, local, "Application/MANSCDP+xml", &huge_query());
    let huge = String::from_utf8(huge).unwrap().replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    std::io::Write::write_all(&mut tcp, huge.as_bytes()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0; 512];
    let n = std::io::Read::read(&mut tcp, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("SIP/2.0 413 Request Entity Too Large"), "{answer}");
    let seen = sipp.seen();
    let keepalive = seen.iter().find(|s| s.is_message("Keepalive")).unwrap();
    assert!(keepalive.head.contains("Via: SIP/2.0/TCP"), "{}", keepalive.head);
    assert!(
        keepalive.body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{}",
        keepalive.body
    );
    // Its registration lasts 30 s: refreshed at two thirds, with the same Call-ID.
    let registers = |seen: &[Seen]| -> Vec<String> {
        seen.iter()
            .filter(|s| {
                s.received
                    && s.head.starts_with("REGISTER ")
                    && s.head.contains("Authorization: Digest")
            })
            .map(|s| {
                s.head.lines().find(|l| l.starts_with("Call-ID:")).unwrap_or_default().to_owned()
            })
            .collect()
    };
    let calls = wait_for(&sipp, Duration::from_secs(40), "the registration refreshed", |seen| {
        let calls = registers(seen);
        (calls.len() >= 2).then_some(calls)
    })
    .await;
    assert_eq!(calls[0], calls[1], "a refresh keeps the registration's Call-ID");
    shutdown.cancel();
    center.join().await;
}

#[tokio::test]
async fn a_wrong_mapping_stops_the_center_with_where_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gb28181.toml");
    let text = mapping(5060, 5061, "udp", "GB2312", 3600, "v")
        .replace(CAMERA_CODE, "34020000001180000001");
    std::fs::write(&path, text).unwrap();
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.gb28181 = Some(path.clone());
    let error = match xueliang_center::running::start(config, Default::default()).await {
        Ok(_) => panic!("a center started with a wrong gb28181.toml"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        error,
        format!(
            "{}: line 21, column 6: camera \"v/campus-walkway\": id \"34020000001180000001\" has type 118 (digits 11-13); it must be 131 or 132",
            path.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_queued_while_the_platform_is_away_survive_a_center_restart_and_go_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = "restart-village";
    let (platform_port, path, center_key) = scripted_box(dir.path(), agent);
    let start_center = |shutdown: tokio_util::sync::CancellationToken| {
        let mut config = common::center_config(dir.path(), common::embedded_broker());
        config.gb28181 = Some(path.clone());
        xueliang_center::running::start(config, shutdown)
    };

    // No platform listens: five alarms are stored and wait in its queue.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let center = start_center(shutdown.clone()).await.expect("center starts");
    let url = format!("mqtt://{}", center.mqtt_addr);
    let mut scripted = common::start_scripted_agent(dir.path(), agent, &url, &center_key, "", 5);
    common::wait_delivered(dir.path(), &mut scripted, agent).await;
    let api = common::Api::admin(center.http_addr).await;
    let t0 = Instant::now();
    loop {
        let state = platform_state(&api).await;
        if state["alarms_waiting"] == 5 {
            assert_ne!(state["state"], "registered", "{state}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "five alarms not queued: {state}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ids = stored_ids(&api).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    shutdown.cancel();
    center.join().await;

    // The platform is there when the center comes back: each alarm arrives, once.
    let sipp = Sipp::start(dir.path(), "platform", platform_port, "u1");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let center = start_center(shutdown.clone()).await.expect("center starts again");
    assert_registered(&sipp, 3600).await;
    wait_for(&sipp, Duration::from_secs(30), "the five alarms", |seen| {
        ids.iter().all(|id| alarm_of(seen, id).len() == 1).then_some(())
    })
    .await;
    let seen = sipp.seen();
    let alarm = alarm_of(&seen, &ids[0])[0];
    // cam-0 has no code in gb28181.toml: the center's own stands for it.
    assert_eq!(alarm.field("DeviceID").as_deref(), Some(CENTER_ID));
    assert!(
        alarm.field("AlarmDescription").unwrap().contains("restart-village/cam-0"),
        "{}",
        alarm.body
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ids.iter().all(|id| alarm_of(&sipp.seen(), id).len() == 1), "an alarm sent twice");
    let api = common::Api::admin(center.http_addr).await;
    assert_eq!(platform_state(&api).await["alarms_waiting"], 0);
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_subscribed_to_alarms_gets_them_as_notify_in_its_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let agent = "subscribed-village";
    let (platform_port, path, center_key) = scripted_box(dir.path(), agent);
    let sipp = Sipp::playing("subscribing-platform", dir.path(), "platform", platform_port, "u1");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.gb28181 = Some(path);
    let center = xueliang_center::running::start(config, shutdown.clone()).await.unwrap();
    assert_registered(&sipp, 3600).await;
    let answer = wait_for(&sipp, Duration::from_secs(10), "the subscription accepted", |seen| {
        let at =
            seen.iter().position(|s| !s.received && s.start_line().starts_with("SUBSCRIBE "))?;
        seen[at..].iter().find(|s| s.received && s.start_line().starts_with("SIP/2.0 ")).cloned()
    })
    .await;
    assert_eq!(answer.start_line(), "SIP/2.0 200 OK", "{}", answer.head);
    assert!(answer.head.contains("Expires: 600"), "{}", answer.head);
    assert_eq!(answer.field("Result").as_deref(), Some("OK"), "{}", answer.body);

    // Three intrusions (high: priority 2, video: method 5), as the subscription asks for.
    let url = format!("mqtt://{}", center.mqtt_addr);
    let mut scripted = common::start_scripted_agent(dir.path(), agent, &url, &center_key, "", 3);
    common::wait_delivered(dir.path(), &mut scripted, agent).await;
    let api = common::Api::admin(center.http_addr).await;
    let ids = stored_ids(&api).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    let in_notify = |seen: &[Seen], id: &str| {
        seen.iter()
            .filter(|s| {
                s.received
                    && s.start_line().starts_with("NOTIFY ")
                    && s.cmd().as_deref() == Some("Alarm")
            })
            .filter(|s| s.field("AlarmDescription").is_some_and(|d| d.contains(id)))
            .count()
    };
    wait_for(&sipp, Duration::from_secs(30), "the three alarms by NOTIFY", |seen| {
        ids.iter().all(|id| in_notify(seen, id) == 1).then_some(())
    })
    .await;
    let seen = sipp.seen();
    let call_id = |s: &Seen| {
        s.head.lines().find(|l| l.starts_with("Call-ID:")).unwrap_or_default().to_owned()
    };
    let subscribe = seen.iter().find(|s| s.start_line().starts_with("SUBSCRIBE ")).unwrap();
    let our_tag = answer
        .head
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .unwrap()
        .to_owned();
    for notify in seen.iter().filter(|s| s.received && s.start_line().starts_with("NOTIFY ")) {
        assert_eq!(call_id(notify), call_id(subscribe), "in the subscription's dialog");
        assert!(notify.head.contains("Event: presence"), "{}", notify.head);
        assert!(notify.head.contains("Subscription-State: active;expires="), "{}", notify.head);
        assert!(
            notify.head.contains(&format!(";tag={our_tag}")),
            "from the center's end: {}",
            notify.head
        );
        assert_eq!(notify.field("AlarmPriority").as_deref(), Some("2"));
    }
    assert!(
        !seen.iter().any(|s| s.is_message("Alarm")),
        "an alarm went by MESSAGE despite the subscription"
    );
    assert!(!sipp.errors().contains("unexpected"), "{}", sipp.errors());
    shutdown.cancel();
    center.join().await;
}
