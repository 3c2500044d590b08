import { afterEach, describe, expect, it, vi } from "vitest";
import { Notifier } from "../src/app/notifier";
import { NOTIFY_MAX_AGE_MS, notificationText, shouldNotify, type NotifyContext } from "../src/lib/notify";
import type { Channel, Message } from "../src/lib/types";

const ME = "u-me";
const NOW = Date.parse("2025-01-15T10:00:00Z");

function msg(over: Partial<Message> = {}): Message {
  return {
    id: "m1",
    channel_id: "c1",
    sender_id: "u-bob",
    body: "lunch?",
    client_msg_id: "cm1",
    created_at: new Date(NOW - 1000).toISOString(),
    seq: 3,
    ...over,
  };
}

const ctx = (over: Partial<NotifyContext> = {}): NotifyContext => ({
  status: "on",
  myId: ME,
  activeId: "c2",
  hidden: false,
  now: NOW,
  ...over,
});

describe("which messages are notified", () => {
  it("someone else's new message in a conversation that is not open", () => {
    expect(shouldNotify(msg(), ctx())).toBe(true);
    expect(shouldNotify(msg(), ctx({ activeId: null }))).toBe(true);
  });

  it("the open conversation only while the tab is hidden", () => {
    expect(shouldNotify(msg(), ctx({ activeId: "c1" }))).toBe(false);
    expect(shouldNotify(msg(), ctx({ activeId: "c1", hidden: true }))).toBe(true);
  });

  it("never our own, nor without the opt-in, nor old news caught up after a reconnect", () => {
    expect(shouldNotify(msg({ sender_id: ME }), ctx({ hidden: true }))).toBe(false);
    for (const status of ["off", "blocked", "unsupported"] as const) expect(shouldNotify(msg(), ctx({ status }))).toBe(false);
    const old = msg({ created_at: new Date(NOW - NOTIFY_MAX_AGE_MS - 1000).toISOString() });
    expect(shouldNotify(old, ctx())).toBe(false);
  });

  it("say where, who and what, one per conversation", () => {
    const group: Channel = { id: "c1", kind: "group", name: "general", description: "", created_at: "" };
    expect(notificationText(msg(), group, "Bob", false)).toEqual({ title: "#general", body: "Bob: lunch?", tag: "chat:c1" });
    expect(notificationText(msg(), group, "Bob", true)).toEqual({
      title: "Bob mentioned you in #general",
      body: "lunch?",
      tag: "chat:c1",
    });
    expect(notificationText(msg(), { ...group, kind: "direct", name: "Bob" }, "Bob", false)).toEqual({
      title: "Bob",
      body: "lunch?",
      tag: "chat:c1",
    });
    expect(notificationText(msg({ body: "x".repeat(500) }), group, "Bob", false).body).toHaveLength(5 + 140);
  });
});

class FakeNotification {
  static permission: NotificationPermission = "default";
  static requestPermission = vi.fn(async () => {
    FakeNotification.permission = FakeNotification.answer;
    return FakeNotification.answer;
  });
  static answer: NotificationPermission = "granted";
  static shown: FakeNotification[] = [];
  onclick: (() => void) | null = null;
  closed = false;
  constructor(
    readonly title: string,
    readonly options: NotificationOptions,
  ) {
    FakeNotification.shown.push(this);
  }
  close() {
    this.closed = true;
  }
}

function memory() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

describe("the browser's notifications", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    FakeNotification.shown = [];
    FakeNotification.requestPermission.mockClear();
  });

  it("are unsupported without the API", () => {
    const n = new Notifier(memory(), () => {});
    expect(n.status(ME)).toBe("unsupported");
  });

  it("ask for the permission only when turned on, and remember the choice per user", async () => {
    FakeNotification.permission = "default";
    FakeNotification.answer = "granted";
    vi.stubGlobal("Notification", FakeNotification);
    const storage = memory();
    const n = new Notifier(storage, () => {});
    expect(n.status(ME)).toBe("off");
    expect(FakeNotification.requestPermission).not.toHaveBeenCalled();
    expect(await n.enable(ME)).toBe("on");
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
    // Granted already: another user of this browser still has to opt in; turning on asks nothing.
    expect(n.status("u-other")).toBe("off");
    expect(await n.enable("u-other")).toBe("on");
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
    expect(n.disable(ME)).toBe("off");
    expect(new Notifier(storage, () => {}).status("u-other")).toBe("on");
  });

  it("are blocked when the person refuses", async () => {
    FakeNotification.permission = "default";
    FakeNotification.answer = "denied";
    vi.stubGlobal("Notification", FakeNotification);
    const n = new Notifier(memory(), () => {});
    expect(await n.enable(ME)).toBe("blocked");
    expect(n.status(ME)).toBe("blocked");
  });

  it("open their conversation when clicked", () => {
    FakeNotification.permission = "granted";
    vi.stubGlobal("Notification", FakeNotification);
    const focus = vi.fn();
    vi.stubGlobal("window", { focus });
    const open = vi.fn();
    const n = new Notifier(memory(), open);
    n.show({ title: "#general", body: "Bob: hi", tag: "chat:c1" }, "c1");
    const [shown] = FakeNotification.shown;
    expect(shown).toMatchObject({ title: "#general", options: { body: "Bob: hi", tag: "chat:c1" } });
    shown.onclick?.();
    expect(focus).toHaveBeenCalled();
    expect(open).toHaveBeenCalledWith("c1");
    expect(shown.closed).toBe(true);
  });
});
