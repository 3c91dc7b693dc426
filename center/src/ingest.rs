//! MQTT ingest: alarms from every agent are validated, stored in batches (one flush per batch)
//! and only then acknowledged to the broker, so an acknowledged alarm is on disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, Message, Receipt, SCHEMA_VERSION, decode_limited, topics::Topics};

use crate::store::{Inserted, Store};

/// Where the center's MQTT client connects.
#[derive(Debug, Clone)]
pub struct BrokerConnection {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Optional username and password.
    pub credentials: Option<(String, String)>,
}

/// Counters of what ingest has seen.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// New alarms stored.
    pub stored: AtomicU64,
    /// Redeliveries of stored alarms.
    pub duplicates: AtomicU64,
    /// Payloads refused (undecodable or invalid).
    pub rejected: AtomicU64,
}

/// Why an alarm payload was refused.
fn validate(topics: &Topics, topic: &str, payload: &[u8]) -> Result<Alarm, String> {
    let agent = topics
        .agent_of(topic, "alarm")
        .ok_or_else(|| format!("topic {topic} is not an agent alarm topic"))?;
    let alarm: Alarm = decode_limited(payload).map_err(|e| e.to_string())?;
    if alarm.agent_id != agent {
        return Err(format!(
            "alarm names agent {:?} but came on {agent:?}'s topic",
            alarm.agent_id
        ));
    }
    if !xueliang_proto::topics::is_valid_id(&alarm.id) {
        return Err(format!("alarm id {:?} is not a valid id", alarm.id));
    }
    Ok(alarm)
}

/// Runs ingest until `shutdown`: subscribes to `{prefix}/+/alarm` and stores what arrives.
pub async fn run(
    conn: BrokerConnection,
    topics: Topics,
    store: Store,
    stats: Arc<IngestStats>,
    shutdown: CancellationToken,
) {
    let mut opts = MqttOptions::new("xl-center-ingest", conn.host.clone(), conn.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(
        xueliang_proto::MAX_MESSAGE_BYTES + 4096,
        xueliang_proto::MAX_MESSAGE_BYTES + 4096,
    );
    opts.set_clean_session(false);
    // Acknowledge only after the batch is flushed to disk.
    opts.set_manual_acks(true);
    if let Some((u, p)) = &conn.credentials {
        opts.set_credentials(u.clone(), p.clone());
    }
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    let (tx, rx) = mpsc::unbounded_channel::<Publish>();
    let writer = tokio::spawn(write_batches(rx, client.clone(), topics.clone(), store, stats));
    poll(eventloop, client, &topics, &conn, tx, shutdown).await;
    let _ = writer.await;
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    topics: &Topics,
    conn: &BrokerConnection,
    tx: mpsc::UnboundedSender<Publish>,
    shutdown: CancellationToken,
) {
    let filter = topics.all_agents("alarm");
    let mut delay = Duration::from_millis(200);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!("ingest connected to MQTT broker {}:{}", conn.host, conn.port);
                delay = Duration::from_millis(200);
                if let Err(e) = client.try_subscribe(&filter, QoS::AtLeastOnce) {
                    warn!("cannot subscribe to {filter}: {e}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(p).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(
                    "ingest: MQTT broker {}:{} unreachable: {e}; retrying in {:.1}s",
                    conn.host,
                    conn.port,
                    delay.as_secs_f32()
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Group commit: take every publish waiting, store them all, flush once, then acknowledge.
async fn write_batches(
    mut rx: mpsc::UnboundedReceiver<Publish>,
    client: AsyncClient,
    topics: Topics,
    store: Store,
    stats: Arc<IngestStats>,
) {
    const MAX_BATCH: usize = 1000;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = now_ms();
        let mut stored = Vec::new();
        // Every alarm held by the store, new or seen before, is receipted to its agent.
        let mut receipts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &batch {
            match validate(&topics, &p.topic, &p.payload) {
                Ok(alarm) => match store.insert(&alarm, now) {
                    Ok(Inserted::New) => {
                        stats.stored.fetch_add(1, Ordering::Relaxed);
                        receipts.entry(alarm.agent_id.clone()).or_default().push(alarm.id.clone());
                        stored.push(alarm);
                    }
                    Ok(Inserted::Duplicate) => {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        debug!(alarm = %alarm.id, "duplicate alarm stored before; receipted again");
                        receipts.entry(alarm.agent_id.clone()).or_default().push(alarm.id.clone());
                    }
                    Err(e) => {
                        // Not acknowledged: the broker will deliver it again.
                        warn!(alarm = %alarm.id, "cannot store alarm: {e}");
                        continue;
                    }
                },
                Err(reason) => {
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                    warn!(topic = %p.topic, bytes = p.payload.len(), "rejected payload: {reason}");
                }
            }
        }
        if let Err(e) = store.flush().await {
            warn!("cannot flush the alarm store: {e}; the batch stays unacknowledged");
            batch.clear();
            continue;
        }
        for a in &stored {
            info!(
                alarm = %a.id,
                agent = %a.agent_id,
                camera = %a.camera_id,
                rule = %a.rule_id,
                snapshot_bytes = a.snapshot_jpeg.len(),
                "alarm stored"
            );
        }
        for p in batch.drain(..) {
            if let Err(e) = client.ack(&p).await {
                warn!("cannot acknowledge: {e}");
            }
        }
        for (agent, alarm_ids) in receipts {
            let receipt = Receipt {
                schema_version: SCHEMA_VERSION as i32,
                agent_id: agent.clone(),
                alarm_ids,
                time_ms: now_ms(),
            };
            if let Err(e) = client
                .publish(topics.receipt(&agent), QoS::AtLeastOnce, false, receipt.encode_to_vec())
                .await
            {
                // The agent publishes again until a receipt comes; nothing is lost.
                warn!(agent = %agent, "cannot send receipt: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_must_come_on_their_own_agents_topic() {
        let t = Topics::default();
        let a = Alarm {
            id: "0199-abc".into(),
            agent_id: "v1".into(),
            ..Default::default()
        };
        let bytes = a.encode_to_vec();
        assert!(validate(&t, "xl/v1/v1/alarm", &bytes).is_ok());
        let err = validate(&t, "xl/v1/v2/alarm", &bytes).unwrap_err();
        assert!(err.contains("came on \"v2\"'s topic"), "{err}");
        assert!(validate(&t, "xl/v1/v1/alarm", b"\xff\xff").unwrap_err().contains("not a valid Alarm"));
        let no_id = Alarm { agent_id: "v1".into(), ..Default::default() }.encode_to_vec();
        assert!(validate(&t, "xl/v1/v1/alarm", &no_id).unwrap_err().contains("not a valid id"));
    }
}
