//! MQTT ingest: alarms from every agent are validated (well-formed, on their own agent's topic,
//! signed with its registered key), stored in batches (one flush per batch) and only then
//! acknowledged to the broker and receipted to the agent, so an acknowledged alarm is on disk.
//! What fails validation is dead-lettered, never dropped silently. A batch's signatures are
//! checked on every core and its alarms stored in one transaction. Agents' answers to pushed
//! configs, their retained status (and last will) and their Health come in here too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Packet, Publish, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{
    ALARM_SIGNATURE_FIELD, ALARM_SNAPSHOT_FIELD, RECEIPT_SIGNATURE_FIELD, SigningKey, sha256,
};
use xueliang_proto::tls::{TlsError, TlsFiles, client_config};
use xueliang_proto::{
    AgentStatus, Alarm, CenterStatus, ConfigAck, Health, Message, Receipt, SCHEMA_VERSION,
    Snapshot, decode_limited,
    topics::{Topics, is_valid_agent_id},
};

use crate::cases::{AlarmFeed, Change, facts};
use crate::domain::AlarmRecord;
use crate::fleet::{AgentKeys, ConfigPush, Fleet};
use crate::routing::Routing;
use crate::store::{Attached, DeadLetters, Inserted, Store};
use crate::watched_file::WatchedFile;

/// Where the center's MQTT client connects.
#[derive(Debug, Clone)]
pub struct BrokerConnection {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Optional username and password.
    pub credentials: Option<(String, String)>,
    /// TLS (`mqtts://`): the CA, and a client certificate if the broker requires one.
    pub tls: Option<TlsFiles>,
}

/// Counters of what ingest has seen.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// New alarms stored.
    pub stored: AtomicU64,
    /// Redeliveries of stored alarms.
    pub duplicates: AtomicU64,
    /// Payloads refused (undecodable, invalid, unsigned or forged) and dead-lettered.
    pub dead_lettered: AtomicU64,
}

/// The alarm in `payload`, or why it is refused.
fn validate(
    topics: &Topics,
    keys: &AgentKeys,
    topic: &str,
    payload: &[u8],
) -> Result<Alarm, String> {
    let agent = topics
        .agent_of(topic, "alarm")
        .ok_or_else(|| format!("topic {topic} is not an agent alarm topic"))?;
    xueliang_proto::check_size(payload).map_err(|e| e.to_string())?;
    let key = keys.get(agent).ok_or_else(|| {
        format!(
            "no key registered for agent {agent:?}: add its line (`xl-agent key` on the box prints it) to {}",
            keys.path().display()
        )
    })?;
    key.verify(payload, ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD], agent)
        .map_err(|e| e.to_string())?;
    let alarm: Alarm = decode_limited(payload).map_err(|e| e.to_string())?;
    if !alarm.snapshot_jpeg.is_empty()
        && sha256(&alarm.snapshot_jpeg) != alarm.snapshot_sha256.as_ref()
    {
        return Err("the snapshot does not match the hash the agent signed".into());
    }
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

/// [`validate`] for every publish on an alarm topic, on several threads: checking signatures
/// is the bulk of ingest's CPU. The others are `None`.
fn validate_all(
    topics: &Topics,
    keys: &AgentKeys,
    batch: &[Publish],
) -> Vec<Option<Result<Alarm, String>>> {
    let check = |p: &Publish| {
        topics.agent_of(&p.topic, "alarm").map(|_| validate(topics, keys, &p.topic, &p.payload))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if batch.len() < 64 || threads == 1 {
        return batch.iter().map(check).collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = batch
            .chunks(chunk)
            .map(|c| (c.len(), s.spawn(move || c.iter().map(check).collect::<Vec<_>>())))
            .collect();
        // A panicking check would be a bug; its publishes are then validated again in the loop.
        parts.into_iter().flat_map(|(n, h)| h.join().unwrap_or_else(|_| vec![None; n])).collect()
    })
}

/// What ingest works with.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Topic names.
    pub topics: Topics,
    /// The alarm store.
    pub store: Store,
    /// Where refused payloads go.
    pub dead_letters: DeadLetters,
    /// The agents' registered keys.
    pub keys: Arc<AgentKeys>,
    /// The center's key, which signs receipts.
    pub center_key: Arc<SigningKey>,
    /// Pushed configs (republished on connect; acks recorded).
    pub configs: ConfigPush,
    /// Counters.
    pub stats: Arc<IngestStats>,
    /// Routing rules, which suggest each new alarm's units.
    pub routing: Arc<WatchedFile<Routing>>,
    /// Agents' statuses and health.
    pub fleet: Fleet,
    /// Consoles watching.
    pub feed: AlarmFeed,
}

