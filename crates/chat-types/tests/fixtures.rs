//! Golden JSON fixtures of every wire type, shared with the clients.
//!
//! One representative value of each type of `chat-types` is serialized into a pretty JSON file
//! under `fixtures/wire/` at the repository root. The iOS client (ChatKit's tests) and the web
//! client decode those files, so a change to a wire type that would break a client shows up as a
//! diff here first.
//!
//! The test fails when a file on disk differs from what it would write, when one is missing, and
//! when `fixtures/wire/` holds a `.json` file that no longer matches any type. Regenerate with
//! `UPDATE_FIXTURES=1 cargo test -p chat-types --test fixtures` and review the diff.
//!
//! # Layout of `fixtures/wire/`
//! - `rest_*`: request and response bodies of the public REST API.
//! - `ws_client_*` / `ws_server_*`: WebSocket frames, one file per variant (and per optional field).
//! - `ws_close_codes`, `ws_error_codes`, `rest_error_codes`, `limits`: the named constants, as
//!   JSON maps.
//! - `bus_*`, `internal_*`: internal records (Kafka, gateway delivery); no client decodes them.
//!
//! Every id and timestamp is fixed so that the output is deterministic.

use chat_types::attachments::{
    Attachment, AttachmentLink, AttachmentState, AttachmentUpload, CreateAttachment,
    MessageAttachment, ThumbnailState, UploadRequest,
};
use chat_types::bus::{
    Action, BusRecord, EventRecord, MembershipChange, MembershipRecord, MessageRecord, Target,
};
use chat_types::error_code;
use chat_types::events::{Change, ChannelEvent};
use chat_types::internal::{DeliveryBatch, DeliveryGroup, Event, ListDigest, ListRef};
use chat_types::limits;
use chat_types::notifications::{
    ChannelNotifications, Device, DeviceList, NotificationLevel, NotificationPreferences, Platform,
    PushEnvironment, RegisterDeviceRequest, SetNotificationLevel,
};
use chat_types::rest::{
    Channel, ChannelKind, ChannelList, Conversation, ConversationList, CreateChannelRequest,
    CreateDmRequest, DirectoryEntry, DirectoryPage, ErrorBody, LastMessage, LoginRequest,
    MemberList, MemberPresence, Message, MessageList, PresenceList, Reaction, RefreshRequest,
    RegisterRequest, ReplyPreview, Session, User, UserList, WsTicket,
};
use chat_types::ws::{ClientFrame, ServerFrame, close};
use chat_types::{ChannelId, EventId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;
use uuid::Uuid;

const UPDATE_HINT: &str = "run `UPDATE_FIXTURES=1 cargo test -p chat-types --test fixtures`";

// ---------------------------------------------------------------------------------------------
// Fixed sample data
// ---------------------------------------------------------------------------------------------

fn alice() -> User {
    User {
        id: UserId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_a11c)),
        username: "alice".into(),
        display_name: "Alice Liddell".into(),
    }
}

fn bob() -> User {
    User {
        id: UserId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0b0b)),
        username: "bob".into(),
        display_name: "Bob".into(),
    }
}

fn general_id() -> ChannelId {
    ChannelId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0001))
}

fn dm_id() -> ChannelId {
    ChannelId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0002))
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("fixed timestamp parses")
        .with_timezone(&Utc)
}

fn group_channel() -> Channel {
    Channel {
        id: general_id(),
        kind: ChannelKind::Group,
        name: "general".into(),
        description: "Company-wide announcements and chatter".into(),
        // Whole seconds: clients must accept timestamps without a fraction.
        created_at: at("2025-01-15T09:30:00Z"),
        created_by: Some(alice().id),
    }
}

fn direct_channel() -> Channel {
    Channel {
        id: dm_id(),
        kind: ChannelKind::Direct,
        name: bob().display_name,
        description: String::new(),
        created_at: at("2025-01-15T09:31:02.5Z"),
        created_by: None,
    }
}

const CLIENT_MSG_ID_1: &str = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c11";
const CLIENT_MSG_ID_2: &str = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c12";
const CLIENT_MSG_ID_3: &str = "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c13";

/// A stored message, with its place in the channel.
fn message(seq: i64, sender: &User, client_msg_id: &str, body: &str, created_at: &str) -> Message {
    Message::new(
        MessageId::derive(sender.id, client_msg_id),
        general_id(),
        sender.id,
        body.into(),
        client_msg_id.into(),
        at(created_at),
        Some(seq),
    )
}

