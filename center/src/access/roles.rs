//! What each role may do: the one permission table of the center. The API refuses by it, and
//! hands it to the console (`GET /api/me`), which shows only what the user may use.

use serde::{Deserialize, Serialize};

use super::users::Role;

/// What a role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// List and read alarms and their snapshots (a police user: only its unit's).
    ReadAlarms,
    /// Acknowledge, dispatch, resolve, mark false alarms; read an alarm's audit trail.
    ActOnAlarms,
    /// Report on a dispatch to one's unit: received, on scene, closed.
    Respond,
    /// See the fleet and the center's counters (`/api/stats`).
    ReadFleet,
    /// Read and push agents' configs (they may hold camera passwords).
    Configure,
    /// See refused payloads.
    ReadDeadLetters,
    /// Read the whole audit log, export the store, enrol boxes and purge dead letters.
    Administer,
}

impl Permission {
    /// Every permission, in the order `GET /api/me` lists them.
    pub const ALL: [Permission; 7] = [
        Permission::ReadAlarms,
        Permission::ActOnAlarms,
        Permission::Respond,
        Permission::ReadFleet,
        Permission::Configure,
        Permission::ReadDeadLetters,
        Permission::Administer,
    ];

    /// Whether `role` has this permission.
    pub fn allowed(self, role: Role) -> bool {
        use Role::*;
        match self {
            Permission::ReadAlarms => matches!(role, Admin | DutyOfficer | Police),
            Permission::ActOnAlarms => matches!(role, Admin | DutyOfficer),
            Permission::Respond => role == Police,
            Permission::ReadFleet => matches!(role, Admin | DutyOfficer | Installer),
            Permission::Configure | Permission::ReadDeadLetters => {
                matches!(role, Admin | Installer)
            }
            Permission::Administer => role == Admin,
        }
    }

    /// What it allows, as the end of "role X may not ...".
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ReadAlarms => "read alarms or their pictures",
            Permission::ActOnAlarms => "act on alarms",
            Permission::Respond => "report on a dispatch (only a unit's user does)",
            Permission::ReadFleet => "see the fleet or the center's counters",
            Permission::Configure => "read or push agents' configs",
            Permission::ReadDeadLetters => "see dead letters",
            Permission::Administer => {
                "administer the center (enrol or remove boxes, read the audit log, export the store)"
            }
        }
    }
}

impl Role {
    /// Everything this role may do.
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| p.allowed(self)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_its_permissions() {
        use Permission::*;
        assert_eq!(
            Role::Admin.permissions(),
            [ReadAlarms, ActOnAlarms, ReadFleet, Configure, ReadDeadLetters, Administer]
        );
        assert_eq!(Role::DutyOfficer.permissions(), [ReadAlarms, ActOnAlarms, ReadFleet]);
        assert_eq!(Role::Police.permissions(), [ReadAlarms, Respond]);
        assert_eq!(Role::Installer.permissions(), [ReadFleet, Configure, ReadDeadLetters]);
        assert_eq!(
            serde_json::to_string(&ReadDeadLetters).unwrap(),
            "\"read_dead_letters\"",
            "named in JSON as the console reads them"
        );
    }
}
