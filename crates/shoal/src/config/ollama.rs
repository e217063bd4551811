//! The keys for GPU services that load a model and may sleep (an Ollama fleet): `gpus` and
//! `gpu_sharing` of a service, `gpus` of a server, `warmup`, `wake_on_request`,
//! `activation_timeout`, `idle_to_zero_after` and the top-level `activator`, with their
//! checks. All optional (shoal additions).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durations::MAX_WAIT_SECS;
use super::{Config, ConfigIssue, Located, ServiceConfig};

/// What a service asks for: `all` GPUs of its server, a count, or specific device IDs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum GpuRequest {
    /// This many devices.
    Count(u32),
    /// These device IDs (indexes such as `"0"` or UUIDs such as `"GPU-3f2a..."`).
    Devices(Vec<String>),
    /// A word: only `all` is valid (checked by [`Config::validate`]).
    Word(String),
}

impl GpuRequest {
    /// Whether it is `all`.
    #[must_use]
    pub fn is_all(&self) -> bool {
        matches!(self, Self::Word(w) if w == "all")
    }
}

/// What a server has: a count (devices `0`..`n-1`) or device IDs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ServerGpus {
    /// `n` devices, IDs `0`..`n-1` (NVIDIA's indexes).
    Count(u32),
    /// These device IDs.
    Devices(Vec<String>),
}

impl ServerGpus {
    /// The device IDs.
    #[must_use]
    pub fn devices(&self) -> Vec<String> {
        match self {
            Self::Count(n) => (0..*n).map(|i| i.to_string()).collect(),
            Self::Devices(d) => d.clone(),
        }
    }
}

/// A request a new replica must answer with 2xx before it enters HAProxy (for Ollama: a
/// tiny `/api/generate` that loads the model).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupConfig {
    /// HTTP path.
    pub path: Located<String>,
    /// `GET`, `POST` or `PUT`; default `POST` with a body, else `GET`.
    #[serde(default)]
    pub method: Option<Located<String>>,
    /// Request body (sent as `application/json`).
    #[serde(default)]
    pub body: Option<String>,
    /// Seconds the request may take.
    #[serde(default = "default_warmup_timeout")]
    pub timeout: Located<u64>,
}

impl WarmupConfig {
    /// The method.
    #[must_use]
    pub fn method(&self) -> &str {
        match &self.method {
            Some(m) => m.as_str(),
            None if self.body.is_some() => "POST",
            None => "GET",
        }
    }

    /// The timeout. Valid after [`Config::validate`].
    #[must_use]
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.value.clamp(1, MAX_WAIT_SECS))
    }
}

fn default_warmup_timeout() -> Located<u64> {
    Located::unlocated(300)
}

/// The activator: the listener in `shoal serve` that HAProxy sends a service's requests to
/// when it has no replica (its backup server), which wakes the service.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActivatorConfig {
    /// `ip:port` it listens on; HAProxy reaches it there. Used only when a service has
    /// `wake_on_request: true`.
    #[serde(default = "default_activator_bind")]
    pub bind: Located<String>,
}

impl Default for ActivatorConfig {
    fn default() -> Self {
        Self {
            bind: default_activator_bind(),
        }
    }
}

fn default_activator_bind() -> Located<String> {
    Located::unlocated("127.0.0.1:8001".to_owned())
}

impl ActivatorConfig {
    /// The address. Valid after [`Config::validate`].
    #[must_use]
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.bind.parse().ok()
    }
}

/// Default `activation_timeout`, seconds.
pub(super) fn default_activation_timeout() -> Located<u64> {
    Located::unlocated(120)
}

impl ServiceConfig {
    /// How long a request waits for a replica of a sleeping service.
    #[must_use]
    pub fn activation_timeout(&self) -> Duration {
        Duration::from_secs(self.activation_timeout.value.clamp(1, MAX_WAIT_SECS))
    }

