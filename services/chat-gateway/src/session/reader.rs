//! The reading half of a connection: client frames in, replies queued for the writer. A `send`
//! is admitted by [`crate::admission`], produced to Kafka and acked once Kafka has it; at most
//! `max_sends_in_flight` sends of one connection wait for Kafka at a time (past that, this
//! socket is not read until acks come back, so one client cannot fill the shared producer).

use super::{error_frame, refusal_frame};
use crate::Shared;
use crate::admission::Refused;
use crate::changes::Request;
use crate::hub::{ConnHandle, Outbound};
use axum::extract::ws::{Message as WsMessage, WebSocket};
use chat_types::bus::{BusRecord, MessageRecord};
use chat_types::ws::{ClientFrame, ServerFrame, close, error_code};
use chat_types::{ChannelId, UserId};
use futures::StreamExt;
use futures::stream::SplitStream;
use governor::{Quota, RateLimiter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub(super) async fn run(
    shared: &Arc<Shared>,
    user: UserId,
    expires: i64,
    mut stream: SplitStream<WebSocket>,
    handle: &ConnHandle,
) {
    // The access token's end: from then on the connection is no longer authorised.
    let left = (expires - chrono::Utc::now().timestamp()).max(0) as u64;
    let unauthorised_at = Instant::now() + Duration::from_secs(left);
    let idle = Duration::from_secs(shared.cfg.idle_timeout_secs);
    let sends = Arc::new(Semaphore::new(shared.cfg.max_sends_in_flight));
    // Every frame (pings included) draws from this bucket; past it the socket is simply not
    // read for a while, so a flood costs the gateway nothing and slows only its sender.
    let frames = RateLimiter::direct(
        Quota::per_second(shared.cfg.frames_per_second).allow_burst(shared.cfg.frame_burst),
    );
    let mut deadline = Instant::now() + idle;
    let mut first = true;
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = handle.state.kill.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => {
                handle.state.close(close::IDLE_TIMEOUT);
                return;
            }
            _ = tokio::time::sleep_until(unauthorised_at) => {
                handle.state.close(close::UNAUTHORIZED);
                return;
            }
        };
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                // tungstenite's size limit: say so (1009), so the client does not resend it.
                if e.to_string().contains("Space limit exceeded") {
                    handle.state.close(close::MESSAGE_TOO_BIG);
                    tokio::time::sleep(LINGER).await;
                }
                return;
            }
            None => return,
        };
        deadline = Instant::now() + idle;
        frames.until_ready().await;
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
                    handle.send(next).await;
                }
                match parsed {
                    Ok(f) => handle_frame(shared, user, f, handle, &sends).await,
                    Err(e) => handle.send(malformed(text.as_str(), &e)).await,
                }
            }
            WsMessage::Binary(_) => {
                handle
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

/// The client is still sending the rest of a frame that was refused, and the WebSocket stream
/// ends at the refusal. Closing the socket with those bytes unread makes the kernel reset the
/// connection, and a reset can overtake the close frame (1009) the writer is sending: the
/// client would see a bare reset and reconnect to resend. So keep the socket open a moment
/// after the close frame has gone (what nginx calls a lingering close), then let it go.
const LINGER: Duration = Duration::from_secs(1);

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
    handle: &ConnHandle,
    sends: &Arc<Semaphore>,
) {
    match f {
        ClientFrame::Ping => {
            let pong = serde_json::to_string(&ServerFrame::Pong).expect("frames serialise");
            handle.send(Outbound::Frame(pong)).await;
        }
        ClientFrame::Typing { channel_id } => typing(shared, user, channel_id, handle),
        ClientFrame::AppState { state } => app_state(shared, user, state, handle).await,
        ClientFrame::Send {
            channel_id,
            client_msg_id,
            body,
            reply_to,
            attachments,
        } => {
            let Ok(permit) = sends.clone().acquire_owned().await else {
                return;
            };
            // Boxed (here and below): these futures hold database and Redis calls and are
            // several KiB; inline, every idle connection's task would carry that space.
            let req = SendRequest {
                channel: channel_id,
                client_msg_id,
                body,
                reply_to,
                attachments,
            };
            if let Err((refused, cmid)) = Box::pin(send(shared, user, req, handle, permit)).await {
                handle
                    .send(refusal_frame(
                        refused.code,
                        refused.message,
                        Some(cmid),
                        refused.retry_after,
                    ))
                    .await;
            }
        }
        ClientFrame::Resume { channels } => {
            let out = Box::pin(super::resume::lookup(shared, user, channels, handle)).await;
            handle.send(out).await;
        }
        f @ (ClientFrame::Edit { .. }
        | ClientFrame::Delete { .. }
        | ClientFrame::React { .. }
        | ClientFrame::Unreact { .. }) => {
            if let Some(req) = Request::of(f) {
                change(shared, user, req, handle, sends).await;
            }
        }
        ClientFrame::MarkRead { channel_id, seq } => {
            if seq < 1 {
                let refusal = error_frame(
                    error_code::INVALID_SEQ,
                    "seq must be a position: 1 or more",
                    None,
                );
                return handle.send(refusal).await;
            }
            // A client may mark on every message it shows: a membership confirmed before is
            // checked without a store and without boxing a future.
            if !shared.admission.is_confirmed(user, channel_id)
                && let Err(refused) =
                    Box::pin(shared.admission.ensure_member(user, channel_id)).await
            {
                return handle
                    .send(error_frame(refused.code, refused.message, None))
                    .await;
            }
            let mark = chat_store::read_feed::ReadMark {
                user,
                channel: channel_id,
                seq,
            };
            crate::reads::accept(shared, mark, handle.id);
        }
    }
}

