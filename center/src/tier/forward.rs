//! Forwarding upward: the log's events, in their numbers' order, to the broker that carries
//! them to the tier above, at most a window ahead of the last receipt; from the last receipt
//! again when the tier above says one went missing, or when no receipt came for a while
//! (waiting twice as long each time, up to five minutes: a cut link is not flooded). Every
//! minute, the counties' boxes online.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{
    SigningKey, TIER_EVENT_SIGNATURE_FIELD, TIER_FLEET_SIGNATURE_FIELD,
    TIER_RECEIPT_SIGNATURE_FIELD, VerifyingKey,
};
use xueliang_proto::{Message, SCHEMA_VERSION, TierEvent, TierFleet, TierReceipt, decode_limited};

use super::{Heard, Links, TierStats, listen, thumbnail};
use crate::domain::AlarmRecord;
use crate::store::{CountyBoxes, FromBelow, Store, StoreError, Upward};

/// Events sent and not receipted at most.
const WINDOW: u64 = 1000;
/// How long without a receipt before sending again from the last one, at first.
const FIRST_WAIT: Duration = Duration::from_secs(30);
/// How long at most.
const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// How long after going back before a missing event makes the sending go back again (what was
/// in flight before still arrives, each after a gap).
const MISSING_AGAIN: Duration = Duration::from_secs(5);
/// How often the log takes in new changes.
const TICK: Duration = Duration::from_millis(100);
/// How often the counties' boxes are reported upward.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Where and as whom this center forwards.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// This center's name at the tier above (its county's or city's).
    pub name: String,
    /// The key of the tier above's center, which signs its receipts.
    pub above_key: VerifyingKey,
}

/// Forwards this center's events upward.
pub(super) struct Forwarder {
    /// Where to.
    pub(super) upstream: Upstream,
    /// The center's links (its store marks changes: [`Store::forwarding_upward`]).
    pub(super) links: Links,
}