/// History as it shows changes: the first message edited and reacted to, the second answering
/// it, a third deleted (a tombstone).
fn changed_messages() -> Vec<Message> {
    let mut first = first_message();
    first.body = "Hello, world! (edited) @bob".into();
    first.mentions = vec![bob().id];
    first.edited_at = Some(at("2025-01-15T09:40:00.250Z"));
    first.reactions = vec![
        Reaction {
            emoji: "👍".into(),
            count: 2,
            me: true,
        },
        Reaction {
            emoji: "🎉".into(),
            count: 1,
            me: false,
        },
    ];
    let mut reply = second_message();
    reply.reply_to = Some(Box::new(ReplyPreview {
        id: first.id,
        seq: 41,
        sender_id: alice().id,
        preview: "Hello, world! (edited) @bob".into(),
        deleted: false,
    }));
    let mut gone = message(
        44,
        &bob(),
        "5f0c8a52-8a8e-4a8e-9a43-0d4f6f1f6c13",
        "",
        "2025-01-15T09:33:00Z",
    );
    gone.deleted = true;
    vec![first, reply, gone]
}

/// An event on the first message, at position 45.
fn event(seq: i64, change: Change) -> ChannelEvent {
    ChannelEvent {
        id: EventId::derive(alice().id, "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51"),
        channel_id: general_id(),
        seq,
        actor_id: alice().id,
        message_id: first_message().id,
        message_seq: 41,
        client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51".into(),
        created_at: at("2025-01-15T09:40:00.250Z"),
        change,
    }
}

fn first_message() -> Message {
    // Microsecond precision, as PostgreSQL and CQL timestamps give.
    message(
        41,
        &alice(),
        CLIENT_MSG_ID_1,
        "Hello, world! 👋 «quotes» and \"escapes\"",
        "2025-01-15T09:32:10.123456Z",
    )
}

fn second_message() -> Message {
    message(
        42,
        &bob(),
        CLIENT_MSG_ID_2,
        "Hi Alice.\nTwo lines.",
        "2025-01-15T09:32:11.5Z",
    )
}

/// A photo and a PDF, as a message carries them (the photo with its upright size).
fn message_attachments() -> Vec<MessageAttachment> {
    vec![
        MessageAttachment {
            id: Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_f001),
            name: "IMG_0042.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 2_483_921,
            width: Some(3024),
            height: Some(4032),
        },
        MessageAttachment {
            id: Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_f002),
            name: "minutes 2025-01-15.pdf".into(),
            content_type: "application/pdf".into(),
            size: 88_311,
            width: None,
            height: None,
        },
    ]
}

/// A message sent with attachments and no text, at position 43.
fn message_with_attachments() -> Message {
    let mut m = message(43, &alice(), CLIENT_MSG_ID_3, "", "2025-01-15T09:32:12.25Z");
    m.attachments = message_attachments();
    m
}

/// What an `ack` carries: the message before it has its place, so without `seq`.
fn acked_message() -> Message {
    Message {
        seq: None,
        ..first_message()
    }
}

// ---------------------------------------------------------------------------------------------
// The fixtures
// ---------------------------------------------------------------------------------------------

/// A fixture: its file name (without `.json`) and the JSON it holds.
struct Fixture {
    name: String,
    json: Value,
}

/// Collects fixtures and checks, for each, that the value survives a JSON round trip.
#[derive(Default)]
struct Fixtures(Vec<Fixture>);

impl Fixtures {
    fn add<T>(&mut self, name: &str, value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let json = serde_json::to_value(value).expect("serializes");
        let back: T = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("fixture {name} does not deserialize back: {e}"));
        assert_eq!(&back, value, "fixture {name} does not round-trip");
        self.push(name, json);
    }

    fn push(&mut self, name: &str, json: Value) {
        assert!(
            !self.0.iter().any(|f| f.name == name),
            "fixture name {name} used twice"
        );
        self.0.push(Fixture {
            name: name.into(),
            json,
        });
    }
}

