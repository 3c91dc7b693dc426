//! Small shared conventions of the wire: broker URLs and wall-clock milliseconds.

/// A broker's address, from `mqtt://host[:port]` (port 1883) or, over TLS,
/// `mqtts://host[:port]` (port 8883).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether the connection uses TLS.
    pub tls: bool,
}

impl BrokerUrl {
    /// Whether the broker is on this machine (`localhost`, 127.0.0.0/8, `::1`): plain MQTT
    /// to it crosses no network.
    pub fn is_local(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses a broker URL, saying what is wrong with a bad one.
pub fn parse_mqtt_url(url: &str) -> Result<BrokerUrl, String> {
    let (rest, tls) = if let Some(r) =
        url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://"))
    {
        (r, false)
    } else if let Some(r) = url.strip_prefix("mqtts://").or_else(|| url.strip_prefix("ssl://")) {
        (r, true)
    } else {
        return Err(format!("MQTT URL {url:?} must start with mqtt:// (or mqtts:// for TLS)"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("MQTT URL {url:?}: port {p:?} is not a number"))?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(format!("MQTT URL {url:?} has no host"));
    }
    Ok(BrokerUrl { host: host.to_owned(), port, tls })
}

/// Milliseconds since the Unix epoch (UTC), now; the time unit of every message.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls_and_explains_bad_ones() {
        let url = |host: &str, port, tls| BrokerUrl { host: host.into(), port, tls };
        assert_eq!(parse_mqtt_url("mqtt://10.1.2.3:1884").unwrap(), url("10.1.2.3", 1884, false));
        assert_eq!(
            parse_mqtt_url("mqtt://broker.county/").unwrap(),
            url("broker.county", 1883, false)
        );
        assert_eq!(
            parse_mqtt_url("mqtts://broker.county").unwrap(),
            url("broker.county", 8883, true)
        );
        assert!(parse_mqtt_url("127.0.0.1:1883").unwrap_err().contains("mqtt://"));
        assert!(parse_mqtt_url("mqtt://h:abc").unwrap_err().contains("not a number"));
        assert!(parse_mqtt_url("mqtt://:1883").unwrap_err().contains("no host"));
    }

    #[test]
    fn only_this_machine_is_local() {
        for local in ["mqtt://127.0.0.1", "mqtt://localhost:1884", "mqtt://[::1]:1883"] {
            assert!(parse_mqtt_url(local).unwrap().is_local(), "{local}");
        }
        for remote in ["mqtt://10.1.2.3", "mqtt://broker.county", "mqtt://0.0.0.0"] {
            assert!(!parse_mqtt_url(remote).unwrap().is_local(), "{remote}");
        }
    }
}

/// The user part of `url` (`user:password` in `rtsp://user:password@host/…`), if it has one.
fn userinfo(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority.rsplit_once('@').map(|(user, _)| user)
}

/// `url` with the password of its user part hidden (`rtsp://admin:***@host/…`): camera URLs
/// go into logs, printed reports and the API, their passwords must not.
pub fn redact_url(url: &str) -> String {
    let Some(user) = userinfo(url) else { return url.to_owned() };
    let Some((name, _)) = user.split_once(':') else { return url.to_owned() };
    let (scheme, rest) = url.split_once("://").unwrap_or_default();
    let at = rest.find('@').unwrap_or_default();
    format!("{scheme}://{name}:***{}", &rest[at..])
}

/// Whether `url` carries a password (`scheme://user:password@host…`).
pub fn has_password(url: &str) -> bool {
    userinfo(url).is_some_and(|u| u.contains(':'))
}

/// `url` logging in as `login` (`user:password`), unless it names a user already.
pub fn with_login(url: &str, login: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if userinfo(url).is_none() => format!("{scheme}://{login}@{rest}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn camera_passwords_are_found_hidden_and_added() {
        let url = "rtsp://admin:s3cret@10.0.0.5:554/Streaming/101";
        assert_eq!(redact_url(url), "rtsp://admin:***@10.0.0.5:554/Streaming/101");
        assert!(has_password(url));
        for plain in ["rtsp://10.0.0.5/a@b", "file:///tmp/x.avi", "rtsp://admin@10.0.0.5/"] {
            assert!(!has_password(plain), "{plain}");
        }
        assert_eq!(redact_url("rtsp://10.0.0.5/a@b"), "rtsp://10.0.0.5/a@b");
        assert_eq!(with_login("rtsp://10.0.0.5/a@b", "admin:pw"), "rtsp://admin:pw@10.0.0.5/a@b");
        assert_eq!(with_login(url, "other:pw"), url, "a URL with its own user keeps it");
    }
}
