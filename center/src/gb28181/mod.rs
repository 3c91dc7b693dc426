//! GB/T 28181 upward: the center joins the platforms counties and cities already run as a
//! lower platform (下级平台). It registers with each (digest), keeps the registration alive
//! (keepalives; registered again when they go unanswered or the platform forgets it), answers
//! their catalog, device-info and device-status queries with its cameras as channels
//! (`gb28181.toml`, `mapping.rs`), and reports each new event as a MANSCDP alarm, from a
//! durable queue per platform (`store/reports.rs`), sent until the platform answers.
//!
//! A platform may subscribe to alarms (`SUBSCRIBE` with a `Query`/`Alarm`: priorities and
//! methods); while the subscription lasts its alarms go as `NOTIFY` in it, the others not at
//! all. `sip.rs` is the SIP side (rsipstack), `manscdp.rs` the documents. Live video,
//! playback, PTZ and other subscriptions are not offered.

pub mod manscdp;
pub mod mapping;
mod sip;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::{Transaction, TransactionReceiver};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use xueliang_proto::endpoint::now_ms;
use xueliang_service::backoff::Backoff;

use crate::domain::AlarmRecord;
use crate::fleet::{AgentKeys, AgentView, Fleet};
use crate::routing::Routing;
use crate::store::{Reports, Store};
use crate::watched_file::WatchedFile;
use manscdp::{Device, ReadError};
use mapping::{Channel, Mapping, Platform};
use sip::{Dialog, Sip, SipError, sender, source};

/// Channels per catalog answer: a UDP datagram stays under a common MTU.
const CATALOG_CHUNK: usize = 4;
/// Retries of a failed registration or alarm: doubling from 1 s to 60 s.
const RETRY: Backoff =
    Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60)).with_jitter(0.2, 0.2);
/// New events moved to the platforms' queues at once.
const DISTRIBUTE: usize = 256;

/// A platform link's state, as the fleet page and `/metrics` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlatformStatus {
    /// The platform's name.
    pub name: String,
    /// Its SIP server code.
    pub id: String,
    /// Its address and transport, e.g. `udp 10.0.0.1:5060`.
    pub address: String,
    /// `registering`, `registered` or `unreachable`.
    pub state: String,
    /// Since when (UTC ms).
    pub since_ms: i64,
    /// When a keepalive was last answered (UTC ms), if ever.
    pub last_keepalive_ms: Option<i64>,
    /// Registrations made since start (refreshes included).
    pub registrations: u64,
    /// Keepalives unanswered since start.
    pub keepalives_missed: u64,
    /// Alarms the platform answered since start.
    pub alarms_sent: u64,
    /// Alarms waiting in its queue.
    pub alarms_waiting: u64,
    /// The last failure, if any.
    pub last_error: String,
}

/// What the platforms' links report.
#[derive(Debug, Default)]
pub struct Gb28181Stats {
    platforms: Mutex<Vec<PlatformStatus>>,
    /// Requests from platforms refused (unknown sender, malformed, unsupported) since start.
    pub refused: AtomicU64,
    /// Queries from platforms answered since start.
    pub answered: AtomicU64,
}

