//! Every timing of the control loop that is not in the config, in one place.
//!
//! Config-derived timings (health-check interval, start period, drain and stop timeouts,
//! cooldowns, `check_interval`) come from the service's config; these are shoal's own.

use std::time::Duration;

/// Requeue delay while a replica is on its way in (`Starting` or `Joining`): look often so it
/// joins as soon as it can.
pub const TRANSITION_REQUEUE: Duration = Duration::from_millis(100);

/// Longest delay between two passes of a service at rest (the health-check interval when
/// shorter).
pub const MAX_PASS_INTERVAL: Duration = Duration::from_secs(2);

/// Requeue delay when the first listing was incomplete or the service has no spec yet.
pub const RETRY_REQUEUE: Duration = Duration::from_secs(1);

/// Bound on one Docker Engine call.
pub const ENGINE_CALL: Duration = Duration::from_secs(10);

/// Bound on listing one server's containers and on the monitor's liveness call: a server
/// slower than this is not answering.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// Interval of the fleet monitor's passes.
pub const MONITOR_EVERY: Duration = Duration::from_secs(2);

/// How old a server's shared container listing may be when a pass reuses it (the monitor
/// lists every [`MONITOR_EVERY`]; a change shoal makes or Docker announces there makes it
/// list at once): what nobody announces is seen within this.
pub const INVENTORY_MAX_AGE: Duration = Duration::from_millis(2500);

/// Failed monitor passes (or failed calls) in a row before a server counts as down.
pub const DOWN_AFTER_FAILURES: u32 = 2;

/// Wait after a failed image pull before the next attempt.
pub const PULL_RETRY: Duration = Duration::from_secs(60);

/// Delay before a service's first autoscaler evaluation, so the loop adopts what runs first.
pub const AUTOSCALER_FIRST_DELAY: Duration = Duration::from_secs(1);

/// How often an autoscaler whose service is being removed checks whether it came back.
pub const AUTOSCALER_IDLE_POLL: Duration = Duration::from_secs(1);

/// Lower and upper bound on sampling the Docker stats of one replica (the API measures over
/// about a second); half the `check_interval` in between.
pub const STATS_BOUND: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(5));

/// Slack after a business-hours window edge before the autoscaler evaluates, so the edge has
/// passed for sure.
pub const WINDOW_EDGE_SLACK: Duration = Duration::from_millis(50);

/// Poll interval while waiting on HAProxy: for a draining server's sessions to end, and
/// between two `del server` attempts refused while connections linger.
pub const LB_POLL: Duration = Duration::from_millis(100);

/// How long `del server` is retried (every [`LB_POLL`]) while HAProxy still has
/// connections attached.
pub const DEL_RETRY_FOR: Duration = Duration::from_secs(3);

/// First and longest wait before reopening a server's Docker event stream after it ended or
/// failed (doubling; back to the first once an event arrives).
pub const EVENTS_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(500), Duration::from_secs(30));

/// How often an event watcher checks that its server's connection is still the one it
/// listens on (a reconnected server gets a new stream) and a new server gets a watcher.
pub const EVENTS_RECHECK: Duration = Duration::from_secs(2);

/// After a `die`, `oom` or `stop` event, the service's loop is woken at once and again after
/// each of these delays (one after the other): Docker announces a death before its
/// container list shows the container exited (measured about 0.2 s on Engine 20.10), and
/// the loop acts on the list.
pub const EVENT_LOOK_AGAIN: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(150),
    Duration::from_millis(250),
];

/// The adaptive policy: when the request rate of the CPU's window is clearly above the
/// interval's (a step may have landed inside the window and been seen only in part), one
/// more window of this length is read before deciding, so a step is sized in one decision.
pub const RATE_CONFIRM: Duration = Duration::from_secs(1);

/// At most this many calls of one fan-out in flight at once (probes of a pass, starts of a
/// pass, stats samples): a service of 500 replicas coming up no longer opens 500
/// connections at once (the peak heap of a 100 × 50 fleet was 270 MB).
pub const FANOUT: usize = 64;

/// How long `GET /services/{name}/stats` reuses the Docker stats it sampled: however many
/// clients ask, each service's replicas are sampled at most once in this time.
pub const STATS_API_REUSE: Duration = Duration::from_secs(1);

/// How long `GET /metrics` serves the body it rendered: a scrape flood renders it at most
/// this often (a 15 s Prometheus scrape never sees a reused body older than this).
pub const METRICS_REUSE: Duration = Duration::from_millis(250);

/// How often a service that may sleep (`wake_on_request`) is looked at for idleness
/// (HAProxy's session counters of its backend).
pub const SLEEP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often a request held by the activator looks for a ready replica.
pub const ACTIVATOR_POLL: Duration = Duration::from_millis(50);
