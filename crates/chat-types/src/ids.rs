//! Id newtypes. Every id is a UUID on the inside and a JSON string on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                $name(u)
            }
        }
    };
}

id_type!(
    /// A registered user. UUIDv7, so ids sort roughly by creation time.
    UserId
);
id_type!(
    /// A group channel or a direct conversation. UUIDv7.
    ChannelId
);
id_type!(
    /// A message. Derived from `(sender_id, client_msg_id)` (UUIDv5), so every resend of the
    /// same `client_msg_id` names the same message, whichever gateway it went through.
    MessageId
);

id_type!(
    /// A channel event (an edit, a delete, a reaction added or removed). Derived from
    /// `(actor_id, client_event_id)` (UUIDv5, in its own namespace, so it never equals a message
    /// id): every resend of the same `client_event_id` names the same event.
    EventId
);

/// Namespace of [`MessageId::derive`]; changing it would change every message id.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d89_5309_3672_7e22_a1c0_5e7d_0000_0001);

impl UserId {
    pub fn new_v7() -> Self {
        UserId(Uuid::now_v7())
    }
}

impl ChannelId {
    pub fn new_v7() -> Self {
        ChannelId(Uuid::now_v7())
    }
}

/// Namespace of [`EventId::derive`].
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d89_5309_3672_7e22_a1c0_5e7d_0000_0002);

impl EventId {
    /// The id of the event `actor` makes with `client_event_id`. Deterministic: idempotent
    /// edits, deletes and reactions rest on it.
    pub fn derive(actor: UserId, client_event_id: &str) -> Self {
        let mut name = Vec::with_capacity(16 + client_event_id.len());
        name.extend_from_slice(actor.0.as_bytes());
        name.extend_from_slice(client_event_id.as_bytes());
        EventId(Uuid::new_v5(&EVENT_ID_NAMESPACE, &name))
    }
}

impl MessageId {
    /// The id of the message that `sender` sends with `client_msg_id`. Deterministic: the
    /// idempotent-send guarantee rests on it.
    pub fn derive(sender: UserId, client_msg_id: &str) -> Self {
        let mut name = Vec::with_capacity(16 + client_msg_id.len());
        name.extend_from_slice(sender.0.as_bytes());
        name.extend_from_slice(client_msg_id.as_bytes());
        MessageId(Uuid::new_v5(&MESSAGE_ID_NAMESPACE, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_stable_for_the_same_sender_and_client_msg_id() {
        let u = UserId(Uuid::from_u128(7));
        assert_eq!(MessageId::derive(u, "abc"), MessageId::derive(u, "abc"));
        assert_ne!(MessageId::derive(u, "abc"), MessageId::derive(u, "abd"));
        let other = UserId(Uuid::from_u128(8));
        assert_ne!(MessageId::derive(u, "abc"), MessageId::derive(other, "abc"));
    }

    #[test]
    fn ids_are_json_strings() {
        let id = ChannelId(Uuid::from_u128(1));
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"00000000-0000-0000-0000-000000000001\""
        );
    }
}
