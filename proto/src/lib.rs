//! The protobuf contract between xueliang agents and the center, and its MQTT topic layout.
//!
//! Messages are generated from `proto/xueliang/v1/xueliang.proto` by prost (compiled with protox,
//! no system `protoc`). [`topics`] names every topic so both sides build them the same way.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

/// Generated types of package `xueliang.v1`; their documentation is the `.proto` file's.
#[allow(missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/xueliang.v1.rs"));
}

pub mod endpoint;
pub mod enrolment;
pub mod signing;
pub mod topics;
pub mod vocabulary;

pub use prost::Message;
pub use v1::{
    AgentConfig, AgentStatus, Alarm, Box, CameraHealth, CenterStatus, ClipChunk, ConfigAck,
    CountyBoxes, Detection, Dispatch, EventUpdate, Health, Receipt, RuleKind, SchemaVersion,
    Severity, Snapshot, TierEvent, TierFetch, TierFleet, TierReceipt,
};

/// What a center lists in `CenterStatus.capabilities` when it takes `EventUpdate`s.
pub const CAPABILITY_EVENTS: &str = "events";

/// What a center lists in `CenterStatus.capabilities` when it takes `ClipChunk`s.
pub const CAPABILITY_CLIPS: &str = "clips";

/// How a receipt names a stored clip chunk: `{clip_id}@{offset}`.
pub fn clip_chunk_id(clip_id: &str, offset: u64) -> String {
    format!("{clip_id}@{offset}")
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: SchemaVersion = SchemaVersion::SchemaVersion1;

/// Largest encoded message either side accepts (an alarm with a size-capped snapshot fits).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why a payload could not be read as a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than [`MAX_MESSAGE_BYTES`].
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The largest size accepted, in bytes.
        limit: usize,
    },
    /// The bytes are not a valid protobuf encoding of the message.
    #[error("payload is not a valid {message}: {error}")]
    Malformed {
        /// The message type expected.
        message: &'static str,
        /// What went wrong.
        error: prost::DecodeError,
    },
}

/// Refuses a payload over [`MAX_MESSAGE_BYTES`] before any work is spent on it.
pub fn check_size(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { size: bytes.len(), limit: MAX_MESSAGE_BYTES });
    }
    Ok(())
}

/// Decodes `M` from untrusted bytes, refusing payloads over [`MAX_MESSAGE_BYTES`].
pub fn decode_limited<M: Message + Default>(bytes: &[u8]) -> Result<M, DecodeError> {
    check_size(bytes)?;
    M::decode(bytes).map_err(|error| DecodeError::Malformed {
        message: std::any::type_name::<M>().rsplit("::").next().unwrap_or("message"),
        error,
    })
}
