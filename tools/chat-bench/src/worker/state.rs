//! What a worker's connections share: the job, the coordinator's orders as watch channels, and
//! the counters and histograms they fill, turned into the reports the coordinator reads.

use crate::proto::*;
use crate::stats::{self, HistDump};
use chat_client::Connector;
use chat_types::ChannelId;
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use tokio::sync::watch;
use tokio::time::Instant;

pub(super) struct StepAcc {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub skipped: u64,
    pub e2e: Histogram<u64>,
    pub ack: Histogram<u64>,
    pub send_lag: Histogram<u64>,
}

impl StepAcc {
    fn new() -> Self {
        StepAcc {
            sent: 0,
            acked: 0,
            delivered: 0,
            skipped: 0,
            e2e: stats::hist(3),
            ack: stats::hist(3),
            send_lag: stats::hist(2),
        }
    }
}

pub(super) struct Second {
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub e2e: Histogram<u64>,
}

#[derive(Default)]
pub(super) struct Counters {
    pub open: u64,
    /// Connections that ever reached `ready` (open counts those open now).
    pub connected: u64,
    pub failed: Vec<u32>,
    pub first_error: Option<String>,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub expected: u64,
    pub echoed: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub closes: BTreeMap<String, u64>,
    pub reconnects: u64,
    pub resent: u64,
    pub dropped: u64,
    pub foreign: u64,
    pub pongs: u64,
    pub interval_delivered: u64,
    pub interval_slow: u64,
    pub acked_per_channel: HashMap<u32, u64>,
    pub acked_ids: Vec<(u32, String)>,
    pub checks: Vec<ChanCheck>,
    pub unacked: u64,
    pub mixed: crate::proto::MixCounts,
}

pub(super) struct Stats {
    pub c: Counters,
    pub steps: Vec<StepAcc>,
    pub timeline: Vec<Second>,
    pub ping: Histogram<u64>,
}

impl Stats {
    pub fn second(&mut self, i: usize) -> &mut Second {
        while self.timeline.len() <= i {
            self.timeline.push(Second {
                sent: 0,
                acked: 0,
                delivered: 0,
                e2e: stats::hist(2),
            });
        }
        &mut self.timeline[i]
    }

    pub fn step(&mut self, i: usize) -> &mut StepAcc {
        while self.steps.len() <= i {
            self.steps.push(StepAcc::new());
        }
        &mut self.steps[i]
    }
}

pub(super) struct Plan {
    pub t0_ns: u64,
    pub t0: Instant,
    pub steps: Vec<Step>,
    /// Cumulative end of each step, seconds after t0.
    pub ends: Vec<f64>,
}

impl Plan {
    pub fn step_of(&self, at_ns: u64) -> usize {
        let t = at_ns.saturating_sub(self.t0_ns) as f64 / 1e9;
        self.ends
            .iter()
            .position(|e| t < *e)
            .unwrap_or(self.ends.len().saturating_sub(1))
    }

    pub fn second_of(&self, at_ns: u64) -> usize {
        (at_ns.saturating_sub(self.t0_ns) / 1_000_000_000) as usize
    }
}

/// One worker's shared state (single-threaded: `Rc`, `RefCell`).
pub(super) struct W {
    pub job: Job,
    pub connector: Connector,
    /// Global channel index -> id, and back (from the id as text).
    pub channel_ids: HashMap<u32, ChannelId>,
    pub channel_by_str: HashMap<String, u32>,
    pub channel_conns: RefCell<HashMap<u32, u64>>,
    pub plan: RefCell<Option<Rc<Plan>>>,
    pub sending: Cell<bool>,
    pub go: watch::Sender<bool>,
    pub stop: watch::Sender<bool>,
    pub ping: watch::Sender<u32>,
    pub stats: RefCell<Stats>,
}

impl W {
    pub fn new(job: Job, connector: Connector) -> W {
        W {
            channel_ids: job.channels.iter().map(|c| (c.idx, c.id)).collect(),
            channel_by_str: job
                .channels
                .iter()
                .map(|c| (c.id.to_string(), c.idx))
                .collect(),
            job,
            connector,
            channel_conns: RefCell::new(HashMap::new()),
            plan: RefCell::new(None),
            sending: Cell::new(false),
            go: watch::channel(false).0,
            stop: watch::channel(false).0,
            ping: watch::channel(0).0,
            stats: RefCell::new(Stats {
                c: Counters::default(),
                steps: Vec::new(),
                timeline: Vec::new(),
                ping: stats::hist(3),
            }),
        }
    }

    pub fn plan(&self) -> Option<Rc<Plan>> {
        self.plan.borrow().clone()
    }

    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// The progress report; its interval counters restart.
    pub fn progress(&self) -> Progress {
        let mut s = self.stats.borrow_mut();
        let c = &mut s.c;
        let p = Progress {
            worker: self.job.worker,
            counts: Counts {
                open: c.open,
                failed: c.failed.len() as u64,
                sent: c.sent,
                acked: c.acked,
                unacked: c.unacked,
                delivered: c.delivered,
                expected: c.expected,
                echoed: c.echoed,
                errors: c.error_total,
                reconnects: c.reconnects,
                dropped: c.dropped,
                pongs: c.pongs,
            },
            interval_delivered: c.interval_delivered,
            interval_slow: c.interval_slow,
        };
        c.interval_delivered = 0;
        c.interval_slow = 0;
        p
    }

    /// The final report.
    pub fn done(&self) -> Done {
        let mut s = self.stats.borrow_mut();
        let steps = s
            .steps
            .iter()
            .map(|a| StepDump {
                sent: a.sent,
                acked: a.acked,
                delivered: a.delivered,
                skipped: a.skipped,
                e2e: HistDump::of(&a.e2e),
                ack: HistDump::of(&a.ack),
                send_lag: HistDump::of(&a.send_lag),
            })
            .collect();
        let timeline = s
            .timeline
            .iter()
            .map(|x| SecondDump {
                sent: x.sent,
                acked: x.acked,
                delivered: x.delivered,
                e2e: HistDump::of(&x.e2e),
            })
            .collect();
        let ping = HistDump::of(&s.ping);
        let c = std::mem::take(&mut s.c);
        Done {
            worker: self.job.worker,
            steps,
            timeline,
            checks: c.checks,
            acked_per_channel: c.acked_per_channel.into_iter().collect(),
            acked_ids: c.acked_ids,
            unacked: c.unacked,
            foreign: c.foreign,
            errors: c.errors,
            closes: c.closes,
            reconnects: c.reconnects,
            resent: c.resent,
            dropped: c.dropped,
            ping,
            pongs: c.pongs,
            open: c.open,
            mixed: c.mixed,
        }
    }
}
