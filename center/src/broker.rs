//! The embedded MQTT broker (rumqttd), so a county can run the center with nothing else
//! installed. It keeps everything in memory: delivery guarantees come from the agents' outbox
//! and the center's receipts, not from the broker.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not ours.
    #[error("embedded MQTT broker cannot listen on {addr}: {error} (choose another --mqtt-listen, or stop what uses it)")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// rumqttd refused the configuration.
    #[error("embedded MQTT broker: {0}")]
    Start(String),
}

/// Starts the broker on its own threads (rumqttd never returns) and returns the bound address.
///
/// A port of 0 picks a free port.
pub fn start(listen: SocketAddr, max_payload: usize) -> Result<SocketAddr, BrokerError> {
    // rumqttd only logs a failed bind from its own thread; binding first gives a clear error.
    let probe = TcpListener::bind(listen).map_err(|error| BrokerError::Bind {
        addr: listen,
        error,
    })?;
    let addr = probe.local_addr().map_err(|error| BrokerError::Bind {
        addr: listen,
        error,
    })?;
    drop(probe);
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
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
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
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
    Ok(addr)
}
