//! The I/O of ingest: the MQTT event loop (subscribing at every connect, announcing the center
//! online) hands publishes to a writer, which sorts each batch (`batch.rs`), records and stores
//! what it holds, flushes once, and only then tells the consoles and receipts to the agents;
//! then writes the batch's clip chunks to their files (synced, off the async threads) and
//! receipts those; and acknowledges the batch to the broker, in order, last. So a receipted
//! alarm (or chunk) is on disk. What the store could not write (a full disk) is acknowledged
//! but not receipted: the broker's window stays open, and the box keeps it and sends it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use std::ops::ControlFlow;

use rumqttc::{AsyncClient, EventLoop, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::SigningKey;
use xueliang_proto::topics::Topics;
use xueliang_proto::{Alarm, Snapshot};
use xueliang_service::backoff::Backoff;
use xueliang_service::mqtt::{self, Farewell, Link, Session};

use super::batch::{Item, Receipts, Report, sort};
use super::connection::{Announcer, BrokerConnection, Cluster};
use super::quota::{QuotaLimits, Quotas};
use super::relay;
use crate::cases::{AlarmFeed, Change, Relayed};
use crate::domain::AlarmRecord;
use crate::fleet::{AgentKeys, ConfigPush, Fleet};
use crate::routing::Routing;
use crate::store::{Attached, Clips, DeadLetters, EventUpdated, Inserted, Proof, Put, Store};
use crate::watched_file::WatchedFile;

/// Counters of what ingest has seen.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// New alarms stored.
    pub stored: AtomicU64,
    /// Redeliveries of stored alarms.
    pub duplicates: AtomicU64,
    /// Events' updates applied.
    pub updates: AtomicU64,
    /// Payloads refused (undecodable, invalid, unsigned or forged) and dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Chunks of events' clips written to disk (not those received again).
    pub clip_chunks_stored: AtomicU64,
    /// Chunks of events' clips refused and dead-lettered.
    pub clip_chunks_refused: AtomicU64,
    /// Clips complete and kept (their bytes hashed to the signed SHA-256).
    pub clips_completed: AtomicU64,
    /// Clips complete and discarded: their bytes did not hash to the signed SHA-256.
    pub clips_failed: AtomicU64,
    /// Publishes the store could not write (acknowledged, not receipted: their boxes resend).
    pub unstored: AtomicU64,
    /// Publishes over their agent's quota (acknowledged, not receipted: their boxes resend).
    pub over_quota: AtomicU64,
    /// Whether ingest is connected to the broker and subscribed.
    pub connected: AtomicBool,
    /// Publishes received and not yet handled.
    pub waiting: AtomicU64,
    /// When ingest last finished a batch, UTC milliseconds (0: none yet).
    pub batch_done_ms: AtomicI64,
}

/// What ingest works with.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Topic names.
    pub topics: Topics,
    /// The alarm store.
    pub store: Store,
    /// Events' video clips.
    pub clips: Clips,
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
    /// The center's signed status, for this run.
    pub announcer: Announcer,
    /// How much each agent may send.
    pub quota: QuotaLimits,
    /// The processes this one shares the agents' topics with, if any.
    pub cluster: Option<Cluster>,
}

/// Runs ingest until `shutdown`: subscribes to every agent's alarms, updates, snapshots, clip
/// chunks, config answers, status and health, and handles what arrives. Of several processes,
/// also tells the others the `changes` the feed relays and tells the feed theirs.
pub async fn run(
    conn: BrokerConnection,
    client: AsyncClient,
    eventloop: EventLoop,
    ingest: Ingest,
    changes: Option<mpsc::UnboundedReceiver<Relayed>>,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::unbounded_channel::<Publish>();
    let writer = tokio::spawn(write_batches(rx, client.clone(), ingest.clone()));
    let relay = match (&ingest.cluster, changes) {
        (Some(cluster), Some(changes)) => {
            let topic = ingest.topics.center_feed();
            let node = cluster.node.clone();
            let (notices, received) = mpsc::unbounded_channel();
            let (store, feed) = (ingest.store.clone(), ingest.feed.clone());
            tokio::spawn(relay::send(changes, client.clone(), topic.clone(), node.clone()));
            tokio::spawn(relay::receive(received, store, feed, node));
            Some((topic, notices))
        }
        _ => None,
    };
    poll(eventloop, client, &ingest, &conn, tx, relay, shutdown).await;
    let _ = writer.await;
}

