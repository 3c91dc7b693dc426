//! The MQTT publisher: connects to the broker, announces the agent (retained status, last will),
//! and publishes alarms at QoS 1. It retries the broker for as long as the agent runs.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{AgentStatus, Alarm, Message, SCHEMA_VERSION, topics::Topics};

use crate::config::MqttConfig;
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

    /// Publishes alarms from `alarms` until `shutdown`; reconnects with backoff on any error.
    pub async fn run(self, mut alarms: mpsc::Receiver<Alarm>, shutdown: CancellationToken) {
        let Self {
            client,
            mut eventloop,
            topics,
            agent_id,
            broker,
            online_status,
        } = self;
        let alarm_topic = topics.alarm(&agent_id);
        let status_topic = topics.status(&agent_id);
        let sender = {
            let client = client.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let alarm = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        a = alarms.recv() => match a { Some(a) => a, None => break },
                    };
                    let id = alarm.id.clone();
                    if let Err(e) = client
                        .publish(&alarm_topic, QoS::AtLeastOnce, false, alarm.encode_to_vec())
                        .await
                    {
                        warn!("alarm {id}: cannot queue for publishing: {e}");
                    } else {
                        info!(alarm = %id, camera = %alarm.camera_id, rule = %alarm.rule_id, "alarm published");
                    }
                }
            })
        };
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
                Ok(_) => {}
                Err(e) => {
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
