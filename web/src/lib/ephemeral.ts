// Typing indicators and presence (docs/protocol.md, "Typing and presence"): pure logic, no DOM.
// Typing: who is typing where, each until their indicator expires (or a message of theirs
// arrives); the throttle that sends our own `typing` at most once per interval. Presence: who
// is online, and the words for when someone was last seen.

import { Limits } from "./types";

/** Per channel, per user: when their typing indicator ends (ms since the epoch). */
export type TypingState = Record<string, Record<string, number>>;

/** `user` is typing in `channel` for `expiresInMs` from `now` (a later frame extends it). */
export function addTyping(
  state: TypingState,
  channel: string,
  user: string,
  expiresInMs: number,
  now: number,
): TypingState {
  const ms = Number.isFinite(expiresInMs) && expiresInMs > 0 ? Math.min(expiresInMs, 30_000) : Limits.TYPING_EXPIRES_MS;
  return { ...state, [channel]: { ...(state[channel] ?? {}), [user]: now + ms } };
}

/** `user` stopped typing in `channel` (their message arrived). Unchanged state if they weren't. */
export function clearTyping(state: TypingState, channel: string, user: string): TypingState {
  const ch = state[channel];
  if (!ch || !(user in ch)) return state;
  const rest = { ...ch };
  delete rest[user];
  const next = { ...state };
  if (Object.keys(rest).length) next[channel] = rest;
  else delete next[channel];
  return next;
}

/** Drops every expired indicator. Unchanged state if none expired. */
export function pruneTyping(state: TypingState, now: number): TypingState {
  let changed = false;
  const next: TypingState = {};
  for (const [channel, users] of Object.entries(state)) {
    const live = Object.entries(users).filter(([, until]) => until > now);
    if (live.length !== Object.keys(users).length) changed = true;
    if (live.length) next[channel] = Object.fromEntries(live);
  }
  return changed ? next : state;
}

/** The users typing in `channel` now, in a stable order. */
export function typingIn(state: TypingState, channel: string, now: number): string[] {
  return Object.entries(state[channel] ?? {})
    .filter(([, until]) => until > now)
    .map(([user]) => user)
    .sort();
}

/** When the next indicator ends (to re-render then), or null when none is shown. */
export function nextTypingExpiry(state: TypingState): number | null {
  let next: number | null = null;
  for (const users of Object.values(state))
    for (const until of Object.values(users)) if (next === null || until < next) next = until;
  return next;
}

/** "Alice is typing…", "Alice and Bob are typing…", "Alice, Bob and 2 others are typing…". */
export function typingLine(names: string[]): string {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  const others = names.length - 2;
  return `${names[0]}, ${names[1]} and ${others} others are typing…`;
}

/**
 * Our own `typing` frames: at most one per channel per interval while the person types (the
 * server forwards at most that many and drops the rest), none for an empty draft.
 */
export class TypingThrottle {
  private last = new Map<string, number>();

  constructor(private readonly intervalMs: number = Limits.TYPING_INTERVAL_MS) {}

  /** The person typed in `channel` (the draft is now `draft`): send a `typing` now? */
  shouldSend(channel: string, draft: string, now: number): boolean {
    if (draft.trim() === "") return false;
    const last = this.last.get(channel);
    if (last !== undefined && now - last < this.intervalMs) return false;
    this.last.set(channel, now);
    return true;
  }

  /** The message was sent: the next keystroke may announce typing again at once. */
  sent(channel: string): void {
    this.last.delete(channel);
  }
}

export interface Presence {
  online: boolean;
  /** When they were last connected (ISO time); null while online or never seen. */
  last_seen_at: string | null;
}

/** "Online", "Last seen just now", "Last seen 5 minutes ago", ..., "Offline". */
export function presenceText(p: Presence | undefined, now: number): string {
  if (!p) return "";
  if (p.online) return "Online";
  if (!p.last_seen_at) return "Offline";
  const at = Date.parse(p.last_seen_at);
  if (Number.isNaN(at)) return "Offline";
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return "Last seen just now";
  const m = Math.round(s / 60);
  if (m < 60) return `Last seen ${m} minute${m === 1 ? "" : "s"} ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `Last seen ${h} hour${h === 1 ? "" : "s"} ago`;
  const d = Math.round(h / 24);
  return `Last seen ${d} day${d === 1 ? "" : "s"} ago`;
}
