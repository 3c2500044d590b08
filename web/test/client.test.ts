// The controller with a fake browser around it (storage, fetch, WebSocket): pending changes are
// resent with the same client_event_id after a reconnect and after `unavailable` /
// `rate_limited`, resume names the newest message or event, and events reach the state.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ChatApp } from "../src/app/client";
import type { ChannelEvent, Message } from "../src/lib/types";

const ME = { id: "u-me", username: "alice", display_name: "Alice" };
const BOB = "u-bob";
const CH = "c1";

class FakeWs {
  static all: FakeWs[] = [];
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: unknown) => void) | null = null;
  onclose: ((e: unknown) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeWs.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  frame(f: unknown) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  ready() {
    this.readyState = 1;
    this.onopen?.({});
    this.frame({ type: "ready", user_id: ME.id, connection_id: "g1:1" });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  /** The frames of a type written on this socket. */
  of(type: string) {
    return this.sent.filter((f) => f.type === type);
  }
}

const last = () => FakeWs.all[FakeWs.all.length - 1];

function message(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    channel_id: CH,
    sender_id: ME.id,
    body: `body ${seq}`,
    client_msg_id: `cm${seq}`,
    created_at: "2025-01-15T09:00:00Z",
    seq,
    ...over,
  };
}

let history: Message[] = [];
/** Other conversations' history, by channel id. */
let histories: Record<string, Message[]> = {};
const GENERAL = { id: CH, kind: "group", name: "general", description: "", created_at: "2025-01-15T09:00:00Z" };
/** What GET /channels answers. */
let channelList: Array<Record<string, unknown>> = [GENERAL];

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** The attachment calls the app made ("POST /…/attachments", …). */
let attachmentCalls: string[] = [];

async function fakeFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const url = new URL(String(input), "http://chat.test");
  const p = url.pathname;
  const att = /^\/api\/v1\/channels\/([^/]+)\/attachments(?:\/([^/]+)(\/[a-z-]+)?)?$/.exec(p);
  if (att) {
    const method = init?.method ?? "GET";
    attachmentCalls.push(`${method} ${p}`);
    const [, ch, id, action] = att;
    if (method === "POST" && !id) {
      const d = JSON.parse(String(init?.body)) as { name: string; content_type: string; size: number };
      return json(201, {
        id: "a1",
        upload: { method: "PUT", url: `http://chat.test/chat-attachments/o/a1?sig=1`, headers: { "content-type": d.content_type, "content-length": String(d.size) } },
        expires_in: 900,
      });
    }
    if (method === "POST" && action === "/complete") {
      return json(200, { id, channel_id: ch, uploader_id: ME.id, name: "dot.png", content_type: "image/png", size: 3, width: 2, height: 1, state: "ready", created_at: "2025-01-15T09:00:00Z" });
    }
  }
  if (p === "/api/v1/ws-tickets") return json(201, { ticket: `t${Math.random()}`, expires_in: 30 });
  if (p === "/api/v1/users/me") return json(200, ME);
  if (p === "/api/v1/channels") return json(200, { channels: channelList });
  if (p === `/api/v1/channels/${CH}/messages`) return json(200, { messages: url.searchParams.get("after") ? [] : history });
  const other = /^\/api\/v1\/channels\/([^/]+)\/messages$/.exec(p);
  if (other && histories[other[1]]) return json(200, { messages: url.searchParams.get("after") ? [] : histories[other[1]] });
  if (p.endsWith("/members") || p.endsWith("/presence")) return json(200, { members: [] });
  return json(404, { error: { code: "not_found", message: p } });
}

function memoryStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

/** The page's document: its visibility can change, and its listeners hear it. */
const page = {
  visibilityState: "visible" as "visible" | "hidden",
  hidden: false,
  listeners: [] as Array<() => void>,
  addEventListener(type: string, fn: () => void) {
    if (type === "visibilitychange") this.listeners.push(fn);
  },
  show(visible: boolean) {
    this.visibilityState = visible ? "visible" : "hidden";
    this.hidden = !visible;
    for (const l of this.listeners) l();
  },
};

