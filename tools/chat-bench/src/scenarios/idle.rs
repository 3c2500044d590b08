//! `idle`: idle connections held by one gateway (or both, through nginx), and the memory and
//! CPU each costs.

use super::shared::{Setup, envelope, spread, ws_url};
use crate::Common;
use crate::fleet::{Fleet, Spread, split};
use crate::procs::{self, CpuSnap};
use crate::proto::*;
use crate::report;
use crate::stats::{self, Summary};
use anyhow::bail;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

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

#[derive(Clone, Serialize)]
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

/// Where the connections go and what is measured.
struct Target {
    direct: bool,
    gw_name: String,
    /// Servers whose memory is read.
    measured: Vec<String>,
    ws: String,
    addr: String,
    ops_ports: Vec<u16>,
}

impl Target {
    fn of(a: &IdleArgs) -> anyhow::Result<Target> {
        let direct = match a.target.as_str() {
            "direct" => true,
            "nginx" => false,
            t => bail!("--target must be direct or nginx, not {t}"),
        };
        let gw_name = format!("gateway-{}", a.gateway);
        let port = 8100 + a.gateway as u16;
        let (ws, addr) = if direct {
            (
                format!("ws://127.0.0.1:{port}/ws"),
                format!("127.0.0.1:{port}"),
            )
        } else {
            ws_url(&a.common.base_url)
        };
        Ok(Target {
            direct,
            measured: if direct {
                vec![gw_name.clone()]
            } else {
                vec!["gateway-1".into(), "gateway-2".into(), "nginx".into()]
            },
            gw_name,
            ws,
            addr,
            ops_ports: if direct {
                vec![9100 + a.gateway as u16]
            } else {
                vec![9101, 9102]
            },
        })
    }

    fn describe(&self, base_url: &str) -> String {
        if self.direct {
            format!(
                "direct to {} ({}, token in the query; loopback only)",
                self.gw_name, self.addr
            )
        } else {
            format!("through nginx ({base_url})")
        }
    }
}

/// One idle run: its settings, and what it has measured so far.
struct Run<'a> {
    a: &'a IdleArgs,
    t: Target,
    pids: BTreeMap<String, u32>,
    http: reqwest::Client,
    bar: &'a indicatif::ProgressBar,
    started: Instant,
    rss_kib: BTreeMap<String, Vec<u64>>,
    samples: Vec<IdleSample>,
    fleets: Vec<Fleet>,
    workers: usize,
}