/// Names the fixture of each client frame variant. The exhaustive match makes a new variant a
/// compile error here until it has a fixture.
fn client_frame_fixture_name(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Send {
            reply_to: Some(_), ..
        } => "ws_client_send_reply",
        ClientFrame::Send { attachments, .. } if !attachments.is_empty() => {
            "ws_client_send_attachments"
        }
        ClientFrame::Send { .. } => "ws_client_send",
        ClientFrame::Edit { .. } => "ws_client_edit",
        ClientFrame::Delete { .. } => "ws_client_delete",
        ClientFrame::React { .. } => "ws_client_react",
        ClientFrame::Unreact { .. } => "ws_client_unreact",
        ClientFrame::Resume { .. } => "ws_client_resume",
        ClientFrame::Ping => "ws_client_ping",
        ClientFrame::MarkRead { .. } => "ws_client_mark_read",
        ClientFrame::Typing { .. } => "ws_client_typing",
        ClientFrame::AppState { .. } => "ws_client_app_state",
    }
}

/// Same as [`client_frame_fixture_name`] for server frames. `error` has a second fixture
/// (`ws_server_error_for_send`) with the optional `client_msg_id`.
fn server_frame_fixture_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Ready { .. } => "ws_server_ready",
        ServerFrame::Ack { .. } => "ws_server_ack",
        ServerFrame::Message { message } if !message.attachments.is_empty() => {
            "ws_server_message_attachments"
        }
        ServerFrame::Message { .. } => "ws_server_message",
        ServerFrame::Resumed { .. } => "ws_server_resumed",
        ServerFrame::Error {
            retry_after_ms: Some(_),
            ..
        } => "ws_server_error_rate_limited",
        ServerFrame::Error {
            client_event_id: Some(_),
            ..
        } => "ws_server_error_for_event",
        ServerFrame::Error {
            client_msg_id: None,
            ..
        } => "ws_server_error",
        ServerFrame::Error {
            client_msg_id: Some(_),
            ..
        } => "ws_server_error_for_send",
        ServerFrame::Pong => "ws_server_pong",
        ServerFrame::EventAck { .. } => "ws_server_event_ack",
        ServerFrame::Event { event } => match event.change {
            Change::Edited { .. } => "ws_server_event_edited",
            Change::Deleted => "ws_server_event_deleted",
            Change::ReactionAdded { .. } => "ws_server_event_reaction_added",
            Change::ReactionRemoved { .. } => "ws_server_event_reaction_removed",
        },
        ServerFrame::Read { .. } => "ws_server_read",
        ServerFrame::Typing { .. } => "ws_server_typing",
        ServerFrame::Presence { online: true, .. } => "ws_server_presence_online",
        ServerFrame::Presence { online: false, .. } => "ws_server_presence_offline",
    }
}

