//! MANSCDP, the XML documents of GB/T 28181 carried in SIP `MESSAGE` bodies
//! (`Application/MANSCDP+xml`): the ones this center writes (keepalive, alarm, the answers to
//! catalog, device-info and device-status queries) and the reading of what a platform asks.
//! Documents are written in the platform's character set (GB2312 or UTF-8); what is read is
//! limited in size, must be well-formed, and may carry no DOCTYPE (no entities to expand).

use quick_xml::events::Event;

use super::mapping::{Channel, Charset};

/// The largest document read from a platform; queries are a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// How a kind of event is reported: its alarm method, its type in the standard's table for
/// that method, and its name in the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmKind {
    /// AlarmMethod: 2 device alarm, 5 video alarm, 7 other.
    pub method: u8,
    /// Info/AlarmType in the method's table; `None` where the standard has none.
    pub alarm_type: Option<u8>,
    /// The kind in Chinese, for AlarmDescription.
    pub label: &'static str,
}

/// How each kind the standard can carry is reported; other kinds (the center's own
/// supervision events, a camera's return) are not reported.
pub fn alarm_kind(kind: &str) -> Option<AlarmKind> {
    let (method, alarm_type, label) = match kind {
        // Video alarms (method 5): 5 tripwire, 6 intrusion, 8 loitering, 10 density,
        // 11 video abnormal; a stopped vehicle is a stationary object (3, left object).
        "line_crossing" => (5, Some(5), "越线"),
        "zone_intrusion" => (5, Some(6), "区域入侵"),
        "vehicle_stopped" => (5, Some(3), "车辆违停"),
        "loitering" => (5, Some(8), "徘徊"),
        "crowding" => (5, Some(10), "人员聚集"),
        "camera_tamper" => (5, Some(11), "摄像机遮挡/移位"),
        // Device alarm (method 2): 1 video loss.
        "camera_offline" => (2, Some(1), "摄像机离线"),
        // No type for fire or smoke in either table: "other alarm".
        "fire_smoke" => (7, None, "烟火"),
        _ => return None,
    };
    Some(AlarmKind { method, alarm_type, label })
}

/// AlarmPriority (1 highest to 4) of a severity.
pub fn priority(severity: &str) -> u8 {
    match severity {
        "critical" => 1,
        "high" => 2,
        "medium" => 3,
        _ => 4,
    }
}

/// A severity in Chinese, for AlarmDescription.
pub fn severity_label(severity: &str) -> &'static str {
    match severity {
        "critical" => "紧急",
        "high" => "高",
        "medium" => "中",
        "low" => "低",
        _ => "提示",
    }
}

/// `s` with XML's special characters escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A document being written: elements one per line, as platforms' own are.
struct Doc(String);

impl Doc {
    fn new(root: &str) -> Self {
        Self(format!("<{root}>\n"))
    }

    fn field(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let value = escape(&value.to_string());
        self.0.push_str(&format!("<{name}>{value}</{name}>\n"));
        self
    }

    fn raw(mut self, xml: &str) -> Self {
        self.0.push_str(xml);
        self
    }

    fn end(mut self, root: &str) -> String {
        self.0.push_str(&format!("</{root}>\n"));
        self.0
    }
}

/// `xml` as bytes in `charset`, with its declaration. GB2312 is written as GBK, its
/// superset; a character neither has becomes a character reference, which XML reads back.
pub fn encode(xml: &str, charset: Charset) -> Vec<u8> {
    let text = format!("<?xml version=\"1.0\" encoding=\"{}\"?>\n{xml}", charset.name());
    match charset {
        Charset::Utf8 => text.into_bytes(),
        Charset::Gb2312 => encoding_rs::GBK.encode(&text).0.into_owned(),
    }
}

/// The keepalive of device `device_id` (this center).
pub fn keepalive(sn: u64, device_id: &str) -> String {
    Doc::new("Notify")
        .field("CmdType", "Keepalive")
        .field("SN", sn)
        .field("DeviceID", device_id)
        .field("Status", "OK")
        .end("Notify")
}

/// One alarm as a platform is told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The document's number.
    pub sn: u64,
    /// The camera's code (or this center's, for a camera without one).
    pub device_id: String,
    /// 1 (highest) to 4.
    pub priority: u8,
    /// How it is reported.
    pub kind: AlarmKind,
    /// When it began, local time `yyyy-MM-ddTHH:mm:ss`.
    pub time: String,
    /// What happened, in words.
    pub description: String,
    /// Longitude and latitude, if the camera's are known.
    pub position: Option<(f64, f64)>,
}

