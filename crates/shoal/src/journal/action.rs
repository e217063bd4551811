//! What a journal event records: one variant per kind of event shoal emits.

use std::fmt;

/// What happened. Its [`Action::as_str`] is the `action` of the event in the API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The desired count went up (manual request or autoscaler).
    ScaleUp,
    /// The desired count went down.
    ScaleDown,
    /// The autoscaler wanted to act and was held (cooldown, bounds, window, dry run).
    ScaleHeld,
    /// First complete listing after start: what runs was adopted.
    Adopted,
    /// A container of the service the loop did not know was found (at start, or on a
    /// server that came back).
    ReplicaFound,
    /// A replica was created and started.
    ReplicaStarted,
    /// A replica was added to HAProxy (in maintenance, checks running).
    ReplicaRegistered,
    /// A replica is healthy and in rotation.
    ReplicaReady,
    /// A replica in rotation dropped out of it (HAProxy's check fails).
    ReplicaOutOfRotation,
    /// A failed replica was removed for replacement.
    ReplicaReplaced,
    /// A replica vanished (its server is down, or the container was removed).
    ReplicaLost,
    /// A replica is being drained.
    ReplicaDraining,
    /// A drained replica was removed.
    ReplicaRemoved,
    /// HAProxy's membership was repaired (stray server, wrong address, missing server).
    LbRepaired,
    /// A rollout started, advanced or finished.
    Rollout,
    /// A rollout stopped because its new replica failed.
    RolloutFailed,
    /// Every replica a failed update replaced is back on the previous revision.
    RolledBack,
    /// An update (deploy, rolling update, rollback) started, resolved its image or failed
    /// before replacing anything.
    Update,
    /// An image pull started, finished or failed.
    Pull,
    /// The config was reloaded and changed this service.
    ConfigReloaded,
    /// A replica could not be placed: no server has what it needs (GPUs), with each
    /// server's reason.
    PlacementShort,
    /// A new replica answered its warm-up request (its duration in the reason).
    ReplicaWarmedUp,
    /// A request arrived while the service slept: it is being woken.
    Wake,
    /// The service went to zero replicas (idle, or its wake-up timed out).
    Sleep,
    /// Something failed.
    #[default]
    Error,
}

impl Action {
    /// Every action, for documentation and tests.
    pub const ALL: [Action; 25] = [
        Self::ScaleUp,
        Self::ScaleDown,
        Self::ScaleHeld,
        Self::Adopted,
        Self::ReplicaFound,
        Self::ReplicaStarted,
        Self::ReplicaRegistered,
        Self::ReplicaReady,
        Self::ReplicaOutOfRotation,
        Self::ReplicaReplaced,
        Self::ReplicaLost,
        Self::ReplicaDraining,
        Self::ReplicaRemoved,
        Self::LbRepaired,
        Self::Rollout,
        Self::RolloutFailed,
        Self::RolledBack,
        Self::Update,
        Self::Pull,
        Self::ConfigReloaded,
        Self::PlacementShort,
        Self::ReplicaWarmedUp,
        Self::Wake,
        Self::Sleep,
        Self::Error,
    ];

    /// The name stored and shown (`scale_up`, `replica_ready`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ScaleUp => "scale_up",
            Self::ScaleDown => "scale_down",
            Self::ScaleHeld => "scale_held",
            Self::Adopted => "adopted",
            Self::ReplicaFound => "replica_found",
            Self::ReplicaStarted => "replica_started",
            Self::ReplicaRegistered => "replica_registered",
            Self::ReplicaReady => "replica_ready",
            Self::ReplicaOutOfRotation => "replica_out_of_rotation",
            Self::ReplicaReplaced => "replica_replaced",
            Self::ReplicaLost => "replica_lost",
            Self::ReplicaDraining => "replica_draining",
            Self::ReplicaRemoved => "replica_removed",
            Self::LbRepaired => "lb_repaired",
            Self::Rollout => "rollout",
            Self::RolloutFailed => "rollout_failed",
            Self::RolledBack => "rolled_back",
            Self::Update => "update",
            Self::Pull => "pull",
            Self::ConfigReloaded => "config_reloaded",
            Self::PlacementShort => "placement_short",
            Self::ReplicaWarmedUp => "replica_warmed_up",
            Self::Wake => "wake",
            Self::Sleep => "sleep",
            Self::Error => "error",
        }
    }
}

impl Action {
    /// The action named `name`, if there is one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Action;

    #[test]
    fn action_names_are_distinct_snake_case() {
        let names: std::collections::BTreeSet<&str> =
            Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
