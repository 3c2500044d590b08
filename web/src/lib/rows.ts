// The rows of the open conversation: its messages, a separator where the (local) day changes, and
// the "new since you last read" line before the first message that was unread when the person
// came to look.

import { dayKey, dayLabel } from "./days";
import { unknownIn, type SeqRange, type TimelineItem } from "./messages";

export type Row =
  | { kind: "day"; key: string; day: string; label: string }
  | { kind: "unread"; key: string }
  | { kind: "item"; key: string; item: TimelineItem; compact: boolean };

export interface RowOptions {
  myId: string;
  /** The read mark when the person came to look (undefined: no line). */
  lineAfter?: number;
  /** The positions the timeline knows: the line is only drawn where nothing before it is missing. */
  known: readonly SeqRange[];
  now?: Date;
}

/** Messages of one sender closer together than this are grouped (their names shown once). */
export const GROUP_MS = 5 * 60_000;

const senderOf = (it: TimelineItem) => (it.kind === "message" ? it.message.sender_id : it.outgoing.sender_id);
const timeOf = (it: TimelineItem) => (it.kind === "message" ? it.message.created_at : it.outgoing.created_at);

/** The index of the first item that is new since `lineAfter`: someone else's message after it. */
function firstUnread(items: readonly TimelineItem[], o: RowOptions): number {
  if (o.lineAfter === undefined) return -1;
  const after = o.lineAfter;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.kind !== "message" || typeof it.message.seq !== "number") continue;
    const m = it.message;
    if (m.seq! <= after || m.sender_id === o.myId || m.deleted) continue;
    // Its predecessors since the mark are not all loaded: the first new one is elsewhere.
    return unknownIn(o.known, after + 1, m.seq! - 1) === 0 ? i : -1;
  }
  return -1;
}

export function timelineRows(items: readonly TimelineItem[], o: RowOptions): Row[] {
  const now = o.now ?? new Date();
  const line = firstUnread(items, o);
  const rows: Row[] = [];
  let day = "";
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const d = new Date(timeOf(it));
    const k = Number.isNaN(d.getTime()) ? day : dayKey(d);
    let broken = false;
    if (k !== day) {
      rows.push({ kind: "day", key: `day:${k}`, day: k, label: dayLabel(d, now) });
      day = k;
      broken = true;
    }
    if (i === line) {
      rows.push({ kind: "unread", key: "unread-line" });
      broken = true;
    }
    const prev = items[i - 1];
    const compact =
      !broken &&
      prev !== undefined &&
      it.kind === "message" &&
      prev.kind === "message" &&
      senderOf(prev) === senderOf(it) &&
      Date.parse(timeOf(it)) - Date.parse(timeOf(prev)) < GROUP_MS;
    rows.push({ kind: "item", key: it.key, item: it, compact });
  }
  return rows;
}
