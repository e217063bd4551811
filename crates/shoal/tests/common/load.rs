//! A load generator: N concurrent clients sending one request after another to a URL until
//! stopped (or until each has sent its quota), recording every request's outcome.
//!
//! A request is ok when it answers 200 and its whole body arrives. The [`Report`] counts
//! ok and failed requests, keeps the failures' errors, and gives latency figures and the
//! time of each request, for tests that look at when failures happened.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer (or the error) came.
    pub at: Instant,
    /// From sending to the end of the answer.
    pub latency: Duration,
    /// The body of a 200, or why the request failed.
    pub outcome: Result<String, String>,
}

impl Sample {
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// What to send, how often, by how many clients.
#[derive(Clone)]
pub struct LoadSpec {
    url: String,
    body: Option<String>,
    clients: usize,
    pause: Duration,
    requests: Option<u64>,
    http: Option<reqwest::Client>,
}

impl LoadSpec {
    /// `clients` concurrent clients (default 1).
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// Each client pauses this long after every request (default: none).
    pub fn pause(mut self, d: Duration) -> Self {
        self.pause = d;
        self
    }

    /// Each client sends `n` requests, then stops (default: until [`Load::finish`]).
    pub fn requests(mut self, n: u64) -> Self {
        self.requests = Some(n);
        self
    }

    /// Sends through `http` (default: a fresh connection a request, 20 s timeout).
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Starts the clients (on the current tokio runtime).
    pub fn start(self) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let http = self
            .http
            .clone()
            .unwrap_or_else(|| super::http_client(Duration::from_secs(20)));
        let tasks = (0..self.clients)
            .map(|_| {
                let (stop, samples, http) = (stop.clone(), samples.clone(), http.clone());
                let spec = self.clone();
                tokio::spawn(async move {
                    let mut sent = 0;
                    while !stop.load(Ordering::SeqCst) && spec.requests.is_none_or(|n| sent < n) {
                        let start = Instant::now();
                        let outcome = spec.send(&http).await;
                        let at = Instant::now();
                        samples.lock().unwrap().push(Sample {
                            at,
                            latency: at - start,
                            outcome,
                        });
                        sent += 1;
                        if !spec.pause.is_zero() {
                            tokio::time::sleep(spec.pause).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            tasks,
        }
    }

    async fn send(&self, http: &reqwest::Client) -> Result<String, String> {
        let req = match &self.body {
            Some(body) => http.post(&self.url).body(body.clone()),
            None => http.get(&self.url),
        };
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| error_chain(&e))?;
        if status == 200 {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }
}

/// An error with its sources ("error sending request: connection reset ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        s.push_str(&format!(": {e}"));
        src = e.source();
    }
    s
}

/// Running clients.
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// GET requests to `url`.
    pub fn get(url: impl Into<String>) -> LoadSpec {
        LoadSpec {
            url: url.into(),
            body: None,
            clients: 1,
            pause: Duration::ZERO,
            requests: None,
            http: None,
        }
    }

    /// POST requests to `url` with `body`.
    pub fn post(url: impl Into<String>, body: &str) -> LoadSpec {
        LoadSpec {
            body: Some(body.to_owned()),
            ..Self::get(url)
        }
    }

    /// Ok requests answered with `body` so far.
    pub fn served_by(&self, body: &str) -> u64 {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .filter(|s| s.outcome.as_deref() == Ok(body))
            .count() as u64
    }

    /// Stops the clients, lets each finish its request, and reports.
    pub async fn finish(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load client");
        }
        Report {
            samples: take(&self.samples),
            unfinished: 0,
        }
    }

    /// Like [`Self::finish`], giving the clients at most `limit` to finish; a client still
    /// waiting for an answer then is cut off and counted in [`Report::unfinished`].
    pub async fn finish_within(self, limit: Duration) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        let mut unfinished = 0;
        for mut t in self.tasks {
            match tokio::time::timeout_at(deadline, &mut t).await {
                Ok(done) => done.expect("load client"),
                Err(_) => {
                    t.abort();
                    unfinished += 1;
                }
            }
        }
        Report {
            samples: take(&self.samples),
            unfinished,
        }
    }
}

fn take(samples: &Mutex<Vec<Sample>>) -> Vec<Sample> {
    let mut v = std::mem::take(&mut *samples.lock().unwrap());
    v.sort_by_key(|s| s.at);
    v
}

/// Every request of a finished load, in the order the answers came.
#[derive(Debug)]
pub struct Report {
    pub samples: Vec<Sample>,
    /// Clients cut off by [`Load::finish_within`].
    pub unfinished: usize,
}

impl Report {
    pub fn total(&self) -> usize {
        self.samples.len()
    }

    pub fn ok(&self) -> u64 {
        self.samples.iter().filter(|s| s.ok()).count() as u64
    }

    pub fn failed(&self) -> u64 {
        self.total() as u64 - self.ok()
    }

    /// The errors of the first `n` failed requests, and how many failed in all.
    pub fn first_errors(&self, n: usize) -> String {
        let errors: Vec<&str> = self
            .samples
            .iter()
            .filter_map(|s| s.outcome.as_ref().err().map(String::as_str))
            .take(n)
            .collect();
        format!("{} failed, first errors: {errors:?}", self.failed())
    }

    /// When the failed requests failed, as offsets from `t0`.
    pub fn failures_since(&self, t0: Instant) -> Vec<Duration> {
        self.samples
            .iter()
            .filter(|s| !s.ok())
            .map(|s| s.at.saturating_duration_since(t0))
            .collect()
    }

    /// Whether the last `n` requests all succeeded.
    pub fn last_ok(&self, n: usize) -> bool {
        let from = self.samples.len().saturating_sub(n);
        self.samples[from..].iter().all(Sample::ok)
    }

    /// Ok requests by the body they were answered with.
    pub fn served_by(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for body in self.samples.iter().filter_map(|s| s.outcome.as_ref().ok()) {
            *by.entry(body.clone()).or_default() += 1;
        }
        by
    }

    /// Latency percentile `p` (0..=100) over every request.
    pub fn latency(&self, p: u32) -> Duration {
        let mut l: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        l.sort();
        l.get((l.len().saturating_sub(1)) * p as usize / 100)
            .copied()
            .unwrap_or_default()
    }

    /// "N requests (F failed), latency p50 / p99 / max".
    pub fn summary(&self) -> String {
        format!(
            "{} requests ({} failed), latency p50 {:?} / p99 {:?} / max {:?}",
            self.total(),
            self.failed(),
            self.latency(50),
            self.latency(99),
            self.latency(100)
        )
    }
}