/// The `Notify`/`Alarm` document of `alarm`.
pub fn alarm(alarm: &Alarm) -> String {
    let mut doc = Doc::new("Notify")
        .field("CmdType", "Alarm")
        .field("SN", alarm.sn)
        .field("DeviceID", &alarm.device_id)
        .field("AlarmPriority", alarm.priority)
        .field("AlarmMethod", alarm.kind.method)
        .field("AlarmTime", &alarm.time)
        .field("AlarmDescription", &alarm.description);
    if let Some((lon, lat)) = alarm.position {
        doc = doc.field("Longitude", lon).field("Latitude", lat);
    }
    if let Some(t) = alarm.kind.alarm_type {
        // Intrusion says which way: 1, entering the zone.
        let param = if t == 6 && alarm.kind.method == 5 {
            "<AlarmTypeParam>\n<EventType>1</EventType>\n</AlarmTypeParam>\n"
        } else {
            ""
        };
        doc = doc.raw(&format!("<Info>\n<AlarmType>{t}</AlarmType>\n{param}</Info>\n"));
    }
    doc.end("Notify")
}

/// What this center says of itself in a catalog and a device-info answer.
#[derive(Debug, Clone, Copy)]
pub struct Device<'a> {
    /// Its code.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// One `Catalog` answer: `items` (channels and whether each is online) of the `sum` in all.
pub fn catalog(sn: u64, center: Device, sum: usize, items: &[(&Channel, bool)]) -> String {
    let mut list = format!("<DeviceList Num=\"{}\">\n", items.len());
    for (c, online) in items {
        let mut item = Doc::new("Item")
            .field("DeviceID", &c.id)
            .field("Name", &c.name)
            .field("Manufacturer", "xueliang")
            .field("Model", "xl-agent")
            .field("Owner", "Owner")
            .field("CivilCode", &c.id[..6])
            .field("Address", &c.place)
            .field("Parental", 0)
            .field("ParentID", center.id)
            .field("SafetyWay", 0)
            .field("RegisterWay", 1)
            .field("Secrecy", 0)
            .field("Status", if *online { "ON" } else { "OFF" });
        if let Some((lon, lat)) = c.position {
            item = item.field("Longitude", lon).field("Latitude", lat);
        }
        list.push_str(&item.end("Item"));
    }
    list.push_str("</DeviceList>\n");
    Doc::new("Response")
        .field("CmdType", "Catalog")
        .field("SN", sn)
        .field("DeviceID", center.id)
        .field("SumNum", sum)
        .raw(&list)
        .end("Response")
}

/// The `DeviceInfo` answer for `device` with `channels` channels.
pub fn device_info(sn: u64, device: Device, model: &str, channels: usize) -> String {
    Doc::new("Response")
        .field("CmdType", "DeviceInfo")
        .field("SN", sn)
        .field("DeviceID", device.id)
        .field("DeviceName", device.name)
        .field("Result", "OK")
        .field("Manufacturer", "xueliang")
        .field("Model", model)
        .field("Firmware", env!("CARGO_PKG_VERSION"))
        .field("Channel", channels)
        .end("Response")
}

/// The `DeviceStatus` answer for device `id`, online or not, at local time `now`.
pub fn device_status(sn: u64, id: &str, online: bool, now: &str) -> String {
    Doc::new("Response")
        .field("CmdType", "DeviceStatus")
        .field("SN", sn)
        .field("DeviceID", id)
        .field("Result", "OK")
        .field("Online", if online { "ONLINE" } else { "OFFLINE" })
        .field("Status", if online { "OK" } else { "ERROR" })
        .field("DeviceTime", now)
        .end("Response")
}

/// The answer to a platform's `SUBSCRIBE` (CmdType `cmd_type`) by device `id`: accepted.
pub fn subscribed(sn: u64, id: &str, cmd_type: &str) -> String {
    Doc::new("Response")
        .field("CmdType", cmd_type)
        .field("SN", sn)
        .field("DeviceID", id)
        .field("Result", "OK")
        .end("Response")
}

/// Fields of the root element read beyond CmdType, SN and DeviceID, at most.
const MAX_FIELDS: usize = 32;