/// The retained CenterStatus payload.
fn center_status(online: bool) -> Vec<u8> {
    CenterStatus {
        schema_version: SCHEMA_VERSION as i32,
        online,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        time_ms: now_ms(),
    }
    .encode_to_vec()
}

/// The center's MQTT client for `conn` (nothing is sent before the event loop is polled).
pub fn connect(
    conn: &BrokerConnection,
    topics: &Topics,
) -> Result<(AsyncClient, EventLoop), TlsError> {
    let mut opts = MqttOptions::new("xl-center-ingest", conn.host.clone(), conn.port);
    opts.set_last_will(LastWill::new(
        topics.center_status(),
        center_status(false),
        QoS::AtLeastOnce,
        true,
    ));
    opts.set_keep_alive(Duration::from_secs(30));
    // Take in more than any message may be: an oversized one must reach validation and be
    // dead-lettered. Refused by the client, it would break the connection, and the broker
    // would deliver it again after every reconnect.
    opts.set_max_packet_size(
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
        4 * xueliang_proto::MAX_MESSAGE_BYTES,
    );
    // A persistent session: alarms published while the center is down wait at the broker.
    opts.set_clean_session(false);
    // Acknowledge only after the batch is flushed to disk.
    opts.set_manual_acks(true);
    if let Some((u, p)) = &conn.credentials {
        opts.set_credentials(u.clone(), p.clone());
    }
    if let Some(files) = &conn.tls {
        let tls = client_config(files)?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls))));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // Acknowledgements and receipts are small: sent at once, not held back by Nagle's algorithm
    // waiting for the broker's delayed ACK (~40 ms per round trip otherwise).
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    Ok((client, eventloop))
}

/// Runs ingest until `shutdown`: subscribes to every agent's alarms and config answers and
/// handles what arrives.
pub async fn run(
    conn: BrokerConnection,
    client: AsyncClient,
    eventloop: EventLoop,
    ingest: Ingest,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::unbounded_channel::<Publish>();
    let writer = tokio::spawn(write_batches(rx, client.clone(), ingest.clone()));
    poll(eventloop, client, &ingest, &conn, tx, shutdown).await;
    let _ = writer.await;
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    ingest: &Ingest,
    conn: &BrokerConnection,
    tx: mpsc::UnboundedSender<Publish>,
    shutdown: CancellationToken,
) {
    let filters = [
        ingest.topics.all_agents("alarm"),
        ingest.topics.all_agents("snapshot"),
        ingest.topics.all_agents("config/ack"),
        ingest.topics.all_agents("status"),
        ingest.topics.all_agents("health"),
    ];
    let status_topic = ingest.topics.center_status();
    let mut delay = Duration::from_millis(200);
    // Subscriptions confirmed since the last connect; at all of them, agents may publish.
    let mut subscribed = 0;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!("ingest connected to MQTT broker {}:{}", conn.host, conn.port);
                delay = Duration::from_millis(200);
                subscribed = 0;
                for filter in &filters {
                    if let Err(e) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                        warn!("cannot subscribe to {filter}: {e}");
                    }
                }
                // Off this loop: publishing waits for room the loop itself makes.
                let configs = ingest.configs.clone();
                tokio::spawn(async move { configs.republish_all().await });
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subscribed += 1;
                if subscribed == filters.len() {
                    if let Err(e) = client.try_publish(
                        &status_topic,
                        QoS::AtLeastOnce,
                        true,
                        center_status(true),
                    ) {
                        warn!("cannot announce the center online: {e}");
                    }
                    info!("ingesting: agents may publish");
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
    // A clean disconnect does not fire the last will: say offline, so agents hold their alarms.
    let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, center_status(false));
    let _ = client.try_disconnect();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
            break;
        }
    }
}

/// What became of a snapshot that followed its alarm.
enum Taken {
    /// Stored (now or before): receipt it under this alarm id.
    Stored(String),
    /// Its alarm is not stored yet: the agent sends it again.
    Later,
    /// Not a picture any alarm of this agent signed for: dead-letter it.
    Refused(String),
    /// The store failed: leave it unacknowledged.
    Failed,
}

/// Attaches a snapshot from `agent` to its stored alarm.
fn take_snapshot(store: &Store, agent: &str, payload: &[u8]) -> Taken {
    let snap = match decode_limited::<Snapshot>(payload) {
        Ok(s) => s,
        Err(e) => return Taken::Refused(e.to_string()),
    };
    match store.attach_snapshot(agent, &snap.alarm_id, &snap.jpeg) {
        Ok(Attached::New | Attached::Duplicate) => Taken::Stored(snap.alarm_id),
        Ok(Attached::NoAlarm) => {
            debug!(alarm = %snap.alarm_id, "a snapshot came before its alarm; the agent sends it again");
            Taken::Later
        }
        Ok(Attached::Mismatch) => Taken::Refused(format!(
            "snapshot for alarm {:?}: no alarm of this agent signed for this picture",
            snap.alarm_id
        )),
        Err(e) => {
            warn!(alarm = %snap.alarm_id, "cannot store snapshot: {e}");
            Taken::Failed
        }
    }
}

