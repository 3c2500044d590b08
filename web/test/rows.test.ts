import { describe, expect, it } from "vitest";
import { dayKey, dayLabel } from "../src/lib/days";
import { coverRange, emptyTimeline, mergeMessages, addOutgoing, timelineItems } from "../src/lib/messages";
import { timelineRows, type Row } from "../src/lib/rows";
import type { Message } from "../src/lib/types";
import { CH, ME, msg } from "./support";


/** A local time (the reader's zone): year, month (1-12), day, hour, minute. */
const local = (y: number, mo: number, d: number, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi);

function msgAt(seq: number, at: Date, over: Partial<Message> = {}): Message {
  return msg(seq, { created_at: at.toISOString(), ...over });
}

/** The rows in short: "day:<label>", "unread", "m<seq>" (with "~" when grouped with the previous). */
const short = (rows: Row[]) =>
  rows.map((r) =>
    r.kind === "day"
      ? `day:${r.label}`
      : r.kind === "unread"
        ? "unread"
        : `${r.compact ? "~" : ""}${r.item.kind === "message" ? r.item.message.id : "out"}`,
  );

describe("days", () => {
  it("are the reader's local calendar days", () => {
    expect(dayKey(local(2025, 1, 5, 0, 1))).toBe("2025-01-05");
    expect(dayKey(local(2025, 12, 31, 23, 59))).toBe("2025-12-31");
    // The same instant is on different days in New York and Tokyo.
    expect(dayKey(new Date("2025-01-15T03:00:00Z"), "America/New_York")).toBe("2025-01-14");
    expect(dayKey(new Date("2025-01-15T20:00:00Z"), "Asia/Tokyo")).toBe("2025-01-16");
    expect(dayKey(new Date("2025-01-15T20:00:00Z"), "UTC")).toBe("2025-01-15");
  });

  it("are labelled Today, Yesterday, or by their date", () => {
    const now = local(2025, 3, 1, 9);
    expect(dayLabel(local(2025, 3, 1, 0, 5), now)).toBe("Today");
    // Across the end of February (by the calendar, not by 24 hours).
    expect(dayLabel(local(2025, 2, 28, 23, 55), now)).toBe("Yesterday");
    expect(dayLabel(local(2025, 2, 27, 10), now, "en-US")).toBe("Thursday, February 27");
    expect(dayLabel(local(2024, 12, 31, 10), now, "en-US")).toBe("Tuesday, December 31, 2024");
    // Across a new year.
    expect(dayLabel(local(2024, 12, 31, 23), local(2025, 1, 1, 1))).toBe("Yesterday");
  });

  it("know yesterday across a clock change, in the reader's zone", () => {
    const berlin = "Europe/Berlin";
    // Clocks went forward on 2025-03-30 in Berlin: that day had 23 hours.
    const now = new Date("2025-03-30T22:30:00Z"); // 00:30 on the 31st there
    expect(dayLabel(new Date("2025-03-29T23:10:00Z"), now, "en-US", berlin)).toBe("Yesterday"); // 00:10 on the 30th
    expect(dayLabel(new Date("2025-03-29T22:50:00Z"), now, "en-US", berlin)).toBe("Saturday, March 29");
    // In Tokyo the same instants fall on other days.
    expect(dayLabel(new Date("2025-03-29T22:50:00Z"), now, "en-US", "Asia/Tokyo")).toBe("Yesterday");
  });
});

describe("timeline rows", () => {
  const now = local(2025, 1, 16, 18);

  it("put a separator where the local day changes", () => {
    const tl = mergeMessages(emptyTimeline(), [
      msgAt(1, local(2025, 1, 14, 10)),
      msgAt(2, local(2025, 1, 15, 23, 58)),
      msgAt(3, local(2025, 1, 16, 0, 1)),
      msgAt(4, local(2025, 1, 16, 0, 2)),
    ]);
    const rows = timelineRows(timelineItems(tl), { myId: ME, known: tl.known, now });
    expect(short(rows)).toEqual([
      "day:Tuesday, January 14",
      "m1",
      "day:Yesterday",
      "m2",
      // Three minutes apart, same sender, but another day: not grouped with m2.
      "day:Today",
      "m3",
      "~m4",
    ]);
    expect(rows[0]).toMatchObject({ kind: "day", day: "2025-01-14" });
  });

  it("draw the unread line before the first message of someone else after the mark", () => {
    const at = local(2025, 1, 16, 9);
    const tl = mergeMessages(emptyTimeline(), [
      msgAt(1, at),
      msgAt(2, at, { sender_id: ME }),
      msgAt(4, at, { sender_id: ME }), // ours after the mark: read, of course
      msgAt(5, at, { deleted: true, body: "" }),
      msgAt(6, at),
      msgAt(7, at),
    ]);
    const known = coverRange(tl, 1, 7).known;
    const rows = timelineRows(timelineItems(tl), { myId: ME, lineAfter: 2, known, now });
    expect(short(rows)).toEqual(["day:Today", "m1", "m2", "~m4", "m5", "unread", "m6", "~m7"]);
    // Nothing after the mark, or no mark: no line.
    expect(short(timelineRows(timelineItems(tl), { myId: ME, lineAfter: 7, known, now }))).not.toContain("unread");
    expect(short(timelineRows(timelineItems(tl), { myId: ME, known, now }))).not.toContain("unread");
  });

  it("draw it only where nothing between the mark and the first new message is missing", () => {
    const at = local(2025, 1, 16, 9);
    // The newest page starts at 30; the mark is at 10: the first unread is older than the page.
    const tl = coverRange(mergeMessages(emptyTimeline(), [msgAt(30, at), msgAt(31, at)]), 30, 31);
    expect(short(timelineRows(timelineItems(tl), { myId: ME, lineAfter: 10, known: tl.known, now }))).not.toContain(
      "unread",
    );
    // Older pages loaded down to the mark: now it shows.
    const all = coverRange(mergeMessages(tl, [msgAt(11, at)]), 10, 31);
    expect(short(timelineRows(timelineItems(all), { myId: ME, lineAfter: 10, known: all.known, now }))).toEqual([
      "day:Today",
      "unread",
      "m11",
      "~m30",
      "~m31",
    ]);
  });

  it("show our messages on their way under the day they were written", () => {
    const tl = addOutgoing(mergeMessages(emptyTimeline(), [msgAt(1, local(2025, 1, 15, 9))]), {
      client_msg_id: "x",
      channel_id: CH,
      sender_id: ME,
      body: "hi",
      created_at: local(2025, 1, 16, 9).toISOString(),
      status: "sending",
    });
    expect(short(timelineRows(timelineItems(tl), { myId: ME, known: tl.known, now }))).toEqual([
      "day:Yesterday",
      "m1",
      "day:Today",
      "out",
    ]);
  });
});
