//! One simulated server's containers and event log (a simulation: records, not processes).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::responder::Responder;

/// What every simulated server shares.
#[derive(Debug)]
pub struct SimConfig {
    /// Added to every API call.
    pub latency: Duration,
    /// CPU percent a running container reports.
    pub cpu_percent: f64,
    /// Memory a running container reports.
    pub memory_bytes: u64,
}

/// A container's lifecycle state, as Docker names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited(i64),
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Exited(_) => "exited",
        }
    }
}

/// A simulated container.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `11434/tcp`, the first exposed port.
    pub port_key: Option<String>,
    pub state: State,
    pub created: i64,
    /// When it last started or exited (unix seconds).
    pub changed: i64,
    pub started: Option<SystemTime>,
    pub responder: Option<Responder>,
}

impl Container {
    pub fn host_port(&self) -> Option<u16> {
        self.responder.as_ref().map(Responder::port)
    }

    pub fn status(&self, now: i64) -> String {
        let ago = human(now.saturating_sub(self.changed));
        match self.state {
            State::Created => "Created".to_owned(),
            State::Running => format!("Up {ago}"),
            State::Exited(code) => format!("Exited ({code}) {ago} ago"),
        }
    }
}

fn human(secs: i64) -> String {
    match secs {
        0..=1 => "Less than a second".to_owned(),
        2..=59 => format!("{secs} seconds"),
        60..=3599 => format!("{} minutes", secs / 60),
        _ => format!("{} hours", secs / 3600),
    }
}

/// One event of the log (Docker's `/events` message).
#[derive(Clone, Debug)]
pub struct Event {
    pub time_nano: i64,
    pub action: &'static str,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    pub fn json(&self) -> Value {
        json!({
            "Type": "container",
            "Action": self.action,
            "status": self.action,
            "id": self.id,
            "Actor": { "ID": self.id, "Attributes": self.attributes },
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        })
    }
}

/// Events kept for `since`.
const EVENT_LOG: usize = 4096;

/// What is behind one server's lock.
#[derive(Debug, Default)]
pub struct Inner {
    pub containers: BTreeMap<String, Container>,
    pub log: VecDeque<Event>,
}

/// One simulated server.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub ip: Ipv4Addr,
    pub cfg: Arc<SimConfig>,
    inner: Mutex<Inner>,
    pub events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    last_nano: AtomicU64,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Server {
    pub fn new(name: String, ip: Ipv4Addr, cfg: Arc<SimConfig>) -> Self {
        Self {
            name,
            ip,
            cfg,
            inner: Mutex::new(Inner::default()),
            events: broadcast::channel(EVENT_LOG).0,
            next_id: AtomicU64::new(1),
            last_nano: AtomicU64::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new 64-hex container id, unique in this process.
    pub fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let salt: u64 = std::process::id().into();
        let a = format!("{:016x}", fnv(self.name.as_bytes()) ^ n.rotate_left(17));
        let b = format!("{:016x}", fnv(&n.to_le_bytes()) ^ salt);
        format!("{a}{b}{a}{b}")
    }

    /// Strictly increasing event times (so shoal's de-duplication by `timeNano` holds).
    fn event_nano(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut last = self.last_nano.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last_nano
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next as i64,
                Err(seen) => last = seen,
            }
        }
    }

    /// Records and broadcasts an event of `c` (call with the lock held, so a stream that
    /// subscribes under the lock misses nothing and sees nothing twice).
    pub fn emit(&self, inner: &mut Inner, c: &Container, action: &'static str) {
        let mut attributes = c.labels.clone();
        attributes.insert("name".to_owned(), c.name.clone());
        attributes.insert("image".to_owned(), c.image.clone());
        if let State::Exited(code) = c.state {
            attributes.insert("exitCode".to_owned(), code.to_string());
        }
        let ev = Event {
            time_nano: self.event_nano(),
            action,
            id: c.id.clone(),
            attributes,
        };
        if inner.log.len() == EVENT_LOG {
            inner.log.pop_front();
        }
        inner.log.push_back(ev.clone());
        let _ = self.events.send(ev);
    }

    /// The id of the container `key` names: its id, a unique id prefix, or its name.
    pub fn resolve(inner: &Inner, key: &str) -> Option<String> {
        let key = key.trim_start_matches('/');
        if inner.containers.contains_key(key) {
            return Some(key.to_owned());
        }
        if let Some(c) = inner.containers.values().find(|c| c.name == key) {
            return Some(c.id.clone());
        }
        let mut by_prefix = inner.containers.keys().filter(|id| id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(id), None) if !key.is_empty() => Some(id.clone()),
            _ => None,
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
