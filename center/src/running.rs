//! The running center: every part started and wired together (broker, embedded or external;
//! ingest, store, cases, dispatch, the HTTP API and the background loops), and stopped together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::BrokerUrl;
use xueliang_proto::signing::SigningKey;
use xueliang_proto::topics::Topics;
use xueliang_service::metrics::Histogram;

use crate::access::{AuditLog, DEFAULT_IDLE, Sessions, Users};
use crate::api::{ApiState, EnrolSettings, HttpsListener, LoginLimits, LoginThrottle, Peer};
use crate::cases::{AlarmFeed, Cases, DISPATCH_LATENCY_BOUNDS, Kept};
use crate::dispatch::{Dispatcher, RetryPolicy, Webhooks};
use crate::duties::{Duties, Speaker, hold_duties};
use crate::fleet::{AgentKeys, ConfigPush, Enrolments, Fleet};
use crate::gb28181::mapping::Mapping;
use crate::gb28181::{Gb28181, Gb28181Stats};
use crate::ingest::{
    self, Announcer, BrokerAccounts, BrokerConnection, BrokerError, Cluster, Ingest, IngestStats,
    QuotaLimits, ServerTls,
};
use crate::routing::Routing;
use crate::store::{Backend, Clips, DeadLetters, Leases, Retention, Store, StoreError};
use crate::tier::{Below, Fetch, Links, TierStats, Upstream};
use crate::watched_file::WatchError;

/// Which broker the center uses.
#[derive(Debug, Clone)]
pub enum BrokerChoice {
    /// Start rumqttd inside the center, listening here (port 0 = any free port).
    Embedded {
        /// Listen address for agents.
        listen: SocketAddr,
        /// TLS for agents' connections.
        tls: Option<ServerTls>,
        /// Agents must log in with the password registered for them (in the key registry).
        passwords: bool,
    },
    /// Connect to an external broker (Mosquitto, EMQX).
    External(BrokerConnection),
}

/// Everything the center needs to start.
#[derive(Debug, Clone)]
pub struct CenterConfig {
    /// Where the center's files live: the embedded store, the key, by default the clips.
    pub data_dir: PathBuf,
    /// Where the records are kept: sled in `data_dir`, or PostgreSQL.
    pub store: Backend,
    /// HTTP listen address (port 0 = any free port).
    pub http_listen: SocketAddr,
    /// The broker.
    pub broker: BrokerChoice,
    /// MQTT topic prefix.
    pub topic_prefix: String,
    /// The registry of agents' public keys (created empty if absent).
    pub agent_keys: PathBuf,
    /// User accounts (`xl-center user add`); none if absent.
    pub users: PathBuf,
    /// Routing rules; none if absent.
    pub routing: PathBuf,
    /// How long alarms, snapshots and clips are kept.
    pub retention: Retention,
    /// Where events' video clips are kept.
    pub clip_dir: PathBuf,
    /// The largest clip an agent may send, bytes.
    pub clip_max_bytes: u64,
    /// Retries of webhook deliveries.
    pub webhook_retry: RetryPolicy,
    /// How often alarms are checked for escalation (supervision looks five times less often).
    pub escalation_check: Duration,
    /// The broker URL enrolling boxes are given; by default the embedded broker's port on the
    /// host name the box reached the API by.
    pub agent_mqtt_url: Option<String>,
    /// The API's certificate and key: served over HTTPS.
    pub http_tls: Option<ServerTls>,
    /// Serve plain HTTP on an address beyond loopback (passwords and session tokens then cross
    /// the network in the clear); refused without it.
    pub allow_plain_http: bool,
    /// Plain MQTT beyond loopback (the embedded broker without TLS on an address other machines
    /// reach, or an `mqtt://` external broker on another machine); refused without it.
    pub allow_plain_mqtt: bool,
    /// The external broker is Mosquitto with its dynamic-security plugin, whose admin the
    /// center's login is: the center keeps boxes' accounts there (made at enrolment).
    pub broker_accounts: bool,
    /// A login session unused this long ends (besides its 12-hour lifetime).
    pub session_idle: Duration,
    /// Limits on log-in attempts: verifications at once, back-off, audit aggregation.
    pub login_limits: LoginLimits,
    /// Free space below this many bytes on the store's disk is logged and shown in `/healthz`.
    pub min_free_bytes: u64,
    /// How often the store's disk is checked (free space, a test write).
    pub disk_check: Duration,
    /// How much each agent may send (messages and bytes).
    pub quota: QuotaLimits,
    /// This process is one of several serving the county (PostgreSQL and an external broker).
    pub cluster: Option<Cluster>,
    /// Where this center forwards its events (the tier above), if it does.
    pub upstream: Option<Upstream>,
    /// The centers of the tier below that forward here (`below.toml`; none if absent).
    pub below: PathBuf,
    /// This center as a lower platform of GB/T 28181 platforms (`gb28181.toml`), if it is one.
    pub gb28181: Option<PathBuf>,
}

