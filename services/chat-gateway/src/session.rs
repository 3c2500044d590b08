//! One WebSocket connection: authentication at the upgrade, then a reader (client frames) and a
//! writer (everything sent to the client, in order) that end together.

use crate::Shared;
use crate::hub::{ConnHandle, Outbound};
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_store::pg::Access;
use chat_store::presence::MemberClaim;
use chat_types::bus::{BusRecord, MembershipChange, MessageRecord};
use chat_types::ws::{ClientFrame, ServerFrame, close, error_code};
use chat_types::{ChannelId, ErrorBody, Message, MessageId, UserId, limits};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Catch-up and gap-fill read this many messages per history query.
const HISTORY_PAGE: i64 = 100;

pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = bearer.or_else(|| query.get("token").cloned()) else {
        return unauthorized(
            "missing_token",
            "an access token is required (Authorization header or ?token=)",
        );
    };
    let user = match shared.keys.verify_access(&token) {
        Ok(u) => u,
        Err(chat_common::auth::TokenError::Expired) => {
            return unauthorized("token_expired", "the access token has expired");
        }
        Err(chat_common::auth::TokenError::Invalid) => {
            return unauthorized("invalid_token", "the access token is invalid");
        }
    };
    if shared.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ErrorBody::new(
                "unavailable",
                "this gateway is shutting down",
            )),
        )
            .into_response();
    }
    let cfg = &shared.cfg;
    ws.read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.write_buffer_bytes)
        .max_write_buffer_size(cfg.write_buffer_bytes.max(cfg.max_frame_bytes) * 4)
        .max_message_size(cfg.max_frame_bytes)
        .max_frame_size(cfg.max_frame_bytes)
        .on_upgrade(move |socket| run(shared, user, socket))
}

fn unauthorized(code: &str, message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(ErrorBody::new(code, message)),
    )
        .into_response()
}

fn frame(f: &ServerFrame) -> String {
    serde_json::to_string(f).expect("frames serialise")
}

fn error_frame(code: &str, message: impl Into<String>, client_msg_id: Option<String>) -> Outbound {
    Outbound::Frame(frame(&ServerFrame::Error {
        code: code.into(),
        message: message.into(),
        client_msg_id,
    }))
}

#[tracing::instrument(name = "connection", skip_all, fields(user_id = %user, conn_id))]
async fn run(shared: Arc<Shared>, user: UserId, socket: WebSocket) {
    let _in_flight = shared.tasks.token();
    let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    tracing::Span::current().record("conn_id", id);
    let (tx, rx) = mpsc::channel(shared.cfg.queue_capacity);
    let handle = ConnHandle {
        id,
        tx: tx.clone(),
        kill: shared.shutdown.child_token(),
        kill_code: Arc::new(AtomicU16::new(close::GOING_AWAY)),
    };
    // Register before `ready`: from here on, every message pushed for this user reaches this
    // connection, and everything before it is in history (message servers store, then push).
    if shared.hub.add(user, handle.clone())
        && let Err(e) = shared
            .presence
            .register(&shared.cfg.internal_url, &[user])
            .await
    {
        tracing::warn!(error = %e, "presence registration failed; the heartbeat will retry");
    }
    let connection_id = format!("{}:{}", shared.cfg.id, id);
    let _ = tx
        .send(Outbound::Frame(frame(&ServerFrame::Ready {
            user_id: user,
            connection_id,
        })))
        .await;

    let (sink, stream) = socket.split();
    let writer = Writer {
        shared: shared.clone(),
        last: HashMap::new(),
        holding: true,
        resume_pending: false,
        held: VecDeque::new(),
    };
    let kill = handle.kill.clone();
    let w = async {
        writer.run(sink, rx, &handle).await;
        kill.cancel();
    };
    let r = async {
        read_loop(&shared, user, stream, &handle, tx).await;
        kill.cancel();
    };
    tokio::join!(w, r);

    if shared.hub.remove(user, id)
        && let Err(e) = shared
            .presence
            .unregister(&shared.cfg.internal_url, &[user])
            .await
    {
        tracing::debug!(error = %e, "presence removal failed; the entry will lapse");
    }
}

// ------------------------------------------------------------------------------------ reader

