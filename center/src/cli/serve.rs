//! `xl-center serve`: runs the center until interrupted (Ctrl-C, or SIGTERM from systemd).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::bail;
use tokio_util::sync::CancellationToken;
use xueliang_center::ingest::{BrokerConnection, Cluster, ServerTls};
use xueliang_center::running::{BrokerChoice, CenterConfig, CenterError, start};
use xueliang_center::store::{Retention, Store, StoreError};
use xueliang_center::tier::Upstream;
use xueliang_proto::endpoint::{BrokerUrl, parse_mqtt_url};
use xueliang_service::systemd;
use xueliang_service::tls::TlsFiles;

use super::store_args::StoreArgs;

/// How the center runs.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    at: StoreArgs,
    /// HTTP API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Serve the API and console over HTTPS with this certificate (PEM, the chain).
    #[arg(long, requires = "http_tls_key")]
    http_tls_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM).
    #[arg(long, requires = "http_tls_cert")]
    http_tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address beyond loopback (a network only the county reaches):
    /// passwords and session tokens then cross it in the clear. Refused without this flag.
    #[arg(long, conflicts_with = "http_tls_cert")]
    allow_plain_http: bool,
    /// Plain MQTT beyond loopback (the embedded broker without TLS on an address other machines
    /// reach, or an mqtt:// --broker-url on another machine): broker passwords, alarms and
    /// pictures then cross the network in the clear. Refused without this flag.
    #[arg(long)]
    allow_plain_mqtt: bool,
    /// Listen address of the embedded MQTT broker, for development and tests (ignored with
    /// --broker-url). It cannot keep one box from reading another's topics: a county uses
    /// Mosquitto (--broker-url with --broker-accounts).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// TLS for the embedded broker's agents: its certificate (PEM); agents then use mqtts://.
    #[arg(long, requires = "mqtt_tls_key", conflicts_with = "broker_url")]
    mqtt_tls_cert: Option<PathBuf>,
    /// The embedded broker's private key (PEM).
    #[arg(long, requires = "mqtt_tls_cert")]
    mqtt_tls_key: Option<PathBuf>,
    /// The embedded broker accepts only agents logging in as their agent id with the password
    /// registered for them (the key registry's [passwords]; `xl-center broker-password`).
    #[arg(long, conflicts_with = "broker_url")]
    mqtt_passwords: bool,
    /// Use an external broker (e.g. mqtt://127.0.0.1:1883) instead of the embedded one.
    #[arg(long)]
    broker_url: Option<String>,
    /// With an mqtts:// broker URL: the CA certificate (PEM) that signed the broker's.
    #[arg(long, requires = "broker_url")]
    broker_ca: Option<PathBuf>,
    /// With mqtts://, for a broker that requires client certificates: the center's (PEM).
    #[arg(long, requires = "broker_client_key")]
    broker_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "broker_client_cert")]
    broker_client_key: Option<PathBuf>,
    /// Username at the external broker.
    #[arg(long, requires = "broker_url")]
    broker_username: Option<String>,
    /// Password at the external broker (or the XL_BROKER_PASSWORD environment variable).
    #[arg(long, env = "XL_BROKER_PASSWORD", hide_env_values = true, requires = "broker_url")]
    broker_password: Option<String>,
    /// The external broker is Mosquitto with its dynamic-security plugin and the center's login
    /// is its admin: the center then makes each enrolled box's account there (bound to its
    /// client id, its own topics only) and deletes it when the box is removed.
    #[arg(long, requires = "broker_username")]
    broker_accounts: bool,
    /// MQTT topic prefix.
    #[arg(long, default_value = xueliang_proto::topics::DEFAULT_PREFIX)]
    topic_prefix: String,
    /// The registry of agents' public keys (default: agent-keys.toml in the data directory).
    #[arg(long)]
    agent_keys: Option<PathBuf>,
    /// Routing rules (default: routing.toml in the data directory; none if absent).
    #[arg(long)]
    routing: Option<PathBuf>,
    /// Days alarm records are kept.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: u32,
    /// Days snapshots are kept (at most --retention-days).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..))]
    snapshot_retention_days: u32,
    /// Directory of events' video clips (default: clips in the data directory).
    #[arg(long)]
    clip_dir: Option<PathBuf>,
    /// Days events' video clips are kept after they arrived (at most --retention-days).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    clip_retention_days: u32,
    /// Days refused payloads (dead letters) are kept after they were last refused.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    dead_letter_retention_days: u32,
    /// Days the audit log is kept (at least --retention-days: who saw an alarm outlives it).
    #[arg(long, default_value_t = 1095, value_parser = clap::value_parser!(u32).range(1..))]
    audit_retention_days: u32,
    /// The largest video clip an agent may send, MiB; a chunk of a larger one is refused.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=65536))]
    clip_max_mib: u64,
    /// The broker URL enrolling boxes are given (`xl-agent enroll`), as they reach it, e.g.
    /// mqtts://county.example:8883. Default, with the embedded broker: its port on the host name
    /// the box reached this API by. Required with an external broker.
    #[arg(long)]
    agent_mqtt_url: Option<String>,
    /// Minutes a login session may go unused before it ends (besides its 12-hour lifetime;
    /// an open console watching the alarms counts as use).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=720))]
    session_idle_minutes: u64,
    /// Free space (MiB) on the data directory's disk below which the center warns (log,
    /// /healthz, metrics) before the store stops writing.
    #[arg(long, default_value_t = 1024)]
    min_free_mib: u64,
    /// Serve the county together with other processes like this one, each given the same NAME,
    /// one PostgreSQL --store, one external --broker-url and the same data directory (on
    /// storage they share): the broker shares the boxes' messages among them (MQTT shared
    /// subscription group NAME) and one at a time does escalation, supervision, retention and
    /// webhooks, and speaks for the center, through a lease in the store.
    #[arg(long, env = "XL_CLUSTER", requires = "broker_url")]
    cluster: Option<String>,
    /// This process's name in --cluster, unique among them (default: the host name and the
    /// process id).
    #[arg(long, env = "XL_NODE", requires = "cluster")]
    node: Option<String>,
    /// Forward every event's record and a thumbnail to the center of the tier above (county to
    /// city, city to province) under this NAME (e.g. the county's division code), through the
    /// Mosquitto bridge of --broker-url; needs --above-key.
    #[arg(long, env = "XL_FORWARD_AS", requires_all = ["above_key", "broker_url"])]
    forward_as: Option<String>,
    /// The center key of the tier above (as its `xl-center key` prints it), which signs its
    /// receipts.
    #[arg(long, env = "XL_ABOVE_KEY", requires = "forward_as")]
    above_key: Option<String>,
    /// The centers of the tier below that forward here, each by name and center key
    /// (default: below.toml in the data directory; none if absent).
    #[arg(long)]
    below: Option<PathBuf>,
    /// This center as a lower platform of GB/T 28181 platforms: their addresses and the
    /// cameras' codes (default: gb28181.toml in the data directory; none if absent).
    #[arg(long, env = "XL_GB28181")]
    gb28181: Option<PathBuf>,
}