impl CenterConfig {
    /// A center storing in `data_dir`, with the default topic prefix; the key registry
    /// `agent-keys.toml`, the users `users.toml`, the routing rules `routing.toml` and the clips
    /// (`clips/`, of at most 200 MiB) in `data_dir`; alarms kept 365 days, snapshots 90, clips
    /// and dead letters 30, the audit log 1095.
    pub fn new(data_dir: PathBuf, http_listen: SocketAddr, broker: BrokerChoice) -> Self {
        Self {
            agent_keys: data_dir.join("agent-keys.toml"),
            users: data_dir.join("users.toml"),
            routing: data_dir.join("routing.toml"),
            retention: Retention {
                alarm_days: 365,
                snapshot_days: 90,
                clip_days: 30,
                dead_letter_days: 30,
                audit_days: 1095,
            },
            clip_dir: data_dir.join("clips"),
            clip_max_bytes: 200 << 20,
            webhook_retry: RetryPolicy::default(),
            escalation_check: Duration::from_secs(1),
            agent_mqtt_url: None,
            http_tls: None,
            allow_plain_http: false,
            broker_accounts: false,
            allow_plain_mqtt: false,
            session_idle: DEFAULT_IDLE,
            login_limits: LoginLimits::default(),
            min_free_bytes: 1 << 30,
            disk_check: Duration::from_secs(10),
            quota: QuotaLimits::default(),
            cluster: None,
            upstream: None,
            below: data_dir.join("below.toml"),
            gb28181: None,
            data_dir,
            store: Backend::Embedded,
            http_listen,
            broker,
            topic_prefix: xueliang_proto::topics::DEFAULT_PREFIX.into(),
        }
    }
}

