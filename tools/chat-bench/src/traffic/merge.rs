//! The workers' final reports merged into one result: per step, per second, and the delivery
//! verification (owed, made, lost or late, duplicated, reordered).

use super::{Ran, Second, StepResult, TrafficSpec, Verification};
use crate::procs;
use crate::proto::*;
use crate::stats::{self, Summary};
use hdrhistogram::Histogram;
use std::collections::HashMap;

/// The workers' final reports, merged.
pub struct Merged {
    pub e2e: Vec<Histogram<u64>>,
    pub ack: Vec<Histogram<u64>>,
    pub lag: Vec<Histogram<u64>>,
    /// Per step: (sent, acked, skipped, delivered).
    pub counts: Vec<(u64, u64, u64, u64)>,
    /// Per second: (sent, acked, delivered, latency).
    pub seconds: Vec<(u64, u64, u64, Histogram<u64>)>,
    pub acked_per_channel: HashMap<u32, u64>,
    pub checks: Vec<ChanCheck>,
    pub acked_ids: Vec<(u32, String)>,
    pub v: Verification,
}

impl Merged {
    pub fn of(done: Vec<Done>, n_steps: usize) -> Merged {
        let mut m = Merged {
            e2e: (0..n_steps).map(|_| stats::hist(3)).collect(),
            ack: (0..n_steps).map(|_| stats::hist(3)).collect(),
            lag: (0..n_steps).map(|_| stats::hist(2)).collect(),
            counts: vec![(0, 0, 0, 0); n_steps],
            seconds: Vec::new(),
            acked_per_channel: HashMap::new(),
            checks: Vec::new(),
            acked_ids: Vec::new(),
            v: Verification::default(),
        };
        for d in done {
            m.add(d, n_steps);
        }
        m
    }

    fn add(&mut self, d: Done, n_steps: usize) {
        for (i, s) in d.steps.iter().enumerate() {
            let i = i.min(n_steps.saturating_sub(1));
            if n_steps == 0 {
                break;
            }
            s.e2e.merge_into(&mut self.e2e[i]);
            s.ack.merge_into(&mut self.ack[i]);
            s.send_lag.merge_into(&mut self.lag[i]);
            self.counts[i].0 += s.sent;
            self.counts[i].1 += s.acked;
            self.counts[i].2 += s.skipped;
            self.counts[i].3 += s.delivered;
        }
        for (i, s) in d.timeline.iter().enumerate() {
            while self.seconds.len() <= i {
                self.seconds.push((0, 0, 0, stats::hist(2)));
            }
            self.seconds[i].0 += s.sent;
            self.seconds[i].1 += s.acked;
            self.seconds[i].2 += s.delivered;
            s.e2e.merge_into(&mut self.seconds[i].3);
        }
        for (c, n) in d.acked_per_channel {
            *self.acked_per_channel.entry(c).or_default() += n;
        }
        self.checks.extend(d.checks);
        self.acked_ids.extend(d.acked_ids);
        let v = &mut self.v;
        v.unacked += d.unacked;
        v.foreign_frames += d.foreign;
        v.mixed.changes_sent += d.mixed.changes_sent;
        v.mixed.changes_acked += d.mixed.changes_acked;
        v.mixed.events_delivered += d.mixed.events_delivered;
        v.mixed.marks_sent += d.mixed.marks_sent;
        v.reconnects += d.reconnects;
        v.resent += d.resent;
        for (k, n) in d.errors {
            *v.errors.entry(k).or_default() += n;
        }
        for (k, n) in d.closes {
            *v.closes.entry(k).or_default() += n;
        }
    }

    /// Deliveries owed and made, per connection and channel: lost (or late, when the drain did
    /// not complete), duplicated, reordered.
    pub fn verify(&mut self) {
        let mut min_base: HashMap<u32, i64> = HashMap::new();
        for c in &self.checks {
            if c.distinct_run > 0 {
                let e = min_base.entry(c.channel).or_insert(c.base);
                *e = (*e).min(c.base);
            }
        }
        let v = &mut self.v;
        for c in &self.checks {
            let owed = self.acked_per_channel.get(&c.channel).copied().unwrap_or(0);
            v.expected += owed;
            v.delivered += c.distinct_run.min(owed);
            v.duplicated += c.duplicated;
            v.reordered += c.reordered;
            let missing = owed.saturating_sub(c.distinct_run);
            if v.drain_complete {
                v.lost += missing;
            } else {
                let head = match (c.distinct_run, min_base.get(&c.channel)) {
                    (n, Some(m)) if n > 0 => (c.base - m).max(0) as u64,
                    _ => 0,
                };
                let known = (c.holes + head).min(missing);
                v.lost += known;
                v.late += missing - known;
            }
        }
    }

    /// Each step's numbers, and its latency histogram for the plots.
    pub fn step_results(
        &self,
        spec: &TrafficSpec,
        ran: &Ran,
    ) -> (Vec<StepResult>, Vec<(String, Histogram<u64>)>) {
        let mut steps = Vec::new();
        let mut step_hists = Vec::new();
        let mut window_start = 0.0;
        for (k, &secs) in ran.step_secs.iter().enumerate() {
            let from = window_start as usize;
            let to = ((window_start + secs).floor() as usize).max(from + 1);
            let in_window: u64 = self
                .seconds
                .iter()
                .skip(from)
                .take(to - from)
                .map(|s| s.2)
                .sum();
            let window = (to - from) as f64;
            let cpu = (spec.measure && ran.snaps.len() > k + 1).then(|| {
                procs::cpu_between(&ran.snaps[k], &ran.snaps[k + 1], in_window, "deliveries")
            });
            let (sent, acked, skipped, delivered) = self.counts[k];
            steps.push(StepResult {
                target_rate: spec.steps[k].rate,
                planned_secs: spec.steps[k].secs,
                secs,
                saturated: ran.saturated_at == Some(k),
                sent,
                acked,
                skipped,
                delivered,
                sent_per_s: sent as f64 / secs.max(1e-9),
                acked_per_s: acked as f64 / secs.max(1e-9),
                deliveries_per_s: in_window as f64 / window.max(1e-9),
                e2e: Summary::of(&self.e2e[k]),
                ack: Summary::of(&self.ack[k]),
                send_lag: Summary::of(&self.lag[k]),
                cpu,
            });
            step_hists.push((format!("{} msg/s", spec.steps[k].rate), self.e2e[k].clone()));
            window_start += secs;
        }
        (steps, step_hists)
    }

    pub fn timeline(&self) -> Vec<Second> {
        let q = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        self.seconds
            .iter()
            .enumerate()
            .map(|(t, s)| Second {
                t,
                sent: s.0,
                acked: s.1,
                delivered: s.2,
                p50_ms: q(&s.3, 0.5),
                p99_ms: q(&s.3, 0.99),
            })
            .collect()
    }
}