async function startApp(prefs: Record<string, string> = {}): Promise<ChatApp> {
  const storage = memoryStorage();
  for (const [k, v] of Object.entries(prefs)) storage.setItem(k, v);
  storage.setItem(
    "chat.session",
    JSON.stringify({
      user: ME,
      access_token: "at",
      refresh_token: "rt",
      expires_at: Date.now() + 900_000,
      lifetime_ms: 900_000,
    }),
  );
  vi.stubGlobal("window", { addEventListener: () => {}, localStorage: storage, focus: () => {} });
  page.listeners = [];
  page.visibilityState = "visible";
  page.hidden = false;
  vi.stubGlobal("document", page);
  vi.stubGlobal("navigator", { onLine: true });
  vi.stubGlobal("location", { protocol: "http:", host: "chat.test" });
  vi.stubGlobal("fetch", vi.fn(fakeFetch));
  vi.stubGlobal("WebSocket", FakeWs);
  const { ChatApp } = await import("../src/app/client");
  const app = new ChatApp();
  app.boot();
  await vi.advanceTimersByTimeAsync(0);
  last().ready();
  app.setActive(CH);
  await vi.advanceTimersByTimeAsync(0);
  return app;
}

function event(seq: number, over: Partial<ChannelEvent> & Pick<ChannelEvent, "kind">): ChannelEvent {
  return {
    id: `e${seq}`,
    channel_id: CH,
    seq,
    actor_id: ME.id,
    message_id: "m1",
    message_seq: 1,
    client_event_id: `other-${seq}`,
    created_at: "2025-01-15T10:00:00Z",
    ...over,
  } as ChannelEvent;
}

/** Fake timers and sockets, and a channel with two messages (one of Bob's). */
function freshApp() {
  vi.useFakeTimers();
  FakeWs.all = [];
  history = [message(1), message(2, { sender_id: BOB })];
  histories = {};
  channelList = [GENERAL];
}