/// Why the center could not start.
#[derive(Debug, thiserror::Error)]
pub enum CenterError {
    /// Plain HTTP on an address other machines reach, without saying so.
    #[error(
        "--http {0} is reachable from other machines in plain HTTP, where passwords and session tokens travel in the clear: serve HTTPS (--http-tls-cert and --http-tls-key; deploy/tls/make-certs.sh makes them), listen on 127.0.0.1 behind a TLS reverse proxy, or, on a network only the county reaches, say so with --allow-plain-http"
    )]
    PlainHttp(SocketAddr),
    /// Plain MQTT beyond loopback, without saying so.
    #[error(
        "{0} is plain MQTT beyond this machine, where broker passwords, alarms and pictures travel in the clear: use TLS (--mqtt-tls-cert and --mqtt-tls-key for the embedded broker, an mqtts:// --broker-url with --broker-ca), listen on 127.0.0.1, or, on a network only the county reaches, say so with --allow-plain-mqtt"
    )]
    PlainMqtt(String),
    /// A link to another tier cannot be kept as configured.
    #[error("{0}")]
    Tiers(String),
    /// `gb28181.toml` cannot be read or is wrong: the message says where and what to fix.
    #[error("{0}")]
    Gb28181(String),
    /// The API's certificate or key is unusable.
    #[error("--http-tls-cert / --http-tls-key: {0}")]
    HttpTls(xueliang_service::tls::TlsError),
    /// The store could not be opened.
    #[error("cannot open the alarm store in {dir}: {error}")]
    Store {
        /// The directory (or database) concerned.
        dir: PathBuf,
        /// What went wrong.
        error: StoreError,
    },
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The registry of agent keys, the users or the routing rules are unusable.
    #[error("{what} {error}")]
    File {
        /// What the name is of.
        what: &'static str,
        /// What went wrong.
        error: WatchError,
    },
    /// The broker's TLS files are unusable.
    #[error("broker TLS: {0}")]
    Tls(#[from] xueliang_service::tls::TlsError),
    /// The center's own key could not be read or made.
    #[error(transparent)]
    Key(#[from] xueliang_proto::signing::SignatureError),
    /// The broker's accounts could not be prepared.
    #[error("--broker-accounts: {0}")]
    BrokerAccounts(#[from] ingest::AccountsError),
    /// Several processes need what they can share.
    #[error(
        "--cluster: several processes serve one county only from one PostgreSQL store (--store postgres://…) and an external broker (--broker-url); {0}"
    )]
    Cluster(&'static str),
    /// The HTTP port could not be bound.
    #[error("HTTP API cannot listen on {addr}: {error}")]
    Http {
        /// The address concerned.
        addr: SocketAddr,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// A started center.
#[derive(Debug)]
pub struct RunningCenter {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where agents connect (the embedded broker, or the external one).
    pub mqtt_addr: String,
    /// The store (for tests and the demo's counts).
    pub store: Store,
    /// Ingest counters.
    pub stats: Arc<IngestStats>,
    /// The center's public key, which agents need (`mqtt.center_key`) to trust receipts and
    /// pushed configs.
    pub center_key: String,
    /// Configuration push.
    pub configs: ConfigPush,
    /// Cancelled when the store, which met a write error, can write again: the center is then
    /// to stop and start again (sled reopens only so).
    pub reopen: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningCenter {
    /// Waits for the center's tasks to end after `shutdown` was cancelled.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How often the audit log's head is signed while entries come (and at a clean shutdown).
const AUDIT_CHECKPOINT_EVERY: Duration = Duration::from_secs(300);

/// `addr` as this host reaches it: a wildcard listen address becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

/// The center's signing key inside its data directory.
pub fn key_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("center.key")
}

/// Starts the center; it runs until `shutdown` is cancelled.
pub async fn start(
    config: CenterConfig,
    shutdown: CancellationToken,
) -> Result<RunningCenter, CenterError> {
    if config.cluster.is_some() {
        if matches!(config.store, Backend::Embedded) {
            return Err(CenterError::Cluster("the embedded store is one process's"));
        }
        if matches!(config.broker, BrokerChoice::Embedded { .. }) {
            return Err(CenterError::Cluster("the embedded broker is one process's"));
        }
    }
    let place = match &config.store {
        Backend::Embedded => config.data_dir.clone(),
        other => PathBuf::from(other.to_string()),
    };
    let store_err = |error| CenterError::Store { dir: place.clone(), error };
    let below = Below::open(&config.below).map_err(|e| CenterError::Tiers(e.to_string()))?;
    if let Some(up) = config.upstream.as_ref().filter(|u| below.key(&u.name).is_some()) {
        return Err(CenterError::Tiers(format!(
            "{}: names {}, this center's own --forward-as: a center below has a name of its own",
            config.below.display(),
            up.name
        )));
    }
    let tiers = config.upstream.is_some() || !below.is_empty();
    if tiers && matches!(config.broker, BrokerChoice::Embedded { .. }) {
        return Err(CenterError::Tiers(format!(
            "{}: the tiers meet through Mosquitto bridges; give --broker-url (the county's Mosquitto, carrying the bridge)",
            match config.upstream {
                Some(_) => "--forward-as",
                None => "below.toml names centers of the tier below",
            }
        )));
    }
    let mut store = Store::open_with(&config.store, &config.data_dir).map_err(store_err)?;
    if config.upstream.is_some() {
        store = store.forwarding_upward().map_err(store_err)?;
    }
    let mapping = match &config.gb28181 {
        Some(path) => Some(Arc::new(Mapping::open(path).map_err(CenterError::Gb28181)?)),
        None => None,
    };
    if mapping.is_some() {
        store = store.reporting_national().map_err(store_err)?;
    }
    let clips = Clips::open(&store, &config.clip_dir, config.clip_max_bytes)
        .map_err(|error| CenterError::Store { dir: config.clip_dir.clone(), error })?;
    let file = |what| move |error| CenterError::File { what, error };
    let keys = Arc::new(AgentKeys::open(&config.agent_keys).map_err(file("agent keys"))?);
    let users = Arc::new(Users::open(&config.users).map_err(file("users"))?);
    if users.is_empty() {
        warn!(
            "no users in {}: nobody can log in until `xl-center user add` makes one",
            config.users.display()
        );
    }
    let routing = Arc::new(Routing::open(&config.routing).map_err(file("routing"))?);
    let plain_mqtt = match &config.broker {
        BrokerChoice::Embedded { listen, tls: None, .. } if !listen.ip().is_loopback() => {
            Some(format!("--mqtt-listen {listen}"))
        }
        BrokerChoice::External(c) if c.tls.is_none() => {
            let url = BrokerUrl { host: c.host.clone(), port: c.port, tls: false };
            (!url.is_local()).then(|| format!("--broker-url mqtt://{}:{}", c.host, c.port))
        }
        _ => None,
    };
    if let Some(what) = plain_mqtt {
        if !config.allow_plain_mqtt {
            return Err(CenterError::PlainMqtt(what));
        }
        warn!(
            "--allow-plain-mqtt: {what} is plain MQTT; broker passwords, alarms and pictures cross the network in the clear"
        );
    }
    let mut embedded = None;
    let (conn, mqtt_addr) = match &config.broker {
        BrokerChoice::Embedded { listen, tls, passwords } => {
            let passwords = passwords.then(|| keys.clone());
            let at = ingest::start_broker(
                *listen,
                xueliang_proto::MAX_MESSAGE_BYTES + 4096,
                tls.as_ref(),
                passwords,
            )?;
            let scheme = if tls.is_some() { "mqtts" } else { "mqtt" };
            info!("embedded MQTT broker listening on {scheme}://{}", at.agents);
            embedded = Some((at.agents.port(), tls.is_some()));
            let center = reachable(at.center);
            let conn = BrokerConnection {
                host: center.ip().to_string(),
                port: center.port(),
                credentials: None,
                tls: None,
            };
            (conn, reachable(at.agents).to_string())
        }
        BrokerChoice::External(c) => (c.clone(), format!("{}:{}", c.host, c.port)),
    };
    if config.http_tls.is_none() && !config.http_listen.ip().is_loopback() {
        if !config.allow_plain_http {
            return Err(CenterError::PlainHttp(config.http_listen));
        }
        warn!(
            "--allow-plain-http: the API on {} is plain HTTP; passwords and session tokens cross the network in the clear",
            config.http_listen
        );
    }
    let https = match &config.http_tls {
        Some(t) => Some(
            xueliang_service::tls::server_config(&t.cert, &t.key).map_err(CenterError::HttpTls)?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|error| CenterError::Http { addr: config.http_listen, error })?;
    let http_addr = listener
        .local_addr()
        .map_err(|error| CenterError::Http { addr: config.http_listen, error })?;
    let scheme = if https.is_some() { "https" } else { "http" };
    info!("HTTP API on {scheme}://{http_addr}/api/alarms");
    let stats = Arc::new(IngestStats::default());
    let center_key = Arc::new(SigningKey::load_or_create(&key_path(&config.data_dir))?);
    info!("center key {} (agents set it as mqtt.center_key)", center_key.public_key());
    let topics = Topics::new(config.topic_prefix.clone());
    // Ids grow across restarts: a run number no clock step can turn back. Of several processes,
    // the one taking the center's duties takes a new one.
    let announcer = match &config.cluster {
        None => Announcer::new(center_key.clone(), store.next_id().map_err(store_err)? + 1),
        Some(_) => Announcer::silent(center_key.clone()),
    };
    let accounts = match &config.broker {
        BrokerChoice::External(conn) if config.broker_accounts => {
            let accounts = BrokerAccounts::new(conn.clone(), topics.clone());
            accounts.prepare().await?;
            info!("the broker's accounts are kept here (Mosquitto dynamic security)");
            Some(Arc::new(accounts))
        }
        _ => None,
    };
    let (client, eventloop) = ingest::connect(&conn, &topics, &announcer, config.cluster.as_ref())?;
    let configs = ConfigPush::new(&store, client.clone(), topics.clone(), center_key.clone())
        .map_err(store_err)?;
    let dead_letters = DeadLetters::open(&store).map_err(store_err)?;
    // Its checkpoints are signed with the key that signs receipts.
    let audit = AuditLog::open(&store).map_err(store_err)?.signed_by(center_key.clone());
    let fleet = Fleet::open(&store).map_err(store_err)?;
    let webhooks = Webhooks::open(&store, config.webhook_retry).map_err(store_err)?;
    let dispatcher = Dispatcher::new(
        client.clone(),
        topics.clone(),
        webhooks.clone(),
        routing.clone(),
        center_key.clone(),
    );
    let (feed, changes) = match &config.cluster {
        None => (AlarmFeed::default(), None),
        Some(_) => {
            let (feed, changes) = AlarmFeed::relaying();
            (feed, Some(changes))
        }
    };
    let cases = Cases {
        store: store.clone(),
        audit: audit.clone(),
        dispatcher,
        routing: routing.clone(),
        feed: feed.clone(),
        dispatch_latency: Arc::new(Histogram::new(&DISPATCH_LATENCY_BOUNDS)),
    };
    let context = Ingest {
        topics: topics.clone(),
        store: store.clone(),
        clips: clips.clone(),
        dead_letters: dead_letters.clone(),
        keys: keys.clone(),
        center_key: center_key.clone(),
        configs: configs.clone(),
        stats: stats.clone(),
        routing,
        fleet: fleet.clone(),
        feed: feed.clone(),
        announcer: announcer.clone(),
        quota: config.quota,
        cluster: config.cluster.clone(),
    };
    let ingest_client = client.clone();
    let conn_for_tiers = conn.clone();
    let ingest =
        tokio::spawn(ingest::run(conn, client, eventloop, context, changes, shutdown.clone()));
    let reopen = CancellationToken::new();
    let mut background = vec![
        tokio::spawn(crate::store::watch_disk(
            store.clone(),
            config.min_free_bytes,
            config.disk_check,
            reopen.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(audit.clone().keep_checkpoints(AUDIT_CHECKPOINT_EVERY, shutdown.clone())),
    ];
    let tier_stats = Arc::new(TierStats::default());
    let fetch = Fetch {
        below: below.clone(),
        key: center_key.clone(),
        above: config.upstream.as_ref().map(|u| u.above_key.clone()),
        kept: Default::default(),
    };
    let links = tiers.then(|| Links {
        upstream: config.upstream.clone(),
        below,
        broker: conn_for_tiers.clone(),
        store: store.clone(),
        dead_letters: dead_letters.clone(),
        feed: feed.clone(),
        key: center_key.clone(),
        topics: topics.clone(),
        stats: tier_stats.clone(),
        fleet: fleet.clone(),
        keys: keys.clone(),
    });
    let gb28181_stats = Arc::new(Gb28181Stats::default());
    let gb28181 = mapping.map(|mapping| Gb28181 {
        mapping,
        store: store.clone(),
        routing: cases.routing.clone(),
        fleet: fleet.clone(),
        keys: keys.clone(),
        stats: gb28181_stats.clone(),
    });
    let duties = Duties {
        cases: cases.clone(),
        kept: Kept {
            store: store.clone(),
            clips: clips.clone(),
            dead_letters: dead_letters.clone(),
            webhooks: webhooks.clone(),
            fleet: fleet.clone(),
            keys: keys.clone(),
        },
        audit: audit.clone(),
        retention: config.retention,
        escalation_check: config.escalation_check,
        min_free_bytes: config.min_free_bytes,
        links,
        gb28181,
    };
    match &config.cluster {
        None => background.extend(duties.start(shutdown.clone()).map_err(store_err)?),
        Some(cluster) => background.push(tokio::spawn(hold_duties(
            duties,
            Leases::open(&store).map_err(store_err)?,
            cluster.node.clone(),
            Speaker {
                announcer: announcer.clone(),
                client: ingest_client,
                topic: topics.center_status(),
                ingesting: stats.clone(),
            },
            shutdown.clone(),
        ))),
    }
    let logins = Arc::new(LoginThrottle::new(config.login_limits.clone()));
    let login_audit =
        tokio::spawn(logins.clone().run_audit(audit.clone(), store.clone(), shutdown.clone()));
    let app = crate::api::router(ApiState {
        store: store.clone(),
        clips,
        cases,
        configs: configs.clone(),
        dead_letters,
        stats: stats.clone(),
        users,
        sessions: Sessions::open(&store, config.session_idle).map_err(store_err)?,
        logins,
        audit,
        fleet,
        keys,
        webhooks,
        feed,
        enrolments: Enrolments::open(&store).map_err(store_err)?,
        enrol: EnrolSettings {
            mqtt_url: config.agent_mqtt_url.clone(),
            embedded,
            passwords: matches!(config.broker, BrokerChoice::Embedded { passwords: true, .. }),
            accounts,
            center_key: center_key.public_key(),
        },
        https: https.is_some(),
        announcer: announcer.clone(),
        tiers: tier_stats,
        fetch,
        gb28181: gb28181_stats,
    });
    let http_shutdown = shutdown.clone();
    let http = match https {
        Some(tls) => {
            let listener = HttpsListener::new(listener, tls)
                .map_err(|error| CenterError::Http { addr: config.http_listen, error })?;
            tokio::spawn(serve_api(listener, app, http_shutdown))
        }
        None => tokio::spawn(serve_api(listener, app, http_shutdown)),
    };
    Ok(RunningCenter {
        http_addr,
        mqtt_addr,
        store,
        stats,
        center_key: center_key.public_key(),
        configs,
        reopen,
        tasks: [ingest, http, login_audit].into_iter().chain(background).collect(),
    })
}

/// Serves the API `app` on `listener` until `shutdown`.
async fn serve_api<L>(listener: L, app: axum::Router, shutdown: CancellationToken)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> Peer: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    // Each request knows its client's address (log-ins are limited per address).
    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    if let Err(e) = serve.await {
        tracing::error!("HTTP API stopped: {e}");
    }
}
