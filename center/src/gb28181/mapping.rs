//! `gb28181.toml`: this center as a lower platform (下级平台) of GB/T 28181 platforms above,
//! and its cameras as their channels. Every mistake is refused with where it is (`line L,
//! column C: `) and what to fix; codes are checked by their structure (GB/T 28181 Annex D:
//! region, industry, type, network, serial).
//!
//! `deploy/center/gb28181.example.toml` is the commented example (read by a test below):
//! `[center]` (its code, domain, name, SIP listen address), `[[platform]]` (each platform's
//! code, domain, address, transport, password, timers, character set), `[[camera]]` (each
//! camera's `agent/camera`, code, name, place, coordinates).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::watched_file::at;

/// The two-digit province codes of GB/T 2260, which open every code.
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// The type of a SIP server (a platform's or this center's own code).
pub const SIP_SERVER: &[&str] = &["200"];
/// The types of a camera: 131 camera, 132 IP camera.
pub const CAMERA: &[&str] = &["131", "132"];

/// Why `code` is not a valid 20-digit code of one of `types`, if it is not.
pub fn code_problem(code: &str, types: &[&str]) -> Option<String> {
    if code.len() != 20 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("{code:?} is not a code of 20 digits"));
    }
    if !PROVINCES.contains(&&code[..2]) {
        return Some(format!("{code:?} opens with {}, which is no province code", &code[..2]));
    }
    if !types.contains(&&code[10..13]) {
        let wanted = types.join(" or ");
        return Some(format!(
            "{code:?} has type {} (digits 11-13); it must be {wanted}",
            &code[10..13]
        ));
    }
    if &code[13..14] == "9" {
        return Some(format!("{code:?} has network 9 (digit 14), which the standard reserves"));
    }
    None
}

/// How SIP is carried to a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

impl Transport {
    /// Its name, as a SIP URI's `transport` parameter has it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// The character set of a platform's MANSCDP documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Charset {
    /// GB2312 (written as GBK, its superset), what most platforms expect.
    #[serde(rename = "GB2312")]
    Gb2312,
    /// UTF-8.
    #[serde(rename = "UTF-8")]
    Utf8,
}

impl Charset {
    /// The name in an XML declaration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gb2312 => "GB2312",
            Self::Utf8 => "UTF-8",
        }
    }
}

/// This center as a lower platform.
#[derive(Debug, Clone)]
pub struct CenterIdentity {
    /// Its 20-digit code.
    pub id: String,
    /// Its SIP domain.
    pub domain: String,
    /// Its name.
    pub name: String,
    /// Where it listens for SIP (UDP and TCP).
    pub listen: SocketAddr,
    /// What platforms reach it by, if not the address it sends from.
    pub address: Option<SocketAddr>,
}

/// An upper platform.
#[derive(Clone)]
pub struct Platform {
    /// Its name, for people.
    pub name: String,
    /// Its SIP server code.
    pub id: String,
    /// Its SIP domain.
    pub domain: String,
    /// Its address.
    pub address: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The digest password.
    pub password: String,
    /// The registration's lifetime asked for.
    pub register_expires: Duration,
    /// How often a keepalive is sent.
    pub keepalive: Duration,
    /// Keepalives unanswered in a row after which the center registers again.
    pub keepalive_misses: u32,
    /// The character set of its documents.
    pub charset: Charset,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("Platform")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("address", &self.address)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// A camera as a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The box's id.
    pub agent_id: String,
    /// The camera's id on its box.
    pub camera_id: String,
    /// Its 20-digit code.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it is, in words.
    pub place: String,
    /// Longitude and latitude, if given.
    pub position: Option<(f64, f64)>,
}

/// The whole file.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// This center.
    pub center: CenterIdentity,
    /// The platforms above.
    pub platforms: Vec<Platform>,
    /// The cameras as channels, in file order.
    pub channels: Vec<Channel>,
}

