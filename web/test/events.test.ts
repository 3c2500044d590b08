import { describe, expect, it } from "vitest";
import {
  applyEvent,
  applyEventToMessage,
  coverRange,
  emptyTimeline,
  findGap,
  hasOlder,
  mergeMessages,
  pageCoverage,
  resumePoint,
  resumePoints,
  type Timeline,
} from "../src/lib/messages";
import type { ChannelEvent } from "../src/lib/types";
import { BOB, CH, ME, msg } from "./support";

const CAROL = "u-carol";

let evN = 0;
function ev(seq: number, messageSeq: number, change: Record<string, unknown>, actor = BOB): ChannelEvent {
  return {
    id: `e${seq}`,
    channel_id: CH,
    seq,
    actor_id: actor,
    message_id: `m${messageSeq}`,
    message_seq: messageSeq,
    client_event_id: `ce${++evN}`,
    created_at: `2025-01-15T10:00:${String(seq % 60).padStart(2, "0")}Z`,
    ...change,
  } as ChannelEvent;
}

const edited = (seq: number, m: number, body: string, actor = BOB) => ev(seq, m, { kind: "edited", body }, actor);
const deleted = (seq: number, m: number, actor = BOB) => ev(seq, m, { kind: "deleted" }, actor);
const added = (seq: number, m: number, emoji: string, count: number, actor = BOB) =>
  ev(seq, m, { kind: "reaction_added", emoji, count }, actor);
const removed = (seq: number, m: number, emoji: string, count: number, actor = BOB) =>
  ev(seq, m, { kind: "reaction_removed", emoji, count }, actor);

const byId = (tl: Timeline, id: string) => tl.placed.find((m) => m.id === id)!;
const base = () => mergeMessages(emptyTimeline(), [msg(1), msg(2, { sender_id: ME }), msg(3)]);

