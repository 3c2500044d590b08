//! `floor`: what one delivery costs this machine with nothing of ours in the path. A bare
//! tokio-tungstenite broadcast server (a child process: `chat-bench floor-server`) writes one
//! message frame, shaped and sized like a gateway's, to every connection at a fixed rate, through
//! an nginx of its own with the stack's `/ws` proxy settings (or directly), to a client as
//! plain as chat-bench's: one current-thread runtime, one task per connection, each frame parsed
//! and checked by `seq`. CPU per delivery of server, nginx and client is the floor that the
//! `fanout` scenario's gateway + nginx + client numbers compare with (issue 14's goal of 6 µs).
//!
//! With `--members K` the pattern is `groups`' instead: channels of K connections, every
//! connection sends (`--rates` messages a second in all, round robin), and the server, a bare
//! relay, acks each send with the message and writes it to every member of the sender's channel
//! (sender included), as a gateway does with its pushes. That is the socket work of a groups
//! message through nginx with no Kafka, storage or lookups: what the groups ceiling compares with.
//!
//! Exits non-zero if a frame was lost, duplicated or unreadable, a send was not acked, or nothing
//! was delivered.

use super::shared::envelope;
use crate::Common;
use crate::procs;
use crate::report;
use crate::stats;
use anyhow::{Context, bail};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Args, Clone, Debug)]
pub struct FloorArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections, all subscribed to the one broadcast.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Frames per second to every connection, one measured step each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "10,20")]
    pub rates: Vec<f64>,
    /// Seconds measured per rate (after a 3 s warm-up).
    #[arg(long, default_value_t = 15.0)]
    pub step_secs: f64,
    /// Message body size in bytes (as `fanout`'s; the frame around it is a gateway's).
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Connect straight to the server instead of through nginx.
    #[arg(long)]
    pub direct: bool,
    /// Loopback ports of the server and of its nginx.
    #[arg(long, default_value_t = 18991)]
    pub server_port: u16,
    #[arg(long, default_value_t = 18992)]
    pub nginx_port: u16,
    /// The nginx binary (its own instance, in a temporary folder).
    #[arg(long, default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    /// Channels of this many connections that all send, relayed by the server (the `groups`
    /// pattern; `--rates` is then messages a second in all). 0: one broadcast to every connection.
    #[arg(long, default_value_t = 0)]
    pub members: usize,
}

#[derive(Args, Clone, Debug)]
pub struct FloorServerArgs {
    /// Where to listen.
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Relay each connection's sends to its channel instead of broadcasting on a timer.
    #[arg(long)]
    pub relay: bool,
}

/// What the server's frames carry that the client reads (the rest is the gateway's shape).
#[derive(Deserialize)]
struct FrameView {
    /// `message`, or in the relay's pattern also `ack`.
    #[serde(rename = "type")]
    kind: String,
    message: MessageView,
}

