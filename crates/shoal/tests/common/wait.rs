//! Polling with a deadline. One policy (how often, how long, what the timeout says), with a
//! blocking and an async loop over it: the blocking one for conditions that run commands,
//! the async one for conditions that await HTTP calls.
//!
//! A condition returns an [`Attempt`]: `Option<T>` (`Some` ends the wait), `bool`, or
//! `Result<T, String>` whose error says why not yet (the last one goes into the timeout
//! message).

use std::time::{Duration, Instant};

/// The outcome of one try of a condition.
pub trait Attempt {
    /// What the wait returns when the condition holds.
    type Value;
    /// `Ok` when the condition holds, else why not (may be empty).
    fn outcome(self) -> Result<Self::Value, String>;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl Attempt for bool {
    type Value = ();
    fn outcome(self) -> Result<(), String> {
        self.then_some(()).outcome()
    }
}

impl<T> Attempt for Result<T, String> {
    type Value = T;
    fn outcome(self) -> Result<T, String> {
        self
    }
}

/// A wait for `what`, at most `limit`, trying every `every` (default 200 ms).
pub struct Wait<'a> {
    what: String,
    limit: Duration,
    every: Duration,
    explain: Option<Box<dyn FnOnce() -> String + 'a>>,
}

impl<'a> Wait<'a> {
    pub fn new(what: impl Into<String>, limit: Duration) -> Self {
        Self {
            what: what.into(),
            limit,
            every: Duration::from_millis(200),
            explain: None,
        }
    }

    /// Tries every `every` instead of every 200 ms.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// On timeout, adds what `f` says (run once, only then) to the panic message.
    pub fn explain(mut self, f: impl FnOnce() -> String + 'a) -> Self {
        self.explain = Some(Box::new(f));
        self
    }

    /// Blocks until `f` holds; panics after the limit.
    pub fn until<A: Attempt>(mut self, mut f: impl FnMut() -> A) -> A::Value {
        let start = Instant::now();
        loop {
            match f().outcome() {
                Ok(v) => return v,
                Err(why) => self.give_up_if_late(start, why),
            }
            std::thread::sleep(self.every);
        }
    }

    /// Awaits until `f` holds; panics after the limit.
    pub async fn until_async<A: Attempt>(mut self, mut f: impl AsyncFnMut() -> A) -> A::Value {
        let start = Instant::now();
        loop {
            match f().await.outcome() {
                Ok(v) => return v,
                Err(why) => self.give_up_if_late(start, why),
            }
            tokio::time::sleep(self.every).await;
        }
    }

    fn give_up_if_late(&mut self, start: Instant, why: String) {
        if start.elapsed() < self.limit {
            return;
        }
        let mut msg = format!("timed out after {:?} waiting for {}", self.limit, self.what);
        if !why.is_empty() {
            msg.push_str(&format!(": {why}"));
        }
        if let Some(explain) = self.explain.take() {
            msg.push_str(&format!("\n{}", explain()));
        }
        panic!("{msg}");
    }
}

/// Blocks until `f` holds (tried every 200 ms); panics after `limit`.
pub fn wait_for<A: Attempt>(what: &str, limit: Duration, f: impl FnMut() -> A) -> A::Value {
    Wait::new(what, limit).until(f)
}

/// Awaits until `f` holds (tried every 200 ms); panics after `limit`.
pub async fn wait_for_async<A: Attempt>(
    what: &str,
    limit: Duration,
    f: impl AsyncFnMut() -> A,
) -> A::Value {
    Wait::new(what, limit).until_async(f).await
}
