// The channel directory as the Browse view holds it: pages appended as the person asks for
// more ("Load more"), each channel once, and what joining one changes. No DOM, no network.

import type { DirectoryEntry, DirectoryPage, DirectorySort } from "./types";

export interface DirectoryList {
  sort: DirectorySort;
  entries: DirectoryEntry[];
  /** The cursor of the next page; null when there is none (or none asked for yet). */
  cursor: string | null;
  /** Whether the last page has been read. */
  done: boolean;
}

export function emptyDirectory(sort: DirectorySort): DirectoryList {
  return { sort, entries: [], cursor: null, done: false };
}

/**
 * Add the next page. The server lists each channel once across pages, but a channel whose
 * member count or activity changed between two requests can come back; it keeps its first place.
 */
export function appendPage(list: DirectoryList, page: DirectoryPage): DirectoryList {
  const seen = new Set(list.entries.map((e) => e.id));
  const fresh = page.channels.filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return true;
  });
  return {
    ...list,
    entries: [...list.entries, ...fresh],
    cursor: page.next_cursor,
    done: page.next_cursor === null,
  };
}

/** After the caller joined `id`: a member now, counted once. */
export function markJoined(list: DirectoryList, id: string): DirectoryList {
  return {
    ...list,
    entries: list.entries.map((e) =>
      e.id === id && !e.is_member ? { ...e, is_member: true, member_count: e.member_count + 1 } : e,
    ),
  };
}

/** "3 members", "1 member". */
export function membersLabel(n: number): string {
  return `${n} ${n === 1 ? "member" : "members"}`;
}

/** When the channel was last active, in words: "no messages yet", "active 5 min ago", ... */
export function activityLabel(iso: string | null, now: number = Date.now()): string {
  if (!iso) return "no messages yet";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "no messages yet";
  const secs = Math.max(0, Math.round((now - t) / 1000));
  if (secs < 60) return "active just now";
  const mins = Math.round(secs / 60);
  if (mins < 60) return `active ${mins} min ago`;
  const hours = Math.round(mins / 60);
  if (hours < 24) return `active ${hours} h ago`;
  const days = Math.round(hours / 24);
  return `active ${days} ${days === 1 ? "day" : "days"} ago`;
}
