//! The agent as a service: start-up, the publisher and the pipeline of the config in force,
//! config swaps, the detector thread, the alarm chain, systemd's notify and watchdog, metrics.
//! Nothing in the library imports this folder; the binary and the end-to-end tests run it.

mod agent;
mod alarms;
mod metrics;
mod pipeline;

pub use agent::{Agent, AgentError};
