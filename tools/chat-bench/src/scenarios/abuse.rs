//! `abuse`: 100 normal clients chat in 10 channels of 10 while one user floods sends and pings
//! as fast as its socket takes them and another hoards every connection it is allowed (and keeps
//! asking for more). Rounds without and with the abusers alternate; the normal clients must lose
//! nothing, and their delivery p99 with the abusers must stay within `--max-slowdown` (20 %) of
//! the rounds without.

use super::shared::{Setup, ws_url};
use crate::fleet::Spread;
use crate::procs;
use crate::proto::Step;
use crate::traffic::{self, ConnPlan, TrafficResult, TrafficSpec};
use anyhow::Context;
use chat_client::{Connection, Connector};
use chat_types::ChannelId;
use chat_types::ws::{ClientFrame, ServerFrame};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct AbuseArgs {
    #[arg(long, env = "CHAT_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    #[arg(long, default_value_os_t = procs::home().join(".cache/chat-bench"))]
    pub cache_dir: PathBuf,
    /// Messages per second over the 100 normal clients.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of each round.
    #[arg(long, default_value_t = 8.0)]
    pub secs: f64,
    /// Rounds of each kind (without, with the abusers), alternating.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Largest allowed p99 with the abusers, as a share above the p99 without them.
    #[arg(long, default_value_t = 0.20)]
    pub max_slowdown: f64,
    /// Report the latency comparison without failing on it (the suite: timing on a shared
    /// 2-core machine is the benchmark's business; losses always fail).
    #[arg(long)]
    pub latency_report_only: bool,
    /// Which abusers run in the rounds with abusers (comma separated: flood, hoard).
    #[arg(long, value_delimiter = ',', default_value = "flood,hoard")]
    pub abusers: Vec<String>,
    #[arg(long)]
    pub verbose: bool,
}

const NORMAL: usize = 100;
const PER_CHANNEL: usize = 10;

/// What the abusers did in one round.
#[derive(Default)]
struct AbuseCounts {
    flood_frames: AtomicU64,
    rate_limited: AtomicU64,
    acked: AtomicU64,
    hoarded: AtomicU64,
    refused_connections: AtomicU64,
}

pub async fn abuse(a: AbuseArgs) -> anyhow::Result<bool> {
    let s = Setup::with_pool(&a.base_url, &a.cache_dir, "abuse", !a.verbose, 8)?;
    let users = s
        .users(NORMAL + 2, Duration::from_secs(3600))
        .await
        .context("users")?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut channels = Vec::new();
    for k in 0..NORMAL / PER_CHANNEL {
        let owner = &users[k * PER_CHANNEL].access_token;
        let ch = s
            .api
            .create_channel(owner, &format!("abuse {tag} {k}"), Some("chat-bench"))
            .await?;
        for m in 1..PER_CHANNEL {
            s.api
                .join(&users[k * PER_CHANNEL + m].access_token, ch.id)
                .await?;
        }
        channels.push(ch.id);
    }
    let flooder = users[NORMAL].access_token.clone();
    let flood_channel = s
        .api
        .create_channel(&flooder, &format!("abuse {tag} flood"), Some("chat-bench"))
        .await?
        .id;
    let hoarder = users[NORMAL + 1].access_token.clone();

    let (mut calm, mut abused) = (Vec::new(), Vec::new());
    let mut lost_nothing = true;
    for round in 0..a.rounds * 2 {
        let with_abusers = round % 2 == 1;
        let spec = spec(&s, &a, &users, &channels, round);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(AbuseCounts::default());
        let abusers = with_abusers.then(|| {
            let (ws, addr) = ws_url(&a.base_url);
            let connector = Connector::new(&ws)
                .connect_to(addr.parse().expect("host:port of the load balancer"));
            let mut tasks = Vec::new();
            if a.abusers.iter().any(|x| x == "flood") {
                tasks.push(tokio::spawn(flood(
                    connector.clone(),
                    flooder.clone(),
                    flood_channel,
                    stop.clone(),
                    counts.clone(),
                )));
            }
            if a.abusers.iter().any(|x| x == "hoard") {
                tasks.push(tokio::spawn(hoard(
                    connector,
                    hoarder.clone(),
                    stop.clone(),
                    counts.clone(),
                )));
            }
            tasks
        });
        let r = traffic::run(spec, &s.bar).await?;
        stop.store(true, Ordering::Relaxed);
        for task in abusers.into_iter().flatten() {
            let _ = task.await;
        }
        s.bar.finish_and_clear();
        lost_nothing &= report_round(round, with_abusers, &r, &counts);
        if with_abusers {
            abused.push(r.total_e2e.p99_ms);
        } else {
            calm.push(r.total_e2e.p99_ms);
        }
    }
    verdict(&a, &calm, &abused, lost_nothing)
}

