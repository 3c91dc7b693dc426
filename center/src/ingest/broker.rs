//! The embedded MQTT broker (rumqttd), so a county can run the center with nothing else
//! installed. It keeps everything in memory: delivery guarantees come from the agents' outbox
//! and the center's receipts, not from the broker. With TLS or passwords, agents connect to
//! their own listener and the center's client to a second, plain one on loopback.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};

use crate::fleet::AgentKeys;

/// The certificate and key (PEM) of the agents' TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The broker's certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Where the broker listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// For agents (TLS when configured).
    pub agents: SocketAddr,
    /// For the center's own client (the agents' one when it has neither TLS nor passwords).
    pub center: SocketAddr,
}

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not ours.
    #[error(
        "embedded MQTT broker cannot listen on {addr}: {error} (choose another --mqtt-listen, or stop what uses it)"
    )]
    Bind {
        /// The address concerned.
        addr: SocketAddr,
        /// What went wrong.
        error: std::io::Error,
    },
    /// rumqttd refused the configuration.
    #[error("embedded MQTT broker: {0}")]
    Start(String),
    /// The TLS certificate or key is unusable.
    #[error("embedded MQTT broker TLS: {0}")]
    Tls(#[from] xueliang_service::tls::TlsError),
}

/// Binds `listen` to learn the address (port 0 picks one); rumqttd only logs a failed bind from
/// its own thread, so binding first gives a clear error.
fn probe(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let bind = |error| BrokerError::Bind { addr: listen, error };
    TcpListener::bind(listen).and_then(|l| l.local_addr()).map_err(bind)
}

fn server(listen: SocketAddr, max_payload: usize, tls: Option<TlsConfig>) -> ServerSettings {
    ServerSettings {
        name: "v4".into(),
        listen,
        tls,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Whether `client` is the client id login `user` may use: `xl-agent-{user}`, for the agent
/// (`village-7`) as for its doctor (`village-7~doctor`), as at a Mosquitto broker.
fn client_id_of(client: &str, user: &str) -> bool {
    client == xueliang_proto::topics::agent_client_id(user)
}

/// The agent whose password login `user` uses: the agent's own, or its doctor's
/// (`village-7~doctor`). Agent ids have no `~`.
fn agent_of_login(user: &str) -> &str {
    user.split_once('~').map_or(user, |(agent, _)| agent)
}

/// Starts the broker on its own threads (rumqttd never returns) and returns where it listens.
/// With `passwords`, an agent logs in as its agent id with the password registered there, under
/// its own client id only; the center then has a listener of its own on loopback.
///
/// A port of 0 picks a free port.
pub fn start_broker(
    listen: SocketAddr,
    max_payload: usize,
    tls: Option<&ServerTls>,
    passwords: Option<Arc<AgentKeys>>,
) -> Result<Listening, BrokerError> {
    let agents = probe(listen)?;
    let rustls = match tls {
        None => None,
        Some(t) => {
            xueliang_service::tls::check_server_files(&t.cert, &t.key)?;
            Some(TlsConfig::Rustls {
                capath: None,
                certpath: t.cert.display().to_string(),
                keypath: t.key.display().to_string(),
            })
        }
    };
    let plain = rustls.is_none() && passwords.is_none();
    let mut for_agents = server(agents, max_payload, rustls);
    if let Some(registry) = passwords {
        for_agents.set_auth_handler(move |client, user, password| {
            let ok = if !client_id_of(&client, &user) {
                // One box must not take another's client id, nor the center's, and so throw
                // that client off the broker.
                tracing::warn!(user = %user, client = %client, "embedded broker: a client id that is not this login's");
                false
            } else {
                let ok = registry.check_password(agent_of_login(&user), &password);
                if !ok {
                    tracing::warn!(user = %user, "embedded broker: wrong or unknown agent password");
                }
                ok
            };
            std::future::ready(ok)
        });
    }
    let mut servers = HashMap::from([("agents".to_owned(), for_agents)]);
    let center = if plain {
        agents
    } else {
        let center = probe("127.0.0.1:0".parse().expect("a loopback address"))?;
        servers.insert("center".to_owned(), server(center, max_payload, None));
        center
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 64 * 1024 * 1024,
            max_segment_count: 8,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(servers),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    Ok(Listening { agents, center })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_may_use_only_its_own_client_ids() {
        assert!(client_id_of("xl-agent-v1", "v1"));
        assert!(client_id_of("xl-agent-v1~doctor", "v1~doctor"));
        assert!(!client_id_of("xl-agent-v1~doctor", "v1"), "the agent's login is its own only");
        assert!(!client_id_of("xl-agent-v1", "v1~doctor"), "the doctor's cannot be the agent");
        assert_eq!(agent_of_login("v1~doctor"), "v1");
        assert_eq!(agent_of_login("v1"), "v1");
        assert!(!client_id_of("xl-agent-v1-east", "v1"), "another agent's");
        assert!(!client_id_of("xl-agent-v2", "v1"));
        assert!(!client_id_of("xl-center-ingest", "v1"), "the center's");
        assert!(!client_id_of("v1", "v1"));
    }
}