/// A document a platform sent, as far as this center reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The root element: `Query`, `Control`, `Notify` or `Response`.
    pub root: String,
    /// CmdType.
    pub cmd_type: String,
    /// SN.
    pub sn: u64,
    /// DeviceID: whom it concerns.
    pub device_id: String,
    /// The root's other fields with text, such as an alarm subscription's
    /// `StartAlarmPriority` (the first of each name, at most [`MAX_FIELDS`]).
    pub fields: Vec<(String, String)>,
}

impl Received {
    /// The text of field `name`, if the document has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Which alarms a platform's alarm subscription asks for: its priorities and methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmFilter {
    /// Priorities from and to (1 highest); 0 or absent: all.
    pub priorities: (u8, u8),
    /// Methods asked for; empty: all (`AlarmMethod` 0 or absent; several as `2/5`).
    pub methods: Vec<u8>,
}

impl AlarmFilter {
    /// The filter `query` (a `Query`/`Alarm` subscription) asks for.
    pub fn of(query: &Received) -> Self {
        let number = |name| query.field(name).and_then(|v| v.trim().parse::<u8>().ok());
        let (from, to) = (number("StartAlarmPriority").unwrap_or(0), number("EndAlarmPriority"));
        let methods: Vec<u8> = query
            .field("AlarmMethod")
            .unwrap_or_default()
            .split(['/', ','])
            .filter_map(|m| m.trim().parse().ok())
            .filter(|m| *m != 0)
            .collect();
        Self { priorities: (from, to.unwrap_or(0)), methods }
    }

    /// Whether `alarm` is one the subscription asks for.
    pub fn takes(&self, alarm: &Alarm) -> bool {
        let (from, to) = self.priorities;
        (from == 0 || alarm.priority >= from)
            && (to == 0 || alarm.priority <= to)
            && (self.methods.is_empty() || self.methods.contains(&alarm.kind.method))
    }
}

