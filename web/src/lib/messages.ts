// Per-channel message timeline: history pages, live frames, acks and our own optimistic
// entries merged into one list in channel order (by `seq`), without duplicates.
//
// Every function here is pure: it takes a timeline and returns a new one (or the same object
// when nothing changed), so the UI can compare by reference.

import type { Message } from "./types";

export type OutgoingStatus = "sending" | "failed";

/** A message we sent that the server has not acknowledged yet. */
export interface Outgoing {
  client_msg_id: string;
  channel_id: string;
  sender_id: string;
  body: string;
  /** Local time of the first attempt (RFC 3339). */
  created_at: string;
  status: OutgoingStatus;
  /** Why the last attempt failed, in words for a person. */
  error?: string;
}

export interface Timeline {
  /** Messages with a place in the channel, sorted by `seq`, each once. */
  placed: Message[];
  /**
   * Messages the server accepted whose place we don't know yet (an `ack` has no `seq`).
   * Shown after `placed`, in the order they were acknowledged.
   */
  unplaced: Message[];
  /** Our messages waiting for their `ack`, in the order they were written. */
  pending: Outgoing[];
}

export type TimelineItem =
  | { kind: "message"; key: string; message: Message; confirmed: true }
  | { kind: "outgoing"; key: string; outgoing: Outgoing; confirmed: false };

export const emptyTimeline = (): Timeline => ({ placed: [], unplaced: [], pending: [] });

const hasSeq = (m: Message): m is Message & { seq: number } =>
  typeof m.seq === "number" && Number.isFinite(m.seq);

/** The key that names a message independently of its server id: its sender's client_msg_id. */
const clientKey = (senderId: string, clientMsgId: string) => `${senderId}\u0000${clientMsgId}`;