#[derive(Deserialize)]
struct MessageView {
    seq: i64,
    /// `<send time in ns since the epoch>:<padding>`, like the bench's message bodies.
    body: String,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One `message` frame as a gateway writes it (the fields of fixtures/wire' message frame).
fn message_frame(seq: i64, body_bytes: usize) -> String {
    let mut body = format!("{}:", now_ns());
    while body.len() < body_bytes {
        body.push('x');
    }
    serde_json::json!({
        "type": "message",
        "message": {
            "body": body,
            "channel_id": "0190a2b4-0000-7000-8000-000000000001",
            "client_msg_id": "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c12",
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "id": uuid::Uuid::new_v4(),
            "sender_id": "0190a2b4-0000-7000-8000-000000000b0b",
            "seq": seq,
        }
    })
    .to_string()
}

/// The server: every connection gets every broadcast frame. Its stdin carries the rate
/// (frames per second, one line each; 0 pauses); it ends when stdin closes. Each connection is
/// a task that waits for the next frame, writes everything queued and flushes once, as the
/// gateway's writer does; the frame is made once and shared.
pub async fn floor_server(a: FloorServerArgs) -> anyhow::Result<bool> {
    let listener = TcpListener::bind(a.listen).await?;
    if a.relay {
        tokio::spawn(relay_accept(listener));
        // Nothing runs on a timer: it lives until its stdin closes.
        tokio::task::spawn_blocking(|| std::io::stdin().lines().map_while(Result::ok).count())
            .await?;
        return Ok(true);
    }
    let (tx, _) = tokio::sync::broadcast::channel::<Utf8Bytes>(1024);
    let accept_tx = tx.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let mut rx = accept_tx.subscribe();
            tokio::spawn(async move {
                // The gateway's buffer sizes (chat-gateway's `read_buffer_bytes`, `write_buffer_bytes`).
                let config = WebSocketConfig::default()
                    .read_buffer_size(1024)
                    .write_buffer_size(16 * 1024);
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                // Read (and drop) whatever the client sends, so pings and closes are handled.
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                while let Ok(f) = rx.recv().await {
                    if !write_queued(&mut sink, f, || rx.try_recv().ok()).await {
                        return;
                    }
                }
            });
        }
    });
    let (rate_tx, rate_rx) = tokio::sync::watch::channel(0.0f64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if let Ok(r) = line.trim().parse::<f64>() {
                let _ = rate_tx.send(r);
            }
        }
    });
    let mut seq = 0i64;
    at_rate(rate_rx, || {
        seq += 1;
        let _ = tx.send(message_frame(seq, a.body_bytes).into());
    })
    .await;
    Ok(true)
}

/// Call `tick` as often a second as `rate` says (0 pauses), until its sender is gone: the
/// broadcast server's frames, the relay client's sends.
async fn at_rate(mut rate: tokio::sync::watch::Receiver<f64>, mut tick: impl FnMut()) {
    loop {
        let r = *rate.borrow_and_update();
        if r <= 0.0 {
            if rate.changed().await.is_err() {
                return;
            }
            continue;
        }
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                _ = interval.tick() => tick(),
                changed = rate.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Write `first` and whatever else is queued, then flush once, as the gateway's writer does.
/// False once the connection is gone.
async fn write_queued<S>(
    sink: &mut S,
    first: Utf8Bytes,
    mut queued: impl FnMut() -> Option<Utf8Bytes>,
) -> bool
where
    S: futures::Sink<WsMessage> + Unpin,
{
    if sink.feed(WsMessage::Text(first)).await.is_err() {
        return false;
    }
    while let Some(f) = queued() {
        if sink.feed(WsMessage::Text(f)).await.is_err() {
            return false;
        }
    }
    sink.flush().await.is_ok()
}

/// One channel of the relay: its last position and its members' write queues.
#[derive(Default)]
struct RelayChannel {
    seq: i64,
    members: Vec<tokio::sync::mpsc::UnboundedSender<Utf8Bytes>>,
}

/// A `send` frame as the client writes it (fixtures/wire/ws_client_send.json).
#[derive(Deserialize)]
struct SendView {
    client_msg_id: String,
    body: String,
}

/// The message as a gateway's `message` and `ack` frames carry it.
#[derive(Serialize)]
struct RelayedMessage<'a> {
    body: &'a str,
    channel_id: uuid::Uuid,
    client_msg_id: &'a str,
    created_at: String,
    id: uuid::Uuid,
    sender_id: uuid::Uuid,
    seq: i64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RelayFrame<'a> {
    Message {
        message: &'a RelayedMessage<'a>,
    },
    Ack {
        client_msg_id: &'a str,
        message: &'a RelayedMessage<'a>,
    },
}

/// The relay's connections: `/ws?c=<channel>&u=<user>` (numbers) says where each belongs.
/// A connection's reader relays each send under the channels' lock, so every member's queue
/// gets a channel's messages in position order; a writer task per connection drains its queue
/// and flushes once, as the gateway's writer does.
async fn relay_accept(listener: TcpListener) {
    let channels = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        u32,
        RelayChannel,
    >::new()));
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let channels = channels.clone();
        tokio::spawn(async move {
            let config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(16 * 1024);
            let mut query = String::new();
            // The error type is tungstenite's (`Callback`), not ours to shrink.
            #[allow(clippy::result_large_err)]
            let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                            resp| {
                query = req.uri().query().unwrap_or_default().to_owned();
                Ok(resp)
            };
            let Ok(ws) =
                tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
                    .await
            else {
                return;
            };
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u32>().ok())
            };
            let (Some(channel), Some(user)) = (param("c"), param("u")) else {
                return;
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Utf8Bytes>();
            channels
                .lock()
                .expect("relay lock")
                .entry(channel)
                .or_default()
                .members
                .push(tx.clone());
            let (mut sink, mut stream) = ws.split();
            tokio::spawn(async move {
                while let Some(f) = rx.recv().await {
                    if !write_queued(&mut sink, f, || rx.try_recv().ok()).await {
                        return;
                    }
                }
            });
            let channel_id = uuid::Uuid::from_u128(u128::from(channel) + 1);
            let sender_id = uuid::Uuid::from_u128((1 << 64) + u128::from(user));
            while let Some(Ok(m)) = stream.next().await {
                let WsMessage::Text(t) = m else { continue };
                let Ok(send) = serde_json::from_str::<SendView>(&t) else {
                    continue;
                };
                let mut all = channels.lock().expect("relay lock");
                let ch = all.entry(channel).or_default();
                ch.seq += 1;
                let message = RelayedMessage {
                    body: &send.body,
                    channel_id,
                    client_msg_id: &send.client_msg_id,
                    created_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    id: uuid::Uuid::new_v4(),
                    sender_id,
                    seq: ch.seq,
                };
                let json = |f: &RelayFrame| serde_json::to_string(f).expect("frames serialise");
                let _ = tx.send(
                    json(&RelayFrame::Ack {
                        client_msg_id: &send.client_msg_id,
                        message: &message,
                    })
                    .into(),
                );
                let frame = Utf8Bytes::from(json(&RelayFrame::Message { message: &message }));
                ch.members.retain(|m| m.send(frame.clone()).is_ok());
            }
        });
    }
}

