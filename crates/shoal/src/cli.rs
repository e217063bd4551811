//! Client commands: call the API of a running `shoal serve` and print tables or JSON.
//!
//! Answers are read into the API's own types ([`crate::api::model`]), the same the server
//! builds them from; `--json` prints them back as JSON.

use std::process::ExitCode;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::model::{
    ErrorBody, EventList, EventsQuery, ReloadResponse, ScaleResponse, ServerList, ServiceList,
    ServiceStats, ServiceSummary, Status,
};

mod release;

pub use release::{deploy, rollback, EXIT_ROLLED_BACK};

/// A client of the shoal API.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    json: bool,
    http: reqwest::Client,
}

/// The API could not be reached (exit 3) or answered an error (exit 1).
#[derive(Debug)]
enum Failure {
    Unreachable(String),
    Api(u16, String),
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8000`).
    #[must_use]
    pub fn new(base: &str, token: Option<String>, json: bool) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            json,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("HTTP client"),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        query: Option<&EventsQuery>,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = if post {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        if let Some(q) = query {
            req = req.query(q);
        }
        if post {
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
        }
        self.read(req, &url).await
    }

    /// Sends `req` and reads its answer into `T`, or the API's error.
    async fn read<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, Failure> {
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let unreadable = |e: &dyn std::fmt::Display| {
            Failure::Api(status.as_u16(), format!("{url}: unreadable answer: {e}"))
        };
        let body = resp.bytes().await.map_err(|e| unreadable(&e))?;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|e| unreadable(&e))
        } else {
            let err: ErrorBody = serde_json::from_slice(&body).map_err(|e| unreadable(&e))?;
            Err(Failure::Api(status.as_u16(), err.error))
        }
    }

    async fn run<T: Serialize + DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        query: Option<&EventsQuery>,
        table: impl FnOnce(&T) -> String,
    ) -> ExitCode {
        match self.call::<T>(post, path, query).await {
            Ok(v) => {
                if self.json {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", table(&v));
                }
                ExitCode::SUCCESS
            }
            Err(Failure::Unreachable(m)) => {
                eprintln!("error: {m} (is `shoal serve` running? set --api or SHOAL_API)");
                ExitCode::from(3)
            }
            Err(Failure::Api(code, m)) => {
                if code == 401 {
                    eprintln!("error ({code}): {m} (set SHOAL_API_TOKEN)");
                } else {
                    eprintln!("error ({code}): {m}");
                }
                ExitCode::from(1)
            }
        }
    }
}

/// Characters kept as they are in a path segment (RFC 3986 unreserved); everything else,
/// `/`, `#`, `?` and `%` included, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `/services/<service><rest>`: the name must be a service name (the config's rule) and is
/// percent-encoded, so no argument can reach another endpoint (`../config/reload#` is
/// refused, and would be one opaque segment anyway). A refused name is exit code 2.
pub fn service_path(service: &str, rest: &str) -> Result<String, ExitCode> {
    if let Err(e) = crate::config::syntax::object_name(service) {
        eprintln!("error: {service:?} is not a service name: it {e}");
        return Err(ExitCode::from(2));
    }
    Ok(format!("/services/{}{rest}", encode_segment(service)))
}

fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Renders rows as an aligned table with a header.
#[must_use]
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// A table cell: `-` for nothing, numbers as JSON writes them.
trait Cell {
    fn cell(&self) -> String;
}

impl Cell for String {
    fn cell(&self) -> String {
        self.clone()
    }
}

impl Cell for f64 {
    fn cell(&self) -> String {
        serde_json::Number::from_f64(*self).map_or_else(|| "-".to_owned(), |n| n.to_string())
    }
}

macro_rules! integer_cell {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn cell(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_cell!(u32, u64, usize);

impl<T: Cell> Cell for Option<T> {
    fn cell(&self) -> String {
        self.as_ref().map_or_else(|| "-".to_owned(), Cell::cell)
    }
}

/// The JSON name of an enum value (`ready`, `up`, `threshold`).
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "-".to_owned(),
    }
}

fn services_table(list: &[ServiceSummary]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let until = |w: &crate::api::model::WindowState| w.next_change_local.cell();
            vec![
                v.name.clone(),
                v.image.clone(),
                v.port.cell(),
                format!("{}/{}", v.replicas.ready, v.desired),
                format!("{}..{}", v.min_replicas, v.max_replicas),
                v.autoscaler
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |a| name(&a.policy)),
                v.utilization.cell(),
                match &v.business_hours {
                    None => "any time".to_owned(),
                    Some(w) if w.open => format!("open until {}", until(w)),
                    Some(w) => format!("closed until {}", until(w)),
                },
                v.last_error.cell(),
            ]
        })
        .collect();
    let header = [
        "SERVICE",
        "IMAGE",
        "PORT",
        "READY/DESIRED",
        "BOUNDS",
        "POLICY",
        "UTIL%",
        "SCALING",
        "LAST ERROR",
    ];
    table(&header, &rows)
}