impl Forwarder {
    /// Forwards until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let name = &self.upstream.name;
        let upward = match Upward::open(&self.links.store) {
            Ok(u) => u,
            Err(e) => return warn!("cannot forward upward: {e}"),
        };
        let (client, eventloop) =
            match self.links.client(format!("xl-center-up-{name}"), WINDOW as usize + 100) {
                Ok(c) => c,
                Err(e) => return warn!("cannot forward upward: {e}"),
            };
        let (heard, mut hear) = mpsc::channel(64);
        let listening = tokio::spawn(listen(
            client.clone(),
            eventloop,
            vec![self.links.topics.tier_receipt(name)],
            heard,
            "the broker carrying events upward",
            stop.clone(),
        ));
        let mut state = match Window::new(&upward) {
            Ok(w) => w,
            Err(e) => return warn!("cannot forward upward: {e}"),
        };
        let messages = Messages {
            upward: upward.clone(),
            store: self.links.store.clone(),
            key: self.links.key.clone(),
            name: name.clone(),
            thumbnails: Arc::default(),
        };
        info!(name, acked = state.acked, "forwarding events to the tier above");
        let mut tick = tokio::time::interval(TICK);
        let mut report = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                heard = hear.recv() => match heard {
                    Some(Heard::Publish(p)) => match self.receipt(&p.payload) {
                        Ok(r) => state.receipt(&upward, &r, &self.links.stats).await,
                        Err(why) => warn!("a receipt from above refused: {why}"),
                    },
                    // What was in flight may be lost with the connection.
                    Some(Heard::Connected) => state.rewind(&self.links.stats),
                    None => break,
                },
                _ = tick.tick() => {}
                _ = report.tick() => self.report(&client).await,
            }
            if let Err(e) = self.send(&messages, &client, &mut state).await {
                warn!("forwarding upward: {e}");
            }
        }
        let _ = client.disconnect().await;
        let _ = listening.await;
    }

    /// Numbers new changes and sends what the window lets go.
    async fn send(
        &self,
        messages: &Messages,
        client: &AsyncClient,
        w: &mut Window,
    ) -> Result<(), StoreError> {
        let last = messages.upward.number(WINDOW as usize).await?;
        self.links.stats.backlog.store(last.saturating_sub(w.acked), Ordering::Relaxed);
        if w.next > w.acked + 1 && w.heard.elapsed() > w.wait {
            warn!(
                from = w.acked + 1,
                waited_s = w.wait.as_secs(),
                "no receipt from the tier above: sending again from its last"
            );
            w.wait = (w.wait * 2).min(LONGEST_WAIT);
            w.rewind(&self.links.stats);
        }
        let end = last.min(w.acked + WINDOW);
        while w.next <= end {
            // Pictures are made small off the runtime's threads, a hundred at a time.
            let (messages, seqs) = (messages.clone(), w.next..=end.min(w.next + 99));
            let Ok(made) = tokio::task::spawn_blocking(move || messages.make(seqs)).await else {
                return Ok(());
            };
            for payload in made? {
                let topic = self.links.topics.tier_event(&self.upstream.name);
                // Never waiting for room in the connection's queue: the connection waits for
                // this forwarder to take the receipts it reads, so waiting could stop both.
                // The rest go on a later tick (or the run is stopping).
                if client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_err() {
                    return Ok(());
                }
                self.links.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                w.next += 1;
            }
        }
        Ok(())
    }

    /// Reports the counties' boxes upward: a county center its own, a center with centers
    /// below what they reported (and its own, if it has boxes). Not sent when the connection's
    /// queue is full: the next report follows in a minute.
    async fn report(&self, client: &AsyncClient) {
        let links = self.links.clone();
        let name = self.upstream.name.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let agents = links.fleet.list(&links.keys.agents())?;
            let online = agents.iter().filter(|a| a.online == Some(true)).count() as u32;
            let own = CountyBoxes {
                county: name,
                online,
                total: agents.len() as u32,
                as_of_ms: now_ms(),
            };
            let mut counties = match links.below.is_empty() {
                true => Vec::new(),
                false => FromBelow::open(&links.store)?.boxes()?,
            };
            if own.total > 0 || links.below.is_empty() {
                counties.push(own);
            }
            Ok::<_, StoreError>(counties)
        })
        .await;
        let counties = match counted {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return warn!("cannot count the boxes to report upward: {e}"),
            Err(_) => return,
        };
        let report = TierFleet {
            schema_version: SCHEMA_VERSION as i32,
            origin: self.upstream.name.clone(),
            counties: counties.into_iter().map(Into::into).collect(),
            time_ms: now_ms(),
            signature: Default::default(),
        };
        // Signing fails only on malformed protobuf, which this is not.
        let payload = self
            .links
            .key
            .sign(report.encode_to_vec(), TIER_FLEET_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| report.encode_to_vec());
        let topic = self.links.topics.tier_fleet(&self.upstream.name);
        let _ = client.try_publish(topic, QoS::AtLeastOnce, false, payload);
    }

    /// The receipt in `payload`, if the tier above signed it for this center.
    fn receipt(&self, payload: &[u8]) -> Result<TierReceipt, String> {
        let above = &self.upstream.above_key;
        above
            .verify(payload, TIER_RECEIPT_SIGNATURE_FIELD, &[], "the tier above")
            .map_err(|e| e.to_string())?;
        let r = decode_limited::<TierReceipt>(payload).map_err(|e| e.to_string())?;
        match r.origin == self.upstream.name {
            true => Ok(r),
            false => Err(format!("it is for {:?}", r.origin)),
        }
    }
}

/// Thumbnails made (none: the picture does not decode), by event id and the signed hash of its
/// picture.
type Thumbnails = HashMap<(String, String), Option<Vec<u8>>>;

/// What makes the messages of numbered events: pictures made small once (per picture).
#[derive(Clone)]
struct Messages {
    upward: Upward,
    store: Store,
    key: Arc<SigningKey>,
    name: String,
    /// Thumbnails by event id and the signed hash of its picture.
    thumbnails: Arc<Mutex<Thumbnails>>,
}

impl Messages {
    /// The signed messages of events numbered `seqs`: their records and thumbnails as they are
    /// now.
    fn make(&self, seqs: RangeInclusive<u64>) -> Result<Vec<Vec<u8>>, StoreError> {
        seqs.map(|seq| self.event(seq)).collect()
    }

