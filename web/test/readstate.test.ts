import { describe, expect, it } from "vitest";
import { coverRange, emptyTimeline, mergeMessages } from "../src/lib/messages";
import { advanceMark, markFromList, markTarget, unreadOf } from "../src/lib/readstate";
import type { Channel } from "../src/lib/types";
import { CH, ME, msg } from "./support";


function listed(over: Partial<Channel> = {}): Channel {
  return {
    id: CH,
    kind: "group",
    name: "general",
    description: "",
    created_at: "2025-01-15T08:00:00Z",
    head_seq: 10,
    read_seq: 6,
    unread_count: 3,
    mention_count: 1,
    ...over,
  };
}

describe("read marks", () => {
  it("start from the list, and never go back", () => {
    const mark = markFromList(undefined, listed());
    expect(mark).toEqual({ seq: 6, listed: { read: 6, head: 10, unread: 3, mentions: 1 } });
    // Our own mark got further than the stored one the list read (stored once a second).
    const ours = advanceMark(mark, 9);
    expect(markFromList(ours, listed()).seq).toBe(9);
    expect(advanceMark(ours, 4)).toBe(ours); // a `read` of an older mark
    expect(advanceMark(undefined, 4)).toEqual({ seq: 4 });
  });

  it("are kept when the answer has no read state (an old server, a join)", () => {
    const mark = advanceMark(undefined, 5);
    const plain = listed({ head_seq: undefined, read_seq: undefined, unread_count: undefined, mention_count: undefined });
    expect(markFromList(mark, plain)).toBe(mark);
    expect(markFromList(undefined, plain)).toEqual({ seq: 0 });
  });
});

describe("unread", () => {
  it("is nothing while the mark is unknown", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(1), msg(2)]);
    expect(unreadOf(undefined, tl, ME)).toEqual({ count: 0, mentions: 0 });
  });

  it("is the list's count, plus the messages of others that came since", () => {
    const mark = markFromList(undefined, listed());
    expect(unreadOf(mark, undefined, ME)).toEqual({ count: 3, mentions: 1 });
    // Live: Bob at 11 (mentioning me), mine at 12, Bob's at 13 deleted since: one more, one more mention.
    const tl = mergeMessages(emptyTimeline(), [
      msg(11, { mentions: [ME] }),
      msg(12, { sender_id: ME, mentions: [ME] }),
      msg(13, { deleted: true, body: "" }),
    ]);
    expect(unreadOf(mark, tl, ME)).toEqual({ count: 4, mentions: 2 });
    // The history page loaded later repeats 7..10: not counted twice.
    const more = mergeMessages(tl, [msg(7), msg(8), msg(9), msg(10)]);
    expect(unreadOf(mark, more, ME)).toEqual({ count: 4, mentions: 2 });
  });

  it("is nothing once the mark reaches the newest message", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(11)]);
    const mark = advanceMark(markFromList(undefined, listed()), 11);
    expect(unreadOf(mark, tl, ME)).toEqual({ count: 0, mentions: 0 });
  });

  it("counts what is left when the mark moved into the list's range, from the timeline if it has it", () => {
    // Another device read up to 8 of the 10.
    const mark = advanceMark(markFromList(undefined, listed()), 8);
    const tl = coverRange(mergeMessages(emptyTimeline(), [msg(7), msg(9, { mentions: [ME] }), msg(10)]), 7, 10);
    expect(unreadOf(mark, tl, ME)).toEqual({ count: 2, mentions: 1 });
    // Not loaded: at most what is left of the range.
    expect(unreadOf(mark, undefined, ME)).toEqual({ count: 2, mentions: 1 });
    expect(unreadOf(advanceMark(mark, 9), undefined, ME)).toEqual({ count: 1, mentions: 1 });
  });

  it("is marked up to the newest placed message", () => {
    expect(markTarget(emptyTimeline())).toBe(0);
    expect(markTarget(mergeMessages(emptyTimeline(), [msg(3), msg(7)]))).toBe(7);
    // An acked message without its place yet does not count.
    const acked = mergeMessages(emptyTimeline(), [msg(3), { ...msg(8), seq: undefined }]);
    expect(markTarget(acked)).toBe(3);
  });
});