fn all_fixtures() -> Vec<Fixture> {
    let mut f = Fixtures::default();

    // REST bodies.
    f.add("rest_user", &alice());
    f.add(
        "rest_session",
        &Session {
            user: alice(),
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl".into(),
            refresh_token: "rt_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAA".into(),
            expires_in: 900,
        },
    );
    f.add(
        "rest_ws_ticket",
        &WsTicket {
            ticket: "wst_Qm9vdHN0cmFwcGVkIHRpY2tldA".into(),
            expires_in: 30,
        },
    );
    f.add(
        "rest_register_request",
        &RegisterRequest {
            username: "alice".into(),
            password: "correct horse battery staple".into(),
            display_name: Some("Alice Liddell".into()),
        },
    );
    f.add(
        "rest_register_request_minimal",
        &RegisterRequest {
            username: "bob".into(),
            password: "hunter2hunter2".into(),
            display_name: None,
        },
    );
    f.add(
        "rest_login_request",
        &LoginRequest {
            username: "alice".into(),
            password: "correct horse battery staple".into(),
        },
    );
    f.add(
        "rest_refresh_request",
        &RefreshRequest {
            refresh_token: "rt_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAA".into(),
        },
    );
    f.add(
        "rest_create_channel_request",
        &CreateChannelRequest {
            name: "general".into(),
            description: Some("Company-wide announcements and chatter".into()),
        },
    );
    f.add(
        "rest_create_channel_request_minimal",
        &CreateChannelRequest {
            name: "random".into(),
            description: None,
        },
    );
    f.add(
        "rest_create_dm_request",
        &CreateDmRequest { user_id: bob().id },
    );
    f.add("rest_channel_group", &group_channel());
    f.add("rest_channel_direct", &direct_channel());
    f.add(
        "rest_channel_list",
        &ChannelList {
            channels: vec![group_channel(), direct_channel()],
        },
    );
    // `GET /channels` with read state: one conversation with an unread message that mentions
    // the caller, one without messages (`last_message: null`).
    let second = second_message();
    f.add(
        "rest_conversation_list",
        &ConversationList {
            channels: vec![
                Conversation {
                    channel: group_channel(),
                    last_message: Some(LastMessage {
                        id: second.id,
                        seq: 2,
                        sender_id: second.sender_id,
                        preview: second.body.clone(),
                        created_at: second.created_at,
                    }),
                    head_seq: 2,
                    read_seq: 1,
                    unread_count: 1,
                    mention_count: 1,
                },
                Conversation {
                    channel: direct_channel(),
                    last_message: None,
                    head_seq: 0,
                    read_seq: 0,
                    unread_count: 0,
                    mention_count: 0,
                },
            ],
        },
    );
    // The directory: one channel with activity, one without (`null`), and the cursor of a
    // next page; the last page has `next_cursor: null`.
    f.add(
        "rest_directory_page",
        &DirectoryPage {
            channels: vec![
                DirectoryEntry {
                    id: general_id(),
                    name: "general".into(),
                    description: "Company-wide announcements and chatter".into(),
                    member_count: 42,
                    last_activity_at: Some(at("2025-01-15T10:02:03.456789Z")),
                    is_member: true,
                },
                DirectoryEntry {
                    id: ChannelId(Uuid::from_u128(0x0190_a2b4_0000_7000_8000_0000_0000_0003)),
                    name: "random".into(),
                    description: String::new(),
                    member_count: 1,
                    last_activity_at: None,
                    is_member: false,
                },
            ],
            next_cursor: Some("bTEuMS4wMTkwYTJiNC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDM".into()),
        },
    );
    f.add(
        "rest_directory_page_last",
        &DirectoryPage {
            channels: vec![],
            next_cursor: None,
        },
    );
    f.add(
        "rest_user_list",
        &UserList {
            users: vec![alice(), bob()],
        },
    );
    f.add(
        "rest_member_list",
        &MemberList {
            members: vec![alice(), bob()],
        },
    );
    f.add(
        "rest_presence_list",
        &PresenceList {
            members: vec![
                MemberPresence {
                    user_id: alice().id,
                    online: true,
                    last_seen_at: None,
                },
                MemberPresence {
                    user_id: bob().id,
                    online: false,
                    last_seen_at: Some(at("2025-01-15T10:07:41.250Z")),
                },
            ],
        },
    );
    f.add("rest_message", &first_message());
    f.add("rest_message_with_attachments", &message_with_attachments());
    f.add(
        "rest_message_list",
        &MessageList {
            messages: vec![first_message(), second_message()],
        },
    );
    f.add(
        "rest_message_list_with_changes",
        &MessageList {
            messages: changed_messages(),
        },
    );
    f.add(
        "rest_error",
        &ErrorBody::new("username_taken", "that username is already taken"),
    );
    // Push notifications.
    const TOKEN: &str = "5e0f2a8c0b1d4e7f9a3c6b2d8e1f4a7c0b3d6e9f2a5c8b1d4e7f0a3c6b9d2e5f";
    f.add(
        "rest_register_device_request",
        &RegisterDeviceRequest {
            platform: Platform::Apns,
            token: TOKEN.into(),
            environment: PushEnvironment::Sandbox,
            bundle_id: "com.example.chat".into(),
        },
    );
    let device = Device {
        platform: Platform::Apns,
        token: TOKEN.into(),
        environment: PushEnvironment::Sandbox,
        bundle_id: "com.example.chat".into(),
        created_at: at("2025-01-15T09:30:05.5Z"),
        updated_at: at("2025-01-16T08:00:00Z"),
    };
    f.add("rest_device", &device);
    f.add(
        "rest_device_list",
        &DeviceList {
            devices: vec![
                device.clone(),
                Device {
                    environment: PushEnvironment::Production,
                    token: TOKEN.replace('5', "6"),
                    ..device
                },
            ],
        },
    );
    f.add(
        "rest_set_notification_level",
        &SetNotificationLevel {
            level: NotificationLevel::Mentions,
        },
    );
    f.add(
        "rest_channel_notifications",
        &ChannelNotifications {
            channel_id: general_id(),
            level: NotificationLevel::None,
        },
    );
    f.add(
        "rest_notification_preferences",
        &NotificationPreferences {
            hide_previews: true,
        },
    );

    // Attachments.
    let attachment_id = Uuid::from_u128(0x0190_a2b4_1234_7000_8000_0000_0000_0a77);
    f.add(
        "rest_create_attachment",
        &CreateAttachment {
            name: "IMG_0042.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 2_483_921,
        },
    );
    f.add(
        "rest_attachment_upload",
        &AttachmentUpload {
            id: attachment_id,
            upload: UploadRequest {
                method: "PUT".into(),
                url:
                    "http://127.0.0.1:8080/chat-attachments/o/0190a2b4-1234-7000-8000-000000000a77\
                      ?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature=5f2c"
                        .into(),
                headers: [
                    ("content-length".to_owned(), "2483921".to_owned()),
                    ("content-type".to_owned(), "image/jpeg".to_owned()),
                ]
                .into(),
            },
            expires_in: limits::UPLOAD_URL_SECS,
        },
    );
    let attachment = Attachment {
        id: attachment_id,
        channel_id: general_id(),
        uploader_id: alice().id,
        name: "IMG_0042.jpg".into(),
        content_type: "image/jpeg".into(),
        size: 2_483_921,
        width: Some(3024),
        height: Some(4032),
        state: AttachmentState::Ready,
        created_at: at("2025-01-15T09:31:00Z"),
    };
    f.add("rest_attachment", &attachment);
    f.add(
        "rest_attachment_pending",
        &Attachment {
            name: "notes.pdf".into(),
            content_type: "application/pdf".into(),
            size: 48_213,
            width: None,
            height: None,
            state: AttachmentState::Pending,
            ..attachment
        },
    );
    f.add(
        "rest_attachment_link",
        &AttachmentLink {
            url: "http://127.0.0.1:8080/chat-attachments/o/0190a2b4-1234-7000-8000-000000000a77\
                  ?response-content-disposition=inline&X-Amz-Expires=300&X-Amz-Signature=9a1b"
                .into(),
            thumbnail_url: Some(
                "http://127.0.0.1:8080/chat-attachments/t/0190a2b4-1234-7000-8000-000000000a77.jpg\
                 ?X-Amz-Expires=300&X-Amz-Signature=77c0"
                    .into(),
            ),
            thumbnail: ThumbnailState::Ready,
            expires_in: limits::DOWNLOAD_URL_SECS,
        },
    );
    f.add(
        "rest_attachment_link_no_thumbnail",
        &AttachmentLink {
            url: "http://127.0.0.1:8080/chat-attachments/o/0190a2b4-1234-7000-8000-000000000a77\
                  ?response-content-disposition=attachment%3B%20filename%2A%3DUTF-8%27%27notes.pdf\
                  &X-Amz-Expires=300&X-Amz-Signature=3e4d"
                .into(),
            thumbnail_url: None,
            thumbnail: ThumbnailState::None,
            expires_in: limits::DOWNLOAD_URL_SECS,
        },
    );

    // WebSocket frames, client to server.
    let client_frames = [
        ClientFrame::Send {
            channel_id: general_id(),
            client_msg_id: CLIENT_MSG_ID_1.into(),
            body: "Hello, world! 👋".into(),
            reply_to: None,
            attachments: Vec::new(),
        },
        ClientFrame::Send {
            channel_id: general_id(),
            client_msg_id: CLIENT_MSG_ID_2.into(),
            body: "Agreed!".into(),
            reply_to: Some(first_message().id),
            attachments: Vec::new(),
        },
        ClientFrame::Send {
            channel_id: general_id(),
            client_msg_id: CLIENT_MSG_ID_3.into(),
            body: String::new(),
            reply_to: None,
            attachments: message_attachments().iter().map(|a| a.id).collect(),
        },
        ClientFrame::Edit {
            channel_id: general_id(),
            message_id: first_message().id,
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51".into(),
            body: "Hello, world! (edited)".into(),
        },
        ClientFrame::Delete {
            channel_id: general_id(),
            message_id: first_message().id,
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a52".into(),
        },
        ClientFrame::React {
            channel_id: general_id(),
            message_id: first_message().id,
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a53".into(),
            emoji: "👍".into(),
        },
        ClientFrame::Unreact {
            channel_id: general_id(),
            message_id: first_message().id,
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a54".into(),
            emoji: "👍".into(),
        },
        ClientFrame::Resume {
            channels: BTreeMap::from([
                (general_id(), second_message().id),
                (dm_id(), MessageId::derive(bob().id, "dm-1")),
            ]),
        },
        ClientFrame::Ping,
        ClientFrame::MarkRead {
            channel_id: general_id(),
            seq: 2,
        },
        ClientFrame::Typing {
            channel_id: general_id(),
        },
        ClientFrame::AppState {
            state: chat_types::ws::AppState::Background,
        },
    ];
    for frame in &client_frames {
        f.add(client_frame_fixture_name(frame), frame);
    }

    // WebSocket frames, server to client.
    let server_frames = [
        ServerFrame::Ready {
            user_id: alice().id,
            connection_id: "gw-1:0190a2b4-0000-7000-8000-00000000c0c0".into(),
        },
        ServerFrame::Ack {
            client_msg_id: CLIENT_MSG_ID_1.into(),
            message: acked_message(),
        },
        ServerFrame::Message {
            message: second_message(),
        },
        ServerFrame::Message {
            message: message_with_attachments(),
        },
        ServerFrame::Resumed {
            channels: vec![general_id(), dm_id()],
        },
        ServerFrame::Error {
            code: error_code::MALFORMED_FRAME.into(),
            message: "expected a JSON text frame with a `type` field".into(),
            client_msg_id: None,
            retry_after_ms: None,
            client_event_id: None,
        },
        ServerFrame::Error {
            code: error_code::NOT_A_MEMBER.into(),
            message: "you are not a member of this channel".into(),
            client_msg_id: Some(CLIENT_MSG_ID_2.into()),
            retry_after_ms: None,
            client_event_id: None,
        },
        ServerFrame::Error {
            code: error_code::NOT_AUTHOR.into(),
            message: "only the author may edit a message".into(),
            client_msg_id: None,
            retry_after_ms: None,
            client_event_id: Some("7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51".into()),
        },
        ServerFrame::EventAck {
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51".into(),
            event_id: event(45, Change::Deleted).id,
        },
        ServerFrame::Event {
            event: event(
                45,
                Change::Edited {
                    body: "Hello, world! (edited) @bob".into(),
                    mentions: vec![bob().id],
                },
            ),
        },
        ServerFrame::Event {
            event: event(46, Change::Deleted),
        },
        ServerFrame::Event {
            event: event(
                47,
                Change::ReactionAdded {
                    emoji: "👍".into(),
                    count: 2,
                },
            ),
        },
        ServerFrame::Event {
            event: event(
                48,
                Change::ReactionRemoved {
                    emoji: "👍".into(),
                    count: 1,
                },
            ),
        },
        ServerFrame::Error {
            code: error_code::RATE_LIMITED.into(),
            message: "too many messages; resend this one after retry_after_ms".into(),
            client_msg_id: Some(CLIENT_MSG_ID_2.into()),
            retry_after_ms: Some(250),
            client_event_id: None,
        },
        ServerFrame::Pong,
        ServerFrame::Read {
            channel_id: general_id(),
            seq: 2,
        },
        ServerFrame::Typing {
            channel_id: general_id(),
            user_id: bob().id,
            expires_in_ms: limits::TYPING_EXPIRES_MS,
        },
        ServerFrame::Presence {
            user_id: bob().id,
            online: true,
            last_seen_at: None,
        },
        ServerFrame::Presence {
            user_id: bob().id,
            online: false,
            last_seen_at: Some(at("2025-01-15T10:07:41.250Z")),
        },
    ];
    for frame in &server_frames {
        f.add(server_frame_fixture_name(frame), frame);
    }

    // Named constants, as maps a client can compare its own constants with.
    f.push(
        "ws_close_codes",
        json!({
            "going_away": close::GOING_AWAY,
            "unauthorized": close::UNAUTHORIZED,
            "slow_consumer": close::SLOW_CONSUMER,
            "idle_timeout": close::IDLE_TIMEOUT,
            "message_too_big": close::MESSAGE_TOO_BIG,
            "protocol_error": close::PROTOCOL_ERROR,
        }),
    );
    // Error codes: every code a client may switch on, as `{"<code>": "<code>"}` maps.
    let codes = |list: &[&str]| -> Value {
        Value::Object(
            list.iter()
                .map(|c| ((*c).to_owned(), Value::from(*c)))
                .collect(),
        )
    };
    f.push("ws_error_codes", codes(error_code::WS));
    // The file types a server accepts by default, in order: clients check picked files against
    // this list before uploading, and their tests compare their copy with it.
    f.push("attachment_types", json!(limits::ATTACHMENT_TYPES));
    f.push("rest_error_codes", codes(error_code::REST));
    f.push(
        "limits",
        json!({
            "username_min": limits::USERNAME_MIN,
            "username_max": limits::USERNAME_MAX,
            "password_min": limits::PASSWORD_MIN,
            "password_max": limits::PASSWORD_MAX,
            "display_name_max": limits::DISPLAY_NAME_MAX,
            "channel_name_max": limits::CHANNEL_NAME_MAX,
            "channel_description_max": limits::CHANNEL_DESCRIPTION_MAX,
            "body_max_chars": limits::BODY_MAX_CHARS,
            "client_msg_id_max": limits::CLIENT_MSG_ID_MAX,
            "max_request_bytes": limits::MAX_REQUEST_BYTES,
            "history_default_limit": limits::HISTORY_DEFAULT_LIMIT,
            "history_max_limit": limits::HISTORY_MAX_LIMIT,
            "directory_default_limit": limits::DIRECTORY_DEFAULT_LIMIT,
            "directory_max_limit": limits::DIRECTORY_MAX_LIMIT,
            "user_search_limit": limits::USER_SEARCH_LIMIT,
            "user_query_max": limits::USER_QUERY_MAX,
            "typing_interval_ms": limits::TYPING_INTERVAL_MS,
            "typing_expires_ms": limits::TYPING_EXPIRES_MS,
            "emoji_max_bytes": limits::EMOJI_MAX_BYTES,
            "attachments_per_message_max": limits::ATTACHMENTS_PER_MESSAGE_MAX,
        }),
    );

    // Internal records: not part of the public contract, kept so that every type has a sample.
    let record = MessageRecord {
        id: first_message().id,
        channel_id: general_id(),
        sender_id: alice().id,
        body: first_message().body,
        client_msg_id: CLIENT_MSG_ID_1.into(),
        created_at: first_message().created_at,
        reply_to: None,
        attachments: Vec::new(),
    };
    f.add("bus_message_record", &BusRecord::Message(record));
    let with_files = message_with_attachments();
    f.add(
        "bus_message_record_attachments",
        &BusRecord::Message(MessageRecord {
            id: with_files.id,
            channel_id: general_id(),
            sender_id: alice().id,
            body: String::new(),
            client_msg_id: CLIENT_MSG_ID_3.into(),
            created_at: with_files.created_at,
            reply_to: None,
            attachments: with_files.attachments,
        }),
    );
    f.add(
        "bus_event_record",
        &BusRecord::Event(EventRecord {
            id: event(45, Change::Deleted).id,
            channel_id: general_id(),
            actor_id: alice().id,
            target: Target {
                id: first_message().id,
                seq: 41,
            },
            client_event_id: "7d3e0a11-1c2b-4f5e-8a9b-0c1d2e3f4a51".into(),
            created_at: at("2025-01-15T09:40:00.250Z"),
            action: Action::React {
                emoji: "👍".into()
            },
        }),
    );
    f.add(
        "bus_membership_record",
        &BusRecord::Membership(MembershipRecord {
            channel_id: general_id(),
            user_id: bob().id,
            change: MembershipChange::Joined,
        }),
    );
    let general_list = || ListRef {
        channel_id: general_id(),
        digest: ListDigest::of(&[alice().id, bob().id]),
    };
    f.add(
        "internal_delivery_batch",
        &DeliveryBatch {
            groups: vec![
                // A big channel's messages carry its member list, named so that the gateway keeps it
                DeliveryGroup {
                    recipients: Some(vec![alice().id, bob().id]),
                    list: Some(general_list()),
                    events: vec![Event::Message {
                        message: first_message(),
                    }],
                },
                DeliveryGroup {
                    recipients: Some(vec![bob().id]),
                    list: None,
                    events: vec![Event::Membership {
                        channel_id: general_id(),
                        user_id: bob().id,
                        change: MembershipChange::Left,
                        seq: 42,
                    }],
                },
                DeliveryGroup {
                    recipients: Some(vec![alice().id]),
                    list: None,
                    events: vec![
                        Event::Typing {
                            channel_id: general_id(),
                            user_id: bob().id,
                            expires_in_ms: limits::TYPING_EXPIRES_MS,
                        },
                        Event::Presence {
                            user_id: bob().id,
                            online: false,
                            last_seen_at: Some(at("2025-01-15T10:07:41.250Z")),
                        },
                    ],
                },
                // ... and a later batch leaves the list out: the gateway uses its copy
                DeliveryGroup {
                    recipients: None,
                    list: Some(general_list()),
                    events: vec![Event::Message {
                        message: second_message(),
                    }],
                },
            ],
        },
    );

    f.0
}

