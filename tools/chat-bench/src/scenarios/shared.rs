//! What every scenario starts from and ends with: the API client, the cached user pool and
//! channel layouts, a progress bar, the steady-traffic spec, and the result files (JSON + SVG).

use super::TrafficOpts;
use crate::Common;
use crate::cache::{CachedUser, Layout, LayoutChannel, Pool};
use crate::fleet::Spread;
use crate::procs;
use crate::proto::Step;
use crate::report;
use crate::traffic::{ConnPlan, Guard, TrafficResult, TrafficSpec};
use chat_client::Api;
use chat_types::ChannelId;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The API client, the user pool and the progress bar of one run.
pub struct Setup {
    pub api: Api,
    pub pool: Pool,
    pub bar: ProgressBar,
    register_concurrency: usize,
}

impl Setup {
    /// The `bench` pool of the scenarios with [`Common`] settings.
    pub fn new(c: &Common) -> anyhow::Result<Setup> {
        Setup::with_pool(
            &c.base_url,
            &c.cache_dir,
            "bench",
            c.quiet,
            c.register_concurrency,
        )
    }

    pub fn with_pool(
        base_url: &str,
        cache_dir: &Path,
        pool: &str,
        quiet: bool,
        register_concurrency: usize,
    ) -> anyhow::Result<Setup> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(Setup {
            api: Api::with_client(base_url, http),
            pool: Pool::open(cache_dir, base_url, pool)?,
            bar: bar(quiet),
            register_concurrency,
        })
    }

    /// The first `n` users of the pool, with tokens valid for `valid_for`.
    pub async fn users(&self, n: usize, valid_for: Duration) -> anyhow::Result<Vec<CachedUser>> {
        self.pool
            .users(
                &self.api,
                n,
                valid_for,
                self.register_concurrency,
                &self.bar,
            )
            .await
    }

    /// The channels of a layout (`members[k]`: pool indexes of channel k's members, the first
    /// one its owner), created once and reused while every member is the same user.
    pub async fn layout(
        &self,
        name: &str,
        users: &[CachedUser],
        members: &[Vec<usize>],
    ) -> anyhow::Result<Layout> {
        if let Some(l) = self.pool.layout(name, users)
            && l.channels.len() == members.len()
            && l.channels
                .iter()
                .zip(members)
                .all(|(c, m)| c.members.iter().map(|x| x.0).eq(m.iter().copied()))
        {
            return Ok(l);
        }
        let (api, bar) = (&self.api, &self.bar);
        let joins: usize = members.iter().map(|m| m.len().saturating_sub(1)).sum();
        bar.set_length((members.len() + joins) as u64);
        bar.set_position(0);
        bar.set_message(format!(
            "layout {name}: creating {} channels, {joins} joins (cached for later runs)",
            members.len()
        ));
        // Channel names are unique (ignoring case): a layout made again (new users, another
        // shape) must not reuse the names of the one it replaces, which still exist.
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut channels = Vec::with_capacity(members.len());
        for (k, m) in members.iter().enumerate() {
            let owner = &users[m[0]];
            let ch = api
                .create_channel(
                    &owner.access_token,
                    &format!("bench {name} {tag} #{k}"),
                    Some("chat-bench"),
                )
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
        let results: Vec<chat_client::Result<()>> =
            futures::stream::iter(work.into_iter().map(|(ch, i)| {
                let token = users[i].access_token.clone();
                async move { api.join(&token, ch).await.map(drop) }
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
        self.pool.save_layout(name, &layout).await?;
        Ok(layout)
    }
}

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

pub fn spread(c: &Common) -> Spread {
    let limit = procs::raise_nofile() as usize;
    Spread {
        per_worker: c.per_worker.unwrap_or(limit.saturating_sub(2000).max(100)),
        min_workers: c.workers.max(1),
        force_processes: c.processes || c.workers > 1,
        source_ips: c.source_ips,
    }
}

/// `(ws://host:port/ws, host:port)` of the load balancer at `base`.
pub fn ws_url(base: &str) -> (String, String) {
    let hostport = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    (format!("ws://{hostport}/ws"), hostport)
}

fn guard(t: &TrafficOpts) -> Option<Guard> {
    (!t.no_guard).then_some(Guard {
        slow_share: t.slow_share,
        lag_secs: t.lag_secs,
    })
}

/// A steady-traffic run of `groups` or `fanout`: its connections, and the line that heads its
/// printed result.
pub struct Steady {
    pub name: &'static str,
    pub header: String,
    pub channels: Vec<ChannelId>,
    pub conns: Vec<ConnPlan>,
    pub steps: Vec<Step>,
    /// Typing latency measured beside the traffic (`groups --typing-probe`).
    pub typing_probe: Option<super::typing_probe::ProbePlan>,
}

/// Run a steady-traffic scenario through nginx with the user's traffic options, print the
/// result, write its files (the scenario's own `settings` plus the common ones). True when
/// something was delivered and nothing lost, duplicated or reordered.
pub async fn run_steady(
    s: &Setup,
    c: &Common,
    t: &TrafficOpts,
    run: Steady,
    settings: impl FnOnce(&TrafficResult) -> serde_json::Value,
) -> anyhow::Result<bool> {
    let pids = procs::stack_pids(&c.stack_dir);
    let (ws_url, connect_addr) = ws_url(&c.base_url);
    let (on_go, probe) = match run.typing_probe {
        Some(plan) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let steps = run.steps.clone();
            let probe = tokio::spawn(super::typing_probe::run(plan, steps, rx));
            (Some(tx), Some(probe))
        }
        None => (None, None),
    };
    let spec = TrafficSpec {
        http: s.api.http().clone(),
        name: run.name.into(),
        ws_url,
        connect_addr,
        token_in_query: false,
        channels: run.channels,
        conns: run.conns,
        steps: run.steps,
        body_bytes: t.body_bytes,
        max_unacked: t.max_unacked,
        slow_ms: t.slow_ms,
        guard: guard(t),
        drain_secs: t.drain_secs,
        collect_ids: false,
        mix: crate::proto::Mix {
            changes_percent: t.changes_percent,
            mark_read: t.mark_read,
        },
        connect_rate: c.connect_rate,
        spread: spread(c),
        measure: true,
        stack_pids: pids.clone(),
        on_go,
    };
    let r = crate::traffic::run(spec, &s.bar).await?;
    s.bar.finish_and_clear();
    println!("{}", run.header);
    crate::traffic::print(&r);
    let mut settings = settings(&r);
    if let Some(probe) = probe {
        let typing = probe.await??;
        super::typing_probe::print(&typing);
        settings["typing_probe"] = serde_json::to_value(&typing)?;
    }
    extend_settings(&mut settings, c, t, &r);
    write_traffic(c, run.name, settings, &pids, &r)?;
    Ok(verdict_ok(&r))
}

/// The planned length of a run, plus a margin for its tokens.
pub fn token_life(steps: &[Step]) -> Duration {
    let planned: f64 = steps.iter().map(|s| s.secs).sum();
    Duration::from_secs_f64(planned + 600.0)
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
        "changes_percent": t.changes_percent, "mark_read": t.mark_read,
        "max_unacked": t.max_unacked, "guard": !t.no_guard,
        "slow_ms": t.slow_ms, "slow_share": t.slow_share, "lag_secs": t.lag_secs,
        "workers": r.connections.workers, "source_ips": c.source_ips,
    });
    if let (Some(s), serde_json::Value::Object(common)) = (settings.as_object_mut(), common) {
        s.extend(common);
    }
}

pub fn steps_of(t: &TrafficOpts, default: &[f64]) -> Vec<Step> {
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
pub struct Envelope<'a, T: Serialize> {
    scenario: &'a str,
    command: String,
    started_at: String,
    machine: procs::Machine,
    stack_pids: BTreeMap<String, u32>,
    settings: serde_json::Value,
    result: &'a T,
}

pub fn envelope<'a, T: Serialize>(
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
    print_outputs(&json, &lat, &thr);
    Ok(())
}

/// Where a scenario wrote its results and plots (the last lines of every scenario's output).
pub fn print_outputs(json: &Path, latency: &Path, throughput: &Path) {
    println!(
        "results: {}\nplots:   {}\n         {}",
        json.display(),
        latency.display(),
        throughput.display()
    );
}

fn verdict_ok(r: &TrafficResult) -> bool {
    let v = &r.verification;
    v.lost == 0 && v.duplicated == 0 && v.reordered == 0 && v.delivered > 0
}
