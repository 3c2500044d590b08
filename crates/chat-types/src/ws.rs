//! WebSocket frames (`/ws`): JSON text frames tagged by `type`. See `docs/protocol.md`.

use crate::events::ChannelEvent;
use crate::ids::{ChannelId, EventId, MessageId, UserId};
use crate::rest::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an `app_state` frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    Foreground,
    Background,
}

/// Frames a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send {
        channel_id: ChannelId,
        client_msg_id: String,
        body: String,
        /// An earlier message of the same channel this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        /// Completed uploads of the sender to this channel (`POST …/attachments`, then
        /// `…/complete`) the message carries, at most `limits::ATTACHMENTS_PER_MESSAGE_MAX`;
        /// `body` may then be empty. Each upload goes into one message only.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<uuid::Uuid>,
    },
    /// After a reconnect: per channel, the id of the last message (or event) seen.
    Resume {
        channels: BTreeMap<ChannelId, MessageId>,
    },
    Ping,
    /// I have read `channel_id` up to position `seq` (a message's or any later frame's). Only
    /// moves forward; send it as often as messages are shown: the gateway coalesces.
    MarkRead {
        channel_id: ChannelId,
        seq: i64,
    },
    /// Whether the app is in front of the user. A connection starts in the foreground; an app
    /// going to the background (a hidden tab, an iOS app about to close its socket) says so, and
    /// says `foreground` when it is back. Push notifications skip users with a connection in the
    /// foreground (they are looking); nothing is answered.
    AppState {
        state: AppState,
    },
    /// The user is typing in `channel_id`: shown to the channel's other members for
    /// [`crate::limits::TYPING_EXPIRES_MS`]. Never stored; at most one per user and channel is
    /// forwarded per [`crate::limits::TYPING_INTERVAL_MS`] (extra ones are dropped silently).
    Typing {
        channel_id: ChannelId,
    },
    /// Replace the body of your message `message_id`. Idempotent by `client_event_id`, like
    /// `send` by `client_msg_id`; acked with `event_ack`, applied with an `event` frame.
    Edit {
        channel_id: ChannelId,
        message_id: MessageId,
        client_event_id: String,
        body: String,
    },
    /// Delete a message (yours, or any in a channel you own).
    Delete {
        channel_id: ChannelId,
        message_id: MessageId,
        client_event_id: String,
    },
    /// Add your `emoji` reaction to a message (once per user and emoji: a second is a no-op).
    React {
        channel_id: ChannelId,
        message_id: MessageId,
        client_event_id: String,
        emoji: String,
    },
    /// Take your `emoji` reaction back.
    Unreact {
        channel_id: ChannelId,
        message_id: MessageId,
        client_event_id: String,
        emoji: String,
    },
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        user_id: UserId,
        connection_id: String,
    },
    Ack {
        client_msg_id: String,
        message: Message,
    },
    Message {
        message: Message,
    },
    /// Sent once a `resume` has been served: every missed message of those channels was sent
    /// before this frame, and live messages follow it.
    Resumed {
        channels: Vec<ChannelId>,
    },
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// With `rate_limited`: wait at least this long before resending.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// The refused `edit` / `delete` / `react` / `unreact`'s id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_event_id: Option<String>,
    },
    Pong,
    /// Your `edit` / `delete` / `react` / `unreact` is durably accepted; its `event` frame
    /// follows once it has its position (or never, if a change before it made it moot: the
    /// message was deleted meanwhile, or the reaction was already there).
    EventAck {
        client_event_id: String,
        event_id: EventId,
    },
    /// A message of one of your channels changed (edited, deleted, reacted to), at position
    /// `event.seq` of the channel's sequence.
    Event {
        event: ChannelEvent,
    },
    /// Another connection of yours marked `channel_id` read up to `seq`. Keep the highest.
    Read {
        channel_id: ChannelId,
        seq: i64,
    },
    /// `user_id` is typing in `channel_id`; show it for `expires_in_ms` unless another `typing`
    /// (which extends it) or a message of theirs in the channel comes first. Ephemeral: never in
    /// history or a resume.
    Typing {
        channel_id: ChannelId,
        user_id: UserId,
        expires_in_ms: u64,
    },
    /// `user_id` (a peer of one of your direct conversations) is now online (a device of theirs
    /// is connected) or offline since `last_seen_at`.
    Presence {
        user_id: UserId,
        online: bool,
        /// When they were last connected; only when offline (absent if never seen).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen_at: Option<DateTime<Utc>>,
    },
}

/// Close codes the gateway uses. Codes 4000-4999 are ours; the others are RFC 6455's.
pub mod close {
    /// The gateway is shutting down: reconnect (through the load balancer) and `resume`.
    pub const GOING_AWAY: u16 = 1001;
    /// The access token is missing, malformed, forged or expired: refresh it, then reconnect.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The client fell too far behind reading: reconnect and `resume`.
    pub const SLOW_CONSUMER: u16 = 4408;
    /// Nothing was heard from the client (no frame, no pong) for too long.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The client broke the protocol (policy violation). Do not reconnect in a loop.
    pub const PROTOCOL_ERROR: u16 = 1008;
    /// The client sent a frame over the size limit. Do not resend it: it will never fit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The gateway could not read history to fill a gap: reconnect (after a short backoff) and
    /// `resume`; nothing is skipped past the gap.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Error codes of `error` frames: the one vocabulary of [`crate::error_code`], re-exported here
/// so that `ws::error_code::MALFORMED_FRAME` keeps naming the same constant.
pub use crate::error_code;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_from_the_contract_examples() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","channel_id":"0190a2b4-0000-7000-8000-000000000001","client_msg_id":"c1","body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Send { ref body, .. } if body == "hi"));
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping);
    }

    #[test]
    fn a_typing_frame_names_only_its_channel() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"typing","channel_id":"0190a2b4-0000-7000-8000-000000000001"}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Typing { .. }));
    }

    #[test]
    fn an_online_presence_frame_has_no_last_seen() {
        let s = serde_json::to_string(&ServerFrame::Presence {
            user_id: UserId(uuid::Uuid::nil()),
            online: true,
            last_seen_at: None,
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"type":"presence","user_id":"00000000-0000-0000-0000-000000000000","online":true}"#
        );
    }

    #[test]
    fn error_frame_omits_absent_client_msg_id() {
        let s = serde_json::to_string(&ServerFrame::Error {
            code: "x".into(),
            message: "y".into(),
            client_msg_id: None,
            retry_after_ms: None,
            client_event_id: None,
        })
        .unwrap();
        assert_eq!(s, r#"{"type":"error","code":"x","message":"y"}"#);
    }
}
