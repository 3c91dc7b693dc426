//! The MQTT publisher: connects to the broker, announces the agent (retained status with the
//! config version, last will), publishes the outbox's alarms at QoS 1 until the center's
//! receipts name them, and passes pushed configs to the agent and its answers back. It retries
//! the broker for as long as the agent runs.
//!
//! Two tasks: one polls the connection (the shared MQTT loop) and forwards what matters
//! (connected, disconnected, receipts, configs); the other publishes, so a full request queue
//! never blocks the polling.
//! With `mqtt.persistent_session`, receipts sent while the box was away wait at the broker.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, EventLoop, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::endpoint::BrokerUrl;
use xueliang_proto::signing::{
    CENTER_STATUS_SIGNATURE_FIELD, RECEIPT_SIGNATURE_FIELD, VerifyingKey,
};
use xueliang_proto::topics::{agent_client_id, doctor_login};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{
    AgentStatus, CAPABILITY_CLIPS, CAPABILITY_EVENTS, CenterStatus, ConfigAck, Health, Message,
    Receipt, SCHEMA_VERSION, decode_limited, topics::Topics,
};
use xueliang_service::backoff::Backoff;
use xueliang_service::mqtt::{self, Farewell, Link, Session};
use xueliang_service::tls::client_config;

use super::outbox::{Outbox, PendingKind, is_clip_chunk_id, snapshot_id};
use super::window::Window;
use crate::config::MqttConfig;
use xueliang_proto::endpoint::now_ms;

/// The agent's MQTT connection.
pub struct Publisher {
    client: AsyncClient,
    eventloop: EventLoop,
    topics: Topics,
    agent_id: String,
    broker: String,
    center_key: Option<VerifyingKey>,
}

