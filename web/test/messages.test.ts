import { describe, expect, it } from "vitest";
import {
  addOutgoing,
  applyAck,
  dropOutgoing,
  emptyTimeline,
  findGap,
  hasOlder,
  lastPlacedId,
  mergeMessages,
  oldestPlaced,
  resumePoints,
  sendingEntries,
  setOutgoingStatus,
  timelineItems,
  type Outgoing,
  type Timeline,
} from "../src/lib/messages";
import type { Message } from "../src/lib/types";

const CH = "c1";
const ME = "u-me";
const BOB = "u-bob";

function msg(seq: number | undefined, over: Partial<Message> = {}): Message {
  return {
    id: over.id ?? `m${seq}`,
    channel_id: CH,
    sender_id: over.sender_id ?? BOB,
    body: over.body ?? `body ${seq}`,
    client_msg_id: over.client_msg_id ?? `cm${seq}`,
    created_at: over.created_at ?? "2024-01-01T00:00:00Z",
    ...(seq === undefined ? {} : { seq }),
  };
}

function out(cmid: string, body = cmid): Outgoing {
  return {
    client_msg_id: cmid,
    channel_id: CH,
    sender_id: ME,
    body,
    created_at: "2024-01-01T00:00:00Z",
    status: "sending",
  };
}

const seqs = (tl: Timeline) => tl.placed.map((m) => m.seq);
const keys = (tl: Timeline) =>
  timelineItems(tl).map((i) => (i.kind === "message" ? i.message.id : `pending:${i.outgoing.client_msg_id}`));

describe("mergeMessages", () => {
  it("orders by seq whatever the arrival order", () => {
    let tl = emptyTimeline();
    tl = mergeMessages(tl, [msg(5), msg(3)]);
    tl = mergeMessages(tl, [msg(4), msg(1), msg(2)]);
    expect(seqs(tl)).toEqual([1, 2, 3, 4, 5]);
  });

  it("merges a history page, live messages and an older page without duplicates", () => {
    let tl = emptyTimeline();
    tl = mergeMessages(tl, [msg(9)]); // live, before the history arrived
    tl = mergeMessages(tl, [msg(6), msg(7), msg(8), msg(9)]); // newest page
    tl = mergeMessages(tl, [msg(10)]); // live
    tl = mergeMessages(tl, [msg(10)]); // delivered again (resume overlap)
    tl = mergeMessages(tl, [msg(3), msg(4), msg(5), msg(6)]); // older page overlapping by one
    expect(seqs(tl)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    expect(new Set(tl.placed.map((m) => m.id)).size).toBe(tl.placed.length);
  });

  it("deduplicates by client_msg_id of the same sender even under another id", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1, { id: "a", client_msg_id: "x" })]);
    tl = mergeMessages(tl, [msg(1, { id: "b", client_msg_id: "x" })]);
    expect(tl.placed).toHaveLength(1);
    expect(tl.placed[0].id).toBe("a");
  });

  it("keeps messages of different senders that happen to share a client_msg_id", () => {
    const tl = mergeMessages(emptyTimeline(), [
      msg(1, { id: "a", client_msg_id: "same", sender_id: BOB }),
      msg(2, { id: "b", client_msg_id: "same", sender_id: ME }),
    ]);
    expect(seqs(tl)).toEqual([1, 2]);
  });

  it("returns the same object when nothing changes", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(1), msg(2)]);
    expect(mergeMessages(tl, [msg(1)])).toBe(tl);
    expect(mergeMessages(tl, [])).toBe(tl);
  });

  it("does not mutate its input", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(2)]);
    const copy = JSON.parse(JSON.stringify(tl));
    mergeMessages(tl, [msg(1), msg(3)]);
    expect(tl).toEqual(copy);
  });
});