/// `shoal status`.
pub async fn status(c: &Client) -> ExitCode {
    c.run(false, "/status", None, |v: &Status| {
        let mut out = format!(
            "shoal {} up {}s; servers {}/{} up\n\n",
            v.version, v.uptime_seconds, v.servers.up, v.servers.total
        );
        out.push_str(&services_table(&v.services));
        out
    })
    .await
}

/// `shoal services`.
pub async fn services(c: &Client) -> ExitCode {
    c.run(false, "/services", None, |v: &ServiceList| {
        services_table(&v.services)
    })
    .await
}

/// `shoal servers`.
pub async fn servers(c: &Client) -> ExitCode {
    c.run(false, "/servers", None, |v: &ServerList| {
        let rows: Vec<Vec<String>> = v
            .servers
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    x.host.clone(),
                    name(&x.status),
                    x.since.cell(),
                    format!("{}/{}", x.containers_running, x.max_containers),
                    x.serving.cell(),
                    x.docker_version.cell(),
                    x.clock_skew_ms.map(|ms| format!("{ms}ms")).cell(),
                    x.endpoint.clone(),
                    x.reason.cell(),
                ]
            })
            .collect();
        table(
            &[
                "SERVER",
                "HOST",
                "STATUS",
                "SINCE",
                "RUNNING/MAX",
                "SERVING",
                "DOCKER",
                "SKEW",
                "ENDPOINT",
                "REASON",
            ],
            &rows,
        )
    })
    .await
}

/// `shoal stats SERVICE`.
pub async fn stats(c: &Client, service: &str) -> ExitCode {
    let path = match service_path(service, "/stats") {
        Ok(p) => p,
        Err(code) => return code,
    };
    c.run(false, &path, None, |v: &ServiceStats| {
        let svc = &v.service;
        let mut out = format!(
            "{}: {}/{} ready, desired {}, utilization {}%\n\n",
            svc.name,
            svc.replicas.ready,
            svc.replicas.total,
            svc.desired,
            svc.utilization.cell()
        );
        if let Some(l) = svc.autoscaler.as_ref().and_then(|a| a.learned.as_ref()) {
            out.push_str(&learned_line(l));
        }
        let rows: Vec<Vec<String>> = v
            .containers
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    x.server.clone(),
                    x.address.cell(),
                    name(&x.phase),
                    x.lb_status.cell(),
                    x.cpu_percent.cell(),
                    x.revision.clone(),
                    if x.image_id.is_empty() {
                        "-".to_owned()
                    } else {
                        crate::release::short_image_id(&x.image_id)
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "REPLICA", "SERVER", "ADDRESS", "PHASE", "HAPROXY", "CPU%", "REVISION", "IMAGE",
            ],
            &rows,
        ));
        out.push_str(&startup_lines(v));
        out
    })
    .await
}

/// The adaptive policy's estimate, in one line.
fn learned_line(l: &crate::api::model::LearnedCapacity) -> String {
    match (
        l.requests_per_second_at_full,
        l.requests_per_second_at_target,
    ) {
        (Some(full), Some(at_target)) => format!(
            "adaptive: learned {at_target} req/s per replica at the target ({full} at 100%), \
             from {} observations, last {}\n\n",
            l.observations,
            l.updated.cell()
        ),
        _ => format!(
            "adaptive: no capacity learned yet ({} of {} observations): tracking CPU\n\n",
            l.observations, l.needed
        ),
    }
}

/// The GPU, warm-up and sleep lines of `shoal stats` (none when there is nothing to say).
fn startup_lines(v: &ServiceStats) -> String {
    let st = &v.startup;
    let secs = |d: Option<f64>| d.map_or_else(|| "-".to_owned(), |d| format!("{d:.2}s"));
    let mut out = String::new();
    let gpus: Vec<String> = v
        .containers
        .iter()
        .filter(|x| !x.gpus.is_empty())
        .map(|x| format!("{} {}", x.name, x.gpus.join(",")))
        .collect();
    if !gpus.is_empty() {
        out.push_str(&format!("\nGPUs: {}\n", gpus.join("; ")));
    }
    if st.last_warmup_seconds.is_some() || st.start_delay_seconds.is_some() {
        out.push_str(&format!(
            "\nwarm-up: last {}, median {}; start to rotation (median): {}\n",
            secs(st.last_warmup_seconds),
            secs(st.median_warmup_seconds),
            secs(st.start_delay_seconds)
        ));
    }
    if st.wake_on_request {
        out.push_str(&format!(
            "\nwake on request: {}; idle {}; {} wake-up(s), {} sleep(s)\n",
            if st.asleep {
                "asleep"
            } else if st.waking {
                "waking"
            } else {
                "awake"
            },
            secs(st.idle_seconds),
            st.wakes,
            st.sleeps
        ));
    }
    for (server, e) in &st.gpu_backoff {
        out.push_str(&format!("\nno GPU replicas on {server} for now: {e}\n"));
    }
    if let Some(e) = &v.service.last_error {
        out.push_str(&format!("\nlast error: {e}\n"));
    }
    out
}