impl Run<'_> {
    fn rss(&self, name: &str) -> u64 {
        self.pids.get(name).map_or(0, |p| procs::tree_rss_kib(*p))
    }

    fn read_rss(&mut self) {
        for m in self.t.measured.clone() {
            let v = self.rss(&m);
            self.rss_kib.entry(m).or_default().push(v);
        }
    }

    /// The gateways' own connection gauge, summed.
    async fn gauge(&self) -> f64 {
        let mut sum = 0.0;
        for p in &self.t.ops_ports {
            sum += crate::ops::metric(&self.http, *p, "chat_connections")
                .await
                .unwrap_or(0.0);
        }
        sum
    }

    fn open(&self) -> u64 {
        self.fleets.iter().map(|f| f.totals().open).sum()
    }

    fn sample(&mut self, extra: Option<&Fleet>) {
        let open = self.open() + extra.map_or(0, |f| f.totals().open);
        let gw: u64 = self
            .t
            .measured
            .iter()
            .filter(|m| m.starts_with("gateway"))
            .map(|m| self.rss(m))
            .sum();
        let nginx = if self.t.direct { 0 } else { self.rss("nginx") };
        self.samples.push(IdleSample {
            t: self.started.elapsed().as_secs_f64(),
            open,
            gateway_rss_mib: gw as f64 / 1024.0,
            nginx_rss_mib: nginx as f64 / 1024.0,
        });
    }

    async fn pump_all(&mut self, wait: Duration) {
        for f in &mut self.fleets {
            f.pump(wait).await;
        }
    }

    fn job(&self, w: usize, conns: Vec<JobConn>, n_workers: usize) -> Job {
        let (a, c) = (self.a, &self.a.common);
        Job {
            worker: w,
            mode: Mode::Idle,
            run_tag: "idle".into(),
            ws_url: self.t.ws.clone(),
            connect_addr: self.t.addr.clone(),
            token_in_query: self.t.direct,
            connect_rate: c.connect_rate / n_workers as f64,
            channels: vec![],
            conns,
            senders_total: 0,
            body_bytes: 0,
            mix: Default::default(),
            max_unacked: 0,
            slow_ms: 0,
            collect_ids: false,
            reconnect: false,
            deadline_secs: a.connections as u64 / c.connect_rate.max(1.0) as u64
                + a.hold_secs
                + 300,
        }
    }

    /// Open the connections stage by stage, reading memory after each.
    async fn open_stages(
        &mut self,
        stages: Vec<Vec<JobConn>>,
        sp: &Spread,
        force: bool,
    ) -> anyhow::Result<()> {
        let c = &self.a.common;
        self.bar.set_length(self.a.connections as u64);
        self.bar.set_position(0);
        for (s, conns) in stages.into_iter().enumerate() {
            let nw = sp.workers_for(conns.len());
            let jobs: Vec<Job> = split(&conns, nw)
                .into_iter()
                .enumerate()
                .map(|(k, part)| self.job(self.workers + k, part, nw))
                .collect();
            self.workers += nw;
            let mut f = Fleet::start(jobs, force)?;
            let limit = Instant::now()
                + Duration::from_secs_f64(
                    conns.len() as f64 / c.connect_rate.max(1.0) * 3.0 + 60.0,
                );
            loop {
                f.pump(Duration::from_millis(1000)).await;
                self.sample(Some(&f));
                let open = self.open() + f.totals().open;
                let failed: u64 =
                    self.fleets.iter().map(|x| x.totals().failed).sum::<u64>() + f.totals().failed;
                self.bar.set_position(open + failed);
                self.bar.set_message(format!(
                    "idle: stage {}/{}: {open} open, {failed} failed",
                    s + 1,
                    self.a.stages
                ));
                if f.all_connected() || Instant::now() > limit {
                    break;
                }
            }
            self.fleets.push(f);
            // Let the gateway settle (presence registration, first pings), then read memory.
            for _ in 0..3 {
                self.pump_all(Duration::from_millis(330)).await;
                self.sample(None);
            }
            self.read_rss();
        }
        Ok(())
    }

    async fn hold(&mut self) {
        let hold_until = Instant::now() + Duration::from_secs(self.a.hold_secs);
        while Instant::now() < hold_until {
            self.pump_all(Duration::from_millis(500)).await;
            self.sample(None);
            let left = hold_until.saturating_duration_since(Instant::now());
            self.bar.set_message(format!(
                "idle: holding {} connections ({}s left)",
                self.open(),
                left.as_secs()
            ));
        }
    }

    /// One `ping` frame on every connection, until every open one has its `pong` (or 20 s).
    async fn ping_round(&mut self) {
        self.bar.set_message("idle: ping round");
        for f in &self.fleets {
            f.broadcast(ToWorker::Ping);
        }
        let ping_until = Instant::now() + Duration::from_secs(20);
        loop {
            self.pump_all(Duration::from_millis(250)).await;
            let t = self
                .fleets
                .iter()
                .map(|f| f.totals())
                .fold((0, 0), |a, t| (a.0 + t.pongs, a.1 + t.open));
            if t.0 >= t.1 || Instant::now() > ping_until {
                break;
            }
        }
    }
}

/// The workers' final reports: (ping round trips, closes, dropped, pongs).
fn merge(
    dones: &[Done],
) -> (
    hdrhistogram::Histogram<u64>,
    BTreeMap<String, u64>,
    u64,
    u64,
) {
    let mut ping = stats::hist(3);
    let mut closes = BTreeMap::new();
    let (mut dropped, mut pongs) = (0, 0);
    for d in dones {
        d.ping.merge_into(&mut ping);
        dropped += d.dropped;
        pongs += d.pongs;
        for (k, n) in &d.closes {
            *closes.entry(k.clone()).or_insert(0) += n;
        }
    }
    (ping, closes, dropped, pongs)
}

/// KiB per connection per measured server: over everything, and over the last stage alone.
fn per_connection(
    rss_kib: &BTreeMap<String, Vec<u64>>,
    stages: usize,
    opened: u64,
    connections: usize,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut per_conn = BTreeMap::new();
    let mut per_conn_last = BTreeMap::new();
    let opened_f = opened.max(1) as f64;
    let last_stage_conns = (connections / stages).max(1) as f64;
    for (m, v) in rss_kib {
        // v: [before, stage 1, ..., stage n, after hold, after close]
        let full = v[stages];
        per_conn.insert(m.clone(), (full as f64 - v[0] as f64) / opened_f);
        if stages >= 2 {
            per_conn_last.insert(
                m.clone(),
                (full as f64 - v[stages - 1] as f64) / last_stage_conns,
            );
        }
    }
    (per_conn, per_conn_last)
}

