//! Webhook delivery: when an alarm is dispatched to a responder unit with a webhook URL, the
//! center POSTs a JSON document to it. Links to rural police stations fail, so deliveries are
//! kept in the database and retried with exponential backoff until delivered or given up;
//! a restart resumes what was pending.
//!
//! Three trees: `webhooks` (dispatch id → entry, kept after delivery for the API),
//! `webhooks_due` (next attempt time + dispatch id, pending entries only), so the worker finds
//! the next due delivery without scanning every delivery ever made, and `webhooks_failed`
//! (dispatch ids given up and not yet raised to the duty officers: supervision takes them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use xueliang_service::backoff::Backoff;

use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::hex;

use crate::store::{Store, StoreError, write};

/// The id of alarm `alarm_id`'s dispatch to `unit` (one per unit and alarm).
pub fn dispatch_id(alarm_id: &str, unit: &str) -> String {
    format!("{alarm_id}~{unit}")
}

/// The alarm a dispatch id names (the inverse of [`dispatch_id`]: unit ids hold no `~`).
pub fn dispatched_alarm(dispatch_id: &str) -> &str {
    dispatch_id.rsplit_once('~').map_or(dispatch_id, |(alarm, _)| alarm)
}

/// Deliveries in flight at once, so one slow (timing-out) station does not hold up the others.
const CONCURRENCY: usize = 4;
/// Pause after the database failed, so a broken store is not hammered in a loop.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How often and how patiently a delivery is attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; it doubles after each further failure.
    pub first: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
    /// Attempts before the delivery is given up.
    pub attempts: u32,
    /// Time allowed for one request, response included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(2),
            max: Duration::from_secs(300),
            attempts: 20,
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay after failed attempt `n` (1-based): `first · 2^(n-1)`, at most `max`, plus up to
    /// 10 % jitter so deliveries that failed together (one station's link down) do not all
    /// retry in the same instant.
    fn backoff(&self, n: u32) -> Duration {
        Backoff::doubling(self.first, self.max).with_jitter(0.0, 0.1).delay(n.saturating_sub(1))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; another attempt is scheduled.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed; given up.
    Failed,
}

/// A delivery as the API shows it under its dispatch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// The dispatch it delivers (also the `Idempotency-Key`).
    pub dispatch_id: String,
    /// The responder unit.
    pub unit_id: String,
    /// The webhook URL.
    pub url: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Why the last attempt failed, e.g. `HTTP 503 Service Unavailable`.
    pub last_error: Option<String>,
    /// When the next attempt is due (UTC ms), while pending.
    pub next_attempt_ms: Option<i64>,
    /// When it was delivered (UTC ms).
    pub delivered_ms: Option<i64>,
}

/// A stored delivery: its status plus what is sent.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    status: WebhookStatus,
    /// HMAC key, kept beside the request it signs (same database as the unit registry).
    secret: Option<String>,
    /// The body serialized once at enqueue time, so every retry sends identical bytes.
    body: String,
}

/// The durable webhook queue and its worker.
#[derive(Debug, Clone)]
pub struct Webhooks {
    entries: crate::store::Tree,
    due: crate::store::Tree,
    failed: crate::store::Tree,
    policy: RetryPolicy,
    wake: Arc<Notify>,
}

/// Due-index key: next attempt time (big-endian, so keys sort by time), then the dispatch id.
fn due_key(time_ms: i64, id: &str) -> Vec<u8> {
    let mut k = (time_ms.max(0) as u64).to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn corrupt(id: &str, e: impl ToString) -> StoreError {
    StoreError::Corrupt { id: id.to_owned(), message: e.to_string() }
}

fn entry_json(e: &Entry) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(e).map_err(|err| corrupt(&e.status.dispatch_id, err))
}

/// The error in a few words: what failed, then the innermost cause (e.g. "Connection refused").
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if e.is_connect() { "connect" } else { "request" };
    format!("{what}: {cause}")
}

impl Webhooks {
    /// Opens the deliveries kept in `store`'s database.
    pub fn open(store: &Store, policy: RetryPolicy) -> Result<Self, StoreError> {
        let (entries, due) = (store.open_tree("webhooks")?, store.open_tree("webhooks_due")?);
        let failed = store.open_tree("webhooks_failed")?;
        Ok(Self { entries, due, failed, policy, wake: Arc::new(Notify::new()) })
    }

