//! Three counties, one city, one province, as the operator guide sets them up: each county
//! center (embedded store) on its own Mosquitto, which bridges to the city's; the city's center
//! (PostgreSQL) forwards on through its Mosquitto's bridge to the province's (PostgreSQL). Two
//! boxes in each county (`xl-scripted-agent`, the agent's real outbox and publisher, with a
//! real picture) raise alarms for twelve minutes, one county's opening events that are updated
//! and then end. A minute in, every county's line to the city is cut (a proxy between the
//! county's bridge and the city's broker drops it and refuses it) for ten minutes.
//!
//! While cut, the city gets nothing more; once the line is back, the city and the province
//! end with every county's every event exactly once, in the order its county stored them, as
//! its county has it now (the updated events ended), with a thumbnail of its picture and never
//! the picture itself, its clips listed; and nothing was refused. A full picture and a clip
//! asked for at the province come from the county through the city, as the box signed them,
//! audited at each tier. The city and the province count each county's events and show its
//! boxes online, and the province's console (a real browser) opens on its counties and drills
//! down to one county's events. `cargo test --test tiers -- --nocapture` prints the figures.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Reaper;
use common::chaos_proxy::CutProxy;
use xueliang_center::access::{Role, add_user};
use xueliang_center::domain::{AlarmRecord, Status};
use xueliang_center::running::key_path;
use xueliang_center::store::{Backend, Store};
use xueliang_proto::signing::SigningKey;
use xueliang_testkit::scenario;

const COUNTIES: [&str; 3] = ["330102", "330103", "330104"];
/// Each box's alarms per second.
const RATE: f64 = 1.0;
/// Before the cut, the cut, after it.
const BEFORE: Duration = Duration::from_secs(60);
const CUT: Duration = Duration::from_secs(600);
const AFTER: Duration = Duration::from_secs(60);

/// The city's routing: a unit of its own, which it may send to its counties' events.
const CITY_ROUTING: &str = r#"
[[unit]]
id = "city-swat"
name = "市公安局特警支队"
type = "police_station"

[[route]]
id = "everything"
units = ["city-swat"]
"#;
const SWAT_PASSWORD: &str = "swat-password-1";