/// The polling side of ingest's connection: subscribes at every connect and announces the
/// center online once every subscription is confirmed (agents publish only then), and again
/// whenever another status appears on its topic (forged, replayed, or its own last will from a
/// lost connection), if this process speaks for the center; hands every publish to the writer.
struct Subscriber {
    filters: Vec<(String, QoS)>,
    /// Of several processes: the topic they tell each other their changes on, and where the
    /// others' go.
    relay: Option<(String, mpsc::UnboundedSender<Vec<u8>>)>,
    status_topic: String,
    announcer: Announcer,
    configs: ConfigPush,
    /// Subscriptions confirmed since the last connect.
    subscribed: usize,
    /// When it was last announced again, so two centers on one broker do not flood it.
    reasserted: Option<std::time::Instant>,
    tx: mpsc::UnboundedSender<Publish>,
    stats: Arc<IngestStats>,
}

impl Subscriber {
    /// Publishes the online status (retained), if this process speaks for the center.
    fn announce(&mut self, client: &AsyncClient) {
        if !self.announcer.speaks() {
            return;
        }
        let online = self.announcer.status(true);
        if let Err(e) = client.try_publish(&self.status_topic, QoS::AtLeastOnce, true, online) {
            warn!("cannot announce the center online: {e}");
        }
    }
}

impl Session for Subscriber {
    fn connected(&mut self, client: &AsyncClient) {
        self.subscribed = 0;
        for (filter, qos) in &self.filters {
            if let Err(e) = client.try_subscribe(filter, *qos) {
                warn!("cannot subscribe to {filter}: {e}");
            }
        }
        // Off this loop: publishing waits for room the loop itself makes.
        let configs = self.configs.clone();
        tokio::spawn(async move { configs.republish_all().await });
    }

