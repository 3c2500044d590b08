// How far the user has read each conversation, and what is unread (docs/protocol.md, "Read
// state"). The server keeps one mark per member and channel; the conversation list brings it with
// the counts of what lies after it, `read` frames bring the marks of our other devices, and we
// move it ourselves with `mark_read` as messages are shown.
//
// The list's counts are a snapshot: messages that arrive afterwards are counted here from the
// timeline (live messages are kept for every conversation, open or not), and a mark that moved
// since the snapshot discounts what it covers. Pure functions; nothing here talks to the network.

import { mentionsMe } from "./mentions";
import { unknownIn, type Timeline } from "./messages";
import type { Channel } from "./types";

export interface ReadMark {
  /** The highest mark known: the list's, another device's (`read`), or ours. Only grows. */
  seq: number;
  /** What the conversation list said when last loaded: its counts cover messages up to `head`. */
  listed?: { read: number; head: number; unread: number; mentions: number };
}

export interface Unread {
  /** Messages after the mark that others sent. */
  count: number;
  /** Of those, the ones that mention the current user. */
  mentions: number;
}

const NONE: Unread = { count: 0, mentions: 0 };

const num = (x: unknown): number | undefined => (typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : undefined);

/**
 * The mark after loading the conversation list: its snapshot, and the higher of its mark and the
 * one we had (our last marks may not be stored yet when the list is read).
 */
export function markFromList(prev: ReadMark | undefined, c: Channel): ReadMark {
  const head = num(c.head_seq);
  const read = num(c.read_seq) ?? 0;
  const seq = Math.max(prev?.seq ?? 0, read);
  // A server without read state (or a channel from an answer other than the list): keep ours.
  if (head === undefined) return prev && prev.seq === seq ? prev : { ...prev, seq };
  return {
    seq,
    listed: { read, head, unread: num(c.unread_count) ?? 0, mentions: num(c.mention_count) ?? 0 },
  };
}

/** The mark moved to `seq` (if that is further). */
export function advanceMark(mark: ReadMark | undefined, seq: number): ReadMark {
  if (!mark) return { seq };
  return seq > mark.seq ? { ...mark, seq } : mark;
}

/** Others' messages of the timeline at positions `from < seq <= to`, and those mentioning me. */
function countLoaded(tl: Timeline, from: number, to: number, myId: string): Unread {
  let count = 0;
  let mentions = 0;
  for (let i = tl.placed.length - 1; i >= 0; i--) {
    const m = tl.placed[i];
    const seq = m.seq as number;
    if (seq <= from) break;
    if (seq > to || m.sender_id === myId || m.deleted) continue;
    count++;
    if (mentionsMe(m, myId)) mentions++;
  }
  return { count, mentions };
}

/**
 * What is unread in a conversation: the list's counts for what it covered (discounted if the mark
 * moved into it since), plus the loaded messages after it. Unknown (no mark yet): nothing, rather
 * than counting a history we were never told is unread.
 */
export function unreadOf(mark: ReadMark | undefined, tl: Timeline | undefined, myId: string): Unread {
  if (!mark) return NONE;
  const l = mark.listed;
  const head = l?.head ?? 0;
  let count = 0;
  let mentions = 0;
  if (l && mark.seq < head) {
    if (mark.seq <= l.read) {
      count = l.unread;
      mentions = l.mentions;
    } else if (tl && unknownIn(tl.known, mark.seq + 1, head) === 0) {
      // Read part of it since: the timeline holds the rest, count it there.
      ({ count, mentions } = countLoaded(tl, mark.seq, head, myId));
    } else {
      // Read part of it, and the rest is not loaded: at most what is left of the range.
      count = Math.min(l.unread, head - mark.seq);
      mentions = Math.min(l.mentions, count);
    }
  }
  if (tl) {
    const after = countLoaded(tl, Math.max(mark.seq, head), Infinity, myId);
    count += after.count;
    mentions += after.mentions;
  }
  return count === 0 && mentions === 0 ? NONE : { count, mentions };
}

/** The position to mark read once the conversation is shown: its newest message (0: none). */
export function markTarget(tl: Timeline): number {
  const last = tl.placed[tl.placed.length - 1];
  return typeof last?.seq === "number" ? last.seq : 0;
}
