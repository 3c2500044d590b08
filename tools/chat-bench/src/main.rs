//! `chat-bench`: a load generator that behaves like real clients of the chat backend (REST and
//! WebSockets through nginx), checks every delivery (lost, duplicated, reordered, by `seq`), and
//! reports latency, throughput, memory per connection and CPU per process as JSON and SVG plots.
//!
//! Scenarios: `idle`, `groups`, `fanout`, `floor`, `history`, `abuse`, and `smoke` (a few-second check for the test
//! suite). See `docs/benchmarks.md`.

mod cache;
mod fleet;
mod ops;
mod procs;
mod proto;
mod report;
mod scenarios;
mod stats;
mod traffic;
mod worker;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "chat-bench",
    version,
    about = "Load generator and benchmark of the chat backend"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Idle connections held by one gateway, and its memory per connection.
    Idle(scenarios::IdleArgs),
    /// Many small channels (10 members) with steady traffic, at one or more send rates.
    Groups(scenarios::GroupsArgs),
    /// One big channel: fan-out deliveries per second through nginx.
    Fanout(scenarios::FanoutArgs),
    /// History page reads (50 messages) while the system carries traffic.
    History(scenarios::HistoryArgs),
    /// A few seconds of a tiny groups run; exits non-zero if anything is lost, duplicated,
    /// reordered, or nothing was delivered.
    Smoke(scenarios::SmokeArgs),
    /// 100 normal clients chatting, in rounds without and with a flooding user and a
    /// connection-hoarding user: nothing lost, and the normal clients' p99 within 20 %.
    Abuse(scenarios::AbuseArgs),
    /// CPU and memory of the idle stack (no load), for comparison with the scenarios.
    Baseline(scenarios::BaselineArgs),
    /// Push notifications: channels of offline members with devices at fixed send rates;
    /// notifications per second at the APNs stand-in and send-to-request latency.
    Notify(scenarios::NotifyArgs),
    /// The fan-out pattern (or with `--members`, the groups pattern) with nothing of ours in the
    /// path: a bare WebSocket broadcast (relay) server through an nginx of its own, and a plain
    /// client; CPU per delivery of each (the floor).
    Floor(scenarios::FloorArgs),
    /// (internal) the bare broadcast or relay server of `floor`.
    #[command(hide = true)]
    FloorServer(scenarios::FloorServerArgs),
    /// (internal) a worker process: a job on stdin, reports on stdout.
    #[command(hide = true)]
    Worker,
}

/// Settings every scenario shares.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// The load balancer (nginx); REST and WebSockets go through it.
    #[arg(long, env = "CHAT_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Where results go: <name>.json and <name>-*.svg.
    #[arg(long, default_value_os_t = procs::home().join(".cache/chat-bench/results"))]
    pub out_dir: PathBuf,
    /// Name of the result files (default: the scenario's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Users, tokens and channel layouts kept between runs.
    #[arg(long, default_value_os_t = procs::home().join(".cache/chat-bench"))]
    pub cache_dir: PathBuf,
    /// The native stack's state folder (pid files of the servers to measure).
    #[arg(long, env = "CHAT_STACK_DIR", default_value_os_t = procs::stack_dir())]
    pub stack_dir: PathBuf,
    /// Bind client sockets to this many source addresses 127.0.0.2, 127.0.0.3, ... (0: any).
    #[arg(long, default_value_t = 8)]
    pub source_ips: u8,
    /// At least this many worker processes (more are started when the connections exceed what
    /// one process's open-file limit holds).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Most connections per worker process (default: the open-file limit less 2,000).
    #[arg(long)]
    pub per_worker: Option<usize>,
    /// Run even a single worker as a child process (not a thread).
    #[arg(long)]
    pub processes: bool,
    /// New connections per second (all workers together).
    #[arg(long, default_value_t = 1500.0)]
    pub connect_rate: f64,
    /// Registrations in parallel (each costs the API an argon2 hash).
    #[arg(long, default_value_t = 4)]
    pub register_concurrency: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Cmd::Worker = cli.cmd {
        return match worker::child_main() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat-bench worker: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    procs::raise_nofile();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::Idle(a) => scenarios::idle(a).await,
            Cmd::Groups(a) => scenarios::groups(a).await,
            Cmd::Fanout(a) => scenarios::fanout(a).await,
            Cmd::History(a) => scenarios::history(a).await,
            Cmd::Smoke(a) => scenarios::smoke(a).await,
            Cmd::Abuse(a) => scenarios::abuse(a).await,
            Cmd::Baseline(a) => scenarios::baseline(a).await,
            Cmd::Notify(a) => scenarios::notify(a).await,
            Cmd::Floor(a) => scenarios::floor(a).await,
            Cmd::FloorServer(a) => scenarios::floor_server(a).await,
            Cmd::Worker => unreachable!(),
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
