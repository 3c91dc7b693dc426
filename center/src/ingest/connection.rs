//! The center's MQTT client: where it connects, and how (a persistent session with manual
//! acknowledgements, so that only what is on disk is acknowledged; a last will saying the center
//! is offline). One of several processes serving a county ([`Cluster`]) shares the agents'
//! topics with the others through MQTT shared subscriptions instead, in a clean session, and
//! leaves no last will: the county's center is not offline while another process serves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

/// One of several center processes serving one county from one PostgreSQL store.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The MQTT shared-subscription group the processes share the agents' topics in.
    pub group: String,
    /// This process's name among them (its MQTT client id, the holder of leases), unique.
    pub node: String,
}

/// What this run of the center says about itself on its status topic (retained, and as its
/// last will), signed with its key and numbered with the run, so agents can tell it from a
/// forged or replayed status. Of several processes, only the one holding the center's duties
/// speaks, each time it takes them with a new run.
#[derive(Debug, Clone)]
pub struct Announcer {
    key: Arc<SigningKey>,
    /// The run and when it began, UTC ms.
    run: Arc<Mutex<(u64, i64)>>,
    speaks: Arc<AtomicBool>,
}

impl Announcer {
    /// The announcer of run `run` (growing with every start), starting now, signing with the
    /// center's `key`.
    pub fn new(key: Arc<SigningKey>, run: u64) -> Self {
        Self {
            key,
            run: Arc::new(Mutex::new((run, now_ms()))),
            speaks: Arc::new(AtomicBool::new(true)),
        }
    }

    /// An announcer silent until [`Announcer::take_over`], for one of several processes.
    pub fn silent(key: Arc<SigningKey>) -> Self {
        let announcer = Self::new(key, 0);
        announcer.speaks.store(false, Ordering::Relaxed);
        announcer
    }

    /// This process now speaks for the center, as run `run` (higher than any before).
    pub fn take_over(&self, run: u64) {
        *self.run.lock().unwrap_or_else(PoisonError::into_inner) = (run, now_ms());
        self.speaks.store(true, Ordering::Relaxed);
    }

    /// Another process speaks for the center now.
    pub fn step_down(&self) {
        self.speaks.store(false, Ordering::Relaxed);
    }

    /// Whether this process speaks for the center.
    pub fn speaks(&self) -> bool {
        self.speaks.load(Ordering::Relaxed)
    }

    /// The signed CenterStatus payload.
    pub fn status(&self, online: bool) -> Vec<u8> {
        let (run, run_ms) = *self.run.lock().unwrap_or_else(PoisonError::into_inner);
        let status = CenterStatus {
            schema_version: SCHEMA_VERSION as i32,
            online,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            time_ms: run_ms,
            // Agents send events' updates only to a center that stores them.
            capabilities: vec![CAPABILITY_EVENTS.into(), CAPABILITY_CLIPS.into()],
            signature: Default::default(),
            run,
        };
        // Signing a few bytes with a loaded key fails only on malformed protobuf, which this is
        // not; an unsigned status would be ignored by agents, never trusted.
        self.key
            .sign(status.encode_to_vec(), CENTER_STATUS_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| status.encode_to_vec())
    }
}

/// The center's MQTT client for `conn` (nothing is sent before the event loop is polled), as
/// one process of `cluster` if given.
pub fn connect(
    conn: &BrokerConnection,
    topics: &Topics,
    announcer: &Announcer,
    cluster: Option<&Cluster>,
) -> Result<(AsyncClient, EventLoop), TlsError> {
    let id =
        cluster.map_or_else(|| "xl-center-ingest".to_owned(), |c| format!("xl-center-{}", c.node));
    let mut opts = options(conn, id)?;
    if cluster.is_none() {
        opts.set_last_will(LastWill::new(
            topics.center_status(),
            announcer.status(false),
            QoS::AtLeastOnce,
            true,
        ));
    }
    // Take in more than any message may be: an oversized one must reach validation and be
    // dead-lettered. Refused by the client, it would break the connection, and the broker
    // would deliver it again after every reconnect.
    opts.set_max_packet_size(
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
    );
    // A persistent session: alarms published while the center is down wait at the broker. Of
    // several processes, a clean one: what a process killed had in flight goes again from the
    // boxes, which send whatever is not receipted (Mosquitto 2.0 does not hand a lost member's
    // persistent shared-subscription messages to the others).
    opts.set_clean_session(cluster.is_some());
    // Acknowledge only after the batch is flushed to disk.
    opts.set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // Acknowledgements and receipts are small: sent at once, not held back by Nagle's algorithm
    // waiting for the broker's delayed ACK (~40 ms per round trip otherwise).
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    Ok((client, eventloop))
}

/// A client of the center's as `id` at the broker `conn` names: its credentials and TLS, a
/// 30-second keep-alive.
pub fn options(conn: &BrokerConnection, id: String) -> Result<MqttOptions, TlsError> {
    let mut opts = MqttOptions::new(id, conn.host.clone(), conn.port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = &conn.credentials {
        opts.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &conn.tls {
        let tls = client_config(files)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    }
    Ok(opts)
}
