//! The agents in the field: the registry of their keys and broker passwords
//! (`agent-keys.toml`), one-time enrolment tokens for new boxes, the configs pushed to them, and
//! what their retained status and Health say.

mod agent_keys;
mod config_push;
mod enrolment;
mod status;

pub use agent_keys::{AgentKeys, PasswordHash};
pub use config_push::{
    AckRecord, Change, ConfigPush, ConfigRecord, ConfigVersion, Confirm, Loss, MAX_CONFIG_BYTES,
    PushError, redacted,
};
pub(crate) use enrolment::local_time;
pub use enrolment::{Enrolment, Enrolments, RedeemError};
pub use status::{AgentView, CameraView, Fleet, HealthView};
