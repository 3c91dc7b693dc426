//! MQTT topic names, built and parsed in one place.

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "xl/v1";

/// Topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    /// Topics under `prefix` (without a trailing slash).
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix: String = prefix.into();
        Self { prefix: prefix.trim_end_matches('/').to_owned() }
    }

    /// The prefix, e.g. `xl/v1`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}/{agent}/alarm`.
    pub fn alarm(&self, agent: &str) -> String {
        format!("{}/{agent}/alarm", self.prefix)
    }

    /// `{prefix}/{agent}/status`.
    pub fn status(&self, agent: &str) -> String {
        format!("{}/{agent}/status", self.prefix)
    }

    /// `{prefix}/{agent}/health`.
    pub fn health(&self, agent: &str) -> String {
        format!("{}/{agent}/health", self.prefix)
    }

    /// `{prefix}/{agent}/config`.
    pub fn config(&self, agent: &str) -> String {
        format!("{}/{agent}/config", self.prefix)
    }

    /// `{prefix}/{agent}/config/ack`.
    pub fn config_ack(&self, agent: &str) -> String {
        format!("{}/{agent}/config/ack", self.prefix)
    }

    /// `{prefix}/{agent}/snapshot`.
    pub fn snapshot(&self, agent: &str) -> String {
        format!("{}/{agent}/snapshot", self.prefix)
    }

    /// `{prefix}/{agent}/event`: updates and ends of events the agent's alarms opened.
    pub fn event(&self, agent: &str) -> String {
        format!("{}/{agent}/event", self.prefix)
    }

    /// `{prefix}/{agent}/clip`: the chunks of event clips.
    pub fn clip(&self, agent: &str) -> String {
        format!("{}/{agent}/clip", self.prefix)
    }

    /// `{prefix}/{agent}/receipt`.
    pub fn receipt(&self, agent: &str) -> String {
        format!("{}/{agent}/receipt", self.prefix)
    }

    /// `{prefix}/center/status`.
    pub fn center_status(&self) -> String {
        format!("{}/center/status", self.prefix)
    }

    /// `{prefix}/center/feed`: what one of several processes serving a county stored or
    /// changed, for the others' consoles.
    pub fn center_feed(&self) -> String {
        format!("{}/center/feed", self.prefix)
    }

    /// `{prefix}/dispatch/{station}`.
    pub fn dispatch(&self, station: &str) -> String {
        format!("{}/dispatch/{station}", self.prefix)
    }

    /// `{prefix}/tier/{origin}/event`: the events center `origin` forwards to the tier above.
    pub fn tier_event(&self, origin: &str) -> String {
        format!("{}/tier/{origin}/event", self.prefix)
    }

    /// `{prefix}/tier/{origin}/receipt`: the tier above's receipts to center `origin`.
    pub fn tier_receipt(&self, origin: &str) -> String {
        format!("{}/tier/{origin}/receipt", self.prefix)
    }

    /// `{prefix}/tier/{origin}/fleet`: what center `origin` reports of its counties' boxes.
    pub fn tier_fleet(&self, origin: &str) -> String {
        format!("{}/tier/{origin}/fleet", self.prefix)
    }

    /// The forwarding center named in a tier topic of `kind` (`event`, `fleet`), if it is one.
    pub fn tier_origin<'t>(&self, topic: &'t str, kind: &str) -> Option<&'t str> {
        let rest = topic.strip_prefix(self.prefix.as_str())?.strip_prefix("/tier/")?;
        let origin = rest.strip_suffix(kind)?.strip_suffix('/')?;
        is_valid_id(origin).then_some(origin)
    }

    /// The filter matching every agent's topic of one kind, e.g. `xl/v1/+/alarm`.
    pub fn all_agents(&self, kind: &str) -> String {
        format!("{}/+/{kind}", self.prefix)
    }

    /// The agent id in an agent topic of `kind` (`{prefix}/{agent}/{kind}`), if it is one.
    pub fn agent_of<'t>(&self, topic: &'t str, kind: &str) -> Option<&'t str> {
        let rest = topic.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?;
        let agent = rest.strip_suffix(kind)?.strip_suffix('/')?;
        (!agent.is_empty() && !agent.contains('/')).then_some(agent)
    }
}

/// Whether `id` is usable as one MQTT topic level and a file name: 1–64 of `[A-Za-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Topic levels beside the agents' under the prefix; no agent may take these ids.
pub const RESERVED_IDS: [&str; 3] = ["center", "dispatch", "tier"];

/// Whether `id` may name an agent: a valid id that is not reserved.
pub fn is_valid_agent_id(id: &str) -> bool {
    is_valid_id(id) && !RESERVED_IDS.contains(&id)
}

/// The client id of login `login` at the broker: `xl-agent-village-7` for the agent,
/// `xl-agent-village-7~doctor` for its doctor. Brokers bind each login to this id.
pub fn agent_client_id(login: &str) -> String {
    format!("xl-agent-{login}")
}

/// The login of `xl-agent doctor` on the box whose login is `login`: it may only log in.
pub fn doctor_login(login: &str) -> String {
    format!("{login}~doctor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_agent_topics() {
        let t = Topics::new("xl/v1/");
        assert_eq!(t.alarm("village-7"), "xl/v1/village-7/alarm");
        assert_eq!(t.agent_of("xl/v1/village-7/alarm", "alarm"), Some("village-7"));
        assert_eq!(t.agent_of("xl/v1/a/b/alarm", "alarm"), None);
        assert_eq!(t.agent_of("xl/v1//alarm", "alarm"), None);
        assert_eq!(t.agent_of("xl/v2/a/alarm", "alarm"), None);
        assert_eq!(t.agent_of("xl/v1/a/status", "alarm"), None);
        assert_eq!(t.all_agents("alarm"), "xl/v1/+/alarm");
        assert_eq!(t.dispatch("pcs-01"), "xl/v1/dispatch/pcs-01");
        assert_eq!(t.tier_event("330102"), "xl/v1/tier/330102/event");
        assert_eq!(t.tier_origin("xl/v1/tier/330102/event", "event"), Some("330102"));
        assert_eq!(t.tier_origin("xl/v1/tier/a/b/event", "event"), None);
        assert_eq!(t.tier_origin("xl/v1/tier/330102/receipt", "event"), None);
        assert_eq!(t.tier_origin("xl/v1/tier/330102/fleet", "fleet"), Some("330102"));
        assert_eq!(t.tier_origin("xl/v1/tier/330102fleet", "fleet"), None);
    }

    #[test]
    fn ids_are_single_topic_levels() {
        assert!(is_valid_id("village_7-cam01"));
        for bad in ["", "a/b", "a+", "#", "a b", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?} accepted");
        }
        assert!(is_valid_agent_id("village-7"));
        assert!(!is_valid_agent_id("center") && !is_valid_agent_id("dispatch"));
    }
}
