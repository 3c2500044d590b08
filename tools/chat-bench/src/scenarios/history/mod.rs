//! `history`: history page reads (50 messages) at a fixed rate while the system carries
//! traffic, after a quiet walk through every channel.
//!
//! # Layout
//! - this file: set-up (seeding what is missing), the run, its result and files.
//! - `reads`: the quiet paging walk and the open-loop reads under load.

mod reads;

use super::shared::{Setup, envelope, print_outputs, spread, ws_url};
use crate::Common;
use crate::cache::{CachedUser, Layout};
use crate::procs;
use crate::proto::Step;
use crate::report::{self, Panel};
use crate::stats::Summary;
use crate::traffic::{self, ConnPlan, Guard, TrafficResult, TrafficSpec};
use clap::Args;
use reads::{ReadPlan, Reads};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// History channels belong to this many users at the end of the bench pool; the background
/// load uses 10-member channels of the users at its start.
const HISTORY_MEMBERS: usize = 10;

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

pub async fn history(a: HistoryArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let s = Setup::new(c)?;
    let load_users = if a.load_rate > 0.0 {
        a.load_channels * 10
    } else {
        0
    };
    let pool_size = 5000.max(load_users + HISTORY_MEMBERS);
    let users = s
        .users(pool_size, Duration::from_secs_f64(a.duration + 900.0))
        .await?;
    let hist_members: Vec<usize> = (pool_size - HISTORY_MEMBERS..pool_size).collect();
    let layout_name = format!("history-{}", a.channels);
    let mut layout = s
        .layout(
            &layout_name,
            &users,
            &vec![hist_members.clone(); a.channels],
        )
        .await?;
    let reader = &users[hist_members[0]];
    let pids = procs::stack_pids(&c.stack_dir);
    if layout.seeded < a.messages {
        seed(&s, &a, &users, &hist_members, &layout, &pids).await?;
        layout.seeded = newest(&s, &reader.access_token, &layout).await?.max(0) as u64;
        s.pool.save_layout(&layout_name, &layout).await?;
    }

    // Walk every channel back `pages` pages, one request at a time (quiet baseline), keeping
    // the cursors for the reads under load.
    s.bar
        .set_message("history: paging through every channel (quiet baseline)");
    let ids: Vec<_> = layout.channels.iter().map(|c| c.id).collect();
    let walk = reads::walk(&s.api, &reader.access_token, &ids, a.limit, a.pages).await?;

    // Background traffic + open-loop reads.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<std::time::Instant>();
    let background = if a.load_rate > 0.0 {
        Some(background(&s, &a, &users, load_users, &pids, go_tx).await?)
    } else {
        let _ = go_tx.send(std::time::Instant::now());
        None
    };
    let plan = ReadPlan {
        limit: a.limit,
        rate: a.read_rate,
        concurrency: a.read_concurrency,
        duration: a.duration,
    };
    let reads = {
        let (api, pids) = (s.api.clone(), pids.clone());
        tokio::spawn(async move {
            let start = go_rx.await.unwrap_or_else(|_| std::time::Instant::now());
            reads::under_load(api, walk.cursors, plan, Instant::from_std(start), pids).await
        })
    };
    let background = match background {
        Some(spec) => Some(traffic::run(spec, &s.bar).await?),
        None => None,
    };
    let reads = reads.await?;
    s.bar.finish_and_clear();
    let result = result_of(&a, &layout, &walk.quiet, walk.wrong, &reads, background);
    print(&a, &result);
    write(&a, &pids, &result, &walk.quiet, &reads)?;
    Ok(result.read_errors == 0 && result.wrong_pages == 0)
}

/// The fewest messages any history channel holds (its newest position).
async fn newest(s: &Setup, token: &str, layout: &Layout) -> anyhow::Result<i64> {
    let mut min = i64::MAX;
    for ch in &layout.channels {
        let (page, _) = reads::page(&s.api, token, ch.id, 1, None).await?;
        min = min.min(page.last().and_then(|m| m.seq).unwrap_or(0));
    }
    Ok(min)
}

/// Send what is missing for every history channel to hold `--messages`.
async fn seed(
    s: &Setup,
    a: &HistoryArgs,
    users: &[CachedUser],
    members: &[usize],
    layout: &Layout,
    pids: &BTreeMap<String, u32>,
) -> anyhow::Result<()> {
    let reader = &users[members[0]];
    let have = newest(s, &reader.access_token, layout).await?.max(0) as u64;
    if have >= a.messages {
        return Ok(());
    }
    let missing = (a.messages - have) * a.channels as u64;
    s.bar.println(format!(
        "history: seeding {missing} messages ({} channels up to {} each) at {} msg/s",
        a.channels, a.messages, a.seed_rate
    ));
    let all: Vec<u32> = (0..a.channels as u32).collect();
    let (ws, addr) = ws_url(&a.common.base_url);
    let spec = TrafficSpec {
        http: s.api.http().clone(),
        name: "history seeding".into(),
        ws_url: ws,
        connect_addr: addr,
        token_in_query: false,
        channels: layout.channels.iter().map(|c| c.id).collect(),
        conns: members
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
        mix: Default::default(),
        collect_ids: false,
        connect_rate: 100.0,
        spread: spread(&a.common),
        measure: false,
        stack_pids: pids.clone(),
        on_go: None,
    };
    let r = traffic::run(spec, &s.bar).await?;
    s.bar.println(format!(
        "history: seeded {} messages ({} acked)",
        r.steps.first().map_or(0, |s| s.sent),
        r.steps.first().map_or(0, |s| s.acked)
    ));
    Ok(())
}