/// An `edit` / `delete` / `react` / `unreact`: through [`crate::changes`], holding a send
/// permit (they count against the same in-flight bound as sends).
async fn change(
    shared: &Arc<Shared>,
    user: UserId,
    req: Request,
    handle: &ConnHandle,
    sends: &Arc<Semaphore>,
) {
    let Ok(permit) = sends.clone().acquire_owned().await else {
        return;
    };
    Box::pin(crate::changes::submit(shared, user, req, handle, permit)).await;
}

/// An `app_state` frame: the connection's app went to the background or came back. Redis is told
/// only when the user's attention on this gateway changes (their first connection here in the
/// foreground, or their last one left it).
async fn app_state(
    shared: &Arc<Shared>,
    user: UserId,
    state: chat_types::ws::AppState,
    handle: &ConnHandle,
) {
    let before = shared.hub.is_attentive(&user);
    let background = state == chat_types::ws::AppState::Background;
    handle
        .state
        .background
        .store(background, std::sync::atomic::Ordering::Relaxed);
    let after = shared.hub.is_attentive(&user);
    if before != after
        && let Err(e) = shared
            .presence
            .set_attentive(&shared.cfg.internal_url, user, after)
            .await
    {
        tracing::warn!(error = %e, "attention not recorded; the heartbeat will mend it");
    }
}

/// A `typing` frame: checked and pushed in a task (meanwhile this client's frames keep being
/// read; their pace bounds how many such tasks one client starts). A refusal comes back as an
/// `error` frame.
fn typing(shared: &Arc<Shared>, user: UserId, channel: ChannelId, handle: &ConnHandle) {
    let (shared2, handle) = (shared.clone(), handle.clone());
    shared.tasks.spawn(async move {
        if let Err(refused) = shared2.ephemeral.typing(user, channel).await {
            handle
                .send(refusal_frame(
                    refused.code,
                    refused.message,
                    None,
                    refused.retry_after,
                ))
                .await;
        }
    });
}

/// Admit, produce, and ack once Kafka has the record (in a task: meanwhile this client's
/// frames keep being read). The permit is held until the ack is queued.
/// A `send` frame's fields.
struct SendRequest {
    channel: ChannelId,
    client_msg_id: String,
    body: String,
    reply_to: Option<chat_types::MessageId>,
    attachments: Vec<uuid::Uuid>,
}

async fn send(
    shared: &Arc<Shared>,
    user: UserId,
    req: SendRequest,
    handle: &ConnHandle,
    permit: OwnedSemaphorePermit,
) -> Result<(), (Refused, String)> {
    let SendRequest {
        channel,
        client_msg_id,
        body,
        reply_to,
        attachments,
    } = req;
    let started = std::time::Instant::now();
    let record = match shared
        .admission
        .admit(
            user,
            channel,
            client_msg_id.clone(),
            body,
            reply_to,
            attachments,
        )
        .await
    {
        Ok(record) => record,
        Err(refused) => return Err((refused, client_msg_id)),
    };
    let admitted = std::time::Instant::now();
    // The two hops of a send's ack, for the latency breakdown `chat-bench` prints: admission
    // (membership, the send claim in Redis) and Kafka (produce until acks=all).
    metrics::histogram!("chat_send_phase_seconds", "phase" => "admit")
        .record((admitted - started).as_secs_f64());
    let delivery = match shared.producer.enqueue(&BusRecord::Message(record.clone())) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "kafka enqueue failed");
            return Err((Refused::unavailable(), record.client_msg_id));
        }
    };
    let handle = handle.clone();
    shared.tasks.spawn(async move {
        let out = match delivery.durable().await {
            Ok(_) => {
                metrics::histogram!("chat_send_phase_seconds", "phase" => "produce")
                    .record(admitted.elapsed().as_secs_f64());
                metrics::counter!("chat_sends_acked_total").increment(1);
                ack(&record)
            }
            Err(e) => {
                tracing::error!(error = %e, "kafka did not take the record");
                let refused = Refused::unavailable();
                error_frame(refused.code, refused.message, Some(record.client_msg_id))
            }
        };
        handle.send(out).await;
        drop(permit);
    });
    Ok(())
}

fn ack(record: &MessageRecord) -> Outbound {
    Outbound::Frame(
        serde_json::to_string(&ServerFrame::Ack {
            client_msg_id: record.client_msg_id.clone(),
            message: record.to_message(None),
        })
        .expect("frames serialise"),
    )
}
