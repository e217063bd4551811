//! `shoal-workload`: a tiny stand-in for Ollama used by shoal's tests.
//!
//! Built as a fully static binary and shipped in a `FROM scratch` image, so it
//! runs as PID 1 and must handle SIGTERM/SIGINT itself.

#![forbid(unsafe_code)]

mod http;
mod server;
mod work;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

const DEFAULT_PORT: u16 = 11434;

const USAGE: &str = "\
shoal-workload: a minimal Ollama look-alike HTTP server for shoal's tests

Usage: shoal-workload [--help | --version]

Endpoints:
  GET  /              200 'Ollama is running'
  GET  /api/tags      model list (503 once SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS passed)
  GET  /api/version   version JSON
  GET  /whoami        {\"hostname\":...}
  POST /api/generate  burns {\"work\": MS} of CPU (default 50, max 10000)

Environment:
  PORT                                 listen port (default 11434; wins over OLLAMA_HOST)
  OLLAMA_HOST                          listen host[:port] (default 0.0.0.0)
  HOSTNAME                             name reported (fallback /etc/hostname)
  SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS  make /api/tags fail with 503 after N seconds
  SHOAL_WORKLOAD_FAIL_START            if 1, exit with status 1 immediately
  SHOAL_WORKLOAD_MODEL_LOAD_MS         like Ollama loading a model: the first /api/generate
                                       takes N ms more, generates arriving meanwhile wait
                                       (the answer says \"cold\":true for the first)

SIGTERM/SIGINT: stop accepting, finish in-flight requests (up to 5 s), exit 0.
A second signal exits immediately with status 1.
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("shoal-workload {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("shoal-workload: unexpected argument {other:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    if env_flag("SHOAL_WORKLOAD_FAIL_START") {
        eprintln!("shoal-workload: SHOAL_WORKLOAD_FAIL_START set, exiting with status 1");
        return ExitCode::FAILURE;
    }

    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("shoal-workload: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let addr = listen_addr(env("PORT").as_deref(), env("OLLAMA_HOST").as_deref())?;
    let unhealthy_after = match env("SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS") {
        None => None,
        Some(v) => Some(Duration::from_secs(v.trim().parse().map_err(|_| {
            format!(
                "SHOAL_WORKLOAD_UNHEALTHY_AFTER_SECS must be a whole number of seconds, got {v:?}"
            )
        })?)),
    };
    let model_load = match env("SHOAL_WORKLOAD_MODEL_LOAD_MS") {
        None => None,
        Some(v) => Some(Duration::from_millis(v.trim().parse().map_err(|_| {
            format!(
                "SHOAL_WORKLOAD_MODEL_LOAD_MS must be a whole number of milliseconds, got {v:?}"
            )
        })?)),
    };
    let config = server::Config {
        hostname: hostname(),
        unhealthy_after,
        max_connections: server::DEFAULT_MAX_CONNECTIONS,
        model_load,
    };

    // First signal sets the flag; a second one (flag already set) exits(1).
    let shutdown = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&shutdown))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&shutdown)))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }

    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("shoal-workload listening on {local}");

    let stopped = server::serve(listener, config, Arc::clone(&shutdown))
        .map_err(|e| format!("server error: {e}"))?;
    if stopped.abandoned == 0 {
        eprintln!("shoal-workload shut down cleanly");
    } else {
        eprintln!(
            "shoal-workload shut down; {} connection(s) still busy after {:?} were abandoned",
            stopped.abandoned,
            server::DRAIN_TIMEOUT
        );
    }
    // Abandoned connection threads die with the process.
    Ok(())
}

/// Non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_flag(name: &str) -> bool {
    env(name)
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Listen address from `PORT` and `OLLAMA_HOST` (`host`, `host:port`,
/// `[v6]:port`, `:port`, optionally with an `http://` prefix). `PORT` wins.
fn listen_addr(port: Option<&str>, ollama_host: Option<&str>) -> Result<SocketAddr, String> {
    let mut ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut host_port = None;
    if let Some(raw) = ollama_host {
        let s = raw.trim();
        let s = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .unwrap_or(s);
        let s = s.split('/').next().unwrap_or("");
        let (host, p) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("invalid OLLAMA_HOST {raw:?}"))?;
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| format!("invalid OLLAMA_HOST {raw:?}"))?,
                    ),
                ),
            }
        } else if s.matches(':').count() == 1 {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            (h, Some(p))
        } else {
            (s, None) // bare host, or bare IPv6 address without port
        };
        if !host.is_empty() {
            ip = if host.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                host.parse()
                    .map_err(|_| format!("OLLAMA_HOST {raw:?}: host must be an IP address"))?
            };
        }
        if let Some(p) = p {
            host_port = Some(parse_port(p).map_err(|e| format!("OLLAMA_HOST {raw:?}: {e}"))?);
        }
    }
    let port = match port {
        Some(p) => parse_port(p).map_err(|e| format!("PORT: {e}"))?,
        None => host_port.unwrap_or(DEFAULT_PORT),
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| format!("invalid port {s:?}"))
}

/// `HOSTNAME` (Docker sets it to the short container id), else
/// `/etc/hostname`, else `unknown`.
fn hostname() -> String {
    env("HOSTNAME")
        .map(|h| h.trim().to_string())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: Option<&str>, host: Option<&str>) -> Result<String, String> {
        listen_addr(port, host).map(|a| a.to_string())
    }

    #[test]
    fn listen_address_resolution() {
        assert_eq!(addr(None, None).unwrap(), "0.0.0.0:11434");
        assert_eq!(addr(Some("8080"), None).unwrap(), "0.0.0.0:8080");
        assert_eq!(addr(Some(" 0 "), None).unwrap(), "0.0.0.0:0");
        assert_eq!(addr(None, Some("0.0.0.0")).unwrap(), "0.0.0.0:11434");
        assert_eq!(addr(None, Some("0.0.0.0:9000")).unwrap(), "0.0.0.0:9000");
        assert_eq!(
            addr(Some("8080"), Some("0.0.0.0:9000")).unwrap(),
            "0.0.0.0:8080"
        );
        assert_eq!(addr(None, Some("127.0.0.1")).unwrap(), "127.0.0.1:11434");
        assert_eq!(addr(None, Some("localhost:1")).unwrap(), "127.0.0.1:1");
        assert_eq!(addr(None, Some("http://0.0.0.0:7/")).unwrap(), "0.0.0.0:7");
        assert_eq!(addr(None, Some(":5")).unwrap(), "0.0.0.0:5");
        assert_eq!(addr(None, Some("[::]:6")).unwrap(), "[::]:6");
        assert_eq!(addr(None, Some("[::1]")).unwrap(), "[::1]:11434");
        assert_eq!(addr(None, Some("::")).unwrap(), "[::]:11434");
        assert!(addr(Some("99999"), None).is_err());
        assert!(addr(Some("http"), None).is_err());
        assert!(addr(None, Some("0.0.0.0:x")).is_err());
        assert!(addr(None, Some("example.com")).is_err());
        assert!(addr(None, Some("[::1")).is_err());
    }
}
