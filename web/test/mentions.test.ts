import { describe, expect, it } from "vitest";
import { splitBody } from "../src/lib/links";
import { mentionedUsernames, mentionsMe } from "../src/lib/mentions";

// The cases of chat_types::limits::mentioned_usernames (crates/chat-types/src/limits.rs).
describe("mentions", () => {
  it("are recognised where people write them, as the server does", () => {
    expect(mentionedUsernames("hi @Bob and @alice.")).toEqual(["bob", "alice"]);
    expect(mentionedUsernames("@bob @BOB (@carol) @x")).toEqual(["bob", "carol"]);
    expect(mentionedUsernames("mail a@b.com or @@bob")).toEqual([]);
    expect(mentionedUsernames("@")).toEqual([]);
    expect(mentionedUsernames("é@dave")).toEqual(["dave"]);
    const many = Array.from({ length: 30 }, (_, i) => `@user${i} `).join("");
    expect(mentionedUsernames(many)).toHaveLength(20);
    expect(mentionedUsernames(`@${"a".repeat(33)}`)).toEqual([]);
    expect(mentionedUsernames("thanks @bob...")).toEqual(["bob"]);
  });

  it("split a body for display, marking the current user's", () => {
    expect(splitBody("hi @Alice, see @bob.", "alice")).toEqual([
      { text: "hi " },
      { text: "@Alice", mention: "alice", me: true },
      { text: ", see " },
      { text: "@bob", mention: "bob", me: false },
      { text: "." },
    ]);
    expect(splitBody("no mention here", "alice")).toEqual([{ text: "no mention here" }]);
    // Without a username (the message does not mention the reader), no token is theirs.
    expect(splitBody("hi @alice", undefined)).toEqual([{ text: "hi " }, { text: "@alice", mention: "alice", me: false }]);
    // The parts join back to the body.
    const body = "🎉 @alice_1 and @@nobody @carol-x.";
    expect(splitBody(body, "ALICE_1").map((p) => p.text).join("")).toBe(body);
  });

  it("mention the current user when the server says so, never by the body alone", () => {
    const ME = "u-me";
    const m = { sender_id: "u-bob", body: "hi @alice" };
    expect(mentionsMe({ ...m, mentions: [ME] }, ME)).toBe(true);
    expect(mentionsMe({ ...m, mentions: ["u-carol"] }, ME)).toBe(false);
    // "@alice" in the body, but the server resolved nobody (not a member, or before mentions existed).
    expect(mentionsMe(m, ME)).toBe(false);
    // Our own messages and tombstones never do.
    expect(mentionsMe({ ...m, sender_id: ME, mentions: [ME] }, ME)).toBe(false);
    expect(mentionsMe({ ...m, deleted: true, mentions: [ME] }, ME)).toBe(false);
    expect(mentionsMe({ ...m, mentions: [ME] }, undefined)).toBe(false);
  });
});
