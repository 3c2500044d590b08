import { describe, expect, it } from "vitest";
import { mentionedUsernames, mentionsUser, splitMentions } from "../src/lib/mentions";

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
    expect(splitMentions("hi @Alice, see @bob.", "alice")).toEqual([
      { text: "hi " },
      { text: "@Alice", mention: "alice", me: true },
      { text: ", see " },
      { text: "@bob", mention: "bob", me: false },
      { text: "." },
    ]);
    expect(splitMentions("no mention here", "alice")).toEqual([{ text: "no mention here" }]);
    // The parts join back to the body.
    const body = "🎉 @alice_1 and @@nobody @carol-x.";
    expect(splitMentions(body, "ALICE_1").map((p) => p.text).join("")).toBe(body);
  });

  it("tell whether a body mentions a user, ignoring case", () => {
    expect(mentionsUser("ping @ALICE", "alice")).toBe(true);
    expect(mentionsUser("ping @alicex", "alice")).toBe(false);
    expect(mentionsUser("alice@example.com", "alice")).toBe(false);
    expect(mentionsUser("@alice", undefined)).toBe(false);
  });
});
