//! A worker: a share of the run's WebSocket connections on one single-threaded runtime, either
//! a thread of the coordinator or a child process (`chat-bench worker`, when one process's file
//! limit cannot hold them all). Each connection is one task that reads every frame, sends on its
//! schedule and checks positions; on a drop it reconnects, `resume`s from the last message it
//! has and resends what was not acked, exactly as `docs/protocol.md` tells clients to.

use crate::proto::*;
use crate::stats::{self, HistDump};
use chat_types::ws::ClientFrame;
use chat_types::{ChannelId, MessageId};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------------------- shared state

struct StepAcc {
    sent: u64,
    acked: u64,
    delivered: u64,
    skipped: u64,
    e2e: Histogram<u64>,
    ack: Histogram<u64>,
    send_lag: Histogram<u64>,
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

struct Second {
    sent: u64,
    acked: u64,
    delivered: u64,
    e2e: Histogram<u64>,
}

#[derive(Default)]
struct Counters {
    open: u64,
    /// Connections that ever reached `ready` (open counts those open now).
    connected: u64,
    failed: Vec<u32>,
    first_error: Option<String>,
    sent: u64,
    acked: u64,
    delivered: u64,
    expected: u64,
    echoed: u64,
    errors: BTreeMap<String, u64>,
    error_total: u64,
    closes: BTreeMap<String, u64>,
    reconnects: u64,
    resent: u64,
    dropped: u64,
    foreign: u64,
    pongs: u64,
    interval_delivered: u64,
    interval_slow: u64,
    acked_per_channel: HashMap<u32, u64>,
    acked_ids: Vec<(u32, String)>,
    checks: Vec<ChanCheck>,
    unacked: u64,
}

struct Stats {
    c: Counters,
    steps: Vec<StepAcc>,
    timeline: Vec<Second>,
    ping: Histogram<u64>,
}

impl Stats {
    fn second(&mut self, i: usize) -> &mut Second {
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
    fn step(&mut self, i: usize) -> &mut StepAcc {
        while self.steps.len() <= i {
            self.steps.push(StepAcc::new());
        }
        &mut self.steps[i]
    }
}

struct Plan {
    t0_ns: u64,
    t0: Instant,
    steps: Vec<Step>,
    /// Cumulative end of each step, seconds after t0.
    ends: Vec<f64>,
}

impl Plan {
    fn step_of(&self, at_ns: u64) -> usize {
        let t = at_ns.saturating_sub(self.t0_ns) as f64 / 1e9;
        self.ends
            .iter()
            .position(|e| t < *e)
            .unwrap_or(self.ends.len().saturating_sub(1))
    }
    fn second_of(&self, at_ns: u64) -> usize {
        (at_ns.saturating_sub(self.t0_ns) / 1_000_000_000) as usize
    }
}

struct W {
    job: Job,
    addr: SocketAddr,
    /// Global channel index -> id, and back (from the id as text).
    channel_ids: HashMap<u32, ChannelId>,
    channel_by_str: HashMap<String, u32>,
    channel_conns: RefCell<HashMap<u32, u64>>,
    plan: RefCell<Option<Rc<Plan>>>,
    sending: Cell<bool>,
    go: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    ping: watch::Sender<u32>,
    stats: RefCell<Stats>,
}

impl W {
    fn plan(&self) -> Option<Rc<Plan>> {
        self.plan.borrow().clone()
    }
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

// ---------------------------------------------------------------------------- entry points

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
    let w = Rc::new(W {
        channel_ids: job.channels.iter().map(|c| (c.idx, c.id)).collect(),
        channel_by_str: job
            .channels
            .iter()
            .map(|c| (c.id.to_string(), c.idx))
            .collect(),
        job,
        addr,
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
    });
    let deadline = Instant::now() + Duration::from_secs(w.job.deadline_secs);