/// Counts of the client side, shared by the connection tasks of its one thread; a copy of them
/// (with the latencies since the copy before) is what the measuring side reads.
#[derive(Default)]
struct ClientStats {
    connected: usize,
    delivered: u64,
    lost: u64,
    duplicated: u64,
    unparsable: u64,
    /// Connections the server ended (a lagging receiver is dropped by its broadcast channel).
    closed: u64,
    /// Sends written and acks read (the relay's pattern).
    sent: u64,
    acked: u64,
    latency: Option<hdrhistogram::Histogram<u64>>,
    ack_latency: Option<hdrhistogram::Histogram<u64>>,
}

#[derive(Serialize)]
struct Step {
    rate: f64,
    deliveries: u64,
    deliveries_per_sec: f64,
    latency_ms: stats::Summary,
    /// The relay's pattern: messages sent a second, and send to ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack_latency_ms: Option<stats::Summary>,
    cpu: procs::CpuReport,
    /// CPU µs per delivery: server, nginx, client, and the three together.
    us_per_delivery: BTreeMap<String, f64>,
}

pub async fn floor(a: FloorArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let server_addr = SocketAddr::from(([127, 0, 0, 1], a.server_port));
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], a.nginx_port));
    let exe = std::env::current_exe()?;
    let mut server = Command::new(&exe)
        .args(["floor-server", "--listen", &server_addr.to_string()])
        .args(["--body-bytes", &a.body_bytes.to_string()])
        .args((a.members > 0).then_some("--relay"))
        .stdin(Stdio::piped())
        .spawn()
        .context("starting the floor server")?;
    let mut server_in = server.stdin.take().context("server stdin")?;
    let dir = std::env::temp_dir().join(format!("chat-bench-floor-{}", std::process::id()));
    let mut nginx = if a.direct {
        None
    } else {
        Some(start_nginx(&a.nginx, &dir, nginx_addr, server_addr)?)
    };
    let target = if a.direct { server_addr } else { nginx_addr };
    let result = measure(&a, target, &server, nginx.as_ref(), &mut server_in).await;
    drop(server_in);
    let _ = server.kill();
    let _ = server.wait();
    if let Some(n) = nginx.as_mut() {
        // `-s stop` (SIGTERM to the master, which ends its workers): a SIGKILL would leave
        // the workers running, holding the port.
        let _ = Command::new(&a.nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status();
        let _ = n.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (steps, ok) = result?;
    let name = c.name.clone().unwrap_or_else(|| "floor".into());
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope(
            "floor",
            serde_json::json!({
                "connections": a.connections, "rates": a.rates, "step_secs": a.step_secs,
                "body_bytes": a.body_bytes, "through_nginx": !a.direct,
                "members": a.members,
            }),
            &BTreeMap::new(),
            &steps,
        ),
    )?;
    println!("results: {}", json.display());
    if !ok {
        println!("floor: a frame was lost, duplicated or unreadable, or nothing was delivered");
    }
    Ok(ok)
}

