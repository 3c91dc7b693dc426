//! The running center: broker (embedded or external), ingest, store and HTTP API together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use xueliang_proto::topics::Topics;

use crate::broker::{self, BrokerError};
use crate::ingest::{self, BrokerConnection, IngestStats};
use crate::store::{Store, StoreError};

/// Which broker the center uses.
#[derive(Debug, Clone)]
pub enum BrokerChoice {
    /// Start rumqttd inside the center, listening here (port 0 = any free port).
    Embedded {
        /// Listen address for agents.
        listen: SocketAddr,
    },
    /// Connect to an external broker (Mosquitto, EMQX).
    External(BrokerConnection),
}

/// Everything the center needs to start.
#[derive(Debug, Clone)]
pub struct CenterConfig {
    /// Where the sled store lives.
    pub data_dir: PathBuf,
    /// HTTP listen address (port 0 = any free port).
    pub http_listen: SocketAddr,
    /// The broker.
    pub broker: BrokerChoice,
    /// MQTT topic prefix.
    pub topic_prefix: String,
}

/// Why the center could not start.
#[derive(Debug, thiserror::Error)]
pub enum CenterError {
    /// The store could not be opened.
    #[error("cannot open the alarm store in {dir}: {error}")]
    Store { dir: PathBuf, error: StoreError },
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The HTTP port could not be bound.
    #[error("HTTP API cannot listen on {addr}: {error}")]
    Http {
        addr: SocketAddr,
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

/// Starts the center; it runs until `shutdown` is cancelled.
pub async fn start(
    config: CenterConfig,
    shutdown: CancellationToken,
) -> Result<RunningCenter, CenterError> {
    let store = Store::open(&config.data_dir).map_err(|error| CenterError::Store {
        dir: config.data_dir.clone(),
        error,
    })?;
    let conn = match &config.broker {
        BrokerChoice::Embedded { listen } => {
            let addr = broker::start(*listen, xueliang_proto::MAX_MESSAGE_BYTES + 4096)?;
            info!("embedded MQTT broker listening on {addr}");
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            BrokerConnection {
                host,
                port: addr.port(),
                credentials: None,
            }
        }
        BrokerChoice::External(c) => c.clone(),
    };
    let mqtt_addr = format!("{}:{}", conn.host, conn.port);
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|error| CenterError::Http {
            addr: config.http_listen,
            error,
        })?;
    let http_addr = listener.local_addr().map_err(|error| CenterError::Http {
        addr: config.http_listen,
        error,
    })?;
    info!("HTTP API on http://{http_addr}/api/alarms");
    let stats = Arc::new(IngestStats::default());
    let ingest = tokio::spawn(ingest::run(
        conn,
        Topics::new(config.topic_prefix.clone()),
        store.clone(),
        stats.clone(),
        shutdown.clone(),
    ));
    let app = crate::api::router(store.clone());
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!("HTTP API stopped: {e}");
        }
    });
    Ok(RunningCenter {
        http_addr,
        mqtt_addr,
        store,
        stats,
        tasks: vec![ingest, http],
    })
}