/// What the publisher exchanges with the rest of the agent.
#[derive(Debug)]
pub struct Links {
    /// A message per new alarm in the outbox (one pending is enough).
    pub wake: mpsc::Receiver<()>,
    /// Health reports to send.
    pub health: mpsc::Receiver<Health>,
    /// Pushed configs (raw AgentConfig payloads) for the agent to check and apply.
    pub configs: mpsc::Sender<Vec<u8>>,
    /// The agent's answers to pushed configs.
    pub acks: mpsc::Receiver<ConfigAck>,
    /// The version of the config the agent runs, announced in the retained status.
    pub config_version: watch::Receiver<u64>,
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

/// Connection options for box `agent_id` at the broker of `cfg`: address, TLS, credentials,
/// keep-alive and packet size. Plain MQTT to another machine is refused unless
/// `mqtt.allow_plain` says so: the password would cross the network in the clear. With
/// `doctor`, those of `xl-agent doctor`: its own login and client id (brokers bind each login
/// to one id), so a running agent is not thrown off.
pub fn mqtt_options(cfg: &MqttConfig, agent_id: &str, doctor: bool) -> Result<MqttOptions, String> {
    let broker = cfg.broker()?;
    match (broker.tls || broker.is_local(), cfg.allow_plain) {
        (true, _) => {}
        (false, false) => {
            return Err(format!(
                "mqtt.url {} is plain MQTT to another machine: this box's password, alarms \
                 and pictures would cross the network in the clear; use mqtts:// with \
                 mqtt.tls_ca (the county CA), or, on a network only the county reaches, set \
                 mqtt.allow_plain = true",
                cfg.url
            ));
        }
        (false, true) => warn!(
            "mqtt.allow_plain: {} is plain MQTT; the password, alarms and pictures cross \
             the network in the clear",
            cfg.url
        ),
    }
    let BrokerUrl { host, port, .. } = broker;
    let client_id = match doctor {
        false => agent_client_id(agent_id),
        true => agent_client_id(&doctor_login(agent_id)),
    };
    let mut opts = MqttOptions::new(client_id, host, port);
    // A dead link (a NAT that forgot us, a mast that lost power) is noticed within 1.5 × the
    // keep-alive; the default 30 s costs a few bytes a minute.
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
    if let Some(files) = cfg.tls()? {
        let tls = client_config(&files).map_err(|e| format!("mqtt TLS: {e}"))?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    }
    // Alarms carry JPEG snapshots: rumqttc's 10 KiB default would refuse them.
    opts.set_max_packet_size(
        xueliang_proto::MAX_MESSAGE_BYTES + 4096,
        xueliang_proto::MAX_MESSAGE_BYTES + 4096,
    );
    if let Some(password) = &cfg.password {
        let user = cfg.username.as_deref().unwrap_or(agent_id);
        let user = if doctor { doctor_login(user) } else { user.to_owned() };
        opts.set_credentials(user, password.clone());
    }
    Ok(opts)
}

impl Publisher {
    /// Prepares the connection (nothing is sent until [`Publisher::run`]).
    pub fn new(cfg: &MqttConfig, agent_id: &str) -> Result<Self, String> {
        let BrokerUrl { host, port, .. } = cfg.broker()?;
        let topics = Topics::new(cfg.topic_prefix.clone());
        let center_key = cfg.center_key()?;
        match (&center_key, cfg.insecure) {
            (None, false) => {
                return Err(
                    "mqtt.center_key is not set: set it to the line `xl-center key` prints on \
                     the center (enrolment writes it), or, in a lab only, set mqtt.insecure = true"
                        .into(),
                );
            }
            (None, true) => warn!(
                "mqtt.insecure: no center key, so receipts and the center's status are trusted \
                 unsigned (anyone on the broker could stop delivery) and pushed configs are refused"
            ),
            (Some(_), _) => {}
        }
        let mut opts = mqtt_options(cfg, agent_id, false)?;
        opts.set_clean_session(!cfg.persistent_session);
        opts.set_last_will(LastWill::new(
            topics.status(agent_id),
            // Set before connecting, so it cannot know a config pushed later: 0.
            status(agent_id, State::Offline, 0),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        // A slow link needs longer than rumqttc's 5 s to set up TCP and MQTT (and TLS).
        let mut network = rumqttc::NetworkOptions::new();
        network.set_connection_timeout(20);
        eventloop.set_network_options(network);
        Ok(Self {
            client,
            eventloop,
            topics,
            agent_id: agent_id.to_owned(),
            broker: format!("{host}:{port}"),
            center_key,
        })
    }

    /// Publishes the outbox's alarms until `shutdown`: the newest when `wake` says one was
    /// added, all unreceipted ones after every (re)connect, and again any whose receipt has not
    /// come within the window's receipt timeout. Reconnects with backoff on any error.
    pub async fn run(self, outbox: Outbox, links: Links, shutdown: CancellationToken) {
        let Self { client, eventloop, topics, agent_id, broker, center_key } = self;
        let Links { wake, health, configs, acks, config_version } = links;
        let status_topic = topics.status(&agent_id);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let mut session = Connection {
            receipt_topic: topics.receipt(&agent_id),
            config_topic: topics.config(&agent_id),
            center_topic: topics.center_status(),
            status_topic: status_topic.clone(),
            agent_id: agent_id.clone(),
            center_key,
            center_run: 0,
            configs,
            control: control_tx,
            config_version: config_version.clone(),
        };
        let sender = tokio::spawn(
            Sender {
                client: client.clone(),
                outbox,
                alarm_topic: topics.alarm(&agent_id),
                health_topic: topics.health(&agent_id),
                snapshot_topic: topics.snapshot(&agent_id),
                clip_topic: topics.clip(&agent_id),
                ack_topic: topics.config_ack(&agent_id),
                event_topic: topics.event(&agent_id),
                center_takes_events: true,
                center_takes_clips: true,
                subscriptions: [
                    session.receipt_topic.clone(),
                    session.config_topic.clone(),
                    session.center_topic.clone(),
                ],
                window: Window::default(),
            }
            .run(control_rx, wake, health, acks, shutdown.clone()),
        );
        let announcer = tokio::spawn(announce_versions(
            client.clone(),
            status_topic.clone(),
            agent_id.clone(),
            config_version.clone(),
        ));
        let link = Link { client, eventloop, who: format!("agent {agent_id}"), broker };
        // Leave cleanly: a graceful disconnect does not trigger the last will, so say offline.
        let farewell = || {
            Some(Farewell {
                topic: status_topic,
                payload: status(&agent_id, State::Offline, *config_version.borrow()),
            })
        };
        mqtt::run(link, &mut session, RECONNECT, &shutdown, farewell).await;
        announcer.abort();
        sender.abort();
    }
}

/// Clip chunks published and awaiting receipts at once: on a slow village link, what is in
/// flight must arrive well within the receipt timeout (4 × 128 KiB is 4 s at 1 Mbit/s).
const CLIP_CHUNKS_IN_FLIGHT: usize = 4;

/// Reconnect delays to the broker.
const RECONNECT: Backoff = Backoff::doubling(Duration::from_millis(500), Duration::from_secs(10));

/// Announces the agent's status again whenever the config version in force changes.
async fn announce_versions(
    client: AsyncClient,
    topic: String,
    agent_id: String,
    mut version: watch::Receiver<u64>,
) {
    while version.changed().await.is_ok() {
        let v = *version.borrow_and_update();
        announce(&client, &topic, &agent_id, v);
    }
}

/// Publishes the retained status: online, with the config version in force.
fn announce(client: &AsyncClient, topic: &str, agent_id: &str, version: u64) {
    let payload = status(agent_id, State::Online, version);
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
        warn!("cannot announce status: {e}");
    }
}

/// The polling side of the connection: it forwards what matters (connected, disconnected,
/// receipts, the center's status, configs) to the sending task, so a full request queue never
/// blocks the polling.
struct Connection {
    receipt_topic: String,
    config_topic: String,
    center_topic: String,
    status_topic: String,
    agent_id: String,
    center_key: Option<VerifyingKey>,
    /// The latest run of the center heard (its status's `run`).
    center_run: u64,
    configs: mpsc::Sender<Vec<u8>>,
    control: mpsc::UnboundedSender<Control>,
    config_version: watch::Receiver<u64>,
}

impl Session for Connection {
    fn connected(&mut self, client: &AsyncClient) {
        let _ = self.control.send(Control::Connected);
        announce(client, &self.status_topic, &self.agent_id, *self.config_version.borrow());
    }

