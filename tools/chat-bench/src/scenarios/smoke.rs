//! `smoke`: a few seconds of a tiny groups run for the test suite; fails if anything is lost,
//! duplicated or reordered, live or in history, or if nothing was delivered.

use super::shared::{Setup, ws_url};
use crate::fleet::Spread;
use crate::procs;
use crate::proto::Step;
use crate::stats;
use crate::traffic::{self, ConnPlan, TrafficResult, TrafficSpec};
use anyhow::Context;
use chat_client::Page;
use chat_types::ChannelId;
use clap::Args;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

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

type Checks = Vec<(String, bool)>;

async fn smoke_run(a: &SmokeArgs, checks: &mut Checks) -> anyhow::Result<()> {
    let s = Setup::with_pool(&a.base_url, &a.cache_dir, "smoke", !a.verbose, 4)?;
    let users = s
        .users(6, Duration::from_secs(300))
        .await
        .context("users")?;
    // Fresh channels each run: nothing else writes to them.
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut channels = Vec::new();
    for k in 0..2 {
        let ch = s
            .api
            .create_channel(
                &users[k * 3].access_token,
                &format!("smoke {tag} {k}"),
                Some("chat-bench"),
            )
            .await?;
        for m in 1..3 {
            s.api.join(&users[k * 3 + m].access_token, ch.id).await?;
        }
        channels.push(ch.id);
    }
    let (ws, addr) = ws_url(&a.base_url);
    let spec = TrafficSpec {
        http: s.api.http().clone(),
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
        mix: Default::default(),
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
    let r = traffic::run(spec, &s.bar).await?;
    s.bar.finish_and_clear();
    check_live(&r, checks);
    let tokens: Vec<&str> = (0..2).map(|k| users[k * 3].access_token.as_str()).collect();
    check_history(&s, &r, &channels, &tokens, checks).await
}

/// Every connection open, every send acked, every delivery made, once, in order.
fn check_live(r: &TrafficResult, checks: &mut Checks) {
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
}

/// History holds every acked message once, at consecutive positions.
async fn check_history(
    s: &Setup,
    r: &TrafficResult,
    channels: &[ChannelId],
    tokens: &[&str],
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let mut acked: HashMap<u32, Vec<String>> = HashMap::new();
    for (ch, id) in &r.acked_ids {
        acked.entry(*ch).or_default().push(id.clone());
    }
    let mut history_ok = true;
    let mut detail = String::new();
    for (k, ch) in channels.iter().enumerate() {
        let want = acked.get(&(k as u32)).cloned().unwrap_or_default();
        let token = tokens[k];
        let mut all = s.api.history(token, *ch, Page::newest(100)).await?;
        while all.len() < want.len() {
            let Some(first) = all.first() else { break };
            let older = s
                .api
                .history(token, *ch, Page::before(first.id, 100))
                .await?;
            if older.is_empty() {
                break;
            }
            all.splice(0..0, older);
        }
        let ids: Vec<String> = all.iter().map(|m| m.id.to_string()).collect();
        let unique: HashSet<&String> = ids.iter().collect();
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
