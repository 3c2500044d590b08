//! Channel events: what changes a channel's existing messages (an edit, a delete, a reaction
//! added or removed). Each takes a position in the channel's sequence, the same sequence as its
//! messages, so one `seq` orders everything a channel shows, and resume and gap filling cover
//! events exactly as they cover messages (see `docs/protocol.md`, "Edits, deletes, reactions").

use crate::ids::{ChannelId, EventId, MessageId, UserId};
use crate::rest::Message;
use crate::ws::ServerFrame;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An applied change to message `message_id` (at `message_seq`) of channel `channel_id`,
/// itself at position `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelEvent {
    pub id: EventId,
    pub channel_id: ChannelId,
    pub seq: i64,
    /// Who made the change.
    pub actor_id: UserId,
    pub message_id: MessageId,
    pub message_seq: i64,
    pub client_event_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub change: Change,
}

/// What changed. Reaction changes carry the emoji's count after the change, so applying an
/// event twice (a client that keeps events it was already sent) leaves the same state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The author replaced the body; the message's `edited_at` is the event's `created_at`, and
    /// its `mentions` are those of the new body (absent when none).
    Edited {
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
    },
    /// The author or the channel's owner deleted the message: show a tombstone.
    Deleted,
    /// `actor_id` reacted with `emoji`; `count` members now have.
    ReactionAdded { emoji: String, count: u32 },
    /// `actor_id` took back their `emoji`; `count` members still have it.
    ReactionRemoved { emoji: String, count: u32 },
}

/// Whatever sits at a position of a channel: what gap filling and resume read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelItem {
    Message(Message),
    Event(ChannelEvent),
}

impl ChannelItem {
    pub fn seq(&self) -> i64 {
        match self {
            ChannelItem::Message(m) => m.seq.unwrap_or(0),
            ChannelItem::Event(e) => e.seq,
        }
    }

    /// The frame a client is sent for it, live or caught up.
    pub fn into_frame(self) -> ServerFrame {
        match self {
            ChannelItem::Message(message) => ServerFrame::Message { message },
            ChannelItem::Event(event) => ServerFrame::Event { event },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn an_event_is_one_flat_object_with_its_kind() {
        let e = ChannelEvent {
            id: EventId(Uuid::nil()),
            channel_id: ChannelId(Uuid::nil()),
            seq: 7,
            actor_id: UserId(Uuid::nil()),
            message_id: MessageId(Uuid::nil()),
            message_seq: 3,
            client_event_id: "e1".into(),
            created_at: DateTime::from_timestamp_millis(0).unwrap(),
            change: Change::ReactionAdded {
                emoji: "👍".into(),
                count: 2,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "reaction_added");
        assert_eq!(v["emoji"], "👍");
        assert_eq!(v["count"], 2);
        let back: ChannelEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
