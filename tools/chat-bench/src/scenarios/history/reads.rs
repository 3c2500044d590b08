//! History reads: the quiet paging walk that finds the cursors, and the open-loop reads under
//! load at a fixed rate with a concurrency cap.

use crate::procs::{self, CpuSnap};
use crate::stats;
use chat_client::{Api, Page};
use chat_types::{ChannelId, Message, MessageId};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Where a read starts.
pub struct Cursor {
    pub channel: ChannelId,
    pub token: String,
    /// Page starts: None = newest page; Some(id, seq) = the page before that message.
    pub before: Option<(MessageId, i64)>,
}

/// One page and how long it took.
pub async fn page(
    api: &Api,
    token: &str,
    channel: ChannelId,
    limit: u32,
    before: Option<MessageId>,
) -> chat_client::Result<(Vec<Message>, Duration)> {
    let started = std::time::Instant::now();
    let page = Page {
        limit: Some(limit),
        before,
        after: None,
    };
    let messages = api.history(token, channel, page).await?;
    Ok((messages, started.elapsed()))
}

/// The quiet baseline: every channel walked back `pages` pages, one request at a time.
pub struct Walk {
    pub quiet: Histogram<u64>,
    pub cursors: Vec<Cursor>,
    pub wrong: u64,
}

pub async fn walk(
    api: &Api,
    token: &str,
    channels: &[ChannelId],
    limit: u32,
    pages: usize,
) -> anyhow::Result<Walk> {
    let mut w = Walk {
        quiet: stats::hist(3),
        cursors: Vec::new(),
        wrong: 0,
    };
    for ch in channels {
        let mut before: Option<(MessageId, i64)> = None;
        for _ in 0..pages {
            let (page, took) = page(api, token, *ch, limit, before.map(|b| b.0)).await?;
            stats::record(&mut w.quiet, took.as_micros() as u64);
            if !page_ok(&page, limit, before.map(|b| b.1)) {
                w.wrong += 1;
            }
            w.cursors.push(Cursor {
                channel: *ch,
                token: token.to_string(),
                before,
            });
            let Some(first) = page.first() else { break };
            if first.seq.unwrap_or(1) <= 1 {
                break;
            }
            before = Some((first.id, first.seq.unwrap_or(0)));
        }
    }
    Ok(w)
}

pub struct ReadStats {
    pub all: Histogram<u64>,
    pub newest: Histogram<u64>,
    pub older: Histogram<u64>,
    pub errors: u64,
    pub wrong: u64,
    pub timeline: Vec<(u64, Histogram<u64>)>,
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

    fn record(
        &mut self,
        r: chat_client::Result<(Vec<Message>, Duration)>,
        cursor: &Cursor,
        limit: u32,
        sec: usize,
    ) {
        let Ok((page, took)) = r else {
            self.errors += 1;
            return;
        };
        let us = took.as_micros() as u64;
        stats::record(&mut self.all, us);
        if cursor.before.is_none() {
            stats::record(&mut self.newest, us);
        } else {
            stats::record(&mut self.older, us);
        }
        if !page_ok(&page, limit, cursor.before.map(|b| b.1)) {
            self.wrong += 1;
        }
        while self.timeline.len() <= sec {
            self.timeline.push((0, stats::hist(2)));
        }
        self.timeline[sec].0 += 1;
        stats::record(&mut self.timeline[sec].1, us);
    }
}

/// What the reads under load came to.
pub struct Reads {
    pub stats: ReadStats,
    pub skipped: u64,
    pub secs: f64,
    pub cpu: (CpuSnap, CpuSnap),
}

/// The reads under load: `rate` pages a second of `limit` messages for `duration` seconds, at
/// most `concurrency` in flight.
#[derive(Clone, Copy)]
pub struct ReadPlan {
    pub limit: u32,
    pub rate: f64,
    pub concurrency: usize,
    pub duration: f64,
}

/// Open-loop reads from `start` on, cursors taken in a fixed scattered order; a read is skipped
/// when the plan's concurrency is already in flight.
pub async fn under_load(
    api: Api,
    cursors: Vec<Cursor>,
    plan: ReadPlan,
    start: Instant,
    pids: BTreeMap<String, u32>,
) -> Reads {
    let ReadPlan {
        limit,
        rate,
        concurrency,
        duration,
    } = plan;
    tokio::time::sleep_until(start).await;
    let cpu0 = procs::cpu_snapshot(&pids);
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let results = Arc::new(Mutex::new(ReadStats::new()));
    let mut skipped = 0u64;
    let mut tasks = Vec::new();
    let n = (rate * duration) as u64;
    let cursors = Arc::new(cursors);
    for k in 0..n {
        let at = start + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(at).await;
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let cur = (k as usize * 7919) % cursors.len();
        let (api, results, cursors) = (api.clone(), results.clone(), cursors.clone());
        tasks.push(tokio::spawn(async move {
            let cursor = &cursors[cur];
            let before = cursor.before.map(|b| b.0);
            let r = page(&api, &cursor.token, cursor.channel, limit, before).await;
            let sec = start.elapsed().as_secs() as usize;
            results.lock().expect("stats").record(r, cursor, limit, sec);
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let cpu1 = procs::cpu_snapshot(&pids);
    let stats = Arc::try_unwrap(results)
        .ok()
        .map(|m| m.into_inner().expect("stats"))
        .unwrap_or_else(ReadStats::new);
    Reads {
        stats,
        skipped,
        secs: start.elapsed().as_secs_f64(),
        cpu: (cpu0, cpu1),
    }
}

/// A page is `limit` consecutive positions (fewer only at the start of the channel), ending just
/// before the cursor's position when there is one.
pub fn page_ok(page: &[Message], limit: u32, before_seq: Option<i64>) -> bool {
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
