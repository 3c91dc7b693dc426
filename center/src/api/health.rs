//! `/healthz`: whether the center does its work, for monitors and load balancers. It checks
//! what stops alarms arriving: a store that no longer writes (a full disk), a lost broker
//! connection, and ingest that has publishes waiting but finishes no batch.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use xueliang_proto::endpoint::now_ms;

use super::ApiState;

/// Ingest with publishes waiting and no batch finished for this long is stalled.
const STALLED_MS: i64 = 60_000;

/// `GET /healthz`: `ok` and one line per check (200), or `failing` and the same lines (503).
pub(super) async fn healthz(State(state): State<ApiState>) -> Response {
    let health = state.store.health();
    let stats = &state.stats;
    let mut failing = false;
    let store = match health.write_error() {
        Some(e) => format!("cannot write: {e}"),
        None if health.full() => "disk full: alarms wait on their boxes".to_owned(),
        None => "ok".to_owned(),
    };
    failing |= store != "ok";
    let broker = match stats.connected.load(Ordering::Relaxed) {
        true => "connected",
        false => {
            failing = true;
            "disconnected"
        }
    };
    let waiting = stats.waiting.load(Ordering::Relaxed);
    let done = stats.batch_done_ms.load(Ordering::Relaxed);
    let idle_ms = if done == 0 { 0 } else { now_ms() - done };
    let ingest = if waiting > 0 && idle_ms > STALLED_MS {
        failing = true;
        format!("stalled: {waiting} waiting, no batch for {} s", idle_ms / 1000)
    } else {
        "ok".to_owned()
    };
    let free = health.free_bytes() >> 20;
    let disk = match health.low() {
        true => format!("{free} MiB free: low"),
        false => format!("{free} MiB free"),
    };
    let (status, head) =
        if failing { (StatusCode::SERVICE_UNAVAILABLE, "failing") } else { (StatusCode::OK, "ok") };
    let body =
        format!("{head}\nstore: {store}\nbroker: {broker}\ningest: {ingest}\ndisk: {disk}\n");
    (status, body).into_response()
}
