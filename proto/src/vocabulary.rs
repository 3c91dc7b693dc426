//! The names of rule kinds and severities as configs, records, routes and logs write them
//! (`zone_intrusion`, `high`): written once here, for the agent, the center and the console.

use crate::{RuleKind, Severity};

impl RuleKind {
    /// Every kind an alarm may carry, in wire order.
    pub const ALL: [RuleKind; 9] = [
        RuleKind::ZoneIntrusion,
        RuleKind::LineCrossing,
        RuleKind::Loitering,
        RuleKind::Crowding,
        RuleKind::VehicleStopped,
        RuleKind::FireSmoke,
        RuleKind::CameraOffline,
        RuleKind::CameraTamper,
        RuleKind::CameraBack,
    ];

    /// The kind's name: `zone_intrusion`, not `RULE_KIND_ZONE_INTRUSION`.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Unspecified => "unspecified",
            RuleKind::ZoneIntrusion => "zone_intrusion",
            RuleKind::LineCrossing => "line_crossing",
            RuleKind::Loitering => "loitering",
            RuleKind::Crowding => "crowding",
            RuleKind::VehicleStopped => "vehicle_stopped",
            RuleKind::FireSmoke => "fire_smoke",
            RuleKind::CameraOffline => "camera_offline",
            RuleKind::CameraTamper => "camera_tamper",
            RuleKind::CameraBack => "camera_back",
        }
    }

    /// The kind of a name, if it is one of [`Self::ALL`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind an alarm's `kind` field holds (`Unspecified` for a value this build lacks).
    pub fn of(value: i32) -> Self {
        Self::try_from(value).unwrap_or(RuleKind::Unspecified)
    }
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The severity's name: `high`, not `SEVERITY_HIGH`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Unspecified => "unspecified",
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The severity of a name, if it is one of [`Self::ALL`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The severity an alarm's `severity` field holds (`Unspecified` for an unknown value).
    pub fn of(value: i32) -> Self {
        Self::try_from(value).unwrap_or(Severity::Unspecified)
    }

    /// One level more urgent (critical stays critical).
    pub fn raised(self) -> Self {
        match self {
            Severity::Unspecified | Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_names_without_their_prefix() {
        for k in RuleKind::ALL {
            let wire = k.as_str_name().trim_start_matches("RULE_KIND_").to_ascii_lowercase();
            assert_eq!(k.name(), wire);
            assert_eq!(RuleKind::from_name(k.name()), Some(k));
        }
        for s in Severity::ALL {
            assert_eq!(
                s.name(),
                s.as_str_name().trim_start_matches("SEVERITY_").to_ascii_lowercase()
            );
            assert_eq!(Severity::from_name(s.name()), Some(s));
        }
        assert_eq!(RuleKind::from_name("unspecified"), None);
        assert_eq!(RuleKind::of(99), RuleKind::Unspecified);
        assert_eq!(Severity::Info.raised(), Severity::Low);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
    }
}
