//! The body a message server POSTs to a gateway's internal delivery endpoint. One request carries
//! every event of a batch for the users on that gateway, in channel order. Consecutive events
//! with the same recipients (a channel's messages in one batch) share one recipient list: in a
//! big channel the list, not the message, is most of the bytes. Gateways use the same endpoint
//! for the ephemeral signals (typing, presence) they send each other.

use crate::bus::MembershipChange;
use crate::events::ChannelEvent;
use crate::ids::{ChannelId, UserId};
use crate::rest::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Path of the delivery endpoint on a gateway's internal port.
pub const DELIVER_PATH: &str = "/internal/v1/deliver";
/// Header carrying the shared internal credential.
pub const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryBatch {
    /// In order: a gateway applies the groups one after another.
    pub groups: Vec<DeliveryGroup>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryGroup {
    /// Users on this gateway who should see the events (every connection of each).
    pub recipients: Vec<UserId>,
    /// Delivered to each recipient in this order.
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Message {
        message: Message,
    },
    /// An edit, delete or reaction, at its position in the channel.
    Channel {
        event: ChannelEvent,
    },
    Membership {
        channel_id: ChannelId,
        user_id: UserId,
        change: MembershipChange,
        /// The channel's last `seq` when the change took effect.
        seq: i64,
    },
    /// Ephemeral (a gateway forwards it, nothing stores it): `user_id` is typing in
    /// `channel_id`. The recipients are the channel's other members.
    Typing {
        channel_id: ChannelId,
        user_id: UserId,
        expires_in_ms: u64,
    },
    /// Ephemeral: `user_id` came online or went offline. The recipients are their DM peers.
    Presence {
        user_id: UserId,
        online: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen_at: Option<DateTime<Utc>>,
    },
}