    // Connect at the given rate; each connection is one task from here on.
    let n = w.job.conns.len();
    let mut tasks = Vec::with_capacity(n);
    let spacing = Duration::from_secs_f64(1.0 / w.job.connect_rate.max(1.0));
    let started = Instant::now();
    let progress = {
        let w = w.clone();
        let tx = tx.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let _ = tx.send(FromWorker::Progress(progress_of(&w)));
            }
        })
    };
    let mut connected_sent = false;
    let mut pending = std::collections::VecDeque::new();
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
        tasks.push(tokio::task::spawn_local(conn_task(w.clone(), i)));
    }

    // Orders until Stop (or the deadline).
    loop {
        if !connected_sent {
            let (ok, failed) = {
                let s = w.stats.borrow();
                (s.c.connected, s.c.failed.len())
            };
            if ok as usize + failed >= tasks.len() {
                let s = w.stats.borrow();
                let _ = tx.send(FromWorker::Connected {
                    worker: w.job.worker,
                    ok: s.c.connected,
                    failed: s.c.failed.clone(),
                    first_error: s.c.first_error.clone(),
                });
                connected_sent = true;
            }
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
            }) => {
                let now = now_ns();
                let t0 = if t0_unix_ns >= now {
                    Instant::now() + Duration::from_nanos(t0_unix_ns - now)
                } else {
                    Instant::now() - Duration::from_nanos(now - t0_unix_ns)
                };
                let mut ends = Vec::new();
                let mut acc = 0.0;
                for s in &steps {
                    acc += s.secs;
                    ends.push(acc);
                }
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
            Some(ToWorker::StopSending) => w.sending.set(false),
            Some(ToWorker::Ping) => {
                w.ping.send_modify(|n| *n += 1);
            }
            Some(ToWorker::Stop) | None => break,
        }
    }

    // Close everything, collect every connection's checks, report.
    w.sending.set(false);
    w.stop.send_replace(true);
    let wait_all = futures::future::join_all(tasks);
    let _ = tokio::time::timeout(Duration::from_secs(10), wait_all).await;
    progress.abort();
    let _ = tx.send(FromWorker::Progress(progress_of(&w)));
    let done = done_of(&w);
    let _ = tx.send(FromWorker::Done(Box::new(done)));
    Ok(())
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

fn progress_of(w: &W) -> Progress {
    let mut s = w.stats.borrow_mut();
    let c = &mut s.c;
    let p = Progress {
        worker: w.job.worker,
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
        interval_delivered: c.interval_delivered,
        interval_slow: c.interval_slow,
    };
    c.interval_delivered = 0;
    c.interval_slow = 0;
    p
}

fn done_of(w: &W) -> Done {
    let mut s = w.stats.borrow_mut();
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
        worker: w.job.worker,
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
    }
}

// ---------------------------------------------------------------------------- one connection

/// What one connection knows of one channel: which positions it got, in which order.
struct ChanState {
    idx: u32,
    id: String,
    base: Option<i64>,
    /// Bit k: position base + k arrived.
    bits: Vec<u64>,
    max: i64,
    below: BTreeSet<i64>,
    distinct_run: u64,
    duplicated: u64,
    reordered: u64,
    last_id: Option<MessageId>,
}

enum Seen {
    New,
    Late,
    Duplicate,
}