    /// The signed message of event number `seq`.
    fn event(&self, seq: u64) -> Result<Vec<u8>, StoreError> {
        let record = match self.upward.id_at(seq)? {
            Some(id) => self.store.get(&id)?,
            None => None,
        };
        let thumbnail = match &record {
            Some(r) => self.thumbnail(r)?,
            None => None,
        };
        let thumbnail = thumbnail.unwrap_or_default();
        Ok(signed_event(&self.key, &self.name, seq, record.as_ref(), thumbnail, now_ms()))
    }

    /// The thumbnail of `r`'s picture, if it has one.
    fn thumbnail(&self, r: &AlarmRecord) -> Result<Option<Vec<u8>>, StoreError> {
        let key = (r.id.clone(), r.snapshot_sha256.clone());
        if let Some(made) = self.thumbnails.lock().unwrap_or_else(PoisonError::into_inner).get(&key)
        {
            return Ok(made.clone());
        }
        let made = self.store.snapshot(&r.id)?.and_then(|p| thumbnail(&p));
        let mut thumbnails = self.thumbnails.lock().unwrap_or_else(PoisonError::into_inner);
        // Those of the window sent again over a cut, not more.
        if thumbnails.len() >= 2 * WINDOW as usize {
            thumbnails.clear();
        }
        thumbnails.insert(key, made.clone());
        Ok(made)
    }
}

/// Where the sending stands.
struct Window {
    /// The last number the tier above receipted.
    acked: u64,
    /// The next number to send.
    next: u64,
    /// When a receipt last moved `acked` (or the sending last went back).
    heard: Instant,
    /// How long to wait for one before going back.
    wait: Duration,
    /// When the sending last went back.
    rewound: Instant,
}

impl Window {
    fn new(upward: &Upward) -> Result<Self, StoreError> {
        let acked = upward.acked()?;
        let now = Instant::now();
        Ok(Self { acked, next: acked + 1, heard: now, wait: FIRST_WAIT, rewound: now })
    }

    /// Sends again from the last receipt.
    fn rewind(&mut self, stats: &TierStats) {
        if self.next > self.acked + 1 {
            stats.resends.fetch_add(1, Ordering::Relaxed);
        }
        self.next = self.acked + 1;
        self.heard = Instant::now();
        self.rewound = self.heard;
    }

    /// Takes in receipt `r`.
    async fn receipt(&mut self, upward: &Upward, r: &TierReceipt, stats: &TierStats) {
        match upward.receipted(r.up_to).await {
            Ok(true) => {
                self.acked = r.up_to;
                self.next = self.next.max(r.up_to + 1);
                self.heard = Instant::now();
                self.wait = FIRST_WAIT;
            }
            Ok(false) => {}
            Err(e) => return warn!("cannot keep the tier above's receipt: {e}"),
        }
        // Each event after a lost one says so: going back once answers them all.
        if r.missing && self.next > r.up_to + 1 && self.rewound.elapsed() > MISSING_AGAIN {
            info!(from = self.acked + 1, "the tier above missed an event: sending again");
            self.rewind(stats);
        }
    }
}

/// The signed message forwarding change `seq` of center `origin` at `time_ms`: the event's
/// `record` as it is now (none: deleted) and its thumbnail.
pub fn signed_event(
    key: &SigningKey,
    origin: &str,
    seq: u64,
    record: Option<&AlarmRecord>,
    thumbnail: Vec<u8>,
    time_ms: i64,
) -> Vec<u8> {
    let message = TierEvent {
        schema_version: SCHEMA_VERSION as i32,
        origin: origin.to_owned(),
        seq,
        // Plain fields and strings: serializing cannot fail.
        record_json: record
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .unwrap_or_default(),
        thumbnail_jpeg: thumbnail.into(),
        time_ms,
        signature: Default::default(),
    };
    // Signing fails only on malformed protobuf, which this is not.
    key.sign(message.encode_to_vec(), TIER_EVENT_SIGNATURE_FIELD, &[])
        .unwrap_or_else(|_| message.encode_to_vec())
}
