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
    /// Users on this gateway who should see the events (every connection of each). Left out
    /// only with `list` set: then the gateway uses its copy of the list `list` names, or, if it
    /// does not hold that list, refuses the whole batch with 409 so that it is sent again with
    /// the list. (A gateway that predates `list` refuses such a batch with 400: a missing field.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<UserId>>,
    /// Set on a big channel's messages and events, which every gateway gets with the channel's
    /// whole member list: names that list, so that a gateway keeps it and later batches can
    /// leave it out until the membership changes (5,000 ids are ~190 KB of JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListRef>,
    /// Delivered to each recipient in this order.
    pub events: Vec<Event>,
}

/// A channel's whole member list, named by its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListRef {
    pub channel_id: ChannelId,
    /// Of the list's ids, sorted: equal digests, equal lists.
    pub digest: ListDigest,
}

/// 128 bits of SHA-256, as 32 hex digits (JSON numbers are not 128 bits wide everywhere).
/// Equal for equal lists in any order; a collision, which would send a channel's messages to
/// an earlier member list, would take ~2^64 lists of one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListDigest(pub u128);

impl ListDigest {
    /// The digest of `ids`, in any order.
    pub fn of(ids: &[UserId]) -> Self {
        use sha2::{Digest, Sha256};
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        let mut h = Sha256::new();
        for u in &sorted {
            h.update(u.0.as_bytes());
        }
        let d = h.finalize();
        ListDigest(u128::from_be_bytes(d[..16].try_into().expect("16 bytes")))
    }
}

impl Serialize for ListDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:032x}", self.0))
    }
}

impl<'de> Deserialize<'de> for ListDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.len() != 32 {
            return Err(serde::de::Error::custom("a list digest is 32 hex digits"));
        }
        u128::from_str_radix(&s, 16)
            .map(ListDigest)
            .map_err(|_| serde::de::Error::custom("a list digest is 32 hex digits"))
    }
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
