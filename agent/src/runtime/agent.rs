//! The running agent: start-up (the config in force, the model, the outbox, the key), then the
//! publisher and the pipeline of one config; a config the center pushes is checked and loaded
//! off to the side and swaps the pipeline, while the outbox and the connection stay.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use gstreamer as gst;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{ConfigAck, Health};
use xueliang_service::systemd;

use super::metrics::{self, Metrics};
use super::pipeline::{Handover, Pipeline, Prepared};
use crate::config::AgentConfig;
use crate::delivery::{Links, Outbox, OutboxError, Publisher, PushError, PushedConfigs};
use crate::detect::DetectorError;
use crate::evidence::Sealer;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// GStreamer is missing or broken.
    #[error("GStreamer: {0}")]
    Gstreamer(String),
    /// The detector could not be loaded.
    #[error(transparent)]
    Detector(#[from] DetectorError),
    /// The configuration refers to something the model or system lacks.
    #[error("config: {0}")]
    Config(String),
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The agent's signing key could not be read or made.
    #[error(transparent)]
    Key(#[from] xueliang_proto::signing::SignatureError),
    /// A thread could not be started.
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// An agent whose model, rules and broker settings are checked and ready to run.
pub struct Agent {
    /// The local file's config; pushed configs are applied on top of it.
    local: AgentConfig,
    /// The config in force (the local one, or it with the last pushed one applied).
    config: AgentConfig,
    /// Version of the pushed config in force (0: the local file).
    config_version: u64,
    prepared: Prepared,
    publisher: Publisher,
    outbox: Outbox,
    sealer: Arc<Sealer>,
    remote: PushedConfigs,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("agent_id", &self.config.agent_id)
            .field("config_version", &self.config_version)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Loads the model and resolves the rules: every problem is reported here, before any
    /// camera is opened. A config pushed by the center and applied before the last stop is
    /// run instead of the local one, if it still fits.
    pub fn build(local: AgentConfig) -> Result<Self, AgentError> {
        gst::init().map_err(|e| AgentError::Gstreamer(e.to_string()))?;
        let remote = PushedConfigs::new(&local);
        let saved = remote.load_saved().and_then(|pushed| match PushedConfigs::merge(&local, &pushed) {
            Ok(config) => match Prepared::build(&config) {
                Ok(prepared) => Some((config, pushed.version, prepared)),
                Err(e) => {
                    warn!("the pushed config version {} no longer runs here ({e}); running the local config", pushed.version);
                    None
                }
            },
            Err(e) => {
                warn!("the pushed config version {} no longer fits the local file ({e}); running the local config", pushed.version);
                None
            }
        });
        let (config, config_version, prepared) = match saved {
            Some((config, version, prepared)) => {
                info!(
                    "running config version {version} pushed by the center (kept in {})",
                    remote.saved_path().display()
                );
                (config, version, prepared)
            }
            None => (local.clone(), 0, Prepared::build(&local)?),
        };
        let publisher =
            Publisher::new(&config.mqtt, &config.agent_id).map_err(AgentError::Config)?;
        let outbox = Outbox::open(&config.data_dir.join("outbox"), (&config.outbox).into())?;
        if !outbox.is_empty() {
            info!("{} alarms from before the restart wait in the outbox", outbox.len());
        }
        let sealer = Arc::new(Sealer::open(&config.data_dir)?);
        Ok(Self { local, config, config_version, prepared, publisher, outbox, sealer, remote })
    }

    /// The public key the center must have registered for this agent.
    pub fn public_key(&self) -> String {
        self.sealer.public_key()
    }

    /// Runs until `shutdown` is cancelled: cameras, detection, rules and publishing; applies
    /// configs the center pushes without stopping.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let Self { local, mut config, config_version, prepared, publisher, outbox, sealer, remote } =
            self;
        // A wake-up per new alarm; one pending wake-up is enough.
        let (wake_tx, wake_rx) = mpsc::channel::<()>(1);
        let (health_tx, health_rx) = mpsc::channel::<Health>(1);
        let (config_tx, mut config_rx) = mpsc::channel::<Vec<u8>>(4);
        let (ack_tx, ack_rx) = mpsc::channel::<ConfigAck>(4);
        let (version_tx, version_rx) = watch::channel(config_version);
        let alive = Arc::new(AtomicI64::new(now_ms()));
        let metrics = config.metrics_listen.as_ref().map(|_| Arc::new(Metrics::default()));
        if let (Some(listen), Some(metrics)) = (&config.metrics_listen, &metrics) {
            let listener = tokio::net::TcpListener::bind(listen.as_str())
                .await
                .map_err(|e| AgentError::Config(format!("metrics_listen {listen}: {e}")))?;
            info!("Prometheus metrics on http://{listen}/metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone(), shutdown.clone()));
        }
        let handover = Handover {
            outbox: outbox.clone(),
            wake: wake_tx,
            health: health_tx,
            sealer,
            alive: alive.clone(),
            metrics,
            version: version_rx.clone(),
        };
        let links = Links {
            wake: wake_rx,
            health: health_rx,
            configs: config_tx,
            acks: ack_rx,
            config_version: version_rx,
        };
        let publishing = tokio::spawn(publisher.run(outbox, links, shutdown.clone()));
        if config.cameras.is_empty() {
            warn!("no cameras configured: waiting for the county center to push a config");
        }
        let mut pipeline = Pipeline::start(&config, prepared, &handover)?;
        systemd::notify("READY=1");
        if let Some(every) = systemd::watchdog_interval() {
            tokio::spawn(systemd::watchdog(alive, every, "the detector loop", shutdown.clone()));
        }
        loop {
            let payload = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = config_rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
            };
            let pushed = match remote.open(&payload) {
                Ok(p) => p,
                Err(e) => {
                    warn!("pushed config refused: {e}");
                    let _ = ack_tx.send(remote.ack(0, Err(e.to_string()))).await;
                    continue;
                }
            };
            let running = *version_tx.borrow();
            let result = if pushed.version < running {
                Err(format!(
                    "version {} is older than the version {running} this box runs",
                    pushed.version
                ))
            } else if pushed.version == running {
                // The retained config again, after a reconnect: already in force.
                Ok(())
            } else {
                match Self::prepare(&local, &pushed).await {
                    Ok((next, prepared)) => {
                        pipeline.stop().await;
                        pipeline = Pipeline::start(&next, prepared, &handover)?;
                        if next.outbox != config.outbox {
                            warn!("new outbox limits take effect at the next start");
                        }
                        config = next;
                        if let Err(e) = remote.save(&payload) {
                            warn!(
                                "config version {} applied but not kept for the next start: {e}",
                                pushed.version
                            );
                        }
                        info!(
                            version = pushed.version,
                            cameras = config.cameras.len(),
                            rules = config.rules.len(),
                            "pushed config applied"
                        );
                        version_tx.send_replace(pushed.version);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(reason) = &result {
                warn!(
                    version = pushed.version,
                    "pushed config refused, the running one stays: {reason}"
                );
            }
            let _ = ack_tx.send(remote.ack(pushed.version, result)).await;
        }
        systemd::notify("STOPPING=1");
        pipeline.stop().await;
        let _ = publishing.await;
        info!("agent stopped");
        Ok(())
    }

    /// Checks a pushed config against the local one and loads what it needs (off the async
    /// threads: a model takes a moment to load).
    async fn prepare(
        local: &AgentConfig,
        pushed: &xueliang_proto::AgentConfig,
    ) -> Result<(AgentConfig, Prepared), PushError> {
        let next = PushedConfigs::merge(local, pushed)?;
        tokio::task::spawn_blocking(move || Prepared::build(&next).map(|p| (next, p)))
            .await
            .map_err(|e| PushError::Unusable(e.to_string()))?
            .map_err(|e| PushError::Unusable(e.to_string()))
    }
}