impl ChanState {
    fn observe(&mut self, seq: i64) -> Seen {
        let Some(base) = self.base else {
            self.base = Some(seq);
            self.bits = vec![1];
            self.max = seq;
            return Seen::New;
        };
        if seq < base {
            return if self.below.insert(seq) {
                self.reordered += 1;
                Seen::Late
            } else {
                self.duplicated += 1;
                Seen::Duplicate
            };
        }
        let off = (seq - base) as usize;
        let (word, bit) = (off / 64, off % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return Seen::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        if seq < self.max {
            self.reordered += 1;
            Seen::Late
        } else {
            self.max = seq;
            Seen::New
        }
    }

    fn holes(&self) -> u64 {
        let Some(base) = self.base else { return 0 };
        let span = (self.max - base + 1) as u64;
        let have: u64 = self.bits.iter().map(|w| w.count_ones() as u64).sum();
        span.saturating_sub(have)
    }
}

/// When this connection sends next: evenly spread over all senders, at each step's rate.
struct Schedule {
    plan: Rc<Plan>,
    ordinal: f64,
    senders: f64,
    step: usize,
    n: u64,
}

impl Schedule {
    /// The next send time (seconds after t0), moving to later steps as needed.
    fn next(&mut self) -> Option<f64> {
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

#[derive(Deserialize)]
struct InFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<InMsg<'a>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_msg_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMsg<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    channel_id: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
}

/// `<run tag> <sender connection> <send time, Unix ns> <padding>`
fn parse_body<'b>(body: &'b str, tag: &str) -> Option<(u32, u64, &'b str)> {
    let mut it = body.splitn(4, ' ');
    if it.next()? != tag {
        return None;
    }
    let sender = it.next()?.parse().ok()?;
    let sent = it.next()?.parse().ok()?;
    Some((sender, sent, it.next().unwrap_or("")))
}

struct Conn {
    w: Rc<W>,
    spec_idx: usize,
    chans: Vec<ChanState>,
    unacked: HashMap<String, (ChannelId, String)>,
    next_send_channel: usize,
    sent_n: u64,
    ping_sent: Option<Instant>,
}

async fn open(w: &W, spec: &JobConn) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = spec.source_ip {
        sock.bind(SocketAddr::new(ip.into(), 0))?;
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), sock.connect(w.addr))
        .await
        .map_err(|_| anyhow::anyhow!("tcp connect timed out"))??;
    stream.set_nodelay(true)?;
    let url = if w.job.token_in_query {
        format!("{}?token={}", w.job.ws_url, spec.token)
    } else {
        w.job.ws_url.clone()
    };
    let mut req = url.into_client_request()?;
    if !w.job.token_in_query {
        req.headers_mut()
            .insert("authorization", format!("Bearer {}", spec.token).parse()?);
    }
    // Small buffers: thousands of connections per process, small frames.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::client_async_with_config(req, stream, Some(cfg)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("websocket handshake timed out"))??;
    // The first frame is `ready`.
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .map_err(|_| anyhow::anyhow!("no ready frame within 10 s"))?;
    match first {
        Some(Ok(WsMessage::Text(t))) if t.as_str().contains("\"ready\"") => Ok(ws),
        other => anyhow::bail!("expected ready, got {other:?}"),
    }
}