impl Gb28181Stats {
    /// Every platform's state, in file order (empty when the center reports to none).
    pub fn platforms(&self) -> Vec<PlatformStatus> {
        self.platforms.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update(&self, i: usize, change: impl FnOnce(&mut PlatformStatus)) {
        if let Some(s) = self.platforms.lock().unwrap_or_else(PoisonError::into_inner).get_mut(i) {
            change(s);
        }
    }

    fn set_state(&self, i: usize, state: &str, error: Option<String>) {
        self.update(i, |s| {
            if s.state != state {
                s.state = state.to_owned();
                s.since_ms = now_ms();
            }
            if let Some(e) = error {
                s.last_error = e;
            }
        });
    }
}

/// The center's part in GB/T 28181, which one process of a county does.
#[derive(Clone)]
pub struct Gb28181 {
    /// This center, its platforms and its channels.
    pub mapping: Arc<Mapping>,
    /// The store (marking new events: [`Store::reporting_national`]).
    pub store: Store,
    /// The routing file: which events go up (`[gb28181]`), and the time zone of alarm times.
    pub routing: Arc<WatchedFile<Routing>>,
    /// The boxes' status: whether a channel is online.
    pub fleet: Fleet,
    /// The registered boxes.
    pub keys: Arc<AgentKeys>,
    /// What the links report.
    pub stats: Arc<Gb28181Stats>,
}

/// One platform's link, shared by its tasks.
struct Link {
    index: usize,
    platform: Platform,
    registered: watch::Sender<bool>,
    /// New events were queued.
    queued: Notify,
    /// The platform's alarm subscription, while it lasts: alarms then go as NOTIFY in it.
    subscription: Mutex<Option<Subscription>>,
}

/// A platform's alarm subscription (`SUBSCRIBE` with a `Query`/`Alarm`).
struct Subscription {
    dialog: Dialog,
    until: Instant,
    filter: manscdp::AlarmFilter,
}

/// What follows the answer to a platform's request.
enum Then {
    Nothing,
    /// The answer to its query.
    Answer(Arc<Link>, manscdp::Received),
    /// Its alarm subscription taken (or ended).
    Subscribe(Arc<Link>, manscdp::Received),
}

/// How an alarm goes to a platform.
enum Route {
    /// By MESSAGE.
    Message,
    /// By NOTIFY in its subscription, which lasts this much more.
    Notify(Box<Dialog>, Duration),
    /// Not at all: its subscription does not ask for it.
    Skip,
}

impl Link {
    /// How `alarm` goes to this link's platform now: in its alarm subscription while one
    /// lasts (if the subscription asks for it), else by MESSAGE.
    fn route(&self, alarm: &manscdp::Alarm) -> Route {
        let mut held = self.subscription.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match held.as_mut() {
            Some(s) if s.until > now => {
                if !s.filter.takes(alarm) {
                    return Route::Skip;
                }
                let dialog = s.dialog.clone();
                s.dialog.cseq += 1;
                Route::Notify(Box::new(dialog), s.until - now)
            }
            Some(_) => {
                *held = None;
                Route::Message
            }
            None => Route::Message,
        }
    }
}

impl Gb28181 {
    /// Starts the links; they run until `stop`. The SIP address is bound in the task, retried
    /// while it is taken.
    pub fn start(&self, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let this = self.clone();
        let stop = stop.clone();
        *self.stats.platforms.lock().unwrap_or_else(PoisonError::into_inner) = self
            .mapping
            .platforms
            .iter()
            .map(|p| PlatformStatus {
                name: p.name.clone(),
                id: p.id.clone(),
                address: format!("{} {}", p.transport.name(), p.address),
                state: "registering".into(),
                since_ms: now_ms(),
                last_keepalive_ms: None,
                registrations: 0,
                keepalives_missed: 0,
                alarms_sent: 0,
                alarms_waiting: 0,
                last_error: String::new(),
            })
            .collect();
        vec![tokio::spawn(async move { this.run(stop).await })]
    }

