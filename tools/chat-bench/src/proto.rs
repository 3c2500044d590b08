//! What the coordinator and its workers say to each other: one JSON value per line over the
//! worker's stdin/stdout (child processes) or over channels (a worker thread in-process).

use crate::stats::HistDump;
use chat_types::ChannelId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Connect, stay connected (answering the gateway's pings), answer ping rounds.
    Idle,
    /// Connect, send on a schedule, check every delivery, reconnect and resume like a client.
    Traffic,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub worker: usize,
    pub mode: Mode,
    /// Marks this run's messages (first word of every body).
    pub run_tag: String,
    /// `ws://host:port/ws`
    pub ws_url: String,
    /// `host:port` to connect the TCP socket to.
    pub connect_addr: String,
    /// Send the token as `?token=` instead of the Authorization header.
    pub token_in_query: bool,
    /// New connections per second (this worker).
    pub connect_rate: f64,
    pub channels: Vec<JobChannel>,
    pub conns: Vec<JobConn>,
    /// Senders in the whole run (all workers), to spread their send times evenly.
    pub senders_total: u32,
    pub body_bytes: usize,
    /// A sender skips a scheduled send while this many of its sends are unacknowledged.
    pub max_unacked: usize,
    /// Deliveries slower than this count towards the saturation guard.
    pub slow_ms: u64,
    /// Report the ids of acked messages (the smoke test compares them with history).
    pub collect_ids: bool,
    /// Reconnect (with `resume`) when a connection drops, as clients do.
    pub reconnect: bool,
    /// The worker stops by itself after this many seconds whatever happens.
    pub deadline_secs: u64,
    /// Besides messages: edits and reactions, read marks.
    #[serde(default)]
    pub mix: Mix,
}

/// The mixed workload of `groups --changes-percent --mark-read`: what a real chat adds to its
/// messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    /// Of a sender's scheduled sends, this share (percent) is an edit of its own newest message
    /// or a reaction (a new emoji each time, so never a no-op) instead of a message.
    pub changes_percent: u32,
    /// Mark every delivered message and event read (`mark_read`), as a client showing them does.
    pub mark_read: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobChannel {
    pub idx: u32,
    pub id: ChannelId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobConn {
    /// Index of the connection in the whole run.
    pub idx: u32,
    pub token: String,
    /// Local address to bind before connecting (spreads the source ports).
    pub source_ip: Option<Ipv4Addr>,
    /// Channels (global indexes) whose messages this connection receives.
    pub channels: Vec<u32>,
    /// Channels it sends to, in turn (empty: it only listens).
    pub send_to: Vec<u32>,
    /// Its place among all senders (0..senders_total).
    pub sender_ordinal: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    /// Messages per second over all senders.
    pub rate: f64,
    pub secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Go {
        /// Start of the first step, Unix nanoseconds.
        t0_unix_ns: u64,
        steps: Vec<Step>,
        /// Connections that receive each channel (global index -> count), over all workers.
        channel_conns: Vec<(u32, u32)>,
    },
    /// Stop sending (saturation or the end of the steps); keep receiving.
    StopSending,
    /// Idle mode: send one `ping` frame on every connection and time its `pong`.
    Ping,
    /// Close everything and report.
    Stop,
}

/// Running counts of a worker; the coordinator sums them over its workers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub open: u64,
    pub failed: u64,
    pub sent: u64,
    pub acked: u64,
    pub unacked: u64,
    /// Distinct deliveries of this run's messages.
    pub delivered: u64,
    /// Deliveries owed for the acked messages: sum of (acked x receiving connections).
    pub expected: u64,
    /// Senders' own messages seen back.
    pub echoed: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub dropped: u64,
    pub pongs: u64,
}

impl std::ops::AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, o: &Counts) {
        self.open += o.open;
        self.failed += o.failed;
        self.sent += o.sent;
        self.acked += o.acked;
        self.unacked += o.unacked;
        self.delivered += o.delivered;
        self.expected += o.expected;
        self.echoed += o.echoed;
        self.errors += o.errors;
        self.reconnects += o.reconnects;
        self.dropped += o.dropped;
        self.pongs += o.pongs;
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub worker: usize,
    pub counts: Counts,
    /// Since the previous progress report: deliveries, and those slower than `slow_ms`.
    pub interval_delivered: u64,
    pub interval_slow: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromWorker {
    Progress(Progress),
    Connected {
        worker: usize,
        ok: u64,
        failed: Vec<u32>,
        first_error: Option<String>,
    },
    Done(Box<Done>),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepDump {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub skipped: u64,
    pub e2e: HistDump,
    pub ack: HistDump,
    pub send_lag: HistDump,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SecondDump {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub e2e: HistDump,
}

/// What one connection saw of one channel.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChanCheck {
    pub conn: u32,
    pub channel: u32,
    /// First position seen on this connection.
    pub base: i64,
    /// Distinct deliveries of this run's messages.
    pub distinct_run: u64,
    /// Positions between the first and the highest seen that never arrived.
    pub holes: u64,
    pub duplicated: u64,
    /// Frames that arrived after a higher position of the same channel.
    pub reordered: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Done {
    pub worker: usize,
    pub steps: Vec<StepDump>,
    pub timeline: Vec<SecondDump>,
    pub checks: Vec<ChanCheck>,
    pub acked_per_channel: Vec<(u32, u64)>,
    pub acked_ids: Vec<(u32, String)>,
    pub unacked: u64,
    pub foreign: u64,
    pub errors: BTreeMap<String, u64>,
    pub closes: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub resent: u64,
    pub dropped: u64,
    pub ping: HistDump,
    pub pongs: u64,
    pub open: u64,
    #[serde(default)]
    pub mixed: MixCounts,
}

/// What the mixed workload did.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct MixCounts {
    pub changes_sent: u64,
    pub changes_acked: u64,
    /// `event` frames received (each applied change, on every connection of its channel).
    pub events_delivered: u64,
    pub marks_sent: u64,
}
