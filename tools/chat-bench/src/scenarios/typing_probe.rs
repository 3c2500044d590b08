//! `--typing-probe N` beside a steady run: N pairs of extra users, each pair in a channel of its
//! own, connected through the same nginx and gateways as the load. Every 1.25 s one of the two
//! announces `typing` (taking turns, so each announces every 2.5 s: above the gateways' limit of
//! one per user and channel per 2 s) and the other times its arrival. What it measures is the
//! typing latency at the load the run puts on the gateways, Redis and nginx (issue #15: within
//! 300 ms p99 at the groups benchmark's load). Typing is never stored nor sent through Kafka, so
//! the probe adds nothing to the message path beyond its sockets.

use crate::proto::Step;
use crate::stats::{Summary, hist, record};
use chat_client::{Connection, Connector};
use chat_types::ChannelId;
use chat_types::ws::ServerFrame;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Between two announcements of one pair.
const TICK: Duration = Duration::from_millis(1250);
/// An announcement not received within this is counted as missed.
const WAIT: Duration = Duration::from_secs(1);

/// The probe's users and channels, made before the run starts.
pub struct ProbePlan {
    /// Two access tokens and their channel per pair.
    pub pairs: Vec<(String, String, ChannelId)>,
    pub ws_url: String,
    pub connect_addr: String,
}

/// What the probe measured during one step of the run.
#[derive(Clone, Debug, Serialize)]
pub struct StepTyping {
    pub rate: f64,
    pub sent: u64,
    pub missed: u64,
    pub latency: Summary,
}

struct Tally {
    hists: Vec<Histogram<u64>>,
    sent: Vec<u64>,
    missed: Vec<u64>,
}

/// Connect every pair, wait for the run's start (`go`), probe until its steps are over; the
/// result per step. Pairs whose sockets fail are dropped from the probe (reported as missed).
pub async fn run(
    plan: ProbePlan,
    steps: Vec<Step>,
    go: tokio::sync::oneshot::Receiver<Instant>,
) -> anyhow::Result<Vec<StepTyping>> {
    let connector = Connector::new(&plan.ws_url).connect_to(plan.connect_addr.parse()?);
    let mut conns = Vec::with_capacity(plan.pairs.len());
    for (a, b, ch) in &plan.pairs {
        conns.push((
            connector.connect(a).await?,
            connector.connect(b).await?,
            *ch,
        ));
    }
    let tally = Arc::new(Mutex::new(Tally {
        hists: steps.iter().map(|_| hist(3)).collect(),
        sent: vec![0; steps.len()],
        missed: vec![0; steps.len()],
    }));
    let Ok(start) = go.await else {
        anyhow::bail!("the run never started");
    };
    let ends: Vec<Duration> = steps
        .iter()
        .scan(0.0, |t, s| {
            *t += s.secs;
            Some(Duration::from_secs_f64(*t))
        })
        .collect();
    let pairs = conns.len().max(1) as u32;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, (a, b, ch))| {
            // Spread the pairs over a tick so the announcements are evenly paced.
            let offset = TICK * i as u32 / pairs;
            tokio::spawn(probe_pair(
                a,
                b,
                ch,
                start + offset,
                ends.clone(),
                start,
                tally.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let t = tally.lock().expect("not poisoned");
    Ok(steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepTyping {
            rate: s.rate,
            sent: t.sent[i],
            missed: t.missed[i],
            latency: Summary::of(&t.hists[i]),
        })
        .collect())
}

async fn probe_pair(
    mut a: Connection,
    mut b: Connection,
    channel: ChannelId,
    first: Instant,
    ends: Vec<Duration>,
    start: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let mut at = first;
    let mut a_types = true;
    loop {
        tokio::time::sleep_until(at.into()).await;
        let Some(step) = ends.iter().position(|end| at.duration_since(start) < *end) else {
            return;
        };
        let (typist, watcher) = if a_types {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        a_types = !a_types;
        at += TICK;
        // A late frame of an earlier turn must not be taken for this one.
        while let Ok(Some(_)) = watcher.next_within(Duration::from_millis(1)).await {}
        let who = typist.user_id();
        let sent = Instant::now();
        let arrived = match typist.typing(channel).await {
            Ok(()) => wait_typing(watcher, channel, who, sent + WAIT).await,
            Err(_) => None,
        };
        let mut t = tally.lock().expect("not poisoned");
        t.sent[step] += 1;
        match arrived {
            Some(when) => record(&mut t.hists[step], (when - sent).as_micros() as u64),
            None => t.missed[step] += 1,
        }
    }
}

/// When `watcher` got `who`'s typing in `channel`, if before `deadline`.
async fn wait_typing(
    watcher: &mut Connection,
    channel: ChannelId,
    who: chat_types::UserId,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match watcher.next_within(left).await {
            Ok(Some(ServerFrame::Typing {
                channel_id,
                user_id,
                ..
            })) if channel_id == channel && user_id == who => return Some(Instant::now()),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// One line per step, as printed under the run's result.
pub fn print(result: &[StepTyping]) {
    for s in result {
        println!(
            "  typing probe at {:>6} msg/s: {} sent, {} missed (> {} ms) | {}",
            s.rate,
            s.sent,
            s.missed,
            WAIT.as_millis(),
            s.latency.line()
        );
    }
}
