//! A traffic run: connect every client, send at each step's rate, check every delivery, and
//! measure latency, throughput, CPU per process and memory. Used by `groups`, `fanout`,
//! `history` (background load and seeding) and `smoke`.
//!
//! # Layout
//! - this file: the spec, the result types, and the run's phases (jobs, connect, go, steps,
//!   drain).
//! - `merge`: the workers' final reports merged into the result and the delivery verification.
//! - `print`: the result as a table.

mod merge;
mod print;

pub use print::print;

use crate::fleet::{Fleet, Spread, split};
use crate::ops;
use crate::procs::{self, CpuReport, CpuSnap};
use crate::proto::*;
use crate::stats::{self, Summary};
use chat_types::ChannelId;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use merge::Merged;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// One client connection of the plan.
#[derive(Clone, Debug)]
pub struct ConnPlan {
    pub token: String,
    pub channels: Vec<u32>,
    pub send_to: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct Guard {
    /// Stop sending when more than this share of the last second's deliveries were slower than
    /// `slow_ms`...
    pub slow_share: f64,
    /// ...or when senders wait for more than this many seconds' worth of their own messages.
    pub lag_secs: f64,
}

pub struct TrafficSpec {
    /// For the services' ops /metrics pages.
    pub http: reqwest::Client,
    pub name: String,
    pub ws_url: String,
    pub connect_addr: String,
    pub token_in_query: bool,
    pub channels: Vec<ChannelId>,
    pub conns: Vec<ConnPlan>,
    pub steps: Vec<Step>,
    pub body_bytes: usize,
    pub max_unacked: usize,
    pub slow_ms: u64,
    pub guard: Option<Guard>,
    pub drain_secs: f64,
    pub collect_ids: bool,
    pub mix: crate::proto::Mix,
    pub connect_rate: f64,
    pub spread: Spread,
    /// Measure CPU per process and the servers' memory.
    pub measure: bool,
    pub stack_pids: BTreeMap<String, u32>,
    /// Told the start time of the first step (for side loads like history readers).
    pub on_go: Option<tokio::sync::oneshot::Sender<std::time::Instant>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnInfo {
    pub planned: usize,
    pub connected: u64,
    pub failed: usize,
    pub first_error: Option<String>,
    pub workers: usize,
    pub worker_processes: bool,
    pub source_addresses: u8,
    pub connect_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    pub target_rate: f64,
    pub planned_secs: f64,
    /// How long it really ran (shorter if the saturation guard stopped it).
    pub secs: f64,
    pub saturated: bool,
    pub sent: u64,
    pub acked: u64,
    pub skipped: u64,
    /// Deliveries of the messages sent in this step.
    pub delivered: u64,
    pub sent_per_s: f64,
    pub acked_per_s: f64,
    /// Deliveries received during this step's window, per second.
    pub deliveries_per_s: f64,
    pub e2e: Summary,
    pub ack: Summary,
    pub send_lag: Summary,
    pub cpu: Option<CpuReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Deliveries owed: every acked message, to every connection of its channel.
    pub expected: u64,
    pub delivered: u64,
    /// Owed deliveries that never arrived (after a complete drain); or, if the drain did not
    /// complete, those known missing (skipped positions).
    pub lost: u64,
    /// Owed deliveries still not there when the drain time ran out (late, not known lost).
    pub late: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub unacked: u64,
    pub drain_complete: bool,
    pub drain_seconds: f64,
    pub foreign_frames: u64,
    /// The mixed workload's changes, events and read marks (all zero without one).
    pub mixed: crate::proto::MixCounts,
    pub errors: BTreeMap<String, u64>,
    pub closes: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub resent: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Second {
    pub t: usize,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrafficResult {
    /// Share of all cores busy during the 2 s before the run (the stack idle, before our load).
    pub machine_busy_before_percent: f64,
    pub connections: ConnInfo,
    pub steps: Vec<StepResult>,
    pub total_e2e: Summary,
    pub total_ack: Summary,
    pub verification: Verification,
    pub timeline: Vec<Second>,
    /// RSS (KiB) of the servers before connecting, once connected, and at the end of the steps.
    pub rss_kib: BTreeMap<String, [u64; 3]>,
    /// Change of the services' own counters (ops /metrics) over the steps, per service; plus
    /// derived: the message servers' mean batch size and time.
    pub server_counters: BTreeMap<String, BTreeMap<String, f64>>,
    #[serde(skip)]
    pub step_hists: Vec<(String, Histogram<u64>)>,
    #[serde(skip)]
    pub ack_hist: Option<Histogram<u64>>,
    #[serde(skip)]
    pub acked_ids: Vec<(u32, String)>,
}

fn rss_all(pids: &BTreeMap<String, u32>) -> BTreeMap<String, u64> {
    pids.iter()
        .filter(|(n, _)| n.starts_with("gateway") || *n == "nginx")
        .map(|(n, p)| (n.clone(), procs::tree_rss_kib(*p)))
        .collect()
}

/// Run a traffic spec: connect, go, the steps (until saturation), drain, stop, and the merged
/// result of every worker's report.
pub async fn run(mut spec: TrafficSpec, bar: &ProgressBar) -> anyhow::Result<TrafficResult> {
    let run_tag = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (all, jobs) = jobs_of(&spec, &run_tag);
    let n_workers = jobs.len();
    let machine_busy_before_percent = if spec.measure {
        let busy = procs::machine_busy(Duration::from_secs(2)).await;
        if busy > 20.0 {
            bar.println(format!(
                "{}: warning: the machine was {busy:.0}% busy before the run (other programs?): results will be disturbed",
                spec.name
            ));
        }
        busy
    } else {
        0.0
    };
    let rss_before = rss_if(&spec);
    bar.set_message(format!(
        "{}: starting {n_workers} worker(s) for {} connections",
        spec.name,
        all.len()
    ));
    let mut fleet = Fleet::start(jobs, spec.spread.force_processes)?;
    let (connections, channel_conns) = connect(&mut fleet, &spec, &all, bar).await?;
    if connections.connected == 0 {
        let _ = fleet.stop().await;
        anyhow::bail!(
            "no connection could be opened: {}",
            connections.first_error.clone().unwrap_or_default()
        );
    }
    // Let the connections settle (presence registered, first frames sent).
    fleet.pump(Duration::from_millis(1500)).await;
    let rss_connected = rss_if(&spec);

    let t0 = go(&fleet, &mut spec, &channel_conns);
    let counters_before = if spec.measure {
        ops::scrape_all(&spec.http).await
    } else {
        BTreeMap::new()
    };
    fleet
        .pump(t0.saturating_duration_since(Instant::now()))
        .await;
    let ran = run_steps(&mut fleet, &spec, t0, bar).await;
    fleet.broadcast(ToWorker::StopSending);
    let server_counters = if spec.measure {
        ops::counter_deltas(&counters_before, &ops::scrape_all(&spec.http).await)
    } else {
        BTreeMap::new()
    };
    let rss_end = rss_if(&spec);
    let (drain_complete, drain_seconds) = drain(&mut fleet, &spec, bar).await;
    bar.set_message(format!("{}: closing connections", spec.name));
    let done = fleet.stop().await;

    let mut m = Merged::of(done, ran.step_secs.len());
    m.v.drain_complete = drain_complete;
    m.v.drain_seconds = drain_seconds;
    m.verify();
    let (steps, step_hists) = m.step_results(&spec, &ran);
    let mut total_e2e = stats::hist(3);
    let mut total_ack = stats::hist(3);
    for h in &m.e2e {
        total_e2e.add(h).ok();
    }
    for h in &m.ack {
        total_ack.add(h).ok();
    }
    let rss_kib = rss_before
        .iter()
        .map(|(name, before)| {
            let at = |m: &BTreeMap<String, u64>| m.get(name).copied().unwrap_or(0);
            (name.clone(), [*before, at(&rss_connected), at(&rss_end)])
        })
        .collect();
    Ok(TrafficResult {
        machine_busy_before_percent,
        connections,
        steps,
        total_e2e: Summary::of(&total_e2e),
        total_ack: Summary::of(&total_ack),
        timeline: m.timeline(),
        verification: m.v,
        rss_kib,
        server_counters,
        step_hists,
        ack_hist: Some(total_ack),
        acked_ids: m.acked_ids,
    })
}

/// Start the steps 300 ms from now on every worker (and tell `on_go`); returns that instant.
fn go(fleet: &Fleet, spec: &mut TrafficSpec, channel_conns: &HashMap<u32, u32>) -> Instant {
    let t0_wall = std::time::SystemTime::now() + Duration::from_millis(300);
    let t0_ns = t0_wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let t0 = Instant::now() + Duration::from_millis(300);
    fleet.broadcast(ToWorker::Go {
        t0_unix_ns: t0_ns,
        steps: spec.steps.clone(),
        channel_conns: channel_conns.iter().map(|(c, n)| (*c, *n)).collect(),
    });
    if let Some(tx) = spec.on_go.take() {
        let _ = tx.send(std::time::Instant::now() + Duration::from_millis(300));
    }
    t0
}

fn rss_if(spec: &TrafficSpec) -> BTreeMap<String, u64> {
    if spec.measure {
        rss_all(&spec.stack_pids)
    } else {
        BTreeMap::new()
    }
}

/// Every connection of the run, and the workers' jobs: connections in contiguous shares,
/// senders numbered over the whole run.
fn jobs_of(spec: &TrafficSpec, run_tag: &str) -> (Vec<JobConn>, Vec<Job>) {
    let planned_secs: f64 = spec.steps.iter().map(|s| s.secs).sum();
    let senders_total = spec.conns.iter().filter(|c| !c.send_to.is_empty()).count() as u32;
    let mut ordinal = 0;
    let all: Vec<JobConn> = spec
        .conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let o = ordinal;
            if !c.send_to.is_empty() {
                ordinal += 1;
            }
            JobConn {
                idx: i as u32,
                token: c.token.clone(),
                source_ip: spec.spread.source_ip(i),
                channels: c.channels.clone(),
                send_to: c.send_to.clone(),
                sender_ordinal: o,
            }
        })
        .collect();
    let n_workers = spec.spread.workers_for(all.len());
    let connect_secs_est = all.len() as f64 / spec.connect_rate.max(1.0);
    let deadline = (connect_secs_est + planned_secs + spec.drain_secs + 120.0) as u64;
    let jobs = split(&all, n_workers)
        .into_iter()
        .enumerate()
        .map(|(w, conns)| {
            let used: std::collections::BTreeSet<u32> = conns
                .iter()
                .flat_map(|c| c.channels.iter().chain(&c.send_to).copied())
                .collect();
            Job {
                worker: w,
                mode: Mode::Traffic,
                run_tag: run_tag.to_string(),
                ws_url: spec.ws_url.clone(),
                connect_addr: spec.connect_addr.clone(),
                token_in_query: spec.token_in_query,
                connect_rate: spec.connect_rate / n_workers as f64,
                channels: used
                    .into_iter()
                    .map(|i| JobChannel {
                        idx: i,
                        id: spec.channels[i as usize],
                    })
                    .collect(),
                conns,
                senders_total,
                body_bytes: spec.body_bytes,
                max_unacked: spec.max_unacked,
                slow_ms: spec.slow_ms,
                collect_ids: spec.collect_ids,
                reconnect: true,
                deadline_secs: deadline,
                mix: spec.mix,
            }
        })
        .collect();
    (all, jobs)
}

/// Wait for every connection to open or fail; the receiving connections per channel (without
/// the failed ones).
async fn connect(
    fleet: &mut Fleet,
    spec: &TrafficSpec,
    all: &[JobConn],
    bar: &ProgressBar,
) -> anyhow::Result<(ConnInfo, HashMap<u32, u32>)> {
    let connect_started = Instant::now();
    let connect_secs_est = all.len() as f64 / spec.connect_rate.max(1.0);
    let (ok, failed, first_error) = fleet
        .wait_connected(
            all.len() as u64,
            Duration::from_secs_f64(connect_secs_est * 3.0 + 60.0),
            bar,
        )
        .await?;
    let connections = ConnInfo {
        planned: all.len(),
        connected: ok,
        failed: failed.len(),
        first_error,
        workers: fleet.workers.len(),
        worker_processes: !fleet.in_process,
        source_addresses: spec.spread.source_ips,
        connect_seconds: connect_started.elapsed().as_secs_f64(),
    };
    let failed_set: std::collections::HashSet<u32> = failed.iter().copied().collect();
    let mut channel_conns: HashMap<u32, u32> = HashMap::new();
    for c in all {
        if !failed_set.contains(&c.idx) {
            for ch in &c.channels {
                *channel_conns.entry(*ch).or_default() += 1;
            }
        }
    }
    Ok((connections, channel_conns))
}

/// What the steps came to: how long each ran, where it saturated, CPU snapshots between them.
pub struct Ran {
    /// How long each step that ran lasted (the saturated one: until it was stopped).
    pub step_secs: Vec<f64>,
    pub saturated_at: Option<usize>,
    /// Before the first step and after each.
    pub snaps: Vec<CpuSnap>,
}

/// The steps, one after another, until the last or until the saturation guard stops the sends.
async fn run_steps(fleet: &mut Fleet, spec: &TrafficSpec, t0: Instant, bar: &ProgressBar) -> Ran {
    let planned_secs: f64 = spec.steps.iter().map(|s| s.secs).sum();
    let mut ran = Ran {
        step_secs: Vec::new(),
        saturated_at: None,
        snaps: Vec::new(),
    };
    let snap = |ran: &mut Ran| {
        if spec.measure {
            ran.snaps.push(procs::cpu_snapshot(&spec.stack_pids));
        }
    };
    snap(&mut ran);
    bar.set_length((planned_secs * 10.0) as u64);
    bar.set_position(0);
    let mut strikes = 0;
    let mut step_start = t0;
    for (k, step) in spec.steps.iter().enumerate() {
        let end = step_start + Duration::from_secs_f64(step.secs);
        fleet.take_interval();
        while Instant::now() < end {
            let left = end - Instant::now();
            fleet.pump(left.min(Duration::from_millis(500))).await;
            let (interval_delivered, interval_slow) = fleet.take_interval();
            let t = fleet.totals();
            bar.set_position((t0.elapsed().as_secs_f64() * 10.0) as u64);
            let in_flight = t.sent.saturating_sub(t.echoed);
            bar.set_message(format!(
                "{} step {}/{} @ {} msg/s | sent {} acked {} delivered {}/{} | in flight {} | errors {} reconnects {}",
                spec.name,
                k + 1,
                spec.steps.len(),
                step.rate,
                t.sent,
                t.acked,
                t.delivered,
                t.expected,
                in_flight,
                t.errors,
                t.reconnects
            ));
            let Some(g) = &spec.guard else { continue };
            let slow = interval_delivered > 0
                && interval_slow as f64 / interval_delivered as f64 > g.slow_share;
            let lag = step.rate > 0.0 && in_flight as f64 > (step.rate * g.lag_secs).max(50.0);
            strikes = if slow || lag { strikes + 1 } else { 0 };
            if strikes >= 4 {
                ran.saturated_at = Some(k);
                fleet.broadcast(ToWorker::StopSending);
                ran.step_secs.push(step_start.elapsed().as_secs_f64());
                snap(&mut ran);
                let why = if lag {
                    format!("{in_flight} messages not yet back at their senders")
                } else {
                    format!(
                        "{interval_slow} of {interval_delivered} deliveries slower than {} ms",
                        spec.slow_ms
                    )
                };
                bar.println(format!(
                    "{}: saturated at step {} ({} msg/s): {why}; stopping the sends",
                    spec.name,
                    k + 1,
                    step.rate,
                ));
                return ran;
            }
        }
        ran.step_secs.push(step.secs);
        snap(&mut ran);
        step_start = end;
    }
    ran
}

/// Until every send is acked and every owed delivery arrived, or the drain time is up:
/// (complete, seconds).
async fn drain(fleet: &mut Fleet, spec: &TrafficSpec, bar: &ProgressBar) -> (bool, f64) {
    let drain_started = Instant::now();
    let drain_until = drain_started + Duration::from_secs_f64(spec.drain_secs);
    let mut drain_complete = false;
    while Instant::now() < drain_until {
        fleet.pump(Duration::from_millis(200)).await;
        let t = fleet.totals();
        bar.set_message(format!(
            "{}: draining: delivered {}/{}, unacked {}",
            spec.name, t.delivered, t.expected, t.unacked
        ));
        if t.acked >= t.sent && t.delivered >= t.expected {
            // One more round of reports: the counters are sampled every 500 ms.
            fleet.pump(Duration::from_millis(600)).await;
            let t = fleet.totals();
            if t.acked >= t.sent && t.delivered >= t.expected {
                drain_complete = true;
                break;
            }
        }
    }
    (drain_complete, drain_started.elapsed().as_secs_f64())
}
