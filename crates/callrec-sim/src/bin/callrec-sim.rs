//! `callrec-sim`: a simulated FreeSWITCH on a port, for pointing a real `callrec serve` at.
//!
//! It runs on the wall clock, plays a scenario file or a steady load of calls, prints what
//! happens, and shuts down gracefully (RECORD_STOPs, then the shutdown notice) on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use callrec_sim::load::LoadSpec;
use callrec_sim::scenario::{Scenario, parse_duration};
use callrec_sim::{ClockMode, SimConfig, Simulator};
use clap::Parser;

/// A simulated FreeSWITCH Event Socket (inbound on --listen, outbound to --feature-socket).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the inbound Event Socket.
    #[arg(long, default_value = "127.0.0.1:8021")]
    listen: SocketAddr,
    /// The `auth` password.
    #[arg(long, default_value = "ClueCon", env = "CALLREC_SIM_PASSWORD")]
    password: String,
    /// Where recordings are written (the switch's recordings directory).
    #[arg(long, default_value = "./callrec-sim-spool")]
    spool: PathBuf,
    /// Where feature codes (*44, *48, *49) connect (`socket <addr> async full`).
    #[arg(long)]
    feature_socket: Option<String>,
    /// Seconds between HEARTBEAT events.
    #[arg(long, default_value_t = 20)]
    heartbeat: u64,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// A scenario file (see `callrec_sim::scenario`).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Instead of a scenario: this many calls between directory users 1000-1019.
    #[arg(long)]
    calls: Option<usize>,
    /// New calls per second for --calls.
    #[arg(long, default_value_t = 1.0)]
    cps: f64,
    /// Talk time of each --calls call (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = duration)]
    talk: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("not a duration: {s}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(Scenario::parse(&text).with_context(|| format!("in {}", path.display()))?)
        }
        None => None,
    };
    let sim = Simulator::start(SimConfig {
        listen: args.listen,
        password: args.password.clone(),
        spool_dir: args.spool.clone(),
        heartbeat: Duration::from_secs(args.heartbeat),
        clock: ClockMode::RealTime { speed: args.speed },
        feature_code_socket: args.feature_socket.clone(),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    println!(
        "simulated FreeSWITCH: Event Socket on {} (password {}), recordings in {}",
        sim.esl_addr(),
        args.password,
        args.spool.display()
    );
    let mut events = sim.subscribe();
    let printer = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let name = ev.name();
            if matches!(
                name,
                "CHANNEL_ANSWER"
                    | "CHANNEL_HOLD"
                    | "CHANNEL_UNHOLD"
                    | "CHANNEL_HANGUP_COMPLETE"
                    | "RECORD_START"
                    | "RECORD_STOP"
                    | "SHUTDOWN"
            ) {
                let who = ev.header("Caller-Caller-ID-Number").unwrap_or("");
                let to = ev.header("Caller-Destination-Number").unwrap_or("");
                let extra = ev.header("Record-File-Path").unwrap_or("");
                println!(
                    "{} {name:24} {} {who} -> {to} {extra}",
                    ev.header("Event-Date-Local").unwrap_or(""),
                    ev.unique_id().unwrap_or("")
                );
            }
        }
    });
    if let Some(n) = args.calls {
        sim.start_load(LoadSpec {
            calls: n,
            per_second: args.cps,
            callers: (1000..1010).map(|n| n.to_string()).collect(),
            callees: (1010..1020).map(|n| n.to_string()).collect(),
            ring: Duration::from_secs(2),
            talk: args.talk,
        });
    }
    let play = async {
        if let Some(s) = &scenario {
            s.run(&sim).await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = play => {}
    }
    println!("shutting down");
    sim.shutdown_switch();
    // The listeners get the shutdown notice before the process goes.
    let _ = sim
        .wait_for(Duration::from_secs(2), "listeners closed", |s| {
            s.inbound_connections() == 0
        })
        .await;
    printer.abort();
    sim.stop().await;
    Ok(())
}
