// Desktop notifications in the browser: the person's choice (kept per user in this browser), the
// permission, and showing one that opens its conversation when clicked.
//
// The permission is only ever asked for from `enable`, which the UI calls in a click handler:
// browsers ignore (or hold against the site) a request made without a user gesture, and nobody
// should be asked on page load before they know what the chat would notify them of.

import type { NotificationText, NotifyStatus } from "../lib/notify";
import type { KeyValueStore } from "../lib/tokens";

const prefKey = (userId: string) => `chat.notify.${userId}`;

/** The browser's Notification API, if it has one. */
function api(): typeof Notification | undefined {
  return typeof Notification === "undefined" ? undefined : Notification;
}

export class Notifier {
  constructor(
    private readonly storage: KeyValueStore,
    /** Shows a conversation (the notification was clicked). */
    private readonly open: (channelId: string) => void,
  ) {}

  status(userId: string | undefined): NotifyStatus {
    const N = api();
    if (!N) return "unsupported";
    if (N.permission === "denied") return "blocked";
    if (N.permission !== "granted" || !userId) return "off";
    return this.storage.getItem(prefKey(userId)) === "on" ? "on" : "off";
  }

  /** Turns notifications on, asking for the permission first if the browser has not been told. */
  async enable(userId: string): Promise<NotifyStatus> {
    const N = api();
    if (!N) return "unsupported";
    let permission = N.permission;
    if (permission === "default") {
      try {
        permission = await N.requestPermission();
      } catch {
        permission = N.permission; // an old browser's callback-only API: read what was chosen
      }
    }
    if (permission === "granted") this.storage.setItem(prefKey(userId), "on");
    return this.status(userId);
  }

  disable(userId: string): NotifyStatus {
    this.storage.removeItem(prefKey(userId));
    return this.status(userId);
  }

  show(text: NotificationText, channelId: string): void {
    const N = api();
    if (!N || N.permission !== "granted") return;
    try {
      const n = new N(text.title, { body: text.body, tag: text.tag });
      n.onclick = () => {
        window.focus();
        this.open(channelId);
        n.close();
      };
    } catch {
      /* e.g. Chrome on Android only shows them from a service worker: the badge and title remain */
    }
  }
}
