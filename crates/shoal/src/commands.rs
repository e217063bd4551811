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
use crate::service::{Phase, Rollout, Trigger};

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

/// Starts a rollout of `service` to its current spec: replicas of another revision are
/// replaced one at a time, new before old. With `replace_all`, replicas that already run the
/// current spec are replaced too (a rolling update after pulling the image again).
pub fn deploy(app: &Context, service: &str, replace_all: bool) -> Result<Rollout, CommandError> {
    let cfg = app.config();
    let (Some(svc), Some(rt)) = (cfg.service(service), app.service(service)) else {
        return Err(CommandError::UnknownService(service.to_owned()));
    };
    let spec = ContainerSpec::from_service(svc);
    let rollout = rt.update(|st| {
        st.desired = st.desired.max(lower_bound(svc));
        let replace_ids: BTreeSet<String> = st
            .replicas
            .values()
            .filter(|r| r.phase != Phase::Draining && (replace_all || r.revision != spec.revision))
            .map(|r| r.id.clone())
            .collect();
        let rollout = Rollout {
            revision: spec.revision.clone(),
            replace_ids,
            surge: None,
            replaced: 0,
        };
        st.rollout = (!rollout.replace_ids.is_empty()).then(|| rollout.clone());
        rollout
    });
    app.journal.record(NewEvent {
        service,
        action: Action::Rollout,
        reason: format!(
            "rollout to revision {} started: {} replica(s) to replace",
            rollout.revision,
            rollout.replace_ids.len()
        ),
        ..Default::default()
    });
    rt.wake.notify_one();
    Ok(rollout)
}

/// What a rolling update is about to do.
#[derive(Clone, Debug)]
pub struct RollingUpdate {
    /// The image pulled again.
    pub image: String,
    /// Servers it is pulled on.
    pub pulling_on: Vec<String>,
}

/// Pulls the service's image again on every up server (in the background: a pull can take
/// minutes), then replaces every replica one at a time, so new replicas get the newest build.
pub fn rolling_update(app: &Arc<Context>, service: &str) -> Result<RollingUpdate, CommandError> {
    let cfg = app.config();
    if cfg.service(service).is_none() || app.service(service).is_none() {
        return Err(CommandError::UnknownService(service.to_owned()));
    }
    let image = cfg.services[service].image.value.clone();
    let servers: Vec<_> = app
        .fleet
        .all()
        .iter()
        .filter_map(|h| h.engine().map(|e| (h.name().to_owned(), e)))
        .collect();
    if servers.is_empty() {
        return Err(CommandError::NoServerUp);
    }
    let pulling_on: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    let (app2, service2, img) = (app.clone(), service.to_owned(), image.clone());
    tokio::spawn(async move {
        let pulls = futures_util::future::join_all(servers.iter().map(|(_, e)| e.pull(&img))).await;
        for ((server, _), r) in servers.iter().zip(pulls) {
            if let Err(e) = r {
                app2.journal.record(NewEvent {
                    service: &service2,
                    action: Action::Pull,
                    reason: format!(
                        "pulling {img} on {server} failed: {e}; its new replicas use the image it has"
                    ),
                    server: Some(server),
                    ..Default::default()
                });
            }
        }
        if let Err(e) = deploy(&app2, &service2, true) {
            tracing::warn!(service = service2, error = %e, "rolling update not started");
        }
    });
    Ok(RollingUpdate { image, pulling_on })
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
/// Running replicas are not restarted; `deploy` rolls them to a changed spec. Every change is
/// journaled on its service and returned, in words.
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
                changes.push((
                    name.clone(),
                    format!(
                        "service {name}: spec changed (revision {a} -> {b}); running replicas \
                         stay until `deploy` rolls them"
                    ),
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