/// The process `node` (by default this host and process) of shared-subscription group `group`.
fn cluster_of(group: String, node: Option<String>) -> anyhow::Result<Cluster> {
    let name_ok = |s: &str| xueliang_proto::topics::is_valid_id(s);
    if !name_ok(&group) {
        bail!(
            "--cluster {group:?}: a name of 1 to 64 letters, digits, '-' or '_' (it names an MQTT shared subscription)"
        );
    }
    let node = match node {
        Some(n) if name_ok(&n) => n,
        Some(n) => bail!("--node {n:?}: a name of 1 to 64 letters, digits, '-' or '_'"),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host: String = host
                .trim()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                .take(48)
                .collect();
            format!("{host}-{}", std::process::id())
        }
    };
    Ok(Cluster { group, node })
}

/// Runs the center until interrupted.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        at: StoreArgs { data_dir, store },
        http,
        http_tls_cert,
        http_tls_key,
        allow_plain_http,
        allow_plain_mqtt,
        mqtt_listen,
        mqtt_tls_cert,
        mqtt_tls_key,
        mqtt_passwords,
        broker_url,
        broker_username,
        broker_password,
        broker_ca,
        broker_client_cert,
        broker_client_key,
        broker_accounts,
        topic_prefix,
        agent_keys,
        routing,
        retention_days,
        snapshot_retention_days,
        clip_dir,
        clip_retention_days,
        dead_letter_retention_days,
        audit_retention_days,
        clip_max_mib,
        agent_mqtt_url,
        session_idle_minutes,
        min_free_mib,
        cluster,
        node,
        forward_as,
        above_key,
        below,
        gb28181,
    } = args;
    let broker = match broker_url {
        None => BrokerChoice::Embedded {
            listen: mqtt_listen,
            tls: mqtt_tls_cert.zip(mqtt_tls_key).map(|(cert, key)| ServerTls { cert, key }),
            passwords: mqtt_passwords,
        },
        Some(url) => {
            let BrokerUrl { host, port, tls } =
                parse_mqtt_url(&url).map_err(|e| anyhow::anyhow!("--broker-url: {e}"))?;
            let tls = match (tls, broker_ca) {
                (true, Some(ca)) => {
                    Some(TlsFiles { ca, client: broker_client_cert.zip(broker_client_key) })
                }
                (true, None) => bail!(
                    "--broker-url is mqtts://: give --broker-ca, the CA certificate that signed the broker's"
                ),
                (false, None) if broker_client_cert.is_none() => None,
                (false, _) => {
                    bail!("--broker-ca and --broker-client-cert need an mqtts:// --broker-url")
                }
            };
            BrokerChoice::External(BrokerConnection {
                host,
                port,
                credentials: broker_password
                    .map(|p| (broker_username.unwrap_or_else(|| "xl-center".into()), p)),
                tls,
            })
        }
    };
    let cluster = cluster.map(|group| cluster_of(group, node)).transpose()?;
    let upstream = match forward_as.zip(above_key) {
        Some((name, _)) if !xueliang_proto::topics::is_valid_id(&name) => bail!(
            "--forward-as {name:?}: a name of 1 to 64 letters, digits, '-' or '_' (e.g. the county's division code)"
        ),
        Some((name, key)) => Some(Upstream {
            name,
            above_key: key.parse().map_err(|e| {
                anyhow::anyhow!(
                    "--above-key: {e} (write the key the tier above's `xl-center key` prints)"
                )
            })?,
        }),
        None => None,
    };
    let gb28181 = gb28181.or_else(|| Some(data_dir.join("gb28181.toml")).filter(|p| p.exists()));
    let mut config = CenterConfig::new(data_dir, http, broker);
    config.gb28181 = gb28181;
    config.cluster = cluster;
    config.upstream = upstream;
    if let Some(path) = below {
        config.below = path;
    }
    config.store = store;
    config.http_tls = http_tls_cert.zip(http_tls_key).map(|(cert, key)| ServerTls { cert, key });
    config.allow_plain_http = allow_plain_http;
    config.broker_accounts = broker_accounts;
    config.allow_plain_mqtt = allow_plain_mqtt;
    config.topic_prefix = topic_prefix;
    if let Some(path) = agent_keys {
        config.agent_keys = path;
    }
    if let Some(path) = routing {
        config.routing = path;
    }
    if audit_retention_days < retention_days {
        anyhow::bail!(
            "--audit-retention-days {audit_retention_days} is shorter than --retention-days \
             {retention_days}: the record of who saw an alarm must outlive the alarm; raise it"
        );
    }
    config.retention = Retention {
        alarm_days: retention_days,
        snapshot_days: snapshot_retention_days,
        clip_days: clip_retention_days,
        dead_letter_days: dead_letter_retention_days,
        audit_days: audit_retention_days,
    };
    if let Some(dir) = clip_dir {
        config.clip_dir = dir;
    }
    config.clip_max_bytes = clip_max_mib << 20;
    if let Some(url) = &agent_mqtt_url {
        parse_mqtt_url(url).map_err(|e| anyhow::anyhow!("--agent-mqtt-url: {e}"))?;
    }
    config.agent_mqtt_url = agent_mqtt_url;
    config.session_idle = std::time::Duration::from_secs(session_idle_minutes * 60);
    config.min_free_bytes = min_free_mib << 20;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let reopen = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let center = match start(config, shutdown.clone()).await {
            Ok(center) => center,
            // Kept as the store's error, so that main exits with the corrupt store's code.
            Err(CenterError::Store { error: e @ StoreError::CorruptDatabase { .. }, .. }) => {
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        eprintln!(
            "xl-center: API http://{}/api/alarms, MQTT {}, center key {}",
            center.http_addr, center.mqtt_addr, center.center_key
        );
        systemd::notify("READY=1");
        if let Some(every) = systemd::watchdog_interval() {
            let alive = Arc::new(AtomicI64::new(systemd::now_ms()));
            tokio::spawn(heartbeat(center.store.clone(), alive.clone(), shutdown.clone()));
            tokio::spawn(systemd::watchdog(alive, every, "the center's runtime", shutdown.clone()));
        }
        let reopen = tokio::select! {
            () = xueliang_service::shutdown::signal() => false,
            () = center.reopen.cancelled() => true,
        };
        systemd::notify("STOPPING=1");
        shutdown.cancel();
        // Consoles' open streams may hold the HTTP server: what matters is stored already.
        if tokio::time::timeout(Duration::from_secs(15), center.join()).await.is_err() {
            tracing::warn!("the center's tasks did not all end within 15 s");
        }
        anyhow::Ok(reopen)
    })?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    if reopen {
        // The same process, started again: sled clears its write error only when reopened,
        // and so the embedded broker and every part start afresh without anyone restarting it.
        let exe = std::env::current_exe()?;
        let error = std::process::Command::new(&exe).args(std::env::args_os().skip(1)).exec();
        bail!("cannot start {} again to reopen the store: {error}", exe.display());
    }
    Ok(())
}

/// Stamps `alive` every second once a task spawned on the runtime and a read of the store on a
/// blocking thread have both come back: the watchdog's proof that the center still works, not
/// only its timer.
async fn heartbeat(store: Store, alive: Arc<AtomicI64>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let store = store.clone();
        // Any answer will do (a damaged record is the store's error, not a hang).
        let probe = tokio::spawn(async move {
            tokio::task::spawn_blocking(move || store.get("watchdog-probe").is_ok()).await
        });
        if probe.await.is_ok() {
            alive.store(systemd::now_ms(), Ordering::Relaxed);
        }
    }
}
