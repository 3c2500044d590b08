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
  body: string;
  client_msg_id: string;
  created_at: string;
  /** Position in the channel (1, 2, 3, ... without gaps). Absent only in an `ack`. */
  seq?: number | null;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

// WebSocket frames.
export type ClientFrame =
  | { type: "send"; channel_id: string; client_msg_id: string; body: string }
  | { type: "resume"; channels: Record<string, string> }
  | { type: "ping" }
  | { type: "typing"; channel_id: string };

export type ServerFrame =
  | { type: "ready"; user_id: string; connection_id: string }
  | { type: "ack"; client_msg_id: string; message: Message }
  | { type: "message"; message: Message }
  | { type: "resumed"; channels: string[] }
  | { type: "error"; code: string; message: string; client_msg_id?: string }
  | { type: "pong" }
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
} as const;
