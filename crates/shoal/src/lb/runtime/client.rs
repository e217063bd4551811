//! [`HaproxyClient`]: one method per runtime-API command shoal uses, and the composite
//! operations built from them (admission after passing checks, graceful removal).

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::exchange::{first_line, looks_failed, no_such_server, refused, validate_command};
use super::stat::parse_stats;
use super::state::parse_servers_state;
use super::{AdminState, RuntimeAddr, ServerState, StatKind, StatRow};
use crate::config::LoadBalancerConfig;
use crate::lb::{host_port, validate_host, validate_name, HealthCheck, LbError, Result};
use crate::timings::{DEL_RETRY_FOR, LB_POLL};

/// What [`HaproxyClient::drain_then_remove`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Time from `drain` until the sessions ended or the wait was cut short.
    pub waited: Duration,
    /// Whether `max_wait` ran out with sessions left (they were then shut down).
    pub timed_out: bool,
    /// Sessions (current + queued) at the end of the wait.
    pub sessions_left: u64,
}

/// Client of the HAProxy runtime API. Cheap to clone; holds no connection.
#[derive(Clone, Debug)]
pub struct HaproxyClient {
    pub(super) addr: RuntimeAddr,
    pub(super) timeout: Duration,
}

impl HaproxyClient {
    /// A client for `runtime_api` (`unix:/path`, `/abs/path` or `host:port`) whose every
    /// command (connect, write, read to EOF) is bounded by `timeout`.
    pub fn new(runtime_api: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            addr: RuntimeAddr::parse(runtime_api)?,
            timeout,
        })
    }

    /// A client for `load_balancer.runtime_api` with `load_balancer.timeout`.
    pub fn from_config(lb: &LoadBalancerConfig) -> Result<Self> {
        Self::new(&lb.runtime_api, lb.timeout())
    }

    /// Sends one raw command and returns HAProxy's answer as received. The command must be a
    /// single line without `;` (which would chain commands) or control characters. Answers
    /// that read as an error ("Unknown command", "No such server", ...) become
    /// [`LbError::Refused`].
    pub async fn command(&self, cmd: &str) -> Result<String> {
        validate_command(cmd)?;
        let answer = self.exchange(cmd).await?;
        if looks_failed(&answer) {
            return Err(refused(cmd, &answer));
        }
        Ok(answer)
    }

    /// `show servers state <backend>`: every server of the backend.
    pub async fn servers_state(&self, backend: &str) -> Result<Vec<ServerState>> {
        validate_name("backend name", backend)?;
        self.parsed(format!("show servers state {backend}"), parse_servers_state)
            .await
    }

    /// The state of one server; [`LbError::NoSuchServer`] when it is not in the backend.
    pub async fn server_state(&self, backend: &str, name: &str) -> Result<ServerState> {
        validate_name("server name", name)?;
        self.servers_state(backend)
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| no_such_server(backend, name))
    }

    /// `show stat`: every frontend, backend, server and listener row.
    pub async fn stats(&self) -> Result<Vec<StatRow>> {
        self.stat_command("show stat".to_owned()).await
    }

    /// `show stat <backend> 4 -1`: the server rows of one backend.
    pub async fn backend_stats(&self, backend: &str) -> Result<Vec<StatRow>> {
        validate_name("backend name", backend)?;
        self.stat_command(format!("show stat {backend} 4 -1")).await
    }

    /// The `show stat` row of one server; [`LbError::NoSuchServer`] when it is absent.
    pub async fn server_stats(&self, backend: &str, name: &str) -> Result<StatRow> {
        validate_name("server name", name)?;
        self.backend_stats(backend)
            .await?
            .into_iter()
            .find(|r| r.kind == StatKind::Server && r.server == name)
            .ok_or_else(|| no_such_server(backend, name))
    }

    /// Current sessions of one server (`scur`).
    pub async fn server_sessions(&self, backend: &str, name: &str) -> Result<u64> {
        Ok(self.server_stats(backend, name).await?.scur)
    }

    /// Adds a replica and puts it in rotation once HAProxy's own check (the backend's
    /// `option httpchk`) has passed:
    /// `add server <backend>/<name> <ip>:<port> check inter .. fastinter .. downinter ..
    /// fall .. rise ..` (the server starts in maintenance), `enable health`, wait for `rise`
    /// consecutive passing checks (at most `check.start_period`), then
    /// `set server .. state ready`. A host name is resolved first.
    ///
    /// If the checks do not pass in time the error is [`LbError::Unhealthy`] and the server
    /// stays registered in maintenance with its checks running, never having received
    /// traffic: [`HaproxyClient::promote_if_passing`] can admit it later, or
    /// [`HaproxyClient::remove`] removes it.
    pub async fn add_server(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<()> {
        self.register_server(backend, name, host, port, check)
            .await?;
        let waited = self
            .wait_check_passed(backend, name, check.rise, check.start_period)
            .await?;
        self.set_state(backend, name, AdminState::Ready).await?;
        tracing::info!(backend, server = name, ?waited, "server in rotation");
        Ok(())
    }

    /// Non-blocking admission for a reconcile loop: if the server is in maintenance and its
    /// checks pass (last check passed, health at least `rise`), `set server .. state
    /// ready`. Returns whether the server is now in rotation. Never puts a server whose
    /// checks do not pass in rotation (leaving maintenance would make it UP at once).
    pub async fn promote_if_passing(&self, backend: &str, name: &str, rise: u32) -> Result<bool> {
        let st = self.server_state(backend, name).await?;
        if st.is_maint() && st.check_passing(rise) {
            self.set_state(backend, name, AdminState::Ready).await?;
            return Ok(true);
        }
        Ok(st.in_rotation())
    }

    /// First half of [`HaproxyClient::add_server`]: `add server` then `enable health`. The
    /// server stays in maintenance (out of rotation) with its checks running.
    pub async fn register_server(
        &self,
        backend: &str,
        name: &str,
        host: &str,
        port: u16,
        check: &HealthCheck,
    ) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        let ip = self.resolve(host, port).await?;
        let cmd = format!(
            "add server {backend}/{name} {} check {}",
            host_port(&ip.to_string(), port),
            check.keywords()
        );
        let answer = self.exchange(&cmd).await?;
        if !answer.contains("New server registered.") {
            return Err(refused(&cmd, &answer));
        }
        let cmd = format!("enable health {backend}/{name}");
        if let Err(e) = self.expect_empty(&cmd).await {
            // Do not leave a half-configured server behind.
            if let Err(cleanup) = self.exchange(&format!("del server {backend}/{name}")).await {
                tracing::warn!(backend, server = name, error = %cleanup, "cleanup after failed enable health");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits (polling every 100 ms) until the server's last health check passed and its
    /// check health reached `rise` (that many consecutive passes for a new server, whose
    /// health starts at 0); at most `max_wait`. Returns the time waited, or
    /// [`LbError::Unhealthy`].
    pub async fn wait_check_passed(
        &self,
        backend: &str,
        name: &str,
        rise: u32,
        max_wait: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let st = self.server_state(backend, name).await?;
            if st.check_passing(rise) {
                return Ok(start.elapsed());
            }
            let elapsed = start.elapsed();
            if elapsed >= max_wait {
                return Err(LbError::Unhealthy {
                    backend: backend.to_owned(),
                    server: name.to_owned(),
                    check: st.check_status_name().to_owned(),
                    waited: elapsed,
                });
            }
            tokio::time::sleep(LB_POLL.min(max_wait.saturating_sub(elapsed))).await;
        }
    }

    /// `set server <backend>/<name> state ready|drain|maint`.
    pub async fn set_state(&self, backend: &str, name: &str, state: AdminState) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        self.expect_empty(&format!(
            "set server {backend}/{name} state {}",
            state.keyword()
        ))
        .await
    }

    /// `set server <backend>/<name> addr <ip> port <port>` (a host name is resolved first).
    /// The server keeps its state; its checks go to the new address from the next one.
    pub async fn set_addr(&self, backend: &str, name: &str, host: &str, port: u16) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        let ip = self.resolve(host, port).await?;
        let cmd = format!("set server {backend}/{name} addr {ip} port {port}");
        let answer = self.exchange(&cmd).await?;
        let first = first_line(&answer);
        if first.contains("changed from") || first.starts_with("no need to change") {
            Ok(())
        } else {
            Err(refused(&cmd, &answer))
        }
    }

    /// Removes a server from its backend: `set server .. state maint` (no new traffic; idle
    /// connections close), with `shutdown_sessions` also `shutdown sessions server ..`, then
    /// `del server`, retried every [`LB_POLL`] for at most [`DEL_RETRY_FOR`] while HAProxy
    /// answers that connections are still attached; after that the error is
    /// [`LbError::StillConnected`] and the server stays, in maintenance.
    ///
    /// Shut sessions down when nothing in flight can complete any more: a drain that ran out
    /// of time, or a replica that is gone (a partitioned server would otherwise hold its
    /// sessions until `timeout server`, and HAProxy refuses `del server` while they last).
    pub async fn remove(&self, backend: &str, name: &str, shutdown_sessions: bool) -> Result<()> {
        self.set_state(backend, name, AdminState::Maint).await?;
        if shutdown_sessions {
            self.shutdown_sessions(backend, name).await?;
        }
        let retry_until = Instant::now() + DEL_RETRY_FOR;
        loop {
            match self.del_in_maint(backend, name).await {
                Err(LbError::StillConnected { .. }) if Instant::now() < retry_until => {
                    tokio::time::sleep(LB_POLL).await;
                }
                other => return other,
            }
        }
    }

    /// `shutdown sessions server <backend>/<name>`: closes every session on the server.
    async fn shutdown_sessions(&self, backend: &str, name: &str) -> Result<()> {
        validate_name("backend name", backend)?;
        validate_name("server name", name)?;
        self.expect_empty(&format!("shutdown sessions server {backend}/{name}"))
            .await
    }

    /// Graceful removal: `drain`, wait (polling every 100 ms) until the server has no
    /// current or queued sessions or `max_wait` ran out, `maint`, then `del server`
    /// (retried for a few seconds while HAProxy still has connections attached). When
    /// `max_wait` runs out the remaining sessions are shut down so the removal completes.
    pub async fn drain_then_remove(
        &self,
        backend: &str,
        name: &str,
        max_wait: Duration,
    ) -> Result<DrainOutcome> {
        let start = Instant::now();
        self.set_state(backend, name, AdminState::Drain).await?;
        let (timed_out, sessions_left) = loop {
            let row = self.server_stats(backend, name).await?;
            let left = row.scur + row.qcur;
            let elapsed = start.elapsed();
            if left == 0 {
                break (false, 0);
            }
            if elapsed >= max_wait {
                break (true, left);
            }
            tokio::time::sleep(LB_POLL.min(max_wait.saturating_sub(elapsed))).await;
        };
        let waited = start.elapsed();
        if timed_out {
            tracing::warn!(
                backend,
                server = name,
                sessions_left,
                "drain timed out; shutting the remaining sessions down"
            );
        }
        self.remove(backend, name, timed_out).await?;
        tracing::info!(backend, server = name, ?waited, timed_out, "server removed");
        Ok(DrainOutcome {
            waited,
            timed_out,
            sessions_left,
        })
    }

    async fn del_in_maint(&self, backend: &str, name: &str) -> Result<()> {
        let cmd = format!("del server {backend}/{name}");
        let answer = self.exchange(&cmd).await?;
        let first = first_line(&answer);
        if first == "Server deleted." {
            Ok(())
        } else if first.starts_with("Server still has connections attached") {
            Err(LbError::StillConnected {
                backend: backend.to_owned(),
                server: name.to_owned(),
            })
        } else {
            Err(refused(&cmd, &answer))
        }
    }

    async fn stat_command(&self, cmd: String) -> Result<Vec<StatRow>> {
        self.parsed(cmd, parse_stats).await
    }

    /// Sends a `show` command and parses its answer; a failure answer is [`LbError::Refused`].
    async fn parsed<T>(&self, cmd: String, parse: fn(&str) -> Result<T, String>) -> Result<T> {
        let answer = self.exchange(&cmd).await?;
        if looks_failed(&answer) {
            return Err(refused(&cmd, &answer));
        }
        parse(&answer).map_err(|reason| LbError::Parse {
            command: cmd,
            reason,
        })
    }

    /// Sends a command whose success answer is empty.
    async fn expect_empty(&self, cmd: &str) -> Result<()> {
        let answer = self.exchange(cmd).await?;
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(refused(cmd, &answer))
        }
    }

    /// An IP address for `host`: itself if it is one, else the first resolved address
    /// (IPv4 preferred).
    async fn resolve(&self, host: &str, port: u16) -> Result<IpAddr> {
        validate_host(host)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let fail = |reason: String| LbError::Resolve {
            host: host.to_owned(),
            reason,
        };
        let addrs: Vec<_> =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
                .map_err(|e| fail(e.to_string()))?
                .map(|a| a.ip())
                .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| fail("no address".into()))
    }
}
