//! Records of the Kafka topic `messages`. Key: the channel id, so one channel's records share a
//! partition and keep their order. Membership changes travel through the same topic for the same
//! reason: a message server sees a join or leave exactly where it happened among the messages.

use crate::ids::{ChannelId, MessageId, UserId};
use crate::rest::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const TOPIC: &str = "messages";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusRecord {
    Message(MessageRecord),
    Membership(MembershipRecord),
}

impl BusRecord {
    pub fn channel_id(&self) -> ChannelId {
        match self {
            BusRecord::Message(m) => m.channel_id,
            BusRecord::Membership(m) => m.channel_id,
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
}

impl MessageRecord {
    /// The public message this record becomes, at position `seq` once a message server gave it
    /// one (`None` in an ack: the position is not known yet).
    pub fn to_message(&self, seq: Option<i64>) -> Message {
        Message {
            id: self.id,
            channel_id: self.channel_id,
            sender_id: self.sender_id,
            body: self.body.clone(),
            client_msg_id: self.client_msg_id.clone(),
            created_at: self.created_at,
            seq,
        }
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
