//! When a connection sends: evenly spread over all senders, at each step's rate.

use super::state::Plan;
use std::rc::Rc;

/// When this connection sends next: evenly spread over all senders, at each step's rate.
pub struct Schedule {
    pub plan: Rc<Plan>,
    pub ordinal: f64,
    pub senders: f64,
    pub step: usize,
    pub n: u64,
}

impl Schedule {
    /// The next send time (seconds after t0), moving to later steps as needed.
    pub fn next(&mut self) -> Option<f64> {
        loop {
            let s = self.plan.steps.get(self.step)?;
            let start = if self.step == 0 {
                0.0
            } else {
                self.plan.ends[self.step - 1]
            };
            let end = self.plan.ends[self.step];
            if s.rate > 0.0 {
                let period = self.senders / s.rate;
                let t = start + (self.ordinal / self.senders + self.n as f64) * period;
                if t < end {
                    return Some(t);
                }
            }
            self.step += 1;
            self.n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Step;
    use tokio::time::Instant;

    #[test]
    fn schedule_spreads_senders_and_follows_steps() {
        let plan = Rc::new(Plan {
            t0_ns: 0,
            t0: Instant::now(),
            steps: vec![
                Step {
                    rate: 10.0,
                    secs: 1.0,
                },
                Step {
                    rate: 0.0,
                    secs: 1.0,
                },
                Step {
                    rate: 20.0,
                    secs: 1.0,
                },
            ],
            ends: vec![1.0, 2.0, 3.0],
        });
        // 2 senders: each sends rate/2 per second; sender 1 is half a period later.
        let mut s = Schedule {
            plan,
            ordinal: 1.0,
            senders: 2.0,
            step: 0,
            n: 0,
        };
        let mut times = Vec::new();
        while let Some(t) = s.next() {
            times.push(t);
            s.n += 1;
        }
        assert_eq!(times.len(), 5 + 10);
        assert!((times[0] - 0.1).abs() < 1e-9);
        assert!((times[5] - 2.05).abs() < 1e-9);
    }
}
