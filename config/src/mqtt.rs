//! `[mqtt]`: how the box reaches the broker and knows the center. It stays in the box's own
//! file: a config pushed over the broker can never change it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use xueliang_proto::endpoint::BrokerUrl;
use xueliang_proto::signing::VerifyingKey;
use xueliang_service::tls::TlsFiles;

use super::Problem;

/// How the agent reaches the MQTT broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port`, or `mqtts://host:port` over TLS.
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// With `mqtts://`: the CA certificate (PEM) that signed the broker's certificate.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// With `mqtts://`, for a broker that requires client certificates: this box's (PEM).
    #[serde(default)]
    pub tls_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_client_key: Option<PathBuf>,
    /// Username (the agent id when empty and a password is set).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// Topic prefix.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Seconds between two Health reports.
    #[serde(default = "default_health_interval")]
    pub health_interval_s: u64,
    /// Ask the broker to keep this agent's session across disconnects, so receipts sent while
    /// the link was down are not missed and the alarms they name are not sent again. Worth it
    /// with Mosquitto or EMQX on a weak link; leave it off with the center's embedded broker
    /// (rumqttd 0.20), which does not answer a resumed session's subscriptions. Nothing is lost
    /// either way: an alarm without a receipt is published again and the center stores it once.
    #[serde(default)]
    pub persistent_session: bool,
    /// The center's public key (`xl-center key` prints it; enrolment sets it). Receipts, the
    /// center's status and pushed configs must carry the center's signature. Required to run,
    /// unless `insecure`.
    #[serde(default)]
    pub center_key: Option<String>,
    /// For a lab without a center key: run anyway, trusting unsigned receipts and center
    /// statuses (anyone on the broker could then stop delivery or fake receipts).
    #[serde(default)]
    pub insecure: bool,
    /// Plain `mqtt://` to a broker on another machine: the password, alarms and pictures then
    /// cross the network in the clear. Refused unless set (on a network only the county
    /// reaches); every start warns.
    #[serde(default)]
    pub allow_plain: bool,
}

fn default_health_interval() -> u64 {
    30
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}

fn default_prefix() -> String {
    xueliang_proto::topics::DEFAULT_PREFIX.into()
}

fn default_keep_alive() -> u64 {
    30
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: default_mqtt_url(),
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
            username: None,
            password: None,
            topic_prefix: default_prefix(),
            keep_alive_s: default_keep_alive(),
            health_interval_s: default_health_interval(),
            persistent_session: false,
            center_key: None,
            insecure: false,
            allow_plain: false,
        }
    }
}

impl MqttConfig {
    /// The broker `url` names.
    pub fn broker(&self) -> Result<BrokerUrl, String> {
        xueliang_proto::endpoint::parse_mqtt_url(&self.url).map_err(|e| format!("mqtt.url: {e}"))
    }

    /// The center's key, if set (`Err` says why it is not a key).
    pub fn center_key(&self) -> Result<Option<VerifyingKey>, String> {
        self.center_key
            .as_deref()
            .map(str::parse::<VerifyingKey>)
            .transpose()
            .map_err(|e| format!("mqtt.center_key: {e}"))
    }

    /// The TLS files, when `url` is `mqtts://`.
    pub fn tls(&self) -> Result<Option<TlsFiles>, String> {
        let tls = self.broker()?.tls;
        let client =
            match (&self.tls_client_cert, &self.tls_client_key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                (None, None) => None,
                _ => return Err(
                    "mqtt.tls_client_cert and mqtt.tls_client_key go together: set both or neither"
                        .into(),
                ),
            };
        match (&self.tls_ca, tls) {
            (Some(ca), true) => Ok(Some(TlsFiles { ca: ca.clone(), client })),
            (None, true) => Err("mqtt.url is mqtts://: set mqtt.tls_ca to the CA certificate that signed the broker's".into()),
            (None, false) if client.is_none() => Ok(None),
            _ => Err("mqtt.tls_* are set but mqtt.url is mqtt://: use mqtts:// for TLS".into()),
        }
    }

    /// Makes relative paths relative to `base`.
    pub(super) fn resolve(&mut self, base: &Path) {
        for p in [&mut self.tls_ca, &mut self.tls_client_cert, &mut self.tls_client_key] {
            *p = p.take().map(|p| base.join(p));
        }
    }
}

impl MqttConfig {
    pub(super) fn problems(&self, p: &mut Vec<Problem>) {
        if let Err(e) = self.tls() {
            p.push(Problem::new("mqtt", e));
        }
        if let Err(e) = self.center_key() {
            p.push(Problem::new("mqtt.center_key", e));
        }
    }
}
