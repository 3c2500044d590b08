//! The scenarios: what each one sets up, runs, checks and writes.

use crate::Common;
use crate::api::Api;
use crate::cache::{CachedUser, Layout, LayoutChannel, Pool};
use crate::fleet::{Fleet, Spread, split};
use crate::procs;
use crate::proto::*;
use crate::report::{self, Panel};
use crate::stats::{self, Summary};
use crate::traffic::{self, ConnPlan, Guard, TrafficResult, TrafficSpec};
use anyhow::{Context, bail};
use chat_types::{ChannelId, MessageId};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

// ---------------------------------------------------------------------------- arguments

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
}

#[derive(Args, Clone, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: TrafficOpts,
    /// Number of channels.
    #[arg(long, default_value_t = 500)]
    pub channels: usize,
    /// Members per channel (each member is one user with one connection, and sends).
    #[arg(long, default_value_t = 10)]
    pub members: usize,
}

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: TrafficOpts,
    /// Members of the channel (one connection each, through nginx).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// How many of them send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
}

#[derive(Args, Clone, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Idle connections to open.
    #[arg(long, default_value_t = 19_900)]
    pub connections: usize,
    /// Distinct users they belong to (connections are spread over them).
    #[arg(long, default_value_t = 5000)]
    pub users: usize,
    /// `direct`: straight to one gateway's WebSocket port (?token=, loopback only); `nginx`:
    /// through the load balancer (spread over the gateways; nginx's worker_connections bound it).
    #[arg(long, default_value = "direct")]
    pub target: String,
    /// The gateway for `direct` (1: 8101, ops 9101; 2: 8102, ops 9102).
    #[arg(long, default_value_t = 1)]
    pub gateway: u8,
    /// Open the connections in this many equal stages (memory is read after each).
    #[arg(long, default_value_t = 2)]
    pub stages: usize,
    /// Seconds to hold them all open before the ping round and closing.
    #[arg(long, default_value_t = 15)]
    pub hold_secs: u64,
}

#[derive(Args, Clone, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Channels with history to read.
    #[arg(long, default_value_t = 20)]
    pub channels: usize,
    /// Messages each of them holds (seeded once, kept across runs).
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Seeding rate (messages/s), when messages are missing.
    #[arg(long, default_value_t = 800.0)]
    pub seed_rate: f64,
    /// History pages per second (open loop), each `limit` messages.
    #[arg(long, default_value_t = 200.0)]
    pub read_rate: f64,
    /// Most reads in flight.
    #[arg(long, default_value_t = 64)]
    pub read_concurrency: usize,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// How deep readers page back (pages per channel).
    #[arg(long, default_value_t = 20)]
    pub pages: usize,
    /// Background traffic while reading: messages/s over 10-member channels (0: none).
    #[arg(long, default_value_t = 500.0)]
    pub load_rate: f64,
    /// Channels of the background traffic (10 members each).
    #[arg(long, default_value_t = 200)]
    pub load_channels: usize,
    /// Seconds of reading under load.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
}

#[derive(Args, Clone, Debug)]
pub struct SmokeArgs {
    #[arg(long, env = "CHAT_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    #[arg(long, default_value_os_t = procs::home().join(".cache/chat-bench"))]
    pub cache_dir: PathBuf,
    /// Messages per second over all senders.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Show progress.
    #[arg(long)]
    pub verbose: bool,
}

use std::path::PathBuf;

// ---------------------------------------------------------------------------- helpers

fn bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr_with_hz(4));
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len}\n  {wide_msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    b.enable_steady_tick(Duration::from_millis(250));
    b
}

fn spread(c: &Common) -> Spread {
    let limit = procs::raise_nofile() as usize;
    Spread {
        per_worker: c.per_worker.unwrap_or(limit.saturating_sub(2000).max(100)),
        min_workers: c.workers.max(1),
        force_processes: c.processes || c.workers > 1,
        source_ips: c.source_ips,
    }
}

fn ws_url(base: &str) -> (String, String) {
    let hostport = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    (format!("ws://{hostport}/ws"), hostport)
}

