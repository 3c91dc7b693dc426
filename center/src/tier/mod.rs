//! The tiers of the governance hierarchy: a county center forwards its events upward to the
//! city's center, the city's to the province's; each tier above stores them (metadata and a
//! thumbnail: full pictures and clips stay at the county) in each forwarding center's order,
//! each event once.
//!
//! The way between two tiers is a Mosquitto bridge from the forwarding center's broker to the
//! broker of the tier above, which keeps what it could not deliver through a cut and delivers
//! it in order when the link is back. Above it, the forwarding center numbers its events in a
//! log in its store and sends from the tier above's last receipt again when one goes missing,
//! so not even a broker that loses its queue loses an event (`forward.rs`); the tier above
//! stores the next number only, once, and receipts ([`receive`]). Every message either way is
//! signed by the center that sends it, and the tier above knows each center below by its key
//! (`below.toml`: [`Below`]). A full picture is fetched from the center below on demand, by a
//! request signed by the center above ([`Fetch`]).

mod below;
mod fetch;
mod forward;
mod receive;
mod thumbnail;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use xueliang_proto::signing::SigningKey;
use xueliang_proto::topics::Topics;

use crate::cases::AlarmFeed;
use crate::fleet::{AgentKeys, Fleet};
use crate::ingest::{BrokerConnection, options};
use crate::store::{DeadLetters, Store};
use xueliang_service::tls::TlsError;

pub use below::Below;
pub use fetch::{FETCH_HEADER, Fetch, FetchError};
use forward::Forwarder;
pub use forward::{Upstream, signed_event};
use receive::Receiver;
pub use thumbnail::thumbnail;

/// The tiers' counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct TierStats {
    /// Events sent to the tier above since start (a number sent again counts again).
    pub forwarded: AtomicU64,
    /// Times the forwarder went back to the tier above's last receipt and sent from there.
    pub resends: AtomicU64,
    /// Numbered events the tier above has not receipted yet.
    pub backlog: AtomicU64,
    /// Events from the tier below stored since start.
    pub received: AtomicU64,
    /// Events from the tier below received again (their number was stored before).
    pub duplicates: AtomicU64,
    /// Messages from the tier below refused and dead-lettered since start.
    pub refused: AtomicU64,
}

/// The links to the tiers above and below, which one process of a center keeps.
#[derive(Clone)]
pub struct Links {
    /// Where this center forwards its events, if it does.
    pub upstream: Option<Upstream>,
    /// The centers that forward theirs here (none: it receives nothing).
    pub below: Below,
    /// The center's broker: the bridges to the tiers meet there.
    pub broker: BrokerConnection,
    /// The store (marking changes if this center forwards: [`Store::forwarding_upward`]).
    pub store: Store,
    /// Where refused messages from below go.
    pub dead_letters: DeadLetters,
    /// The consoles' feed, told of what comes from below.
    pub feed: AlarmFeed,
    /// The center's key, which signs what it forwards and receipts.
    pub key: Arc<SigningKey>,
    /// The topics.
    pub topics: Topics,
    /// The links' counters.
    pub stats: Arc<TierStats>,
    /// The center's boxes, counted for the tier above.
    pub fleet: Fleet,
    /// The boxes registered here.
    pub keys: Arc<AgentKeys>,
}

impl Links {
    /// Starts forwarding and receiving, as configured, until `stop`.
    pub fn start(&self, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(upstream) = &self.upstream {
            let forwarder = Forwarder { upstream: upstream.clone(), links: self.clone() };
            tasks.push(tokio::spawn(forwarder.run(stop.clone())));
        }
        if !self.below.is_empty() {
            tasks.push(tokio::spawn(Receiver { links: self.clone() }.run(stop.clone())));
        }
        tasks
    }

    /// A client `id` of the center's broker, in a clean session (a link sends again from its
    /// receipts, not from the broker's memory), taking messages as large as ingest does, with
    /// room for `cap` requests.
    fn client(&self, id: String, cap: usize) -> Result<(AsyncClient, EventLoop), TlsError> {
        let mut opts = options(&self.broker, id)?;
        opts.set_clean_session(true);
        let most = 4 * xueliang_proto::MAX_MESSAGE_BYTES;
        opts.set_max_packet_size(most, most);
        Ok(AsyncClient::new(opts, cap))
    }
}

/// What a tier link's connection brings.
enum Heard {
    /// The broker took the connection (again): what was in flight may be lost.
    Connected,
    /// A message on the link's topics.
    Publish(Publish),
}

/// Polls a tier link's connection until `stop`, subscribing to `topics` on every connection,
/// and hands on what it hears; `broker` names the broker in the log. While `heard` is full the
/// connection is not polled, so its client's queue does not drain: whoever takes from `heard`
/// must never wait for room in that queue (`try_publish`).
async fn listen(
    client: AsyncClient,
    mut eventloop: EventLoop,
    topics: Vec<String>,
    heard: mpsc::Sender<Heard>,
    broker: &'static str,
    stop: CancellationToken,
) {
    let mut down = false;
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = eventloop.poll() => event,
        };
        let news = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                down = false;
                let filters =
                    topics.iter().map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                if client.subscribe_many(filters).await.is_err() {
                    return;
                }
                Heard::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Heard::Publish(p),
            Ok(_) => continue,
            Err(e) => {
                if !down {
                    warn!("{broker}: {e}");
                    down = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if heard.send(news).await.is_err() {
            return;
        }
    }
}
