//! The coordinator's side of the workers: splitting connections over workers (threads or child
//! processes, within the open-file limit), their progress, and their final reports.

use crate::proto::*;
use crate::worker::WorkerHandle;
use indicatif::ProgressBar;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::time::Instant;

/// How connections are spread over workers and source addresses.
#[derive(Clone, Debug)]
pub struct Spread {
    /// Connections one worker may hold (its open-file limit less a reserve).
    pub per_worker: usize,
    /// At least this many workers.
    pub min_workers: usize,
    /// Always use child processes (otherwise a single worker runs as a thread).
    pub force_processes: bool,
    /// Bind client sockets to 127.0.0.2 .. 127.0.0.(1+n); 0: let the kernel choose.
    pub source_ips: u8,
}

impl Spread {
    pub fn source_ip(&self, conn: usize) -> Option<Ipv4Addr> {
        (self.source_ips > 0)
            .then(|| Ipv4Addr::new(127, 0, 0, 2 + (conn % self.source_ips as usize) as u8))
    }

    pub fn workers_for(&self, conns: usize) -> usize {
        conns
            .div_ceil(self.per_worker.max(1))
            .max(self.min_workers)
            .max(1)
    }
}

/// Split `conns` into `workers` nearly equal contiguous shares.
pub fn split<T: Clone>(items: &[T], workers: usize) -> Vec<Vec<T>> {
    let workers = workers.max(1);
    let base = items.len() / workers;
    let extra = items.len() % workers;
    let mut out = Vec::with_capacity(workers);
    let mut at = 0;
    for w in 0..workers {
        let n = base + usize::from(w < extra);
        out.push(items[at..at + n].to_vec());
        at += n;
    }
    out
}

/// A worker's connect outcome: (open, failed connection indexes, first error).
type Connected = (u64, Vec<u32>, Option<String>);

pub struct Fleet {
    pub workers: Vec<WorkerHandle>,
    pub latest: Vec<Progress>,
    pub in_process: bool,
    connected: Vec<Option<Connected>>,
    done: Vec<Option<Done>>,
    /// Interval counters accumulated since the last `take_interval`.
    interval_delivered: u64,
    interval_slow: u64,
}

impl Fleet {
    pub fn start(jobs: Vec<Job>, force_processes: bool) -> anyhow::Result<Fleet> {
        let in_process = jobs.len() == 1 && !force_processes;
        let n = jobs.len();
        let mut workers = Vec::with_capacity(n);
        for job in jobs {
            workers.push(WorkerHandle::spawn(job, in_process)?);
        }
        Ok(Fleet {
            workers,
            latest: vec![Progress::default(); n],
            in_process,
            connected: vec![None; n],
            done: (0..n).map(|_| None).collect(),
            interval_delivered: 0,
            interval_slow: 0,
        })
    }

    pub fn broadcast(&self, m: ToWorker) {
        for w in &self.workers {
            w.send(m.clone());
        }
    }

    /// Take the workers' reports for `wait`.
    pub async fn pump(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            let mut got = false;
            for i in 0..self.workers.len() {
                while let Ok(m) = self.workers[i].rx.try_recv() {
                    got = true;
                    self.take(i, m);
                }
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            if !got {
                tokio::time::sleep((until - now).min(Duration::from_millis(20))).await;
            }
        }
    }

    fn take(&mut self, i: usize, m: FromWorker) {
        match m {
            FromWorker::Progress(p) => {
                self.interval_delivered += p.interval_delivered;
                self.interval_slow += p.interval_slow;
                self.latest[i] = p;
            }
            FromWorker::Connected {
                ok,
                failed,
                first_error,
                ..
            } => self.connected[i] = Some((ok, failed, first_error)),
            FromWorker::Done(d) => self.done[i] = Some(*d),
        }
    }

    /// The workers' latest counts, summed.
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for p in &self.latest {
            t += &p.counts;
        }
        t
    }

    /// Deliveries and slow deliveries since the previous call.
    pub fn take_interval(&mut self) -> (u64, u64) {
        let r = (self.interval_delivered, self.interval_slow);
        self.interval_delivered = 0;
        self.interval_slow = 0;
        r
    }

    pub fn all_connected(&self) -> bool {
        self.connected.iter().all(Option::is_some)
    }

    /// (ok, failed) over the workers that finished connecting.
    pub fn connected_counts(&self) -> (u64, usize) {
        self.connected
            .iter()
            .flatten()
            .fold((0, 0), |(o, f), (ok, failed, _)| (o + ok, f + failed.len()))
    }

    pub fn first_error(&self) -> Option<String> {
        self.connected
            .iter()
            .flatten()
            .find_map(|(_, _, e)| e.clone())
    }

    /// Wait until every worker has tried all its connections; returns (ok, failed, first error).
    pub async fn wait_connected(
        &mut self,
        planned: u64,
        limit: Duration,
        bar: &ProgressBar,
    ) -> anyhow::Result<(u64, Vec<u32>, Option<String>)> {
        let until = Instant::now() + limit;
        bar.set_length(planned);
        loop {
            self.pump(Duration::from_millis(200)).await;
            let t = self.totals();
            bar.set_position(t.open + t.failed);
            bar.set_message(format!("connecting: {} open, {} failed", t.open, t.failed));
            if self.connected.iter().all(Option::is_some) {
                let mut ok = 0;
                let mut failed = Vec::new();
                let mut first = None;
                for (o, f, e) in self.connected.iter().flatten() {
                    ok += o;
                    failed.extend(f.iter().copied());
                    if first.is_none() {
                        first.clone_from(e);
                    }
                }
                return Ok((ok, failed, first));
            }
            if Instant::now() >= until {
                anyhow::bail!(
                    "connections not established within {limit:?} ({} open, {} failed)",
                    t.open,
                    t.failed
                );
            }
        }
    }

    /// Stop every worker and collect their final reports.
    pub async fn stop(mut self) -> Vec<Done> {
        self.broadcast(ToWorker::Stop);
        let until = Instant::now() + Duration::from_secs(40);
        while self.done.iter().any(Option::is_none) && Instant::now() < until {
            self.pump(Duration::from_millis(100)).await;
        }
        let done: Vec<Done> = self.done.iter_mut().filter_map(Option::take).collect();
        for w in self.workers {
            w.finish().await;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_complete() {
        let v: Vec<u32> = (0..10).collect();
        let parts = split(&v, 3);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(parts.concat(), v);
    }

    #[test]
    fn source_addresses_rotate() {
        let s = Spread {
            per_worker: 100,
            min_workers: 1,
            force_processes: false,
            source_ips: 3,
        };
        assert_eq!(s.source_ip(0), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(s.source_ip(4), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(s.workers_for(250), 3);
    }
}
