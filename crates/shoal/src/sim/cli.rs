//! `shoal simulate` as a command: reads the config and the trace, runs one policy or all of
//! them (`--compare`), prints the summary, the table, the timeline or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{
    compare_table, load_trace, run, setup, Contender, Hpa, Model, SimReport, TIMELINE_HEADER,
};
use crate::config::Config;
use crate::policy::PolicyKind;

/// Most evaluations one run may take (trace span / interval): a longer run is refused
/// before it starts.
pub const MAX_EVALUATIONS: f64 = 1_000_000.0;

/// Which decides (`--policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// One of shoal's policies.
    Policy(PolicyKind),
    /// The Kubernetes HPA reference.
    Hpa,
}

/// What `shoal simulate` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// The trace file.
    pub trace: PathBuf,
    /// Service simulated.
    pub service: Option<String>,
    /// `--policy`; `None`: the service's.
    pub policy: Option<Choice>,
    /// `--compare`: every policy and the HPA reference.
    pub compare: bool,
    /// Load units per replica at 100%.
    pub capacity: f64,
    /// Seconds from start to serving.
    pub start_delay: f64,
    /// Seconds between evaluations; `None`: `autoscaler.check_interval`.
    pub interval: Option<f64>,
    /// Print the timeline.
    pub timeline: bool,
    /// Print JSON.
    pub json: bool,
}

/// Runs `shoal simulate`: exit 0, or 2 with the error on stderr.
#[must_use]
pub fn main(o: &Options) -> ExitCode {
    match simulate(o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn simulate(o: &Options) -> Result<(), String> {
    let cfg = Config::load(&o.config).map_err(|e| e.to_string())?;
    let kind = match o.policy {
        Some(Choice::Policy(k)) => Some(k),
        _ => None,
    };
    let setup = setup(&cfg, o.service.as_deref(), kind)
        .map_err(|e| format!("{}: error: {e}", o.config.display()))?;
    let model = Model {
        capacity: o.capacity,
        start_delay: o.start_delay,
        interval: o.interval.unwrap_or(setup.interval),
    };
    model.check().map_err(|e| format!("error: {e}"))?;
    let points = load_trace(&o.trace).map_err(|e| e.to_string())?;
    let contenders = if o.compare {
        Contender::all(&setup.policy)
    } else if o.policy == Some(Choice::Hpa) {
        vec![Contender::Hpa(Hpa::new(setup.policy.min, setup.policy.max))]
    } else {
        vec![Contender::Policy(setup.policy.clone())]
    };
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.time - a.time,
        _ => 0.0,
    };
    for c in &contenders {
        let interval = match c {
            Contender::Policy(_) => model.interval,
            Contender::Hpa(h) => h.sync_seconds,
        };
        if span / interval > MAX_EVALUATIONS {
            return Err(format!(
                "{}: error: {span} s of trace every {interval} s is {:.0} evaluations of {}, \
                 more than the {MAX_EVALUATIONS} a run may take: use a longer --interval or \
                 a shorter trace",
                o.trace.display(),
                span / interval,
                c.name()
            ));
        }
    }
    let reports: Vec<SimReport> = contenders
        .iter()
        .map(|c| run(c, &points, &model, o.timeline))
        .collect();
    let title = format!("{} on {}", setup.service, o.trace.display());
    if o.json {
        let values: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("service".into(), setup.service.clone().into());
                    m.insert("trace".into(), o.trace.display().to_string().into());
                    if !o.timeline {
                        m.remove("timeline");
                    }
                }
                v
            })
            .collect();
        let out = if o.compare {
            serde_json::json!({
                "service": setup.service,
                "trace": o.trace.display().to_string(),
                "reports": values,
            })
        } else {
            values.into_iter().next().unwrap_or_default()
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let text = if o.compare {
        let m = &model;
        format!(
            "simulated {title}: every policy and the Kubernetes HPA reference\n\
             model: capacity {} per replica, start delay {}s, evaluated every {}s (hpa every \
             15s); replicas [{}, {}]\n{}",
            m.capacity,
            m.start_delay,
            m.interval,
            setup.policy.min,
            setup.policy.max,
            compare_table(&reports)
        )
    } else {
        format!("simulated {title}\n{}", reports[0].summary())
    };
    if o.timeline {
        if o.compare {
            println!("policy,{TIMELINE_HEADER}");
            for r in &reports {
                print!("{}", r.timeline_rows(true));
            }
        } else {
            print!("{}", reports[0].timeline_csv());
        }
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(())
}