/// Mosquitto with `conf` (its listener on loopback `port`, its files in `dir`), as root keeping
/// its persistence in `dir`.
fn mosquitto(dir: &Path, port: u16, conf: &str) -> Reaper {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("mosquitto.conf");
    std::fs::write(
        &path,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\n\
             log_dest file {}/mosquitto.log\n{conf}",
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto is installed (make setup)");
    common::wait_listening(port);
    Reaper(child)
}

/// The bridge of center `name`'s broker to the broker of the tier above on loopback `port`: its
/// events and boxes up, the receipts for it down (as deploy/mosquitto/bridge-up.conf has it).
fn bridge(name: &str, port: u16) -> String {
    format!(
        "connection up-{name}\naddress 127.0.0.1:{port}\nclientid bridge-{name}\n\
         cleansession false\nrestart_timeout 2\nkeepalive_interval 10\n\
         topic xl/v1/tier/{name}/event out 1\ntopic xl/v1/tier/{name}/fleet out 1\n\
         topic xl/v1/tier/{name}/receipt in 1\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `xl-center serve` in `data`, its API on loopback `port`, on the broker on loopback `mqtt`,
/// with `args`.
fn serve(data: &Path, port: u16, mqtt: u16, args: &[&str]) -> (Reaper, std::net::SocketAddr) {
    let child = std::process::Command::new(common::workspace_binary("xl-center"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .args(["--broker-url", &format!("mqtt://127.0.0.1:{mqtt}")])
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(data.join("center.log")).unwrap())
        .spawn()
        .unwrap();
    common::wait_listening(port);
    (Reaper(child), ([127, 0, 0, 1], port).into())
}

/// The center key in `data` (made now if none).
fn center_key(data: &Path) -> String {
    SigningKey::load_or_create(&key_path(data)).unwrap().public_key()
}

/// `below.toml` in `data` naming `centers` (name, data directory, API port).
fn below(data: &Path, centers: &[(&str, &Path, u16)]) {
    let line = |(n, d, port): &(&str, &Path, u16)| {
        format!("{n} = {{ key = \"{}\", url = \"http://127.0.0.1:{port}\" }}\n", center_key(d))
    };
    let lines: String = centers.iter().map(line).collect();
    std::fs::write(data.join("below.toml"), format!("[centers]\n{lines}")).unwrap();
}

/// Every event the boxes raised in `store` (not the centers' own supervision events, such as
/// a box gone quiet once it finished).
fn records(store: &Store) -> Vec<AlarmRecord> {
    let alarms = store.db().open_tree("alarms").unwrap();
    let all = alarms.iter().values().map(|v| serde_json::from_slice(&v.unwrap()).unwrap());
    all.filter(|r: &AlarmRecord| r.rule_id != "supervision").collect()
}

/// The forwarded records of `store` by county, each county's in the order it forwarded them.
fn by_county(store: &Store) -> BTreeMap<String, Vec<AlarmRecord>> {
    let mut out: BTreeMap<String, Vec<AlarmRecord>> = BTreeMap::new();
    for r in records(store) {
        let county = r.forwarded.as_ref().expect("forwarded").county.clone();
        out.entry(county).or_default().push(r);
    }
    for list in out.values_mut() {
        list.sort_by_key(|r| r.forwarded.as_ref().unwrap().seq);
    }
    out
}

/// How many `action` entries the audit trail of event `id` at `api` holds by the test's admin
/// as `above` (the tiers above it that asked: `above:`, …) names it, with `detail` if given.
async fn audited(
    api: &common::Api,
    id: &str,
    action: &str,
    above: &str,
    detail: Option<&str>,
) -> usize {
    let trail = api.json(&format!("/api/audit?target={id}")).await;
    let who = format!("{above}{}", common::TEST_ADMIN.0);
    trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action && e["user"] == who.as_str())
        .filter(|e| detail.is_none_or(|d| e["detail"] == d))
        .count()
}

/// A real picture of a camera's size, as boxes send.
fn picture(path: &Path) {
    let frame = image::RgbImage::from_fn(1280, 720, |x, y| {
        image::Rgb([(x / 5) as u8, (y / 3) as u8, ((x + y) / 8) as u8])
    });
    frame.save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_counties_forward_through_a_ten_minute_cut_to_a_city_and_a_province() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pg = xueliang_pgtest::shared().expect("PostgreSQL is installed (make setup)");
    let jpeg = root.join("picture.jpg");
    picture(&jpeg);
    let jpeg_bytes = std::fs::metadata(&jpeg).unwrap().len();

    // The province.
    let province = root.join("province");
    let city = root.join("city");
    common::add_test_admin(&province);
    common::add_test_admin(&city);
    // The city's own unit, and its police user.
    std::fs::write(city.join("routing.toml"), CITY_ROUTING).unwrap();
    add_user(
        &city.join("users.toml"),
        "swat",
        None,
        Role::Police,
        Some("city-swat"),
        SWAT_PASSWORD,
    )
    .unwrap();
    let (province_port, city_port) = (free_port(), free_port());
    let county_ports: Vec<u16> = COUNTIES.iter().map(|_| free_port()).collect();
    below(&province, &[("city", &city, city_port)]);
    let province_url = pg.database().unwrap();
    let province_mqtt = free_port();
    let _province_broker = mosquitto(&province.join("broker"), province_mqtt, "");
    let (_province_center, province_http) =
        serve(&province, province_port, province_mqtt, &["--store", &province_url]);

    // The city, forwarding to the province.
    let counties: Vec<PathBuf> = COUNTIES.iter().map(|c| root.join(c)).collect();
    let mut boxes_keys = HashMap::new();
    for (name, data) in COUNTIES.iter().zip(&counties) {
        for b in ["box-1", "box-2"] {
            let agent = format!("{name}-{b}");
            let key = scenario::prepare_keys(data, &agent, &root.join(&agent)).unwrap();
            boxes_keys.insert(agent, key);
        }
    }
    let entries: Vec<(&str, &Path, u16)> =
        (0..3).map(|i| (COUNTIES[i], counties[i].as_path(), county_ports[i])).collect();
    below(&city, &entries);
    let city_url = pg.database().unwrap();
    let city_mqtt = free_port();
    let _city_broker = mosquitto(&city.join("broker"), city_mqtt, &bridge("city", province_mqtt));
    let province_key = center_key(&province);
    let (_city_center, city_http) = serve(
        &city,
        city_port,
        city_mqtt,
        &["--store", &city_url, "--forward-as", "city", "--above-key", &province_key],
    );

    // The counties, each bridged to the city through a line the test cuts.
    let city_key = center_key(&city);
    let mut lines = Vec::new();
    let mut county_centers = Vec::new();
    let mut county_brokers = Vec::new();
    let mut boxes = Vec::new();
    for (i, (name, data)) in COUNTIES.iter().zip(&counties).enumerate() {
        common::add_test_admin(data);
        let line = CutProxy::start(city_mqtt).await;
        let mqtt = free_port();
        county_brokers.push(mosquitto(&data.join("broker"), mqtt, &bridge(name, line.port)));
        lines.push(line);
        let args = ["--store", "sled", "--forward-as", name, "--above-key", &city_key];
        let (center, http) = serve(data, county_ports[i], mqtt, &args);
        county_centers.push((center, http));
        // The last county's events are updated twice, the second time ending.
        let updates: &[&str] = if i == 2 { &["--event-updates", "2"] } else { &[] };
        for b in ["box-1", "box-2"] {
            let agent = format!("{name}-{b}");
            let count = ((BEFORE + CUT + AFTER).as_secs_f64() * RATE) as u32;
            let picture = ["--picture", jpeg.to_str().unwrap(), "--clip-seconds", "4"];
            boxes.push((
                agent.clone(),
                common::start_scripted_agent_at(
                    root,
                    &agent,
                    &format!("mqtt://127.0.0.1:{mqtt}"),
                    &boxes_keys[&agent],
                    count,
                    RATE,
                    &[updates, &picture].concat(),
                ),
            ));
        }
    }
    let logs = || {
        [&province, &city]
            .iter()
            .map(|d| common::log_tail(&d.join("center.log")))
            .collect::<String>()
            + &counties.iter().map(|d| common::log_tail(&d.join("center.log"))).collect::<String>()
    };

    let city_store = Store::open_with(&Backend::Postgres(city_url.clone()), &city).unwrap();
    let province_store =
        Store::open_with(&Backend::Postgres(province_url.clone()), &province).unwrap();

    // A minute of events flows up before the cut.
    tokio::time::sleep(BEFORE).await;
    let before_cut = city_store.len();
    assert!(before_cut > 0, "events reached the city before the cut:\n{}", logs());
    for line in &lines {
        line.cut();
    }
    let cut_at = Instant::now();
    // What was on its way when the line went down has landed.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let landed = city_store.len();
    tokio::time::sleep(CUT - Duration::from_secs(10)).await;
    let at_restore = city_store.len();
    assert_eq!(at_restore, landed, "nothing reached the city while every line was cut");
    // What the counties stored by now is what the city has to catch up on.
    let mut backlog = 0;
    for (_, http) in &county_centers {
        backlog += common::Api::admin(*http).await.json("/api/stats").await["alarms"]
            .as_u64()
            .unwrap() as usize;
    }
    for line in &lines {
        line.restore();
    }
    let restored_at = Instant::now();
    eprintln!(
        "city: {before_cut} events before the cut, {at_restore} when the lines came back after {:.0} s, \
         the counties then holding {backlog}",
        cut_at.elapsed().as_secs_f64()
    );
    while city_store.len() < backlog {
        assert!(
            restored_at.elapsed() < Duration::from_secs(300),
            "the city caught up within 300 s:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let city_caught_up = restored_at.elapsed();

    // Every box delivers to its county (which the cut never touched).
    for (agent, reaper) in &mut boxes {
        common::wait_delivered(root, reaper, agent).await;
    }

    let mut expected: BTreeMap<String, HashMap<String, AlarmRecord>> = BTreeMap::new();
    let total = 6 * ((BEFORE + CUT + AFTER).as_secs_f64() * RATE) as usize;

    // The city and the province catch up.
    let t0 = Instant::now();
    loop {
        let (at_city, at_province) = (records(&city_store).len(), records(&province_store).len());
        if at_city >= total && at_province >= total {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "city {at_city} and province {at_province} of {total} events within 300 s of the boxes' end:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = restored_at.elapsed();
    // Updates still on their way settle: the last county's events all end.
    let t0 = Instant::now();
    loop {
        let open = [&city_store, &province_store]
            .iter()
            .flat_map(|s| records(s))
            .filter(|r| r.state.as_str() != "ended")
            .count();
        if open == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{open} events still open:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A full picture, asked for at the province: fetched from the city, which fetches it from
    // the county; what arrives is the picture the box signed, and each center audits the view.
    let event = records(&province_store).into_iter().next().expect("an event");
    let county = event.forwarded.as_ref().unwrap().county.clone();
    let province_admin = common::Api::admin(province_http).await;
    let resp =
        province_admin.get(&format!("/api/alarms/{}/picture", event.id)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let full = resp.bytes().await.unwrap();
    assert_eq!(full.as_ref(), std::fs::read(&jpeg).unwrap().as_slice(), "the box's picture");
    let county_http = county_centers[COUNTIES.iter().position(|c| *c == county).unwrap()].1;
    let city_admin = common::Api::admin(city_http).await;
    let county_admin = common::Api::admin(county_http).await;
    for (api, who) in
        [(&province_admin, ""), (&city_admin, "above:"), (&county_admin, "above:above:")]
    {
        let views = audited(api, &event.id, "view_snapshot", who, None).await;
        assert!(views > 0, "the view by {who}{} is audited", common::TEST_ADMIN.0);
    }
    // Not signed by the city, the county serves nothing.
    let forged = reqwest::Client::new()
        .get(format!("http://{county_http}/api/tier/pictures/{}", event.id))
        .header("x-xl-tier-fetch", "AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // A clip, asked for at the province in ranges as a player asks: fetched whole from the
    // city, which fetches it from the county; it hashes to what the box signed, and each
    // center audits the view once.
    let event = records(&province_store)
        .into_iter()
        .find(|r| !r.clips.is_empty())
        .expect("an event with its clip at the province");
    let clip = event.clips[0].clone();
    let county = event.forwarded.as_ref().unwrap().county.clone();
    let url = format!("/api/alarms/{}/clips/{}", event.id, clip.clip_id);
    let first = province_admin.get(&url).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(first.status(), 206, "{}", logs());
    assert_eq!(first.bytes().await.unwrap().len(), 100);
    let whole = province_admin.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let whole = whole.bytes().await.unwrap();
    assert_eq!(whole.len() as u64, clip.size);
    assert_eq!(
        xueliang_proto::signing::hex(&xueliang_proto::signing::sha256(&whole)),
        clip.sha256,
        "the clip its box signed"
    );
    let county_http = county_centers[COUNTIES.iter().position(|c| *c == county).unwrap()].1;
    let county_admin = common::Api::admin(county_http).await;
    for (api, who) in
        [(&province_admin, ""), (&city_admin, "above:"), (&county_admin, "above:above:")]
    {
        let views = audited(api, &event.id, "view_clip", who, Some(&clip.clip_id)).await;
        assert_eq!(views, 1, "the viewing by {who}{} is audited once", common::TEST_ADMIN.0);
    }
    let forged = reqwest::Client::new()
        .get(format!("http://{county_http}/api/tier/clips/{}", clip.clip_id))
        .header("x-xl-tier-fetch", "AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // The city sends its own unit to a county's event: the county's case stays the county's
    // (its status, its steps); the unit sees it, receives it; the county acknowledging it
    // later changes the county's part only, at the city and the province.
    let event = records(&city_store)
        .into_iter()
        .find(|r| r.forwarded.as_ref().is_some_and(|f| f.county == COUNTIES[0]))
        .expect("an event of the first county at the city");
    let id = event.id.clone();
    let acknowledge =
        city_admin.post(&format!("/api/alarms/{id}/acknowledge")).json(&serde_json::json!({}));
    assert_eq!(acknowledge.send().await.unwrap().status(), 409, "the county's to acknowledge");
    let dispatch = city_admin
        .post(&format!("/api/alarms/{id}/dispatch"))
        .json(&serde_json::json!({"units": ["city-swat"], "note": "市特警协助"}));
    let sent: serde_json::Value = dispatch.send().await.unwrap().json().await.unwrap();
    assert_eq!(sent["own"]["dispatched_to"], serde_json::json!(["city-swat"]), "{sent}");
    assert_eq!(
        (sent["status"].as_str(), sent["timeline"].as_array().unwrap().len()),
        (Some("new"), 0)
    );
    let swat = common::Api::login(city_http, "swat", SWAT_PASSWORD).await;
    let theirs = swat.json("/api/alarms").await;
    let ids: Vec<&str> =
        theirs["alarms"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "the unit sees what it was sent, only");
    let received = swat.post(&format!("/api/alarms/{id}/receive")).json(&serde_json::json!({}));
    assert_eq!(received.send().await.unwrap().status(), 200);
    let county_admin = common::Api::admin(county_centers[0].1).await;
    let ack =
        county_admin.post(&format!("/api/alarms/{id}/acknowledge")).json(&serde_json::json!({}));
    assert_eq!(ack.send().await.unwrap().status(), 200, "the county acknowledges its event");
    let t0 = Instant::now();
    loop {
        let (at_city, at_province) =
            (city_store.get(&id).unwrap().unwrap(), province_store.get(&id).unwrap().unwrap());
        if at_city.status == Status::Acknowledged && at_province.status == Status::Acknowledged {
            let steps: Vec<&str> = at_city.own.timeline.iter().map(|s| s.action.as_str()).collect();
            assert_eq!(
                (at_city.own.dispatched_to.as_slice(), steps.as_slice()),
                (&["city-swat".to_owned()][..], &["dispatch", "receive"][..]),
                "the city's own dispatch stays"
            );
            assert!(
                at_province.own.is_empty(),
                "the city's dispatch is the city's: {:?}",
                at_province.own
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the county's step reached the city and the province within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The counties as each tier above counts them: every county, its events, its two boxes
    // (as its center reported them, the city passing them on to the province); at the province,
    // a county's events only, and the console's counties' view in a real browser.
    let each = total / 3;
    let mut shown = Vec::new();
    for (tier, api) in [("city", &city_admin), ("province", &province_admin)] {
        let t0 = Instant::now();
        let counties = loop {
            let answer = api.json("/api/counties?from=0").await;
            let counties = answer["counties"].as_array().unwrap().clone();
            if counties.iter().all(|c| c["boxes"].is_object()) {
                break counties;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(150),
                "{tier}: every county's boxes reported within 150 s: {answer}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let names: Vec<&str> = counties.iter().map(|c| c["county"].as_str().unwrap()).collect();
        assert_eq!(names, COUNTIES, "{tier}: the counties");
        // The boxes' events, and the county's own (its boxes went offline when they ended).
        let sum = |c: &serde_json::Value, by: &str| -> u64 {
            c[by].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
        };
        shown.clear();
        for c in &counties {
            assert_eq!(c["by_kind"]["zone_intrusion"].as_u64(), Some(each as u64), "{tier}: {c}");
            let events = c["events"].as_u64().unwrap();
            assert!(events == sum(c, "by_kind") && events == sum(c, "by_status"), "{tier}: {c}");
            assert_eq!(c["boxes"]["total"].as_u64(), Some(2), "{tier}: {c}");
            shown.push(format!("{}:{events}", c["county"].as_str().unwrap()));
        }
    }
    let listed =
        province_admin.json(&format!("/api/alarms?county={}&limit=500", COUNTIES[1])).await;
    let listed = listed["alarms"].as_array().unwrap();
    assert!(!listed.is_empty());
    for a in listed {
        assert_eq!(a["forwarded"]["county"], COUNTIES[1], "the county's events only: {a}");
    }
    let browser = common::browser_dir();
    let run = tokio::process::Command::new("node")
        .arg(browser.join("counties.mjs"))
        .current_dir(&browser)
        .env("XL_URL", format!("http://{province_http}"))
        .env("XL_USER", common::TEST_ADMIN.0)
        .env("XL_PASSWORD", common::TEST_ADMIN.1)
        .env("XL_COUNTIES", COUNTIES.join(","))
        .env("XL_EVENTS", shown.join(","))
        .env("XL_BOXES_EACH", "2")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test ends within 90 s")
        .expect("node runs (scripts/setup.sh)");
    let said = String::from_utf8_lossy(&out.stdout);
    eprint!("{said}");
    assert!(
        out.status.success() && said.lines().last() == Some("done"),
        "the province's console by county: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Stop the counties and read what they stored.
    let mut county_metrics = Vec::new();
    for (_, http) in &county_centers {
        county_metrics.push(common::metrics(*http).await);
    }
    for (center, _) in county_centers.drain(..) {
        drop(center);
    }
    for (name, data) in COUNTIES.iter().zip(&counties) {
        let store = Store::open(data).unwrap();
        let stored: HashMap<String, AlarmRecord> =
            records(&store).into_iter().map(|r| (r.id.clone(), r)).collect();
        assert_eq!(stored.len(), total / 3, "county {name} stored every alarm of its boxes");
        expected.insert((*name).to_owned(), stored);
    }

    for (tier, store, by) in
        [("city", &city_store, None), ("province", &province_store, Some("city"))]
    {
        let got = by_county(store);
        assert_eq!(got.keys().collect::<Vec<_>>(), COUNTIES.iter().collect::<Vec<_>>(), "{tier}");
        for (county, list) in &got {
            let want = &expected[county];
            // Exactly once: one record per event, every event there.
            let ids: HashSet<&str> = list.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids.len(), list.len(), "{tier}: {county}'s events once each");
            assert_eq!(ids, want.keys().map(String::as_str).collect(), "{tier}: {county}'s events");
            // In the county's order: the order it stored them in, each box's in the order raised.
            for pair in list.windows(2) {
                let (a, b) = (&want[&pair[0].id], &want[&pair[1].id]);
                assert!(
                    a.received_time_ms <= b.received_time_ms,
                    "{tier}: {county}'s {} (stored {}) before {} (stored {})",
                    a.id,
                    a.received_time_ms,
                    b.id,
                    b.received_time_ms
                );
            }
            let mut last_by_box: HashMap<&str, i64> = HashMap::new();
            for r in list {
                let last = last_by_box.entry(r.agent_id.as_str()).or_insert(i64::MIN);
                assert!(r.event_time_ms > *last, "{tier}: {}'s events in order", r.agent_id);
                *last = r.event_time_ms;
            }
            for r in list {
                let w = &want[&r.id];
                let f = r.forwarded.as_ref().unwrap();
                assert_eq!(f.by, by.unwrap_or(county), "{tier}: who forwarded {}", r.id);
                // As the county has it now: its state, its end, its peak.
                assert_eq!(
                    (r.state, r.ended_ms, r.peak_count, r.agent_id.as_str(), r.status),
                    (w.state, w.ended_ms, w.peak_count, w.agent_id.as_str(), w.status),
                    "{tier}: {}",
                    r.id
                );
                // A thumbnail, never the picture.
                assert!(
                    r.snapshot_bytes > 0 && (r.snapshot_bytes as u64) * 4 < jpeg_bytes,
                    "{tier}: {}'s thumbnail of {} bytes (the picture is {jpeg_bytes})",
                    r.id,
                    r.snapshot_bytes
                );
                assert_eq!(r.snapshot_sha256, w.snapshot_sha256, "the picture's signed hash");
                // Its clips described, their bytes left at the county.
                assert_eq!(r.clips, w.clips, "{tier}: {}'s clips", r.id);
            }
        }
    }

    // The thumbnail a user of each tier sees.
    for http in [city_http, province_http] {
        let admin = common::Api::admin(http).await;
        let page = admin.json("/api/alarms?limit=1").await;
        let id = page["alarms"][0]["id"].as_str().expect("a listed event").to_owned();
        let resp = admin.get(&format!("/api/alarms/{id}/snapshot")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).expect("a JPEG");
        assert_eq!((thumb.width(), thumb.height()), (320, 180));
    }

    // Nothing refused on the way; each county's backlog drained.
    let city_metrics = common::metrics(city_http).await;
    let province_metrics = common::metrics(province_http).await;
    for m in [&city_metrics, &province_metrics] {
        assert_eq!(common::counter(m, "xl_center_tier_refused_total"), 0);
        assert_eq!(common::counter(m, "xl_center_dead_letters_total"), 0);
    }
    let resends: u64 =
        county_metrics.iter().map(|m| common::counter(m, "xl_center_tier_resends_total")).sum();
    for m in &county_metrics {
        assert_eq!(common::counter(m, "xl_center_tier_backlog"), 0, "a county's backlog drained");
    }
    eprintln!(
        "tiers: {total} events; the city had the counties' {backlog} {:.1} s after the lines came back, \
         and the city and the province every one once {:.0} s after (the boxes raising to the end); \
         the counties went back to the last receipt {resends} times; the city received {} again \
         (stored before), the province {}; {:.0} s in all",
        city_caught_up.as_secs_f64(),
        caught_up.as_secs_f64(),
        common::counter(&city_metrics, "xl_center_tier_duplicates_total"),
        common::counter(&province_metrics, "xl_center_tier_duplicates_total"),
        began.elapsed().as_secs_f64()
    );
}
