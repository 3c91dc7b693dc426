//! Small shared conventions of the wire: broker URLs and wall-clock milliseconds.

/// Host and port of a broker URL `mqtt://host[:port]` (port 1883 when omitted).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| format!("MQTT URL {url:?} must start with mqtt://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("MQTT URL {url:?}: port {p:?} is not a number"))?,
        ),
        _ => (rest, 1883),
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(format!("MQTT URL {url:?} has no host"));
    }
    Ok((host.to_owned(), port))
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
        assert_eq!(parse_mqtt_url("mqtt://10.1.2.3:1884").unwrap(), ("10.1.2.3".into(), 1884));
        assert_eq!(parse_mqtt_url("mqtt://broker.county/").unwrap(), ("broker.county".into(), 1883));
        assert!(parse_mqtt_url("127.0.0.1:1883").unwrap_err().contains("mqtt://"));
        assert!(parse_mqtt_url("mqtt://h:abc").unwrap_err().contains("not a number"));
        assert!(parse_mqtt_url("mqtt://:1883").unwrap_err().contains("no host"));
    }
}