/// The background traffic: `--load-rate` over 10-member channels; its start goes to `on_go`.
async fn background(
    s: &Setup,
    a: &HistoryArgs,
    users: &[CachedUser],
    load_users: usize,
    pids: &BTreeMap<String, u32>,
    on_go: tokio::sync::oneshot::Sender<std::time::Instant>,
) -> anyhow::Result<TrafficSpec> {
    let c = &a.common;
    let members: Vec<Vec<usize>> = (0..a.load_channels)
        .map(|k| (k * 10..(k + 1) * 10).collect())
        .collect();
    let name = format!("groups-{}x10", a.load_channels);
    let load_layout = s.layout(&name, users, &members).await?;
    let (ws, addr) = ws_url(&c.base_url);
    Ok(TrafficSpec {
        http: s.api.http().clone(),
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
        mix: Default::default(),
        collect_ids: false,
        connect_rate: c.connect_rate,
        spread: spread(c),
        measure: true,
        stack_pids: pids.clone(),
        on_go: Some(on_go),
    })
}

fn result_of(
    a: &HistoryArgs,
    layout: &Layout,
    quiet: &hdrhistogram::Histogram<u64>,
    wrong: u64,
    r: &Reads,
    background: Option<TrafficResult>,
) -> HistoryResult {
    let rs = &r.stats;
    let reads_n = rs.all.len();
    HistoryResult {
        channels: a.channels,
        messages_per_channel: layout.seeded,
        limit: a.limit,
        pages_deep: a.pages,
        quiet: Summary::of(quiet),
        under_load: Summary::of(&rs.all),
        under_load_newest: Summary::of(&rs.newest),
        under_load_older: Summary::of(&rs.older),
        reads: reads_n,
        reads_per_s: reads_n as f64 / r.secs.max(1e-9),
        target_read_rate: a.read_rate,
        skipped_reads: r.skipped,
        read_errors: rs.errors,
        wrong_pages: wrong + rs.wrong,
        cpu_per_1000_reads: Some(procs::cpu_between(
            &r.cpu.0,
            &r.cpu.1,
            reads_n,
            "history pages",
        )),
        reads_timeline: rs
            .timeline
            .iter()
            .enumerate()
            .map(|(t, (n, h))| (t, *n, h.value_at_quantile(0.99) as f64 / 1000.0))
            .collect(),
        background,
    }
}

fn print(a: &HistoryArgs, result: &HistoryResult) {
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
}

fn write(
    a: &HistoryArgs,
    pids: &BTreeMap<String, u32>,
    result: &HistoryResult,
    quiet: &hdrhistogram::Histogram<u64>,
    r: &Reads,
) -> anyhow::Result<()> {
    let c = &a.common;
    let name = c.name.clone().unwrap_or_else(|| "history".into());
    let settings = serde_json::json!({
        "channels": a.channels, "messages": a.messages, "limit": a.limit, "pages": a.pages,
        "read_rate": a.read_rate, "read_concurrency": a.read_concurrency,
        "load_rate": a.load_rate, "load_channels": a.load_channels, "duration": a.duration,
    });
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope("history", settings, pids, result),
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
                ("quiet, one at a time".into(), quiet),
                ("under load: newest page".into(), &r.stats.newest),
                ("under load: older pages (before=)".into(), &r.stats.older),
            ],
        )],
    )?;
    let thr = c.out_dir.join(format!("{name}-throughput.svg"));
    report::plot(
        &thr,
        &format!("{name}: reads and load over time"),
        &panels(&name, result),
    )?;
    print_outputs(&json, &lat, &thr);
    Ok(())
}

fn panels(name: &str, result: &HistoryResult) -> Vec<Panel> {
    let series = |f: &dyn Fn(&(usize, u64, f64)) -> f64| -> Vec<(f64, f64)> {
        result
            .reads_timeline
            .iter()
            .map(|p| (p.0 as f64, f(p)))
            .collect()
    };
    let mut panels = vec![
        report::series_panel(
            &format!("{name}: history pages per second"),
            "seconds",
            "pages/s",
            vec![("pages/s".into(), series(&|p| p.1 as f64))],
        ),
        Panel {
            log_y: true,
            ..report::series_panel(
                &format!("{name}: p99 page latency per second"),
                "seconds",
                "ms (log scale)",
                vec![("p99".into(), series(&|p| p.2))],
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
    panels
}
