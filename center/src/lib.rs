//! The xueliang county center.
//!
//! ```text
//! agents ─MQTT─▶ broker (Mosquitto, each box's account kept by the center; or embedded rumqttd)
//!   ─▶ ingest (validate, verify signature, route, group commit, then ack and receipt)
//!   ─▶ store (sled or PostgreSQL, one record per event: its alarm, then its updates, idempotent by id;
//!        indexes by time, camera, agent, status, unit; events' video clips as files, put
//!        together from chunks, kept if they hash to the signed SHA-256, listed in the record)
//!        refused payloads ─▶ dead letters; agents' status and health ─▶ fleet
//!   ─▶ cases (workflow steps, escalation, supervision) ─▶ dispatch: MQTT xl/v1/dispatch/{unit}, webhooks
//!   ─▶ HTTP API (axum, HTTP or HTTPS; users and roles, sessions; every view and step audited)
//! center status (retained, signed, numbered by run) ─MQTT─▶ agents
//! config push ─MQTT (retained, signed)─▶ agents ─ConfigAck─▶ ingest
//! retention: old clips and stale partial clips, old snapshots, then old alarms (with their
//!   clips), deleted with their index entries
//! several processes for one county (`--cluster`, PostgreSQL): the broker shares ingest among
//!   them ($share/NAME/…); the store's keys decide; a lease in the store gives one the duties
//! tiers: county ─(its events' records and thumbnails, numbered, signed; a Mosquitto bridge)─▶
//!   city ─▶ province, each storing in the order of the center below, each event once, and
//!   receipting back down; each minute the counties' boxes online go up the same way; full
//!   pictures and clips are fetched from below on demand
//! GB/T 28181: the center registers with the national platforms above as a lower platform
//!   (SIP, digest), answers their catalog and device queries, and reports each new event as a
//!   MANSCDP alarm from a queue per platform in the store
//! ```
//!
//! The folders, lowest first; each imports only the ones before it (as listed), never one
//! after it, so there is no import cycle. `watched_file.rs` is a helper any of them may use.
//!
//! | folder      | what it does                                                    | imports                                         |
//! |-------------|-----------------------------------------------------------------|-------------------------------------------------|
//! | `domain/`   | vocabulary, the alarm record, the workflow's pure state machine | nothing                                         |
//! | `store/`    | alarms, indexes, queries, export, retention, dead letters and   | domain                                          |
//! |             | events' video clips (files, their records in the store); what   |                                                 |
//! |             | agents signed, kept beside their alarms; leases; `engine/`      |                                                 |
//! |             | under them: ordered trees with transactions, in sled or         |                                                 |
//! |             | PostgreSQL                                                      |                                                 |
//! | `access/`   | users, sessions, roles' permissions, the audit log              | store                                           |
//! | `fleet/`    | agents' keys, enrolment tokens, pushed configs, status, health  | store                                           |
//! | `routing/`  | `routing.toml`: units, groups, routes, escalation               | domain                                          |
//! | `dispatch/` | dispatches to units over MQTT, durable webhooks                 | domain, store, routing                          |
//! | `cases/`    | the workflow, escalation, supervision, retention loop, feed     | domain, store, access, routing, fleet, dispatch |
//! | `ingest/`   | MQTT in: validation, batches, receipts; the embedded broker;    | domain, store, fleet, routing, cases            |
//! |             | shared subscriptions and the feed's relay between processes;    |                                                 |
//! |             | boxes' accounts at Mosquitto (dynamic security)                 |                                                 |
//! | `tier/`     | forwarding to the tier above, receiving from the tier below,    | domain, store, fleet, ingest, cases             |
//! |             | fetching pictures and clips from below                          |                                                 |
//! | `gb28181/`  | the national platforms above: `gb28181.toml`, SIP registration  | domain, store, fleet, routing                   |
//! |             | and keepalives, MANSCDP queries answered and alarms reported    |                                                 |
//! | `console/`  | the web console's files                                         | nothing                                         |
//! | `api/`      | the HTTP API, one file per resource; serves the console         | all of the above                                |
//! | `duties.rs` | the duties one process does: escalation, supervision, retention,| all of the above                                |
//! |             | webhooks, the tiers' links; of several, the one holding their   |                                                 |
//! |             | lease in the store                                              |                                                 |
//! | `running.rs`| starts and wires every part: [`running::start`]                 | all of the above                                |
//!
//! The `xl-center` binary's `cli/` (one file per subcommand) uses only what this library
//! exports. Dispatch sits below cases because a case step sends its dispatch.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

pub mod access;
pub mod api;
pub mod cases;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod duties;
pub mod fleet;
pub mod gb28181;
pub mod ingest;
pub mod routing;
pub mod running;
pub mod store;
pub mod tier;
pub mod watched_file;
