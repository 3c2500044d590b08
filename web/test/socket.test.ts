import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatSocket, type ConnInfo, type RefreshOutcome } from "../src/net/socket";
import type { ServerFrame } from "../src/lib/types";
import { ApiError } from "../src/lib/errors";

class FakeWs {
  static all: FakeWs[] = [];
  readyState = 0;
  sent: unknown[] = [];
  closedWith: number | undefined;
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onclose: ((e: CloseEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  constructor(readonly url: string) {
    FakeWs.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // Test helpers: the server side.
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  frame(f: unknown) {
    this.onmessage?.({ data: typeof f === "string" ? f : JSON.stringify(f) } as MessageEvent);
  }
  ready() {
    this.open();
    this.frame({ type: "ready", user_id: "u1", connection_id: "k1" });
  }
  serverClose(code: number) {
    this.readyState = 3;
    this.onclose?.({ code } as CloseEvent);
  }
}

const last = () => FakeWs.all[FakeWs.all.length - 1];

function setup(
  opts: {
    refresh?: () => Promise<RefreshOutcome>;
    online?: () => boolean;
    url?: (token: string) => string | Promise<string>;
  } = {},
) {
  let token = 1;
  const frames: ServerFrame[] = [];
  const statuses: ConnInfo["status"][] = [];
  const onReady = vi.fn();
  const onAuthLost = vi.fn();
  const refreshToken = vi.fn(
    opts.refresh ??
      (async () => {
        token++;
        return "ok" as const;
      }),
  );
  const sock = new ChatSocket({
    url: opts.url ?? ((t) => `ws://x/ws?token=${t}`),
    getToken: async () => `t${token}`,
    refreshToken,
    onFrame: (f) => frames.push(f),
    onReady,
    onStatus: (i) => statuses.push(i.status),
    onAuthLost,
    isOnline: opts.online ?? (() => true),
    createSocket: (url) => new FakeWs(url) as unknown as WebSocket,
    random: () => 1,
  });
  return { sock, frames, statuses, onReady, onAuthLost, refreshToken };
}

describe("ChatSocket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWs.all = [];
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("connects with the token and reports connected on ready", async () => {
    const { sock, statuses, onReady } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(last().url).toBe("ws://x/ws?token=t1");
    expect(statuses).toEqual(["connecting"]);
    last().ready();
    expect(statuses.at(-1)).toBe("connected");
    expect(onReady).toHaveBeenCalledTimes(1);
    expect(sock.send({ type: "ping" })).toBe(true);
  });

  it("passes known frames on and ignores garbage and unknown types silently", async () => {
    const { sock, frames } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().ready();
    last().frame("not json");
    last().frame({ no: "type" });
    last().frame({ type: "pong" });
    last().frame({ type: "typing_indicator", who: "bob" });
    last().frame({ type: "message", message: { id: "m1" } });
    expect(frames.map((f) => f.type)).toEqual(["typing_indicator", "message"]);
  });

  it("reconnects with growing delays after drops", async () => {
    const { sock, statuses } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().serverClose(1006); // never opened
    expect(statuses.at(-1)).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeWs.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWs.all).toHaveLength(2);
    last().serverClose(1006); // second failure before open: a token refresh is tried too
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeWs.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWs.all).toHaveLength(3);
    last().ready(); // success...
    expect(statuses.at(-1)).toBe("connected");
    sock.stop();
  });

  it("refreshes the token after a 4401 and reconnects at once with the new one", async () => {
    const { sock, refreshToken } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().ready();
    last().serverClose(4401);
    await vi.advanceTimersByTimeAsync(0);
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(FakeWs.all).toHaveLength(2);
    expect(last().url).toBe("ws://x/ws?token=t2");
  });

  it("opens the socket at the URL it asked for (a ticket) and refreshes when the ticket is refused", async () => {
    let refuse = true;
    const { sock, refreshToken } = setup({
      url: async (t) => {
        if (refuse) {
          refuse = false;
          throw new ApiError(401, "token_revoked", "session ended");
        }
        return `ws://x/ws?ticket=for-${t}`;
      },
    });
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(FakeWs.all).toHaveLength(1);
    expect(last().url).toBe("ws://x/ws?ticket=for-t2");
  });

  it("logs out when the ticket is refused and so is the refresh", async () => {
    const { sock, onAuthLost } = setup({
      refresh: async () => "refused",
      url: async () => {
        throw new ApiError(401, "token_revoked", "session ended");
      },
    });
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(onAuthLost).toHaveBeenCalledTimes(1);
    expect(FakeWs.all).toHaveLength(0);
  });

  it("logs out when the refresh after a 4401 is refused", async () => {
    const { sock, onAuthLost, statuses } = setup({ refresh: async () => "refused" });
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().ready();
    last().serverClose(4401);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(onAuthLost).toHaveBeenCalledTimes(1);
    expect(FakeWs.all).toHaveLength(1);
    expect(statuses.at(-1)).toBe("stopped");
  });

  it("comes back within a second after 1001 (going away) and 4408 (slow consumer)", async () => {
    const { sock, onReady } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().ready();
    last().serverClose(1001);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(FakeWs.all).toHaveLength(2);
    last().ready();
    last().serverClose(4408);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(FakeWs.all).toHaveLength(3);
    last().ready();
    expect(onReady).toHaveBeenCalledTimes(3);
  });

  it("stops while offline and reconnects as soon as the network is back", async () => {
    let online = true;
    const { sock, statuses } = setup({ online: () => online });
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().ready();
    online = false;
    sock.wentOffline();
    expect(statuses.at(-1)).toBe("offline");
    expect(last().closedWith).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWs.all).toHaveLength(1);
    expect(sock.send({ type: "ping" })).toBe(false);
    online = true;
    sock.wentOnline();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWs.all).toHaveLength(2);
    last().ready();
    expect(statuses.at(-1)).toBe("connected");
  });

  it("pings, and drops a connection that went silent", async () => {
    const { sock } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    const ws = last();
    ws.ready();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(ws.sent).toContainEqual({ type: "ping" });
    await vi.advanceTimersByTimeAsync(40_000); // nothing heard for 60 s
    expect(ws.closedWith).toBeUndefined(); // closed without a code by us
    expect(ws.readyState).toBe(3);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(FakeWs.all.length).toBeGreaterThan(1);
  });

  it("gives up an attempt that never says ready", async () => {
    const { sock } = setup();
    sock.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open(); // upgraded, but no ready frame
    await vi.advanceTimersByTimeAsync(10_000);
    expect(last().readyState).toBe(3);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(FakeWs.all).toHaveLength(2);
  });
});
