// When a new message deserves a desktop notification, and what it says. The browser side (the
// permission, showing it, clicking it) is in app/notifier.ts.

import { messagePreview } from "./attachments";
import type { Channel, Message } from "./types";

/**
 * - `unsupported`: the browser has no notifications;
 * - `blocked`: the person (or the browser) refused the permission: only the site settings can undo it;
 * - `off`: not asked for in this browser, or turned off here;
 * - `on`: asked for, and permitted.
 */
export type NotifyStatus = "unsupported" | "blocked" | "off" | "on";

/** Messages older than this when they arrive (caught up after a reconnect) are old news. */
export const NOTIFY_MAX_AGE_MS = 5 * 60_000;

export interface NotifyContext {
  status: NotifyStatus;
  myId: string;
  /** The conversation on screen, if any. */
  activeId: string | null;
  /** The tab is not visible (document.visibilityState "hidden"). */
  hidden: boolean;
  now: number;
}

/** Whether a message that just arrived should be notified: someone else's, new, in a conversation
 * the person is not looking at (another one is open, or the tab is hidden). */
export function shouldNotify(m: Message, c: NotifyContext): boolean {
  if (c.status !== "on" || m.sender_id === c.myId || m.deleted) return false;
  if (c.activeId === m.channel_id && !c.hidden) return false;
  const t = Date.parse(m.created_at);
  return !(Number.isFinite(t) && c.now - t > NOTIFY_MAX_AGE_MS);
}

export interface NotificationText {
  title: string;
  body: string;
  /** One notification per conversation: a newer one replaces it rather than piling up. */
  tag: string;
}

export function notificationText(
  m: Message,
  channel: Channel | undefined,
  senderName: string,
  mentionsMe: boolean,
): NotificationText {
  // A message of files only says which: "📎 IMG_0042.jpg".
  const preview = messagePreview(m);
  const tag = `chat:${m.channel_id}`;
  if (channel?.kind === "direct") return { title: senderName, body: preview, tag };
  const where = channel ? `#${channel.name}` : "a conversation";
  if (mentionsMe) return { title: `${senderName} mentioned you in ${where}`, body: preview, tag };
  return { title: channel ? where : "New message", body: `${senderName}: ${preview}`, tag };
}
