//! The gate of an `edit`, `delete`, `react` or `unreact`, like [`crate::admission`] for sends:
//! within the user's send rate, valid fields, a member of the channel, the target a stored
//! message of that channel, not deleted, and (edit, delete) the user's to change. Then the
//! record is produced to the channel's partition and acked once Kafka has it; the message server
//! gives it its position and pushes the `event` frame.

use crate::Shared;
use crate::admission::Refused;
use crate::hub::{ConnHandle, Outbound};
use crate::session::event_refusal;
use chat_types::bus::{Action, BusRecord, EventRecord, Target};
use chat_types::ws::{ClientFrame, ServerFrame, error_code};
use chat_types::{ChannelId, EventId, MessageId, UserId, limits};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// What the client asked for.
pub struct Request {
    pub channel: ChannelId,
    pub message: MessageId,
    pub client_event_id: String,
    pub action: Action,
}

impl Request {
    /// The request an `edit`, `delete`, `react` or `unreact` frame makes (`None` for others).
    pub fn of(frame: ClientFrame) -> Option<Request> {
        let (channel, message, client_event_id, action) = match frame {
            ClientFrame::Edit {
                channel_id,
                message_id,
                client_event_id,
                body,
            } => (
                channel_id,
                message_id,
                client_event_id,
                Action::Edit { body },
            ),
            ClientFrame::Delete {
                channel_id,
                message_id,
                client_event_id,
            } => (channel_id, message_id, client_event_id, Action::Delete),
            ClientFrame::React {
                channel_id,
                message_id,
                client_event_id,
                emoji,
            } => (
                channel_id,
                message_id,
                client_event_id,
                Action::React { emoji },
            ),
            ClientFrame::Unreact {
                channel_id,
                message_id,
                client_event_id,
                emoji,
            } => (
                channel_id,
                message_id,
                client_event_id,
                Action::Unreact { emoji },
            ),
            _ => return None,
        };
        Some(Request {
            channel,
            message,
            client_event_id,
            action,
        })
    }
}

/// Check, produce and (in a task, once Kafka has it) ack; refusals come back as `error` frames
/// naming the `client_event_id`. The permit bounds the changes in flight like sends.
pub async fn submit(
    shared: &Arc<Shared>,
    user: UserId,
    req: Request,
    handle: &ConnHandle,
    permit: OwnedSemaphorePermit,
) {
    let cid = req.client_event_id.clone();
    let record = match admit(shared, user, req).await {
        Ok(Admitted::Record(r)) => r,
        Ok(Admitted::AlreadyApplied(id)) => return handle.send(ack(cid, id)).await,
        Err(refused) => {
            let frame = event_refusal(refused.code, refused.message, cid, refused.retry_after);
            return handle.send(frame).await;
        }
    };
    let delivery = match shared.producer.enqueue(&BusRecord::Event(record.clone())) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "kafka enqueue failed");
            let refused = Refused::unavailable();
            return handle
                .send(event_refusal(refused.code, refused.message, cid, None))
                .await;
        }
    };
    let handle = handle.clone();
    shared.tasks.spawn(async move {
        let out = match delivery.durable().await {
            Ok(_) => {
                metrics::counter!("chat_events_acked_total").increment(1);
                ack(record.client_event_id, record.id)
            }
            Err(e) => {
                tracing::error!(error = %e, "kafka did not take the record");
                let refused = Refused::unavailable();
                event_refusal(refused.code, refused.message, record.client_event_id, None)
            }
        };
        handle.send(out).await;
        drop(permit);
    });
}

enum Admitted {
    Record(EventRecord),
    /// A resend of an event that already has its position: ack it again.
    AlreadyApplied(EventId),
}