// ---------------------------------------------------------------------------------------------
// Comparing with, and writing to, fixtures/wire/
// ---------------------------------------------------------------------------------------------

/// Read at run time (`cargo test` sets `CARGO_MANIFEST_DIR`): the build directory is shared
/// between checkouts, and a binary compiled in another one must check this one's fixtures.
fn fixtures_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest.join("../../fixtures/wire")
}

/// `json` with the keys of every object in sorted order, whether or not some crate of the build
/// turns on serde_json's `preserve_order` feature.
fn sorted(json: &Value) -> Value {
    match json {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The exact bytes of a fixture file: two-space pretty JSON with sorted keys and a final newline.
fn render(json: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(json)).expect("renders");
    text.push('\n');
    text
}

fn update_requested() -> bool {
    std::env::var_os("UPDATE_FIXTURES").is_some_and(|v| !v.is_empty() && v != "0")
}

#[test]
fn wire_fixtures_match_the_types() {
    let dir = fixtures_dir();
    let fixtures = all_fixtures();
    let update = update_requested();
    if update {
        std::fs::create_dir_all(&dir).expect("creates fixtures/wire");
    }

    let mut problems = Vec::new();
    for fixture in &fixtures {
        let path = dir.join(format!("{}.json", fixture.name));
        let expected = render(&fixture.json);
        let actual = std::fs::read_to_string(&path).ok();
        if actual.as_deref() == Some(expected.as_str()) {
            continue;
        }
        if update {
            std::fs::write(&path, &expected)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        } else if actual.is_none() {
            problems.push(format!("missing: fixtures/wire/{}.json", fixture.name));
        } else {
            problems.push(format!("differs: fixtures/wire/{}.json", fixture.name));
        }
    }

    // A file left over from a renamed or removed type would mislead the clients that read it.
    let known: BTreeSet<String> = fixtures
        .iter()
        .map(|f| format!("{}.json", f.name))
        .collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") || known.contains(&name) {
                continue;
            }
            if update {
                std::fs::remove_file(entry.path())
                    .unwrap_or_else(|e| panic!("cannot remove {name}: {e}"));
            } else {
                problems.push(format!("stale: fixtures/wire/{name}"));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "fixtures/wire is out of date with chat-types:\n  {}\n{UPDATE_HINT} and review the diff",
        problems.join("\n  ")
    );
}

#[test]
fn every_frame_variant_has_a_fixture() {
    let names: BTreeSet<String> = all_fixtures().into_iter().map(|f| f.name).collect();
    for name in [
        "ws_client_send",
        "ws_client_resume",
        "ws_client_ping",
        "ws_server_ready",
        "ws_server_ack",
        "ws_server_message",
        "ws_server_resumed",
        "ws_server_error",
        "ws_server_error_for_send",
        "ws_server_pong",
        "ws_client_typing",
        "ws_server_typing",
        "ws_server_presence_online",
        "ws_server_presence_offline",
    ] {
        assert!(names.contains(name), "no fixture named {name}");
    }
}

#[test]
fn acked_message_fixture_has_no_seq_and_live_message_has_one() {
    let fixtures = all_fixtures();
    let get = |name: &str| {
        &fixtures
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
            .json
    };
    assert!(get("ws_server_ack")["message"].get("seq").is_none());
    assert_eq!(get("ws_server_message")["message"]["seq"], json!(42));
    assert!(get("ws_server_error").get("client_msg_id").is_none());
}