fn start_nginx(
    bin: &Path,
    dir: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir.join("tmp"))?;
    let d = dir.display();
    // The stack's /ws settings (deploy/nginx/native.conf.template and routes.conf) minus the
    // logging and limits that cost nothing per frame.
    let conf = format!(
        r#"worker_processes 2;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 19900; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream floor {{ server {upstream}; }}
    server {{
        listen {listen} reuseport;
        location = /ws {{
            proxy_pass http://floor;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
            proxy_buffering off;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    Command::new(bin)
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// A `send` frame as chat-bench writes one, its body `<now in ns>:` padded to `body_bytes`.
fn send_frame(channel_id: uuid::Uuid, body_bytes: usize) -> String {
    let mut body = format!("{}:", now_ns());
    while body.len() < body_bytes {
        body.push('x');
    }
    format!(
        r#"{{"body":"{body}","channel_id":"{channel_id}","client_msg_id":"{}","type":"send"}}"#,
        uuid::Uuid::new_v4()
    )
}

/// The relay's sender side: at the rate `rate` says (messages a second in all; 0 pauses), each
/// tick asks the next connection, round robin, to send one message.
async fn pace(
    rate: tokio::sync::watch::Receiver<f64>,
    senders: Vec<tokio::sync::mpsc::Sender<()>>,
) {
    if senders.is_empty() {
        return;
    }
    let mut next = 0usize;
    at_rate(rate, || {
        let _ = senders[next % senders.len()].try_send(());
        next += 1;
    })
    .await;
}

async fn measure(
    a: &FloorArgs,
    target: SocketAddr,
    server: &Child,
    nginx: Option<&Child>,
    server_in: &mut std::process::ChildStdin,
) -> anyhow::Result<(Vec<Step>, bool)> {
    use std::io::Write;
    // Let the server and nginx bind.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(target).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {target}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let n = a.connections;
    let (members, body_bytes) = (a.members, a.body_bytes);
    let relay = members > 0;
    // The relay's sends a second, in all (the pacer picks the senders round robin).
    let (pace_tx, pace_rx) = tokio::sync::watch::channel(0.0f64);
    // The client: one thread, one current-thread runtime, a task per connection (chat-bench's
    // worker layout). Its stats stay on that thread; the measuring side asks through channels.
    let (ask_tx, mut ask_rx) =
        tokio::sync::mpsc::unbounded_channel::<std::sync::mpsc::Sender<ClientStats>>();
    let client = std::thread::Builder::new()
        .name("floor-client".into())
        .spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let st = Rc::new(RefCell::new(ClientStats {
                    latency: Some(stats::hist(3)),
                    ack_latency: Some(stats::hist(3)),
                    ..Default::default()
                }));
                let mut senders = Vec::with_capacity(n);
                for i in 0..n {
                    let st = st.clone();
                    let mut stop = stop_rx.clone();
                    let (send_tx, mut send_rx) = tokio::sync::mpsc::channel::<()>(64);
                    senders.push(send_tx);
                    tokio::task::spawn_local(async move {
                        let sock = TcpSocket::new_v4()?;
                        // Source addresses 127.0.0.2.. as the bench's fleet spreads them.
                        sock.bind(SocketAddr::new([127, 0, 0, 2 + (i % 8) as u8].into(), 0))?;
                        let stream = sock.connect(target).await?;
                        stream.set_nodelay(true)?;
                        let channel = if relay { i / members } else { 0 };
                        let url = if relay {
                            format!("ws://{target}/ws?c={channel}&u={i}")
                        } else {
                            format!("ws://{target}/ws")
                        };
                        let channel_id = uuid::Uuid::from_u128(channel as u128 + 1);
                        // chat-bench's worker settings (worker/mod.rs).
                        let config = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0);
                        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
                        st.borrow_mut().connected += 1;
                        let mut last = 0i64;
                        // One wait for the stop, made once (not a new one per frame).
                        let stopped = stop.changed();
                        tokio::pin!(stopped);
                        loop {
                            tokio::select! {
                                m = ws.next() => {
                                    let Some(Ok(m)) = m else {
                                        st.borrow_mut().closed += 1;
                                        break;
                                    };
                                    let WsMessage::Text(t) = m else { continue };
                                    let now = now_ns();
                                    let mut s = st.borrow_mut();
                                    let Ok(f) = serde_json::from_str::<FrameView>(&t) else {
                                        s.unparsable += 1;
                                        continue;
                                    };
                                    let sent = f.message.body.split(':').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(now);
                                    let took = now.saturating_sub(sent) / 1000;
                                    if f.kind == "ack" {
                                        s.acked += 1;
                                        if let Some(h) = s.ack_latency.as_mut() {
                                            stats::record(h, took);
                                        }
                                        continue;
                                    }
                                    s.delivered += 1;
                                    let seq = f.message.seq;
                                    if last != 0 && seq > last + 1 {
                                        s.lost += (seq - last - 1) as u64;
                                    } else if seq <= last {
                                        s.duplicated += 1;
                                    }
                                    last = last.max(seq);
                                    if let Some(h) = s.latency.as_mut() {
                                        stats::record(h, took);
                                    }
                                }
                                Some(()) = send_rx.recv() => {
                                    let frame = send_frame(channel_id, body_bytes);
                                    if ws.send(WsMessage::Text(frame.into())).await.is_err() {
                                        st.borrow_mut().closed += 1;
                                        break;
                                    }
                                    st.borrow_mut().sent += 1;
                                }
                                _ = &mut stopped => break,
                            }
                        }
                        let _ = ws.close(None).await;
                        anyhow::Ok(())
                    });
                }
                tokio::task::spawn_local(pace(pace_rx, senders));
                while let Some(reply) = ask_rx.recv().await {
                    let mut s = st.borrow_mut();
                    let latency = s.latency.replace(stats::hist(3));
                    let ack_latency = s.ack_latency.replace(stats::hist(3));
                    let _ = reply.send(ClientStats { latency, ack_latency, ..*s });
                }
            });
            Ok(())
        })?;
    let ask = || -> anyhow::Result<ClientStats> {
        let (tx, rx) = std::sync::mpsc::channel();
        ask_tx
            .send(tx)
            .map_err(|_| anyhow::anyhow!("client thread ended"))?;
        Ok(rx.recv()?)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = ask()?.connected;
        if connected == n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {n} connections opened");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "floor: {n} connections {}; frames of a {}-byte body",
        if a.direct {
            "straight to the server"
        } else {
            "through nginx"
        },
        a.body_bytes
    );
    let mut roots = BTreeMap::new();
    roots.insert("server".to_string(), server.id());
    if let Some(n) = nginx {
        roots.insert("nginx".to_string(), n.id());
    }
    let mut steps = Vec::new();
    let mut ok = true;
    println!(
        "     rate  deliv/s   p50 ms   p99 ms   max ms   server µs  nginx µs  client µs  total µs  machine"
    );
    // The rate goes to the server (broadcast) or to the client's pacer (relay).
    let mut set_rate = |rate: f64| -> anyhow::Result<()> {
        if relay {
            pace_tx.send(rate)?;
        } else {
            writeln!(server_in, "{rate}")?;
        }
        Ok(())
    };
    for &rate in &a.rates {
        set_rate(rate)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r0 = ask()?;
        let s0 = procs::cpu_snapshot(&roots);
        tokio::time::sleep(Duration::from_secs_f64(a.step_secs)).await;
        let s1 = procs::cpu_snapshot(&roots);
        let r = ask()?;
        let (lost, duplicated, unparsable, h) = (r.lost, r.duplicated, r.unparsable, r.latency);
        let deliveries = r.delivered - r0.delivered;
        let messages = r.sent - r0.sent;
        ok &= deliveries > 0 && lost + duplicated + unparsable + r.closed == 0;
        let mut cpu = procs::cpu_between(&s0, &s1, deliveries, "deliveries");
        // chat-bench's own tree holds the server and nginx: the client is the rest.
        let of = |name: &str| {
            cpu.processes
                .iter()
                .find(|p| p.process == name)
                .map_or(0.0, |p| p.cpu_seconds)
        };
        let client_cpu = of(procs::SELF) - of("server") - of("nginx");
        for p in cpu
            .processes
            .iter_mut()
            .filter(|p| p.process == procs::SELF)
        {
            p.process = "client".into();
            p.cpu_seconds = client_cpu;
            p.core_percent = 100.0 * client_cpu / cpu.window_seconds;
            p.ms_per_1000 = Some(1e6 * client_cpu / deliveries.max(1) as f64);
        }
        let us = |name: &str| {
            1e6 * cpu
                .processes
                .iter()
                .find(|p| p.process == name)
                .map_or(0.0, |p| p.cpu_seconds)
                / deliveries.max(1) as f64
        };
        let mut per = BTreeMap::new();
        for name in ["server", "nginx", "client"] {
            per.insert(name.to_string(), us(name));
        }
        per.insert("total".to_string(), per.values().sum());
        let latency = stats::Summary::of(&h.unwrap_or_else(|| stats::hist(3)));
        println!(
            "{rate:>9} {:>8.0} {:>8} {:>8} {:>8} {:>11.1} {:>9.1} {:>10.1} {:>9.1}  {:.0}%",
            deliveries as f64 / cpu.window_seconds,
            stats::fmt_ms(latency.p50_ms),
            stats::fmt_ms(latency.p99_ms),
            stats::fmt_ms(latency.max_ms),
            per["server"],
            per["nginx"],
            per["client"],
            per["total"],
            cpu.machine_busy_percent,
        );
        let ack_latency = relay.then(|| {
            let acks = stats::Summary::of(&r.ack_latency.unwrap_or_else(|| stats::hist(3)));
            println!(
                "  {:.0} messages/s sent, ack p50 {} / p99 {} ms, {:.1} µs per message",
                messages as f64 / cpu.window_seconds,
                stats::fmt_ms(acks.p50_ms),
                stats::fmt_ms(acks.p99_ms),
                per["total"] * deliveries as f64 / messages.max(1) as f64,
            );
            acks
        });
        if lost + duplicated + unparsable + r.closed > 0 {
            println!(
                "  lost {lost} duplicated {duplicated} unparsable {unparsable}; {} connections ended",
                r.closed
            );
        }
        set_rate(0.0)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        steps.push(Step {
            rate,
            deliveries,
            deliveries_per_sec: deliveries as f64 / cpu.window_seconds,
            latency_ms: latency,
            messages_per_sec: relay.then(|| messages as f64 / cpu.window_seconds),
            ack_latency_ms: ack_latency,
            cpu,
            us_per_delivery: per,
        });
    }
    if relay {
        // Every send acked and delivered to each member of its channel (when all channels are
        // full), once what is in flight has arrived.
        let whole = n.is_multiple_of(members);
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            let r = ask()?;
            let arrived = r.acked == r.sent && (!whole || r.delivered == r.sent * members as u64);
            if arrived || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if r.acked != r.sent || (whole && r.delivered != r.sent * members as u64) {
            ok = false;
            println!(
                "  {} sent, {} acked, {} delivered (expected {} per message)",
                r.sent, r.acked, r.delivered, members
            );
        }
    }
    let _ = stop_tx.send(true);
    drop(ask_tx);
    let _ = client.join();
    Ok((steps, ok))
}
