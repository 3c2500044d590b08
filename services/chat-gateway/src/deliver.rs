//! `POST /internal/v1/deliver` on the ops port: a message server hands over a batch of events
//! for users connected here, in groups that share a recipient list. Each event is serialised
//! once and queued to every connection of its recipients; nothing here waits on a client.

use crate::Shared;
use crate::hub::{LiveMessage, MembershipNote, Outbound};
use axum::Json;
use axum::extract::Request;
use axum::extract::State;
use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_types::bus::MembershipChange;
use chat_types::internal::{DeliveryBatch, Event, INTERNAL_TOKEN_HEADER};
use chat_types::ws::ServerFrame;
use secrecy::ExposeSecret;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Refuses a request without the internal credential before its body is read (a layer, so the
/// up to 64 MiB a batch may be are never buffered for a caller who is not a message server).
pub async fn require_credential(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(INTERNAL_TOKEN_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = shared.internal_token.expose_secret().as_bytes();
    if !bool::from(presented.ct_eq(expected)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(request).await
}

pub async fn deliver(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<DeliveryBatch>, axum::extract::rejection::JsonRejection>,
) -> StatusCode {
    let Ok(Json(batch)) = body else {
        return StatusCode::BAD_REQUEST;
    };
    let mut deliveries = 0u64;
    let mut items: Vec<Outbound> = Vec::new();
    for group in batch.groups {
        items.clear();
        for ev in group.events {
            items.push(match ev {
                Event::Message { message } => {
                    let channel = message.channel_id;
                    let seq = message.seq.unwrap_or(0);
                    let frame = Utf8Bytes::from(
                        serde_json::to_string(&ServerFrame::Message { message })
                            .expect("frames serialise"),
                    );
                    Outbound::Live(Arc::new(LiveMessage {
                        channel,
                        seq,
                        frame,
                    }))
                }
                Event::Channel { event } => {
                    let (channel, seq) = (event.channel_id, event.seq);
                    let frame = Utf8Bytes::from(
                        serde_json::to_string(&ServerFrame::Event { event })
                            .expect("frames serialise"),
                    );
                    Outbound::Live(Arc::new(LiveMessage {
                        channel,
                        seq,
                        frame,
                    }))
                }
                Event::Membership {
                    channel_id,
                    user_id,
                    change,
                    seq,
                } => {
                    if change == MembershipChange::Left {
                        // Already stale by the epoch; this also covers an epoch Redis lost.
                        shared.admission.forget(user_id, Some(channel_id));
                    }
                    Outbound::Membership(Arc::new(MembershipNote {
                        channel: channel_id,
                        change,
                        seq,
                    }))
                }
                // Ephemeral signals: written at once, outside the channel's sequence.
                Event::Typing {
                    channel_id,
                    user_id,
                    expires_in_ms,
                } => ephemeral_frame(&ServerFrame::Typing {
                    channel_id,
                    user_id,
                    expires_in_ms,
                }),
                Event::Presence {
                    user_id,
                    online,
                    last_seen_at,
                } => ephemeral_frame(&ServerFrame::Presence {
                    user_id,
                    online,
                    last_seen_at,
                }),
            });
        }
        shared.hub.for_each_of(&group.recipients, |conn| {
            for item in &items {
                deliveries += 1;
                conn.offer(item.clone());
            }
        });
    }
    metrics::counter!("chat_deliveries_total").increment(deliveries);
    StatusCode::NO_CONTENT
}

fn ephemeral_frame(frame: &ServerFrame) -> Outbound {
    Outbound::Frame(serde_json::to_string(frame).expect("frames serialise"))
}
