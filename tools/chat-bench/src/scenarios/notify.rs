//! `notify`: push notifications per second one notifier sustains, and the time from a send to
//! the notification request at the APNs stand-in. Channels of offline members, each with a
//! device registered for this run; one sender per channel sends at a fixed offered rate, step
//! by step. The stand-in (`tools/apns-standin`, control API) records every request with its
//! arrival time; the notifier's CPU comes from `/proc`. Devices are unregistered at the end, so
//! the pool's users are not notified in other scenarios.

use super::shared::{Setup, envelope};
use crate::Common;
use crate::procs;
use crate::report;
use crate::stats::{self, Summary};
use anyhow::Context;
use chat_client::Connector;
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Args, Clone, Debug)]
pub struct NotifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Channels, each with its own sender (a user may send 20 messages/s per gateway).
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Offline members with a device per channel: each message is this many notifications.
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Messages per second over all channels, one step each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "5,20,40,80")]
    pub rates: Vec<f64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_secs: f64,
    /// After each step, wait at most this long for its notifications.
    #[arg(long, default_value_t = 30.0)]
    pub drain_secs: f64,
    /// The stand-in's control API.
    #[arg(
        long,
        env = "CHAT_APNS_CONTROL",
        default_value = "http://127.0.0.1:18444"
    )]
    pub control: String,
}