async fn conn_task(w: Rc<W>, spec_idx: usize) {
    let spec = &w.job.conns[spec_idx];
    let mut ws = None;
    let mut last_err = None;
    for attempt in 0..3 {
        if w.stopped() {
            break;
        }
        match open(&w, spec).await {
            Ok(s) => {
                ws = Some(s);
                break;
            }
            Err(e) => {
                last_err = Some(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
            }
        }
    }
    let Some(mut ws) = ws else {
        let mut s = w.stats.borrow_mut();
        s.c.failed.push(spec.idx);
        if s.c.first_error.is_none() {
            s.c.first_error = last_err;
        }
        return;
    };
    {
        let mut s = w.stats.borrow_mut();
        s.c.open += 1;
        s.c.connected += 1;
    }
    let mut conn = Conn {
        chans: spec
            .channels
            .iter()
            .map(|c| ChanState {
                idx: *c,
                id: w
                    .channel_ids
                    .get(c)
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                base: None,
                bits: Vec::new(),
                max: 0,
                below: BTreeSet::new(),
                distinct_run: 0,
                duplicated: 0,
                reordered: 0,
                last_id: None,
            })
            .collect(),
        w: w.clone(),
        spec_idx,
        unacked: HashMap::new(),
        next_send_channel: spec.sender_ordinal as usize,
        sent_n: 0,
        ping_sent: None,
    };
    if w.job.mode == Mode::Traffic {
        // Any first frame releases the live messages the gateway holds for a `resume`.
        let _ = ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await;
    }
    conn.run(ws).await;
    let mut s = w.stats.borrow_mut();
    s.c.open = s.c.open.saturating_sub(1);
    for ch in &conn.chans {
        s.c.checks.push(ChanCheck {
            conn: spec.idx,
            channel: ch.idx,
            base: ch.base.unwrap_or(0),
            distinct_run: ch.distinct_run,
            holes: ch.holes(),
            duplicated: ch.duplicated,
            reordered: ch.reordered,
        });
    }
}

impl Conn {
    fn spec(&self) -> &JobConn {
        &self.w.job.conns[self.spec_idx]
    }

    async fn run(&mut self, mut ws: Ws) {
        let w = self.w.clone();
        let mut go = w.go.subscribe();
        let mut stop = w.stop.subscribe();
        let mut ping = w.ping.subscribe();
        let is_sender = !self.spec().send_to.is_empty();
        let mut schedule: Option<Schedule> = None;
        let timer = tokio::time::sleep(Duration::from_secs(86400));
        tokio::pin!(timer);
        let mut armed = false;
        if *go.borrow_and_update() && is_sender {
            schedule = self.schedule();
            armed = self.arm(&mut schedule, timer.as_mut());
        }
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
                _ = go.changed(), if schedule.is_none() && is_sender => {
                    schedule = self.schedule();
                    armed = self.arm(&mut schedule, timer.as_mut());
                }
                _ = ping.changed() => {
                    self.ping_sent = Some(Instant::now());
                    if ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.is_err() {
                        match self.recover(&mut ws, "send failed").await {
                            true => continue,
                            false => break,
                        }
                    }
                }
                _ = &mut timer, if armed => {
                    if !w.sending.get() {
                        armed = false;
                        continue;
                    }
                    let sched = schedule.as_mut().expect("armed implies a schedule");
                    let planned = sched.next().unwrap_or(0.0);
                    sched.n += 1;
                    let ok = self.send_one(&mut ws, planned).await;
                    armed = self.arm(&mut schedule, timer.as_mut());
                    if !ok {
                        match self.recover(&mut ws, "send failed").await {
                            true => {
                                self.skip_missed(&mut schedule);
                                armed = self.arm(&mut schedule, timer.as_mut());
                            }
                            false => break,
                        }
                    }
                }
                m = ws.next() => {
                    let why = match m {
                        Some(Ok(WsMessage::Text(t))) => {
                            if let Some((cmid, ch, body)) = self.on_text(t.as_str()) {
                                // `unavailable`: resend with the same client_msg_id.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                self.w.stats.borrow_mut().c.resent += 1;
                                let f = send_frame(ch, &cmid, &body);
                                if ws.send(WsMessage::text(f)).await.is_err() {
                                    "send failed".to_string()
                                } else {
                                    continue;
                                }
                            } else {
                                continue;
                            }
                        }
                        Some(Ok(WsMessage::Close(frame))) => match frame {
                            Some(f) => format!("closed {}", u16::from(f.code)),
                            None => "closed".to_string(),
                        },
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => format!("error: {e}"),
                        None => "eof".to_string(),
                    };
                    match self.recover(&mut ws, &why).await {
                        true => {
                            self.skip_missed(&mut schedule);
                            armed = self.arm(&mut schedule, timer.as_mut());
                        }
                        false => break,
                    }
                }
            }
        }
        self.w.stats.borrow_mut().c.unacked += self.unacked.len() as u64;
        let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
    }

    fn schedule(&self) -> Option<Schedule> {
        let plan = self.w.plan()?;
        Some(Schedule {
            plan,
            ordinal: self.spec().sender_ordinal as f64,
            senders: self.w.job.senders_total.max(1) as f64,
            step: 0,
            n: 0,
        })
    }

    fn arm(
        &self,
        schedule: &mut Option<Schedule>,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> bool {
        let Some(s) = schedule.as_mut() else {
            return false;
        };
        match s.next() {
            Some(t) => {
                timer.reset(s.plan.t0 + Duration::from_secs_f64(t));
                true
            }
            None => false,
        }
    }

    /// After a reconnect: the sends whose time passed meanwhile are skipped, not bunched.
    fn skip_missed(&self, schedule: &mut Option<Schedule>) {
        let Some(s) = schedule.as_mut() else { return };
        let now = Instant::now();
        let mut skipped = 0;
        while let Some(t) = s.next() {
            if s.plan.t0 + Duration::from_secs_f64(t) >= now {
                break;
            }
            s.n += 1;
            skipped += 1;
        }
        if skipped > 0 {
            let step = s.step;
            self.w.stats.borrow_mut().step(step).skipped += skipped;
        }
    }

    async fn send_one(&mut self, ws: &mut Ws, planned: f64) -> bool {
        let w = self.w.clone();
        let Some(plan) = w.plan() else { return true };
        let spec = &w.job.conns[self.spec_idx];
        let now = now_ns();
        let step = plan.step_of(now);
        if self.unacked.len() >= w.job.max_unacked {
            w.stats.borrow_mut().step(step).skipped += 1;
            return true;
        }
        let ch_idx = spec.send_to[self.next_send_channel % spec.send_to.len()];
        self.next_send_channel += 1;
        let Some(channel) = w.channel_ids.get(&ch_idx).copied() else {
            return true;
        };
        let head = format!("{} {} {}", w.job.run_tag, spec.idx, now);
        let pad = w.job.body_bytes.saturating_sub(head.len() + 1).max(1);
        let body = format!("{head} {}", "x".repeat(pad));
        let cmid = format!("{}-{}-{}", w.job.run_tag, spec.idx, self.sent_n);
        self.sent_n += 1;
        let frame = send_frame(channel, &cmid, &body);
        self.unacked.insert(cmid, (channel, body));
        {
            let mut s = w.stats.borrow_mut();
            s.c.sent += 1;
            let lag_us = now.saturating_sub(plan.t0_ns + (planned * 1e9) as u64) / 1000;
            let st = s.step(step);
            st.sent += 1;
            stats::record(&mut st.send_lag, lag_us);
            let sec = plan.second_of(now);
            s.second(sec).sent += 1;
        }
        ws.send(WsMessage::text(frame)).await.is_ok()
    }

    /// Handle a text frame. Returns a send to repeat (after `unavailable`).
    fn on_text(&mut self, text: &str) -> Option<(String, ChannelId, String)> {
        let now = now_ns();
        let f: InFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(_) => {
                self.count_error("unparsable frame");
                return None;
            }
        };
        match f.kind.as_ref() {
            "message" => {
                if let Some(m) = f.message {
                    self.on_message(m, now);
                }
            }
            "ack" => {
                if let (Some(m), Some(cmid)) = (f.message, f.client_msg_id) {
                    self.on_ack(m, &cmid, now);
                }
            }
            "pong" => {
                if let Some(at) = self.ping_sent.take() {
                    let mut s = self.w.stats.borrow_mut();
                    s.c.pongs += 1;
                    stats::record(&mut s.ping, at.elapsed().as_micros() as u64);
                }
            }
            "error" => {
                let code = f.code.as_deref().unwrap_or("?").to_string();
                self.count_error(&code);
                if code == "unavailable"
                    && let Some(cmid) = f.client_msg_id
                    && let Some((ch, body)) = self.unacked.get(cmid.as_ref())
                {
                    return Some((cmid.to_string(), *ch, body.clone()));
                }
            }
            _ => {}
        }
        None
    }

    fn count_error(&self, code: &str) {
        let mut s = self.w.stats.borrow_mut();
        *s.c.errors.entry(code.to_string()).or_default() += 1;
        s.c.error_total += 1;
    }

    fn on_message(&mut self, m: InMsg<'_>, now: u64) {
        let Some(ch) = self.chans.iter_mut().find(|c| c.id == m.channel_id) else {
            // A channel of this user that the run does not watch (another layout's).
            self.w.stats.borrow_mut().c.foreign += 1;
            return;
        };
        let Some(seq) = m.seq else {
            self.count_error("message without seq");
            return;
        };
        let seen = ch.observe(seq);
        if matches!(seen, Seen::New)
            && let Ok(id) = m.id.parse::<MessageId>()
        {
            ch.last_id = Some(id);
        }
        let w = &self.w;
        let Some((sender, sent_ns, _)) = parse_body(&m.body, &w.job.run_tag) else {
            w.stats.borrow_mut().c.foreign += 1;
            return;
        };
        if matches!(seen, Seen::Duplicate) {
            return;
        }
        ch.distinct_run += 1;
        let Some(plan) = w.plan() else { return };
        let us = now.saturating_sub(sent_ns) / 1000;
        let mut s = w.stats.borrow_mut();
        s.c.delivered += 1;
        s.c.interval_delivered += 1;
        if us > w.job.slow_ms * 1000 {
            s.c.interval_slow += 1;
        }
        if sender == self.w.job.conns[self.spec_idx].idx {
            s.c.echoed += 1;
        }
        let st = s.step(plan.step_of(sent_ns));
        st.delivered += 1;
        stats::record(&mut st.e2e, us);
        let sec = s.second(plan.second_of(now));
        sec.delivered += 1;
        stats::record(&mut sec.e2e, us);
    }

    fn on_ack(&mut self, m: InMsg<'_>, cmid: &str, now: u64) {
        if self.unacked.remove(cmid).is_none() {
            return; // a resend acked again
        }
        let w = &self.w;
        let Some(plan) = w.plan() else { return };
        let Some((_, sent_ns, _)) = parse_body(&m.body, &w.job.run_tag) else {
            return;
        };
        let ch_idx = w.channel_by_str.get(m.channel_id.as_ref()).copied();
        let conns = ch_idx
            .and_then(|i| w.channel_conns.borrow().get(&i).copied())
            .unwrap_or(0);
        let mut s = w.stats.borrow_mut();
        s.c.acked += 1;
        s.c.expected += conns;
        if let Some(i) = ch_idx {
            *s.c.acked_per_channel.entry(i).or_default() += 1;
            if w.job.collect_ids {
                s.c.acked_ids.push((i, m.id.to_string()));
            }
        }
        let st = s.step(plan.step_of(sent_ns));
        st.acked += 1;
        stats::record(&mut st.ack, now.saturating_sub(sent_ns) / 1000);
        s.second(plan.second_of(now)).acked += 1;
    }

    /// The connection dropped: in traffic mode reconnect (backoff), `resume` from the last
    /// message of each channel, and resend what was not acked. Returns false to stop.
    async fn recover(&mut self, ws: &mut Ws, why: &str) -> bool {
        let w = self.w.clone();
        {
            let mut s = w.stats.borrow_mut();
            *s.c.closes.entry(why.to_string()).or_default() += 1;
        }
        if w.stopped() {
            return false;
        }
        if !w.job.reconnect {
            w.stats.borrow_mut().c.dropped += 1;
            return false;
        }
        let mut backoff = Duration::from_millis(200);
        loop {
            if w.stopped() {
                return false;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            let Ok(mut fresh) = open(&w, self.spec()).await else {
                continue;
            };
            let channels: BTreeMap<ChannelId, MessageId> = self
                .chans
                .iter()
                .filter_map(|c| Some((w.channel_ids.get(&c.idx).copied()?, c.last_id?)))
                .collect();
            let first = if channels.is_empty() {
                r#"{"type":"ping"}"#.to_string()
            } else {
                serde_json::to_string(&ClientFrame::Resume { channels }).expect("frame")
            };
            if fresh.send(WsMessage::text(first)).await.is_err() {
                continue;
            }
            let mut ok = true;
            for (cmid, (ch, body)) in &self.unacked {
                if fresh
                    .send(WsMessage::text(send_frame(*ch, cmid, body)))
                    .await
                    .is_err()
                {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            {
                let mut s = w.stats.borrow_mut();
                s.c.reconnects += 1;
                s.c.resent += self.unacked.len() as u64;
            }
            *ws = fresh;
            return true;
        }
    }
}

fn send_frame(channel: ChannelId, cmid: &str, body: &str) -> String {
    serde_json::to_string(&ClientFrame::Send {
        channel_id: channel,
        client_msg_id: cmid.to_string(),
        body: body.to_string(),
    })
    .expect("frames serialise")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chan() -> ChanState {
        ChanState {
            idx: 0,
            id: String::new(),
            base: None,
            bits: Vec::new(),
            max: 0,
            below: BTreeSet::new(),
            distinct_run: 0,
            duplicated: 0,
            reordered: 0,
            last_id: None,
        }
    }

    #[test]
    fn positions_in_order_are_clean() {
        let mut c = chan();
        for s in 10..200 {
            assert!(matches!(c.observe(s), Seen::New));
        }
        assert_eq!((c.holes(), c.duplicated, c.reordered), (0, 0, 0));
    }

    #[test]
    fn duplicates_holes_and_reordering_are_counted() {
        let mut c = chan();
        for s in [5, 6, 8, 7, 7, 9, 12, 4, 4] {
            c.observe(s);
        }
        assert_eq!(c.duplicated, 2, "7 and 4 twice");
        assert_eq!(c.reordered, 2, "7 after 8, 4 after everything");
        assert_eq!(c.holes(), 2, "10 and 11 never came");
    }

    #[test]
    fn bodies_carry_sender_and_time() {
        assert_eq!(
            parse_body("run1 17 123456 xxxx", "run1"),
            Some((17, 123456, "xxxx"))
        );
        assert_eq!(parse_body("other 17 123456 xxxx", "run1"), None);
        assert_eq!(parse_body("run1 x", "run1"), None);
    }

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
