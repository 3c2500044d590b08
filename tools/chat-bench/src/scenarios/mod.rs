//! The scenarios, one file each: what a scenario sets up, runs, checks and writes.
//!
//! # Layout
//! - `shared`: the set-up every scenario starts from (API client, cached user pool, channel
//!   layouts, progress bar), the steady-traffic spec, and the result files.
//! - `groups`, `fanout`, `idle`, `history`, `smoke`, `baseline`, `abuse`, `notify`: one scenario each;
//!   `floor`: the fan-out or the groups pattern through a bare server (what this machine's
//!   sockets cost).

mod abuse;
mod baseline;
mod fanout;
mod floor;
mod groups;
mod history;
mod idle;
mod notify;
mod shared;
mod smoke;
mod typing_probe;

pub use abuse::{AbuseArgs, abuse};
pub use baseline::{BaselineArgs, baseline};
pub use fanout::{FanoutArgs, fanout};
pub use floor::{FloorArgs, FloorServerArgs, floor, floor_server};
pub use groups::{GroupsArgs, groups};
pub use history::{HistoryArgs, history};
pub use idle::{IdleArgs, idle};
pub use notify::{NotifyArgs, notify};
pub use smoke::{SmokeArgs, smoke};

use clap::Args;

/// The traffic options of the steady-traffic scenarios (`groups`, `fanout`).
#[derive(Args, Clone, Debug)]
pub struct TrafficOpts {
    /// Send rates in messages/s over all senders, one step each (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<f64>>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10.0)]
    pub step_secs: f64,
    /// Message body size in bytes (the body carries the send time).
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// A sender skips a send while it has this many unacknowledged ones.
    #[arg(long, default_value_t = 64)]
    pub max_unacked: usize,
    /// Saturation guard: stop sending once more than this share of a second's deliveries take
    /// longer than --slow-ms, or senders wait for over --lag-secs of their own messages.
    #[arg(long, default_value_t = 0.5)]
    pub slow_share: f64,
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    #[arg(long, default_value_t = 5.0)]
    pub lag_secs: f64,
    /// Run every step whatever the latency (no saturation guard).
    #[arg(long)]
    pub no_guard: bool,
    /// After the last step, wait at most this long for outstanding deliveries.
    #[arg(long, default_value_t = 20.0)]
    pub drain_secs: f64,
    /// Mixed workload: this percentage of the scheduled sends are edits (of the sender's own
    /// newest message) or reactions instead of messages.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub changes_percent: u32,
    /// Mixed workload: every connection marks each delivered message and event read.
    #[arg(long)]
    pub mark_read: bool,
}
