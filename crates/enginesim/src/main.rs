//! `shoal-enginesim`: the engine SIMULATOR as a program (see the library's docs).

use std::path::PathBuf;

use clap::Parser;
use shoal_enginesim::SimConfig;

/// A SIMULATION of the Docker Engine API shoal uses, for N servers (one unix socket each).
/// Not a container runtime: "containers" are records with a tiny HTTP responder.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Directory for the sockets: `DIR/s000.sock`, `DIR/s001.sock`, ...; `DIR/ready` is
    /// written once every socket listens.
    #[arg(long)]
    dir: PathBuf,
    /// Number of simulated servers (1..=10000).
    #[arg(long, default_value_t = 4)]
    servers: u16,
    /// Second octet of the servers' loopback addresses (server i is 127.OCTET.(i/200).(i%200+1)).
    #[arg(long, default_value_t = 1)]
    octet: u8,
    /// Added to the handling of every API call, in milliseconds (a slower engine).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// CPU percent every running container reports in its stats (100 = one core).
    #[arg(long, default_value_t = 5.0)]
    cpu_percent: f64,
    /// Memory bytes every running container reports in its stats.
    #[arg(long, default_value_t = 64 << 20)]
    memory_bytes: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.servers == 0 || args.servers > 10_000 {
        eprintln!(
            "shoal-enginesim: --servers must be 1..=10000, not {}",
            args.servers
        );
        std::process::exit(2);
    }
    let cfg = SimConfig {
        latency: std::time::Duration::from_millis(args.latency_ms),
        cpu_percent: args.cpu_percent,
        memory_bytes: args.memory_bytes,
    };
    if let Err(e) = shoal_enginesim::start(&args.dir, args.servers, args.octet, cfg) {
        eprintln!("shoal-enginesim: {e}");
        std::process::exit(1);
    }
    if let Err(e) = std::fs::write(args.dir.join("ready"), format!("{}\n", args.servers)) {
        eprintln!("shoal-enginesim: cannot write the ready file: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "shoal-enginesim: {} simulated servers listening in {}",
        args.servers,
        args.dir.display()
    );
    let _ = tokio::signal::ctrl_c().await;
}
