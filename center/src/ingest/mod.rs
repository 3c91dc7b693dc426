//! MQTT in: alarms from every agent are validated (well-formed, on their own agent's topic,
//! signed with its registered key), stored in batches (one flush per batch) and only then
//! acknowledged to the broker and receipted to the agent; so are events' updates, following
//! snapshots and the chunks of events' video clips (each written to its clip's file and synced
//! before its receipt). What fails validation is dead-lettered, never dropped silently. Agents' answers to pushed configs, their retained
//! status (and last will) and their Health come in here too. The embedded broker (rumqttd)
//! lives here as well, so a lab can run the center with nothing else installed; so does the
//! keeping of boxes' accounts at a Mosquitto broker (`accounts.rs`).
//!
//! `validate.rs` and `batch.rs` decide what a batch becomes without I/O, `quota.rs` how much
//! each agent may send; `eventloop.rs` and `connection.rs` talk to the broker and the store.

mod accounts;
mod batch;
mod broker;
mod connection;
mod eventloop;
mod quota;
mod relay;
mod validate;

pub use accounts::{AccountsError, BrokerAccounts};
pub use broker::{BrokerError, Listening, ServerTls, start_broker};
pub use connection::{Announcer, BrokerConnection, Cluster, connect, options};
pub use eventloop::{Ingest, IngestStats, run};
pub use quota::QuotaLimits;
