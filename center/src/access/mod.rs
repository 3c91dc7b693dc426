//! Who may use the center and what they did: user accounts (`users.toml`), login sessions, the
//! roles' permissions, and the append-only audit log of views and steps.

mod audit;
mod roles;
mod sessions;
mod users;

pub use audit::{Append, AuditEntry, AuditLog, ChainError, ChainReport};
pub use roles::Permission;
pub use sessions::{DEFAULT_IDLE, Session, Sessions};
pub use users::{
    MAX_PASSWORD_BYTES, Role, User, Users, UsersError, Verified, add_user, generate_password,
    remove_user, set_disabled, set_password, valid_login,
};
