//! Starting an update: refuse a second one, pull the image on every up server concurrently
//! (with the registry's credentials), pin it to one image ID, then hand the service's loop a
//! rollout to that revision. The loop replaces the replicas (and rolls them back when a new
//! one fails); nothing here touches a replica.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::{PullProgress, Revision, UpdateKind, UpdatePhase, UpdateStatus};
use crate::context::Context;
use crate::engine::{ContainerSpec, EngineError, ImagePin};
use crate::journal::{Action, NewEvent};
use crate::ports::DockerApi;
use crate::service::{Rollout, ServiceRuntime};

/// What to update to.
#[derive(Clone, Debug)]
pub struct UpdateRequest {
    /// Deploy or rolling update (a rollback is [`rollback`]).
    pub kind: UpdateKind,
    /// The image to run instead of the configured one (`{"image": "repo:tag"}`).
    pub image: Option<String>,
}

/// Why an update was not started.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// No such service.
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// An update already runs.
    #[error("{service}: an update is already running ({what}); wait for it to finish")]
    Busy {
        /// Service.
        service: String,
        /// What runs.
        what: String,
    },
    /// No server is up.
    #[error("no server is up")]
    NoServerUp,
    /// Nothing to roll back to.
    #[error("{0}: no earlier revision to roll back to")]
    NoPrevious(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
}

/// Starts an update of `service` (pulls in the background). Returns its status as it starts.
pub fn start(
    ctx: &Arc<Context>,
    service: &str,
    req: UpdateRequest,
) -> Result<UpdateStatus, UpdateError> {
    let cfg = ctx.config();
    let (Some(svc), Some(rt)) = (cfg.service(service), ctx.service(service)) else {
        return Err(UpdateError::UnknownService(service.to_owned()));
    };
    let image = match &req.image {
        Some(i) => {
            let i = i.trim();
            if i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(UpdateError::BadRequest(format!(
                    "image {i:?} is not an image reference such as registry:5000/app:v2"
                )));
            }
            i.to_owned()
        }
        None => svc.image.value.clone(),
    };
    let spec = ContainerSpec::from_service(svc).with_image(&image);
    let pull = match req.kind {
        UpdateKind::RollingUpdate => Pull::Always,
        _ => Pull::IfMissing,
    };
    begin(
        ctx,
        &rt,
        service,
        req.kind,
        image,
        Plan::New(Box::new(spec)),
        pull,
    )
}

/// Rolls `service` back to its previous revision (the newest one in the journal that is not
/// the current one and was not itself rolled back), the same way as an update.
pub fn rollback(ctx: &Arc<Context>, service: &str) -> Result<UpdateStatus, UpdateError> {
    let Some(rt) = ctx
        .service(service)
        .filter(|_| ctx.config().service(service).is_some())
    else {
        return Err(UpdateError::UnknownService(service.to_owned()));
    };
    let (current, busy) = rt.update(|st| {
        (
            st.target.as_ref().map(|t| t.id.clone()),
            st.update
                .as_ref()
                .filter(|u| u.phase.running())
                .map(|u| {
                    format!("{:?} of {}, {}", u.kind, u.image, u.phase.as_str()).to_lowercase()
                })
                .or_else(|| {
                    st.rollout
                        .as_ref()
                        .map(|r| format!("rollout to revision {}", r.revision))
                }),
        )
    });
    if let Some(what) = busy {
        return Err(UpdateError::Busy {
            service: service.to_owned(),
            what,
        });
    }
    let Some(prev) = current.and_then(|c| ctx.journal.previous_revision(service, &c)) else {
        return Err(UpdateError::NoPrevious(service.to_owned()));
    };
    let image = prev.image.reference.clone();
    begin(
        ctx,
        &rt,
        service,
        UpdateKind::Rollback,
        image,
        Plan::Pinned(Box::new(prev)),
        Pull::IfMissing,
    )
}

/// Whether servers pull again or only when the image is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pull {
    Always,
    IfMissing,
}

/// What the update rolls to: a spec whose image is resolved by the pulls, or a revision
/// already pinned (a rollback).
#[derive(Clone, Debug)]
enum Plan {
    New(Box<ContainerSpec>),
    Pinned(Box<Revision>),
}