/** The PUTs of the app (XMLHttpRequest), answered by the test. */
class FakeXhr {
  static all: FakeXhr[] = [];
  url = "";
  headers: Record<string, string> = {};
  status = 0;
  upload: { onprogress: ((e: { loaded: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  ontimeout: (() => void) | null = null;
  constructor() {
    FakeXhr.all.push(this);
  }
  open(_method: string, url: string) {
    this.url = url;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send() {}
  abort() {
    this.onabort?.();
  }
  answer(status: number) {
    this.status = status;
    this.onload?.();
  }
}

function restoreGlobals() {
  vi.useRealTimers();
  vi.unstubAllGlobals();
}

describe("ChatApp: changes of messages", () => {
  beforeEach(freshApp);
  afterEach(restoreGlobals);

  it("resends an unacked change after a reconnect, after the resume, with the same client_event_id", async () => {
    const app = await startApp();
    expect(app.state.views[CH].tl.placed).toHaveLength(2);
    const first = last();
    app.edit(CH, "m1", "better words");
    const [edit] = first.of("edit");
    expect(edit).toMatchObject({ channel_id: CH, message_id: "m1", body: "better words" });
    expect(typeof edit.client_event_id).toBe("string");
    app.toggleReaction(CH, "m2", "👍");
    const [react] = first.of("react");
    // The react was acked; the edit was not when the connection dropped.
    first.frame({ type: "event_ack", client_event_id: react.client_event_id, event_id: "ev-react" });
    first.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    const second = last();
    expect(second).not.toBe(first);
    expect(second.url).toContain("resume=1");
    second.ready();
    expect(second.sent[0]).toEqual({ type: "resume", channels: { [CH]: "m2" } });
    expect(second.of("edit")).toEqual([edit]);
    expect(second.of("react")).toEqual([]); // acked: its event comes with the resume
    // The shown state has both, optimistically, until their events.
    expect(app.state.changes.map((c) => c.kind).sort()).toEqual(["edit", "react"]);
  });

  it("resends after `unavailable` and after `rate_limited` (when told), with the same id", async () => {
    const app = await startApp();
    const ws = last();
    app.deleteMessage(CH, "m1");
    const [del] = ws.of("delete");
    ws.frame({ type: "error", code: "unavailable", message: "try again", client_event_id: del.client_event_id });
    expect(ws.of("delete")).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(600);
    expect(ws.of("delete")).toEqual([del, del]);
    ws.frame({
      type: "error",
      code: "rate_limited",
      message: "slow down",
      client_event_id: del.client_event_id,
      retry_after_ms: 2_000,
    });
    await vi.advanceTimersByTimeAsync(1_900);
    expect(ws.of("delete")).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(200);
    expect(ws.of("delete")).toEqual([del, del, del]);
    expect(app.state.notice).toBeNull();
  });

  it("drops a refused change and says why, for a while", async () => {
    const app = await startApp();
    const ws = last();
    app.edit(CH, "m2", "not mine");
    const [edit] = ws.of("edit");
    ws.frame({ type: "error", code: "not_author", message: "only the author", client_event_id: edit.client_event_id });
    expect(app.state.changes).toEqual([]);
    expect(app.state.notice?.text).toMatch(/your own messages/);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(app.state.notice).toBeNull();
    // Not sent again after a reconnect either.
    ws.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    last().ready();
    expect(last().of("edit")).toEqual([]);
  });

  it("applies events, settles our change by its event, and resumes from the newest event", async () => {
    const app = await startApp();
    const ws = last();
    app.toggleReaction(CH, "m1", "🎉");
    const [react] = ws.of("react");
    ws.frame({ type: "event_ack", client_event_id: react.client_event_id, event_id: "e7" });
    ws.frame({
      type: "event",
      event: event(7, { kind: "reaction_added", emoji: "🎉", count: 1, client_event_id: String(react.client_event_id) }),
    });
    expect(app.state.changes).toEqual([]);
    expect(app.state.views[CH].tl.placed[0].reactions).toEqual([{ emoji: "🎉", count: 1, me: true }]);
    // A toggle of a reaction that is ours takes it back.
    app.toggleReaction(CH, "m1", "🎉");
    expect(ws.of("unreact")).toHaveLength(1);
    ws.frame({ type: "event", event: event(8, { kind: "edited", body: "changed", actor_id: ME.id }) });
    expect(app.state.views[CH].tl.placed[0]).toMatchObject({ body: "changed", edited_at: "2025-01-15T10:00:00Z" });
    ws.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    last().ready();
    expect(last().sent[0]).toEqual({ type: "resume", channels: { [CH]: "e8" } });
    // The unacked unreact goes out again after the resume.
    expect(last().of("unreact")).toHaveLength(1);
  });

  it("sends files with a caption; a resend after a reconnect and a Retry carry the same files and client_msg_id", async () => {
    const app = await startApp();
    const photo = { id: "f1", name: "IMG_0042.jpg", content_type: "image/jpeg", size: 2483921, width: 3024, height: 4032 };
    const ws = last();
    ws.drop();
    app.send(CH, "", undefined, [photo]);
    // Shown at once, with its file, although nothing could be written yet.
    expect(app.state.views[CH].tl.pending[0]).toMatchObject({ body: "", attachments: [photo], status: "sending" });
    await vi.advanceTimersByTimeAsync(1_000);
    last().ready();
    const [send] = last().of("send");
    expect(send).toEqual({ type: "send", channel_id: CH, client_msg_id: send.client_msg_id, body: "", attachments: ["f1"] });
    // Refused (say the upload went with another message): "Not sent", in words; Retry sends the same.
    last().frame({ type: "error", code: "invalid_attachment", message: "no", client_msg_id: send.client_msg_id });
    const failed = app.state.views[CH].tl.pending[0];
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(/can't be sent/);
    app.retry(CH, String(send.client_msg_id));
    expect(last().of("send")).toEqual([send, send]);
  });

  it("uploads a picked file (declare, PUT, complete), then sends the message with it", async () => {
    FakeXhr.all = [];
    attachmentCalls = [];
    vi.stubGlobal("XMLHttpRequest", FakeXhr);
    const app = await startApp();
    const file = Object.assign(new Blob([new Uint8Array([1, 2, 3])], { type: "image/png" }), { name: "dot.png" }) as File;
    app.attach(CH, [file]);
    expect(app.state.uploads[CH][0].stage).toBe("creating");
    await vi.advanceTimersByTimeAsync(0);
    expect(attachmentCalls).toEqual([`POST /api/v1/channels/${CH}/attachments`]);
    const [xhr] = FakeXhr.all;
    expect(xhr.url).toBe("http://chat.test/chat-attachments/o/a1?sig=1");
    expect(xhr.headers).toEqual({ "content-type": "image/png" });
    xhr.upload.onprogress?.({ loaded: 2 });
    expect(app.state.uploads[CH][0]).toMatchObject({ stage: "uploading", sent: 2 });
    xhr.answer(200);
    await vi.advanceTimersByTimeAsync(0);
    expect(attachmentCalls[1]).toBe(`POST /api/v1/channels/${CH}/attachments/a1/complete`);
    expect(app.state.uploads[CH][0].stage).toBe("done");
    app.send(CH, "a dot", undefined, app.takeUploads(CH));
    expect(app.state.uploads[CH]).toBeUndefined();
    expect(last().of("send")[0]).toMatchObject({ body: "a dot", attachments: ["a1"] });
  });

  it("announces a message of files by its files", async () => {
    const app = await startApp();
    last().frame({
      type: "message",
      message: message(3, { sender_id: BOB, body: "", attachments: [{ id: "f", name: "IMG_0042.jpg", content_type: "image/jpeg", size: 1 }] }),
    });
    expect(app.state.announcement.text).toMatch(/: 📎 IMG_0042\.jpg$/);
  });

  it("sends a reply with reply_to, and again with it after a reconnect", async () => {
    const app = await startApp();
    const ws = last();
    ws.drop();
    app.send(CH, "agreed", "m2");
    await vi.advanceTimersByTimeAsync(1_000);
    last().ready();
    const [send] = last().of("send");
    expect(send).toMatchObject({ type: "send", channel_id: CH, body: "agreed", reply_to: "m2" });
  });
});

const CH2 = "c2";
const DM = "d1";

/** A message of another conversation. */
function elsewhere(channelId: string, seq: number, over: Partial<Message> = {}): Message {
  return message(seq, { id: `${channelId}-m${seq}`, channel_id: channelId, client_msg_id: `${channelId}-cm${seq}`, sender_id: BOB, ...over });
}

describe("ChatApp: read state, unread counts, owner deletes, notifications", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.parse("2025-01-15T09:00:30Z") });
    FakeWs.all = [];
    history = [message(1), message(2, { sender_id: BOB })];
    histories = { [CH2]: [3, 4, 5].map((seq) => elsewhere(CH2, seq, { mentions: seq === 5 ? [ME.id] : undefined })) };
    channelList = [
      { ...GENERAL, created_by: ME.id, head_seq: 2, read_seq: 2, unread_count: 0, mention_count: 0 },
      { id: CH2, kind: "group", name: "random", description: "", created_at: "2025-01-15T09:00:00Z", created_by: BOB, head_seq: 5, read_seq: 3, unread_count: 2, mention_count: 1 },
      { id: DM, kind: "direct", name: "Bob", description: "", created_at: "2025-01-15T09:00:00Z", head_seq: 0, read_seq: 0, unread_count: 0, mention_count: 0 },
    ];
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("counts from the list, adds live messages of others, and marks the open conversation as it is shown", async () => {
    const app = await startApp();
    const ws = last();
    expect(app.unread(CH)).toEqual({ count: 0, mentions: 0 });
    expect(app.unread(CH2)).toEqual({ count: 2, mentions: 1 });
    expect(ws.of("mark_read")).toEqual([]); // read up to its newest already

    // Elsewhere: counted, mentions too; ours are not.
    ws.frame({ type: "message", message: elsewhere(CH2, 6, { mentions: [ME.id] }) });
    ws.frame({ type: "message", message: elsewhere(CH2, 7, { sender_id: ME.id }) });
    expect(app.unread(CH2)).toEqual({ count: 3, mentions: 2 });

    // In the open conversation: marked read as it comes.
    ws.frame({ type: "message", message: message(3, { sender_id: BOB }) });
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.of("mark_read")).toEqual([{ type: "mark_read", channel_id: CH, seq: 3 }]);
    expect(app.unread(CH)).toEqual({ count: 0, mentions: 0 });

    // Opening the other: its history loads, it is marked read up to the newest, and the line
    // "new since you last read" goes where the mark was.
    app.setActive(CH2);
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.of("mark_read")).toContainEqual({ type: "mark_read", channel_id: CH2, seq: 7 });
    expect(app.unread(CH2)).toEqual({ count: 0, mentions: 0 });
    expect(app.state.readLine[CH2]).toBe(3);
  });

  it("draws no line for messages that come while the conversation is on screen", async () => {
    const app = await startApp();
    const ws = last();
    expect(app.state.readLine[CH]).toBeUndefined(); // nothing was unread when it was opened
    ws.frame({ type: "message", message: message(3, { sender_id: BOB }) });
    await vi.advanceTimersByTimeAsync(0);
    expect(app.state.readLine[CH]).toBeUndefined();
    // Opened again later with nothing new: still none.
    app.setActive(null);
    app.setActive(CH);
    await vi.advanceTimersByTimeAsync(0);
    expect(app.state.readLine[CH]).toBeUndefined();
  });

  it("follows the marks of our other devices", async () => {
    const app = await startApp();
    const ws = last();
    ws.frame({ type: "read", channel_id: CH2, seq: 4 });
    expect(app.unread(CH2)).toEqual({ count: 1, mentions: 1 });
    ws.frame({ type: "read", channel_id: CH2, seq: 5 });
    expect(app.unread(CH2)).toEqual({ count: 0, mentions: 0 });
    ws.frame({ type: "read", channel_id: CH2, seq: 3 }); // an older one, late: changes nothing
    expect(app.unread(CH2)).toEqual({ count: 0, mentions: 0 });
  });

  it("marks nothing read while the tab is hidden; on return, the line goes before what came meanwhile", async () => {
    const app = await startApp();
    const ws = last();
    page.show(false);
    ws.frame({ type: "message", message: message(3, { sender_id: BOB }) });
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.of("mark_read")).toEqual([]);
    expect(app.unread(CH)).toEqual({ count: 1, mentions: 0 });
    page.show(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(ws.of("mark_read")).toEqual([{ type: "mark_read", channel_id: CH, seq: 3 }]);
    expect(app.state.readLine[CH]).toBe(2);
    expect(app.unread(CH)).toEqual({ count: 0, mentions: 0 });
  });

  it("sends a mark made while disconnected after the reconnect, after the resume", async () => {
    const app = await startApp();
    const first = last();
    // A message comes while the tab is hidden; the connection drops; the person comes back.
    page.show(false);
    first.frame({ type: "message", message: message(3, { sender_id: BOB }) });
    first.drop();
    page.show(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(app.unread(CH)).toEqual({ count: 0, mentions: 0 }); // shown, so read
    expect(first.of("mark_read")).toEqual([]);
    const second = last();
    expect(second).not.toBe(first);
    second.ready();
    expect(second.sent[0]).toMatchObject({ type: "resume" });
    expect(second.of("mark_read")).toEqual([{ type: "mark_read", channel_id: CH, seq: 3 }]);
  });

  it("offers the owner of a group channel to delete anyone's message, and nobody else", async () => {
    const app = await startApp();
    const bobs = message(9, { sender_id: BOB });
    expect(app.canDelete(CH, bobs)).toBe(true); // created_by: me
    expect(app.canDelete(CH2, { ...bobs, channel_id: CH2 })).toBe(false); // Bob's channel
    expect(app.canDelete(CH2, { ...bobs, channel_id: CH2, sender_id: ME.id })).toBe(true); // my own
    expect(app.canDelete(DM, { ...bobs, channel_id: DM })).toBe(false); // direct: no owner
    expect(app.canDelete(CH, { ...bobs, deleted: true })).toBe(false);
  });

  it("notifies someone else's new message in another conversation once turned on, and opens it on a click", async () => {
    const shown: Array<{ title: string; options: NotificationOptions; onclick: (() => void) | null; close: () => void }> = [];
    class FakeNotification {
      static permission = "granted";
      static requestPermission = async () => "granted";
      onclick: (() => void) | null = null;
      constructor(
        readonly title: string,
        readonly options: NotificationOptions,
      ) {
        shown.push(this);
      }
      close() {}
    }
    vi.stubGlobal("Notification", FakeNotification);
    const app = await startApp({ [`chat.notify.${ME.id}`]: "on" });
    expect(app.state.notifications).toBe("on");
    const opened: string[] = [];
    app.openConversation = (id) => opened.push(id);
    const ws = last();
    ws.frame({ type: "message", message: elsewhere(CH2, 6) });
    ws.frame({ type: "message", message: elsewhere(CH2, 7, { sender_id: ME.id }) }); // ours
    ws.frame({ type: "message", message: message(3, { sender_id: BOB }) }); // on screen
    ws.frame({ type: "message", message: elsewhere(CH2, 6) }); // again (a resend): not new
    expect(shown.map((n) => n.title)).toEqual(["#random"]);
    expect(shown[0].options).toMatchObject({ body: "Someone: body 6", tag: `chat:${CH2}` });
    shown[0].onclick?.();
    expect(opened).toEqual([CH2]);
    // The open conversation too, while the tab is hidden.
    page.show(false);
    ws.frame({ type: "message", message: message(4, { sender_id: BOB }) });
    expect(shown).toHaveLength(2);
    // Turned off: none.
    app.disableNotifications();
    ws.frame({ type: "message", message: elsewhere(CH2, 8) });
    expect(shown).toHaveLength(2);
  });
});

describe("ChatApp: app_state (whether the tab is in front of the user)", () => {
  beforeEach(freshApp);
  afterEach(restoreGlobals);

  it("says background when the tab is hidden and foreground when it is back, each change once", async () => {
    await startApp();
    const ws = last();
    expect(ws.of("app_state")).toEqual([]); // visible: a fresh connection is already in the foreground
    page.show(false);
    page.show(false); // another visibilitychange with the same state: nothing new to say
    expect(ws.of("app_state")).toEqual([{ type: "app_state", state: "background" }]);
    page.show(true);
    page.show(true);
    expect(ws.of("app_state")).toEqual([
      { type: "app_state", state: "background" },
      { type: "app_state", state: "foreground" },
    ]);
  });

  it("tells a new connection that the tab is hidden, after the resume; a visible tab says nothing", async () => {
    await startApp();
    const first = last();
    page.show(false);
    first.drop();
    page.show(true);
    page.show(false); // changes while disconnected: nothing can be written
    await vi.advanceTimersByTimeAsync(1_000);
    const second = last();
    expect(second).not.toBe(first);
    second.ready();
    expect(second.sent[0]).toMatchObject({ type: "resume" });
    expect(second.sent[1]).toEqual({ type: "app_state", state: "background" });
    expect(second.of("app_state")).toHaveLength(1);
    page.show(true);
    expect(second.of("app_state")).toEqual([
      { type: "app_state", state: "background" },
      { type: "app_state", state: "foreground" },
    ]);
    // Back in the foreground when it drops again: the next connection is told nothing.
    second.drop();
    await vi.advanceTimersByTimeAsync(1_000);
    const third = last();
    expect(third).not.toBe(second);
    third.ready();
    expect(third.of("app_state")).toEqual([]);
  });
});