    async fn run(self, stop: CancellationToken) {
        let mut retries = RETRY.retries();
        let (sip, incoming) = loop {
            match Sip::bind(&self.mapping.center, &stop).await {
                Ok(bound) => break bound,
                Err(e) => {
                    let listen = self.mapping.center.listen;
                    warn!("GB/T 28181: cannot listen for SIP on {listen}: {e}; trying again");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(retries.next_delay()) => {}
                    }
                }
            }
        };
        info!(listen = %self.mapping.center.listen, platforms = self.mapping.platforms.len(), "GB/T 28181: SIP listening");
        let reports = match Reports::open(&self.store) {
            Ok(r) => r,
            Err(e) => return warn!("GB/T 28181: cannot open the alarm queues: {e}"),
        };
        let links: Vec<Arc<Link>> = self
            .mapping
            .platforms
            .iter()
            .enumerate()
            .map(|(index, platform)| {
                Arc::new(Link {
                    index,
                    platform: platform.clone(),
                    registered: watch::Sender::new(false),
                    queued: Notify::new(),
                    subscription: Mutex::new(None),
                })
            })
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        let all = Arc::new(links.clone());
        tasks.spawn(self.clone().answer(sip.clone(), incoming, all, stop.clone()));
        tasks.spawn(self.clone().distribute(reports.clone(), links.clone(), stop.clone()));
        for link in links {
            tasks.spawn(self.clone().keep_registered(sip.clone(), link.clone(), stop.clone()));
            tasks.spawn(self.clone().send_alarms(sip.clone(), reports.clone(), link, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Registers with `link`'s platform, keeps the registration alive and refreshes it at two
    /// thirds of its lifetime; registers again after `keepalive_misses` unanswered keepalives
    /// or one the platform refuses (it forgot the center: restarted). Unregisters at `stop`.
    async fn keep_registered(self, sip: Arc<Sip>, link: Arc<Link>, stop: CancellationToken) {
        let p = &link.platform;
        let (i, stats) = (link.index, &self.stats);
        let expires = u32::try_from(p.register_expires.as_secs()).unwrap_or(u32::MAX);
        let mut retries = RETRY.retries();
        let Ok(mut registration) = sip.registration(p) else {
            return warn!(platform = %p.name, "GB/T 28181: the center's or the platform's code is no SIP address");
        };
        let mut sn = 0u64;
        'register: loop {
            let granted = match sip.register(&mut registration, p, expires).await {
                Ok(granted) => granted,
                Err(e) => {
                    warn!(platform = %p.name, "GB/T 28181: registration failed: {e}");
                    link.registered.send_replace(false);
                    stats.set_state(i, "unreachable", Some(e.to_string()));
                    registration = sip.registration(p).unwrap_or(registration);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(retries.next_delay()) => continue,
                    }
                }
            };
            retries.reset();
            if !*link.registered.borrow() {
                info!(platform = %p.name, granted_s = granted.as_secs(), "GB/T 28181: registered");
            }
            stats.set_state(i, "registered", None);
            stats.update(i, |s| s.registrations += 1);
            link.registered.send_replace(true);
            let refresh = Instant::now() + (granted * 2 / 3).max(Duration::from_secs(5));
            let mut misses = 0;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        // Best effort, briefly: the platform then shows the center offline at once.
                        let unregister = sip.register(&mut registration, p, 0);
                        let _ = tokio::time::timeout(Duration::from_secs(2), unregister).await;
                        return;
                    }
                    _ = tokio::time::sleep(p.keepalive) => {}
                }
                if Instant::now() >= refresh {
                    continue 'register;
                }
                sn += 1;
                let body =
                    manscdp::encode(&manscdp::keepalive(sn, &self.mapping.center.id), p.charset);
                match sip.message(p, body).await {
                    Ok(()) => {
                        misses = 0;
                        stats.update(i, |s| s.last_keepalive_ms = Some(now_ms()));
                    }
                    Err(e) => {
                        misses += 1;
                        stats.update(i, |s| s.keepalives_missed += 1);
                        let refused = matches!(e, SipError::Refused(..));
                        warn!(platform = %p.name, misses, "GB/T 28181: keepalive failed: {e}");
                        if refused || misses >= p.keepalive_misses {
                            link.registered.send_replace(false);
                            // A platform that lost the center lost its subscriptions too.
                            *link.subscription.lock().unwrap_or_else(PoisonError::into_inner) =
                                None;
                            stats.set_state(i, "unreachable", Some(e.to_string()));
                            registration = sip.registration(p).unwrap_or(registration);
                            continue 'register;
                        }
                    }
                }
            }
        }
    }

    /// Moves new events to the queues of the platforms they go to, as they are stored.
    async fn distribute(self, reports: Reports, links: Vec<Arc<Link>>, stop: CancellationToken) {
        let ids: Vec<String> = links.iter().map(|l| l.platform.id.clone()).collect();
        loop {
            let routing = self.routing.current();
            let choice = routing.report_upward();
            let goes = |r: &AlarmRecord| match manscdp::alarm_kind(&r.kind) {
                Some(_) if choice.takes(&r.kind, &r.severity) => ids.clone(),
                _ => Vec::new(),
            };
            let moved = reports.distribute(DISTRIBUTE, goes).await;
            for link in &links {
                let waiting = reports.waiting(&link.platform.id) as u64;
                self.stats.update(link.index, |s| s.alarms_waiting = waiting);
            }
            match moved {
                Ok(0) => {}
                Ok(_) => {
                    links.iter().for_each(|l| l.queued.notify_one());
                    continue;
                }
                Err(e) => warn!("GB/T 28181: cannot queue new events: {e}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Sends the alarms queued for `link`'s platform, in order, each until it answers, while
    /// the center is registered there.
    async fn send_alarms(
        self,
        sip: Arc<Sip>,
        reports: Reports,
        link: Arc<Link>,
        stop: CancellationToken,
    ) {
        let p = &link.platform;
        let mut registered = link.registered.subscribe();
        let mut retries = RETRY.retries();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = registered.wait_for(|r| *r) => if r.is_err() { return },
            }
            let head = match reports.head(&p.id) {
                Ok(head) => head,
                Err(e) => {
                    warn!("GB/T 28181: cannot read the queue of {}: {e}", p.name);
                    None
                }
            };
            let Some(head) = head else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = link.queued.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            };
            let record = match self.store.get(&head.id) {
                Ok(record) => record,
                Err(e) => {
                    warn!("GB/T 28181: cannot read event {}: {e}", head.id);
                    None
                }
            };
            let outcome = match record.and_then(|r| self.alarm(head.seq, &r)) {
                // Deleted meanwhile, or unreadable: nothing to say.
                None => Ok(()),
                Some(alarm) => {
                    let body = manscdp::encode(&manscdp::alarm(&alarm), p.charset);
                    match link.route(&alarm) {
                        Route::Message => sip.message(p, body).await,
                        Route::Notify(dialog, left) => sip.notify(p, &dialog, left, body).await,
                        Route::Skip => Ok(()),
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    retries.reset();
                    if let Err(e) = reports.sent(&p.id, &head).await {
                        warn!("GB/T 28181: cannot mark event {} sent: {e}", head.id);
                    }
                    let waiting = reports.waiting(&p.id) as u64;
                    self.stats.update(link.index, |s| {
                        s.alarms_sent += 1;
                        s.alarms_waiting = waiting;
                    });
                }
                Err(e) => {
                    warn!(platform = %p.name, event = %head.id, "GB/T 28181: alarm not answered: {e}");
                    self.stats.update(link.index, |s| s.last_error = e.to_string());
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(retries.next_delay()) => {}
                    }
                }
            }
        }
    }

    /// The alarm document of event `r`, numbered `sn`, if its kind is reported at all.
    fn alarm(&self, sn: u64, r: &AlarmRecord) -> Option<manscdp::Alarm> {
        let channel = self.mapping.channel(&r.agent_id, &r.camera_id);
        let kind = manscdp::alarm_kind(&r.kind)?;
        let camera =
            channel.map_or_else(|| format!("{}/{}", r.agent_id, r.camera_id), |c| c.name.clone());
        let objects = r.detections.len();
        let objects = if objects > 0 { format!("，{objects} 个目标") } else { String::new() };
        Some(manscdp::Alarm {
            sn,
            device_id: channel.map_or_else(|| self.mapping.center.id.clone(), |c| c.id.clone()),
            priority: manscdp::priority(&r.severity),
            kind,
            time: self.local_time(r.event_time_ms),
            description: format!(
                "{}（{}）：{camera}{objects}；事件 {}",
                kind.label,
                manscdp::severity_label(&r.severity),
                r.id
            ),
            position: channel.and_then(|c| c.position),
        })
    }

    /// `ms` as local time `yyyy-MM-ddTHH:mm:ss` in the routing file's time zone.
    fn local_time(&self, ms: i64) -> String {
        let tz = self.routing.current().time_zone().clone();
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(tz).strftime("%Y-%m-%dT%H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// The boxes as the fleet last heard from them (none if the store fails).
    fn boxes(&self) -> Vec<AgentView> {
        self.fleet.list(&self.keys.agents()).unwrap_or_default()
    }

    /// Whether camera `c` is online among `boxes`: its box online, and the camera working by
    /// the box's last health report (before its first, the camera is not known to work).
    fn online(boxes: &[AgentView], c: &Channel) -> bool {
        boxes.iter().find(|a| a.agent_id == c.agent_id).is_some_and(|a| {
            a.online == Some(true)
                && a.health.as_ref().is_some_and(|h| {
                    h.cameras.iter().any(|k| k.camera_id == c.camera_id && k.online)
                })
        })
    }

    /// Answers what platforms send, each request in a task of its own.
    async fn answer(
        self,
        sip: Arc<Sip>,
        mut incoming: TransactionReceiver,
        links: Arc<Vec<Arc<Link>>>,
        stop: CancellationToken,
    ) {
        loop {
            let tx = tokio::select! {
                _ = stop.cancelled() => return,
                tx = incoming.recv() => match tx { Some(tx) => tx, None => return },
            };
            let (this, sip, links) = (self.clone(), sip.clone(), links.clone());
            tokio::spawn(async move { this.answer_one(sip, &links, tx).await });
        }
    }

    async fn answer_one(self, sip: Arc<Sip>, links: &[Arc<Link>], mut tx: Transaction) {
        // A platform is known by its code and by the address it sends from.
        let (from, ip) = (sender(&tx.original), source(&tx.original));
        let link = links.iter().find(|l| {
            from.as_deref() == Some(l.platform.id.as_str()) && ip == Some(l.platform.address.ip())
        });
        let refuse = |why: &str| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            warn!(from = ?from, method = %tx.original.method, "GB/T 28181: refused: {why}");
        };
        let unreadable = |e: ReadError| {
            refuse(&e.to_string());
            match e {
                ReadError::TooBig(_) => StatusCode::RequestEntityTooLarge,
                ReadError::Encoding(_) => StatusCode::UnsupportedMediaType,
                _ => StatusCode::BadRequest,
            }
        };
        let (status, then) = match (&tx.original.method, link) {
            (Method::Ack | Method::Cancel, _) => return,
            (Method::Options, Some(_)) => (StatusCode::OK, Then::Nothing),
            (_, None) => {
                refuse(&format!("not a platform of gb28181.toml (from {ip:?})"));
                (StatusCode::Forbidden, Then::Nothing)
            }
            (Method::Message, Some(l)) => match manscdp::read(&tx.original.body) {
                Ok(doc) => match self.query_status(&doc) {
                    StatusCode::OK => (StatusCode::OK, Then::Answer(l.clone(), doc)),
                    other => {
                        refuse(&format!("{} {} for {}", doc.root, doc.cmd_type, doc.device_id));
                        (other, Then::Nothing)
                    }
                },
                Err(e) => (unreadable(e), Then::Nothing),
            },
            (Method::Subscribe, Some(l)) => match manscdp::read(&tx.original.body) {
                Ok(doc) if doc.root == "Query" && doc.cmd_type == "Alarm" => {
                    (StatusCode::OK, Then::Subscribe(l.clone(), doc))
                }
                Ok(doc) => {
                    refuse(&format!("a subscription to {} is not offered", doc.cmd_type));
                    (StatusCode::BadEvent, Then::Nothing)
                }
                Err(e) => (unreadable(e), Then::Nothing),
            },
            (method, Some(_)) => {
                refuse(&format!("{method} is not offered (no live video or playback)"));
                (StatusCode::MethodNotAllowed, Then::Nothing)
            }
        };
        let mut headers = vec![Header::Allow("MESSAGE, SUBSCRIBE, OPTIONS".into())];
        let mut body = None;
        let mut subscription = None;
        if let Then::Subscribe(link, doc) = &then {
            // Its own Expires, at most a day; 0 ends it.
            let asked = tx.original.expires_header().and_then(|e| e.value().trim().parse().ok());
            let expires: u64 = asked.unwrap_or(3600).min(86_400);
            headers.push(Header::Expires(expires.to_string().as_str().into()));
            headers.push(Header::ContentType(sip::MANSCDP.into()));
            let xml = manscdp::subscribed(doc.sn, &self.mapping.center.id, "Alarm");
            body = Some(manscdp::encode(&xml, link.platform.charset));
            subscription = Some((link.clone(), manscdp::AlarmFilter::of(doc), expires));
        }
        if let Err(e) = tx.reply_with(status, headers, body).await {
            warn!("GB/T 28181: cannot answer a request: {e}");
            return;
        }
        match (then, subscription) {
            (Then::Answer(link, doc), _) => self.answer_query(&sip, &link.platform, &doc).await,
            (Then::Subscribe(..), Some((link, filter, expires))) => {
                let mut held = link.subscription.lock().unwrap_or_else(PoisonError::into_inner);
                *held = match (expires, Dialog::of(&tx.original)) {
                    (1.., Some(dialog)) => {
                        let until = Instant::now() + Duration::from_secs(expires);
                        info!(platform = %link.platform.name, expires, ?filter, "GB/T 28181: alarms subscribed");
                        Some(Subscription { dialog, until, filter })
                    }
                    _ => None,
                };
            }
            _ => {}
        }
    }

    /// How a MESSAGE carrying `doc` is answered: 200 for a query this center answers or a
    /// platform's notification or response; 404 for a device it does not have; 488 for a
    /// command it does not carry out.
    fn query_status(&self, doc: &manscdp::Received) -> StatusCode {
        let known = doc.device_id == self.mapping.center.id
            || self.mapping.channels.iter().any(|c| c.id == doc.device_id);
        match (doc.root.as_str(), doc.cmd_type.as_str()) {
            ("Notify" | "Response", _) => StatusCode::OK,
            ("Query", "Catalog" | "DeviceInfo" | "DeviceStatus") if known => StatusCode::OK,
            ("Query", "Catalog" | "DeviceInfo" | "DeviceStatus") => StatusCode::NotFound,
            _ => StatusCode::NotAcceptableHere,
        }
    }

    /// Sends the answer to query `doc` from `platform`, after the 200 to its MESSAGE.
    async fn answer_query(&self, sip: &Sip, platform: &Platform, doc: &manscdp::Received) {
        if doc.root != "Query" {
            return;
        }
        let center = Device { id: &self.mapping.center.id, name: &self.mapping.center.name };
        let channel = self.mapping.channels.iter().find(|c| c.id == doc.device_id);
        let documents = match (doc.cmd_type.as_str(), channel) {
            ("Catalog", _) => {
                let (channels, boxes) = (&self.mapping.channels, self.boxes());
                let online: Vec<(&Channel, bool)> =
                    channels.iter().map(|c| (c, Self::online(&boxes, c))).collect();
                let chunks: Vec<&[(&Channel, bool)]> = online.chunks(CATALOG_CHUNK).collect();
                if chunks.is_empty() {
                    vec![manscdp::catalog(doc.sn, center, 0, &[])]
                } else {
                    chunks
                        .iter()
                        .map(|c| manscdp::catalog(doc.sn, center, channels.len(), c))
                        .collect()
                }
            }
            ("DeviceInfo", None) => {
                vec![manscdp::device_info(doc.sn, center, "xl-center", self.mapping.channels.len())]
            }
            ("DeviceInfo", Some(c)) => {
                vec![manscdp::device_info(
                    doc.sn,
                    Device { id: &c.id, name: &c.name },
                    "xl-agent",
                    1,
                )]
            }
            ("DeviceStatus", c) => {
                let online = c.is_none_or(|c| Self::online(&self.boxes(), c));
                vec![manscdp::device_status(
                    doc.sn,
                    &doc.device_id,
                    online,
                    &self.local_time(now_ms()),
                )]
            }
            _ => return,
        };
        for xml in documents {
            if let Err(e) = sip.message(platform, manscdp::encode(&xml, platform.charset)).await {
                warn!(platform = %platform.name, "GB/T 28181: answer to {} not taken: {e}", doc.cmd_type);
                return;
            }
        }
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
    }
}