    /// Idle time after which an awake service goes back to zero: `idle_to_zero_after`, or
    /// for a business-hours service woken outside its window (`off_hours_replicas: 0`) 15
    /// minutes when unset.
    #[must_use]
    pub fn idle_to_zero_after(&self) -> Duration {
        Duration::from_secs(
            self.idle_to_zero_after
                .as_ref()
                .map_or(DEFAULT_IDLE_SECS, |s| s.value)
                .clamp(1, MAX_WAIT_SECS),
        )
    }

    /// Whether it may be at zero replicas and be woken by a request.
    #[must_use]
    pub fn sleeps(&self) -> bool {
        self.wake_on_request
            && (self.idle_to_zero_after.is_some()
                || (self.business_hours_only && self.off_hours_replicas() == 0))
    }

    /// Whether its replicas need a GPU.
    #[must_use]
    pub fn needs_gpu(&self) -> bool {
        self.gpus.is_some()
    }
}

/// Idle seconds before a woken business-hours service goes back to zero when
/// `idle_to_zero_after` is unset.
pub const DEFAULT_IDLE_SECS: u64 = 15 * 60;

fn issue<T>(l: &Located<T>, message: String) -> ConfigIssue {
    ConfigIssue {
        line: l.line,
        column: l.column,
        message,
    }
}

fn seconds(out: &mut Vec<ConfigIssue>, n: &Located<u64>, key: &str) {
    if n.value == 0 {
        out.push(issue(n, format!("{key} must be at least 1 (seconds)")));
    } else if n.value > MAX_WAIT_SECS {
        out.push(issue(
            n,
            format!(
                "{key} {} is above the limit of {MAX_WAIT_SECS} seconds (one day)",
                n.value
            ),
        ));
    }
}

fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

