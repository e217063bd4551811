//! What a service's replicas took to become ready (warm-up included), and whether the
//! service sleeps at zero replicas. Part of [`crate::service::ServiceState`].

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Durations kept per series.
pub const KEPT: usize = 10;

/// Warm-up and start-to-ready durations of the last [`KEPT`] replicas.
#[derive(Clone, Debug, Default)]
pub struct Startup {
    /// Warm-up request durations, oldest first.
    pub warmups: VecDeque<Duration>,
    /// From container start to in rotation, oldest first (replicas started by this shoal).
    pub ready_after: VecDeque<Duration>,
}

fn push(q: &mut VecDeque<Duration>, d: Duration) {
    if q.len() == KEPT {
        q.pop_front();
    }
    q.push_back(d);
}

fn median(q: &VecDeque<Duration>) -> Option<Duration> {
    let mut v: Vec<Duration> = q.iter().copied().collect();
    v.sort();
    v.get(v.len() / 2).copied()
}

impl Startup {
    /// Records a successful warm-up.
    pub fn record_warmup(&mut self, d: Duration) {
        push(&mut self.warmups, d);
    }

    /// Records a replica that reached rotation `d` after it was started.
    pub fn record_ready(&mut self, d: Duration) {
        push(&mut self.ready_after, d);
    }

    /// The last warm-up's duration.
    #[must_use]
    pub fn last_warmup(&self) -> Option<Duration> {
        self.warmups.back().copied()
    }

    /// The median warm-up of the last replicas.
    #[must_use]
    pub fn median_warmup(&self) -> Option<Duration> {
        median(&self.warmups)
    }

    /// The start delay the policy plans with: the median time from start to rotation of
    /// the last replicas (warm-up included).
    #[must_use]
    pub fn start_delay(&self) -> Option<Duration> {
        median(&self.ready_after)
    }
}

/// A service that may sleep at zero replicas (`wake_on_request`).
#[derive(Clone, Debug, Default)]
pub struct SleepState {
    /// Held at zero until a request wakes it.
    pub asleep: bool,
    /// A wake-up is under way (a request is waiting for a replica).
    pub waking: bool,
    /// Requests waiting at the activator now.
    pub waiting: u32,
    /// Woken by a request since it last slept (outside the window it stays at what the
    /// wake-up gave until idle).
    pub woken: bool,
    /// When the wake-up under way began.
    pub waking_since: Option<Instant>,
    /// Last time traffic was seen (a request at the activator, or HAProxy sessions).
    pub last_activity: Option<Instant>,
    /// HAProxy's cumulative session count of the backend at the last look.
    pub sessions_total: Option<u64>,
    /// Wake-ups and sleeps so far.
    pub wakes: u64,
    /// Times it went to zero.
    pub sleeps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_ten_and_takes_the_median() {
        let mut s = Startup::default();
        assert_eq!(s.start_delay(), None);
        for i in 1..=12u64 {
            s.record_ready(Duration::from_secs(i));
            s.record_warmup(Duration::from_millis(i * 100));
        }
        assert_eq!(s.ready_after.len(), KEPT);
        // 3..=12 kept; the upper median is 8.
        assert_eq!(s.start_delay(), Some(Duration::from_secs(8)));
        assert_eq!(s.last_warmup(), Some(Duration::from_millis(1200)));
        assert_eq!(s.median_warmup(), Some(Duration::from_millis(800)));
    }
}
