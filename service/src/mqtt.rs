//! The MQTT connection loop both the agent's publisher and the center's ingest run: poll the
//! connection, hand each packet to the side's [`Session`], reconnect with backoff after any
//! error for as long as the process runs, and on shutdown leave cleanly (a retained farewell
//! such as "offline", since a clean disconnect does not fire the last will).

use std::ops::ControlFlow;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::Backoff;

/// What one side does with its connection.
pub trait Session {
    /// The broker accepted the connection (subscribe and announce here).
    fn connected(&mut self, client: &AsyncClient);

    /// A packet from the broker other than CONNACK; `Break` ends the loop.
    fn incoming(&mut self, client: &AsyncClient, packet: Packet) -> ControlFlow<()>;

    /// The connection failed or dropped; the loop retries after its backoff.
    fn disconnected(&mut self) {}
}

/// A connection to a broker, not yet polled.
pub struct Link {
    /// Requests to the broker.
    pub client: AsyncClient,
    /// The connection itself.
    pub eventloop: EventLoop,
    /// Who connects, for the logs (`ingest`, `agent village-7`).
    pub who: String,
    /// The broker's `host:port`, for the logs.
    pub broker: String,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("who", &self.who).field("broker", &self.broker).finish()
    }
}

/// A retained message left behind at a clean shutdown.
#[derive(Debug, Clone)]
pub struct Farewell {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Runs `session` on `link` until `shutdown` (or the session breaks off), reconnecting with
/// `backoff`; then publishes the `farewell` it makes, if any (retained, QoS 1), and disconnects,
/// waiting at most half a second for it to leave.
pub async fn run(
    link: Link,
    session: &mut impl Session,
    backoff: Backoff,
    shutdown: &CancellationToken,
    farewell: impl FnOnce() -> Option<Farewell>,
) {
    let Link { client, mut eventloop, who, broker } = link;
    let mut retries = backoff.retries();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!("{who} connected to MQTT broker {broker}");
                retries.reset();
                session.connected(&client);
            }
            Ok(Event::Incoming(packet)) => {
                if session.incoming(&client, packet).is_break() {
                    break;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                session.disconnected();
                let delay = retries.next_delay();
                warn!(
                    "{who}: MQTT broker {broker} unreachable: {e}; retrying in {:.1}s",
                    delay.as_secs_f32()
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if let Some(Farewell { topic, payload }) = farewell() {
        let _ = client.try_publish(topic, QoS::AtLeastOnce, true, payload);
    }
    let _ = client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}
