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
}