    fn incoming(&mut self, client: &AsyncClient, packet: Packet) -> ControlFlow<()> {
        match packet {
            Packet::SubAck(_) => {
                self.subscribed += 1;
                if self.subscribed == self.filters.len() {
                    self.stats.connected.store(true, Ordering::Relaxed);
                    self.announce(client);
                    info!("ingesting: agents may publish");
                }
            }
            Packet::Publish(p) if self.relay.as_ref().is_some_and(|(t, _)| p.topic == *t) => {
                if let Some((_, notices)) = &self.relay {
                    let _ = notices.send(p.payload.to_vec());
                }
            }
            // The writer is gone only when ingest stops.
            Packet::Publish(p) => {
                let other = p.topic == self.status_topic
                    && self.subscribed == self.filters.len()
                    && self.announcer.speaks()
                    && p.payload != self.announcer.status(true);
                let quiet = self.reasserted.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if other && quiet {
                    warn!(
                        topic = %p.topic,
                        "another center status was published on the center's topic; announcing this center again"
                    );
                    self.reasserted = Some(std::time::Instant::now());
                    self.announce(client);
                }
                self.stats.waiting.fetch_add(1, Ordering::Relaxed);
                return self
                    .tx
                    .send(p)
                    .map_or(ControlFlow::Break(()), |_| ControlFlow::Continue(()));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn disconnected(&mut self) {
        self.stats.connected.store(false, Ordering::Relaxed);
    }
}

/// Reconnect delays to the broker: the center retries quickly, agents wait on it.
const RECONNECT: Backoff = Backoff::doubling(Duration::from_millis(200), Duration::from_secs(5));

async fn poll(
    eventloop: EventLoop,
    client: AsyncClient,
    ingest: &Ingest,
    conn: &BrokerConnection,
    tx: mpsc::UnboundedSender<Publish>,
    relay: Option<(String, mpsc::UnboundedSender<Vec<u8>>)>,
    shutdown: CancellationToken,
) {
    let t = &ingest.topics;
    let status_topic = t.center_status();
    let announcer = ingest.announcer.clone();
    let kinds = ["alarm", "event", "snapshot", "clip", "config/ack", "status", "health"];
    // Of several processes, each publish goes to one of them.
    let shared = ingest.cluster.as_ref().map(|c| format!("$share/{}/", c.group));
    let mut session = Subscriber {
        announcer: announcer.clone(),
        reasserted: None,
        filters: kinds
            .iter()
            .map(|k| (format!("{}{}", shared.as_deref().unwrap_or(""), t.all_agents(k)), QoS::AtLeastOnce))
            // Every process hears every other's changes; QoS 0 needs no acknowledgement.
            .chain(relay.as_ref().map(|(topic, _)| (topic.clone(), QoS::AtMostOnce)))
            .collect(),
        relay,
        status_topic: status_topic.clone(),
        configs: ingest.configs.clone(),
        subscribed: 0,
        tx,
        stats: ingest.stats.clone(),
    };
    let link = Link {
        client,
        eventloop,
        who: "ingest".into(),
        broker: format!("{}:{}", conn.host, conn.port),
    };
    // A clean disconnect does not fire the last will: say offline, so agents hold their alarms
    // (of several processes, the one speaking for the center; another takes over).
    let farewell = || {
        let payload = announcer.speaks().then(|| announcer.status(false))?;
        Some(Farewell { topic: status_topic, payload })
    };
    mqtt::run(link, &mut session, RECONNECT, &shutdown, farewell).await;
}

/// What became of a snapshot that followed its alarm.
enum Taken {
    /// Stored (now or before): receipt it under this alarm id.
    Stored(String),
    /// Its alarm is not stored yet: the agent sends it again.
    Later,
    /// Not a picture any alarm of this agent signed for: dead-letter it.
    Refused(String),
    /// The store failed: not receipted, so the agent sends it again.
    Failed,
}

/// Attaches a snapshot from `agent` to its stored alarm.
fn take_snapshot(store: &Store, agent: &str, snap: Snapshot) -> Taken {
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

/// Records an agent's report, heard at `now_ms`, where it belongs.
fn take_report(configs: &ConfigPush, fleet: &Fleet, report: &Report, now_ms: i64) {
    let recorded = match report {
        Report::ConfigAck(a) => configs.record_ack(a),
        Report::Status(s) => fleet.record_status(s, now_ms),
        Report::Health(h) => fleet.record_health(h, now_ms),
    };
    if let Err(e) = recorded {
        warn!("cannot record the {}: {e}", report.what());
    }
}

/// Group commit: take every publish waiting, store them all, flush once, then receipt; then
/// write the clip chunks and receipt them; then acknowledge.
async fn write_batches(
    mut rx: mpsc::UnboundedReceiver<Publish>,
    client: AsyncClient,
    ingest: Ingest,
) {
    const MAX_BATCH: usize = 1000;
    let Ingest {
        topics,
        store,
        clips,
        dead_letters,
        keys,
        center_key,
        configs,
        stats,
        routing,
        fleet,
        feed,
        announcer: _,
        quota,
        cluster: _,
    } = ingest;
    let mut quotas = Quotas::new(quota);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let handled = batch.len() as u64;
        // What an agent sends past its quota waits on the box: acknowledged, never receipted.
        let mut over = Vec::new();
        // Acknowledged in the order they came, over-quota ones included: a broker may require
        // it (MQTT 3.1.1 4.6; rumqttd drops the connection otherwise).
        let arrived = batch.clone();
        let at = std::time::Instant::now();
        batch.retain(|p| {
            let agent = ["alarm", "event", "snapshot", "clip"]
                .into_iter()
                .find_map(|kind| topics.agent_of(&p.topic, kind));
            let admitted = agent.is_none_or(|a| quotas.admit(a, p.payload.len(), at));
            if !admitted {
                over.push(p.clone());
            }
            admitted
        });
        if !over.is_empty() {
            debug!("{} publishes over their agents' quotas left with their boxes", over.len());
            stats.over_quota.fetch_add(over.len() as u64, Ordering::Relaxed);
        }
        if batch.is_empty() {
            acknowledge(&client, arrived.into_iter()).await;
            stats.waiting.fetch_sub(handled, Ordering::Relaxed);
            continue;
        }
        let bytes: usize = batch.iter().map(|p| p.payload.len()).sum();
        if let Err(why) = store.health().room(2 * bytes as u64) {
            // Nothing written: a failed write would break the store until it is reopened.
            debug!("{why}: {} publishes left with their boxes", batch.len());
            leave_with_boxes(&client, &stats, &mut batch, arrived).await;
            stats.waiting.fetch_sub(handled, Ordering::Relaxed);
            stats.batch_done_ms.store(now_ms(), Ordering::Relaxed);
            continue;
        }
        let now = now_ms();
        let dead_letter = |topic: &str, payload: &[u8], reason: &str| {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            warn!(topic = %topic, bytes = payload.len(), "dead letter: {reason}");
            if let Err(e) = dead_letters.add(topic, payload, reason, now) {
                warn!("cannot keep the dead letter: {e}");
            }
        };
        let refused_clip = |topic: &str| {
            if topics.agent_of(topic, "clip").is_some() {
                stats.clip_chunks_refused.fetch_add(1, Ordering::Relaxed);
            }
        };
        let mut stored = Vec::new();
        // Alarms whose following snapshot arrived.
        let mut pictured = Vec::new();
        // Every alarm (and following snapshot) held by the store, new or seen before, is
        // receipted to its agent.
        let mut receipts = Receipts::default();
        // Publishes the store could not write.
        let mut unstored = 0u64;
        // Events whose agent's update changed them, as they are now.
        let mut updated = Vec::new();
        // Valid updates, applied after the alarms: (position in the batch, agent, update).
        let mut updates = Vec::new();
        // Valid alarms, stored together after the loop: (position in the batch, record, alarm,
        // its signed message).
        let mut valid: Vec<(usize, AlarmRecord, Alarm, Option<Proof>)> = Vec::new();
        // Valid clip chunks, written after the alarms: (position, agent, chunk, as signed).
        let mut chunks = Vec::new();
        let items = sort(&topics, &keys, &routing.current(), &batch, now, clips.max_bytes());
        for (i, (p, item)) in batch.iter().zip(items).enumerate() {
            match item {
                Item::Report(report) => take_report(&configs, &fleet, &report, now),
                Item::Ignored => {}
                Item::Refused(reason) => {
                    refused_clip(&p.topic);
                    dead_letter(&p.topic, &p.payload, &reason);
                }
                Item::Snapshot { agent, snapshot } => match take_snapshot(&store, &agent, snapshot)
                {
                    Taken::Stored(alarm_id) => {
                        pictured.push(alarm_id.clone());
                        receipts.snapshot(&agent, alarm_id);
                    }
                    Taken::Later => {}
                    Taken::Refused(reason) => dead_letter(&p.topic, &p.payload, &reason),
                    Taken::Failed => unstored += 1,
                },
                Item::Alarm { record, alarm, proof } => valid.push((i, *record, *alarm, proof)),
                Item::Update { agent, update, proof } => updates.push((i, agent, update, proof)),
                Item::Clip { agent, chunk, signed } => chunks.push((i, agent, chunk, signed)),
                Item::SignedRefused { agent, id, reason } => {
                    dead_letter(&p.topic, &p.payload, &reason);
                    receipts.refused(&agent, id);
                }
                Item::ClipRefused { agent, chunk, reason } => {
                    refused_clip(&p.topic);
                    dead_letter(&p.topic, &p.payload, &reason);
                    receipts.refused_clip_chunk(&agent, chunk);
                }
            }
        }
        let rows: Vec<(&AlarmRecord, &[u8], Option<&Proof>)> =
            valid.iter().map(|(_, r, a, p)| (r, a.snapshot_jpeg.as_ref(), p.as_ref())).collect();
        match store.insert_batch(&rows) {
            Ok(inserted) => {
                for ((i, record, ..), inserted) in valid.into_iter().zip(inserted) {
                    let why = match inserted {
                        Inserted::Taken => {
                            "another agent's alarm has this id (alarms are kept by agent and id)"
                        }
                        Inserted::Deleted => {
                            "it was stored before and retention deleted it: not stored again"
                        }
                        Inserted::New | Inserted::Duplicate => "",
                    };
                    if !why.is_empty() {
                        let p = &batch[i];
                        let reason = format!("alarm {} of {}: {why}", record.id, record.agent_id);
                        dead_letter(&p.topic, &p.payload, &reason);
                        receipts.refused(&record.agent_id, record.id);
                        continue;
                    }
                    receipts.alarm(&record.agent_id, record.id.clone());
                    if inserted == Inserted::New {
                        stats.stored.fetch_add(1, Ordering::Relaxed);
                        // A clip complete before its event's alarm joins the record now.
                        let record = match clips.attach_waiting(&record) {
                            Ok(with_clips) => with_clips.unwrap_or(record),
                            Err(e) => {
                                warn!(alarm = %record.id, "cannot add the clips that came before the alarm: {e}");
                                record
                            }
                        };
                        stored.push(record);
                    } else {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        debug!(alarm = %record.id, "duplicate alarm stored before; receipted again");
                    }
                }
            }
            Err(e) => {
                // Not receipted: the agents publish them again.
                warn!("cannot store {} alarms: {e}", valid.len());
                unstored += valid.len() as u64;
            }
        }
        // After the batch's alarms: an update often comes in the same batch as its event's alarm.
        for (i, agent, update, proof) in updates {
            let p = &batch[i];
            match store.apply_update(&agent, &update, proof.as_ref()) {
                Ok(EventUpdated::Changed(record)) => {
                    receipts.update(&agent, update.id);
                    stats.updates.fetch_add(1, Ordering::Relaxed);
                    updated.push(*record);
                }
                Ok(EventUpdated::Duplicate) => receipts.update(&agent, update.id),
                Ok(EventUpdated::NoEvent) => {
                    debug!(event = %update.event_id, "an update came before its event's alarm; the agent sends it again");
                }
                Ok(EventUpdated::Mismatch) => dead_letter(
                    &p.topic,
                    &p.payload,
                    &format!("update of event {:?}: not an event of this agent", update.event_id),
                ),
                Err(e) => {
                    warn!(event = %update.event_id, "cannot apply an update: {e}");
                    unstored += 1;
                }
            }
        }
        if let Err(e) = store.flush().await {
            // The store is reopened once there is room.
            warn!(
                "cannot flush the alarm store: {e}; {} publishes left with their boxes",
                batch.len()
            );
            leave_with_boxes(&client, &stats, &mut batch, arrived).await;
            stats.waiting.fetch_sub(handled, Ordering::Relaxed);
            continue;
        }
        for r in stored {
            info!(alarm = %r.id, agent = %r.agent_id, camera = %r.camera_id, rule = %r.rule_id, snapshot_bytes = r.snapshot_bytes, "alarm stored");
            feed.publish(Change::New, r);
        }
        for r in pictured.iter().filter_map(|id| store.get(id).ok().flatten()) {
            feed.publish(Change::Updated, r);
        }
        for r in updated {
            feed.publish(Change::Updated, r);
        }
        // The batch's alarms are stored, told and receipted before its clip chunks are written
        // (synced, which takes long): an alarm never waits on the video of its own batch (the
        // next batch waits for these writes). A clip completed now joins an event stored in
        // this batch.
        send_receipts(&client, &topics, &center_key, receipts).await;
        let mut receipts = Receipts::default();
        // Records a completed clip changed (durable: completing a clip flushes the store).
        let mut clipped = Vec::new();
        let positions: Vec<usize> = chunks.iter().map(|(i, ..)| *i).collect();
        let writer = clips.clone();
        // Synced file writes: off the async threads.
        let written = match chunks.is_empty() {
            true => Ok(Vec::new()),
            false => {
                tokio::task::spawn_blocking(move || {
                    chunks
                        .into_iter()
                        .map(|(i, agent, chunk, signed)| {
                            let put = writer.put(&agent, &chunk, &signed, now);
                            (i, agent, chunk, put)
                        })
                        .collect::<Vec<_>>()
                })
                .await
            }
        };
        let written = written.unwrap_or_else(|e| {
            warn!("the clip writer failed: {e}; its chunks stay unacknowledged");
            unstored += positions.len() as u64;
            Vec::new()
        });
        for (i, agent, chunk, put) in written {
            let (p, id, offset) = (&batch[i], chunk.clip_id.as_str(), chunk.offset);
            match put {
                Ok(Put::Stored) => {
                    stats.clip_chunks_stored.fetch_add(1, Ordering::Relaxed);
                    receipts.clip_chunk(&agent, id, offset);
                }
                Ok(Put::Duplicate) => receipts.clip_chunk(&agent, id, offset),
                Ok(Put::Completed(done)) => {
                    stats.clip_chunks_stored.fetch_add(1, Ordering::Relaxed);
                    stats.clips_completed.fetch_add(1, Ordering::Relaxed);
                    receipts.clip_chunk(&agent, id, offset);
                    info!(clip = %id, agent = %agent, event = %chunk.event_id, bytes = done.clip.size, "clip stored");
                    clipped.extend(done.event);
                }
                Ok(Put::Refused(reason)) => {
                    refused_clip(&p.topic);
                    dead_letter(&p.topic, &p.payload, &reason);
                    receipts.refused_clip_chunk(&agent, xueliang_proto::clip_chunk_id(id, offset));
                }
                Ok(Put::Mismatch(reason)) => {
                    stats.clips_failed.fetch_add(1, Ordering::Relaxed);
                    refused_clip(&p.topic);
                    dead_letter(&p.topic, &p.payload, &reason);
                    receipts.refused_clip_chunk(&agent, xueliang_proto::clip_chunk_id(id, offset));
                }
                Err(e) => {
                    warn!(clip = %id, agent = %agent, "cannot store a clip chunk: {e}");
                    unstored += 1;
                }
            }
        }
        if !positions.is_empty()
            && let Err(e) = store.flush().await
        {
            // The chunks are on disk; only their dead letters wait for the next flush.
            warn!("cannot flush the alarm store after the clip chunks: {e}");
        }
        for r in clipped {
            feed.publish(Change::Updated, r);
        }
        // What could not be stored is acknowledged too, never receipted: its box resends it.
        stats.unstored.fetch_add(unstored, Ordering::Relaxed);
        batch.clear();
        acknowledge(&client, arrived.into_iter()).await;
        send_receipts(&client, &topics, &center_key, receipts).await;
        stats.waiting.fetch_sub(handled, Ordering::Relaxed);
        stats.batch_done_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Leaves the whole `batch` with its boxes: everything it `arrived` with (over-quota publishes
/// too, in order) acknowledged, so the broker's window stays open; never receipted, so each box
/// keeps what it sent and sends it again.
async fn leave_with_boxes(
    client: &AsyncClient,
    stats: &IngestStats,
    batch: &mut Vec<Publish>,
    arrived: Vec<Publish>,
) {
    stats.unstored.fetch_add(batch.len() as u64, Ordering::Relaxed);
    batch.clear();
    acknowledge(client, arrived.into_iter()).await;
}

/// Acknowledges `publishes` to the broker, in order.
async fn acknowledge(client: &AsyncClient, publishes: impl Iterator<Item = Publish>) {
    for p in publishes {
        if let Err(e) = client.ack(&p).await {
            warn!("cannot acknowledge: {e}");
        }
    }
}

/// Signs and sends each agent its receipt.
async fn send_receipts(
    client: &AsyncClient,
    topics: &Topics,
    center_key: &SigningKey,
    receipts: Receipts,
) {
    for (agent, payload) in receipts.signed(center_key, now_ms()) {
        if let Err(e) =
            client.publish(topics.receipt(&agent), QoS::AtLeastOnce, false, payload).await
        {
            // The agent publishes again until a receipt comes; nothing is lost.
            warn!(agent = %agent, "cannot send receipt: {e}");
        }
    }
}
