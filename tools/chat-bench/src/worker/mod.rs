//! A worker: a share of the run's WebSocket connections on one single-threaded runtime, either
//! a thread of the coordinator or a child process (`chat-bench worker`, when one process's file
//! limit cannot hold them all). Each connection is one task ([`conn`]); the worker opens them at
//! the job's rate, passes the coordinator's orders on, and reports progress and the final counts.
//!
//! # Layout
//! - `state`: what the connections share (the job, orders as watch channels, counters) and the
//!   reports made from it.
//! - `conn`: one connection: its sends, the frames it reads, reconnect through `chat-client`.
//! - `positions`: the delivery check of one channel on one connection (pure).
//! - `schedule`: when a sender sends (pure).

mod conn;
mod positions;
mod schedule;
mod state;

pub use conn::now_ns;

use crate::proto::*;
use chat_client::Connector;
use state::{Plan, W};
use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Run a job to the end; `rx` carries the coordinator's orders, `tx` our reports.
pub async fn run(
    job: Job,
    mut rx: mpsc::UnboundedReceiver<ToWorker>,
    tx: mpsc::UnboundedSender<FromWorker>,
) -> anyhow::Result<()> {
    let addr = job
        .connect_addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", job.connect_addr))?;
    // Small buffers: thousands of connections per process, small frames.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let connector = Connector::new(&job.ws_url)
        .connect_to(addr)
        .token_in_query(job.token_in_query)
        .config(config);
    let w = Rc::new(W::new(job, connector));
    let deadline = Instant::now() + Duration::from_secs(w.job.deadline_secs);
    let progress = {
        let w = w.clone();
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let _ = tx.send(FromWorker::Progress(w.progress()));
            }
        })
    };
    let mut pending = VecDeque::new();
    let tasks = open_all(&w, &mut rx, &mut pending).await;
    obey(&w, &tasks, rx, pending, &tx, deadline).await;

    // Close everything, collect every connection's checks, report.
    w.sending.set(false);
    w.stop.send_replace(true);
    let wait_all = futures::future::join_all(tasks);
    let _ = tokio::time::timeout(Duration::from_secs(10), wait_all).await;
    progress.abort();
    let _ = tx.send(FromWorker::Progress(w.progress()));
    let _ = tx.send(FromWorker::Done(Box::new(w.done())));
    Ok(())
}

/// Start the connections at the job's rate (each one a task from here on). Orders that arrive
/// meanwhile are kept in `pending`; a `Stop` ends the opening early.
async fn open_all(
    w: &Rc<W>,
    rx: &mut mpsc::UnboundedReceiver<ToWorker>,
    pending: &mut VecDeque<ToWorker>,
) -> Vec<JoinHandle<()>> {
    let n = w.job.conns.len();
    let mut tasks = Vec::with_capacity(n);
    let spacing = Duration::from_secs_f64(1.0 / w.job.connect_rate.max(1.0));
    let started = Instant::now();
    for i in 0..n {
        let at = started + spacing.mul_f64(i as f64);
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        while let Ok(m) = rx.try_recv() {
            if matches!(m, ToWorker::Stop) {
                w.stop.send_replace(true);
            }
            pending.push_back(m);
        }
        if w.stopped() {
            break;
        }
        tasks.push(tokio::task::spawn_local(conn::conn_task(w.clone(), i)));
    }
    tasks
}

/// Follow the coordinator's orders until `Stop` (or the deadline); report once every
/// connection has been tried.
async fn obey(
    w: &W,
    tasks: &[JoinHandle<()>],
    mut rx: mpsc::UnboundedReceiver<ToWorker>,
    mut pending: VecDeque<ToWorker>,
    tx: &mpsc::UnboundedSender<FromWorker>,
    deadline: Instant,
) {
    let mut connected_sent = false;
    loop {
        if !connected_sent {
            connected_sent = report_connected(w, tasks.len(), tx);
        }
        let msg = tokio::select! {
            m = async { match pending.pop_front() { Some(m) => Some(m), None => rx.recv().await } } => m,
            _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("chat-bench worker {}: deadline reached, stopping", w.job.worker);
                None
            }
        };
        match msg {
            Some(ToWorker::Go {
                t0_unix_ns,
                steps,
                channel_conns,
            }) => go(w, t0_unix_ns, steps, channel_conns),
            Some(ToWorker::StopSending) => w.sending.set(false),
            Some(ToWorker::Ping) => {
                w.ping.send_modify(|n| *n += 1);
            }
            Some(ToWorker::Stop) | None => return,
        }
    }
}

/// Send `Connected` once every connection has opened or failed; true when sent.
fn report_connected(w: &W, tasks: usize, tx: &mpsc::UnboundedSender<FromWorker>) -> bool {
    let s = w.stats.borrow();
    if (s.c.connected as usize + s.c.failed.len()) < tasks {
        return false;
    }
    let _ = tx.send(FromWorker::Connected {
        worker: w.job.worker,
        ok: s.c.connected,
        failed: s.c.failed.clone(),
        first_error: s.c.first_error.clone(),
    });
    true
}