async fn read_loop(
    shared: &Arc<Shared>,
    user: UserId,
    mut stream: SplitStream<WebSocket>,
    handle: &ConnHandle,
    tx: mpsc::Sender<Outbound>,
) {
    let idle = Duration::from_secs(shared.cfg.idle_timeout_secs);
    let mut deadline = Instant::now() + idle;
    let mut first = true;
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = handle.kill.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {
                handle.kill_code.store(close::IDLE_TIMEOUT, Ordering::Relaxed);
                return;
            }
        };
        let Some(Ok(msg)) = msg else { return };
        deadline = Instant::now() + idle;
        match msg {
            WsMessage::Text(text) => {
                let parsed = serde_json::from_str::<ClientFrame>(text.as_str());
                if first {
                    first = false;
                    // Tell the writer before any lookup: the hold must not time out while the
                    // resume is being prepared, or live messages would overtake the catch-up.
                    let next = if matches!(parsed, Ok(ClientFrame::Resume { .. })) {
                        Outbound::ResumePending
                    } else {
                        Outbound::GoLive
                    };
                    let _ = tx.send(next).await;
                }
                match parsed {
                    Ok(f) => handle_frame(shared, user, f, &tx, handle).await,
                    Err(e) => {
                        let _ = tx.send(malformed(text.as_str(), &e)).await;
                    }
                }
            }
            WsMessage::Binary(_) => {
                let _ = tx
                    .send(error_frame(
                        error_code::MALFORMED_FRAME,
                        "binary frames are not supported; send JSON text frames",
                        None,
                    ))
                    .await;
            }
            WsMessage::Close(_) => return,
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
        }
    }
}

/// An `error` frame for input that is not a valid client frame, naming the `client_msg_id`
/// when one can be found so the client knows which send failed.
fn malformed(text: &str, e: &serde_json::Error) -> Outbound {
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let cmid = value
        .as_ref()
        .and_then(|v| v.get("client_msg_id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let message = match value {
        None => format!("not valid JSON: {e}"),
        Some(_) => format!("not a valid frame: {e}"),
    };
    error_frame(error_code::MALFORMED_FRAME, message, cmid)
}

async fn handle_frame(
    shared: &Arc<Shared>,
    user: UserId,
    f: ClientFrame,
    tx: &mpsc::Sender<Outbound>,
    handle: &ConnHandle,
) {
    match f {
        ClientFrame::Ping => {
            let _ = tx.send(Outbound::Frame(frame(&ServerFrame::Pong))).await;
        }
        ClientFrame::Send {
            channel_id,
            client_msg_id,
            body,
        } => {
            // Boxed (here and below): these futures hold database and Redis calls and are
            // several KiB; inline, every idle connection's task would carry that space.
            if let Err(out) =
                Box::pin(send(shared, user, channel_id, client_msg_id, body, tx)).await
            {
                let _ = tx.send(out).await;
            }
        }
        ClientFrame::Resume { channels } => {
            let out = Box::pin(resume(shared, user, channels, tx, handle)).await;
            let _ = tx.send(out).await;
        }
    }
}

async fn send(
    shared: &Arc<Shared>,
    user: UserId,
    channel: ChannelId,
    client_msg_id: String,
    body: String,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), Outbound> {
    let cmid_len = client_msg_id.chars().count();
    if cmid_len == 0 || cmid_len > limits::CLIENT_MSG_ID_MAX {
        return Err(error_frame(
            error_code::INVALID_CLIENT_MSG_ID,
            format!(
                "client_msg_id must be 1 to {} characters",
                limits::CLIENT_MSG_ID_MAX
            ),
            Some(client_msg_id),
        ));
    }
    if !limits::valid_body(&body) {
        return Err(error_frame(
            error_code::INVALID_BODY,
            format!(
                "body must be 1 to {} characters and not only white space",
                limits::BODY_MAX_CHARS
            ),
            Some(client_msg_id),
        ));
    }
    // Millisecond precision: what CQL `timestamp` stores, so the ack equals the stored message.
    let now = chrono::Utc::now();
    let created_at = chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let mut record = MessageRecord {
        id: MessageId::derive(user, &client_msg_id),
        channel_id: channel,
        sender_id: user,
        body,
        client_msg_id,
        created_at,
    };
    // A resend: the first send's body, channel and time are the message.
    if let Some(first) = claim_as_member(shared, &record).await? {
        record = first;
    }
    let cmid = record.client_msg_id.clone();
    let delivery = match chat_store::bus::enqueue(
        &shared.producer,
        &shared.topic,
        &BusRecord::Message(record.clone()),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "kafka enqueue failed");
            return Err(error_frame(
                error_code::UNAVAILABLE,
                "the message could not be accepted right now; resend it with the same client_msg_id",
                Some(cmid),
            ));
        }
    };
    // Ack only once Kafka has the record; meanwhile keep reading this client's frames.
    let tx = tx.clone();
    shared.tasks.spawn(async move {
        let out = match delivery.await {
            Ok(Ok(_)) => {
                metrics::counter!("chat_sends_acked_total").increment(1);
                Outbound::Frame(frame(&ServerFrame::Ack {
                    client_msg_id: record.client_msg_id.clone(),
                    message: Message {
                        id: record.id,
                        channel_id: record.channel_id,
                        sender_id: record.sender_id,
                        body: record.body,
                        client_msg_id: record.client_msg_id,
                        created_at: record.created_at,
                        seq: None,
                    },
                }))
            }
            other => {
                tracing::error!(error = ?other.err(), "kafka did not take the record");
                error_frame(
                    error_code::UNAVAILABLE,
                    "the message could not be accepted right now; resend it with the same client_msg_id",
                    Some(cmid),
                )
            }
        };
        let _ = tx.send(out).await;
    });
    Ok(())
}

