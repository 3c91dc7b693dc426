//! What every xueliang process shares as a service, written once:
//!
//! - [`mqtt`]: the connection loop (reconnect with backoff, hand packets to the side's session,
//!   leave cleanly with a retained farewell) that the agent's publisher and the center's ingest
//!   both run;
//! - [`backoff`]: doubling retry delays with jitter (cameras, brokers, webhooks);
//! - [`disk`]: free space, checked before the outbox and the store write;
//! - [`shutdown`]: Ctrl-C and SIGTERM as a cancellation token;
//! - [`logging`]: the log subscriber;
//! - [`metrics`]: the Prometheus text page both `/metrics` endpoints serve;
//! - [`tls`]: rustls client and server set-up from the county's PEM files;
//! - [`systemd`]: the notify protocol, `READY=1` and the watchdog's pings.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

pub mod backoff;
pub mod disk;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod shutdown;
pub mod systemd;
pub mod tls;