/// The run starts: the plan, and who receives each channel.
fn go(w: &W, t0_unix_ns: u64, steps: Vec<Step>, channel_conns: Vec<(u32, u32)>) {
    let now = now_ns();
    let t0 = if t0_unix_ns >= now {
        Instant::now() + Duration::from_nanos(t0_unix_ns - now)
    } else {
        Instant::now() - Duration::from_nanos(now - t0_unix_ns)
    };
    let ends = steps
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s.secs;
            Some(*acc)
        })
        .collect();
    *w.channel_conns.borrow_mut() = channel_conns
        .into_iter()
        .map(|(c, n)| (c, n as u64))
        .collect();
    *w.plan.borrow_mut() = Some(Rc::new(Plan {
        t0_ns: t0_unix_ns,
        t0,
        steps,
        ends,
    }));
    w.sending.set(true);
    w.go.send_replace(true);
}

/// Parse JSON lines (orders to a worker, or its reports) into `tx` until the stream ends or
/// the receiver is gone; a line that does not parse is reported and skipped.
async fn forward_lines<R, T>(
    lines: &mut tokio::io::Lines<R>,
    tx: &mpsc::UnboundedSender<T>,
    what: &str,
) where
    R: tokio::io::AsyncBufRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<T>(&line) {
            Ok(m) => {
                if tx.send(m).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("{what} {line:?}: {e}"),
        }
    }
}

/// `chat-bench worker`: a job on stdin (first line), orders on the following lines, reports on
/// stdout. The parent closing stdin stops the worker.
pub fn child_main() -> anyhow::Result<()> {
    crate::procs::raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let first = lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no job on stdin"))?;
        let job: Job = serde_json::from_str(&first)?;
        let (to_tx, to_rx) = mpsc::unbounded_channel();
        let (from_tx, mut from_rx) = mpsc::unbounded_channel::<FromWorker>();
        tokio::task::spawn_local(async move {
            forward_lines(&mut lines, &to_tx, "chat-bench worker: bad order").await;
            let _ = to_tx.send(ToWorker::Stop);
        });
        let writer = tokio::task::spawn_local(async move {
            let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
            while let Some(m) = from_rx.recv().await {
                let mut line = serde_json::to_vec(&m).expect("reports serialise");
                line.push(b'\n');
                if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                    return;
                }
            }
        });
        run(job, to_rx, from_tx).await?;
        let _ = writer.await;
        Ok(())
    })
}

// ---------------------------------------------------------------------------- handles

/// The coordinator's end of a worker.
pub struct WorkerHandle {
    pub tx: mpsc::UnboundedSender<ToWorker>,
    pub rx: mpsc::UnboundedReceiver<FromWorker>,
    join: Join,
}

enum Join {
    Thread(Option<std::thread::JoinHandle<()>>),
    Child(tokio::process::Child),
}

impl WorkerHandle {
    /// Start a worker: a thread of this process, or a child process of this executable.
    pub fn spawn(job: Job, in_process: bool) -> anyhow::Result<WorkerHandle> {
        let (to_tx, to_rx) = mpsc::unbounded_channel();
        let (from_tx, from_rx) = mpsc::unbounded_channel();
        if in_process {
            let name = format!("chat-bench-worker-{}", job.worker);
            let t = std::thread::Builder::new().name(name).spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let local = tokio::task::LocalSet::new();
                if let Err(e) = local.block_on(&rt, run(job, to_rx, from_tx)) {
                    eprintln!("chat-bench worker: {e:#}");
                }
            })?;
            return Ok(WorkerHandle {
                tx: to_tx,
                rx: from_rx,
                join: Join::Thread(Some(t)),
            });
        }
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = serde_json::to_vec(&job)?;
        first.push(b'\n');
        let mut to_rx = to_rx;
        tokio::spawn(async move {
            if stdin.write_all(&first).await.is_err() {
                return;
            }
            let _ = stdin.flush().await;
            while let Some(m) = to_rx.recv().await {
                let mut line = serde_json::to_vec(&m).expect("orders serialise");
                line.push(b'\n');
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            forward_lines(&mut lines, &from_tx, "chat-bench: bad worker report").await;
        });
        Ok(WorkerHandle {
            tx: to_tx,
            rx: from_rx,
            join: Join::Child(child),
        })
    }

    pub fn send(&self, m: ToWorker) {
        let _ = self.tx.send(m);
    }

    /// Wait for the worker to end (after `Done`).
    pub async fn finish(mut self) {
        match &mut self.join {
            Join::Thread(t) => {
                if let Some(t) = t.take() {
                    let _ = tokio::task::spawn_blocking(move || t.join()).await;
                }
            }
            Join::Child(c) => {
                if tokio::time::timeout(Duration::from_secs(10), c.wait())
                    .await
                    .is_err()
                {
                    let _ = c.start_kill();
                }
            }
        }
    }
}