describe("optimistic sending", () => {
  it("shows a pending entry after the placed messages, then the ack and the message frame place it", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1), msg(2)]);
    tl = addOutgoing(tl, out("mine"));
    expect(keys(tl)).toEqual(["m1", "m2", "pending:mine"]);

    // The ack has no seq yet: confirmed, shown after the placed messages.
    tl = applyAck(tl, "mine", msg(undefined, { id: "m-mine", sender_id: ME, client_msg_id: "mine", body: "mine" }));
    expect(tl.pending).toHaveLength(0);
    expect(keys(tl)).toEqual(["m1", "m2", "m-mine"]);

    // Someone else's message got seq 3 before ours arrived with seq 4.
    tl = mergeMessages(tl, [msg(3)]);
    expect(keys(tl)).toEqual(["m1", "m2", "m3", "m-mine"]);
    tl = mergeMessages(tl, [msg(4, { id: "m-mine", sender_id: ME, client_msg_id: "mine", body: "mine" })]);
    expect(keys(tl)).toEqual(["m1", "m2", "m3", "m-mine"]);
    expect(tl.unplaced).toHaveLength(0);
    expect(seqs(tl)).toEqual([1, 2, 3, 4]);
  });

  it("handles the message frame arriving before the ack", () => {
    let tl = addOutgoing(emptyTimeline(), out("c"));
    tl = mergeMessages(tl, [msg(1, { id: "mc", sender_id: ME, client_msg_id: "c" })]);
    expect(tl.pending).toHaveLength(0);
    const after = applyAck(tl, "c", msg(undefined, { id: "mc", sender_id: ME, client_msg_id: "c" }));
    expect(after).toBe(tl);
    expect(keys(after)).toEqual(["mc"]);
  });

  it("matches an ack by client_msg_id even when the server id is new to us", () => {
    let tl = addOutgoing(emptyTimeline(), out("c"));
    tl = applyAck(tl, "c", { ...msg(7, { id: "server-id", sender_id: ME }), client_msg_id: "" });
    expect(tl.pending).toHaveLength(0);
    expect(tl.placed[0].client_msg_id).toBe("c");
  });

  it("marks failed, retries with the same client_msg_id, and can discard", () => {
    let tl = addOutgoing(emptyTimeline(), out("c"));
    tl = setOutgoingStatus(tl, "c", "failed", "nope");
    expect(tl.pending[0]).toMatchObject({ status: "failed", error: "nope" });
    expect(sendingEntries(tl)).toHaveLength(0);
    tl = setOutgoingStatus(tl, "c", "sending");
    expect(tl.pending[0]).toMatchObject({ status: "sending", client_msg_id: "c" });
    expect(tl.pending[0].error).toBeUndefined();
    expect(sendingEntries(tl).map((p) => p.client_msg_id)).toEqual(["c"]);
    expect(dropOutgoing(tl, "c").pending).toHaveLength(0);
  });

  it("does not add a pending entry twice, nor one that is already confirmed", () => {
    let tl = addOutgoing(emptyTimeline(), out("c"));
    tl = addOutgoing(tl, out("c"));
    expect(tl.pending).toHaveLength(1);
    tl = mergeMessages(tl, [msg(1, { sender_id: ME, client_msg_id: "c" })]);
    expect(addOutgoing(tl, out("c"))).toBe(tl);
  });

  it("keeps pending entries in the order they were written", () => {
    let tl = emptyTimeline();
    for (const c of ["a", "b", "c"]) tl = addOutgoing(tl, out(c));
    tl = applyAck(tl, "b", msg(undefined, { id: "mb", sender_id: ME, client_msg_id: "b" }));
    expect(keys(tl)).toEqual(["mb", "pending:a", "pending:c"]);
  });
});

describe("cursors and gaps", () => {
  it("gives the newest placed id for resume and the oldest for older pages", () => {
    const tl = mergeMessages(emptyTimeline(), [msg(4), msg(6), msg(5)]);
    expect(lastPlacedId(tl)).toBe("m6");
    expect(oldestPlaced(tl)?.id).toBe("m4");
    expect(hasOlder(tl)).toBe(true);
    expect(hasOlder(mergeMessages(emptyTimeline(), [msg(1)]))).toBe(false);
    expect(lastPlacedId(emptyTimeline())).toBeUndefined();
  });

  it("ignores unplaced (acked) messages as a resume point", () => {
    let tl = mergeMessages(emptyTimeline(), [msg(1)]);
    tl = applyAck(addOutgoing(tl, out("c")), "c", msg(undefined, { id: "mc", sender_id: ME, client_msg_id: "c" }));
    expect(lastPlacedId(tl)).toBe("m1");
  });

  it("finds the first hole in seq", () => {
    expect(findGap(mergeMessages(emptyTimeline(), [msg(1), msg(2), msg(3)]))).toBeUndefined();
    expect(findGap(mergeMessages(emptyTimeline(), [msg(1), msg(2), msg(5), msg(9)]))).toEqual({
      afterId: "m2",
      missing: 2,
    });
  });
});

describe("resumePoints", () => {
  it("names the newest placed message of each conversation that has one", () => {
    const a = mergeMessages(emptyTimeline(), [msg(1), msg(3), msg(2)]);
    const b = addOutgoing(emptyTimeline(), out("only-pending"));
    const c = mergeMessages(emptyTimeline(), [msg(7, { id: "x7", channel_id: "c3" })]);
    expect(resumePoints({ c1: a, c2: b, c3: c })).toEqual({ c1: "m3", c3: "x7" });
    expect(resumePoints({})).toEqual({});
  });
});
