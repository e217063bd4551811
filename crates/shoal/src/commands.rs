//! What an operator asks for: scale by one, deploy, rolling update, reload. Each validates
//! the request, changes the desired state and wakes the service's loop; the loop does the
//! work. The API and the CLI (through the API) only call these.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
use crate::context::Context;
use crate::engine::ContainerSpec;
use crate::journal::{Action, NewEvent, SavedState};
use crate::placement;
use crate::reconcile::plan::lower_bound;
use crate::release::{self, UpdateError, UpdateKind, UpdateRequest, UpdateStatus};
use crate::service::Trigger;

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such service.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// Already at the bound.
    #[error("{service} is already at {bound} ({count} replicas); nothing changed")]
    AtBound {
        /// Service.
        service: String,
        /// `max_replicas` or `min_replicas`.
        bound: &'static str,
        /// The count.
        count: u32,
    },
    /// Outside the business-hours window the service is held at `off_hours_replicas`.
    #[error(
        "{service} scales only in business hours; it is held at off_hours_replicas {held} until the window opens{}",
        opens.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
    )]
    OutsideWindow {
        /// Service.
        service: String,
        /// The held count.
        held: u32,
        /// When the window opens.
        opens: Option<String>,
    },
    /// No server can take another replica.
    #[error("no server can take another replica of {service}: {why}")]
    NoCapacity {
        /// Service.
        service: String,
        /// Per-server reasons.
        why: String,
    },
    /// No server is up.
    #[error("no server is up")]
    NoServerUp,
    /// The config file did not load; the running config stays.
    #[error("config not reloaded; the running config stays:\n{0}")]
    BadConfig(Box<crate::config::ConfigError>),
    /// The new config could not be put in force (e.g. an unusable runtime API address).
    #[error("config not reloaded: {0}")]
    NotApplied(String),
    /// An update was refused (one runs already, nothing to roll back to, a bad image).
    #[error("{0}")]
    Update(UpdateError),
    /// Reading the config file failed unexpectedly (the reading task did not finish).
    #[error("config not reloaded: {0}")]
    Internal(String),
}

/// Changes the desired count of `service` by one, within its bounds, and starts the
/// cooldown. Returns (before, after).
pub fn scale(
    app: &App,
    service: &str,
    up: bool,
    trigger: Trigger,
) -> Result<(u32, u32), CommandError> {
    let cfg = app.config();
    let (Some(svc), Some(rt)) = (cfg.service(service), app.service(service)) else {
        return Err(CommandError::UnknownService(service.to_owned()));
    };
    let now = app.clock.now();
    if svc.business_hours_only {
        if let Ok(window) = cfg.autoscaler.business_hours.window() {
            if !window.is_open(now) {
                return Err(CommandError::OutsideWindow {
                    service: service.to_owned(),
                    held: svc.off_hours_replicas(),
                    opens: window.next_change(now).map(|t| t.to_string()),
                });
            }
        }
    }
    let capacity = || {
        let per_server = rt.update(|st| st.replicas_per_server());
        placement::choose_server(&app.fleet.loads(&per_server)).is_some()
    };
    let has_capacity = up && capacity();
    let (before, after) = rt.update(|st| {
        let before = st.desired;
        let after = if up {
            if before >= *svc.max_replicas {
                return Err(CommandError::AtBound {
                    service: service.to_owned(),
                    bound: "max_replicas",
                    count: before,
                });
            }
            if !has_capacity {
                return Err(CommandError::NoCapacity {
                    service: service.to_owned(),
                    why: app.capacity_report(),
                });
            }
            before + 1
        } else {
            if before <= *svc.min_replicas {
                return Err(CommandError::AtBound {
                    service: service.to_owned(),
                    bound: "min_replicas",
                    count: before,
                });
            }
            before - 1
        };
        st.desired = after;
        st.last_action = Some(now);
        let dir = if up { "up" } else { "down" };
        let n = st
            .scale_actions
            .entry((dir.to_owned(), trigger.as_str().to_owned()))
            .or_default();
        *n = n.saturating_add(1);
        Ok((before, after))
    })?;
    app.journal.save_service_state(
        service,
        &SavedState {
            last_action: Some(now),
            desired: Some(after),
        },
    );
    app.journal.record(NewEvent {
        service,
        action: if up {
            Action::ScaleUp
        } else {
            Action::ScaleDown
        },
        reason: format!(
            "{} request: desired {before} -> {after}; cooldown {}s starts",
            trigger.as_str(),
            *svc.cooldown_period
        ),
        desired: Some((before, after)),
        ..Default::default()
    });
    rt.wake.notify_one();
    Ok((before, after))
}

