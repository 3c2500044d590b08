import { describe, expect, it } from "vitest";
import {
  ackChange,
  addChange,
  changeFrame,
  countAttempt,
  dropChange,
  emojiProblem,
  isRetryable,
  overlayChanges,
  settleByEvent,
  unackedChanges,
  type PendingChange,
} from "../src/lib/changes";
import type { ChannelEvent, Message } from "../src/lib/types";

const ME = "u-me";

function change(id: string, over: Partial<PendingChange> = {}): PendingChange {
  return { client_event_id: id, channel_id: "c1", message_id: "m1", kind: "react", emoji: "👍", attempts: 0, ...over };
}

const message: Message = {
  id: "m1",
  channel_id: "c1",
  sender_id: ME,
  body: "hello",
  client_msg_id: "cm1",
  created_at: "2025-01-15T09:00:00Z",
  seq: 1,
  reactions: [{ emoji: "👍", count: 2, me: false }],
};

function event(over: Partial<ChannelEvent> & Pick<ChannelEvent, "kind">): ChannelEvent {
  return {
    id: "e1",
    channel_id: "c1",
    seq: 9,
    actor_id: ME,
    message_id: "m1",
    message_seq: 1,
    client_event_id: "x",
    created_at: "2025-01-15T09:01:00Z",
    emoji: "👍",
    count: 1,
    ...over,
  } as ChannelEvent;
}

describe("pending changes", () => {
  it("make the frames of the protocol", () => {
    expect(changeFrame(change("a", { kind: "edit", body: "new", emoji: undefined }))).toEqual({
      type: "edit",
      channel_id: "c1",
      message_id: "m1",
      client_event_id: "a",
      body: "new",
    });
    expect(changeFrame(change("b", { kind: "delete", emoji: undefined }))).toEqual({
      type: "delete",
      channel_id: "c1",
      message_id: "m1",
      client_event_id: "b",
    });
    expect(changeFrame(change("c"))).toMatchObject({ type: "react", emoji: "👍", client_event_id: "c" });
    expect(changeFrame(change("d", { kind: "unreact" }))).toMatchObject({ type: "unreact", emoji: "👍" });
  });

  it("are resent (same client_event_id) until acked, then wait for their event", () => {
    let list = addChange([], change("a"));
    list = addChange(list, change("b", { kind: "edit", body: "x" }));
    list = addChange(list, change("a")); // the same change is not added twice
    expect(list).toHaveLength(2);
    expect(unackedChanges(list).map((c) => c.client_event_id)).toEqual(["a", "b"]);
    list = countAttempt(list, "a");
    expect(list[0].attempts).toBe(1);
    list = ackChange(list, "a", "ev-a");
    expect(unackedChanges(list).map((c) => c.client_event_id)).toEqual(["b"]);
    expect(list).toHaveLength(2); // still shown until its event comes
    expect(ackChange(list, "a", "ev-a")).toBe(list);
    expect(dropChange(list, "b").map((c) => c.client_event_id)).toEqual(["a"]);
  });

  it("are settled by their event: by event id, or by our client_event_id if it overtook the ack", () => {
    let list = ackChange([change("a"), change("b")], "a", "ev-a");
    list = settleByEvent(list, event({ kind: "reaction_added", id: "ev-a", client_event_id: "a" }), ME);
    expect(list.map((c) => c.client_event_id)).toEqual(["b"]);
    list = settleByEvent(list, event({ kind: "reaction_added", id: "ev-b", client_event_id: "b" }), ME);
    expect(list).toEqual([]);
    // Someone else's event with the same client_event_id is not ours.
    const other = [change("z")];
    expect(settleByEvent(other, event({ kind: "reaction_added", client_event_id: "z", actor_id: "u-bob" }), ME)).toBe(other);
  });

  it("are moot once their message is deleted", () => {
    const list = [change("a"), change("b", { message_id: "m2" }), change("c", { kind: "edit", body: "x" })];
    const out = settleByEvent(list, event({ kind: "deleted", actor_id: "u-bob", client_event_id: "q" }), ME);
    expect(out.map((c) => c.client_event_id)).toEqual(["b"]);
  });

  it("show on top of the message until their events come", () => {
    const r = overlayChanges(message, [
      change("a"),
      change("b", { emoji: "🎉" }),
      change("c", { kind: "edit", body: "better", emoji: undefined }),
    ]);
    expect(r.message.body).toBe("better");
    expect(r.saving).toBe(true);
    expect(r.message.reactions).toEqual([
      { emoji: "👍", count: 3, me: true },
      { emoji: "🎉", count: 1, me: true },
    ]);
    const back = overlayChanges(
      { ...message, reactions: [{ emoji: "👍", count: 1, me: true }] },
      [change("u", { kind: "unreact" })],
    );
    expect(back.message.reactions).toEqual([]);
    const del = overlayChanges(message, [change("d", { kind: "delete", emoji: undefined })]);
    expect(del.deleting).toBe(true);
    // Changes of other messages, and a tombstone, are left alone.
    expect(overlayChanges(message, [change("x", { message_id: "m9" })]).message).toBe(message);
    const tomb = { ...message, body: "", deleted: true, reactions: undefined };
    expect(overlayChanges(tomb, [change("a")]).message).toBe(tomb);
  });

  it("check emoji as the server does and know which errors to retry", () => {
    expect(emojiProblem("👍")).toBeNull();
    expect(emojiProblem("👩‍👩‍👧‍👦")).toBeNull();
    expect(emojiProblem("")).not.toBeNull();
    expect(emojiProblem("a b")).not.toBeNull();
    expect(emojiProblem("\u0007")).not.toBeNull();
    expect(emojiProblem("x".repeat(65))).not.toBeNull();
    expect(isRetryable("unavailable")).toBe(true);
    expect(isRetryable("rate_limited")).toBe(true);
    expect(isRetryable("not_author")).toBe(false);
    expect(isRetryable("message_deleted")).toBe(false);
  });
});
