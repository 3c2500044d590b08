//! Bodies of the public REST API. See `docs/openapi` (served by the API) for the full contract.

use crate::ids::{ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// A single-use ticket that opens one WebSocket (`/ws?ticket=<ticket>`), for clients that
/// cannot set the `Authorization` header (browsers): the access token stays out of URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WsTicket {
    pub ticket: String,
    /// Seconds until the ticket can no longer be used.
    pub expires_in: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// 3 to 32 of ASCII letters, digits, `.`, `_`, `-`; unique ignoring case.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9._-]{3,32}$")
    )]
    pub username: String,
    /// 8 to 1024 characters, not only white space.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::password))]
    pub password: String,
    /// At most 64 characters (white space around it is trimmed; empty or absent: the username),
    /// without control characters (Cc), line or paragraph separators, or format characters (Cf:
    /// bidi overrides and isolates, zero-width spaces, the byte-order mark) other than the
    /// zero-width joiner and non-joiner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::display_name))]
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::text))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::text))]
    pub password: String,
}

/// Body of `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::text))]
    pub refresh_token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Group,
    Direct,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Group => "group",
            ChannelKind::Direct => "direct",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// For a direct conversation: the other user's display name as seen by the caller.
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    /// Who created a group channel: its owner, who may delete others' messages. Absent for a
    /// direct conversation, and when the creator's account is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateChannelRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::channel_name))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::description))]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateDmRequest {
    pub user_id: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelList {
    pub channels: Vec<Channel>,
}

/// `GET /channels`: the caller's conversations, most recent activity first, each with its read
/// state. The `Channel` fields of API.md, plus the fields below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    #[serde(flatten)]
    pub channel: Channel,
    /// The newest message (`null` in a channel without messages).
    pub last_message: Option<LastMessage>,
    /// The position of the newest message (0 without messages).
    pub head_seq: i64,
    /// How far the caller has read: every message up to this position (0: nothing yet).
    pub read_seq: i64,
    /// Messages after `read_seq` that others sent (counted up to
    /// [`crate::limits::UNREAD_COUNT_MAX`]).
    pub unread_count: u32,
    /// Of those, the ones that mention the caller (`@username`).
    pub mention_count: u32,
}

/// The newest message of a conversation, for the list: a preview, not the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastMessage {
    pub id: MessageId,
    pub seq: i64,
    pub sender_id: UserId,
    /// The body's first [`crate::limits::PREVIEW_MAX_CHARS`] characters.
    pub preview: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationList {
    pub channels: Vec<Conversation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<User>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub members: Vec<User>,
}

/// Whether a member is online (any device connected), and when they were last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberPresence {
    pub user_id: UserId,
    pub online: bool,
    /// When their last connection closed (or its gateway stopped answering); `null` while
    /// online, and for a user not seen since presence was recorded.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// `GET /channels/{id}/presence`: every member of the channel, by user id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceList {
    pub members: Vec<MemberPresence>,
}

/// The orders of the channel directory (`GET /channels/directory?sort=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DirectorySort {
    /// Most members first (the default).
    #[default]
    Members,
    /// Most recent message first; channels without messages last, newest first.
    Activity,
}

impl DirectorySort {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectorySort::Members => "members",
            DirectorySort::Activity => "activity",
        }
    }

    /// The sort named in a query string (`members`, `activity`).
    pub fn parse(s: &str) -> Option<DirectorySort> {
        match s {
            "members" => Some(DirectorySort::Members),
            "activity" => Some(DirectorySort::Activity),
            _ => None,
        }
    }
}

/// A group channel as the directory lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectoryEntry {
    pub id: ChannelId,
    pub name: String,
    pub description: String,
    pub member_count: u32,
    /// When the channel last received a message; `null` when it has none yet.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Whether the caller is a member.
    pub is_member: bool,
}

/// One page of the channel directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirectoryPage {
    pub channels: Vec<DirectoryEntry>,
    /// Pass as `cursor` (with the same `sort`) for the next page; `null` on the last page.
    /// Opaque: its form may change.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_cursor: Option<String>,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub sender_id: UserId,
    pub body: String,
    pub client_msg_id: String,
    pub created_at: DateTime<Utc>,
    /// Position in the channel, the same for every member, live and in history. Messages and
    /// channel events (edits, deletes, reactions) share a channel's positions 1, 2, 3, ...
    /// without gaps, so consecutive messages may skip the positions of events between them.
    /// Absent only in an `ack`, which is sent before the message has its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// When the author last edited the body; absent if never edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// The message was deleted: a tombstone, its `body` empty. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The earlier message of the same channel this one answers, as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Box<ReplyPreview>>,
    /// Reactions, one entry per emoji (history only; live changes come as `event` frames).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The channel's members this message mentions (`@username`, see `limits::mentioned_usernames`),
    /// in the order the body names them; resolved by the message server when it places the
    /// message, and again at each edit. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// Files sent with the message (at most `limits::ATTACHMENTS_PER_MESSAGE_MAX`), in the
    /// order the sender listed them; the body may then be empty. Absent when none, and on a
    /// deleted message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::attachments::MessageAttachment>,
}

impl Message {
    /// A new message as its sender wrote it (not edited, deleted, or reacted to).
    pub fn new(
        id: MessageId,
        channel_id: ChannelId,
        sender_id: UserId,
        body: String,
        client_msg_id: String,
        created_at: DateTime<Utc>,
        seq: Option<i64>,
    ) -> Self {
        Message {
            id,
            channel_id,
            sender_id,
            body,
            client_msg_id,
            created_at,
            seq,
            edited_at: None,
            deleted: false,
            reply_to: None,
            reactions: Vec::new(),
            mentions: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// The message a reply answers: enough to show it above the reply and jump to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplyPreview {
    pub id: MessageId,
    pub seq: i64,
    pub sender_id: UserId,
    /// The replied-to body's first 140 characters (empty once it is deleted).
    pub preview: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// How many members reacted to a message with one emoji, and whether the caller did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    pub emoji: String,
    pub count: u32,
    pub me: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageList {
    pub messages: Vec<Message>,
}

/// The query of `GET /channels/{channel_id}/messages`, checked: `before` and `after` are
/// message ids, `limit` is 1 to 100 (default 50). With both cursors, the page is the messages
/// between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub before: Option<MessageId>,
    pub after: Option<MessageId>,
    pub limit: u32,
}

impl HistoryQuery {
    /// Parse the raw query values; the error is an [error code](crate::error_code) and a
    /// message for the client.
    pub fn parse(
        before: Option<&str>,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        use crate::{error_code, limits};
        let limit = match limit {
            None => limits::HISTORY_DEFAULT_LIMIT,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=limits::HISTORY_MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    (
                        error_code::INVALID_LIMIT,
                        format!("limit must be 1 to {}", limits::HISTORY_MAX_LIMIT),
                    )
                })?,
        };
        let cursor = |name: &str, v: Option<&str>| {
            v.map(|v| {
                v.parse::<MessageId>().map_err(|_| {
                    (
                        error_code::INVALID_CURSOR,
                        format!("{name} must be a message id"),
                    )
                })
            })
            .transpose()
        };
        Ok(HistoryQuery {
            before: cursor("before", before)?,
            after: cursor("after", after)?,
            limit,
        })
    }
}

/// Every error response: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable snake_case code a program can switch on.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