type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    center: CenterToml,
    #[serde(default)]
    platform: Vec<PlatformToml>,
    #[serde(default)]
    camera: Vec<CameraToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CenterToml {
    id: Text,
    domain: Text,
    name: String,
    listen: Spanned<SocketAddr>,
    address: Option<Spanned<SocketAddr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformToml {
    name: String,
    id: Text,
    domain: Text,
    address: Spanned<SocketAddr>,
    transport: Transport,
    password: Text,
    register_expires_s: Option<Spanned<u64>>,
    keepalive_s: Option<Spanned<u64>>,
    keepalive_misses: Option<Spanned<u32>>,
    charset: Option<Charset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraToml {
    camera: Text,
    id: Text,
    name: String,
    #[serde(default)]
    place: String,
    longitude: Option<Spanned<f64>>,
    latitude: Option<Spanned<f64>>,
}

/// Checks `code` against `types`, naming where it is if it fails.
fn check_code(text: &str, owner: &str, code: &Text, types: &[&str]) -> Result<(), String> {
    match code_problem(code.get_ref(), types) {
        None => Ok(()),
        Some(why) => Err(at(text, code.span(), format!("{owner}: id {why}"))),
    }
}

fn check_domain(text: &str, owner: &str, domain: &Text) -> Result<(), String> {
    let d = domain.get_ref();
    if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) && PROVINCES.contains(&&d[..2]) {
        return Ok(());
    }
    let hint = "10 digits opening with a province code, e.g. \"3402000000\"";
    Err(at(text, domain.span(), format!("{owner}: domain {d:?} is not {hint}")))
}

/// Seconds at least `least`, or `default` when absent.
fn seconds(
    text: &str,
    owner: &str,
    name: &str,
    value: &Option<Spanned<u64>>,
    least: u64,
    default: u64,
) -> Result<Duration, String> {
    match value {
        None => Ok(Duration::from_secs(default)),
        Some(v) if *v.get_ref() < least => {
            Err(at(text, v.span(), format!("{owner}: {name} must be at least {least} (seconds)")))
        }
        Some(v) => Ok(Duration::from_secs(*v.get_ref())),
    }
}

impl Mapping {
    /// Reads `path`; the error names the file, where in it and what to fix.
    pub fn open(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks the text of a `gb28181.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileToml =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let c = &file.center;
        check_code(text, "center", &c.id, SIP_SERVER)?;
        check_domain(text, "center", &c.domain)?;
        let center = CenterIdentity {
            id: c.id.get_ref().clone(),
            domain: c.domain.get_ref().clone(),
            name: c.name.clone(),
            listen: *c.listen.get_ref(),
            address: c.address.as_ref().map(|a| *a.get_ref()),
        };
        if let Some(a) = c.address.as_ref().filter(|a| a.get_ref().ip().is_unspecified()) {
            let why = "center: address is what platforms reach this center by, not a wildcard";
            return Err(at(text, a.span(), why.to_owned()));
        }

        let mut platforms: Vec<Platform> = Vec::new();
        for p in &file.platform {
            let owner = format!("platform {:?}", p.name);
            check_code(text, &owner, &p.id, SIP_SERVER)?;
            check_domain(text, &owner, &p.domain)?;
            if platforms.iter().any(|q| &q.id == p.id.get_ref()) {
                let why = format!("{owner}: id {:?} is given to two platforms", p.id.get_ref());
                return Err(at(text, p.id.span(), why));
            }
            if p.id.get_ref() == &center.id {
                let why = format!("{owner}: id {:?} is this center's own", p.id.get_ref());
                return Err(at(text, p.id.span(), why));
            }
            if p.address.get_ref().ip().is_unspecified() || p.address.get_ref().port() == 0 {
                let why = format!("{owner}: address must be the platform's IP and port");
                return Err(at(text, p.address.span(), why));
            }
            if p.password.get_ref().is_empty() {
                return Err(at(text, p.password.span(), format!("{owner}: password is empty")));
            }
            let misses = p.keepalive_misses.as_ref().map_or(3, |m| *m.get_ref());
            if let Some(m) = p.keepalive_misses.as_ref().filter(|m| *m.get_ref() == 0) {
                return Err(at(
                    text,
                    m.span(),
                    format!("{owner}: keepalive_misses must be at least 1"),
                ));
            }
            platforms.push(Platform {
                name: p.name.clone(),
                id: p.id.get_ref().clone(),
                domain: p.domain.get_ref().clone(),
                address: *p.address.get_ref(),
                transport: p.transport,
                password: p.password.get_ref().clone(),
                register_expires: seconds(
                    text,
                    &owner,
                    "register_expires_s",
                    &p.register_expires_s,
                    30,
                    3600,
                )?,
                keepalive: seconds(text, &owner, "keepalive_s", &p.keepalive_s, 1, 60)?,
                keepalive_misses: misses,
                charset: p.charset.unwrap_or(Charset::Gb2312),
            });
        }

        let mut channels: Vec<Channel> = Vec::new();
        for k in &file.camera {
            let owner = format!("camera {:?}", k.camera.get_ref());
            let Some((agent, camera)) =
                k.camera.get_ref().split_once('/').filter(|(a, c)| !a.is_empty() && !c.is_empty())
            else {
                let why = format!("{owner} is not \"agent/camera\" (e.g. \"qingshan/dam\")");
                return Err(at(text, k.camera.span(), why));
            };
            check_code(text, &owner, &k.id, CAMERA)?;
            if k.id.get_ref() == &center.id || platforms.iter().any(|p| &p.id == k.id.get_ref()) {
                let why =
                    format!("{owner}: id {:?} is a platform's or the center's", k.id.get_ref());
                return Err(at(text, k.id.span(), why));
            }
            if let Some(other) = channels.iter().find(|c| &c.id == k.id.get_ref()) {
                let why = format!(
                    "{owner}: id {:?} is already {}/{}'s",
                    k.id.get_ref(),
                    other.agent_id,
                    other.camera_id
                );
                return Err(at(text, k.id.span(), why));
            }
            if channels.iter().any(|c| c.agent_id == agent && c.camera_id == camera) {
                return Err(at(text, k.camera.span(), format!("{owner} is listed twice")));
            }
            let position = match (&k.longitude, &k.latitude) {
                (None, None) => None,
                (Some(lon), Some(lat)) => {
                    let (x, y) = (*lon.get_ref(), *lat.get_ref());
                    if !(-180.0..=180.0).contains(&x) {
                        let why = format!("{owner}: longitude {x} is not within -180..180");
                        return Err(at(text, lon.span(), why));
                    }
                    if !(-90.0..=90.0).contains(&y) {
                        let why = format!("{owner}: latitude {y} is not within -90..90");
                        return Err(at(text, lat.span(), why));
                    }
                    Some((x, y))
                }
                (Some(one), None) | (None, Some(one)) => {
                    let why = format!("{owner}: give longitude and latitude both, or neither");
                    return Err(at(text, one.span(), why));
                }
            };
            channels.push(Channel {
                agent_id: agent.to_owned(),
                camera_id: camera.to_owned(),
                id: k.id.get_ref().clone(),
                name: k.name.clone(),
                place: k.place.clone(),
                position,
            });
        }
        Ok(Self { center, platforms, channels })
    }

    /// The channel of camera `camera_id` of box `agent_id`, if it has a code.
    pub fn channel(&self, agent_id: &str, camera_id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.agent_id == agent_id && c.camera_id == camera_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[center]
id = "34020000002000000001"
domain = "3402000000"
name = "青山县综治中心"
listen = "127.0.0.1:5060"

[[platform]]
name = "市平台"
id = "34020000002000000002"
domain = "3402000000"
address = "127.0.0.1:15060"
transport = "tcp"
password = "secret"
keepalive_s = 5

[[camera]]
camera = "qingshan/dam"
id = "34020000001320000001"
name = "青山水库大坝"
place = "青山村"
longitude = 117.25
latitude = 31.5
"#;

    #[test]
    fn a_complete_mapping_reads_with_its_defaults() {
        let m = Mapping::parse(GOOD).unwrap();
        assert_eq!(m.center.id, "34020000002000000001");
        let p = &m.platforms[0];
        assert_eq!((p.transport, p.charset), (Transport::Tcp, Charset::Gb2312));
        assert_eq!(p.register_expires, Duration::from_secs(3600));
        assert_eq!((p.keepalive, p.keepalive_misses), (Duration::from_secs(5), 3));
        let c = m.channel("qingshan", "dam").unwrap();
        assert_eq!((c.id.as_str(), c.position), ("34020000001320000001", Some((117.25, 31.5))));
        assert!(m.channel("qingshan", "gate").is_none());
    }

    #[test]
    fn the_shipped_example_reads() {
        let m =
            Mapping::parse(include_str!("../../../deploy/center/gb28181.example.toml")).unwrap();
        assert_eq!((m.platforms.len(), m.channels.len()), (1, 2));
        assert_eq!(m.platforms[0].keepalive, Duration::from_secs(60));
    }

    #[test]
    fn codes_are_checked_by_their_structure() {
        assert_eq!(code_problem("34020000001320000001", CAMERA), None);
        assert_eq!(code_problem("34020000001310000001", CAMERA), None);
        let problem = |code| code_problem(code, CAMERA).unwrap();
        assert!(problem("3402000000132000001").contains("20 digits"));
        assert!(problem("3402000000132000000x").contains("20 digits"));
        assert!(problem("99020000001320000001").contains("no province code"));
        assert!(problem("34020000002000000001").contains("type 200"));
        assert!(problem("34020000001329000001").contains("network 9"));
    }

    #[test]
    fn each_mistake_is_named_with_its_line_and_column() {
        let cases = [
            (
                GOOD.replace("\"34020000001320000001\"", "\"34020000001180000001\""),
                "line 19, column 6: camera \"qingshan/dam\": id \"34020000001180000001\" has type 118 (digits 11-13); it must be 131 or 132",
            ),
            (
                GOOD.replace("domain = \"3402000000\"\nname", "domain = \"34020\"\nname"),
                "line 4, column 10: center: domain \"34020\" is not 10 digits",
            ),
            (
                GOOD.replace("camera = \"qingshan/dam\"", "camera = \"dam\""),
                "line 18, column 10: camera \"dam\" is not \"agent/camera\"",
            ),
            (
                GOOD.replace("latitude = 31.5", ""),
                "line 22, column 13: camera \"qingshan/dam\": give longitude and latitude both",
            ),
            (
                GOOD.replace("latitude = 31.5", "latitude = 131.5"),
                "line 23, column 12: camera \"qingshan/dam\": latitude 131.5 is not within -90..90",
            ),
            (
                GOOD.replace("password = \"secret\"", "password = \"\""),
                "line 14, column 12: platform \"市平台\": password is empty",
            ),
            (
                GOOD.replace("keepalive_s = 5", "keepalive_s = 0"),
                "line 15, column 15: platform \"市平台\": keepalive_s must be at least 1",
            ),
            (
                GOOD.replace("transport = \"tcp\"", "transport = \"sctp\""),
                "TOML parse error at line 13, column 13",
            ),
            (
                GOOD.replace("id = \"34020000002000000002\"", "id = \"34020000002000000001\""),
                "line 10, column 6: platform \"市平台\": id \"34020000002000000001\" is this center's own",
            ),
            (
                format!(
                    "{GOOD}\n[[camera]]\ncamera = \"qingshan/gate\"\nid = \"34020000001320000001\"\nname = \"x\"\n"
                ),
                "line 27, column 6: camera \"qingshan/gate\": id \"34020000001320000001\" is already qingshan/dam's",
            ),
        ];
        for (text, expected) in cases {
            let e = Mapping::parse(&text).unwrap_err();
            assert!(e.starts_with(expected), "{e}\n  expected to start with: {expected}");
        }
    }
}
