//! Receiving from the tier below: each center's events, signed with the key `below.toml`
//! gives it, stored in its order (the next number only, once), then receipted, and its reports
//! of its counties' boxes, kept; what is not theirs to send, or not signed by them, is
//! dead-lettered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{
    TIER_EVENT_SIGNATURE_FIELD, TIER_FLEET_SIGNATURE_FIELD, TIER_RECEIPT_SIGNATURE_FIELD,
};
use xueliang_proto::topics::is_valid_id;
use xueliang_proto::{Message, SCHEMA_VERSION, TierEvent, TierFleet, TierReceipt, decode_limited};

use super::{Heard, Links, listen};
use crate::cases::Change;
use crate::domain::AlarmRecord;
use crate::store::{CountyBoxes, FromBelow, Incoming, Received};

/// The largest thumbnail kept from below, bytes (one of [`super::thumbnail::SIDE`] pixels a
/// side is a few tens of kilobytes).
const MAX_THUMBNAIL: usize = 128 << 10;

/// Receives the events of the tier below.
pub(super) struct Receiver {
    /// The center's links (the centers below among them).
    pub(super) links: Links,
}

/// How long to wait before receipting again when the connection's queue was full.
const RECEIPT_AGAIN: std::time::Duration = std::time::Duration::from_millis(20);

/// The most messages stored in one transaction.
const BATCH: usize = 500;

/// Transactions in flight at once, each for its own share of the centers below: while one
/// waits for the database, another's messages are checked, and the database works on both.
const LANES: usize = 2;

/// An event that verified as its center's, for the store.
struct Checked<'a> {
    /// The message as it came.
    publish: &'a Publish,
    /// Its center.
    origin: String,
    /// The message.
    event: TierEvent,
    /// The record it carries (none: deleted there, or not a record and dead-lettered).
    record: Option<AlarmRecord>,
}

