// Per-channel message timeline: history pages, live frames, acks and our own optimistic
// entries merged into one list in channel order (by `seq`), without duplicates; channel events
// (edits, deletes, reactions) applied to the messages they change.
//
// A channel's messages and events share one sequence of positions, so message seqs have gaps:
// the timeline remembers which positions it knows (messages, events, the ranges a history page
// covers) and only a position it knows nothing of is a gap to fill.
//
// Every function here is pure: it takes a timeline and returns a new one (or the same object
// when nothing changed), so the UI can compare by reference.

import { Limits, type ChannelEvent, type ClientFrame, type Message, type MessageAttachment, type Reaction } from "./types";

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
  /** The id of the message this one answers. */
  reply_to?: string;
  /** Completed uploads it carries (their ids go in the frame; every resend names the same). */
  attachments?: MessageAttachment[];
}

/** An event about a message not loaded, with the user it was applied for (`me` depends on it). */
export interface Orphan {
  event: ChannelEvent;
  myId: string;
}

/** Inclusive range of positions `[from, to]`. */
export type SeqRange = readonly [number, number];

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
  /**
   * Positions known to hold nothing we lack: placed messages, events seen, and the ranges history
   * pages covered. Sorted, merged (adjacent ranges joined).
   */
  known: SeqRange[];
  /** The newest event seen (for `resume`, which may name an event). */
  lastEvent?: { id: string; seq: number };
  /**
   * Per message id: the highest position its copy here is known to reflect (its own seq, the last
   * event applied to it, or the position a history page was at least as new as).
   */
  versions: Record<string, number>;
  /** Recent events about messages not loaded here (yet), applied when they come. */
  orphans: Orphan[];
}

export type TimelineItem =
  | { kind: "message"; key: string; message: Message; confirmed: true }
  | { kind: "outgoing"; key: string; outgoing: Outgoing; confirmed: false };

export const emptyTimeline = (): Timeline => ({
  placed: [],
  unplaced: [],
  pending: [],
  known: [],
  versions: {},
  orphans: [],
});

/** At most this many events about unloaded messages are kept. */
const MAX_ORPHANS = 200;

// ----- known positions --------------------------------------------------------------------------