fn begin(
    ctx: &Arc<Context>,
    rt: &Arc<ServiceRuntime>,
    service: &str,
    kind: UpdateKind,
    image: String,
    plan: Plan,
    pull: Pull,
) -> Result<UpdateStatus, UpdateError> {
    let engines: Vec<Arc<dyn DockerApi>> =
        ctx.fleet.all().iter().filter_map(|h| h.engine()).collect();
    if engines.is_empty() {
        return Err(UpdateError::NoServerUp);
    }
    let status = rt.update(|st| {
        if let Some(u) = st.update.as_ref().filter(|u| u.phase.running()) {
            return Err(UpdateError::Busy {
                service: service.to_owned(),
                what: format!("{:?} of {}, {}", u.kind, u.image, u.phase.as_str()).to_lowercase(),
            });
        }
        if let Some(ro) = &st.rollout {
            return Err(UpdateError::Busy {
                service: service.to_owned(),
                what: format!("rollout to revision {}", ro.revision),
            });
        }
        let status = UpdateStatus {
            kind,
            phase: UpdatePhase::Pulling,
            image: image.clone(),
            pulls: engines
                .iter()
                .map(|e| PullProgress {
                    server: e.server().to_owned(),
                    state: "pending".into(),
                    seconds: None,
                    error: None,
                    image_id: None,
                })
                .collect(),
            from: st.target.clone(),
            to: None,
            to_replace: 0,
            replaced: 0,
            reason: None,
            started_at: jiff::Timestamp::now().to_string(),
            finished_at: None,
        };
        st.update = Some(status.clone());
        Ok(status)
    })?;
    let servers: Vec<&str> = engines.iter().map(|e| e.server()).collect();
    ctx.journal.record(NewEvent {
        service,
        action: Action::Update,
        reason: format!(
            "{} to {image} started: {} on {}",
            kind_words(kind),
            if pull == Pull::Always {
                "pulling"
            } else {
                "pulling where missing"
            },
            servers.join(", ")
        ),
        ..Default::default()
    });
    let (ctx2, rt2, service2) = (ctx.clone(), rt.clone(), service.to_owned());
    let task = tokio::spawn(async move {
        prepare(&ctx2, &rt2, &service2, engines, &image, plan, pull).await;
    });
    // A panicking update task must not leave the service refusing updates forever.
    let (rt3, journal, service3) = (rt.clone(), ctx.journal.clone(), service.to_owned());
    tokio::spawn(async move {
        if let Err(e) = task.await {
            let reason = format!("the update task failed: {e}");
            rt3.update(|st| {
                if let Some(u) = st
                    .update
                    .as_mut()
                    .filter(|u| u.phase == UpdatePhase::Pulling)
                {
                    u.finish(UpdatePhase::Failed, Some(reason.clone()));
                }
            });
            journal.record(NewEvent {
                service: &service3,
                action: Action::Error,
                reason,
                ..Default::default()
            });
        }
    });
    Ok(status)
}

fn kind_words(kind: UpdateKind) -> &'static str {
    match kind {
        UpdateKind::Deploy => "deploy",
        UpdateKind::RollingUpdate => "rolling update",
        UpdateKind::Rollback => "rollback",
    }
}