    fn incoming(&mut self, _: &AsyncClient, packet: Packet) -> ControlFlow<()> {
        let p = match packet {
            Packet::Publish(p) => p,
            Packet::PubAck(ack) => {
                debug!(pkid = ack.pkid, "puback");
                return ControlFlow::Continue(());
            }
            _ => return ControlFlow::Continue(()),
        };
        if p.topic == self.receipt_topic {
            match read_receipt(&p.payload, self.center_key.as_ref()) {
                Ok(receipted) => {
                    let _ = self.control.send(Control::Receipt(receipted));
                }
                Err(e) => warn!("ignoring a receipt: {e}"),
            }
        } else if p.topic == self.center_topic {
            match read_center_status(&p.payload, self.center_key.as_ref(), &mut self.center_run) {
                Ok(s) => {
                    let takes = |what| s.capabilities.iter().any(|c| c == what);
                    let (events, clips) = (takes(CAPABILITY_EVENTS), takes(CAPABILITY_CLIPS));
                    let _ = self.control.send(Control::Center { online: s.online, events, clips });
                }
                Err(e) => warn!("ignoring a center status: {e}"),
            }
        } else if p.topic == self.config_topic
            // An empty retained message clears the topic: nothing to apply.
            && !p.payload.is_empty()
            && self.configs.try_send(p.payload.to_vec()).is_err()
        {
            warn!(
                "a pushed config arrived while another is being applied; the broker keeps the \
                 newest"
            );
        }
        ControlFlow::Continue(())
    }