impl Config {
    /// The checks of the keys of this module.
    pub(super) fn validate_ollama(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let mut most_gpus = 0usize;
        for (i, s) in self.servers.iter().enumerate() {
            let Some(g) = &s.gpus else { continue };
            let key = format!("servers[{i}].gpus");
            if let ServerGpus::Devices(d) = &g.value {
                let mut seen = std::collections::BTreeSet::new();
                for id in d {
                    if !valid_device_id(id) {
                        out.push(issue(
                            g,
                            format!("{key}: device ID {id:?} must be 1-128 characters of a-z, A-Z, 0-9, '-', '_', ':' or '.'"),
                        ));
                    } else if !seen.insert(id) {
                        out.push(issue(g, format!("{key}: device ID {id:?} appears twice")));
                    }
                }
            }
            most_gpus = most_gpus.max(g.devices().len());
        }
        let mut wakes = false;
        for (name, svc) in &self.services {
            let key = format!("services.{name}");
            if let Some(g) = &svc.gpus {
                match &g.value {
                    GpuRequest::Word(w) if w != "all" => out.push(issue(
                        g,
                        format!("{key}.gpus {w:?} must be all, a number of GPUs or a list of device IDs"),
                    )),
                    GpuRequest::Count(0) => out.push(issue(
                        g,
                        format!("{key}.gpus must be at least 1 (leave it out for no GPU)"),
                    )),
                    GpuRequest::Devices(d) if d.is_empty() || d.iter().any(|id| !valid_device_id(id)) => {
                        out.push(issue(
                            g,
                            format!("{key}.gpus must list device IDs of 1-128 characters of a-z, A-Z, 0-9, '-', '_', ':' or '.'"),
                        ));
                    }
                    GpuRequest::Count(n) if most_gpus > 0 && *n as usize > most_gpus => out.push(issue(
                        g,
                        format!(
                            "{key}.gpus asks for {n} GPU(s) per replica but no server has that many (servers[].gpus: the most is {most_gpus})"
                        ),
                    )),
                    GpuRequest::Devices(d) if most_gpus > 0 => {
                        let fits = self.servers.iter().any(|s| {
                            s.gpus.as_ref().is_some_and(|g| {
                                let have = g.devices();
                                d.iter().all(|id| have.contains(id))
                            })
                        });
                        if !fits {
                            out.push(issue(
                                g,
                                format!("{key}.gpus lists device IDs {d:?} that no server has all of (servers[].gpus)"),
                            ));
                        }
                    }
                    _ if most_gpus == 0 => out.push(issue(
                        g,
                        format!("{key}.gpus is set but no server has GPUs (servers[].gpus)"),
                    )),
                    _ => {}
                }
            } else if svc.gpu_sharing {
                out.push(ConfigIssue {
                    line: 0,
                    column: 0,
                    message: format!("{key}.gpu_sharing is set but {key}.gpus is not"),
                });
            }
            if let Some(w) = &svc.warmup {
                let p = &w.path;
                if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    out.push(issue(
                        p,
                        format!(
                            "{key}.warmup.path {:?} must start with '/' and have no spaces",
                            p.value
                        ),
                    ));
                }
                if let Some(m) = &w.method {
                    if !matches!(m.as_str(), "GET" | "POST" | "PUT") {
                        out.push(issue(
                            m,
                            format!("{key}.warmup.method {:?} must be GET, POST or PUT", m.value),
                        ));
                    }
                }
                if w.method() == "GET" && w.body.is_some() {
                    out.push(issue(
                        p,
                        format!("{key}.warmup: a body needs method POST or PUT"),
                    ));
                }
                seconds(&mut out, &w.timeout, &format!("{key}.warmup.timeout"));
            }
            seconds(
                &mut out,
                &svc.activation_timeout,
                &format!("{key}.activation_timeout"),
            );
            if let Some(i) = &svc.idle_to_zero_after {
                seconds(&mut out, i, &format!("{key}.idle_to_zero_after"));
                if !svc.wake_on_request {
                    out.push(issue(
                        i,
                        format!(
                            "{key}.idle_to_zero_after needs wake_on_request: true: at zero replicas every request would fail"
                        ),
                    ));
                }
            }
            if svc.wake_on_request {
                wakes = true;
                if !svc.sleeps() {
                    out.push(ConfigIssue {
                        line: 0,
                        column: 0,
                        message: format!(
                            "{key}.wake_on_request: the service never sleeps: set idle_to_zero_after, or business_hours_only: true with off_hours_replicas: 0"
                        ),
                    });
                }
            }
        }
        if wakes && self.activator.addr().is_none() {
            out.push(issue(
                &self.activator.bind,
                format!(
                    "activator.bind {:?} must be ip:port (HAProxy sends requests for sleeping services there)",
                    self.activator.bind.value
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(servers_extra: &str, service_extra: &str) -> Result<Config, Vec<ConfigIssue>> {
        let yaml = format!(
            "servers:\n  - host: 127.0.0.1\n    name: a\n    docker_host: unix:///var/run/docker.sock\n{servers_extra}services:\n  web:\n    image: img\n    port: 8080\n{service_extra}"
        );
        Config::parse(&yaml, "t.yaml").map_err(|e| e.issues)
    }

    fn message(r: Result<Config, Vec<ConfigIssue>>) -> (u64, String) {
        let issues = r.expect_err("must be refused");
        assert_eq!(issues.len(), 1, "{issues:?}");
        (issues[0].line, issues[0].message.clone())
    }

    #[test]
    fn gpus_of_servers_and_services_load() {
        let c = parse(
            "    gpus: 2\n  - host: h\n    name: b\n    docker_host: tcp://h:2375\n    docker_tls: false\n    gpus: [GPU-1a, GPU-2b]\n",
            "    gpus: 1\n    gpu_sharing: true\n",
        )
        .unwrap();
        assert_eq!(c.servers[0].gpus.as_ref().unwrap().devices(), ["0", "1"]);
        assert_eq!(
            c.servers[1].gpus.as_ref().unwrap().devices(),
            ["GPU-1a", "GPU-2b"]
        );
        let svc = &c.services["web"];
        assert_eq!(svc.gpus.as_ref().unwrap().value, GpuRequest::Count(1));
        assert!(svc.gpu_sharing && svc.needs_gpu());
        let c = parse("    gpus: 1\n", "    gpus: all\n").unwrap();
        assert!(c.services["web"].gpus.as_ref().unwrap().is_all());
    }

    #[test]
    fn impossible_gpu_requests_are_refused_with_their_line() {
        let (line, m) = message(parse("", "    gpus: 1\n"));
        assert_eq!(line, 9);
        assert!(m.contains("no server has GPUs"), "{m}");
        let (_, m) = message(parse("    gpus: 2\n", "    gpus: 4\n"));
        assert!(
            m.contains("asks for 4 GPU(s) per replica but no server has that many"),
            "{m}"
        );
        let (_, m) = message(parse("    gpus: 2\n", "    gpus: some\n"));
        assert!(m.contains("must be all, a number of GPUs or a list"), "{m}");
        let (_, m) = message(parse("    gpus: 2\n", "    gpus: [\"7\"]\n"));
        assert!(m.contains("that no server has all of"), "{m}");
        let (_, m) = message(parse("    gpus: [\"0\", \"0\"]\n", ""));
        assert!(m.contains("appears twice"), "{m}");
        let (_, m) = message(parse("", "    gpu_sharing: true\n"));
        assert!(m.contains("gpus is not"), "{m}");
    }

    #[test]
    fn warmup_defaults_and_checks() {
        let c = parse(
            "",
            "    warmup:\n      path: /api/generate\n      body: '{}'\n",
        )
        .unwrap();
        let w = c.services["web"].warmup.as_ref().unwrap();
        assert_eq!((w.method(), w.timeout().as_secs()), ("POST", 300));
        let (line, m) = message(parse("", "    warmup:\n      path: api\n"));
        assert_eq!(line, 10);
        assert!(m.contains("must start with '/'"), "{m}");
        let (_, m) = message(parse(
            "",
            "    warmup:\n      path: /x\n      method: GET\n      body: '{}'\n",
        ));
        assert!(m.contains("a body needs method POST or PUT"), "{m}");
        let (_, m) = message(parse(
            "",
            "    warmup:\n      path: /x\n      method: DELETE\n",
        ));
        assert!(m.contains("must be GET, POST or PUT"), "{m}");
        let (_, m) = message(parse("", "    warmup:\n      path: /x\n      timeout: 0\n"));
        assert!(m.contains("at least 1"), "{m}");
    }

    #[test]
    fn waking_needs_a_service_that_can_sleep_and_the_reverse() {
        let c = parse(
            "",
            "    wake_on_request: true\n    idle_to_zero_after: 600\n",
        )
        .unwrap();
        let svc = &c.services["web"];
        assert!(svc.sleeps());
        assert_eq!(svc.idle_to_zero_after().as_secs(), 600);
        assert_eq!(svc.activation_timeout().as_secs(), 120);
        let c = parse(
            "",
            "    wake_on_request: true\n    business_hours_only: true\n    off_hours_replicas: 0\n",
        )
        .unwrap();
        assert!(c.services["web"].sleeps());
        assert_eq!(
            c.services["web"].idle_to_zero_after().as_secs(),
            DEFAULT_IDLE_SECS
        );
        let (_, m) = message(parse("", "    wake_on_request: true\n"));
        assert!(m.contains("the service never sleeps"), "{m}");
        let (line, m) = message(parse("", "    idle_to_zero_after: 60\n"));
        assert_eq!(line, 9);
        assert!(m.contains("needs wake_on_request: true"), "{m}");
        let (_, m) = message(parse(
            "",
            "    wake_on_request: true\n    idle_to_zero_after: 60\n    activation_timeout: 100000\n",
        ));
        assert!(m.contains("above the limit"), "{m}");
        let yaml = "servers:\n  - host: h\n    name: a\n    docker_host: tcp://h:1\n    docker_tls: false\nservices:\n  web:\n    image: img\n    port: 8080\n    wake_on_request: true\n    idle_to_zero_after: 60\nactivator:\n  bind: localhost:8001\n";
        let issues = Config::parse(yaml, "t.yaml").unwrap_err().issues;
        assert_eq!(issues[0].line, 13, "{issues:?}");
        assert!(issues[0].message.contains("must be ip:port"), "{issues:?}");
    }
}