/// One server's pull: the image it resolved to, or why it failed.
async fn pull_one(
    engine: &dyn DockerApi,
    image: &str,
    pull: Pull,
    creds: Option<&crate::config::Credentials>,
    rt: &ServiceRuntime,
    i: usize,
) -> Result<ImagePin, String> {
    let set = |state: &str, seconds: Option<f64>, error: Option<String>, id: Option<String>| {
        rt.update(|st| {
            if let Some(p) = st.update.as_mut().and_then(|u| u.pulls.get_mut(i)) {
                p.state = state.to_owned();
                p.seconds = seconds;
                p.error = error;
                p.image_id = id;
            }
        });
    };
    let started = Instant::now();
    if pull == Pull::IfMissing {
        match engine.resolve(image).await {
            Ok(Some(pin)) => {
                set("present", Some(0.0), None, Some(pin.id.clone()));
                return Ok(pin);
            }
            Ok(None) => {}
            Err(e) => {
                let e = e.to_string();
                set(
                    "failed",
                    Some(started.elapsed().as_secs_f64()),
                    Some(e.clone()),
                    None,
                );
                return Err(e);
            }
        }
    }
    set("pulling", None, None, None);
    let result = match engine.pull(image, creds).await {
        Ok(()) => match engine.resolve(image).await {
            Ok(Some(pin)) => Ok(pin),
            Ok(None) => Err(format!(
                "server {}: {image} is not there after pulling it",
                engine.server()
            )),
            Err(e) => Err(e.to_string()),
        },
        Err(e @ EngineError::Pull { .. }) => Err(e.to_string()),
        Err(e) => Err(format!(
            "{e} (after {:.1}s)",
            started.elapsed().as_secs_f64()
        )),
    };
    let result = result.map_err(|e| match creds {
        Some(c) => format!(
            "{e} (pulled with the credentials of registry {}, user {})",
            c.registry, c.username
        ),
        None => e,
    });
    let secs = Some((started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    match &result {
        Ok(pin) => set("pulled", secs, None, Some(pin.id.clone())),
        Err(e) => set("failed", secs, Some(e.clone()), None),
    }
    result
}

async fn prepare(
    ctx: &Arc<Context>,
    rt: &Arc<ServiceRuntime>,
    service: &str,
    engines: Vec<Arc<dyn DockerApi>>,
    image: &str,
    plan: Plan,
    pull: Pull,
) {
    let fail = |reason: String| {
        rt.update(|st| {
            if let Some(u) = st.update.as_mut() {
                u.finish(UpdatePhase::Failed, Some(reason.clone()));
            }
        });
        ctx.journal.record(NewEvent {
            service,
            action: Action::Update,
            reason: format!("update to {image} failed, nothing was replaced: {reason}"),
            ..Default::default()
        });
    };
    let creds = match ctx.config().credentials_for(image) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // A rollback pulls the exact image it pinned (by digest when there is one).
    let pull_ref = match &plan {
        Plan::New(_) => image.to_owned(),
        Plan::Pinned(rev) => rev.pull_ref().to_owned(),
    };
    let started = Instant::now();
    let results = futures_util::future::join_all(
        engines
            .iter()
            .enumerate()
            .map(|(i, e)| pull_one(e.as_ref(), &pull_ref, pull, creds.as_ref(), rt, i)),
    )
    .await;
    let mut pins = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(p) => pins.push(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return fail(errors.join("; "));
    }
    let ids: BTreeSet<&str> = pins.iter().map(|p| p.id.as_str()).collect();
    if ids.len() > 1 {
        return fail(format!(
            "the servers resolved {image} to different images ({}); push again and retry",
            ids.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let rev = match plan {
        Plan::Pinned(rev) => {
            if pins.first().is_some_and(|p| p.id != rev.image.id) {
                return fail(format!(
                    "{} resolved to {} instead of the pinned {}",
                    pull_ref, pins[0].id, rev.image.id
                ));
            }
            *rev
        }
        Plan::New(spec) => {
            let digest = pins.iter().find_map(|p| p.digest.clone());
            let mut pin = pins.into_iter().next().expect("at least one server");
            pin.reference = image.to_owned();
            pin.digest = digest;
            Revision::new(*spec, pin)
        }
    };
    let cfg = ctx.config();
    let Some(svc) = cfg.service(service) else {
        return fail("the service was removed from the config".into());
    };
    let replace_all =
        rt.update(|st| st.update.as_ref().map(|u| u.kind)) == Some(UpdateKind::RollingUpdate);
    let (to_replace, from) = rt.update(|st| {
        let ids: BTreeSet<String> = st
            .replicas
            .values()
            .filter(|r| r.active() && (replace_all || r.revision != rev.id))
            .map(|r| r.id.clone())
            .collect();
        let n = ids.len() as u32;
        let from = st.target.clone();
        st.target = Some(rev.clone());
        if n > 0 {
            st.rollout = Some(Rollout::new(
                svc,
                rev.clone(),
                from.clone(),
                ids,
                Instant::now(),
            ));
        }
        if let Some(u) = st.update.as_mut() {
            u.to = Some(rev.clone());
            u.to_replace = n;
            u.phase = UpdatePhase::Rolling;
            if n == 0 {
                u.finish(UpdatePhase::Done, None);
            }
        }
        (n, from)
    });
    ctx.journal.activate_revision(service, &rev);
    ctx.journal.record(NewEvent {
        service,
        action: Action::Update,
        reason: format!(
            "{image} is {} on {} server(s) ({:.1}s); rolling {to_replace} replica(s) from {} to revision {}",
            crate::release::short_image_id(&rev.image.id),
            engines.len(),
            started.elapsed().as_secs_f64(),
            from.as_ref().map_or_else(|| "-".to_owned(), |f| f.id.clone()),
            rev.describe()
        ),
        details: Some(serde_json::json!({
            "revision": rev.id,
            "image": rev.image.reference,
            "image_id": rev.image.id,
            "digest": rev.image.digest,
            "from": from.as_ref().map(|f| f.id.clone()),
        })),
        ..Default::default()
    });
    rt.wake.notify_one();
}
