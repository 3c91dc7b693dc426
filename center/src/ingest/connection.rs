//! The center's MQTT client: where it connects, and how (a persistent session with manual
//! acknowledgements, so that only what is on disk is acknowledged; a last will saying the center
//! is offline).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, EventLoop, LastWill, MqttOptions, NetworkOptions, QoS, TlsConfiguration, Transport,
};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{CENTER_STATUS_SIGNATURE_FIELD, SigningKey};
use xueliang_proto::topics::Topics;
use xueliang_proto::{CAPABILITY_CLIPS, CAPABILITY_EVENTS, CenterStatus, Message, SCHEMA_VERSION};
use xueliang_service::tls::{TlsError, TlsFiles, client_config};

/// Where the center's MQTT client connects.
#[derive(Debug, Clone)]
pub struct BrokerConnection {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Optional username and password.
    pub credentials: Option<(String, String)>,
    /// TLS (`mqtts://`): the CA, and a client certificate if the broker requires one.
    pub tls: Option<TlsFiles>,
}

/// What this run of the center says about itself on its status topic (retained, and as its
/// last will), signed with its key and numbered with the run, so agents can tell it from a
/// forged or replayed status.
#[derive(Debug, Clone)]
pub struct Announcer {
    key: Arc<SigningKey>,
    run: u64,
    run_ms: i64,
}

impl Announcer {
    /// The announcer of run `run` (growing with every start), starting now, signing with the
    /// center's `key`.
    pub fn new(key: Arc<SigningKey>, run: u64) -> Self {
        Self { key, run, run_ms: now_ms() }
    }

    /// The signed CenterStatus payload.
    pub(super) fn status(&self, online: bool) -> Vec<u8> {
        let status = CenterStatus {
            schema_version: SCHEMA_VERSION as i32,
            online,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            time_ms: self.run_ms,
            // Agents send events' updates only to a center that stores them.
            capabilities: vec![CAPABILITY_EVENTS.into(), CAPABILITY_CLIPS.into()],
            signature: Default::default(),
            run: self.run,
        };
        // Signing a few bytes with a loaded key fails only on malformed protobuf, which this is
        // not; an unsigned status would be ignored by agents, never trusted.
        self.key
            .sign(status.encode_to_vec(), CENTER_STATUS_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| status.encode_to_vec())
    }
}

/// The center's MQTT client for `conn` (nothing is sent before the event loop is polled).
pub fn connect(
    conn: &BrokerConnection,
    topics: &Topics,
    announcer: &Announcer,
) -> Result<(AsyncClient, EventLoop), TlsError> {
    let mut opts = MqttOptions::new("xl-center-ingest", conn.host.clone(), conn.port);
    opts.set_last_will(LastWill::new(
        topics.center_status(),
        announcer.status(false),
        QoS::AtLeastOnce,
        true,
    ));
    opts.set_keep_alive(Duration::from_secs(30));
    // Take in more than any message may be: an oversized one must reach validation and be
    // dead-lettered. Refused by the client, it would break the connection, and the broker
    // would deliver it again after every reconnect.
    opts.set_max_packet_size(
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
    );
    // A persistent session: alarms published while the center is down wait at the broker.
    opts.set_clean_session(false);
    // Acknowledge only after the batch is flushed to disk.
    opts.set_manual_acks(true);
    if let Some((u, p)) = &conn.credentials {
        opts.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &conn.tls {
        let tls = client_config(files)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // Acknowledgements and receipts are small: sent at once, not held back by Nagle's algorithm
    // waiting for the broker's delayed ACK (~40 ms per round trip otherwise).
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    Ok((client, eventloop))
}