impl Receiver {
    /// Receives until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let from_below = match FromBelow::open(&self.links.store) {
            Ok(f) => f,
            Err(e) => return warn!("cannot receive from the tier below: {e}"),
        };
        let (client, eventloop) = match self.links.client("xl-center-below".to_owned(), 1024) {
            Ok(c) => c,
            Err(e) => return warn!("cannot receive from the tier below: {e}"),
        };
        let (publishes, mut incoming) = mpsc::channel(BATCH);
        // Each center's own topic: this center's own events, on its broker on their way up,
        // are not among them.
        let topics = self
            .links
            .below
            .names()
            .flat_map(|n| [self.links.topics.tier_event(n), self.links.topics.tier_fleet(n)])
            .collect();
        let listening = tokio::spawn(listen(
            client.clone(),
            eventloop,
            topics,
            publishes,
            "the broker the tier below delivers to",
            stop.clone(),
        ));
        info!(centers = ?self.links.below.names().collect::<Vec<_>>(), "receiving from the tier below");
        let this = Arc::new(self);
        let handle = tokio::runtime::Handle::current();
        let (lanes, running): (Vec<_>, Vec<_>) = (0..LANES)
            .map(|_| {
                let (to_lane, lane) = mpsc::channel(BATCH);
                let (this, from_below, client) = (this.clone(), from_below.clone(), client.clone());
                let handle = handle.clone();
                let run = tokio::task::spawn_blocking(move || {
                    this.lane(&from_below, &client, lane, &handle);
                });
                (to_lane, run)
            })
            .collect();
        loop {
            let heard = tokio::select! {
                () = stop.cancelled() => break,
                heard = incoming.recv() => heard,
            };
            match heard {
                Some(Heard::Publish(p)) => {
                    // A center's messages always to the same lane, so in their order.
                    let lane = &lanes[lane_of(&p.topic)];
                    if lane.send(p).await.is_err() {
                        break;
                    }
                }
                Some(Heard::Connected) => {}
                None => break,
            }
        }
        drop(lanes);
        for lane in running {
            let _ = lane.await;
        }
        let _ = client.disconnect().await;
        let _ = listening.await;
    }

    /// Stores and receipts what `incoming` brings, batch by batch, until it closes.
    fn lane(
        &self,
        from_below: &FromBelow,
        client: &AsyncClient,
        mut incoming: mpsc::Receiver<Publish>,
        handle: &tokio::runtime::Handle,
    ) {
        // Each center heard from since the last receipts, and whether one of its events came
        // after a gap.
        let mut heard: BTreeMap<String, bool> = BTreeMap::new();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = if heard.is_empty() {
                incoming.blocking_recv()
            } else {
                match incoming.try_recv() {
                    Ok(p) => Some(p),
                    // Nothing more at once: what was stored is made durable, then receipted.
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.answer(client, from_below, &mut heard, handle);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(first) = first else { break };
            // What has come meanwhile goes into the same transaction.
            batch.push(first);
            while batch.len() < BATCH {
                match incoming.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            self.take(from_below, &batch, &mut heard);
            batch.clear();
        }
    }

    /// Takes `batch` in, noting in `heard` each center to receipt and whether one of its
    /// events came after a gap.
    fn take(&self, from_below: &FromBelow, batch: &[Publish], heard: &mut BTreeMap<String, bool>) {
        if batch.is_empty() {
            return;
        }
        let now = now_ms();
        let topics = &self.links.topics;
        let (reports, events): (Vec<&Publish>, Vec<&Publish>) =
            batch.iter().partition(|p| topics.tier_origin(&p.topic, "fleet").is_some());
        for p in reports {
            self.keep_boxes(from_below, p, now);
        }
        let checked: Vec<Checked<'_>> =
            events.into_iter().filter_map(|p| self.check(p, now)).collect();
        let changes: Vec<Incoming<'_>> = checked
            .iter()
            .map(|c| Incoming {
                origin: &c.origin,
                seq: c.event.seq,
                record: c.record.as_ref(),
                thumbnail: match c.event.thumbnail_jpeg.len() <= MAX_THUMBNAIL {
                    true => &c.event.thumbnail_jpeg,
                    false => &[],
                },
            })
            .collect();
        let outcomes = match from_below.receive(&changes, now) {
            Ok(outcomes) => outcomes,
            // Not stored, not receipted: the centers below send them again.
            Err(e) => return warn!(events = changes.len(), "cannot store events from below: {e}"),
        };
        for (c, outcome) in checked.into_iter().zip(outcomes) {
            let after_gap = match outcome {
                Received::Stored(record) => {
                    self.links.stats.received.fetch_add(1, Ordering::Relaxed);
                    let first = record.forwarded.as_ref().is_some_and(|f| f.seq == c.event.seq);
                    let change = if first { Change::New } else { Change::Updated };
                    self.links.feed.publish(change, *record);
                    false
                }
                Received::Duplicate => {
                    self.links.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Received::Passed => false,
                Received::Ahead { .. } => true,
                Received::Refused(why) => {
                    self.refuse::<()>(c.publish, why, now);
                    false
                }
            };
            *heard.entry(c.origin).or_default() |= after_gap;
        }
    }

    /// Keeps the counties' boxes report `p` carries if it verifies as its center's;
    /// dead-lettered if not.
    fn keep_boxes(&self, from_below: &FromBelow, p: &Publish, now: i64) {
        let Some(origin) = self.verified(p, "fleet", TIER_FLEET_SIGNATURE_FIELD, now) else {
            return;
        };
        let report = match decode_limited::<TierFleet>(&p.payload) {
            Ok(r) if r.origin == origin => r,
            Ok(r) => {
                let why = format!("names {:?} but came on {origin}'s topic", r.origin);
                self.refuse::<()>(p, why, now);
                return;
            }
            Err(e) => {
                self.refuse::<()>(p, format!("malformed: {e}"), now);
                return;
            }
        };
        let Some(counties) = report
            .counties
            .iter()
            .map(|c| {
                let b = CountyBoxes::from(c);
                (is_valid_id(&b.county) && b.online <= b.total).then_some(b)
            })
            .collect::<Option<Vec<_>>>()
        else {
            let why = "a county without a valid name, or more boxes online than it has".into();
            self.refuse::<()>(p, why, now);
            return;
        };
        if let Err(e) = from_below.keep_boxes(&counties) {
            warn!(origin, "cannot keep the counties' boxes: {e}");
        }
    }

    /// The center below whose `kind` topic `p` came on, if it signed `p` (its signature at
    /// field `signature`); dead-lettered if not.
    fn verified<'a>(
        &self,
        p: &'a Publish,
        kind: &str,
        signature: u32,
        now: i64,
    ) -> Option<&'a str> {
        let Some(origin) = self.links.topics.tier_origin(&p.topic, kind) else {
            return self.refuse(p, "not a tier topic".into(), now);
        };
        let Some(key) = self.links.below.key(origin) else {
            let why =
                format!("{origin} is not a center of the tier below: add its key to below.toml");
            return self.refuse(p, why, now);
        };
        if let Err(e) = key.verify(&p.payload, signature, &[], origin) {
            return self.refuse(p, e.to_string(), now);
        }
        Some(origin)
    }

    /// The event `p` carries if it verifies as its center's; dead-lettered if not.
    fn check<'a>(&self, p: &'a Publish, now: i64) -> Option<Checked<'a>> {
        let origin = self.verified(p, "event", TIER_EVENT_SIGNATURE_FIELD, now)?;
        let event = match decode_limited::<TierEvent>(&p.payload) {
            Ok(e) if e.origin == origin => e,
            Ok(e) => {
                let why = format!("names {:?} but came on {origin}'s topic", e.origin);
                return self.refuse(p, why, now);
            }
            Err(e) => return self.refuse(p, format!("malformed: {e}"), now),
        };
        // A record its center signed but that is not one goes to the dead letters; its number
        // is passed all the same, so the events after it are not held up.
        let record = parse(&event).unwrap_or_else(|why| self.refuse(p, why, now));
        Some(Checked { publish: p, origin: origin.to_owned(), event, record })
    }

    /// Dead-letters `p` for `why`.
    fn refuse<T>(&self, p: &Publish, why: String, now: i64) -> Option<T> {
        warn!(topic = %p.topic, "refused from the tier below: {why}");
        self.links.stats.refused.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.links.dead_letters.add(&p.topic, &p.payload, &why, now) {
            warn!("cannot keep a dead letter: {e}");
        }
        None
    }

    /// Makes what was stored durable and receipts it to each center heard from.
    fn answer(
        &self,
        client: &AsyncClient,
        from_below: &FromBelow,
        heard: &mut BTreeMap<String, bool>,
        handle: &tokio::runtime::Handle,
    ) {
        if let Err(e) = handle.block_on(self.links.store.flush()) {
            // Not receipted: the centers below send it again.
            heard.clear();
            return warn!("cannot store the events from below: {e}");
        }
        let heard_from = std::mem::take(heard);
        let origins: Vec<&str> = heard_from.keys().map(String::as_str).collect();
        let applied = match from_below.applied_many(&origins) {
            Ok(applied) => applied,
            // Not receipted now: the centers below send again, and are receipted then.
            Err(e) => return warn!("cannot receipt: {e}"),
        };
        let mut unsent = BTreeMap::new();
        for ((origin, missing), up_to) in heard_from.into_iter().zip(applied) {
            let payload = self.receipt(&origin, up_to, missing);
            let topic = self.links.topics.tier_receipt(&origin);
            // Never waiting for room in the connection's queue: the connection waits for this
            // receiver to take what it reads, so waiting here could stop both.
            if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                unsent.insert(origin, missing);
            }
        }
        if !unsent.is_empty() {
            // Receipted once the connection has sent what it holds.
            *heard = unsent;
            std::thread::sleep(RECEIPT_AGAIN);
        }
    }

    /// The signed receipt to `origin`: stored up to `up_to`.
    fn receipt(&self, origin: &str, up_to: u64, missing: bool) -> Vec<u8> {
        let receipt = TierReceipt {
            schema_version: SCHEMA_VERSION as i32,
            origin: origin.to_owned(),
            up_to,
            time_ms: now_ms(),
            signature: Default::default(),
            missing,
        };
        // Signing fails only on malformed protobuf, which this is not.
        self.links
            .key
            .sign(receipt.encode_to_vec(), TIER_RECEIPT_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| receipt.encode_to_vec())
    }
}

/// The lane of the center whose topic is `topic` (its name hashed: every message of one center,
/// whatever the kind, in the same lane).
fn lane_of(topic: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let center = topic.rsplit_once('/').map_or(topic, |(rest, _)| rest);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    center.hash(&mut hasher);
    hasher.finish() as usize % LANES
}

/// The record `event` carries (none: deleted where it was), or why it is not one.
fn parse(event: &TierEvent) -> Result<Option<AlarmRecord>, String> {
    if event.record_json.is_empty() {
        return Ok(None);
    }
    let record: AlarmRecord = serde_json::from_str(&event.record_json)
        .map_err(|e| format!("event {} is not a record: {e}", event.seq))?;
    if !is_valid_id(&record.id) {
        return Err(format!("event {}: {:?} is not a valid id", event.seq, record.id));
    }
    Ok(Some(record))
}
