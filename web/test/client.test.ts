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

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

async function fakeFetch(input: string | URL | Request): Promise<Response> {
  const url = new URL(String(input), "http://chat.test");
  const p = url.pathname;
  if (p === "/api/v1/ws-tickets") return json(201, { ticket: `t${Math.random()}`, expires_in: 30 });
  if (p === "/api/v1/users/me") return json(200, ME);
  if (p === "/api/v1/channels") {
    return json(200, { channels: [{ id: CH, kind: "group", name: "general", description: "", created_at: "2025-01-15T09:00:00Z" }] });
  }
  if (p === `/api/v1/channels/${CH}/messages`) return json(200, { messages: url.searchParams.get("after") ? [] : history });
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

async function startApp(): Promise<ChatApp> {
  const storage = memoryStorage();
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
  vi.stubGlobal("window", { addEventListener: () => {}, localStorage: storage });
  vi.stubGlobal("document", { addEventListener: () => {}, hidden: false });
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

describe("ChatApp: changes of messages", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWs.all = [];
    history = [message(1), message(2, { sender_id: BOB })];
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

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