/** Adds a range to a sorted, merged list of ranges (a new list; the same one if nothing changed). */
export function addRange(ranges: readonly SeqRange[], from: number, to: number): SeqRange[] {
  if (!(Number.isFinite(from) && Number.isFinite(to)) || to < from) return ranges as SeqRange[];
  // Already inside one range: nothing changes.
  for (const [a, b] of ranges) if (a <= from && to <= b) return ranges as SeqRange[];
  const out: SeqRange[] = [];
  let lo = from;
  let hi = to;
  let placed = false;
  for (const [a, b] of ranges) {
    if (b < lo - 1) out.push([a, b]);
    else if (a > hi + 1) {
      if (!placed) {
        out.push([lo, hi]);
        placed = true;
      }
      out.push([a, b]);
    } else {
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
  }
  if (!placed) out.push([lo, hi]);
  return out;
}

/** How many positions of `from..to` (inclusive) no range covers. */
export function unknownIn(ranges: readonly SeqRange[], from: number, to: number): number {
  if (to < from) return 0;
  let missing = to - from + 1;
  for (const [a, b] of ranges) {
    const lo = Math.max(a, from);
    const hi = Math.min(b, to);
    if (hi >= lo) missing -= hi - lo + 1;
  }
  return missing;
}

/** The highest position known (0: none). */
export function maxKnown(tl: Timeline): number {
  return tl.known.length ? tl.known[tl.known.length - 1][1] : 0;
}

/**
 * Records that positions `from..to` hold nothing we lack (a history page covered them). The caller
 * computes the range from what it asked for; see `pageCoverage`.
 */
export function coverRange(tl: Timeline, from: number, to: number): Timeline {
  const known = addRange(tl.known, from, to);
  return known === tl.known ? tl : { ...tl, known };
}

/**
 * The positions a history page covers, given how it was asked for:
 * - the newest page (no cursor): from its oldest message (from 1 if it was not full) to the newest
 *   position known when it was asked for (those existed, so the page reflects them);
 * - `before` (the seq of the cursor message): from its oldest message (1 if not full) up to the cursor;
 * - `after` (the seq of the cursor message): from the cursor up to its newest message, or, when it
 *   was not full (it holds every later message), up to the newest position known when asked.
 */
export function pageCoverage(
  page: readonly Message[],
  q: { limit: number; before?: number; after?: number; knownMax: number },
): SeqRange | undefined {
  const seqs = page.map((m) => m.seq).filter((s): s is number => typeof s === "number" && Number.isFinite(s));
  const min = seqs.length ? Math.min(...seqs) : undefined;
  const max = seqs.length ? Math.max(...seqs) : undefined;
  const full = page.length >= q.limit;
  if (q.before !== undefined) {
    const from = full ? (min ?? q.before) : 1;
    return [from, q.before];
  }
  if (q.after !== undefined) {
    const to = full ? (max ?? q.after) : Math.max(max ?? q.after, q.knownMax);
    return [q.after, to];
  }
  const to = Math.max(max ?? 0, q.knownMax);
  const from = full ? (min ?? to) : 1;
  return to >= from && to > 0 ? [from, to] : undefined;
}

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
 *
 * `version`: the position the incoming copies are known to be at least as new as (a history page:
 * its coverage's end). A copy newer than the one we hold replaces it (an edit, a delete, reactions
 * we missed); without it, a message's own seq is its version.
 */
export function mergeMessages(tl: Timeline, incoming: readonly Message[], version?: number): Timeline {
  if (incoming.length === 0) return tl;
  let placed = tl.placed;
  let unplaced = tl.unplaced;
  let pending = tl.pending;
  let known = tl.known;
  let versions = tl.versions;
  let changed = false;
  const arrived: string[] = [];

  const setVersion = (id: string, v: number) => {
    if ((versions[id] ?? -1) >= v) return;
    if (versions === tl.versions) versions = { ...versions };
    versions[id] = v;
  };

  // Indexes of what we have, kept in step as we go.
  const placedIds = new Set(placed.map((m) => m.id));
  const placedKeys = new Map(placed.map((m) => [clientKey(m.sender_id, m.client_msg_id), m.id]));
  const placedSeqs = new Set(placed.map((m) => m.seq as number));

  for (const m of incoming) {
    const key = clientKey(m.sender_id, m.client_msg_id);
    const v = Math.max(version ?? 0, hasSeq(m) ? m.seq : 0);

    // Whatever the source, this confirms our optimistic entry.
    if (pending.some((p) => p.client_msg_id === m.client_msg_id && p.sender_id === m.sender_id)) {
      pending = pending.filter((p) => !(p.client_msg_id === m.client_msg_id && p.sender_id === m.sender_id));
      changed = true;
    }
    if (hasSeq(m)) known = addRange(known, m.seq, m.seq);

    const heldId = placedIds.has(m.id) ? m.id : placedKeys.get(key);
    if (heldId !== undefined) {
      // Already in its place: a newer copy (history after changes we missed) replaces it.
      if (v > (versions[heldId] ?? 0) && hasSeq(m)) {
        const i = placed.findIndex((x) => x.id === heldId);
        if (i >= 0 && !sameState(placed[i], m)) {
          if (placed === tl.placed) placed = placed.slice();
          placed[i] = { ...m, id: heldId };
          changed = true;
        }
        setVersion(heldId, v);
      }
      continue;
    }

    if (hasSeq(m)) {
      if (placedSeqs.has(m.seq)) continue; // a position is held by one message only
      // It may have been waiting without a place.
      const before = unplaced.length;
      unplaced = unplaced.filter((u) => u.id !== m.id && clientKey(u.sender_id, u.client_msg_id) !== key);
      if (unplaced.length !== before) changed = true;
      if (placed === tl.placed) placed = placed.slice();
      placed.splice(insertionIndex(placed, m.seq), 0, m);
      placedIds.add(m.id);
      placedKeys.set(key, m.id);
      placedSeqs.add(m.seq);
      setVersion(m.id, v);
      arrived.push(m.id);
      changed = true;
    } else {
      if (unplaced.some((u) => u.id === m.id || clientKey(u.sender_id, u.client_msg_id) === key)) continue;
      unplaced = [...unplaced, m];
      arrived.push(m.id);
      changed = true;
    }
  }
  if (!changed && known === tl.known && versions === tl.versions) return tl;
  let out: Timeline = { ...tl, placed, unplaced, pending, known, versions };
  // Events that came before the message they change.
  if (tl.orphans.length && arrived.length) {
    const ids = new Set(arrived);
    const due = tl.orphans.filter((o) => ids.has(o.event.message_id));
    if (due.length) {
      out = { ...out, orphans: tl.orphans.filter((o) => !ids.has(o.event.message_id)) };
      for (const o of due.sort((a, b) => a.event.seq - b.event.seq)) out = applyToMessages(out, o.event, o.myId);
    }
  }
  return out;
}

function sameReactions(a: readonly Reaction[] | undefined, b: readonly Reaction[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((r, i) => r.emoji === y[i].emoji && r.count === y[i].count && r.me === y[i].me);
}

/** The ids of a `mentions` field as we keep it: a non-empty list of strings, or undefined. */
function validMentions(ids: unknown): string[] | undefined {
  if (!Array.isArray(ids)) return undefined;
  const out = ids.filter((x): x is string => typeof x === "string");
  return out.length ? out : undefined;
}

function sameIds(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((id, i) => id === y[i]);
}

function sameAttachments(a: readonly MessageAttachment[] | undefined, b: readonly MessageAttachment[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((f, i) => f.id === y[i].id);
}

function sameState(a: Message, b: Message): boolean {
  return (
    a.body === b.body &&
    sameAttachments(a.attachments, b.attachments) &&
    sameIds(a.mentions, b.mentions) &&
    (a.edited_at ?? null) === (b.edited_at ?? null) &&
    !!a.deleted === !!b.deleted &&
    sameReactions(a.reactions, b.reactions) &&
    (a.reply_to?.preview ?? null) === (b.reply_to?.preview ?? null) &&
    !!a.reply_to?.deleted === !!b.reply_to?.deleted
  );
}

// ----- channel events ----------------------------------------------------------------------------

/** The first `Limits.REPLY_PREVIEW_CHARS` characters of a body, as the server cuts previews. */
export function previewOf(body: string): string {
  const chars = Array.from(body);
  return chars.length <= Limits.REPLY_PREVIEW_CHARS ? body : chars.slice(0, Limits.REPLY_PREVIEW_CHARS).join("");
}

/** One message changed by one event (the same object when the event changes nothing). */
export function applyEventToMessage(m: Message, e: ChannelEvent, myId: string): Message {
  switch (e.kind) {
    case "edited": {
      if (m.deleted) return m; // an edit never revives a deleted message
      // The new body's mentions replace the old ones (someone named before may not be now).
      const mentions = validMentions(e.mentions);
      if (m.body === e.body && m.edited_at === e.created_at && sameIds(m.mentions, mentions)) return m;
      const { mentions: _m, ...rest } = m;
      return { ...rest, body: e.body, edited_at: e.created_at, ...(mentions ? { mentions } : {}) };
    }
    case "deleted": {
      // A tombstone keeps nothing of what was said: no body, reactions, mentions or files.
      if (m.deleted && m.body === "" && m.reactions === undefined && m.mentions === undefined && m.attachments === undefined) {
        return m;
      }
      const { reactions: _r, edited_at: _e, mentions: _m, attachments: _a, ...rest } = m;
      return { ...rest, body: "", deleted: true };
    }
    case "reaction_added":
    case "reaction_removed": {
      if (m.deleted || typeof e.emoji !== "string") return m;
      const count = Math.max(0, Math.floor(Number(e.count) || 0));
      const list = m.reactions ?? [];
      const i = list.findIndex((r) => r.emoji === e.emoji);
      const cur = i >= 0 ? list[i] : undefined;
      let me = cur?.me ?? false;
      if (e.actor_id === myId) me = e.kind === "reaction_added";
      let next: Reaction[];
      if (count === 0) {
        if (!cur) return m;
        next = list.filter((_, j) => j !== i);
      } else {
        if (cur && cur.count === count && cur.me === me) return m;
        const r: Reaction = { emoji: e.emoji, count, me: me && count > 0 };
        next = cur ? list.map((x, j) => (j === i ? r : x)) : [...list, r];
      }
      const out: Message = { ...m, reactions: next };
      if (next.length === 0) delete out.reactions;
      return out;
    }
    default:
      return m; // a kind we don't know yet
  }
}

/** The replies of a changed message show its preview as it is now. */
function applyToReplyRef(m: Message, e: ChannelEvent): Message {
  const r = m.reply_to;
  if (!r || r.id !== e.message_id) return m;
  if (e.kind === "edited") {
    if (r.deleted) return m;
    const preview = previewOf(e.body);
    return r.preview === preview ? m : { ...m, reply_to: { ...r, preview } };
  }
  if (e.kind === "deleted") {
    return r.deleted && r.preview === "" ? m : { ...m, reply_to: { ...r, preview: "", deleted: true } };
  }
  return m;
}

/** Applies an event to the messages it concerns, without the bookkeeping of positions. */
function applyToMessages(tl: Timeline, e: ChannelEvent, myId: string): Timeline {
  let versions = tl.versions;
  let found = false;
  const touch = (list: Message[]): Message[] => {
    let out = list;
    for (let i = 0; i < list.length; i++) {
      const m = list[i];
      if ((versions[m.id] ?? 0) >= e.seq) {
        if (m.id === e.message_id) found = true;
        continue; // this copy already reflects it
      }
      let n = m;
      if (m.id === e.message_id) {
        found = true;
        n = applyEventToMessage(m, e, myId);
        if (versions === tl.versions) versions = { ...versions };
        versions[m.id] = e.seq;
      } else if (m.reply_to && m.reply_to.id === e.message_id) {
        n = applyToReplyRef(m, e);
      }
      if (n !== m) {
        if (out === list) out = list.slice();
        out[i] = n;
      }
    }
    return out;
  };
  const placed = touch(tl.placed);
  const unplaced = touch(tl.unplaced);
  let orphans = tl.orphans;
  if (!found && !orphans.some((o) => o.event.id === e.id)) {
    orphans = [...orphans, { event: e, myId }].slice(-MAX_ORPHANS);
  }
  if (placed === tl.placed && unplaced === tl.unplaced && versions === tl.versions && orphans === tl.orphans) return tl;
  return { ...tl, placed, unplaced, versions, orphans };
}

/**
 * Applies a channel event (an `event` frame, live or during a resume): the message's body and
 * `edited_at`, the tombstone, the reaction counts (absolute; `me` follows what the current user
 * `myId` did). Applying it again, or an older one after it, changes nothing. The event's position
 * becomes known, and the newest event is remembered as a resume point. An event about a message
 * not loaded is kept and applied if that message comes.
 */
export function applyEvent(tl: Timeline, e: ChannelEvent, myId: string): Timeline {
  if (!e || typeof e.seq !== "number" || !Number.isFinite(e.seq) || !e.message_id) return tl;
  let out = applyToMessages(tl, e, myId);
  const known = addRange(out.known, e.seq, e.seq);
  const newer = !out.lastEvent || e.seq > out.lastEvent.seq;
  if (known !== out.known || newer) {
    out = { ...out, known, lastEvent: newer ? { id: e.id, seq: e.seq } : out.lastEvent };
  }
  return out;
}

/** A loaded message by id (placed or not yet placed). */
export function findMessage(tl: Timeline, id: string): Message | undefined {
  return tl.placed.find((m) => m.id === id) ?? tl.unplaced.find((m) => m.id === id);
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

/** The `send` frame of a pending entry: every attempt the same (client_msg_id, reply, files). */
export function sendFrame(out: Outgoing): Extract<ClientFrame, { type: "send" }> {
  return {
    type: "send",
    channel_id: out.channel_id,
    client_msg_id: out.client_msg_id,
    body: out.body,
    ...(out.reply_to ? { reply_to: out.reply_to } : {}),
    ...(out.attachments?.length ? { attachments: out.attachments.map((a) => a.id) } : {}),
  };
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

/** The id of the newest message with a place: what `after=` starts from. */
export function lastPlacedId(tl: Timeline): string | undefined {
  return tl.placed.length ? tl.placed[tl.placed.length - 1].id : undefined;
}

/**
 * Where `resume` starts: the id of the newest thing seen with a position, a placed message or an
 * event, whichever is later (the server sends every message and event after it).
 */
export function resumePoint(tl: Timeline): string | undefined {
  const last = tl.placed[tl.placed.length - 1];
  const ev = tl.lastEvent;
  if (ev && (!last || ev.seq > (last.seq as number))) return ev.id;
  return last?.id;
}

/** The oldest message we have: what `before=` starts from. */
export function oldestPlaced(tl: Timeline): Message | undefined {
  return tl.placed[0];
}

/** Whether older messages may exist before the oldest one we have. */
export function hasOlder(tl: Timeline): boolean {
  const first = tl.placed[0];
  if (first === undefined) return false;
  const seq = first.seq as number;
  return seq > 1 && unknownIn(tl.known, 1, seq - 1) > 0;
}

/**
 * The first stretch of positions we know nothing of between the messages we have (or after the
 * newest one, up to the newest event seen). Positions held by events or covered by a history page
 * are not missing: message seqs have gaps. Returns the id to fetch `after=` from, and how many
 * positions are unknown there.
 */
export function findGap(tl: Timeline): { afterId: string; missing: number } | undefined {
  for (let i = 0; i + 1 < tl.placed.length; i++) {
    const a = tl.placed[i].seq as number;
    const b = tl.placed[i + 1].seq as number;
    if (b > a + 1) {
      const missing = unknownIn(tl.known, a + 1, b - 1);
      if (missing > 0) return { afterId: tl.placed[i].id, missing };
    }
  }
  const last = tl.placed[tl.placed.length - 1];
  if (last) {
    const top = maxKnown(tl);
    const missing = unknownIn(tl.known, (last.seq as number) + 1, top);
    if (missing > 0) return { afterId: last.id, missing };
  }
  return undefined;
}

/** Pending entries that should be (re)sent when the connection is back. */
export function sendingEntries(tl: Timeline): Outgoing[] {
  return tl.pending.filter((p) => p.status === "sending");
}

/**
 * The `channels` of a `resume` frame: for every conversation with a placed message or an event,
 * the id of the newest. Conversations without any are left out (there is no id to resume from).
 */
export function resumePoints(timelines: Record<string, Timeline>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [id, tl] of Object.entries(timelines)) {
    const last = resumePoint(tl);
    if (last) out[id] = last;
  }
  return out;
}
