// Wire types of the public contract (API.md, crates/chat-types). Every id is a string.

export interface User {
  id: string;
  username: string;
  display_name: string;
}

export interface Session {
  user: User;
  access_token: string;
  refresh_token: string;
  /** Seconds until the access token expires. */
  expires_in: number;
}

export type ChannelKind = "group" | "direct";

export interface Channel {
  id: string;
  kind: ChannelKind;
  name: string;
  description: string;
  created_at: string;
  /** Who created a group channel: its owner, who may delete anyone's messages there. Absent for
   * a direct conversation, and once the creator's account is gone. */
  created_by?: string | null;
  // The conversation list (`GET /channels`, docs/protocol.md "Read state") adds the read state;
  // the other answers that carry a channel (create, join, search) do not.
  /** The newest message; null before the first. */
  last_message?: LastMessage | null;
  /** The newest message's position (0 without messages). */
  head_seq?: number;
  /** The caller's stored read mark (0: nothing read). */
  read_seq?: number;
  /** Messages after `read_seq` sent by others, up to 9,999. */
  unread_count?: number;
  /** Of those, the ones that mention the caller. */
  mention_count?: number;
}

/** A conversation's newest message, as the conversation list shows it. */
export interface LastMessage {
  id: string;
  seq: number;
  sender_id: string;
  /** The body's first 140 characters. */
  preview: string;
  created_at: string;
}

/** The orders of the channel directory. */
export type DirectorySort = "members" | "activity";

/** A group channel as the directory lists it (`GET /channels/directory`). */
export interface DirectoryEntry {
  id: string;
  name: string;
  description: string;
  member_count: number;
  /** Time of the channel's latest message; null before its first. */
  last_activity_at: string | null;
  /** Whether the caller is a member. */
  is_member: boolean;
}

export interface DirectoryPage {
  channels: DirectoryEntry[];
  /** Pass back (with the same sort) for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface Message {
  id: string;
  channel_id: string;
  sender_id: string;
  /** Empty for a tombstone (`deleted`). */
  body: string;
  client_msg_id: string;
  created_at: string;
  /**
   * Position in the channel. Messages and events (edits, deletes, reactions) share one sequence,
   * so two consecutive messages may skip positions. Absent only in an `ack`.
   */
  seq?: number | null;
  /** When the body was last edited; absent: never. */
  edited_at?: string | null;
  /** A tombstone: the body is empty, there are no reactions. */
  deleted?: boolean;
  /** The earlier message this one answers, as it is now. */
  reply_to?: ReplyRef | null;
  /** One entry per emoji, in the order they were first used (history only; absent when none). */
  reactions?: Reaction[];
  /**
   * The ids of the channel's members the body mentions (`@username`), resolved by the server when
   * it places the message and again at each edit. Absent when none, and in an `ack`.
   */
  mentions?: string[];
  /**
   * Files the message carries (at most 4), in the order they were sent; the body may then be
   * empty. Absent when none, and on a deleted message.
   */
  attachments?: MessageAttachment[];
}

/** An attachment as a message carries it: enough to lay it out before anything is downloaded. */
export interface MessageAttachment {
  id: string;
  name: string;
  content_type: string;
  /** Bytes. */
  size: number;
  /** Pixels of an image, upright (absent for other files, and for an image whose header could not be read). */
  width?: number;
  height?: number;
}

/** An upload as `POST …/attachments` (and `…/upload-url`) answers it: where to PUT the bytes. */
export interface AttachmentUpload {
  id: string;
  upload: UploadRequest;
  /** Seconds the URL stays valid. */
  expires_in: number;
}

/** A presigned request: send exactly this method, URL and these headers (lowercase names). */
export interface UploadRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** An attachment as `POST …/complete` answers it. */
export interface Attachment extends MessageAttachment {
  channel_id: string;
  uploader_id: string;
  state: "pending" | "ready";
  created_at: string;
}

/** `GET …/attachments/{id}`: short-lived presigned links. */
export interface AttachmentLink {
  url: string;
  /** Present once the thumbnail is made (`thumbnail: "ready"`). */
  thumbnail_url?: string;
  thumbnail: "ready" | "pending" | "none";
  /** Seconds the links stay valid. */
  expires_in: number;
}

/** What a reply shows of the message it answers. */
export interface ReplyRef {
  id: string;
  seq: number;
  sender_id: string;
  /** The first 140 characters of its body; empty once it is deleted. */
  preview: string;
  deleted?: boolean;
}

export interface Reaction {
  emoji: string;
  count: number;
  /** The current user is among those who reacted with it. */
  me: boolean;
}

interface ChannelEventBase {
  id: string;
  channel_id: string;
  /** Its position in the channel, in the sequence it shares with the messages. */
  seq: number;
  actor_id: string;
  message_id: string;
  message_seq: number;
  client_event_id: string;
  created_at: string;
}