/// Make sure the sender is a member of the channel, then take the send claim (Redis), which
/// tells a resend from a first send. Usually one Redis call: the membership confirmed earlier
/// is still good if the user's membership epoch has not moved (no leave since). Otherwise
/// PostgreSQL decides, and the answer is cached under the epoch read before asking it.
async fn claim_as_member(
    shared: &Arc<Shared>,
    record: &MessageRecord,
) -> Result<Option<MessageRecord>, Outbound> {
    let (user, channel) = (record.sender_id, record.channel_id);
    let max_age = Duration::from_secs(shared.cfg.membership_cache_secs);
    let mut epoch = None;
    if let Some(cached) = shared.hub.member_epoch(user, channel, max_age) {
        match shared.presence.claim_send_as_member(record, &cached).await {
            Ok(MemberClaim::Claimed(first)) => return Ok(first),
            Ok(MemberClaim::Stale(current)) => {
                shared.hub.forget_member(user, None);
                epoch = Some(current);
            }
            Err(e) => tracing::warn!(error = %e, "send claim failed; asking PostgreSQL"),
        }
    }
    let epoch = match epoch {
        Some(e) => Some(e),
        None => shared.presence.member_epoch(user).await.ok(),
    };
    check_member(shared, user, channel, &record.client_msg_id).await?;
    if let Some(epoch) = epoch {
        shared.hub.remember_member(user, channel, epoch);
    }
    match shared.presence.claim_send(record).await {
        Ok(first) => Ok(first),
        // Without the claim the message id still deduplicates in the store; only a resend's
        // ack could then carry a newer time.
        Err(e) => {
            tracing::warn!(error = %e, "send claim failed; continuing without it");
            Ok(None)
        }
    }
}

/// The authoritative membership check (PostgreSQL).
async fn check_member(
    shared: &Arc<Shared>,
    user: UserId,
    channel: ChannelId,
    client_msg_id: &str,
) -> Result<(), Outbound> {
    let (code, message) = match chat_store::pg::access(&shared.db, channel, user).await {
        Ok(Access::Member(_)) => return Ok(()),
        Ok(Access::NotMember(_)) => (
            error_code::NOT_A_MEMBER,
            "you are not a member of this channel",
        ),
        Ok(Access::NoSuchChannel) => (
            error_code::UNKNOWN_CHANNEL,
            "there is no channel with this id",
        ),
        Err(e) => {
            tracing::error!(error = %e, "membership check failed");
            (
                error_code::UNAVAILABLE,
                "the message could not be accepted right now; resend it with the same client_msg_id",
            )
        }
    };
    Err(error_frame(code, message, Some(client_msg_id.to_owned())))
}

