import { describe, expect, it } from "vitest";
import { activityLabel, appendPage, emptyDirectory, markJoined, membersLabel } from "../src/lib/directory";
import type { DirectoryEntry } from "../src/lib/types";

const entry = (id: string, member_count: number, is_member = false): DirectoryEntry => ({
  id,
  name: `chan ${id}`,
  description: "",
  member_count,
  last_activity_at: null,
  is_member,
});

describe("the channel directory list", () => {
  it("appends pages in order and knows when the last one came", () => {
    let list = emptyDirectory("members");
    list = appendPage(list, { channels: [entry("a", 9), entry("b", 5)], next_cursor: "c1" });
    expect(list).toMatchObject({ cursor: "c1", done: false });
    list = appendPage(list, { channels: [entry("c", 2)], next_cursor: null });
    expect(list.entries.map((e) => e.id)).toEqual(["a", "b", "c"]);
    expect(list).toMatchObject({ cursor: null, done: true, sort: "members" });
  });

  it("shows a channel that comes back on a later page only once, in its first place", () => {
    let list = appendPage(emptyDirectory("activity"), { channels: [entry("a", 1), entry("b", 1)], next_cursor: "x" });
    list = appendPage(list, { channels: [entry("b", 2), entry("c", 1), entry("c", 1)], next_cursor: null });
    expect(list.entries.map((e) => e.id)).toEqual(["a", "b", "c"]);
    expect(list.entries[1].member_count).toBe(1);
  });

  it("counts the caller once after joining", () => {
    let list = appendPage(emptyDirectory("members"), { channels: [entry("a", 3), entry("b", 1, true)], next_cursor: null });
    list = markJoined(list, "a");
    list = markJoined(list, "a");
    list = markJoined(list, "b");
    expect(list.entries.map((e) => [e.member_count, e.is_member])).toEqual([
      [4, true],
      [1, true],
    ]);
  });

  it("says members and activity in words", () => {
    expect(membersLabel(1)).toBe("1 member");
    expect(membersLabel(0)).toBe("0 members");
    const now = Date.parse("2025-01-15T12:00:00Z");
    expect(activityLabel(null, now)).toBe("no messages yet");
    expect(activityLabel("2025-01-15T11:59:30Z", now)).toBe("active just now");
    expect(activityLabel("2025-01-15T11:55:00Z", now)).toBe("active 5 min ago");
    expect(activityLabel("2025-01-15T09:00:00Z", now)).toBe("active 3 h ago");
    expect(activityLabel("2025-01-14T12:00:00Z", now)).toBe("active 1 day ago");
    expect(activityLabel("2025-01-10T12:00:00Z", now)).toBe("active 5 days ago");
  });
});
