import { describe, expect, it } from "vitest";
import { byRecentActivity, lastActivity, titleWithUnread } from "../src/lib/conversations";
import { addOutgoing, emptyTimeline, mergeMessages } from "../src/lib/messages";
import type { Channel, Message } from "../src/lib/types";

function channel(id: string, over: Partial<Channel> = {}): Channel {
  return { id, kind: "group", name: id, description: "", created_at: "2025-01-01T00:00:00Z", ...over };
}

function msg(channelId: string, seq: number, at: string, over: Partial<Message> = {}): Message {
  return {
    id: `${channelId}-m${seq}`,
    channel_id: channelId,
    sender_id: "u-bob",
    body: "hi",
    client_msg_id: `${channelId}-cm${seq}`,
    created_at: at,
    seq,
    ...over,
  };
}

const lastMessage = (at: string) => ({ id: "x", seq: 1, sender_id: "u-bob", preview: "hi", created_at: at });

describe("the conversation list", () => {
  it("is ordered by the newest message, from the list or arrived since", () => {
    const a = channel("a", { last_message: lastMessage("2025-01-10T10:00:00Z") });
    const b = channel("b", { last_message: lastMessage("2025-01-12T10:00:00Z") });
    const c = channel("c", { last_message: null, created_at: "2025-01-11T00:00:00Z" });
    const timelines: Record<string, ReturnType<typeof emptyTimeline>> = {};
    const order = () => byRecentActivity([a, b, c], (x) => lastActivity(x, timelines[x.id])).map((x) => x.id);
    // Without messages, a conversation counts from its creation.
    expect(order()).toEqual(["b", "c", "a"]);
    // A live message in "a" brings it to the top.
    timelines.a = mergeMessages(emptyTimeline(), [msg("a", 2, "2025-01-13T08:00:00Z")]);
    expect(order()).toEqual(["a", "b", "c"]);
    // Our own message on its way to "c" does too.
    timelines.c = addOutgoing(emptyTimeline(), {
      client_msg_id: "o1",
      channel_id: "c",
      sender_id: "u-me",
      body: "first",
      created_at: "2025-01-14T08:00:00Z",
      status: "sending",
    });
    expect(order()).toEqual(["c", "a", "b"]);
  });

  it("does not count a deleted message as activity, and puts a conversation joined here first", () => {
    const a = channel("a", { last_message: lastMessage("2025-01-10T10:00:00Z") });
    const tl = mergeMessages(emptyTimeline(), [msg("a", 5, "2025-01-20T10:00:00Z", { deleted: true, body: "" })]);
    expect(lastActivity(a, tl)).toBe(Date.parse("2025-01-10T10:00:00Z"));
    const joined = channel("old", { created_at: "2024-01-01T00:00:00Z" });
    expect(lastActivity(joined, undefined, "2025-02-01T00:00:00Z")).toBe(Date.parse("2025-02-01T00:00:00Z"));
    expect(byRecentActivity([a, joined], (x) => lastActivity(x, undefined, x.id === "old" ? "2025-02-01T00:00:00Z" : undefined)).map((x) => x.id)).toEqual(["old", "a"]);
  });

  it("breaks ties by name", () => {
    const at = { last_message: lastMessage("2025-01-10T10:00:00Z") };
    const list = [channel("beta", at), channel("Alpha", at)];
    expect(byRecentActivity(list, (x) => lastActivity(x, undefined)).map((x) => x.name)).toEqual(["Alpha", "beta"]);
  });

  it("puts the unread total in the tab title", () => {
    expect(titleWithUnread("Chat", 0)).toBe("Chat");
    expect(titleWithUnread("Chat", 3)).toBe("(3) Chat");
    expect(titleWithUnread("Chat", 123456)).toBe("(9999+) Chat");
  });
});