async fn admit(shared: &Shared, user: UserId, req: Request) -> Result<Admitted, Refused> {
    shared.admission.check_rate(user)?;
    validate(&req)?;
    shared.admission.ensure_member(user, req.channel).await?;
    let id = EventId::derive(user, &req.client_event_id);
    let (existing, target) = tokio::join!(
        shared.store.event_placement(MessageId(id.0)),
        shared.store.message(req.channel, req.message),
    );
    let unavailable = |e: chat_store::cql::CqlError| {
        tracing::warn!(error = %e, "reading a changed message failed");
        Refused::unavailable()
    };
    if existing.map_err(unavailable)?.is_some() {
        return Ok(Admitted::AlreadyApplied(id));
    }
    let Some(target) = target.map_err(unavailable)? else {
        return Err(Refused::new(
            error_code::UNKNOWN_MESSAGE,
            "message_id is not a stored message of this channel",
        ));
    };
    if target.deleted {
        return Err(Refused::new(
            error_code::MESSAGE_DELETED,
            "the message was deleted",
        ));
    }
    let own = target.sender_id == user;
    match req.action {
        Action::Edit { .. } if !own => {
            return Err(Refused::new(
                error_code::NOT_AUTHOR,
                "only the author may edit a message",
            ));
        }
        Action::Delete if !own => {
            let owner = chat_store::pg::channel_owner(&shared.db, req.channel)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "owner lookup failed");
                    Refused::unavailable()
                })?;
            if owner != Some(user) {
                return Err(Refused::new(
                    error_code::NOT_AUTHOR,
                    "only the author or the channel's owner may delete a message",
                ));
            }
        }
        _ => {}
    }
    // Millisecond precision: what CQL `timestamp` stores.
    let now = chrono::Utc::now();
    let created_at = chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    Ok(Admitted::Record(EventRecord {
        id,
        channel_id: req.channel,
        actor_id: user,
        target: Target {
            id: req.message,
            seq: target.seq.unwrap_or(0),
        },
        client_event_id: req.client_event_id,
        created_at,
        action: req.action,
    }))
}

/// The frame's own fields, before anything is asked of a store.
fn validate(req: &Request) -> Result<(), Refused> {
    if !limits::valid_client_msg_id(&req.client_event_id) {
        return Err(Refused::new(
            error_code::INVALID_CLIENT_EVENT_ID,
            format!(
                "client_event_id must be 1 to {} characters",
                limits::CLIENT_MSG_ID_MAX
            ),
        ));
    }
    match &req.action {
        Action::Edit { body } if !limits::valid_body(body) => Err(Refused::new(
            error_code::INVALID_BODY,
            format!(
                "body must be 1 to {} characters and not only white space",
                limits::BODY_MAX_CHARS
            ),
        )),
        Action::React { emoji } | Action::Unreact { emoji } if !limits::valid_emoji(emoji) => {
            Err(Refused::new(
                error_code::INVALID_EMOJI,
                format!(
                    "emoji must be 1 to {} bytes without white space or control characters",
                    limits::EMOJI_MAX_BYTES
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn ack(client_event_id: String, event_id: EventId) -> Outbound {
    Outbound::Frame(
        serde_json::to_string(&ServerFrame::EventAck {
            client_event_id,
            event_id,
        })
        .expect("frames serialise"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn req(cid: &str, action: Action) -> Request {
        Request {
            channel: ChannelId(Uuid::nil()),
            message: MessageId(Uuid::nil()),
            client_event_id: cid.into(),
            action,
        }
    }

    #[test]
    fn bad_fields_are_refused_before_any_store_is_asked() {
        let code = |r: Request| validate(&r).unwrap_err().code;
        assert_eq!(
            code(req("", Action::Delete)),
            error_code::INVALID_CLIENT_EVENT_ID
        );
        assert_eq!(
            code(req("e", Action::Edit { body: " ".into() })),
            error_code::INVALID_BODY
        );
        assert_eq!(
            code(req(
                "e",
                Action::React {
                    emoji: "x".repeat(1024)
                }
            )),
            error_code::INVALID_EMOJI
        );
        assert_eq!(
            code(req(
                "e",
                Action::Unreact {
                    emoji: "a b".into()
                }
            )),
            error_code::INVALID_EMOJI
        );
        assert!(
            validate(&req(
                "e",
                Action::React {
                    emoji: "👍🏽".into()
                }
            ))
            .is_ok()
        );
    }
}
