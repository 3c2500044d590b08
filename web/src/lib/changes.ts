// Our own changes of messages (edit, delete, react, unreact) on their way to the server.
//
// Like sends, changes are idempotent by id: the server derives the event id from
// (user, client_event_id), so a change that was not acked is resent with the SAME
// client_event_id after a reconnect, an `unavailable` error or (after `retry_after_ms`) a
// `rate_limited` error, and is never applied twice. An `event_ack` says Kafka has it; its `event`
// follows (or never, if it turned out moot). Until then the change is shown optimistically on
// top of the message (see `overlayChanges`).
//
// Every function here is pure.

import type { ChannelEvent, ClientFrame, Message, Reaction } from "./types";
import { Limits } from "./types";

export type ChangeKind = "edit" | "delete" | "react" | "unreact";

export interface PendingChange {
  client_event_id: string;
  channel_id: string;
  message_id: string;
  kind: ChangeKind;
  /** The new body (edit). */
  body?: string;
  /** The emoji (react, unreact). */
  emoji?: string;
  /** Set by its `event_ack`: Kafka has it; waiting for its `event`. */
  event_id?: string;
  /** How many times it was written to a socket. */
  attempts: number;
}

/** The frame that makes (or remakes, with the same id) a change. */
export function changeFrame(c: PendingChange): ClientFrame {
  const base = { channel_id: c.channel_id, message_id: c.message_id, client_event_id: c.client_event_id };
  switch (c.kind) {
    case "edit":
      return { type: "edit", ...base, body: c.body ?? "" };
    case "delete":
      return { type: "delete", ...base };
    case "react":
      return { type: "react", ...base, emoji: c.emoji ?? "" };
    case "unreact":
      return { type: "unreact", ...base, emoji: c.emoji ?? "" };
  }
}

export function addChange(list: readonly PendingChange[], c: PendingChange): PendingChange[] {
  if (list.some((x) => x.client_event_id === c.client_event_id)) return list as PendingChange[];
  return [...list, c];
}

/** Changes the server has not acked: what goes out again after a reconnect. */
export function unackedChanges(list: readonly PendingChange[]): PendingChange[] {
  return list.filter((c) => c.event_id === undefined);
}

/** An `event_ack`: the change is durable; it now waits for its event. */
export function ackChange(list: readonly PendingChange[], clientEventId: string, eventId: string): PendingChange[] {
  const i = list.findIndex((c) => c.client_event_id === clientEventId);
  if (i < 0 || list[i].event_id === eventId) return list as PendingChange[];
  const out = list.slice();
  out[i] = { ...out[i], event_id: eventId };
  return out;
}

export function countAttempt(list: readonly PendingChange[], clientEventId: string): PendingChange[] {
  const i = list.findIndex((c) => c.client_event_id === clientEventId);
  if (i < 0) return list as PendingChange[];
  const out = list.slice();
  out[i] = { ...out[i], attempts: out[i].attempts + 1 };
  return out;
}

export function dropChange(list: readonly PendingChange[], clientEventId: string): PendingChange[] {
  return list.some((c) => c.client_event_id === clientEventId)
    ? list.filter((c) => c.client_event_id !== clientEventId)
    : (list as PendingChange[]);
}

/**
 * An `event` arrived: the change it is the outcome of is settled (by event id once acked, or by
 * our client_event_id: the event may overtake the ack). A delete also settles every other change
 * of that message: they are moot now.
 */
export function settleByEvent(list: readonly PendingChange[], e: ChannelEvent, myId: string): PendingChange[] {
  const out = list.filter(
    (c) =>
      !(
        c.event_id === e.id ||
        (e.actor_id === myId && c.client_event_id === e.client_event_id) ||
        (e.kind === "deleted" && c.message_id === e.message_id)
      ),
  );
  return out.length === list.length ? (list as PendingChange[]) : out;
}

/** The changes of one message, in the order they were made. */
export function changesOf(list: readonly PendingChange[], messageId: string): PendingChange[] {
  return list.filter((c) => c.message_id === messageId);
}

/** How a message looks with our pending changes on top (until their events come). */
export interface Overlaid {
  message: Message;
  /** An edit of ours is on its way. */
  saving: boolean;
  /** A delete of ours is on its way. */
  deleting: boolean;
}

/**
 * The message as it will look once our pending changes of it are applied: the latest edit's body,
 * our reactions toggled (counts moved by one, as our own reaction would), a delete pending.
 */
export function overlayChanges(m: Message, changes: readonly PendingChange[]): Overlaid {
  let message = m;
  let saving = false;
  let deleting = false;
  if (m.deleted) return { message, saving, deleting };
  for (const c of changes) {
    if (c.message_id !== m.id) continue;
    if (c.kind === "edit" && c.body !== undefined) {
      message = { ...message, body: c.body };
      saving = true;
    } else if (c.kind === "delete") {
      deleting = true;
    } else if ((c.kind === "react" || c.kind === "unreact") && c.emoji) {
      message = { ...message, reactions: toggled(message.reactions ?? [], c.emoji, c.kind === "react") };
    }
  }
  return { message, saving, deleting };
}

function toggled(list: readonly Reaction[], emoji: string, on: boolean): Reaction[] {
  const i = list.findIndex((r) => r.emoji === emoji);
  const cur = i >= 0 ? list[i] : undefined;
  if (on) {
    if (cur?.me) return list as Reaction[];
    if (cur) return list.map((r, j) => (j === i ? { ...r, count: r.count + 1, me: true } : r));
    return [...list, { emoji, count: 1, me: true }];
  }
  if (!cur || !cur.me) return list as Reaction[];
  if (cur.count <= 1) return list.filter((_, j) => j !== i);
  return list.map((r, j) => (j === i ? { ...r, count: r.count - 1, me: false } : r));
}

/** Why an emoji would be refused (`invalid_emoji`), or null: 1-64 bytes, no white space or controls. */
export function emojiProblem(emoji: string): string | null {
  const bytes = new TextEncoder().encode(emoji).length;
  if (bytes === 0) return "Pick a reaction.";
  if (bytes > Limits.EMOJI_MAX_BYTES) return "That reaction is too long.";
  if (/[\s\p{Cc}]/u.test(emoji)) return "Reactions cannot contain spaces or control characters.";
  return null;
}

/** Error codes after which the same change is sent again (same client_event_id). */
export function isRetryable(code: string): boolean {
  return code === "unavailable" || code === "rate_limited";
}