/// `shoal scale SERVICE up|down`.
pub async fn scale(c: &Client, service: &str, up: bool) -> ExitCode {
    let dir = if up { "up" } else { "down" };
    let path = match service_path(service, &format!("/scale/{dir}")) {
        Ok(p) => p,
        Err(code) => return code,
    };
    c.run(true, &path, None, |v: &ScaleResponse| {
        format!("{service}: desired {} -> {}\n", v.previous, v.desired)
    })
    .await
}

/// `shoal reload`.
pub async fn reload(c: &Client) -> ExitCode {
    c.run(true, "/config/reload", None, |v: &ReloadResponse| {
        if v.changes.is_empty() {
            "reloaded; nothing changed\n".to_owned()
        } else {
            let mut out = "reloaded:\n".to_owned();
            for ch in &v.changes {
                out.push_str(&format!("  {ch}\n"));
            }
            out
        }
    })
    .await
}

/// `shoal events SERVICE`.
pub async fn events(c: &Client, service: &str, limit: usize) -> ExitCode {
    let path = match service_path(service, "/events") {
        Ok(p) => p,
        Err(code) => return code,
    };
    let query = EventsQuery {
        limit: Some(limit),
        offset: None,
    };
    c.run(false, &path, Some(&query), |v: &EventList| {
        let rows: Vec<Vec<String>> = v
            .events
            .iter()
            .map(|e| {
                let change = match (e.desired_before, e.desired_after) {
                    (Some(a), Some(b)) if a != b => format!("{a}->{b}"),
                    (Some(a), Some(_)) => a.to_string(),
                    _ => "-".to_owned(),
                };
                vec![e.at.clone(), e.action.clone(), change, e.reason.clone()]
            })
            .collect();
        table(&["TIME", "ACTION", "DESIRED", "REASON"], &rows)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_cannot_leave_their_path_segment() {
        assert_eq!(
            service_path("web-1", "/deploy").unwrap(),
            "/services/web-1/deploy"
        );
        for bad in [
            "../config/reload#",
            "..",
            ".",
            "web/../../x",
            "a?b",
            "Web",
            "",
        ] {
            assert!(service_path(bad, "/deploy").is_err(), "{bad:?}");
        }
        assert_eq!(
            encode_segment("../config/reload#"),
            "..%2Fconfig%2Freload%23"
        );
        assert_eq!(encode_segment("a b?c%d"), "a%20b%3Fc%25d");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    LONGER\nxxx  y\n");
    }

    #[test]
    fn cells_print_numbers_as_json_does_and_nothing_as_a_dash() {
        assert_eq!(0.0_f64.cell(), "0.0");
        assert_eq!(0.15_f64.cell(), "0.15");
        assert_eq!(Some(75.0_f64).cell(), "75.0");
        assert_eq!(None::<f64>.cell(), "-");
        assert_eq!(Some(3_u32).cell(), "3");
        assert_eq!(None::<String>.cell(), "-");
        assert_eq!(name(&crate::api::model::Phase::Draining), "draining");
    }

    #[test]
    fn services_table_reads_the_typed_summary() {
        use crate::api::model::{HealthCheckInfo, ReplicaCounts, WindowState};
        let svc = ServiceSummary {
            name: "web".into(),
            image: "img:1".into(),
            port: 8080,
            revision: "abc".into(),
            min_replicas: 1,
            max_replicas: 3,
            desired: 2,
            replicas: ReplicaCounts {
                ready: 1,
                total: 2,
                ..ReplicaCounts::default()
            },
            scale_up_threshold: 75.0,
            scale_down_threshold: 25.0,
            cooldown_period: 60,
            cooldown_remaining_seconds: 0,
            business_hours_only: true,
            business_hours: Some(WindowState {
                open: false,
                next_change: Some("2026-03-30T07:00:00Z".into()),
                next_change_local: Some("2026-03-30T09:00:00+02:00".into()),
                timezone: "Europe/Berlin".into(),
            }),
            utilization: Some(0.5),
            autoscaler: None,
            health_check: HealthCheckInfo {
                path: "/".into(),
                interval: 1,
                timeout: 1,
            },
            rollout: None,
            last_error: None,
        };
        let t = services_table(&[svc]);
        let row = t.lines().nth(1).unwrap();
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "web",
                "img:1",
                "8080",
                "1/2",
                "1..3",
                "-",
                "0.5",
                "closed until 2026-03-30T09:00:00+02:00",
                "-"
            ],
            "{t}"
        );
    }
}
