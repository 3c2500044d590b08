//! `POST /internal/v1/deliver` on the ops port: a message server hands over a batch of events
//! for users connected here, in groups that share a recipient list. Each event is serialised
//! once and queued to every connection of its recipients; nothing here waits on a client. A
//! big channel's member list is kept ([`crate::member_lists`]) so later batches can leave it out.

use crate::Shared;
use crate::hub::{LiveMessage, MembershipNote, Outbound};
use axum::Json;
use axum::extract::Request;
use axum::extract::State;
use axum::extract::ws::Utf8Bytes;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_types::UserId;
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
    let Ok(Json(mut batch)) = body else {
        return StatusCode::BAD_REQUEST;
    };
    // Every group's recipients before anything is queued: a batch naming a member list this
    // gateway does not hold (restarted, evicted, or the list changed) is refused whole, and
    // comes back with the lists, so nothing is delivered twice or out of order.
    let mut recipients: Vec<Arc<Vec<UserId>>> = Vec::with_capacity(batch.groups.len());
    for group in &mut batch.groups {
        let ids = match (group.recipients.take(), &group.list) {
            (Some(ids), None) => Arc::new(ids),
            (Some(ids), Some(list)) => {
                let ids = Arc::new(ids);
                shared.member_lists.keep(*list, ids.clone());
                ids
            }
            (None, Some(list)) => match shared.member_lists.get(list) {
                Some(ids) => ids,
                None => {
                    metrics::counter!("chat_member_list_misses_total").increment(1);
                    return StatusCode::CONFLICT;
                }
            },
            (None, None) => return StatusCode::BAD_REQUEST,
        };
        recipients.push(ids);
    }
    let mut deliveries = 0u64;
    let mut items: Vec<Outbound> = Vec::new();
    for (group, recipients) in batch.groups.into_iter().zip(recipients) {
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
        shared.hub.for_each_of(&recipients, |conn| {
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