pub async fn idle(a: IdleArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let s = Setup::new(c)?;
    let t = Target::of(&a)?;
    let n_users = a.users.min(a.connections).max(1);
    let users = s
        .users(n_users, Duration::from_secs(a.hold_secs + 900))
        .await?;
    let pids = procs::stack_pids(&c.stack_dir);
    for m in &t.measured {
        if !pids.contains_key(m) {
            bail!(
                "no running {m} found under {} (is the native stack up?)",
                c.stack_dir.display()
            );
        }
    }
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
    let mut run = Run {
        a: &a,
        t,
        pids,
        http: s.api.http().clone(),
        bar: &s.bar,
        started: Instant::now(),
        rss_kib: BTreeMap::new(),
        samples: Vec::new(),
        fleets: Vec::new(),
        workers: 0,
    };
    let machine_busy_before_percent = procs::machine_busy(Duration::from_secs(2)).await;
    run.read_rss();
    let gauge_before = run.gauge().await;
    run.started = Instant::now();
    let cpu0 = procs::cpu_snapshot(&run.pids);
    run.open_stages(stages, &sp, force).await?;
    let connect_seconds = run.started.elapsed().as_secs_f64();
    let cpu1 = procs::cpu_snapshot(&run.pids);
    let gauge_full = run.gauge().await;
    run.hold().await;
    run.read_rss();
    let cpu2 = procs::cpu_snapshot(&run.pids);
    let client_rss: u64 = procs::tree_rss_kib(std::process::id());
    run.ping_round().await;
    s.bar.set_message("idle: closing");
    let (opened, failed, first_error) = run.fleets.iter().fold((0, 0, None), |(o, f, e), x| {
        let (ok, failed) = x.connected_counts();
        (o + ok, f + failed, e.or_else(|| x.first_error()))
    });
    let mut dones = Vec::new();
    for f in std::mem::take(&mut run.fleets) {
        dones.extend(f.stop().await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.read_rss();
    s.bar.finish_and_clear();
    let measured = Measured {
        machine_busy_before_percent,
        opened,
        failed,
        first_error,
        force,
        connect_seconds,
        gauge: [gauge_before, gauge_full],
        client_rss,
        cpu: [cpu0, cpu1, cpu2],
    };
    let result = result_of(&run, &dones, measured);
    print(&result, c);
    write(&run, &sp, n_users, &result)?;
    Ok(result.opened > 0 && result.failed == 0 && result.dropped == 0)
}

/// Numbers taken along the run, for [`result_of`].
struct Measured {
    machine_busy_before_percent: f64,
    opened: u64,
    failed: usize,
    first_error: Option<String>,
    force: bool,
    connect_seconds: f64,
    gauge: [f64; 2],
    client_rss: u64,
    /// Before connecting, all connected, after the hold.
    cpu: [CpuSnap; 3],
}

fn result_of(run: &Run, dones: &[Done], m: Measured) -> IdleResult {
    let (a, c) = (run.a, &run.a.common);
    let (ping, closes, dropped, pongs) = merge(dones);
    let (per_conn, per_conn_last) =
        per_connection(&run.rss_kib, a.stages.max(1), m.opened, a.connections);
    let [cpu0, cpu1, cpu2] = &m.cpu;
    IdleResult {
        machine_busy_before_percent: m.machine_busy_before_percent,
        target: run.t.describe(&c.base_url),
        planned: a.connections,
        opened: m.opened,
        failed: m.failed,
        first_error: m.first_error,
        workers: run.workers,
        worker_processes: m.force,
        source_addresses: c.source_ips,
        connect_seconds: m.connect_seconds,
        gateway_gauge: m.gauge,
        rss_kib: run.rss_kib.clone(),
        kib_per_connection: per_conn,
        kib_per_connection_last_stage: per_conn_last,
        client_kib_per_connection: m.client_rss as f64 / m.opened.max(1) as f64,
        dropped,
        closes,
        ping: Summary::of(&ping),
        pongs,
        cpu_connect: Some(procs::cpu_between(
            cpu0,
            cpu1,
            m.opened,
            "connections opened",
        )),
        cpu_hold: Some(procs::cpu_between(cpu1, cpu2, m.opened, "open connections")),
        samples: run.samples.clone(),
    }
}

fn print(result: &IdleResult, c: &Common) {
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
        result.connect_seconds
    );
    println!(
        "gateway connection gauge: {} before, {} with all open",
        result.gateway_gauge[0], result.gateway_gauge[1]
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
}

fn write(run: &Run, sp: &Spread, n_users: usize, result: &IdleResult) -> anyhow::Result<()> {
    let (a, c) = (run.a, &run.a.common);
    let name = c.name.clone().unwrap_or_else(|| "idle".into());
    let settings = serde_json::json!({
        "connections": a.connections, "users": n_users, "target": a.target, "gateway": a.gateway,
        "stages": a.stages, "hold_secs": a.hold_secs, "connect_rate": c.connect_rate,
        "source_ips": c.source_ips, "per_worker": sp.per_worker,
    });
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope("idle", settings, &run.pids, result),
    )?;
    let svg = c.out_dir.join(format!("{name}-memory.svg"));
    let pts = |f: &dyn Fn(&IdleSample) -> f64| -> Vec<(f64, f64)> {
        result.samples.iter().map(|s| (s.t, f(s))).collect()
    };
    let mut mem_series = vec![(
        if run.t.direct {
            format!("{} RSS (MiB)", run.t.gw_name)
        } else {
            "gateways RSS (MiB)".into()
        },
        pts(&|s| s.gateway_rss_mib),
    )];
    if !run.t.direct {
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
    Ok(())
}
