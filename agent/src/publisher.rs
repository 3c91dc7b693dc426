//! The MQTT publisher: connects to the broker, announces the agent (retained status, last will),
//! and publishes the outbox's alarms at QoS 1 until the center's receipts name them. It retries
//! the broker for as long as the agent runs.
//!
//! Two tasks: one polls the connection and forwards what matters (connected, disconnected,
//! receipts); the other publishes, so a full request queue never blocks the polling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{AgentStatus, Health, Message, Receipt, SCHEMA_VERSION, decode_limited, topics::Topics};

use crate::config::MqttConfig;
use crate::outbox::Outbox;
use xueliang_proto::endpoint::now_ms;

/// The agent's MQTT connection.
pub struct Publisher {
    client: AsyncClient,
    eventloop: EventLoop,
    topics: Topics,
    agent_id: String,
    broker: String,
    online_status: Vec<u8>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("broker", &self.broker)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

fn status(agent_id: &str, state: State, config_version: u64) -> Vec<u8> {
    AgentStatus {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: agent_id.to_owned(),
        state: state as i32,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config_version,
        time_ms: now_ms(),
    }
    .encode_to_vec()
}

impl Publisher {
    /// Prepares the connection (nothing is sent until [`Publisher::run`]).
    pub fn new(cfg: &MqttConfig, agent_id: &str) -> Result<Self, String> {
        let (host, port) = cfg.host_port()?;
        let topics = Topics::new(cfg.topic_prefix.clone());
        let mut opts = MqttOptions::new(format!("xl-agent-{agent_id}"), host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
        // Alarms carry JPEG snapshots: rumqttc's 10 KiB default would refuse them.
        opts.set_max_packet_size(
            xueliang_proto::MAX_MESSAGE_BYTES + 4096,
            xueliang_proto::MAX_MESSAGE_BYTES + 4096,
        );
        opts.set_last_will(LastWill::new(
            topics.status(agent_id),
            status(agent_id, State::Offline, 0),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(password) = &cfg.password {
            let user = cfg.username.clone().unwrap_or_else(|| agent_id.to_owned());
            opts.set_credentials(user, password.clone());
        }
        let (client, eventloop) = AsyncClient::new(opts, 64);
        Ok(Self {
            client,
            eventloop,
            online_status: status(agent_id, State::Online, 0),
            topics,
            agent_id: agent_id.to_owned(),
            broker: format!("{host}:{port}"),
        })
    }

    /// Publishes the outbox's alarms until `shutdown`: the newest when `wake` says one was
    /// added, all unreceipted ones after every (re)connect, and again any whose receipt has not
    /// come within [`RECEIPT_TIMEOUT`]. Reconnects with backoff on any error.
    pub async fn run(
        self,
        outbox: Outbox,
        wake: mpsc::Receiver<()>,
        health: mpsc::Receiver<Health>,
        shutdown: CancellationToken,
    ) {
        let Self {
            client,
            mut eventloop,
            topics,
            agent_id,
            broker,
            online_status,
        } = self;
        let status_topic = topics.status(&agent_id);
        let receipt_topic = topics.receipt(&agent_id);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(
            Sender {
                client: client.clone(),
                outbox,
                alarm_topic: topics.alarm(&agent_id),
                health_topic: topics.health(&agent_id),
                receipt_topic: receipt_topic.clone(),
                connected: false,
                in_flight: HashMap::new(),
            }
            .run(control_rx, wake, health, shutdown.clone()),
        );
        let mut delay = Duration::from_millis(500);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                e = eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("connected to MQTT broker {broker}");
                    delay = Duration::from_millis(500);
                    let _ = control_tx.send(Control::Connected);
                    if let Err(e) = client.try_publish(
                        &status_topic,
                        QoS::AtLeastOnce,
                        true,
                        online_status.clone(),
                    ) {
                        warn!("cannot announce status: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => debug!(pkid = ack.pkid, "puback"),
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == receipt_topic => {
                    match decode_limited::<Receipt>(&p.payload) {
                        Ok(r) => {
                            let _ = control_tx.send(Control::Receipt(r.alarm_ids));
                        }
                        Err(e) => warn!("ignoring a malformed receipt: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = control_tx.send(Control::Disconnected);
                    warn!(
                        "MQTT broker {broker} unreachable: {e}; retrying in {:.1}s",
                        delay.as_secs_f32()
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        // Leave cleanly: a graceful disconnect does not trigger the last will, so say offline.
        let _ = client.try_publish(
            &status_topic,
            QoS::AtLeastOnce,
            true,
            status(&agent_id, State::Offline, 0),
        );
        let _ = client.try_disconnect();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
        sender.abort();
    }
}

/// An alarm published but not receipted within this long is published again.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Alarms published and awaiting receipts at once: an outbox drains at the center's pace.
const WINDOW: usize = 32;

/// What the connection task tells the sending task.
#[derive(Debug)]
enum Control {
    Connected,
    Disconnected,
    Receipt(Vec<String>),
}

/// The sending task's state.
struct Sender {
    client: AsyncClient,
    outbox: Outbox,
    alarm_topic: String,
    health_topic: String,
    receipt_topic: String,
    connected: bool,
    /// Published since the last connect and not yet receipted: id → when.
    in_flight: HashMap<String, Instant>,
}

impl Sender {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut wake: mpsc::Receiver<()>,
        mut health: mpsc::Receiver<Health>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                c = control.recv() => match c {
                    None => break,
                    Some(Control::Connected) => {
                        self.connected = true;
                        // Whatever was in flight may be lost with the old connection.
                        self.in_flight.clear();
                        if let Err(e) = self.client.subscribe(&self.receipt_topic, QoS::AtLeastOnce).await {
                            warn!("cannot subscribe to receipts: {e}");
                        }
                    }
                    Some(Control::Disconnected) => self.connected = false,
                    Some(Control::Receipt(ids)) => {
                        for id in ids {
                            self.in_flight.remove(&id);
                            match self.outbox.remove(&id) {
                                Ok(true) => debug!(alarm = %id, "receipted; left the outbox"),
                                Ok(false) => {}
                                Err(e) => warn!(alarm = %id, "{e}"),
                            }
                        }
                    }
                },
                w = wake.recv() => if w.is_none() { break },
                h = health.recv() => match h {
                    None => break,
                    // Health is periodic: one lost while disconnected is replaced by the next.
                    Some(h) if self.connected => {
                        if let Err(e) = self.client.try_publish(&self.health_topic, QoS::AtMostOnce, false, h.encode_to_vec()) {
                            debug!("health not sent: {e}");
                        }
                    }
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.in_flight.retain(|_, sent| now.duration_since(*sent) < RECEIPT_TIMEOUT);
                }
            }
            self.publish_due().await;
        }
    }

    /// Publishes the oldest unreceipted alarms not in flight, up to the window.
    async fn publish_due(&mut self) {
        if !self.connected || self.in_flight.len() >= WINDOW {
            return;
        }
        let room = WINDOW - self.in_flight.len();
        let due = self.outbox.oldest(room, |id| self.in_flight.contains_key(id));
        for p in due {
            match self
                .client
                .publish(&self.alarm_topic, QoS::AtLeastOnce, false, p.payload)
                .await
            {
                Ok(()) => {
                    info!(alarm = %p.id, seq = p.seq, "alarm published");
                    self.in_flight.insert(p.id, Instant::now());
                }
                Err(e) => {
                    warn!(alarm = %p.id, "cannot queue for publishing: {e}");
                    return;
                }
            }
        }
    }
}