    /// Queues a POST of `body` to `url` for `dispatch_id` (unique; queuing the same id again is
    /// a no-op), signed with `secret` when given. Durable once the store is flushed (the caller
    /// flushes); wakes the worker.
    pub fn enqueue(
        &self,
        dispatch_id: &str,
        unit_id: &str,
        url: &str,
        secret: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let (dispatch, unit, url) = (dispatch_id.to_owned(), unit_id.to_owned(), url.to_owned());
        let status = WebhookStatus {
            dispatch_id: dispatch,
            unit_id: unit,
            url,
            state: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_ms: Some(now),
            delivered_ms: None,
        };
        let entry = Entry { status, secret: secret.map(str::to_owned), body: body.to_string() };
        let json = entry_json(&entry)?;
        let key = due_key(now, dispatch_id);
        write(&[&self.entries, &self.due], |t| {
            let (entries, due) = (&t[0], &t[1]);
            if entries.get(dispatch_id.as_bytes())?.is_none() {
                entries.insert(dispatch_id.as_bytes(), json.as_slice())?;
                due.insert(key.as_slice(), &[])?;
            }
            Ok(())
        })?;
        self.wake.notify_one();
        Ok(())
    }

    /// The delivery of `dispatch_id`, if one was queued.
    pub fn status(&self, dispatch_id: &str) -> Result<Option<WebhookStatus>, StoreError> {
        let Some(bytes) = self.entries.get(dispatch_id.as_bytes())? else { return Ok(None) };
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| corrupt(dispatch_id, e))?;
        Ok(Some(entry.status))
    }

    /// Deliveries given up and not yet raised (see [`Webhooks::raised`]), oldest id first.
    pub fn given_up(&self) -> Result<Vec<WebhookStatus>, StoreError> {
        let mut out = Vec::new();
        for key in self.failed.iter().keys() {
            let id = String::from_utf8_lossy(&key?).into_owned();
            match self.status(&id)? {
                Some(status) => out.push(status),
                None => self.raised(&id)?,
            }
        }
        Ok(out)
    }

    /// Marks the given-up delivery of `dispatch_id` raised (durable with the store's next flush).
    pub fn raised(&self, dispatch_id: &str) -> Result<(), StoreError> {
        self.failed.remove(dispatch_id.as_bytes())?;
        Ok(())
    }

    /// Deletes the deliveries of alarms `stored` says are gone (their bodies hold the alarm,
    /// so they go with it, delivered or not); returns how many.
    pub fn sweep(
        &self,
        stored: impl Fn(&str) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let mut swept = 0;
        for item in self.entries.iter() {
            let (key, bytes) = item?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let alarm = dispatched_alarm(&id);
            if stored(alarm)? {
                continue;
            }
            let next = serde_json::from_slice::<Entry>(&bytes)
                .ok()
                .and_then(|e| e.status.next_attempt_ms)
                .map(|t| due_key(t, &id));
            write(&[&self.entries, &self.due, &self.failed], |t| {
                let (entries, due, failed) = (&t[0], &t[1], &t[2]);
                entries.remove(key.as_ref())?;
                failed.remove(key.as_ref())?;
                if let Some(next) = &next {
                    due.remove(next.as_slice())?;
                }
                Ok(())
            })?;
            swept += 1;
        }
        Ok(swept)
    }

    /// Delivers until `shutdown`: pending deliveries whose time has come, oldest first; after a
    /// restart, what was pending is resumed.
    pub async fn run(self, shutdown: CancellationToken) {
        let client = reqwest::Client::builder()
            .timeout(self.policy.timeout)
            .user_agent(concat!("xueliang-center/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would turn into a GET: treat 3xx as a failure instead.
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                return tracing::error!("webhooks: no HTTP client, nothing is delivered: {e}");
            }
        };
        let mut tasks = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            let now = now_ms();
            let mut next_wake = None;
            for item in self.due.iter() {
                if tasks.len() >= CONCURRENCY {
                    break;
                }
                let key = match item {
                    Ok((key, _)) => key,
                    Err(e) => {
                        tracing::error!("webhooks: reading the queue: {e}");
                        next_wake = Some(now + STORE_RETRY.as_millis() as i64);
                        break;
                    }
                };
                let Some((time, id)) = key.split_first_chunk::<8>() else { continue };
                let time = i64::try_from(u64::from_be_bytes(*time)).unwrap_or(i64::MAX);
                if time > now {
                    next_wake = Some(time);
                    break;
                }
                let id = String::from_utf8_lossy(id).into_owned();
                if in_flight.values().any(|v| *v == id) {
                    continue;
                }
                let (this, client, stop, task_id) =
                    (self.clone(), client.clone(), shutdown.clone(), id.clone());
                let handle = tasks.spawn(async move {
                    if let Err(e) = this.attempt(&client, &key, &task_id, &stop).await {
                        tracing::error!("webhooks: recording a delivery: {e}");
                        tokio::time::sleep(STORE_RETRY).await; // not straight back to a failing store
                    }
                });
                in_flight.insert(handle.id(), id);
            }
            // Idle: look again hourly anyway, cheaply, in case the clock jumped.
            let wait = next_wake.map_or(Duration::from_secs(3600), |t| {
                Duration::from_millis((t - now_ms()).max(0) as u64)
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(done) = tasks.join_next_with_id() => {
                    let id = match done { Ok((id, ())) => id, Err(e) => e.id() };
                    in_flight.remove(&id);
                }
            }
        }
        // Attempts stop at their request (they are made again after a restart, with the same
        // Idempotency-Key) but never in the middle of recording, and hold the database till done.
        while tasks.join_next().await.is_some() {}
    }

    /// Makes one attempt at the delivery whose due-index key is `key`, and records the outcome.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        key: &[u8],
        id: &str,
        stop: &CancellationToken,
    ) -> Result<(), StoreError> {
        let mut entry =
            match self.entries.get(id.as_bytes())?.map(|v| serde_json::from_slice::<Entry>(&v)) {
                Some(Ok(e)) if e.status.state == DeliveryState::Pending => e,
                other => {
                    // Nothing deliverable behind this key: drop it rather than retry it forever.
                    if let Some(Err(e)) = other {
                        tracing::error!(dispatch = %id, "webhooks: corrupt delivery dropped: {e}");
                    }
                    self.due.remove(key)?;
                    return Ok(());
                }
            };
        let result = tokio::select! {
            r = self.post(client, &entry) => r,
            _ = stop.cancelled() => return Ok(()),
        };
        let s = &mut entry.status;
        s.attempts += 1;
        let now = now_ms();
        s.next_attempt_ms = None;
        match result {
            Ok(()) => {
                s.state = DeliveryState::Delivered;
                s.delivered_ms = Some(now);
                tracing::info!(unit = %s.unit_id, dispatch = %id, attempt = s.attempts, "webhook delivered");
            }
            Err(error) => {
                tracing::warn!(unit = %s.unit_id, dispatch = %id, attempt = s.attempts, %error, "webhook failed");
                if s.attempts >= self.policy.attempts {
                    s.state = DeliveryState::Failed;
                } else {
                    s.next_attempt_ms =
                        Some(now + self.policy.backoff(s.attempts).as_millis() as i64);
                }
                s.last_error = Some(error);
            }
        }
        let json = entry_json(&entry)?;
        let next = entry.status.next_attempt_ms.map(|t| due_key(t, id));
        let given_up = entry.status.state == DeliveryState::Failed;
        write(&[&self.entries, &self.due, &self.failed], |t| {
            let (entries, due, failed) = (&t[0], &t[1], &t[2]);
            due.remove(key)?;
            if let Some(next) = &next {
                due.insert(next.as_slice(), &[])?;
            }
            if given_up {
                failed.insert(id.as_bytes(), &[])?;
            }
            entries.insert(id.as_bytes(), json.as_slice())?;
            Ok(())
        })?;
        self.entries.flush().await?;
        Ok(())
    }

    /// One POST: `Ok` on a 2xx answer, otherwise a short reason.
    async fn post(&self, client: &reqwest::Client, entry: &Entry) -> Result<(), String> {
        let mut request = client
            .post(&entry.status.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &entry.status.dispatch_id)
            .body(entry.body.clone());
        if let Some(secret) = &entry.secret {
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
                entry.body.as_bytes(),
            );
            request =
                request.header("X-Xueliang-Signature", format!("sha256={}", hex(tag.as_ref())));
        }
        let response = request.send().await.map_err(|e| describe(&e, self.policy.timeout))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("HTTP {s}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
            attempts,
            timeout: Duration::from_secs(2),
        }
    }

    /// Serves `/hook` on `listener`, answering the n-th request (1-based) with `status(n)`.
    fn serve(listener: tokio::net::TcpListener, status: fn(usize) -> u16) -> Seen {
        let seen = Seen::default();
        let s = seen.clone();
        let hook = move |headers: HeaderMap, body: Bytes| async move {
            let mut seen = s.lock().unwrap();
            seen.push((headers, body));
            StatusCode::from_u16(status(seen.len())).unwrap()
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(hook));
        tokio::spawn(async move { axum::serve(listener, app).await });
        seen
    }

    /// A hook server on a free port, its requests and URL.
    async fn hook(status: fn(usize) -> u16) -> (Seen, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        (serve(l, status), url)
    }

    fn start(
        store: &Store,
        policy: RetryPolicy,
    ) -> (Webhooks, CancellationToken, tokio::task::JoinHandle<()>) {
        let w = Webhooks::open(store, policy).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(w.clone().run(stop.clone()));
        (w, stop, task)
    }

    async fn wait_for(
        w: &Webhooks,
        id: &str,
        done: impl Fn(&WebhookStatus) -> bool,
    ) -> WebhookStatus {
        for _ in 0..500 {
            if let Some(s) = w.status(id).unwrap().filter(|s| done(s)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{id}: {:?}", w.status(id).unwrap());
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_at_most_ten_percent_jitter() {
        let p = policy(5);
        for (n, base) in [(1, 50), (2, 100), (3, 200), (4, 200), (40, 200)] {
            let d = p.backoff(n).as_micros();
            assert!((base * 1000..=base * 1100).contains(&d), "attempt {n}: {d} µs");
        }
    }

    #[tokio::test]
    async fn retries_until_delivered_with_the_same_signed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let (seen, url) = hook(|n| if n <= 2 { 503 } else { 200 }).await;
        let (w, _, _) = start(&store, policy(5));
        w.enqueue(
            "d1",
            "police-3",
            &url,
            Some("s3cret"),
            &serde_json::json!({"alarm": "a1", "note": "水库"}),
        )
        .unwrap();
        let s = wait_for(&w, "d1", |s| s.state != DeliveryState::Pending).await;
        assert_eq!((s.state, s.attempts, s.next_attempt_ms), (DeliveryState::Delivered, 3, None));
        assert_eq!(s.last_error.as_deref(), Some("HTTP 503 Service Unavailable"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        for (headers, body) in seen.iter() {
            assert_eq!(body, &seen[0].1);
            assert_eq!(
                (&headers["idempotency-key"], &headers["content-type"]),
                (&"d1".parse().unwrap(), &"application/json".parse().unwrap())
            );
            assert!(headers["user-agent"].to_str().unwrap().starts_with("xueliang-center/"));
            let sig =
                headers["x-xueliang-signature"].to_str().unwrap().strip_prefix("sha256=").unwrap();
            let tag: Vec<u8> = (0..sig.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&sig[i..i + 2], 16).unwrap())
                .collect();
            hmac::verify(&key, body, &tag).unwrap();
        }
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen[0].1).unwrap()["note"],
            "水库"
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let (seen, url) = hook(|_| 500).await;
        let (w, _, _) = start(&store, policy(3));
        w.enqueue("d2", "township-1", &url, None, &serde_json::json!({})).unwrap();
        let s = wait_for(&w, "d2", |s| s.state != DeliveryState::Pending).await;
        assert_eq!((s.state, s.attempts, s.next_attempt_ms), (DeliveryState::Failed, 3, None));
        assert!(s.last_error.as_deref().unwrap().contains("500"), "{s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert!(!seen.lock().unwrap()[0].0.contains_key("x-xueliang-signature"));
        let given_up: Vec<String> =
            w.given_up().unwrap().into_iter().map(|s| s.dispatch_id).collect();
        assert_eq!(given_up, ["d2"], "waiting to be raised to the duty officers");
        w.raised("d2").unwrap();
        assert!(w.given_up().unwrap().is_empty());
        assert_eq!(w.sweep(|_| Ok(true)).unwrap(), 0, "kept while its alarm is");
        assert_eq!(w.sweep(|_| Ok(false)).unwrap(), 1, "gone with its alarm");
        assert!(w.status("d2").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_pending_delivery_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l); // nothing listens: connection refused
        {
            let store = Store::for_test(dir.path()).unwrap();
            let (w, stop, task) = start(&store, policy(20));
            w.enqueue(
                "d3",
                "patrol-9",
                &format!("http://{addr}/hook"),
                None,
                &serde_json::json!({"n": 3}),
            )
            .unwrap();
            store.flush().await.unwrap();
            let s = wait_for(&w, "d3", |s| s.attempts >= 1).await;
            assert_eq!(s.state, DeliveryState::Pending);
            assert!(s.last_error.as_deref().unwrap().contains("refused"), "{s:?}");
            stop.cancel();
            task.await.unwrap();
        }
        let store = Store::for_test(dir.path()).unwrap();
        let seen = serve(tokio::net::TcpListener::bind(addr).await.unwrap(), |_| 204);
        let (w, _, _) = start(&store, policy(20));
        let s = wait_for(&w, "d3", |s| s.state == DeliveryState::Delivered).await;
        assert!(s.attempts >= 2);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_same_dispatch_is_sent_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let (seen, url) = hook(|_| 200).await;
        let (w, _, _) = start(&store, policy(5));
        for v in [1, 2] {
            w.enqueue("d4", "police-1", &url, None, &serde_json::json!({ "v": v })).unwrap();
        }
        wait_for(&w, "d4", |s| s.state == DeliveryState::Delivered).await;
        w.enqueue("d4", "police-1", &url, None, &serde_json::json!({"v": 3})).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1.as_ref(), br#"{"v":1}"#);
    }
}