/// The users of a layout, in channels of given member indexes; created once and reused.
async fn ensure_layout(
    pool: &Pool,
    api: &Api,
    name: &str,
    users: &[CachedUser],
    members: &[Vec<usize>],
    bar: &ProgressBar,
) -> anyhow::Result<Layout> {
    if let Some(l) = pool.layout(name, users)
        && l.channels.len() == members.len()
        && l.channels
            .iter()
            .zip(members)
            .all(|(c, m)| c.members.iter().map(|x| x.0).eq(m.iter().copied()))
    {
        return Ok(l);
    }
    let joins: usize = members.iter().map(|m| m.len().saturating_sub(1)).sum();
    bar.set_length((members.len() + joins) as u64);
    bar.set_position(0);
    bar.set_message(format!(
        "layout {name}: creating {} channels, {joins} joins (cached for later runs)",
        members.len()
    ));
    let mut channels = Vec::with_capacity(members.len());
    for (k, m) in members.iter().enumerate() {
        let owner = &users[m[0]];
        let ch = api
            .create_channel(&owner.access_token, &format!("bench {name} #{k}"))
            .await?;
        bar.inc(1);
        channels.push(LayoutChannel {
            id: ch.id,
            members: m.iter().map(|i| (*i, users[*i].user_id)).collect(),
        });
    }
    let work: Vec<(ChannelId, usize)> = channels
        .iter()
        .flat_map(|c| c.members.iter().skip(1).map(move |(i, _)| (c.id, *i)))
        .collect();
    let results: Vec<anyhow::Result<()>> =
        futures::stream::iter(work.into_iter().map(|(ch, i)| {
            let token = users[i].access_token.clone();
            async move { api.join(&token, ch).await }
        }))
        .buffer_unordered(16)
        .inspect(|_| bar.inc(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    let layout = Layout {
        channels,
        seeded: 0,
    };
    pool.save_layout(name, &layout).await?;
    Ok(layout)
}

fn guard(t: &TrafficOpts) -> Option<Guard> {
    (!t.no_guard).then_some(Guard {
        slow_share: t.slow_share,
        lag_secs: t.lag_secs,
    })
}

/// A measured run of steady traffic through nginx, with the user's traffic options.
#[allow(clippy::too_many_arguments)]
fn steady_traffic(
    c: &Common,
    t: &TrafficOpts,
    api: &Api,
    name: &str,
    channels: Vec<ChannelId>,
    conns: Vec<ConnPlan>,
    steps: Vec<Step>,
    stack_pids: &BTreeMap<String, u32>,
) -> TrafficSpec {
    let (ws_url, connect_addr) = ws_url(&c.base_url);
    TrafficSpec {
        api: api.clone(),
        name: name.into(),
        ws_url,
        connect_addr,
        token_in_query: false,
        channels,
        conns,
        steps,
        body_bytes: t.body_bytes,
        max_unacked: t.max_unacked,
        slow_ms: t.slow_ms,
        guard: guard(t),
        drain_secs: t.drain_secs,
        collect_ids: false,
        connect_rate: c.connect_rate,
        spread: spread(c),
        measure: true,
        stack_pids: stack_pids.clone(),
        on_go: None,
    }
}

/// The settings every steady-traffic result records, added to a scenario's own.
fn extend_settings(
    settings: &mut serde_json::Value,
    c: &Common,
    t: &TrafficOpts,
    r: &TrafficResult,
) {
    let common = serde_json::json!({
        "rates": r.steps.iter().map(|s| s.target_rate).collect::<Vec<_>>(),
        "step_secs": t.step_secs, "body_bytes": t.body_bytes,
        "max_unacked": t.max_unacked, "guard": !t.no_guard,
        "slow_ms": t.slow_ms, "slow_share": t.slow_share, "lag_secs": t.lag_secs,
        "workers": r.connections.workers, "source_ips": c.source_ips,
    });
    if let (Some(s), serde_json::Value::Object(common)) = (settings.as_object_mut(), common) {
        s.extend(common);
    }
}

fn steps_of(t: &TrafficOpts, default: &[f64]) -> Vec<Step> {
    t.rates
        .clone()
        .unwrap_or_else(|| default.to_vec())
        .into_iter()
        .map(|rate| Step {
            rate,
            secs: t.step_secs,
        })
        .collect()
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    scenario: &'a str,
    command: String,
    started_at: String,
    machine: procs::Machine,
    stack_pids: BTreeMap<String, u32>,
    settings: serde_json::Value,
    result: &'a T,
}

fn envelope<'a, T: Serialize>(
    scenario: &'a str,
    settings: serde_json::Value,
    stack_pids: &BTreeMap<String, u32>,
    result: &'a T,
) -> Envelope<'a, T> {
    Envelope {
        scenario,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: procs::machine(),
        stack_pids: stack_pids.clone(),
        settings,
        result,
    }
}

fn write_traffic(
    c: &Common,
    scenario: &str,
    settings: serde_json::Value,
    pids: &BTreeMap<String, u32>,
    r: &TrafficResult,
) -> anyhow::Result<()> {
    let name = c.name.clone().unwrap_or_else(|| scenario.to_string());
    let json = report::write_json(&c.out_dir, &name, &envelope(scenario, settings, pids, r))?;
    let lat = c.out_dir.join(format!("{name}-latency.svg"));
    let mut hists: Vec<(String, &hdrhistogram::Histogram<u64>)> = r
        .step_hists
        .iter()
        .map(|(n, h)| (format!("send-to-deliver @ {n}"), h))
        .collect();
    if let Some(a) = &r.ack_hist {
        hists.push(("ack (all steps)".to_string(), a));
    }
    report::plot(
        &lat,
        &format!("{name}: latency distribution (measured on this machine)"),
        &[report::latency_panel(
            "send-to-deliver at every recipient, and send-to-ack",
            &hists,
        )],
    )?;
    let thr = c.out_dir.join(format!("{name}-throughput.svg"));
    report::plot(
        &thr,
        &format!("{name}: throughput over time"),
        &report::timeline_panels(&name, r),
    )?;
    println!(
        "results: {}\nplots:   {}\n         {}",
        json.display(),
        lat.display(),
        thr.display()
    );
    Ok(())
}

fn verdict_ok(r: &TrafficResult) -> bool {
    let v = &r.verification;
    v.lost == 0 && v.duplicated == 0 && v.reordered == 0 && v.delivered > 0
}

// ---------------------------------------------------------------------------- groups

pub async fn groups(a: GroupsArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let b = bar(c.quiet);
    let api = Api::new(&c.base_url)?;
    let steps = steps_of(&a.traffic, &[50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]);
    let planned: f64 = steps.iter().map(|s| s.secs).sum();
    let n = a.channels * a.members;
    let pool = Pool::open(&c.cache_dir, &c.base_url, "bench")?;
    let users = pool
        .users(
            &api,
            n,
            Duration::from_secs_f64(planned + 600.0),
            c.register_concurrency,
            &b,
        )
        .await?;
    let members: Vec<Vec<usize>> = (0..a.channels)
        .map(|k| (k * a.members..(k + 1) * a.members).collect())
        .collect();
    let layout = ensure_layout(
        &pool,
        &api,
        &format!("groups-{}x{}", a.channels, a.members),
        &users,
        &members,
        &b,
    )
    .await?;
    let conns = (0..n)
        .map(|i| {
            let ch = (i / a.members) as u32;
            ConnPlan {
                token: users[i].access_token.clone(),
                channels: vec![ch],
                send_to: vec![ch],
            }
        })
        .collect();
    let pids = procs::stack_pids(&c.stack_dir);
    let spec = steady_traffic(
        c,
        &a.traffic,
        &api,
        "groups",
        layout.channels.iter().map(|c| c.id).collect(),
        conns,
        steps,
        &pids,
    );
    let r = traffic::run(spec, &b).await?;
    b.finish_and_clear();
    println!(
        "groups: {} channels x {} members, {} connections through nginx",
        a.channels, a.members, n
    );
    traffic::print(&r);
    let mut settings = serde_json::json!({
        "channels": a.channels, "members": a.members, "connections": n,
    });
    extend_settings(&mut settings, c, &a.traffic, &r);
    write_traffic(c, "groups", settings, &pids, &r)?;
    Ok(verdict_ok(&r))
}

// ---------------------------------------------------------------------------- fanout