/** A change of an existing message (`event` frames). Reaction counts are absolute. */
export type ChannelEvent =
  // `mentions`: those of the new body (absent: none); they replace the message's.
  | (ChannelEventBase & { kind: "edited"; body: string; mentions?: string[] })
  | (ChannelEventBase & { kind: "deleted" })
  | (ChannelEventBase & { kind: "reaction_added"; emoji: string; count: number })
  | (ChannelEventBase & { kind: "reaction_removed"; emoji: string; count: number });

export interface ErrorBody {
  error: { code: string; message: string };
}

/** Whether the app is in front of the user (`app_state`); a connection starts in the foreground. */
export type AppVisibility = "foreground" | "background";

// WebSocket frames.
export type ClientFrame =
  | {
      type: "send";
      channel_id: string;
      client_msg_id: string;
      /** May be empty when `attachments` is not. */
      body: string;
      reply_to?: string;
      /** Ids of completed uploads of ours to this channel; absent when none. */
      attachments?: string[];
    }
  | { type: "resume"; channels: Record<string, string> }
  | { type: "edit"; channel_id: string; message_id: string; client_event_id: string; body: string }
  | { type: "delete"; channel_id: string; message_id: string; client_event_id: string }
  | { type: "react"; channel_id: string; message_id: string; client_event_id: string; emoji: string }
  | { type: "unreact"; channel_id: string; message_id: string; client_event_id: string; emoji: string }
  | { type: "ping" }
  | { type: "typing"; channel_id: string }
  | { type: "mark_read"; channel_id: string; seq: number }
  | { type: "app_state"; state: AppVisibility };

export type ServerFrame =
  | { type: "ready"; user_id: string; connection_id: string }
  | { type: "ack"; client_msg_id: string; message: Message }
  | { type: "message"; message: Message }
  | { type: "resumed"; channels: string[] }
  | {
      type: "error";
      code: string;
      message: string;
      client_msg_id?: string;
      client_event_id?: string;
      retry_after_ms?: number;
    }
  | { type: "event_ack"; client_event_id: string; event_id: string }
  | { type: "event"; event: ChannelEvent }
  | { type: "pong" }
  | { type: "read"; channel_id: string; seq: number }
  | { type: "typing"; channel_id: string; user_id: string; expires_in_ms: number }
  | { type: "presence"; user_id: string; online: boolean; last_seen_at?: string | null };

/** A member's presence (`GET /channels/{id}/presence`). */
export interface MemberPresence {
  user_id: string;
  online: boolean;
  /** When their last connection closed; null while online or never seen. */
  last_seen_at: string | null;
}

/** Close codes of the gateway (crates/chat-types/src/ws.rs). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1008,
  IDLE_TIMEOUT: 4000,
  UNAUTHORIZED: 4401,
  SLOW_CONSUMER: 4408,
} as const;

/** Limits of the contract (crates/chat-types/src/limits.rs). */
export const Limits = {
  USERNAME_MIN: 3,
  USERNAME_MAX: 32,
  PASSWORD_MIN: 8,
  PASSWORD_MAX: 1024,
  DISPLAY_NAME_MAX: 64,
  CHANNEL_NAME_MAX: 80,
  CHANNEL_DESCRIPTION_MAX: 1000,
  BODY_MAX_CHARS: 4000,
  HISTORY_PAGE: 50,
  HISTORY_MAX_LIMIT: 100,
  DIRECTORY_DEFAULT_LIMIT: 20,
  DIRECTORY_MAX_LIMIT: 100,
  USER_QUERY_MAX: 64,
  /** At most one `typing` per channel this often (the server drops the rest). */
  TYPING_INTERVAL_MS: 2000,
  /** How long a `typing` indicator lasts when the frame says nothing usable. */
  TYPING_EXPIRES_MS: 5000,
  /** A reply's preview of the message it answers, in characters. */
  REPLY_PREVIEW_CHARS: 140,
  EMOJI_MAX_BYTES: 64,
  CLIENT_EVENT_ID_MAX: 128,
  /** Distinct `@username` mentions recognised in one message. */
  MENTIONS_MAX: 20,
  /** Files one message carries. */
  ATTACHMENTS_PER_MESSAGE_MAX: 4,
  /** The largest file (the API's default `attachment_max_bytes`: 25 MiB). */
  ATTACHMENT_MAX_BYTES: 25 * 1024 * 1024,
  /** Characters of a file name. */
  ATTACHMENT_NAME_MAX: 255,
  /** Uploads a user may have started and not completed (the server refuses one more). */
  PENDING_UPLOADS_PER_USER_MAX: 20,
} as const;

/** The types of files that may be attached, exactly as the server accepts them (limits.rs). */
export const ATTACHMENT_TYPES: readonly string[] = [
  "image/jpeg",
  "image/png",
  "image/gif",
  "image/webp",
  "application/pdf",
  "text/plain",
  "application/zip",
  "video/mp4",
  "audio/mpeg",
  "audio/mp4",
];