/// Decodes a report `agent` sent on its own topic and hands it to `record`; one that does not
/// decode or names another agent is logged and ignored (it is not an alarm: nothing to keep).
fn take_report<M: Message + Default>(
    p: &Publish,
    agent: &str,
    what: &str,
    agent_of: impl Fn(&M) -> &str,
    record: impl FnOnce(&M) -> Result<(), crate::store::StoreError>,
) {
    match decode_limited::<M>(&p.payload) {
        Ok(m) if agent_of(&m) == agent => {
            if let Err(e) = record(&m) {
                warn!("cannot record the {what}: {e}");
            }
        }
        Ok(_) => warn!(topic = %p.topic, "{what} names another agent; ignored"),
        Err(e) => warn!(topic = %p.topic, "malformed {what}: {e}"),
    }
}

/// The receipt being gathered for `agent`.
fn receipt_for<'a>(receipts: &'a mut BTreeMap<String, Receipt>, agent: &str) -> &'a mut Receipt {
    receipts.entry(agent.to_owned()).or_insert_with(|| Receipt {
        schema_version: SCHEMA_VERSION as i32,
        agent_id: agent.to_owned(),
        ..Default::default()
    })
}

/// Group commit: take every publish waiting, store them all, flush once, then acknowledge and
/// receipt.
async fn write_batches(
    mut rx: mpsc::UnboundedReceiver<Publish>,
    client: AsyncClient,
    ingest: Ingest,
) {
    const MAX_BATCH: usize = 1000;
    let Ingest {
        topics,
        store,
        dead_letters,
        keys,
        center_key,
        configs,
        stats,
        routing,
        fleet,
        feed,
    } = ingest;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = now_ms();
        let dead_letter = |topic: &str, payload: &[u8], reason: &str| {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            warn!(topic = %topic, bytes = payload.len(), "dead letter: {reason}");
            if let Err(e) = dead_letters.add(topic, payload, reason, now) {
                warn!("cannot keep the dead letter: {e}");
            }
        };
        let mut stored = Vec::new();
        // Alarms whose following snapshot arrived.
        let mut pictured = Vec::new();
        // Every alarm (and following snapshot) held by the store, new or seen before, is
        // receipted to its agent.
        let mut receipts: BTreeMap<String, Receipt> = BTreeMap::new();
        let mut unstored = Vec::new();
        let mut verdicts = validate_all(&topics, &keys, &batch);
        let rules = routing.current();
        // Valid alarms, stored together after the loop: (position in the batch, record, alarm).
        let mut valid: Vec<(usize, AlarmRecord, Alarm)> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            if let Some(agent) = topics.agent_of(&p.topic, "config/ack") {
                take_report(
                    p,
                    agent,
                    "config answer",
                    |a: &ConfigAck| &a.agent_id,
                    |a| configs.record_ack(a),
                );
                continue;
            }
            if let Some(agent) = topics.agent_of(&p.topic, "status") {
                // The center's own retained status comes back on `center/status`: not an agent's.
                if is_valid_agent_id(agent) {
                    take_report(
                        p,
                        agent,
                        "agent status",
                        |s: &AgentStatus| &s.agent_id,
                        |s| fleet.record_status(s, now),
                    );
                }
                continue;
            }
            if let Some(agent) = topics.agent_of(&p.topic, "health") {
                take_report(
                    p,
                    agent,
                    "agent health",
                    |h: &Health| &h.agent_id,
                    |h| fleet.record_health(h, now),
                );
                continue;
            }
            if let Some(agent) = topics.agent_of(&p.topic, "snapshot") {
                match take_snapshot(&store, agent, &p.payload) {
                    Taken::Stored(alarm_id) => {
                        pictured.push(alarm_id.clone());
                        receipt_for(&mut receipts, agent).snapshot_alarm_ids.push(alarm_id);
                    }
                    Taken::Later => {}
                    Taken::Refused(reason) => dead_letter(&p.topic, &p.payload, &reason),
                    Taken::Failed => unstored.push(i),
                }
                continue;
            }
            let verdict = verdicts[i]
                .take()
                .unwrap_or_else(|| validate(&topics, &keys, &p.topic, &p.payload));
            let alarm = match verdict {
                Ok(alarm) => alarm,
                Err(reason) => {
                    dead_letter(&p.topic, &p.payload, &reason);
                    continue;
                }
            };
            let mut record = AlarmRecord::from_alarm(&alarm, now);
            record.routed_to = rules.route(&facts(&record));
            record.location =
                rules.location(&record.agent_id, &record.camera_id).unwrap_or_default();
            valid.push((i, record, alarm));
        }
        let rows: Vec<(&AlarmRecord, &[u8])> =
            valid.iter().map(|(_, r, a)| (r, a.snapshot_jpeg.as_ref())).collect();
        match store.insert_batch(&rows) {
            Ok(inserted) => {
                for ((_, record, _), inserted) in valid.into_iter().zip(inserted) {
                    receipt_for(&mut receipts, &record.agent_id).alarm_ids.push(record.id.clone());
                    if inserted == Inserted::New {
                        stats.stored.fetch_add(1, Ordering::Relaxed);
                        stored.push(record);
                    } else {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        debug!(alarm = %record.id, "duplicate alarm stored before; receipted again");
                    }
                }
            }
            Err(e) => {
                // Neither acknowledged nor receipted: the agents publish them again.
                warn!("cannot store {} alarms: {e}", valid.len());
                unstored.extend(valid.iter().map(|(i, ..)| *i));
            }
        }
        if let Err(e) = store.flush().await {
            warn!("cannot flush the alarm store: {e}; the batch stays unacknowledged");
            batch.clear();
            continue;
        }
        for r in stored {
            info!(alarm = %r.id, agent = %r.agent_id, camera = %r.camera_id, rule = %r.rule_id, snapshot_bytes = r.snapshot_bytes, "alarm stored");
            feed.publish(Change::New, r);
        }
        for r in pictured.iter().filter_map(|id| store.get(id).ok().flatten()) {
            feed.publish(Change::Updated, r);
        }
        for (i, p) in batch.drain(..).enumerate() {
            if unstored.contains(&i) {
                continue;
            }
            if let Err(e) = client.ack(&p).await {
                warn!("cannot acknowledge: {e}");
            }
        }
        for (agent, mut receipt) in receipts {
            receipt.time_ms = now_ms();
            let payload =
                match center_key.sign(receipt.encode_to_vec(), RECEIPT_SIGNATURE_FIELD, &[]) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!("cannot sign a receipt: {e}");
                        continue;
                    }
                };
            if let Err(e) =
                client.publish(topics.receipt(&agent), QoS::AtLeastOnce, false, payload).await
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
    fn alarms_must_be_signed_by_their_own_agent_and_come_on_its_topic() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = SigningKey::load_or_create(&dir.path().join("v1.key")).unwrap();
        let v2 = SigningKey::load_or_create(&dir.path().join("v2.key")).unwrap();
        let keys_file = dir.path().join("agent-keys.toml");
        std::fs::write(
            &keys_file,
            format!("[agents]\nv1 = \"{}\"\nv2 = \"{}\"\n", v1.public_key(), v2.public_key()),
        )
        .unwrap();
        let keys = AgentKeys::open(&keys_file).unwrap();
        let t = Topics::default();
        let seal = |key: &SigningKey, a: &Alarm| {
            key.sign(a.encode_to_vec(), ALARM_SIGNATURE_FIELD, &[ALARM_SNAPSHOT_FIELD]).unwrap()
        };
        let a = Alarm { id: "0199-abc".into(), agent_id: "v1".into(), ..Default::default() };

        assert!(validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &a)).is_ok());
        // v2 speaking for v1, on v1's topic or on its own.
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v2, &a)).unwrap_err();
        assert_eq!(err, "the signature does not verify against the key registered for \"v1\"");
        let err = validate(&t, &keys, "xl/v1/v2/alarm", &seal(&v2, &a)).unwrap_err();
        assert!(err.contains("came on \"v2\"'s topic"), "{err}");
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &a.encode_to_vec()).unwrap_err();
        assert_eq!(err, "the message is not signed");
        let err = validate(&t, &keys, "xl/v1/v3/alarm", &seal(&v1, &a)).unwrap_err();
        assert!(err.starts_with("no key registered for agent \"v3\": add its line"), "{err}");
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", b"\xff\xff").unwrap_err().contains("malformed")
        );
        let no_id = Alarm { agent_id: "v1".into(), ..Default::default() };
        assert!(
            validate(&t, &keys, "xl/v1/v1/alarm", &seal(&v1, &no_id))
                .unwrap_err()
                .contains("not a valid id")
        );
        // A snapshot swapped on the way: the signed hash does not match.
        let mut with_picture = a.clone();
        with_picture.snapshot_sha256 = sha256(b"the real picture").into();
        let mut swapped = Alarm::decode(seal(&v1, &with_picture).as_slice()).unwrap();
        swapped.snapshot_jpeg = b"another picture".to_vec().into();
        let err = validate(&t, &keys, "xl/v1/v1/alarm", &swapped.encode_to_vec()).unwrap_err();
        assert_eq!(err, "the snapshot does not match the hash the agent signed");
    }
}
