//! The sending half of a connection: takes everything queued for the client, lets the
//! [`Sequencer`] decide what to write, reads history when it asks, writes all that is ready and
//! flushes once. Sends pings, and the close frame with the reason the connection ends.

use super::sequencer::{Sequencer, Step};
use crate::Shared;
use crate::hub::{ConnState, Outbound};
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use chat_types::ws::close;
use futures::SinkExt;
use futures::stream::SplitSink;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

type Sink = SplitSink<WebSocket, WsMessage>;

pub(super) async fn run(
    shared: &Arc<Shared>,
    mut sink: Sink,
    mut rx: mpsc::Receiver<Outbound>,
    state: &ConnState,
    resume_announced: bool,
) {
    let cfg = &shared.cfg;
    let mut seq = Sequencer::new(cfg.queue_capacity, resume_announced);
    let mut ping = tokio::time::interval(Duration::from_secs(cfg.ping_interval_secs));
    ping.tick().await;
    let hold_until = Instant::now() + Duration::from_millis(cfg.resume_hold_ms);
    // One wait for the kill, made once: a fresh `cancelled()` per wake-up registered with the
    // token and left it again each time (measured: 2.3 % of a gateway's CPU in fan-out).
    let killed = state.kill.cancelled();
    tokio::pin!(killed);
    let result: Result<(), axum::Error> = async {
        loop {
            tokio::select! {
                biased;
                _ = &mut killed => break,
                item = rx.recv() => {
                    let Some(item) = item else { break };
                    state.dequeued(&item);
                    seq.offer(item);
                    // Take whatever else is queued, write it all, then flush once.
                    while let Ok(item) = rx.try_recv() {
                        state.dequeued(&item);
                        seq.offer(item);
                    }
                    pump(shared, &mut seq, &mut sink, state).await?;
                    sink.flush().await?;
                }
                _ = tokio::time::sleep_until(hold_until), if seq.waits_for_hold_timer() => {
                    seq.hold_expired();
                    pump(shared, &mut seq, &mut sink, state).await?;
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
        let code = if shared.shutdown.is_cancelled() {
            close::GOING_AWAY
        } else {
            state.kill_code.load(Ordering::Relaxed)
        };
        let reason = match code {
            close::SLOW_CONSUMER => "too far behind: reconnect and resume",
            close::IDLE_TIMEOUT => "idle timeout",
            close::TRY_AGAIN_LATER => "history unavailable: reconnect and resume",
            close::MESSAGE_TOO_BIG => "frame too big: do not resend it",
            close::UNAUTHORIZED if state.revoked.load(Ordering::Relaxed) => {
                "session revoked: log in again"
            }
            close::UNAUTHORIZED => "access token expired: refresh, then reconnect",
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

/// Carry out every step the sequencer has ready: frames are fed (not flushed), history is read.
async fn pump(
    shared: &Shared,
    seq: &mut Sequencer,
    sink: &mut Sink,
    state: &ConnState,
) -> Result<(), axum::Error> {
    while let Some(step) = seq.next_step() {
        match step {
            Step::Write(f) => sink.feed(WsMessage::Text(f)).await?,
            Step::Fetch {
                channel,
                after,
                limit,
            } => match shared.store.items_after(channel, after, limit).await {
                Ok(page) => seq.fetched(page),
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "history read failed; closing so the client resumes");
                    if let Step::Close(code) = seq.fetch_failed() {
                        state.close(code);
                    }
                }
            },
            Step::Close(code) => state.close(code),
        }
    }
    Ok(())
}
