//! Who may use the center and what they did: user accounts (`users.toml`), login sessions, the
//! roles' permissions, and the append-only audit log of views and steps.

mod audit;
mod roles;
mod sessions;
mod users;

pub use audit::{AuditEntry, AuditLog};
pub use roles::Permission;
pub use sessions::{Session, Sessions};
pub use users::{Role, User, Users, UsersError, add_user, generate_password, set_password};
