import { describe, expect, it } from "vitest";
import {
  addTyping,
  clearTyping,
  nextTypingExpiry,
  presenceText,
  pruneTyping,
  typingIn,
  typingLine,
  TypingThrottle,
  type TypingState,
} from "../src/lib/ephemeral";
import { Limits } from "../src/lib/types";

describe("typing indicators", () => {
  it("show a typer until the frame's expiry, and a later frame extends it", () => {
    let s: TypingState = {};
    s = addTyping(s, "c1", "bob", 5000, 1000);
    expect(typingIn(s, "c1", 5999)).toEqual(["bob"]);
    expect(typingIn(s, "c1", 6000)).toEqual([]);
    s = addTyping(s, "c1", "bob", 5000, 4000);
    expect(typingIn(s, "c1", 8999)).toEqual(["bob"]);
    expect(typingIn(s, "c2", 2000)).toEqual([]);
  });

  it("end when the typer's message arrives", () => {
    let s: TypingState = addTyping({}, "c1", "bob", 5000, 0);
    s = addTyping(s, "c1", "ann", 5000, 0);
    const after = clearTyping(s, "c1", "bob");
    expect(typingIn(after, "c1", 1)).toEqual(["ann"]);
    expect(clearTyping(after, "c1", "bob")).toBe(after);
    expect(clearTyping(clearTyping(after, "c1", "ann"), "c1", "x")).toEqual({});
  });

  it("are pruned when expired, and say when to look again", () => {
    let s: TypingState = addTyping({}, "c1", "bob", 5000, 0);
    s = addTyping(s, "c2", "ann", 2000, 0);
    expect(nextTypingExpiry(s)).toBe(2000);
    const pruned = pruneTyping(s, 2000);
    expect(pruned).toEqual({ c1: { bob: 5000 } });
    expect(pruneTyping(pruned, 2500)).toBe(pruned);
    expect(nextTypingExpiry(pruneTyping(pruned, 5000))).toBeNull();
  });

  it("fall back to the contract's expiry for a nonsensical one", () => {
    const s = addTyping({}, "c1", "bob", Number.NaN, 0);
    expect(s.c1.bob).toBe(Limits.TYPING_EXPIRES_MS);
    expect(addTyping({}, "c1", "bob", 1e9, 0).c1.bob).toBe(30_000);
  });

  it("read as a sentence", () => {
    expect(typingLine([])).toBe("");
    expect(typingLine(["Ann"])).toBe("Ann is typing…");
    expect(typingLine(["Ann", "Bob"])).toBe("Ann and Bob are typing…");
    expect(typingLine(["Ann", "Bob", "Cy"])).toBe("Ann, Bob and Cy are typing…");
    expect(typingLine(["Ann", "Bob", "Cy", "Di"])).toBe("Ann, Bob and 2 others are typing…");
  });
});

describe("sending typing", () => {
  it("goes out at most once per interval per channel, never for an empty draft", () => {
    const t = new TypingThrottle(2000);
    expect(t.shouldSend("c1", "h", 0)).toBe(true);
    expect(t.shouldSend("c1", "he", 500)).toBe(false);
    expect(t.shouldSend("c2", "x", 500)).toBe(true);
    expect(t.shouldSend("c1", "hel", 1999)).toBe(false);
    expect(t.shouldSend("c1", "hell", 2000)).toBe(true);
    expect(t.shouldSend("c1", "   ", 9000)).toBe(false);
  });

  it("may go out at once after a message was sent", () => {
    const t = new TypingThrottle(2000);
    expect(t.shouldSend("c1", "a", 0)).toBe(true);
    t.sent("c1");
    expect(t.shouldSend("c1", "b", 10)).toBe(true);
  });
});

describe("presence", () => {
  const now = Date.parse("2025-01-15T12:00:00Z");
  it("says online, or when the person was last seen", () => {
    expect(presenceText(undefined, now)).toBe("");
    expect(presenceText({ online: true, last_seen_at: null }, now)).toBe("Online");
    expect(presenceText({ online: false, last_seen_at: null }, now)).toBe("Offline");
    expect(presenceText({ online: false, last_seen_at: "2025-01-15T11:59:30Z" }, now)).toBe("Last seen just now");
    expect(presenceText({ online: false, last_seen_at: "2025-01-15T11:59:00Z" }, now)).toBe(
      "Last seen 1 minute ago",
    );
    expect(presenceText({ online: false, last_seen_at: "2025-01-15T11:15:00Z" }, now)).toBe(
      "Last seen 45 minutes ago",
    );
    expect(presenceText({ online: false, last_seen_at: "2025-01-15T09:00:00Z" }, now)).toBe("Last seen 3 hours ago");
    expect(presenceText({ online: false, last_seen_at: "2025-01-12T12:00:00Z" }, now)).toBe("Last seen 3 days ago");
    expect(presenceText({ online: false, last_seen_at: "garbage" }, now)).toBe("Offline");
  });
});