#[derive(Deserialize)]
struct Recorded {
    received_at_us: i64,
    status: u16,
    body: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct StepResult {
    offered_messages_per_sec: f64,
    messages: usize,
    notifications_expected: usize,
    notifications_arrived: usize,
    /// Notifications that reached the stand-in per second, first send to last arrival.
    notifications_per_sec: f64,
    latency: Summary,
    notifier_core_percent: f64,
    machine_busy_percent: f64,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

pub async fn notify(a: NotifyArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let setup = Setup::with_pool(
        &c.base_url,
        &c.cache_dir,
        "notify",
        c.quiet,
        c.register_concurrency,
    )?;
    let per = a.members + 1;
    let users = setup
        .users(a.channels * per, Duration::from_secs(3600))
        .await?;
    let members: Vec<Vec<usize>> = (0..a.channels)
        .map(|k| (k * per..(k + 1) * per).collect())
        .collect();
    let layout = setup.layout("notify", &users, &members).await?;
    setup.bar.finish_and_clear();

    // A fresh device per member for this run.
    let mut tokens: Vec<(String, String)> = Vec::new(); // (access token, device token)
    for ch in &layout.channels {
        for (i, _) in ch.members.iter().skip(1) {
            let t = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            tokens.push((users[*i].access_token.clone(), t));
        }
    }
    let api = &setup.api;
    let registered: Vec<anyhow::Result<()>> =
        futures::stream::iter(tokens.iter().map(|(access, t)| async move {
            let r = api
                .call(
                    "POST",
                    "/api/v1/devices",
                    Some(access),
                    Some(&serde_json::json!({"platform": "apns", "token": t,
                        "environment": "production", "bundle_id": "com.example.chat"})),
                )
                .await?;
            anyhow::ensure!(r.status == 201 || r.status == 200, "device: {:?}", r.body);
            Ok(())
        }))
        .buffer_unordered(16)
        .collect()
        .await;
    for r in registered {
        r?;
    }
    let result = run_steps(&a, &layout, &users, &tokens).await;
    // Unregister whatever happened.
    let _: Vec<_> = futures::stream::iter(tokens.iter().map(|(access, t)| async move {
        api.call(
            "DELETE",
            &format!("/api/v1/devices/{t}"),
            Some(access),
            None,
        )
        .await
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    let steps = result?;

    let pids = procs::stack_pids(&c.stack_dir);
    let name = c.name.clone().unwrap_or_else(|| "notify".into());
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope(
            "notify",
            serde_json::json!({"channels": a.channels, "members": a.members,
                "rates": a.rates, "step_secs": a.step_secs}),
            &pids,
            &steps,
        ),
    )?;
    println!("results: {}", json.display());
    Ok(steps
        .iter()
        .all(|s| s.notifications_arrived == s.notifications_expected))
}

async fn run_steps(
    a: &NotifyArgs,
    layout: &crate::cache::Layout,
    users: &[crate::cache::CachedUser],
    tokens: &[(String, String)],
) -> anyhow::Result<Vec<StepResult>> {
    let c = &a.common;
    let connector = Connector::for_base(&c.base_url).frame_timeout(Duration::from_secs(15));
    let mut senders = Vec::new();
    for ch in &layout.channels {
        let owner = &users[ch.members[0].0];
        senders.push((ch.id, connector.connect(&owner.access_token).await?));
    }
    let http = reqwest::Client::new();
    let pids = procs::stack_pids(&c.stack_dir);
    let mut out = Vec::new();
    for &rate in &a.rates {
        let s0 = procs::cpu_snapshot(&pids);
        let started = now_us();
        // Open loop: each sender at rate / channels, acks awaited (they take milliseconds).
        let per_sender = Duration::from_secs_f64(a.channels as f64 / rate);
        let until = tokio::time::Instant::now() + Duration::from_secs_f64(a.step_secs);
        let sent: Vec<anyhow::Result<Vec<(String, i64)>>> =
            futures::future::join_all(senders.iter_mut().map(|(ch, ws)| async move {
                let mut tick = tokio::time::interval(per_sender);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut sent = Vec::new();
                while tokio::time::Instant::now() < until {
                    tick.tick().await;
                    let at = now_us();
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    let m = ws.send_acked(*ch, &id, "bench notification").await?;
                    sent.push((m.id.to_string(), at));
                }
                anyhow::Ok(sent)
            }))
            .await;
        let mut sent_at: HashMap<String, i64> = HashMap::new();
        for s in sent {
            sent_at.extend(s?);
        }
        let expected = sent_at.len() * a.members;
        // Wait for the step's notifications, then measure.
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(a.drain_secs);
        let (mut hist, mut last) = (stats::hist(3), started);
        let arrived = loop {
            hist.reset();
            let mut arrived = 0usize;
            let lists: Vec<anyhow::Result<Vec<Recorded>>> =
                futures::stream::iter(tokens.iter().map(|(_, t)| {
                    let http = http.clone();
                    let url = format!("{}/tokens/{t}/requests", a.control);
                    async move {
                        let r = http.get(&url).send().await?.error_for_status()?;
                        r.json::<Vec<Recorded>>().await.context("stand-in requests")
                    }
                }))
                .buffer_unordered(16)
                .collect()
                .await;
            for l in lists {
                for r in l? {
                    let id = r
                        .body
                        .as_ref()
                        .and_then(|b| b["message_id"].as_str())
                        .unwrap_or_default();
                    if r.status != 200 {
                        continue;
                    }
                    if let Some(at) = sent_at.get(id) {
                        arrived += 1;
                        last = last.max(r.received_at_us);
                        stats::record(&mut hist, (r.received_at_us - at).max(1) as u64);
                    }
                }
            }
            if arrived >= expected || tokio::time::Instant::now() >= deadline {
                break arrived;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let s1 = procs::cpu_snapshot(&pids);
        let cpu = procs::cpu_between(&s0, &s1, arrived as u64, "notifications");
        let notifier = cpu
            .processes
            .iter()
            .find(|p| p.process == "notifier")
            .map_or(0.0, |p| p.core_percent);
        let step = StepResult {
            offered_messages_per_sec: rate,
            messages: sent_at.len(),
            notifications_expected: expected,
            notifications_arrived: arrived,
            notifications_per_sec: arrived as f64 / ((last - started) as f64 / 1e6).max(1e-3),
            latency: Summary::of(&hist),
            notifier_core_percent: notifier,
            machine_busy_percent: cpu.machine_busy_percent,
        };
        println!(
            "{rate} msg/s x {} members: {}/{} notifications, {:.0}/s, send to APNs request {}; notifier {:.0}% of a core, machine {:.0}% busy",
            a.members,
            step.notifications_arrived,
            step.notifications_expected,
            step.notifications_per_sec,
            step.latency.line(),
            step.notifier_core_percent,
            step.machine_busy_percent
        );
        out.push(step);
    }
    for (_, ws) in senders {
        ws.close(Duration::from_secs(1)).await;
    }
    Ok(out)
}