/// Why a platform's document was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// Longer than [`MAX_BODY`].
    #[error("the document is {0} bytes, more than the {MAX_BODY} a query may be")]
    TooBig(usize),
    /// Neither valid UTF-8 nor valid GB2312/GBK as it declares.
    #[error("the document is not valid {0}")]
    Encoding(&'static str),
    /// Not well-formed XML, or a DOCTYPE.
    #[error("the document is not well-formed MANSCDP XML: {0}")]
    Malformed(String),
    /// CmdType, SN or DeviceID is missing.
    #[error("the document has no {0}")]
    Missing(&'static str),
}

/// The text of `body` in the character set its declaration names (GB2312, GBK or GB18030 are
/// read as GB18030, their superset), UTF-8 if it names none.
fn decode(body: &[u8]) -> Result<String, ReadError> {
    let head = &body[..body.len().min(100)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let gb = ["gb2312", "gbk", "gb18030"].iter().any(|n| {
        head.contains(&format!("encoding=\"{n}\"")) || head.contains(&format!("encoding='{n}'"))
    });
    if gb {
        return encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(body)
            .map(|t| t.into_owned())
            .ok_or(ReadError::Encoding("GB2312"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| ReadError::Encoding("UTF-8"))
}

/// Reads a platform's document: its root and the fields that say what it asks.
pub fn read(body: &[u8]) -> Result<Received, ReadError> {
    if body.len() > MAX_BODY {
        return Err(ReadError::TooBig(body.len()));
    }
    let text = decode(body)?;
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().trim_text(true);
    let malformed = |e: &dyn std::fmt::Display| ReadError::Malformed(e.to_string());
    let (mut root, mut depth, mut field) = (None::<String>, 0usize, None::<String>);
    let (mut cmd_type, mut sn, mut device_id) = (None, None, None);
    let mut fields: Vec<(String, String)> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| malformed(&e))? {
            Event::DocType(_) => return Err(ReadError::Malformed("a DOCTYPE".into())),
            Event::Start(e) => {
                depth += 1;
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if depth == 1 {
                    root = Some(name);
                } else if depth == 2 {
                    field = Some(name);
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                field = None;
                if depth == 0 {
                    break;
                }
            }
            Event::Empty(e) if depth == 0 => {
                root = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                break;
            }
            Event::Text(t) if depth == 2 => {
                let value = t.decode().map_err(|e| malformed(&e))?;
                let value = quick_xml::escape::unescape(&value).map_err(|e| malformed(&e))?;
                let value = value.trim().to_owned();
                match field.as_deref() {
                    Some("CmdType") => cmd_type = Some(value),
                    Some("SN") => sn = Some(value),
                    Some("DeviceID") => device_id = Some(value),
                    Some(name)
                        if fields.len() < MAX_FIELDS && !fields.iter().any(|(n, _)| n == name) =>
                    {
                        fields.push((name.to_owned(), value));
                    }
                    _ => {}
                }
            }
            Event::Eof => {
                if depth > 0 || root.is_none() {
                    return Err(ReadError::Malformed("the document ends early".into()));
                }
                break;
            }
            _ => {}
        }
    }
    let root = root.ok_or(ReadError::Missing("root element"))?;
    let cmd_type = cmd_type.filter(|c| !c.is_empty()).ok_or(ReadError::Missing("CmdType"))?;
    let sn = sn.and_then(|s| s.parse().ok()).ok_or(ReadError::Missing("SN (a number)"))?;
    let device_id = device_id.filter(|d| !d.is_empty()).ok_or(ReadError::Missing("DeviceID"))?;
    Ok(Received { root, cmd_type, sn, device_id, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: &str, name: &str, position: Option<(f64, f64)>) -> Channel {
        Channel {
            agent_id: "qingshan".into(),
            camera_id: "dam".into(),
            id: id.into(),
            name: name.into(),
            place: "青山村 <水库> & 大坝".into(),
            position,
        }
    }

    /// `actual` against the golden file `name`; `XL_BLESS=1` writes it instead.
    fn golden(name: &str, actual: &[u8]) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gb28181/golden").join(name);
        if std::env::var_os("XL_BLESS").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read(&path).unwrap();
        assert!(
            expected == actual,
            "{name} differs from its golden file:\n{}",
            String::from_utf8_lossy(actual)
        );
    }

    #[test]
    fn documents_match_their_golden_files() {
        let center = Device { id: "34020000002000000001", name: "青山县综治中心" };
        let dam = channel("34020000001320000001", "青山水库大坝", Some((117.25, 31.5)));
        let gate = channel("34020000001310000002", "村口", None);
        golden("keepalive.xml", &encode(&keepalive(1, center.id), Charset::Gb2312));
        let intrusion = Alarm {
            sn: 7,
            device_id: dam.id.clone(),
            priority: priority("high"),
            kind: alarm_kind("zone_intrusion").unwrap(),
            time: "2026-12-05T19:20:33".into(),
            description: "区域入侵（高）：青山水库大坝，3 个目标；事件 0193a".into(),
            position: dam.position,
        };
        golden("alarm-intrusion.gb2312.xml", &encode(&alarm(&intrusion), Charset::Gb2312));
        golden("alarm-intrusion.utf8.xml", &encode(&alarm(&intrusion), Charset::Utf8));
        let offline = Alarm {
            kind: alarm_kind("camera_offline").unwrap(),
            priority: priority("medium"),
            position: None,
            description: "摄像机离线（中）：村口".into(),
            ..intrusion.clone()
        };
        golden("alarm-offline.xml", &encode(&alarm(&offline), Charset::Utf8));
        let fire = Alarm { kind: alarm_kind("fire_smoke").unwrap(), ..offline };
        golden("alarm-fire.xml", &encode(&alarm(&fire), Charset::Utf8));
        let items = [(&dam, true), (&gate, false)];
        golden("catalog.xml", &encode(&catalog(17430, center, 2, &items), Charset::Utf8));
        golden("device-info.xml", &encode(&device_info(3, center, "xl-center", 2), Charset::Utf8));
        let status = device_status(4, center.id, true, "2026-12-05T19:20:33");
        golden("device-status.xml", &encode(&status, Charset::Utf8));
    }

    #[test]
    fn each_kind_has_its_method_and_type() {
        let of = |k| alarm_kind(k).map(|a| (a.method, a.alarm_type));
        assert_eq!(of("line_crossing"), Some((5, Some(5))));
        assert_eq!(of("zone_intrusion"), Some((5, Some(6))));
        assert_eq!(of("loitering"), Some((5, Some(8))));
        assert_eq!(of("crowding"), Some((5, Some(10))));
        assert_eq!(of("camera_tamper"), Some((5, Some(11))));
        assert_eq!(of("camera_offline"), Some((2, Some(1))));
        assert_eq!(of("camera_back"), None);
        assert_eq!(of("agent_offline"), None);
        assert_eq!([priority("critical"), priority("high"), priority("low")], [1, 2, 4]);
    }

    #[test]
    fn a_gb2312_query_is_read_and_so_is_what_this_center_writes() {
        let query = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\n<Query>\n<CmdType>Catalog</CmdType>\n<SN>17430</SN>\n<DeviceID>34020000002000000001</DeviceID>\n<Note>目录查询</Note>\n</Query>\n";
        let body = encoding_rs::GBK.encode(query).0;
        let read = read(&body).unwrap();
        assert_eq!(
            read,
            Received {
                root: "Query".into(),
                cmd_type: "Catalog".into(),
                sn: 17430,
                device_id: "34020000002000000001".into(),
                fields: vec![("Note".into(), "目录查询".into())],
            }
        );
        let ours = encode(&keepalive(9, "34020000002000000001"), Charset::Gb2312);
        assert_eq!(super::read(&ours).unwrap().cmd_type, "Keepalive");
    }

    #[test]
    fn an_alarm_subscription_says_which_alarms_it_wants() {
        let q = |inner: &str| {
            read(format!("<Query><CmdType>Alarm</CmdType><SN>5</SN><DeviceID>34020000002000000001</DeviceID>{inner}</Query>").as_bytes()).unwrap()
        };
        let alarm = |severity, kind| Alarm {
            sn: 1,
            device_id: String::new(),
            priority: priority(severity),
            kind: alarm_kind(kind).unwrap(),
            time: String::new(),
            description: String::new(),
            position: None,
        };
        let all = AlarmFilter::of(&q("<AlarmMethod>0</AlarmMethod>"));
        assert_eq!(all, AlarmFilter { priorities: (0, 0), methods: vec![] });
        assert!(all.takes(&alarm("info", "camera_offline")));
        let urgent = AlarmFilter::of(&q(
            "<StartAlarmPriority>1</StartAlarmPriority><EndAlarmPriority>2</EndAlarmPriority><AlarmMethod>5</AlarmMethod>",
        ));
        assert!(urgent.takes(&alarm("high", "zone_intrusion")));
        assert!(!urgent.takes(&alarm("medium", "zone_intrusion")), "priority 3");
        assert!(!urgent.takes(&alarm("critical", "camera_offline")), "a device alarm");
        let both = AlarmFilter::of(&q("<AlarmMethod>2/5</AlarmMethod>"));
        assert!(
            both.takes(&alarm("low", "camera_offline")) && !both.takes(&alarm("low", "fire_smoke"))
        );
        golden(
            "subscribed.xml",
            &encode(&subscribed(5, "34020000002000000001", "Alarm"), Charset::Utf8),
        );
    }

    #[test]
    fn hostile_or_broken_documents_are_refused_with_a_reason() {
        let q = |inner: &str| format!("<?xml version=\"1.0\"?><Query>{inner}</Query>");
        let ok = "<CmdType>Catalog</CmdType><SN>1</SN><DeviceID>34020000002000000001</DeviceID>";
        assert!(read(q(ok).as_bytes()).is_ok());
        let huge = q(&format!("{ok}<Pad>{}</Pad>", "x".repeat(MAX_BODY)));
        assert_eq!(read(huge.as_bytes()), Err(ReadError::TooBig(huge.len())));
        let bomb = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE q [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>{}",
            q(&ok.replace("Catalog", "&b;"))
        );
        assert!(matches!(read(bomb.as_bytes()), Err(ReadError::Malformed(_))));
        let gb = b"<?xml version=\"1.0\" encoding=\"GB2312\"?><Query>\xff\xff</Query>";
        assert_eq!(read(gb), Err(ReadError::Encoding("GB2312")));
        assert_eq!(read(b"<Query>\xc3\x28</Query>"), Err(ReadError::Encoding("UTF-8")));
        assert!(matches!(
            read(q(ok).replace("</Query>", "").as_bytes()),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(read(b"<Query><SN>1</Query>"), Err(ReadError::Malformed(_))));
        assert_eq!(read(q("<SN>1</SN>").as_bytes()), Err(ReadError::Missing("CmdType")));
        let no_sn = q("<CmdType>Catalog</CmdType><SN>x</SN><DeviceID>1</DeviceID>");
        assert_eq!(read(no_sn.as_bytes()), Err(ReadError::Missing("SN (a number)")));
        assert!(read(b"").is_err());
        assert!(read(&[0u8; 64]).is_err());
    }
}