/// Starts an update of `service`: a deploy (replicas of another revision are replaced;
/// the image is pulled only where missing) or a rolling update (pulled again everywhere,
/// every replica replaced), to the configured image or `image`. The pulls run in the
/// background; the service's loop then replaces the replicas and rolls them back if a new
/// one fails. A second update while one runs is refused.
pub fn update(
    app: &Arc<Context>,
    service: &str,
    kind: UpdateKind,
    image: Option<String>,
) -> Result<UpdateStatus, CommandError> {
    release::start(app, service, UpdateRequest { kind, image }).map_err(CommandError::from)
}

/// Rolls `service` back to its previous revision, the same way as an update.
pub fn rollback(app: &Arc<Context>, service: &str) -> Result<UpdateStatus, CommandError> {
    release::rollback(app, service).map_err(CommandError::from)
}

impl From<UpdateError> for CommandError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::UnknownService(s) => Self::UnknownService(s),
            UpdateError::NoServerUp => Self::NoServerUp,
            other => Self::Update(other),
        }
    }
}

/// Re-reads the config file and puts it in force; on any error nothing changes. Returns what
/// changed, in words.
pub async fn reload(app: &Arc<App>) -> Result<Vec<String>, CommandError> {
    let path = app.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    let config = loaded.map_err(|e| CommandError::BadConfig(Box::new(e)))?;
    apply_config(app, config)
}

/// Applies a new, already validated config: servers, services, the load-balancer client.
/// A service whose spec changed is rolled out to it through the same path as `deploy`
/// (pulls, health-gated replacement, rollback on failure). Every change is journaled on its
/// service and returned, in words.
pub fn apply_config(app: &Arc<App>, config: Config) -> Result<Vec<String>, CommandError> {
    let mut changes: Vec<(String, String)> = Vec::new();
    let old = app.config();
    let new_names: BTreeSet<String> = config.services.keys().cloned().collect();
    app.set_config(config)
        .map_err(|e| CommandError::NotApplied(e.to_string()))?;
    for name in old.services.keys().filter(|n| !new_names.contains(*n)) {
        if let Some(rt) = app.service(name) {
            rt.update(|st| st.removed = true);
            rt.wake.notify_one();
            changes.push((
                name.clone(),
                format!("service {name} removed: draining to zero"),
            ));
        }
    }
    let cfg = app.config();
    for name in &new_names {
        let Some(rt) = app.service(name) else {
            app.spawn_service(name);
            changes.push((name.clone(), format!("service {name} added")));
            continue;
        };
        let svc = &cfg.services[name];
        let (was_removed, clamp) = rt.update(|st| {
            let was_removed = std::mem::replace(&mut st.removed, false);
            let clamped = st.desired.clamp(lower_bound(svc), *svc.max_replicas);
            let clamp = (clamped != st.desired).then_some((st.desired, clamped, st.last_action));
            st.desired = clamped;
            (was_removed, clamp)
        });
        if was_removed {
            changes.push((
                name.clone(),
                format!("service {name} added back while draining"),
            ));
        }
        if let Some(before) = old.service(name) {
            let (a, b) = (
                ContainerSpec::from_service(before).revision,
                ContainerSpec::from_service(svc).revision,
            );
            if a != b {
                // The same path as `deploy`: pulled where missing, health-gated, rolled back
                // if a new replica fails.
                let rolled = release::start(
                    app.context(),
                    name,
                    UpdateRequest {
                        kind: UpdateKind::Deploy,
                        image: None,
                    },
                );
                let then = match rolled {
                    Ok(_) => format!(
                        "rolling it out like `deploy` (progress: GET /services/{name}/update)"
                    ),
                    Err(e) => format!("not rolled out yet ({e}); run `shoal deploy {name}` then"),
                };
                changes.push((
                    name.clone(),
                    format!("service {name}: spec changed (spec {a} -> {b}); {then}"),
                ));
            }
        }
        if let Some((before, after, last_action)) = clamp {
            changes.push((
                name.clone(),
                format!("service {name}: desired {before} -> {after} (new bounds)"),
            ));
            app.journal.save_service_state(
                name,
                &SavedState {
                    last_action,
                    desired: Some(after),
                },
            );
        }
        rt.wake.notify_one();
    }
    for (service, change) in &changes {
        app.journal.record(NewEvent {
            service,
            action: Action::ConfigReloaded,
            reason: format!("config reloaded: {change}"),
            ..Default::default()
        });
    }
    Ok(changes.into_iter().map(|(_, c)| c).collect())
}
