// Sample data shared by the unit tests.
import type { Message } from "../src/lib/types";

export const CH = "c1";
export const ME = "u-me";
export const BOB = "u-bob";

/** A stored message of Bob's at position `seq` in channel CH; `over` replaces any field. */
export function msg(seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    channel_id: CH,
    sender_id: BOB,
    body: `body ${seq}`,
    client_msg_id: `cm${seq}`,
    created_at: "2025-01-15T09:00:00Z",
    seq,
    ...over,
  };
}