describe("applyEvent", () => {
  it("edits: body and edited_at from the event", () => {
    const tl = applyEvent(base(), edited(4, 1, "new words"), ME);
    expect(byId(tl, "m1")).toMatchObject({ body: "new words", edited_at: "2025-01-15T10:00:04Z" });
    expect(byId(tl, "m3").body).toBe("body 3");
  });

  it("gives the same state when applied twice (and returns the same object)", () => {
    const events = [
      edited(4, 1, "v2"),
      added(5, 1, "👍", 1),
      added(6, 1, "👍", 2, ME),
      added(7, 3, "🎉", 1, CAROL),
      removed(8, 1, "👍", 1, BOB),
      deleted(9, 3),
    ];
    let once = base();
    for (const e of events) once = applyEvent(once, e, ME);
    let twice = once;
    for (const e of events) twice = applyEvent(twice, e, ME);
    expect(twice).toBe(once);
    // Interleaved duplicates (a resume overlapping live frames) end the same.
    let mixed = base();
    for (const e of events) mixed = applyEvent(applyEvent(mixed, e, ME), e, ME);
    expect(mixed.placed).toEqual(once.placed);
    expect(byId(once, "m1")).toMatchObject({ body: "v2", reactions: [{ emoji: "👍", count: 1, me: true }] });
  });

  it("ignores an older event after a newer one (the copy already reflects it)", () => {
    let tl = applyEvent(base(), edited(6, 1, "newest"), ME);
    tl = applyEvent(tl, edited(4, 1, "older"), ME);
    expect(byId(tl, "m1").body).toBe("newest");
  });

  it("deletes: a tombstone without body, reactions or edit time, and nothing revives it", () => {
    let tl = applyEvent(base(), edited(4, 1, "v2"), ME);
    tl = applyEvent(tl, added(5, 1, "👍", 3), ME);
    tl = applyEvent(tl, deleted(6, 1), ME);
    const m = byId(tl, "m1");
    expect(m.deleted).toBe(true);
    expect(m.body).toBe("");
    expect(m.reactions).toBeUndefined();
    expect(m.edited_at).toBeUndefined();
    // Later changes of a deleted message change nothing.
    tl = applyEvent(tl, edited(7, 1, "zombie"), ME);
    tl = applyEvent(tl, added(8, 1, "🎉", 1), ME);
    expect(byId(tl, "m1")).toMatchObject({ deleted: true, body: "" });
    expect(byId(tl, "m1").reactions).toBeUndefined();
  });

  it("sets absolute counts, keeps first-use order and drops an emoji at 0", () => {
    let tl = applyEvent(base(), added(4, 1, "👍", 1), ME);
    tl = applyEvent(tl, added(5, 1, "🎉", 1, CAROL), ME);
    // A count we did not see grow one by one: the event's count is the truth.
    tl = applyEvent(tl, added(6, 1, "👍", 7, CAROL), ME);
    expect(byId(tl, "m1").reactions).toEqual([
      { emoji: "👍", count: 7, me: false },
      { emoji: "🎉", count: 1, me: false },
    ]);
    tl = applyEvent(tl, removed(7, 1, "👍", 0), ME);
    expect(byId(tl, "m1").reactions).toEqual([{ emoji: "🎉", count: 1, me: false }]);
    tl = applyEvent(tl, removed(8, 1, "🎉", 0, CAROL), ME);
    expect(byId(tl, "m1").reactions).toBeUndefined();
  });

  it("sets `me` when the current user adds, clears it when they remove, keeps it for others", () => {
    let tl = applyEvent(base(), added(4, 2, "👍", 1, ME), ME);
    expect(byId(tl, "m2").reactions).toEqual([{ emoji: "👍", count: 1, me: true }]);
    tl = applyEvent(tl, added(5, 2, "👍", 2, BOB), ME);
    expect(byId(tl, "m2").reactions).toEqual([{ emoji: "👍", count: 2, me: true }]);
    tl = applyEvent(tl, removed(6, 2, "👍", 1, BOB), ME);
    expect(byId(tl, "m2").reactions).toEqual([{ emoji: "👍", count: 1, me: true }]);
    tl = applyEvent(tl, removed(7, 2, "👍", 0, ME), ME);
    expect(byId(tl, "m2").reactions).toBeUndefined();
    // Someone else's first reaction: not ours.
    tl = applyEvent(tl, added(8, 2, "👀", 1, BOB), ME);
    expect(byId(tl, "m2").reactions).toEqual([{ emoji: "👀", count: 1, me: false }]);
    // Our removal while others still have it.
    tl = applyEvent(tl, added(9, 2, "👀", 2, ME), ME);
    tl = applyEvent(tl, removed(10, 2, "👀", 1, ME), ME);
    expect(byId(tl, "m2").reactions).toEqual([{ emoji: "👀", count: 1, me: false }]);
  });

  it("applies to history reactions (`me` from the server)", () => {
    const m = msg(1, { reactions: [{ emoji: "👍", count: 2, me: true }] });
    const out = applyEventToMessage(m, added(4, 1, "👍", 3, BOB), ME);
    expect(out.reactions).toEqual([{ emoji: "👍", count: 3, me: true }]);
  });

  it("keeps the preview of replies in step with the original", () => {
    const reply = msg(4, { reply_to: { id: "m1", seq: 1, sender_id: BOB, preview: "body 1" } });
    let tl = mergeMessages(base(), [reply]);
    tl = applyEvent(tl, edited(5, 1, "x".repeat(200)), ME);
    expect(byId(tl, "m4").reply_to?.preview).toBe("x".repeat(140));
    tl = applyEvent(tl, deleted(6, 1), ME);
    expect(byId(tl, "m4").reply_to).toMatchObject({ id: "m1", preview: "", deleted: true });
  });

  it("keeps an event about a message not loaded and applies it when the message comes", () => {
    let tl = applyEvent(base(), edited(12, 10, "edited before we had it"), ME);
    tl = applyEvent(tl, added(13, 10, "👍", 1, ME), ME);
    expect(tl.orphans).toHaveLength(2);
    // The page was asked for before those events (it reflects position 11 at least).
    tl = mergeMessages(tl, [msg(10), msg(11)], 11);
    expect(byId(tl, "m10")).toMatchObject({ body: "edited before we had it", reactions: [{ emoji: "👍", count: 1, me: true }] });
    expect(tl.orphans).toHaveLength(0);
  });

  it("lets a newer history copy replace the one held, but not an older one", () => {
    let tl = applyEvent(base(), edited(5, 1, "live edit"), ME);
    // A page fetched when position 4 was the newest known: older than the edit at 5.
    tl = mergeMessages(tl, [msg(1, { body: "stale" })], 4);
    expect(byId(tl, "m1").body).toBe("live edit");
    // A page at least as new as position 9: it knows what happened since.
    tl = mergeMessages(tl, [msg(1, { body: "", deleted: true })], 9);
    expect(byId(tl, "m1")).toMatchObject({ deleted: true, body: "" });
  });

  it("an edit replaces the message's mentions with those of the new body", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1, { body: "@me look", mentions: [ME] })]);
    // Now it names Carol instead.
    tl = applyEvent(tl, ev(2, 1, { kind: "edited", body: "@carol look", mentions: [CAROL] }), ME);
    expect(byId(tl, "m1").mentions).toEqual([CAROL]);
    // And then nobody: the field is absent, as the server sends it.
    tl = applyEvent(tl, edited(3, 1, "nobody"), ME);
    expect(byId(tl, "m1")).not.toHaveProperty("mentions");
    // An edit that adds one to a message that had none.
    tl = applyEvent(tl, ev(4, 1, { kind: "edited", body: "@me again", mentions: [ME] }), ME);
    expect(byId(tl, "m1").mentions).toEqual([ME]);
    // Applying it again changes nothing (same object).
    expect(applyEvent(tl, ev(4, 1, { kind: "edited", body: "@me again", mentions: [ME] }), ME)).toBe(tl);
  });

  it("a delete drops the mentions with the body", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1, { body: "@me look", mentions: [ME] })]);
    tl = applyEvent(tl, deleted(2, 1), ME);
    expect(byId(tl, "m1")).not.toHaveProperty("mentions");
    // An edit after the delete (out of order) does not bring them back.
    tl = applyEvent(tl, ev(3, 1, { kind: "edited", body: "@me", mentions: [ME] }), ME);
    expect(byId(tl, "m1")).toMatchObject({ deleted: true, body: "" });
    expect(byId(tl, "m1")).not.toHaveProperty("mentions");
  });

  it("a newer history copy with other mentions replaces the one held", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1, { body: "hi @carol" })]);
    // Same body; the server resolved Carol meanwhile (e.g. the copy we had came from an old server).
    tl = mergeMessages(tl, [msg(1, { body: "hi @carol", mentions: [CAROL] })], 5);
    expect(byId(tl, "m1").mentions).toEqual([CAROL]);
  });
});

