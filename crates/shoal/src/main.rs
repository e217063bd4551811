//! `shoal`: the control-plane daemon (`serve`) and a CLI that talks to its API.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use shoal::cli::{self, Client};
use shoal::config::Config;

/// mimalloc gives freed memory back to the OS. With glibc's malloc, `shoal serve` on 100
/// servers × 50 containers kept 230 MB resident of which 66 MB were live (a `malloc_trim`
/// from gdb gave the rest back): the bursts of a big fleet (thousands of starts, probes and
/// listings at once) left the heap fragmented. BENCHMARKS.md, "Issue 11 — scale".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENT_HELP: &str = "\
Client commands call the API of a running `shoal serve` (--api, or SHOAL_API). Mutating
ones send the token from SHOAL_API_TOKEN as `Authorization: Bearer`.

Exit codes: 0 success, 1 the API answered an error, 2 bad usage, 3 the API could not be reached,
4 (deploy --watch, rollback) the update failed or was rolled back";

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the request failed (the API answered an error, or serve could not run)
  2  bad usage or invalid config (errors are printed as FILE:LINE:COLUMN: error: ...)
  3  the API could not be reached
  4  deploy --watch / rollback: the update failed or was rolled back";

/// Run Docker services across a small fleet behind HAProxy, and scale them on load.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, after_help = EXIT_CODES)]
struct Cli {
    /// Base URL of a running `shoal serve` (client commands).
    #[arg(
        long,
        global = true,
        env = "SHOAL_API",
        default_value = "http://127.0.0.1:8000"
    )]
    api: String,
    /// Print JSON instead of tables (client commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control plane: reconcile loops, HAProxy membership and the HTTP API.
    ///
    /// The API token comes from SHOAL_API_TOKEN or `api.token`. Without one, serve refuses
    /// to listen beyond loopback unless `api.allow_unauthenticated: true`. SIGHUP reloads the
    /// config file (as `shoal reload` does); SIGTERM or Ctrl-C stops serve and leaves the
    /// replicas running.
    #[command(after_help = EXIT_CODES)]
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "config.yaml")]
        config: PathBuf,
        /// Listen address, overriding `api.bind`.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Validate config files offline (contacts nothing).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Connect to every server of a config as `serve` would and report whether each is
    /// usable: SSH, host key, Docker version and API, containers, images, clock skew.
    ///
    /// Run it before `serve`. Exit 0 when every server is usable, 1 otherwise, 2 when the
    /// config is invalid.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "config.yaml")]
        config: PathBuf,
    },
    /// HAProxy helpers.
    #[command(subcommand)]
    Haproxy(HaproxyCommand),
    /// Replay a load trace through a service's scaling policy in virtual time (offline).
    ///
    /// Runs the same policy code as `serve` against a simple replica model: each replica
    /// serves up to --capacity load units at 100% utilization and serves --start-delay
    /// seconds after it is started; the load arrives at HAProxy whether or not the replicas
    /// keep up (the adaptive policy sees it as the request rate) and what exceeds their
    /// capacity queues (up to 5 s). The trace is a `time,load` CSV (seconds from the start;
    /// at most 2,000,000 points, 366 days, 64 MiB and 1,000,000 evaluations).
    /// --compare runs every policy and a reference implementation of Kubernetes' HPA
    /// algorithm (not shoal code: target 60%, tolerance 0.1, 15 s sync, 300 s scale-down
    /// stabilization) and prints them side by side.
    #[command(after_help = EXIT_CODES)]
    Simulate(SimulateArgs),
    /// Overall status: servers up, services with desired and ready replicas.
    #[command(after_help = CLIENT_HELP)]
    Status,
    /// Services with their bounds, desired and actual replica counts.
    #[command(after_help = CLIENT_HELP)]
    Services,
    /// Servers: state (up, unreachable, down), why and since when, containers running / max,
    /// replicas serving, Docker version, clock skew.
    #[command(after_help = CLIENT_HELP)]
    Servers,
    /// Replicas of one service: server, address, health, HAProxy state, CPU.
    #[command(after_help = CLIENT_HELP)]
    Stats {
        /// Service name.
        service: String,
    },
    /// Change a service's desired replica count by one (starts the cooldown).
    #[command(after_help = CLIENT_HELP)]
    Scale {
        /// Service name.
        service: String,
        /// Direction.
        direction: Direction,
    },
    /// Update a service: pull its image on every up server, then replace its replicas one
    /// surge at a time, new before old, health-gated; a new replica that fails rolls every
    /// replaced one back to the previous revision.
    #[command(after_help = CLIENT_HELP)]
    Deploy {
        /// Service name.
        service: String,
        /// Pull the image again everywhere and replace every replica, even those on the
        /// current revision (the `rolling-update` endpoint; the seed's CI flow).
        #[arg(long)]
        all: bool,
        /// Run this image (`repo:tag`) instead of the configured one.
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Follow the update until it ends: pulls per server, replicas replaced. Exit 4 when
        /// it was rolled back or failed.
        #[arg(long)]
        watch: bool,
    },
    /// Roll a service back to its previous revision (the same image ID it ran), following
    /// the rollback until it ends. Exit 4 when it failed.
    #[command(after_help = CLIENT_HELP)]
    Rollback {
        /// Service name.
        service: String,
        /// Start the rollback and return without following it.
        #[arg(long)]
        no_watch: bool,
    },
    /// Ask serve to re-read its config file; on errors nothing changes.
    #[command(after_help = CLIENT_HELP)]
    Reload,
    /// What shoal did to a service and why, newest first.
    #[command(after_help = CLIENT_HELP)]
    Events {
        /// Service name.
        service: String,
        /// How many (1-1000).
        #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a config file; exit 0 when valid, 2 with the errors otherwise.
    #[command(after_help = EXIT_CODES)]
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum HaproxyCommand {
    /// Print the haproxy.cfg for a config's services (no replicas; serve adds them at run time).
    ///
    /// With --output the file is replaced atomically and is readable by its owner only
    /// (mode 0600), as the haproxy.cfg serve writes.
    Render {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Arguments of `shoal simulate`.
#[derive(clap::Args, Debug)]
struct SimulateArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// The load trace (CSV with a `time,load` header).
    #[arg(long)]
    trace: PathBuf,
    /// Service whose policy is simulated (default: the only, or first by name).
    #[arg(long)]
    service: Option<String>,
    /// Policy (default: the service's `scale_policy`).
    #[arg(long, value_enum, conflicts_with = "compare")]
    policy: Option<SimPolicy>,
    /// Run every policy (threshold, target, adaptive, on the service's parameters) and the
    /// Kubernetes HPA reference on the same trace, and print them side by side.
    #[arg(long)]
    compare: bool,
    /// Load units one replica serves at 100% utilization.
    #[arg(long, default_value_t = 100.0)]
    capacity: f64,
    /// Seconds from a replica's start to its serving.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    start_delay: f64,
    /// Seconds between evaluations (default: `autoscaler.check_interval`).
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
    /// Print the per-evaluation timeline as CSV on stdout (the summary goes to stderr);
    /// with --json, the report gets a `timeline` array.
    #[arg(long)]
    timeline: bool,
    /// Print the report as JSON (durations in seconds); with --compare, one object with a
    /// `reports` array, one per policy.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SimPolicy {
    /// The seed's: +1 / -1 past the thresholds.
    Threshold,
    /// Target tracking of CPU utilization.
    Target,
    /// Sized from the request rate and the learned capacity per replica.
    Adaptive,
    /// The Kubernetes HPA reference (60%, tolerance 0.1, 15 s sync, 300 s stabilization).
    Hpa,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Direction {
    Up,
    Down,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let client = || Client::new(&cli.api, std::env::var("SHOAL_API_TOKEN").ok(), cli.json);
    match cli.command {
        Command::Serve { config, bind } => serve(config, bind).await,
        Command::Config(ConfigCommand::Check { file }) => match Config::load(&file) {
            Ok(c) => {
                for (what, problem) in shoal::ssh::local_file_problems(&c) {
                    eprintln!("{}: warning: {what}: {problem}", file.display());
                }
                for (what, problem) in shoal::engine::tls::cert_file_problems(&c.servers) {
                    eprintln!("{}: warning: {what}: {problem}", file.display());
                }
                for s in c.servers.iter().filter(|s| s.plain_tcp_beyond_loopback()) {
                    eprintln!(
                        "{}: warning: server {}: docker_tls: false: plain TCP to {}, not encrypted or authenticated",
                        file.display(),
                        s.name.value,
                        s.docker_host.as_ref().map_or("", |h| h.value.as_str())
                    );
                }
                println!(
                    "{}: ok ({} server(s), {} service(s))",
                    file.display(),
                    c.servers.len(),
                    c.services.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Check { config } => check(&config, cli.json).await,
        Command::Haproxy(HaproxyCommand::Render { config, output }) => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let text = match shoal::lb::render(&cfg, &Default::default(), None) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match output {
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Some(path) => match shoal::files::write_private_atomic(&path, text.as_bytes()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        ExitCode::from(1)
                    }
                },
            }
        }
        Command::Status => cli::status(&client()).await,
        Command::Services => cli::services(&client()).await,
        Command::Servers => cli::servers(&client()).await,
        Command::Stats { service } => cli::stats(&client(), &service).await,
        Command::Scale { service, direction } => {
            cli::scale(&client(), &service, matches!(direction, Direction::Up)).await
        }
        Command::Deploy {
            service,
            all,
            image,
            watch,
        } => cli::deploy(&client(), &service, all, image, watch).await,
        Command::Rollback { service, no_watch } => {
            cli::rollback(&client(), &service, !no_watch).await
        }
        Command::Reload => cli::reload(&client()).await,
        Command::Events { service, limit } => cli::events(&client(), &service, limit).await,
        Command::Simulate(args) => simulate(&args, cli.json),
    }
}

async fn check(config: &std::path::Path, json: bool) -> ExitCode {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = shoal::check::run_dir();
    let checks = shoal::check::check_fleet(&cfg, dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        );
    } else {
        print!("{}", shoal::check::report(&checks));
    }
    if checks.iter().all(|c| c.usable) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn simulate(args: &SimulateArgs, json: bool) -> ExitCode {
    use shoal::policy::PolicyKind;
    use shoal::sim::cli::{self as sim, Choice};
    sim::main(&sim::Options {
        config: args.config.clone(),
        trace: args.trace.clone(),
        service: args.service.clone(),
        policy: args.policy.map(|p| match p {
            SimPolicy::Threshold => Choice::Policy(PolicyKind::Threshold),
            SimPolicy::Target => Choice::Policy(PolicyKind::Target),
            SimPolicy::Adaptive => Choice::Policy(PolicyKind::Adaptive),
            SimPolicy::Hpa => Choice::Hpa,
        }),
        compare: args.compare,
        capacity: args.capacity,
        start_delay: args.start_delay,
        interval: args.interval,
        timeline: args.timeline,
        json: json || args.json,
    })
}

async fn serve(config_path: PathBuf, bind: Option<SocketAddr>) -> ExitCode {
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.autoscaler.log_level);
    for s in config
        .servers
        .iter()
        .filter(|s| s.plain_tcp_beyond_loopback())
    {
        tracing::warn!(
            server = s.name.value,
            docker_host = s.docker_host.as_ref().map_or("", |h| h.value.as_str()),
            "docker_tls: false: the engine is reached over plain TCP, not encrypted or authenticated; anyone who can reach it controls Docker there"
        );
    }
    let bind = match bind.map_or_else(|| config.api.bind.parse::<SocketAddr>(), Ok) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "{}:{}:{}: error: api.bind {:?} is not an IP:port address ({e})",
                config_path.display(),
                config.api.bind.line,
                config.api.bind.column,
                config.api.bind.value
            );
            return ExitCode::from(2);
        }
    };
    let env_token = std::env::var_os("SHOAL_API_TOKEN").map(|t| t.to_string_lossy().into_owned());
    let token = match shoal::api::effective_token(&config.api, env_token) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if token.is_none() {
        if !bind.ip().is_loopback() && !config.api.allow_unauthenticated {
            eprintln!(
                "error: refusing to serve the API on {bind} without a token: set SHOAL_API_TOKEN \
                 (or api.token), bind to 127.0.0.1, or set api.allow_unauthenticated: true"
            );
            return ExitCode::from(2);
        }
        tracing::warn!(%bind, "no API token: mutating endpoints are open to anyone who can reach {bind}");
    }
    let app = match shoal::app::App::new(config, config_path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    // The activator, when a service sleeps at zero and wakes on request.
    if let Some(addr) = shoal::activator::wanted(&app.config()) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "activator listening (HAProxy's backup server of sleeping services)");
                shoal::activator::spawn(app.context().clone(), l);
            }
            Err(e) => {
                eprintln!("error: activator: cannot listen on {addr} (activator.bind): {e}");
                return ExitCode::from(1);
            }
        }
    }
    app.start().await;
    tokio::spawn(reload_on_sighup(app.clone()));
    let limits = shoal::api::server::Limits::from_config(&app.config().api);
    let state = Arc::new(shoal::api::ApiState::new(app, token));
    let router = shoal::api::router(state);
    tracing::info!(%bind, ?limits, "API listening on http://{bind}");
    shoal::api::server::serve(listener, router, limits, shutdown_signal()).await;
    tracing::info!("stopped; replicas keep running and are adopted on the next start");
    ExitCode::SUCCESS
}

/// Reloads the config file on every SIGHUP, like `POST /config/reload`: what changed is logged
/// and journaled; an invalid config changes nothing and its errors are logged with
/// `file:line:column`.
async fn reload_on_sighup(app: Arc<shoal::app::App>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /config/reload");
        return;
    };
    while hup.recv().await.is_some() {
        match shoal::commands::reload(&app).await {
            Ok(changes) if changes.is_empty() => {
                tracing::info!("SIGHUP: config reloaded, nothing changed")
            }
            Ok(changes) => tracing::info!("SIGHUP: config reloaded: {}", changes.join("; ")),
            Err(e) => tracing::error!("SIGHUP: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn init_tracing(level: &str) {
    let level = match level.to_ascii_uppercase().as_str() {
        "WARNING" => "warn".to_owned(),
        other => other.to_ascii_lowercase(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,bollard=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
