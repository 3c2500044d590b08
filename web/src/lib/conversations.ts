// The conversation list: ordered by recent activity, like the server orders `GET /channels`
// (docs/protocol.md, "Read state"), but kept in order live as messages come, without reloading.

import type { Timeline } from "./messages";
import type { Channel } from "./types";

const time = (iso: string | undefined | null): number => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};

/** The time of the newest message loaded (deleted ones do not count), ours on their way included. */
function newestLoaded(tl: Timeline | undefined): number {
  if (!tl) return 0;
  let t = 0;
  for (let i = tl.placed.length - 1; i >= 0; i--) {
    if (tl.placed[i].deleted) continue;
    t = time(tl.placed[i].created_at);
    break;
  }
  for (const m of tl.unplaced) t = Math.max(t, time(m.created_at));
  for (const p of tl.pending) t = Math.max(t, time(p.created_at));
  return t;
}

/**
 * When a conversation was last active (ms since the epoch): its newest message, from the list or
 * loaded since; without any, when we joined it here (`joinedAt`), else when it was created (the
 * list does not say when we joined).
 */
export function lastActivity(c: Channel, tl: Timeline | undefined, joinedAt?: string): number {
  const t = Math.max(time(c.last_message?.created_at), newestLoaded(tl), time(joinedAt));
  return t || time(c.created_at);
}

/** The conversations, most recently active first (then by name, for a stable order). */
export function byRecentActivity(channels: readonly Channel[], activity: (c: Channel) => number): Channel[] {
  const keyed = channels.map((c) => ({ c, t: activity(c) }));
  keyed.sort((a, b) => b.t - a.t || a.c.name.localeCompare(b.c.name, undefined, { sensitivity: "base" }));
  return keyed.map((k) => k.c);
}

/** The tab's title with the number of unread messages in front: "(3) Chat". */
export function titleWithUnread(base: string, unread: number): string {
  return unread > 0 ? `(${unread > 9999 ? "9999+" : unread}) ${base}` : base;
}