describe("resume bookkeeping with events", () => {
  it("names the newest of the last placed message and the last event", () => {
    let tl = base();
    expect(resumePoint(tl)).toBe("m3");
    tl = applyEvent(tl, added(4, 1, "👍", 1), ME);
    expect(resumePoint(tl)).toBe("e4");
    tl = mergeMessages(tl, [msg(5)]);
    expect(resumePoint(tl)).toBe("m5");
    tl = applyEvent(tl, edited(6, 5, "x"), ME);
    tl = applyEvent(tl, edited(7, 5, "y"), ME);
    expect(resumePoint(tl)).toBe("e7");
    // An old event coming again (a resume overlap) does not move the point back.
    tl = applyEvent(tl, edited(6, 5, "x"), ME);
    expect(resumePoint(tl)).toBe("e7");
  });

  it("counts an event about a message not loaded (its position was seen)", () => {
    const tl = applyEvent(base(), deleted(9, 8), ME);
    expect(resumePoint(tl)).toBe("e9");
    expect(resumePoints({ c1: tl, c2: emptyTimeline() })).toEqual({ c1: "e9" });
  });

  it("a timeline with only events resumes from its newest event", () => {
    const tl = applyEvent(emptyTimeline(), added(40, 7, "👍", 1), ME);
    expect(resumePoints({ c1: tl })).toEqual({ c1: "e40" });
  });
});

describe("gaps when message seqs skip event positions", () => {
  it("sees no gap where the missing positions were events seen live", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1)]);
    tl = applyEvent(tl, added(2, 1, "👍", 1), ME);
    tl = applyEvent(tl, edited(3, 1, "b"), ME);
    tl = mergeMessages(tl, [msg(4)]);
    expect(findGap(tl)).toBeUndefined();
  });

  it("sees no gap inside the range a history page covered", () => {
    const page = [msg(41), msg(42), msg(44)];
    const cover = pageCoverage(page, { limit: 50, knownMax: 0 });
    expect(cover).toEqual([1, 44]);
    let tl = mergeMessages(emptyTimeline(), page, 44);
    tl = coverRange(tl, cover![0], cover![1]);
    expect(findGap(tl)).toBeUndefined();
    expect(hasOlder(tl)).toBe(false); // the page was not full: nothing older exists
  });

  it("still finds positions nobody told us about, and fills them from the page after", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(10), msg(11)]);
    tl = applyEvent(tl, added(12, 10, "👍", 1), ME);
    tl = mergeMessages(tl, [msg(16)]); // 13-15 unknown
    expect(findGap(tl)).toEqual({ afterId: "m11", missing: 3 });
    // The gap fill returns message 14 only (13 and 15 were events); the page was not full.
    const page = [msg(14), msg(16)];
    const cover = pageCoverage(page, { limit: 100, after: 11, knownMax: 16 });
    expect(cover).toEqual([11, 16]);
    tl = coverRange(mergeMessages(tl, page, 16), cover![0], cover![1]);
    expect(findGap(tl)).toBeUndefined();
    expect(tl.placed.map((m) => m.seq)).toEqual([10, 11, 14, 16]);
  });

  it("finds unknown positions after the newest message up to the newest event", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1), msg(2)]);
    tl = applyEvent(tl, edited(6, 1, "x"), ME); // 3-5 missed
    expect(findGap(tl)).toEqual({ afterId: "m2", missing: 3 });
  });

  it("a full page covers only from its oldest message; an older page reaches its cursor", () => {
    const full = Array.from({ length: 3 }, (_, i) => msg(20 + i * 2));
    expect(pageCoverage(full, { limit: 3, knownMax: 30 })).toEqual([20, 30]);
    expect(pageCoverage(full, { limit: 3, before: 40, knownMax: 50 })).toEqual([20, 40]);
    expect(pageCoverage([], { limit: 50, before: 5, knownMax: 50 })).toEqual([1, 5]);
    expect(pageCoverage(full, { limit: 3, after: 10, knownMax: 50 })).toEqual([10, 24]);
    expect(pageCoverage([], { limit: 3, after: 10, knownMax: 50 })).toEqual([10, 50]);
    expect(pageCoverage([], { limit: 50, knownMax: 0 })).toBeUndefined();
  });

  it("knows there is older history when the oldest message is not at the start", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(5), msg(7)]);
    expect(hasOlder(tl)).toBe(true);
    expect(hasOlder(coverRange(tl, 1, 5))).toBe(false);
  });
});