/** Where a message goes between two `placed` neighbours (binary search on seq). */
function insertionIndex(placed: Message[], seq: number): number {
  let lo = 0;
  let hi = placed.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((placed[mid].seq as number) < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Merges messages from any source (a history page, a live `message` frame, the message of an
 * `ack`, a resume) into the timeline. A message already present (same id, or same sender and
 * client_msg_id) is not added twice; if the copy we had lacked its `seq`, the new one places it.
 * Pending entries that the merged messages confirm are removed.
 */
export function mergeMessages(tl: Timeline, incoming: readonly Message[]): Timeline {
  if (incoming.length === 0) return tl;
  let placed = tl.placed;
  let unplaced = tl.unplaced;
  let pending = tl.pending;
  let changed = false;

  // Indexes of what we have, kept in step as we go.
  const placedIds = new Set(placed.map((m) => m.id));
  const placedKeys = new Set(placed.map((m) => clientKey(m.sender_id, m.client_msg_id)));
  const placedSeqs = new Set(placed.map((m) => m.seq as number));

  for (const m of incoming) {
    const key = clientKey(m.sender_id, m.client_msg_id);

    // Whatever the source, this confirms our optimistic entry.
    if (pending.some((p) => p.client_msg_id === m.client_msg_id && p.sender_id === m.sender_id)) {
      pending = pending.filter((p) => !(p.client_msg_id === m.client_msg_id && p.sender_id === m.sender_id));
      changed = true;
    }

    if (placedIds.has(m.id) || placedKeys.has(key)) continue; // already in its place

    if (hasSeq(m)) {
      if (placedSeqs.has(m.seq)) continue; // a position is held by one message only
      // It may have been waiting without a place.
      const before = unplaced.length;
      unplaced = unplaced.filter((u) => u.id !== m.id && clientKey(u.sender_id, u.client_msg_id) !== key);
      if (unplaced.length !== before) changed = true;
      if (placed === tl.placed) placed = placed.slice();
      placed.splice(insertionIndex(placed, m.seq), 0, m);
      placedIds.add(m.id);
      placedKeys.add(key);
      placedSeqs.add(m.seq);
      changed = true;
    } else {
      if (unplaced.some((u) => u.id === m.id || clientKey(u.sender_id, u.client_msg_id) === key)) continue;
      unplaced = [...unplaced, m];
      changed = true;
    }
  }
  return changed ? { placed, unplaced, pending } : tl;
}

/** Adds our optimistic entry (or sets an existing one back to "sending" for a retry). */
export function addOutgoing(tl: Timeline, out: Outgoing): Timeline {
  const key = clientKey(out.sender_id, out.client_msg_id);
  // Already confirmed: nothing to show as pending.
  if (
    tl.placed.some((m) => clientKey(m.sender_id, m.client_msg_id) === key) ||
    tl.unplaced.some((m) => clientKey(m.sender_id, m.client_msg_id) === key)
  ) {
    return tl;
  }
  const i = tl.pending.findIndex((p) => p.client_msg_id === out.client_msg_id);
  if (i >= 0) {
    const pending = tl.pending.slice();
    pending[i] = { ...pending[i], status: out.status, error: out.error };
    return { ...tl, pending };
  }
  return { ...tl, pending: [...tl.pending, out] };
}

/** Sets the status of a pending entry (e.g. "failed" with the reason, or "sending" on retry). */
export function setOutgoingStatus(
  tl: Timeline,
  clientMsgId: string,
  status: OutgoingStatus,
  error?: string,
): Timeline {
  const i = tl.pending.findIndex((p) => p.client_msg_id === clientMsgId);
  if (i < 0) return tl;
  const cur = tl.pending[i];
  if (cur.status === status && cur.error === error) return tl;
  const pending = tl.pending.slice();
  pending[i] = { ...cur, status, error: status === "failed" ? error : undefined };
  return { ...tl, pending };
}

/** Confirms a pending entry with the message of its `ack`. */
export function applyAck(tl: Timeline, clientMsgId: string, message: Message): Timeline {
  // The ack's message carries the same client_msg_id; normalise in case it was omitted.
  const m = message.client_msg_id ? message : { ...message, client_msg_id: clientMsgId };
  return mergeMessages(tl, [m]);
}

/** Removes a pending entry (the person gave up on it). */
export function dropOutgoing(tl: Timeline, clientMsgId: string): Timeline {
  if (!tl.pending.some((p) => p.client_msg_id === clientMsgId)) return tl;
  return { ...tl, pending: tl.pending.filter((p) => p.client_msg_id !== clientMsgId) };
}

/** Everything to show, in order: placed messages, then unplaced ones, then pending entries. */
export function timelineItems(tl: Timeline): TimelineItem[] {
  const items: TimelineItem[] = [];
  for (const m of tl.placed) items.push({ kind: "message", key: `m:${m.id}`, message: m, confirmed: true });
  for (const m of tl.unplaced) items.push({ kind: "message", key: `m:${m.id}`, message: m, confirmed: true });
  for (const p of tl.pending) {
    items.push({ kind: "outgoing", key: `o:${p.client_msg_id}`, outgoing: p, confirmed: false });
  }
  return items;
}

/** The id of the newest message with a place: what `resume` and `after=` start from. */
export function lastPlacedId(tl: Timeline): string | undefined {
  return tl.placed.length ? tl.placed[tl.placed.length - 1].id : undefined;
}

/** The oldest message we have: what `before=` starts from. */
export function oldestPlaced(tl: Timeline): Message | undefined {
  return tl.placed[0];
}

/** Whether older messages exist before the oldest one we have (seq starts at 1). */
export function hasOlder(tl: Timeline): boolean {
  const first = tl.placed[0];
  return first !== undefined && (first.seq as number) > 1;
}

/**
 * The first hole between the messages we have: a message whose successor's seq is not the next
 * one. Returns the id to fetch `after=` from, and how many messages are missing there.
 */
export function findGap(tl: Timeline): { afterId: string; missing: number } | undefined {
  for (let i = 0; i + 1 < tl.placed.length; i++) {
    const a = tl.placed[i].seq as number;
    const b = tl.placed[i + 1].seq as number;
    if (b > a + 1) return { afterId: tl.placed[i].id, missing: b - a - 1 };
  }
  return undefined;
}

/** Pending entries that should be (re)sent when the connection is back. */
export function sendingEntries(tl: Timeline): Outgoing[] {
  return tl.pending.filter((p) => p.status === "sending");
}

/**
 * The `channels` of a `resume` frame: for every conversation with a placed message, the id of the
 * newest one. Conversations without any are left out (there is no id to resume from).
 */
export function resumePoints(timelines: Record<string, Timeline>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, tl] of Object.entries(timelines)) {
    const last = lastPlacedId(tl);
    if (last) out[id] = last;
  }
  return out;
}