/// Turn a `resume` into positions: only channels the user is a member of, only ids stored in
/// that channel. Problems are reported per channel; the rest is served.
async fn resume(
    shared: &Arc<Shared>,
    user: UserId,
    channels: std::collections::BTreeMap<ChannelId, MessageId>,
    tx: &mpsc::Sender<Outbound>,
    handle: &ConnHandle,
) -> Outbound {
    let ids: Vec<ChannelId> = channels.keys().copied().collect();
    let message_ids: Vec<MessageId> = channels.values().copied().collect();
    // A store that just came back (a restarted Cassandra) can fail the first requests on stale
    // connections: retry briefly. If it still fails, close with 1013 so the client resumes
    // again: going live without the catch-up would skip messages.
    let mut attempt = 0;
    let (members, placements) = loop {
        let (members, placements) = tokio::join!(
            chat_store::pg::member_channels(&shared.db, user, &ids),
            shared.store.placements(&message_ids),
        );
        match (members, placements) {
            (Ok(m), Ok(p)) => {
                break (
                    m.into_iter().collect::<HashSet<_>>(),
                    p.into_iter().collect::<HashMap<_, _>>(),
                );
            }
            (m, p) if attempt >= 3 => {
                tracing::error!(pg = ?m.err(), cql = ?p.err(), "resume lookup failed; closing so the client resumes again");
                handle
                    .kill_code
                    .store(close::TRY_AGAIN_LATER, Ordering::Relaxed);
                handle.kill.cancel();
                return Outbound::GoLive;
            }
            (m, p) => {
                tracing::warn!(pg = ?m.err(), cql = ?p.err(), attempt, "resume lookup failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    };
    let mut positions = Vec::with_capacity(channels.len());
    for (channel, last_seen) in channels {
        if !members.contains(&channel) {
            let _ = tx
                .send(error_frame(
                    error_code::NOT_A_MEMBER,
                    format!("not a member of channel {channel}; it was not resumed"),
                    None,
                ))
                .await;
            continue;
        }
        match placements.get(&last_seen) {
            Some(p) if p.channel_id == channel => positions.push((channel, p.seq)),
            _ => {
                let _ = tx
                    .send(error_frame(
                        error_code::UNKNOWN_MESSAGE,
                        format!("message {last_seen} is not a stored message of channel {channel}; it was not resumed"),
                        None,
                    ))
                    .await;
            }
        }
    }
    Outbound::Resume {
        channels: positions,
    }
}

// ------------------------------------------------------------------------------------ writer

type Sink = SplitSink<WebSocket, WsMessage>;
type SinkResult = Result<(), axum::Error>;

/// Owns the socket's sending half. Keeps, per channel, the last position this connection was
/// sent: anything at or below it is a replay and is dropped; anything past the next position
/// means a push was missed, and the gap is filled from history first.
struct Writer {
    shared: Arc<Shared>,
    last: HashMap<ChannelId, i64>,
    /// Live items are held until the client's first frame (or `resume_hold_ms`), so a `resume`
    /// sent right after `ready` is served before them.
    holding: bool,
    /// A `resume` is being prepared: the hold lasts until it is served, not a fixed time.
    resume_pending: bool,
    held: VecDeque<Outbound>,
}

impl Writer {
    async fn run(mut self, mut sink: Sink, mut rx: mpsc::Receiver<Outbound>, handle: &ConnHandle) {
        let mut ping =
            tokio::time::interval(Duration::from_secs(self.shared.cfg.ping_interval_secs));
        ping.tick().await;
        let hold_until = Instant::now() + Duration::from_millis(self.shared.cfg.resume_hold_ms);
        let result: SinkResult = async {
            loop {
                tokio::select! {
                    biased;
                    _ = handle.kill.cancelled() => break,
                    item = rx.recv() => {
                        let Some(item) = item else { break };
                        self.handle(item, &mut sink, handle).await?;
                        // Write whatever else is queued, then flush once.
                        while let Ok(item) = rx.try_recv() {
                            self.handle(item, &mut sink, handle).await?;
                        }
                        sink.flush().await?;
                    }
                    _ = tokio::time::sleep_until(hold_until), if self.holding && !self.resume_pending => {
                        self.release(&mut sink, handle).await?;
                        sink.flush().await?;
                    }
                    _ = ping.tick() => {
                        sink.send(WsMessage::Ping(Default::default())).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        if result.is_ok() {
            let code = if self.shared.shutdown.is_cancelled() {
                close::GOING_AWAY
            } else {
                handle.kill_code.load(Ordering::Relaxed)
            };
            let reason = match code {
                close::SLOW_CONSUMER => "too far behind: reconnect and resume",
                close::IDLE_TIMEOUT => "idle timeout",
                close::TRY_AGAIN_LATER => "history unavailable: reconnect and resume",
                _ => "gateway going away: reconnect and resume",
            };
            let _ = sink
                .send(WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                })))
                .await;
        }
    }

    async fn handle(&mut self, item: Outbound, sink: &mut Sink, handle: &ConnHandle) -> SinkResult {
        match item {
            Outbound::Live(_) | Outbound::Membership(_) if self.holding => {
                if self.held.len() >= self.shared.cfg.queue_capacity {
                    handle
                        .kill_code
                        .store(close::SLOW_CONSUMER, Ordering::Relaxed);
                    handle.kill.cancel();
                } else {
                    self.held.push_back(item);
                }
            }
            Outbound::Live(live) => {
                let (channel, seq) = (live.channel, live.seq);
                match self.last.get(&channel).copied() {
                    Some(last) if seq <= last => {
                        metrics::counter!("chat_replays_dropped_total").increment(1);
                        return Ok(());
                    }
                    Some(last) if seq > last + 1 => {
                        metrics::counter!("chat_gaps_filled_total").increment(1);
                        if !Box::pin(self.catch_up(channel, last, Some(seq - 1), sink, handle))
                            .await?
                        {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
                sink.feed(WsMessage::Text(live.frame.clone())).await?;
                self.last.insert(channel, seq);
            }
            Outbound::Membership(note) => match note.change {
                MembershipChange::Joined => {
                    self.last.entry(note.channel).or_insert(note.seq);
                }
                MembershipChange::Left => {
                    self.last.remove(&note.channel);
                }
            },
            Outbound::Frame(f) => sink.feed(WsMessage::Text(f.into())).await?,
            Outbound::Resume { channels } => {
                for (channel, after) in &channels {
                    let from = self
                        .last
                        .get(channel)
                        .copied()
                        .unwrap_or(*after)
                        .max(*after);
                    self.last.insert(*channel, from);
                    if !Box::pin(self.catch_up(*channel, from, None, sink, handle)).await? {
                        return Ok(());
                    }
                }
                let resumed = ServerFrame::Resumed {
                    channels: channels.iter().map(|(c, _)| *c).collect(),
                };
                sink.feed(WsMessage::Text(frame(&resumed).into())).await?;
                self.release(sink, handle).await?;
            }
            Outbound::ResumePending => self.resume_pending = true,
            Outbound::GoLive => self.release(sink, handle).await?,
            Outbound::Resync => {
                let known: Vec<(ChannelId, i64)> =
                    self.last.iter().map(|(c, s)| (*c, *s)).collect();
                for (channel, after) in known {
                    Box::pin(self.catch_up(channel, after, None, sink, handle)).await?;
                }
            }
        }
        Ok(())
    }

    async fn release(&mut self, sink: &mut Sink, handle: &ConnHandle) -> SinkResult {
        self.resume_pending = false;
        if !self.holding {
            return Ok(());
        }
        self.holding = false;
        while let Some(item) = self.held.pop_front() {
            Box::pin(self.handle(item, sink, handle)).await?;
        }
        Ok(())
    }

    /// Send the channel's messages after position `after` up to `until` (or the newest), in
    /// order, advancing `last`. Returns `false` if history could not be read: then the
    /// connection is closed with 1013 rather than sending anything past a gap, and the client
    /// resumes exactly where it was.
    async fn catch_up(
        &mut self,
        channel: ChannelId,
        mut after: i64,
        until: Option<i64>,
        sink: &mut Sink,
        handle: &ConnHandle,
    ) -> Result<bool, axum::Error> {
        loop {
            let limit = match until {
                Some(u) if u <= after => return Ok(true),
                Some(u) => (u - after).min(HISTORY_PAGE),
                None => HISTORY_PAGE,
            };
            let page = match self.shared.store.after(channel, after, limit).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "history read failed; closing so the client resumes");
                    handle
                        .kill_code
                        .store(close::TRY_AGAIN_LATER, Ordering::Relaxed);
                    handle.kill.cancel();
                    return Ok(false);
                }
            };
            let n = page.len() as i64;
            for message in page {
                let seq = message.seq.unwrap_or(after + 1);
                sink.feed(WsMessage::Text(
                    frame(&ServerFrame::Message { message }).into(),
                ))
                .await?;
                after = seq;
            }
            self.last.insert(channel, after);
            if n < limit {
                return Ok(true);
            }
        }
    }
}