fn spec(
    s: &Setup,
    a: &AbuseArgs,
    users: &[crate::cache::CachedUser],
    channels: &[ChannelId],
    round: usize,
) -> TrafficSpec {
    let (ws, addr) = ws_url(&a.base_url);
    TrafficSpec {
        http: s.api.http().clone(),
        name: format!("abuse-{round}"),
        ws_url: ws,
        connect_addr: addr,
        token_in_query: false,
        channels: channels.to_vec(),
        conns: (0..NORMAL)
            .map(|i| ConnPlan {
                token: users[i].access_token.clone(),
                channels: vec![(i / PER_CHANNEL) as u32],
                send_to: vec![(i / PER_CHANNEL) as u32],
            })
            .collect(),
        steps: vec![Step {
            rate: a.rate,
            secs: a.secs,
        }],
        body_bytes: 100,
        max_unacked: 64,
        slow_ms: 5000,
        guard: None,
        drain_secs: 10.0,
        mix: Default::default(),
        collect_ids: false,
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
    }
}

/// Sends of 4,000-character bodies and pings, as fast as the socket takes them, on one
/// connection (reconnecting if the gateway closes it), reading whatever comes back.
async fn flood(
    connector: Connector,
    token: String,
    channel: ChannelId,
    stop: Arc<AtomicBool>,
    counts: Arc<AbuseCounts>,
) {
    let body = "x".repeat(4000);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = connector.connect(&token).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let frame = if n.is_multiple_of(4) {
                ClientFrame::Ping
            } else {
                ClientFrame::Send {
                    channel_id: channel,
                    client_msg_id: format!("flood-{}-{n}", uuid::Uuid::new_v4().simple()),
                    body: body.clone(),
                    reply_to: None,
                    attachments: Vec::new(),
                }
            };
            if conn.send(&frame).await.is_err() {
                break;
            }
            counts.flood_frames.fetch_add(1, Ordering::Relaxed);
            if drain(&mut conn, &counts).await.is_err() {
                break;
            }
        }
    }
}

/// Read what has already arrived, without waiting.
async fn drain(conn: &mut Connection, counts: &AbuseCounts) -> chat_client::Result<()> {
    while let Some(f) = conn.next_within(Duration::ZERO).await? {
        match f {
            ServerFrame::Error { code, .. } if code == "rate_limited" => {
                counts.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            ServerFrame::Ack { .. } => {
                counts.acked.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Open connections until refused, hold them, and keep asking for one more every 50 ms.
async fn hoard(
    connector: Connector,
    token: String,
    stop: Arc<AtomicBool>,
    counts: Arc<AbuseCounts>,
) {
    let mut held = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match connector.connect(&token).await {
            Ok(c) => {
                counts.hoarded.fetch_add(1, Ordering::Relaxed);
                held.push(c);
            }
            Err(_) => {
                counts.refused_connections.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(held);
}

fn report_round(round: usize, with_abusers: bool, r: &TrafficResult, c: &AbuseCounts) -> bool {
    let v = &r.verification;
    let clean = v.lost == 0
        && v.late == 0
        && v.duplicated == 0
        && v.reordered == 0
        && v.unacked == 0
        && v.delivered == v.expected
        && r.connections.connected as usize == NORMAL;
    print!(
        "round {round} {}: deliveries {}/{} lost {} dup {} reordered {} | e2e {}",
        if with_abusers {
            "with abusers   "
        } else {
            "without abusers"
        },
        v.delivered,
        v.expected,
        v.lost + v.late,
        v.duplicated,
        v.reordered,
        r.total_e2e.line()
    );
    if with_abusers {
        print!(
            " | flood: {} frames, {} rate_limited, {} acked; hoard: {} held, {} refused",
            c.flood_frames.load(Ordering::Relaxed),
            c.rate_limited.load(Ordering::Relaxed),
            c.acked.load(Ordering::Relaxed),
            c.hoarded.load(Ordering::Relaxed),
            c.refused_connections.load(Ordering::Relaxed),
        );
    }
    println!();
    clean
}

fn verdict(
    a: &AbuseArgs,
    calm: &[f64],
    abused: &[f64],
    lost_nothing: bool,
) -> anyhow::Result<bool> {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (base, with) = (mean(calm), mean(abused));
    let slowdown = if base > 0.0 { with / base - 1.0 } else { 0.0 };
    let within = slowdown <= a.max_slowdown;
    println!(
        "abuse: normal clients' delivery p99 {base:.1} ms without abusers, {with:.1} ms with them ({:+.0} %, limit +{:.0} %): {}",
        slowdown * 100.0,
        a.max_slowdown * 100.0,
        if within { "ok" } else { "OVER" }
    );
    println!(
        "abuse: {}",
        if lost_nothing {
            "nothing lost, duplicated or reordered in any round"
        } else {
            "FAIL: deliveries lost, duplicated, reordered or unacked"
        }
    );
    Ok(lost_nothing && (within || a.latency_report_only))
}
