//! Records of the Kafka topic `messages`. Key: the channel id, so one channel's records share a
//! partition and keep their order. Membership changes travel through the same topic for the same
//! reason: a message server sees a join or leave exactly where it happened among the messages.

use crate::attachments::MessageAttachment;
use crate::ids::{ChannelId, EventId, MessageId, UserId};
use crate::rest::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const TOPIC: &str = "messages";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusRecord {
    Message(MessageRecord),
    Membership(MembershipRecord),
    Event(EventRecord),
}

impl BusRecord {
    pub fn channel_id(&self) -> ChannelId {
        match self {
            BusRecord::Message(m) => m.channel_id,
            BusRecord::Membership(m) => m.channel_id,
            BusRecord::Event(e) => e.channel_id,
        }
    }
}

/// A message accepted by a gateway. Its place in the channel (`seq`) is given by the message
/// server that stores it, in the order of the partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub sender_id: UserId,
    pub body: String,
    pub client_msg_id: String,
    pub created_at: DateTime<Utc>,
    /// The stored message of the same channel this one answers (checked by the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Target>,
    /// The files it carries, claimed for this message by the gateway (PostgreSQL
    /// `attachments.message_id`), in the sender's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<MessageAttachment>,
}

/// A stored message of the record's channel, by id and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: MessageId,
    pub seq: i64,
}

/// An edit, delete or reaction accepted by a gateway (which checked membership, that the target
/// is a stored message of the channel, and authorship). The message server applies it in
/// partition order, where it may still turn out moot (the message was deleted before it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: EventId,
    pub channel_id: ChannelId,
    pub actor_id: UserId,
    pub target: Target,
    pub client_event_id: String,
    pub created_at: DateTime<Utc>,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Edit { body: String },
    Delete,
    React { emoji: String },
    Unreact { emoji: String },
}

impl MessageRecord {
    /// The public message this record becomes, at position `seq` once a message server gave it
    /// one (`None` in an ack: the position is not known yet).
    pub fn to_message(&self, seq: Option<i64>) -> Message {
        let mut m = Message::new(
            self.id,
            self.channel_id,
            self.sender_id,
            self.body.clone(),
            self.client_msg_id.clone(),
            self.created_at,
            seq,
        );
        m.attachments.clone_from(&self.attachments);
        m
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    Joined,
    Left,
}

/// A join or leave, already committed to PostgreSQL when it is produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub change: MembershipChange,
}
