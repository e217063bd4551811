//! [`HaproxyClient`]: one method per runtime-API command shoal uses, and removal (maintenance,
//! optional session shutdown, deletion retried while connections linger).

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::exchange::{first_line, looks_failed, no_such_server, refused};
use super::stat::parse_stats;
use super::state::parse_servers_state;
use super::{AdminState, RuntimeAddr, ServerState, StatKind, StatRow};
use crate::config::LoadBalancerConfig;
use crate::lb::{host_port, validate_host, validate_name, HealthCheck, LbError, Result};
use crate::timings::{DEL_RETRY_FOR, LB_POLL};

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

    /// `show servers state <backend>`: every server of the backend.
    pub async fn servers_state(&self, backend: &str) -> Result<Vec<ServerState>> {
        validate_name("backend name", backend)?;
        self.parsed(format!("show servers state {backend}"), parse_servers_state)
            .await
    }

    /// `show stat <backend> 4 -1`: the server rows of one backend.
    pub async fn backend_stats(&self, backend: &str) -> Result<Vec<StatRow>> {
        validate_name("backend name", backend)?;
        self.parsed(format!("show stat {backend} 4 -1"), parse_stats)
            .await
    }

    /// `show stat <backend> 6 -1`: the backend's own row and its server rows.
    pub async fn backend_and_servers(&self, backend: &str) -> Result<Vec<StatRow>> {
        validate_name("backend name", backend)?;
        self.parsed(format!("show stat {backend} 6 -1"), parse_stats)
            .await
    }

    /// `show stat <frontend> 1 -1`: the frontend's row.
    pub async fn frontend_stats(&self, frontend: &str) -> Result<Vec<StatRow>> {
        validate_name("frontend name", frontend)?;
        self.parsed(format!("show stat {frontend} 1 -1"), parse_stats)
            .await
    }

    /// `show stat <backend> 2 -1`: the backend's own row (its totals), if it exists.
    pub async fn backend_row(&self, backend: &str) -> Result<Option<StatRow>> {
        validate_name("backend name", backend)?;
        let rows = self
            .parsed(format!("show stat {backend} 2 -1"), parse_stats)
            .await?;
        Ok(rows.into_iter().find(|r| r.kind == StatKind::Backend))
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

    /// Registers a replica out of rotation: `add server <backend>/<name> <ip>:<port> check
    /// inter .. fastinter .. downinter .. fall .. rise ..` (a host name is resolved first),
    /// then `enable health`. The server stays in maintenance with its checks running; put it
    /// in rotation with `set_state(.., AdminState::Ready)` only once
    /// [`ServerState::check_passing`] holds, since leaving maintenance makes it UP at once
    /// whatever its checks said.
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