pub async fn fanout(a: FanoutArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let b = bar(c.quiet);
    let api = Api::new(&c.base_url)?;
    let steps = steps_of(&a.traffic, &[10.0, 20.0, 50.0, 100.0]);
    let planned: f64 = steps.iter().map(|s| s.secs).sum();
    let pool = Pool::open(&c.cache_dir, &c.base_url, "bench")?;
    let users = pool
        .users(
            &api,
            a.members,
            Duration::from_secs_f64(planned + 600.0),
            c.register_concurrency,
            &b,
        )
        .await?;
    let layout = ensure_layout(
        &pool,
        &api,
        &format!("fanout-{}", a.members),
        &users,
        &[(0..a.members).collect()],
        &b,
    )
    .await?;
    let conns = (0..a.members)
        .map(|i| ConnPlan {
            token: users[i].access_token.clone(),
            channels: vec![0],
            send_to: if i < a.senders { vec![0] } else { vec![] },
        })
        .collect();
    let pids = procs::stack_pids(&c.stack_dir);
    let spec = steady_traffic(
        c,
        &a.traffic,
        &api,
        "fanout",
        vec![layout.channels[0].id],
        conns,
        steps,
        &pids,
    );
    let r = traffic::run(spec, &b).await?;
    b.finish_and_clear();
    println!(
        "fanout: 1 channel x {} members ({} senders), connections through nginx",
        a.members, a.senders
    );
    traffic::print(&r);
    let mut settings = serde_json::json!({
        "members": a.members, "senders": a.senders,
        "target_deliveries_per_s": r.steps.iter().map(|s| s.target_rate * a.members as f64).collect::<Vec<_>>(),
    });
    extend_settings(&mut settings, c, &a.traffic, &r);
    write_traffic(c, "fanout", settings, &pids, &r)?;
    Ok(verdict_ok(&r))
}

// ---------------------------------------------------------------------------- idle

#[derive(Serialize)]
struct IdleSample {
    t: f64,
    open: u64,
    gateway_rss_mib: f64,
    nginx_rss_mib: f64,
}

#[derive(Serialize)]
struct IdleResult {
    machine_busy_before_percent: f64,
    target: String,
    planned: usize,
    opened: u64,
    failed: usize,
    first_error: Option<String>,
    workers: usize,
    worker_processes: bool,
    source_addresses: u8,
    connect_seconds: f64,
    /// The gateway's own connection gauge (chat_connections) before and when all were open.
    gateway_gauge: [f64; 2],
    /// RSS (KiB) of the measured servers: before, after each stage, after the hold, after close.
    rss_kib: BTreeMap<String, Vec<u64>>,
    /// (RSS when all were open − RSS before) / open connections, per measured server.
    kib_per_connection: BTreeMap<String, f64>,
    /// The same from the last stage alone (slope; free memory the allocator kept from earlier
    /// runs is used up by then).
    kib_per_connection_last_stage: BTreeMap<String, f64>,
    /// Client processes: RSS per connection (KiB) for comparison.
    client_kib_per_connection: f64,
    dropped: u64,
    closes: BTreeMap<String, u64>,
    /// Round trip of one `ping` frame on every open connection after the hold.
    ping: Summary,
    pongs: u64,
    cpu_connect: Option<procs::CpuReport>,
    cpu_hold: Option<procs::CpuReport>,
    samples: Vec<IdleSample>,
}