    fn disconnected(&mut self) {
        let _ = self.control.send(Control::Disconnected);
    }
}

/// The message in `payload`, if it is well-formed and, when the center's key is known, signed by
/// the center in `signature_field`.
fn from_center<M: Message + Default>(
    payload: &[u8],
    center_key: Option<&VerifyingKey>,
    signature_field: u32,
) -> Result<M, String> {
    if let Some(key) = center_key {
        key.verify(payload, signature_field, &[], "the center").map_err(|e| e.to_string())?;
    }
    decode_limited::<M>(payload).map_err(|e| e.to_string())
}

/// The center's status in `payload`, if it is well-formed, signed by the center (when its key
/// is known) and from the latest run of the center heard (`latest_run`, which it updates): a
/// status published by anyone else, or an old one published again, is refused.
fn read_center_status(
    payload: &[u8],
    center_key: Option<&VerifyingKey>,
    latest_run: &mut u64,
) -> Result<CenterStatus, String> {
    let status: CenterStatus = from_center(payload, center_key, CENTER_STATUS_SIGNATURE_FIELD)?;
    if status.run < *latest_run {
        return Err(format!(
            "it is from an earlier run of the center (run {}, the latest heard is {})",
            status.run, *latest_run
        ));
    }
    *latest_run = status.run;
    Ok(status)
}

/// What a receipt names, as outbox ids.
#[derive(Debug)]
struct Receipted {
    /// Stored: alarms, updates, snapshots that followed their alarms, clip chunks.
    stored: Vec<String>,
    /// Clip chunks the center will never store.
    refused_chunks: Vec<String>,
    /// Alarms and updates the center will never store.
    refused: Vec<String>,
}

/// What a receipt names, if it is well-formed and, when the center's key is known, signed by
/// the center.
fn read_receipt(payload: &[u8], center_key: Option<&VerifyingKey>) -> Result<Receipted, String> {
    let receipt: Receipt = from_center(payload, center_key, RECEIPT_SIGNATURE_FIELD)?;
    let snapshots = receipt.snapshot_alarm_ids.iter().map(|id| snapshot_id(id));
    let stored = receipt
        .alarm_ids
        .into_iter()
        .chain(receipt.update_ids)
        .chain(snapshots)
        .chain(receipt.clip_chunks)
        .collect();
    Ok(Receipted {
        stored,
        refused_chunks: receipt.refused_clip_chunks,
        refused: receipt.refused_ids,
    })
}

/// What the connection task tells the sending task.
#[derive(Debug)]
enum Control {
    Connected,
    Disconnected,
    /// A receipt.
    Receipt(Receipted),
    /// The center said it is (or is not) ingesting, and whether it takes event updates and
    /// clips.
    Center {
        /// Ingesting.
        online: bool,
        /// Takes `EventUpdate`s.
        events: bool,
        /// Takes `ClipChunk`s.
        clips: bool,
    },
}

/// The sending task's state.
struct Sender {
    client: AsyncClient,
    outbox: Outbox,
    alarm_topic: String,
    snapshot_topic: String,
    clip_topic: String,
    health_topic: String,
    ack_topic: String,
    event_topic: String,
    /// Receipts, configs and the center's status.
    subscriptions: [String; 3],
    window: Window,
    /// Whether the center takes event updates; an older one gets opening alarms only.
    center_takes_events: bool,
    /// Whether the center takes clips; an older one gets none (its chunks are given up).
    center_takes_clips: bool,
}

impl Sender {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut wake: mpsc::Receiver<()>,
        mut health: mpsc::Receiver<Health>,
        mut acks: mpsc::Receiver<ConfigAck>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                c = control.recv() => match c {
                    None => break,
                    Some(Control::Connected) => {
                        self.window.connected();
                        for topic in &self.subscriptions {
                            if let Err(e) = self.client.subscribe(topic, QoS::AtLeastOnce).await {
                                warn!("cannot subscribe to {topic}: {e}");
                            }
                        }
                    }
                    Some(Control::Disconnected) => self.window.disconnected(),
                    Some(Control::Center { online, events, clips }) => {
                        if online && !events && self.center_takes_events {
                            warn!("the center takes no event updates (an older version): only opening alarms are sent");
                        }
                        if online && !clips && self.center_takes_clips {
                            warn!("the center takes no clips (an older version): clips are given up");
                        }
                        self.center_takes_events = events;
                        self.center_takes_clips = clips;
                        if self.window.center(online) {
                            if online {
                                info!("the center is ingesting; publishing");
                            } else {
                                warn!("the center is offline; alarms wait in the outbox");
                            }
                        }
                    }
                    Some(Control::Receipt(Receipted { stored, refused_chunks, refused })) => {
                        let mut left = Vec::new();
                        for id in stored {
                            self.window.receipted(&id);
                            match self.outbox.remove(&id) {
                                Ok(true) => left.push(id),
                                Ok(false) => {}
                                Err(e) => warn!(alarm = %id, "{e}"),
                            }
                        }
                        for chunk in refused_chunks {
                            self.window.receipted(&chunk);
                            if let Err(e) = self.outbox.give_up_clip(&chunk) {
                                warn!(chunk = %chunk, "{e}");
                            }
                        }
                        for id in refused {
                            self.window.receipted(&id);
                            if let Err(e) = self.outbox.give_up(&id) {
                                warn!(id = %id, "{e}");
                            }
                        }
                        // sled writes its log every 500 ms by itself: a power loss before
                        // that would bring receipted messages back, to be sent again.
                        match self.outbox.flush().await {
                            Ok(()) => {
                                for id in left {
                                    debug!(alarm = %id, "receipted; left the outbox");
                                }
                            }
                            Err(e) => warn!("receipts taken but not yet on disk: {e}"),
                        }
                    }
                },
                w = wake.recv() => if w.is_none() { break },
                h = health.recv() => match h {
                    None => break,
                    // Health is periodic: one lost while disconnected is replaced by the next.
                    Some(h) if self.window.is_connected() => {
                        let payload = h.encode_to_vec();
                        let sent =
                            self.client.try_publish(&self.health_topic, QoS::AtMostOnce, false, payload);
                        if let Err(e) = sent {
                            debug!("health not sent: {e}");
                        }
                    }
                    Some(_) => {}
                },
                a = acks.recv() => match a {
                    None => break,
                    // Queued in the client while disconnected, sent after the reconnect.
                    Some(ack) => {
                        let payload = ack.encode_to_vec();
                        let sent =
                            self.client.publish(&self.ack_topic, QoS::AtLeastOnce, false, payload);
                        if let Err(e) = sent.await {
                            warn!(version = ack.version, "cannot answer the pushed config: {e}");
                        }
                    }
                },
                _ = tick.tick() => self.window.expire(Instant::now()),
            }
            self.publish_due().await;
        }
    }

    /// Publishes the oldest unreceipted alarms not in flight, as far as the window allows; with
    /// the room left the snapshots that follow receipted alarms, then the chunks of clips (at
    /// most [`CLIP_CHUNKS_IN_FLIGHT`] at a time): a picture never holds an alarm up, nor a clip
    /// a picture.
    async fn publish_due(&mut self) {
        let room = self.window.room();
        if room == 0 {
            return;
        }
        let mut due = self.outbox.oldest(room, |id| self.window.in_flight(id));
        if due.len() < room {
            due.extend(self.outbox.following(room - due.len(), |id| self.window.in_flight(id)));
        }
        let clips_room = CLIP_CHUNKS_IN_FLIGHT
            .saturating_sub(self.window.count_in_flight(is_clip_chunk_id))
            .min(room - due.len());
        if clips_room > 0 {
            due.extend(self.outbox.clip_chunks(clips_room, |id| self.window.in_flight(id)));
        }
        for p in due {
            let topic = match p.kind {
                PendingKind::Alarm => &self.alarm_topic,
                PendingKind::Snapshot => &self.snapshot_topic,
                PendingKind::Clip if self.center_takes_clips => &self.clip_topic,
                PendingKind::Update if self.center_takes_events => &self.event_topic,
                // An older center would not understand them, and never receipt them.
                PendingKind::Update => {
                    if let Err(e) = self.outbox.remove(&p.id) {
                        warn!(id = %p.id, "{e}");
                    }
                    continue;
                }
                PendingKind::Clip => {
                    if let Err(e) = self.outbox.give_up_clip(&p.id) {
                        warn!(id = %p.id, "{e}");
                    }
                    continue;
                }
            };
            match self.client.publish(topic, QoS::AtLeastOnce, false, p.payload).await {
                Ok(()) => {
                    if p.kind == PendingKind::Clip {
                        debug!(id = %p.id, seq = p.seq, "clip chunk published");
                    } else {
                        info!(id = %p.id, seq = p.seq, "published");
                    }
                    self.window.sent(p.id, Instant::now());
                }
                Err(e) => {
                    warn!(id = %p.id, "cannot queue for publishing: {e}");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueliang_proto::signing::SigningKey;

    #[test]
    fn plain_mqtt_to_another_machine_must_be_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(&dir.path().join("center.key")).unwrap();
        let cfg = |url: &str, allow_plain| MqttConfig {
            url: url.into(),
            center_key: Some(key.public_key()),
            allow_plain,
            ..Default::default()
        };
        let refused = Publisher::new(&cfg("mqtt://10.20.0.2:1883", false), "v1").err();
        assert!(refused.is_some_and(|e| e.contains("mqtt.allow_plain = true")));
        assert!(Publisher::new(&cfg("mqtt://10.20.0.2:1883", true), "v1").is_ok());
        assert!(Publisher::new(&cfg("mqtt://127.0.0.1:1883", false), "v1").is_ok());
    }

    #[test]
    fn only_the_centers_own_status_from_its_latest_run_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let center = SigningKey::load_or_create(&dir.path().join("center.key")).unwrap();
        let stranger = SigningKey::load_or_create(&dir.path().join("other.key")).unwrap();
        let key: VerifyingKey = center.public_key().parse().unwrap();
        let status = |online, run| CenterStatus { online, run, ..Default::default() };
        let signed = |by: &SigningKey, s: CenterStatus| {
            by.sign(s.encode_to_vec(), CENTER_STATUS_SIGNATURE_FIELD, &[]).unwrap()
        };
        let mut latest = 0;
        let read =
            |payload: &[u8], latest: &mut u64| read_center_status(payload, Some(&key), latest);

        assert!(read(&signed(&center, status(true, 2000)), &mut latest).unwrap().online);
        // The two bytes anyone could publish: unsigned.
        assert_eq!(read(&[0x10, 0x00], &mut latest).unwrap_err(), "the message is not signed");
        let forged = read(&signed(&stranger, status(false, 3000)), &mut latest).unwrap_err();
        assert!(forged.contains("does not verify"), "{forged}");
        // The last will of an earlier run, published again.
        let replayed = read(&signed(&center, status(false, 1000)), &mut latest).unwrap_err();
        assert!(replayed.contains("earlier run"), "{replayed}");
        // This run's own last will, and then a newer run.
        assert!(!read(&signed(&center, status(false, 2000)), &mut latest).unwrap().online);
        assert!(read(&signed(&center, status(true, 5000)), &mut latest).unwrap().online);
        assert_eq!(latest, 5000);
    }
}