pub async fn idle(a: IdleArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let b = bar(c.quiet);
    let api = Api::new(&c.base_url)?;
    let direct = match a.target.as_str() {
        "direct" => true,
        "nginx" => false,
        t => bail!("--target must be direct or nginx, not {t}"),
    };
    let n_users = a.users.min(a.connections).max(1);
    let pool = Pool::open(&c.cache_dir, &c.base_url, "bench")?;
    let users = pool
        .users(
            &api,
            n_users,
            Duration::from_secs(a.hold_secs + 900),
            c.register_concurrency,
            &b,
        )
        .await?;
    let pids = procs::stack_pids(&c.stack_dir);
    let gw_name = format!("gateway-{}", a.gateway);
    let measured: Vec<String> = if direct {
        vec![gw_name.clone()]
    } else {
        vec!["gateway-1".into(), "gateway-2".into(), "nginx".into()]
    };
    for m in &measured {
        if !pids.contains_key(m) {
            bail!(
                "no running {m} found under {} (is the native stack up?)",
                c.stack_dir.display()
            );
        }
    }
    let (ws, addr) = if direct {
        (
            format!("ws://127.0.0.1:{}/ws", 8100 + a.gateway as u16),
            format!("127.0.0.1:{}", 8100 + a.gateway as u16),
        )
    } else {
        ws_url(&c.base_url)
    };
    let ops_ports: Vec<u16> = if direct {
        vec![9100 + a.gateway as u16]
    } else {
        vec![9101, 9102]
    };
    let sp = spread(c);
    let all: Vec<JobConn> = (0..a.connections)
        .map(|i| JobConn {
            idx: i as u32,
            token: users[i % n_users].access_token.clone(),
            source_ip: sp.source_ip(i),
            channels: vec![],
            send_to: vec![],
            sender_ordinal: 0,
        })
        .collect();
    let stages = split(&all, a.stages.max(1));
    let total_workers: usize = stages.iter().map(|s| sp.workers_for(s.len())).sum();
    let force = sp.force_processes || total_workers > 1;
    let job = |w: usize, conns: Vec<JobConn>, n_workers: usize| Job {
        worker: w,
        mode: Mode::Idle,
        run_tag: "idle".into(),
        ws_url: ws.clone(),
        connect_addr: addr.clone(),
        token_in_query: direct,
        connect_rate: c.connect_rate / n_workers as f64,
        channels: vec![],
        conns,
        senders_total: 0,
        body_bytes: 0,
        max_unacked: 0,
        slow_ms: 0,
        collect_ids: false,
        reconnect: false,
        deadline_secs: a.connections as u64 / c.connect_rate.max(1.0) as u64 + a.hold_secs + 300,
    };

    let gauge = |api: Api, ports: Vec<u16>| async move {
        let mut sum = 0.0;
        for p in ports {
            sum += api.ops_metric(p, "chat_connections").await.unwrap_or(0.0);
        }
        sum
    };
    let rss = |name: &str| pids.get(name).map_or(0, |p| procs::tree_rss_kib(*p));
    let mut rss_kib: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let read_rss = |rss_kib: &mut BTreeMap<String, Vec<u64>>| {
        for m in &measured {
            rss_kib.entry(m.clone()).or_default().push(rss(m));
        }
    };
    let machine_busy_before_percent = procs::machine_busy(Duration::from_secs(2)).await;
    read_rss(&mut rss_kib);
    let gauge_before = gauge(api.clone(), ops_ports.clone()).await;
    let started = Instant::now();
    let mut samples = Vec::new();
    let sample = |fleets: &[Fleet], samples: &mut Vec<IdleSample>| {
        let open: u64 = fleets.iter().map(|f| f.totals().open).sum();
        let gw: u64 = measured
            .iter()
            .filter(|m| m.starts_with("gateway"))
            .map(|m| rss(m))
            .sum();
        samples.push(IdleSample {
            t: started.elapsed().as_secs_f64(),
            open,
            gateway_rss_mib: gw as f64 / 1024.0,
            nginx_rss_mib: if direct {
                0.0
            } else {
                rss("nginx") as f64 / 1024.0
            },
        });
    };
    let cpu0 = procs::cpu_snapshot(&pids);
    let mut fleets: Vec<Fleet> = Vec::new();
    let mut worker_no = 0;
    b.set_length(a.connections as u64);
    b.set_position(0);
    for (s, conns) in stages.into_iter().enumerate() {
        let nw = sp.workers_for(conns.len());
        let jobs: Vec<Job> = split(&conns, nw)
            .into_iter()
            .map(|part| {
                worker_no += 1;
                job(worker_no - 1, part, nw)
            })
            .collect();
        let mut f = Fleet::start(jobs, force)?;
        let limit = Instant::now()
            + Duration::from_secs_f64(conns.len() as f64 / c.connect_rate.max(1.0) * 3.0 + 60.0);
        loop {
            f.pump(Duration::from_millis(1000)).await;
            fleets.push(f);
            sample(&fleets, &mut samples);
            f = fleets.pop().expect("just pushed");
            let open: u64 = fleets.iter().map(|x| x.totals().open).sum::<u64>() + f.totals().open;
            let failed: u64 =
                fleets.iter().map(|x| x.totals().failed).sum::<u64>() + f.totals().failed;
            b.set_position(open + failed);
            b.set_message(format!(
                "idle: stage {}/{}: {open} open, {failed} failed",
                s + 1,
                a.stages
            ));
            if f.all_connected() || Instant::now() > limit {
                break;
            }
        }
        fleets.push(f);
        // Let the gateway settle (presence registration, first pings), then read memory.
        for _ in 0..3 {
            for f in &mut fleets {
                f.pump(Duration::from_millis(330)).await;
            }
            sample(&fleets, &mut samples);
        }
        read_rss(&mut rss_kib);
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let cpu1 = procs::cpu_snapshot(&pids);
    let gauge_full = gauge(api.clone(), ops_ports.clone()).await;
    let (opened, failed_n, first_error) = fleets.iter().fold((0, 0, None), |(o, f, e), x| {
        let (ok, failed) = x.connected_counts();
        (o + ok, f + failed, e.or_else(|| x.first_error()))
    });
    // Hold.
    let hold_until = Instant::now() + Duration::from_secs(a.hold_secs);
    while Instant::now() < hold_until {
        for f in &mut fleets {
            f.pump(Duration::from_millis(500)).await;
        }
        sample(&fleets, &mut samples);
        let open: u64 = fleets.iter().map(|x| x.totals().open).sum();
        b.set_message(format!(
            "idle: holding {open} connections ({}s left)",
            hold_until
                .saturating_duration_since(Instant::now())
                .as_secs()
        ));
    }
    read_rss(&mut rss_kib);
    let cpu2 = procs::cpu_snapshot(&pids);
    let client_rss: u64 = procs::tree_rss_kib(std::process::id());
    // One ping round on every connection.
    b.set_message("idle: ping round");
    for f in &fleets {
        f.broadcast(ToWorker::Ping);
    }
    let ping_until = Instant::now() + Duration::from_secs(20);
    loop {
        for f in &mut fleets {
            f.pump(Duration::from_millis(250)).await;
        }
        let t: (u64, u64) = fleets
            .iter()
            .map(|f| f.totals())
            .fold((0, 0), |a, t| (a.0 + t.pongs, a.1 + t.open));
        if t.0 >= t.1 || Instant::now() > ping_until {
            break;
        }
    }
    b.set_message("idle: closing");
    let mut dones = Vec::new();
    for f in fleets {
        dones.extend(f.stop().await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    read_rss(&mut rss_kib);
    b.finish_and_clear();

    let mut ping = stats::hist(3);
    let mut closes = BTreeMap::new();
    let mut dropped = 0;
    let mut pongs = 0;
    for d in &dones {
        d.ping.merge_into(&mut ping);
        dropped += d.dropped;
        pongs += d.pongs;
        for (k, n) in &d.closes {
            *closes.entry(k.clone()).or_insert(0) += n;
        }
    }
    let stages_n = a.stages.max(1);
    let mut per_conn = BTreeMap::new();
    let mut per_conn_last = BTreeMap::new();
    let opened_f = opened.max(1) as f64;
    let last_stage_conns = (a.connections / stages_n).max(1) as f64;
    for (m, v) in &rss_kib {
        // v: [before, stage 1, ..., stage n, after hold, after close]
        let full = v[stages_n];
        per_conn.insert(m.clone(), (full as f64 - v[0] as f64) / opened_f);
        if stages_n >= 2 {
            per_conn_last.insert(
                m.clone(),
                (full as f64 - v[stages_n - 1] as f64) / last_stage_conns,
            );
        }
    }
    let result = IdleResult {
        machine_busy_before_percent,
        target: if direct {
            format!("direct to {gw_name} ({addr}, token in the query; loopback only)")
        } else {
            format!("through nginx ({})", c.base_url)
        },
        planned: a.connections,
        opened,
        failed: failed_n,
        first_error,
        workers: worker_no,
        worker_processes: force,
        source_addresses: c.source_ips,
        connect_seconds,
        gateway_gauge: [gauge_before, gauge_full],
        rss_kib,
        kib_per_connection: per_conn,
        kib_per_connection_last_stage: per_conn_last,
        client_kib_per_connection: client_rss as f64 / opened_f,
        dropped,
        closes,
        ping: Summary::of(&ping),
        pongs,
        cpu_connect: Some(procs::cpu_between(
            &cpu0,
            &cpu1,
            opened,
            "connections opened",
        )),
        cpu_hold: Some(procs::cpu_between(&cpu1, &cpu2, opened, "open connections")),
        samples,
    };
    println!(
        "idle: {} of {} connections open ({} failed{}) {}, {} worker process(es), {} source addresses, opened in {:.1} s",
        result.opened,
        result.planned,
        result.failed,
        result
            .first_error
            .as_ref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default(),
        result.target,
        result.workers,
        c.source_ips,
        connect_seconds
    );
    println!(
        "gateway connection gauge: {} before, {} with all open",
        gauge_before, gauge_full
    );
    for (m, v) in &result.rss_kib {
        println!(
            "{m}: RSS KiB {:?} (before, after each stage, after hold, after close) => {:.1} KiB per connection (last stage alone: {})",
            v,
            result.kib_per_connection.get(m).copied().unwrap_or(0.0),
            result
                .kib_per_connection_last_stage
                .get(m)
                .map_or("-".into(), |x| format!("{x:.1} KiB"))
        );
    }
    println!(
        "client: {:.1} KiB per connection; dropped during the hold: {}; ping round: {} ({} pongs)",
        result.client_kib_per_connection,
        result.dropped,
        result.ping.line(),
        result.pongs
    );
    if let Some(cpu) = &result.cpu_hold {
        let top: Vec<String> = cpu
            .processes
            .iter()
            .take(4)
            .map(|p| format!("{} {:.1}%", p.process, p.core_percent))
            .collect();
        println!("CPU while holding: {}", top.join(", "));
    }
    let name = c.name.clone().unwrap_or_else(|| "idle".into());
    let settings = serde_json::json!({
        "connections": a.connections, "users": n_users, "target": a.target, "gateway": a.gateway,
        "stages": a.stages, "hold_secs": a.hold_secs, "connect_rate": c.connect_rate,
        "source_ips": c.source_ips, "per_worker": sp.per_worker,
    });
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope("idle", settings, &pids, &result),
    )?;
    let svg = c.out_dir.join(format!("{name}-memory.svg"));
    let pts = |f: &dyn Fn(&IdleSample) -> f64| -> Vec<(f64, f64)> {
        result.samples.iter().map(|s| (s.t, f(s))).collect()
    };
    let mut mem_series = vec![(
        if direct {
            format!("{gw_name} RSS (MiB)")
        } else {
            "gateways RSS (MiB)".into()
        },
        pts(&|s| s.gateway_rss_mib),
    )];
    if !direct {
        mem_series.push(("nginx RSS (MiB)".into(), pts(&|s| s.nginx_rss_mib)));
    }
    report::plot(
        &svg,
        &format!("{name}: idle connections and gateway memory (measured on this machine)"),
        &[
            report::series_panel(
                "open connections",
                "seconds",
                "connections",
                vec![("open".into(), pts(&|s| s.open as f64))],
            ),
            report::series_panel("resident memory", "seconds", "MiB", mem_series),
        ],
    )?;
    println!("results: {}\nplot:    {}", json.display(), svg.display());
    Ok(result.opened > 0 && result.failed == 0 && result.dropped == 0)
}

// ---------------------------------------------------------------------------- history

#[derive(Serialize)]
struct HistoryResult {
    channels: usize,
    messages_per_channel: u64,
    limit: u32,
    pages_deep: usize,
    /// Pages read one at a time with no other load (the paging walk that finds the cursors).
    quiet: Summary,
    /// Pages read at --read-rate while the background traffic ran.
    under_load: Summary,
    under_load_newest: Summary,
    under_load_older: Summary,
    reads: u64,
    reads_per_s: f64,
    target_read_rate: f64,
    skipped_reads: u64,
    read_errors: u64,
    /// Pages whose content was not `limit` consecutive positions just before the cursor.
    wrong_pages: u64,
    cpu_per_1000_reads: Option<procs::CpuReport>,
    reads_timeline: Vec<(usize, u64, f64)>,
    background: Option<TrafficResult>,
}

struct Cursor {
    channel: ChannelId,
    token: String,
    /// Page starts: None = newest page; Some(id, seq) = the page before that message.
    before: Option<(MessageId, i64)>,
}

pub async fn history(a: HistoryArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let b = bar(c.quiet);
    let api = Api::new(&c.base_url)?;
    let pool = Pool::open(&c.cache_dir, &c.base_url, "bench")?;
    // History channels belong to 10 users at the end of the bench pool; the background load
    // uses 10-member channels of the users at its start.
    const HISTORY_MEMBERS: usize = 10;
    let load_users = if a.load_rate > 0.0 {
        a.load_channels * 10
    } else {
        0
    };
    let pool_size = 5000.max(load_users + HISTORY_MEMBERS);
    let users = pool
        .users(
            &api,
            pool_size,
            Duration::from_secs_f64(a.duration + 900.0),
            c.register_concurrency,
            &b,
        )
        .await?;
    let hist_members: Vec<usize> = (pool_size - HISTORY_MEMBERS..pool_size).collect();
    let layout_name = format!("history-{}", a.channels);
    let mut layout = ensure_layout(
        &pool,
        &api,
        &layout_name,
        &users,
        &vec![hist_members.clone(); a.channels],
        &b,
    )
    .await?;
    let reader = &users[hist_members[0]];
    let pids = procs::stack_pids(&c.stack_dir);

    // Seed what is missing.
    let newest = |layout: Layout| {
        let api = api.clone();
        let token = reader.access_token.clone();
        async move {
            let mut min = i64::MAX;
            for ch in &layout.channels {
                let (page, _) = api.history(&token, ch.id, 1, None, None).await?;
                min = min.min(page.last().and_then(|m| m.seq).unwrap_or(0));
            }
            anyhow::Ok(min)
        }
    };
    if layout.seeded < a.messages {
        let have = newest(layout.clone()).await?.max(0) as u64;
        if have < a.messages {
            let missing = (a.messages - have) * a.channels as u64;
            b.println(format!(
                "history: seeding {missing} messages ({} channels up to {} each) at {} msg/s",
                a.channels, a.messages, a.seed_rate
            ));
            let all: Vec<u32> = (0..a.channels as u32).collect();
            let (ws, addr) = ws_url(&c.base_url);
            let spec = TrafficSpec {
                api: api.clone(),
                name: "history seeding".into(),
                ws_url: ws,
                connect_addr: addr,
                token_in_query: false,
                channels: layout.channels.iter().map(|c| c.id).collect(),
                conns: hist_members
                    .iter()
                    .map(|i| ConnPlan {
                        token: users[*i].access_token.clone(),
                        channels: all.clone(),
                        send_to: all.clone(),
                    })
                    .collect(),
                steps: vec![Step {
                    rate: a.seed_rate,
                    secs: (missing as f64 / a.seed_rate).ceil() + 1.0,
                }],
                body_bytes: 100,
                max_unacked: 64,
                slow_ms: 5000,
                guard: Some(Guard {
                    slow_share: 0.5,
                    lag_secs: 10.0,
                }),
                drain_secs: 30.0,
                collect_ids: false,
                connect_rate: 100.0,
                spread: spread(c),
                measure: false,
                stack_pids: pids.clone(),
                on_go: None,
            };
            let r = traffic::run(spec, &b).await?;
            b.println(format!(
                "history: seeded {} messages ({} acked)",
                r.steps.first().map_or(0, |s| s.sent),
                r.steps.first().map_or(0, |s| s.acked)
            ));
        }
        layout.seeded = newest(layout.clone()).await?.max(0) as u64;
        pool.save_layout(&layout_name, &layout).await?;
    }

    // Walk every channel back `pages` pages, one request at a time (quiet baseline), keeping
    // the cursors for the reads under load.
    b.set_message("history: paging through every channel (quiet baseline)");
    let mut quiet = stats::hist(3);
    let mut cursors: Vec<Cursor> = Vec::new();
    let mut wrong = 0u64;
    for ch in &layout.channels {
        let mut before: Option<(MessageId, i64)> = None;
        for _ in 0..a.pages {
            let (page, took) = api
                .history(
                    &reader.access_token,
                    ch.id,
                    a.limit,
                    before.map(|b| b.0),
                    None,
                )
                .await?;
            stats::record(&mut quiet, took.as_micros() as u64);
            if !page_ok(&page, a.limit, before.map(|b| b.1)) {
                wrong += 1;
            }
            cursors.push(Cursor {
                channel: ch.id,
                token: reader.access_token.clone(),
                before,
            });
            let Some(first) = page.first() else { break };
            if first.seq.unwrap_or(1) <= 1 {
                break;
            }
            before = Some((first.id, first.seq.unwrap_or(0)));
        }
    }

    // Background traffic + open-loop reads.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<std::time::Instant>();
    let background = if a.load_rate > 0.0 {
        let members: Vec<Vec<usize>> = (0..a.load_channels)
            .map(|k| (k * 10..(k + 1) * 10).collect())
            .collect();
        let load_layout = ensure_layout(
            &pool,
            &api,
            &format!("groups-{}x10", a.load_channels),
            &users,
            &members,
            &b,
        )
        .await?;
        let (ws, addr) = ws_url(&c.base_url);
        Some(TrafficSpec {
            api: api.clone(),
            name: "history background".into(),
            ws_url: ws,
            connect_addr: addr,
            token_in_query: false,
            channels: load_layout.channels.iter().map(|c| c.id).collect(),
            conns: (0..load_users)
                .map(|i| ConnPlan {
                    token: users[i].access_token.clone(),
                    channels: vec![(i / 10) as u32],
                    send_to: vec![(i / 10) as u32],
                })
                .collect(),
            steps: vec![Step {
                rate: a.load_rate,
                secs: a.duration,
            }],
            body_bytes: 100,
            max_unacked: 64,
            slow_ms: 5000,
            guard: None,
            drain_secs: 20.0,
            collect_ids: false,
            connect_rate: c.connect_rate,
            spread: spread(c),
            measure: true,
            stack_pids: pids.clone(),
            on_go: Some(go_tx),
        })
    } else {
        let _ = go_tx.send(std::time::Instant::now());
        None
    };
    let reads = {
        let api = api.clone();
        let limit = a.limit;
        let rate = a.read_rate;
        let conc = a.read_concurrency;
        let duration = a.duration;
        let pids = pids.clone();
        tokio::spawn(async move {
            let start = go_rx.await.unwrap_or_else(|_| std::time::Instant::now());
            let start = Instant::from_std(start);
            tokio::time::sleep_until(start).await;
            let cpu0 = procs::cpu_snapshot(&pids);
            let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(conc));
            let results = std::sync::Arc::new(std::sync::Mutex::new(ReadStats::new()));
            let mut skipped = 0u64;
            let mut tasks = Vec::new();
            let n = (rate * duration) as u64;
            let cursors = std::sync::Arc::new(cursors);
            for k in 0..n {
                let at = start + Duration::from_secs_f64(k as f64 / rate);
                tokio::time::sleep_until(at).await;
                let Ok(permit) = sem.clone().try_acquire_owned() else {
                    skipped += 1;
                    continue;
                };
                let cur = (k as usize * 7919) % cursors.len();
                let api = api.clone();
                let results = results.clone();
                let cursors = cursors.clone();
                tasks.push(tokio::spawn(async move {
                    let cursor = &cursors[cur];
                    let r = api
                        .history(
                            &cursor.token,
                            cursor.channel,
                            limit,
                            cursor.before.map(|b| b.0),
                            None,
                        )
                        .await;
                    let sec = start.elapsed().as_secs() as usize;
                    let mut s = results.lock().expect("stats");
                    match r {
                        Ok((page, took)) => {
                            let us = took.as_micros() as u64;
                            stats::record(&mut s.all, us);
                            if cursor.before.is_none() {
                                stats::record(&mut s.newest, us);
                            } else {
                                stats::record(&mut s.older, us);
                            }
                            if !page_ok(&page, limit, cursor.before.map(|b| b.1)) {
                                s.wrong += 1;
                            }
                            while s.timeline.len() <= sec {
                                s.timeline.push((0, stats::hist(2)));
                            }
                            s.timeline[sec].0 += 1;
                            stats::record(&mut s.timeline[sec].1, us);
                        }
                        Err(_) => s.errors += 1,
                    }
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let cpu1 = procs::cpu_snapshot(&pids);
            let s = std::sync::Arc::try_unwrap(results)
                .ok()
                .map(|m| m.into_inner().expect("stats"))
                .unwrap_or_else(ReadStats::new);
            (s, skipped, start.elapsed().as_secs_f64(), cpu0, cpu1)
        })
    };
    let background = match background {
        Some(spec) => Some(traffic::run(spec, &b).await?),
        None => None,
    };
    let (rs, skipped, secs, cpu0, cpu1) = reads.await?;
    b.finish_and_clear();
    let reads_n = rs.all.len();
    let result = HistoryResult {
        channels: a.channels,
        messages_per_channel: layout.seeded,
        limit: a.limit,
        pages_deep: a.pages,
        quiet: Summary::of(&quiet),
        under_load: Summary::of(&rs.all),
        under_load_newest: Summary::of(&rs.newest),
        under_load_older: Summary::of(&rs.older),
        reads: reads_n,
        reads_per_s: reads_n as f64 / secs.max(1e-9),
        target_read_rate: a.read_rate,
        skipped_reads: skipped,
        read_errors: rs.errors,
        wrong_pages: wrong + rs.wrong,
        cpu_per_1000_reads: Some(procs::cpu_between(&cpu0, &cpu1, reads_n, "history pages")),
        reads_timeline: rs
            .timeline
            .iter()
            .enumerate()
            .map(|(t, (n, h))| (t, *n, h.value_at_quantile(0.99) as f64 / 1000.0))
            .collect(),
        background,
    };
    println!(
        "history: {} channels x {} messages, pages of {} up to {} deep",
        a.channels, result.messages_per_channel, a.limit, a.pages
    );
    println!("quiet (one at a time, no load): {}", result.quiet.line());
    println!(
        "under load ({} reads/s target, {:.0} achieved, {} msg/s background): {}",
        a.read_rate,
        result.reads_per_s,
        a.load_rate,
        result.under_load.line()
    );
    println!("  newest page: {}", result.under_load_newest.line());
    println!("  older pages: {}", result.under_load_older.line());
    println!(
        "read errors {}, skipped (concurrency cap) {}, wrong pages {}",
        result.read_errors, result.skipped_reads, result.wrong_pages
    );
    if let Some(cpu) = &result.cpu_per_1000_reads {
        let top: Vec<String> = cpu
            .processes
            .iter()
            .take(5)
            .map(|p| format!("{} {:.0}%", p.process, p.core_percent))
            .collect();
        println!(
            "CPU during the reads: {} (machine {:.0}%)",
            top.join(", "),
            cpu.machine_busy_percent
        );
    }
    if let Some(bg) = &result.background {
        println!("background traffic:");
        traffic::print(bg);
    }
    let name = c.name.clone().unwrap_or_else(|| "history".into());
    let settings = serde_json::json!({
        "channels": a.channels, "messages": a.messages, "limit": a.limit, "pages": a.pages,
        "read_rate": a.read_rate, "read_concurrency": a.read_concurrency,
        "load_rate": a.load_rate, "load_channels": a.load_channels, "duration": a.duration,
    });
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope("history", settings, &pids, &result),
    )?;
    let lat = c.out_dir.join(format!("{name}-latency.svg"));
    report::plot(
        &lat,
        &format!("{name}: history page latency (measured on this machine)"),
        &[report::latency_panel(
            &format!(
                "GET /api/v1/channels/{{id}}/messages?limit={} through nginx",
                a.limit
            ),
            &[
                ("quiet, one at a time".into(), &quiet),
                ("under load: newest page".into(), &rs.newest),
                ("under load: older pages (before=)".into(), &rs.older),
            ],
        )],
    )?;
    let thr = c.out_dir.join(format!("{name}-throughput.svg"));
    let mut panels = vec![
        report::series_panel(
            &format!("{name}: history pages per second"),
            "seconds",
            "pages/s",
            vec![(
                "pages/s".into(),
                result
                    .reads_timeline
                    .iter()
                    .map(|(t, n, _)| (*t as f64, *n as f64))
                    .collect(),
            )],
        ),
        Panel {
            log_y: true,
            ..report::series_panel(
                &format!("{name}: p99 page latency per second"),
                "seconds",
                "ms (log scale)",
                vec![(
                    "p99".into(),
                    result
                        .reads_timeline
                        .iter()
                        .map(|(t, _, p)| (*t as f64, *p))
                        .collect(),
                )],
            )
        },
    ];
    if let Some(bg) = &result.background {
        panels.extend(
            report::timeline_panels("background", bg)
                .into_iter()
                .take(2),
        );
    }
    report::plot(&thr, &format!("{name}: reads and load over time"), &panels)?;
    println!(
        "results: {}\nplots:   {}\n         {}",
        json.display(),
        lat.display(),
        thr.display()
    );
    Ok(result.read_errors == 0 && result.wrong_pages == 0)
}

struct ReadStats {
    all: hdrhistogram::Histogram<u64>,
    newest: hdrhistogram::Histogram<u64>,
    older: hdrhistogram::Histogram<u64>,
    errors: u64,
    wrong: u64,
    timeline: Vec<(u64, hdrhistogram::Histogram<u64>)>,
}

impl ReadStats {
    fn new() -> Self {
        ReadStats {
            all: stats::hist(3),
            newest: stats::hist(3),
            older: stats::hist(3),
            errors: 0,
            wrong: 0,
            timeline: Vec::new(),
        }
    }
}

/// A page is `limit` consecutive positions (fewer only at the start of the channel), ending just
/// before the cursor's position when there is one.
fn page_ok(page: &[chat_types::Message], limit: u32, before_seq: Option<i64>) -> bool {
    let seqs: Vec<i64> = page.iter().filter_map(|m| m.seq).collect();
    if seqs.len() != page.len() || page.len() > limit as usize {
        return false;
    }
    if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
        return false;
    }
    let Some(first) = seqs.first() else {
        return before_seq.is_none_or(|b| b <= 1);
    };
    if page.len() < limit as usize && *first != 1 {
        return false;
    }
    before_seq.is_none_or(|b| seqs.last() == Some(&(b - 1)))
}

// ---------------------------------------------------------------------------- smoke

pub async fn smoke(a: SmokeArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut checks: Vec<(String, bool)> = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(18), smoke_run(&a, &mut checks)).await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => checks.push((format!("run completes ({e:#})"), false)),
        Err(_) => checks.push(("run completes within 18 s".into(), false)),
    }
    for (name, ok) in &checks {
        println!("{} {name}", if *ok { "ok  " } else { "FAIL" });
    }
    let passed = checks.iter().filter(|c| c.1).count();
    let failed = checks.len() - passed;
    println!("(smoke took {:.1} s)", started.elapsed().as_secs_f64());
    println!("smoke: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

async fn smoke_run(a: &SmokeArgs, checks: &mut Vec<(String, bool)>) -> anyhow::Result<()> {
    let b = bar(!a.verbose);
    let api = Api::new(&a.base_url)?;
    let pool = Pool::open(&a.cache_dir, &a.base_url, "smoke")?;
    let users = pool
        .users(&api, 6, Duration::from_secs(300), 4, &b)
        .await
        .context("users")?;
    // Fresh channels each run: nothing else writes to them.
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut channels = Vec::new();
    for k in 0..2 {
        let ch = api
            .create_channel(&users[k * 3].access_token, &format!("smoke {tag} {k}"))
            .await?;
        for m in 1..3 {
            api.join(&users[k * 3 + m].access_token, ch.id).await?;
        }
        channels.push(ch.id);
    }
    let (ws, addr) = ws_url(&a.base_url);
    let spec = TrafficSpec {
        api: api.clone(),
        name: "smoke".into(),
        ws_url: ws,
        connect_addr: addr,
        token_in_query: false,
        channels: channels.clone(),
        conns: (0..6)
            .map(|i| ConnPlan {
                token: users[i].access_token.clone(),
                channels: vec![(i / 3) as u32],
                send_to: vec![(i / 3) as u32],
            })
            .collect(),
        steps: vec![Step {
            rate: a.rate,
            secs: a.secs,
        }],
        body_bytes: 80,
        max_unacked: 1000,
        slow_ms: 5000,
        guard: None,
        drain_secs: 8.0,
        collect_ids: true,
        connect_rate: 200.0,
        spread: Spread {
            per_worker: 1000,
            min_workers: 1,
            force_processes: false,
            source_ips: 2,
        },
        measure: false,
        stack_pids: BTreeMap::new(),
        on_go: None,
    };
    let r = traffic::run(spec, &b).await?;
    b.finish_and_clear();
    let v = &r.verification;
    let s = &r.steps[0];
    println!(
        "smoke: sent {} acked {} | deliveries {}/{} | e2e {} | ack p99 {} ms",
        s.sent,
        s.acked,
        v.delivered,
        v.expected,
        r.total_e2e.line(),
        stats::fmt_ms(r.total_ack.p99_ms)
    );
    checks.push((
        format!("all 6 connections open ({} failed)", r.connections.failed),
        r.connections.connected == 6,
    ));
    checks.push((
        format!(
            "every send acked ({} sent, {} acked, {} unacked, errors {:?})",
            s.sent, s.acked, v.unacked, v.errors
        ),
        s.sent > 0 && s.acked == s.sent && v.unacked == 0,
    ));
    checks.push((
        format!(
            "deliveries arrived ({} of {} owed)",
            v.delivered, v.expected
        ),
        v.delivered > 0 && v.delivered == v.expected,
    ));
    checks.push((
        format!("nothing lost ({} lost, {} late)", v.lost, v.late),
        v.lost == 0 && v.late == 0,
    ));
    checks.push((
        format!("nothing duplicated ({})", v.duplicated),
        v.duplicated == 0,
    ));
    checks.push((
        format!("nothing reordered ({})", v.reordered),
        v.reordered == 0,
    ));
    // History holds every acked message once, at consecutive positions.
    let mut acked: HashMap<u32, Vec<String>> = HashMap::new();
    for (ch, id) in &r.acked_ids {
        acked.entry(*ch).or_default().push(id.clone());
    }
    let mut history_ok = true;
    let mut detail = String::new();
    for (k, ch) in channels.iter().enumerate() {
        let want = acked.get(&(k as u32)).cloned().unwrap_or_default();
        let (page, _) = api
            .history(&users[k * 3].access_token, *ch, 100, None, None)
            .await?;
        let mut all = page;
        while all.len() < want.len() {
            let Some(first) = all.first() else { break };
            let (older, _) = api
                .history(&users[k * 3].access_token, *ch, 100, Some(first.id), None)
                .await?;
            if older.is_empty() {
                break;
            }
            all.splice(0..0, older);
        }
        let ids: Vec<String> = all.iter().map(|m| m.id.to_string()).collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        let missing = want.iter().filter(|w| !unique.contains(w)).count();
        let in_order = all
            .iter()
            .enumerate()
            .all(|(i, m)| m.seq == Some(i as i64 + 1));
        if missing > 0 || unique.len() != ids.len() || !in_order || ids.len() != want.len() {
            history_ok = false;
        }
        detail.push_str(&format!(
            "{}channel {k}: {} stored, {} acked, {missing} missing",
            if k > 0 { "; " } else { "" },
            ids.len(),
            want.len()
        ));
    }
    checks.push((
        format!("history holds every acked message once, in order ({detail})"),
        history_ok,
    ));
    Ok(())
}

// ---------------------------------------------------------------------------- baseline

#[derive(Args, Clone, Debug)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds to watch the idle stack.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// What the stack costs with no load at all (pollers, heartbeats, JVM housekeeping).
pub async fn baseline(a: BaselineArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let pids = procs::stack_pids(&c.stack_dir);
    if pids.is_empty() {
        bail!("no stack processes found under {}", c.stack_dir.display());
    }
    let s0 = procs::cpu_snapshot(&pids);
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let s1 = procs::cpu_snapshot(&pids);
    let cpu = procs::cpu_between(&s0, &s1, 0, "nothing (no load)");
    let rss: BTreeMap<String, u64> = pids
        .iter()
        .map(|(n, p)| (n.clone(), procs::tree_rss_kib(*p)))
        .collect();
    println!(
        "idle stack over {} s: machine {:.0}% busy of {} cores",
        a.secs, cpu.machine_busy_percent, cpu.cores
    );
    for p in &cpu.processes {
        println!(
            "  {:<18} {:>5.1}% of a core   RSS {:>8} KiB",
            p.process,
            p.core_percent,
            rss.get(&p.process).copied().unwrap_or(0)
        );
    }
    println!("  other              {:>5.1}%", cpu.other_core_percent);
    #[derive(Serialize)]
    struct Baseline {
        cpu: procs::CpuReport,
        rss_kib: BTreeMap<String, u64>,
    }
    let name = c.name.clone().unwrap_or_else(|| "baseline".into());
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope(
            "baseline",
            serde_json::json!({"secs": a.secs}),
            &pids,
            &Baseline { cpu, rss_kib: rss },
        ),
    )?;
    println!("results: {}", json.display());
    Ok(true)
}
