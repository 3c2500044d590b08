import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  needsRefresh,
  RefreshRefused,
  refreshDelay,
  refreshMargin,
  refreshRetryDelay,
  toStored,
  TokenManager,
  type KeyValueStore,
} from "../src/lib/tokens";
import type { Session } from "../src/lib/types";

const user = { id: "u1", username: "alice", display_name: "Alice" };
const session = (n: number, expires_in = 900): Session => ({
  user,
  access_token: `access-${n}`,
  refresh_token: `refresh-${n}`,
  expires_in,
});

function memory(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
}

describe("refresh scheduling", () => {
  it("refreshes a fifth of the lifetime early, between 5 s and 60 s", () => {
    expect(refreshMargin(900_000)).toBe(60_000); // 15 min token: 1 min early
    expect(refreshMargin(120_000)).toBe(24_000); // 2 min token: 24 s early
    expect(refreshMargin(20_000)).toBe(5_000); // short token: at least 5 s
    expect(refreshMargin(6_000)).toBe(3_000); // tiny token: at most half its life
  });

  it("computes the delay from an absolute expiry", () => {
    const now = 1_000_000;
    const s = toStored(session(1, 900), now);
    expect(s.expires_at).toBe(now + 900_000);
    expect(refreshDelay(s, now)).toBe(840_000);
    expect(refreshDelay(s, now + 840_000)).toBe(0);
    expect(needsRefresh(s, now + 839_999)).toBe(false);
    expect(needsRefresh(s, now + 840_000)).toBe(true);
    expect(refreshDelay(s, now + 10_000_000)).toBe(0); // long expired: now
  });

  it("backs off between failed refresh attempts", () => {
    expect([0, 1, 2, 3, 10].map(refreshRetryDelay)).toEqual([1000, 2000, 4000, 8000, 30000]);
  });
});

describe("TokenManager", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("stores the session and refreshes it before it expires, rotating the refresh token", async () => {
    const storage = memory();
    const refresh = vi.fn(async (rt: string) => session(Number(rt.split("-")[1]) + 1));
    const tm = new TokenManager({ storage, refresh });
    tm.setSession(session(1));
    expect(JSON.parse(storage.data.get("chat.session")!).refresh_token).toBe("refresh-1");

    await vi.advanceTimersByTimeAsync(839_000);
    expect(refresh).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(refresh).toHaveBeenCalledWith("refresh-1");
    expect(tm.session?.access_token).toBe("access-2");
    expect(JSON.parse(storage.data.get("chat.session")!).refresh_token).toBe("refresh-2");

    // And again, with the rotated token.
    await vi.advanceTimersByTimeAsync(840_000);
    expect(refresh).toHaveBeenLastCalledWith("refresh-2");
    expect(tm.session?.access_token).toBe("access-3");
  });

  it("shares one refresh between concurrent callers", async () => {
    let resolve!: (s: Session) => void;
    const refresh = vi.fn(() => new Promise<Session>((r) => (resolve = r)));
    const tm = new TokenManager({ storage: memory(), refresh });
    tm.setSession(session(1));
    const a = tm.refresh();
    const b = tm.refresh();
    resolve(session(2));
    expect((await a).access_token).toBe("access-2");
    expect((await b).access_token).toBe("access-2");
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it("refreshes first when asked for a token that is due", async () => {
    const refresh = vi.fn(async () => session(2));
    const tm = new TokenManager({ storage: memory(), refresh });
    tm.setSession(session(1, 900));
    vi.setSystemTime(1_000_000 + 850_000); // timer didn't fire (tab asleep)
    expect(await tm.accessToken()).toBe("access-2");
    expect(refresh).toHaveBeenCalledTimes(1);
  });

  it("returns the current token without a request while it is fresh", async () => {
    const refresh = vi.fn(async () => session(2));
    const tm = new TokenManager({ storage: memory(), refresh });
    tm.setSession(session(1));
    expect(await tm.accessToken()).toBe("access-1");
    expect(refresh).not.toHaveBeenCalled();
  });

  it("logs out when the refresh token is refused", async () => {
    const storage = memory();
    const tm = new TokenManager({
      storage,
      refresh: async () => {
        throw new RefreshRefused();
      },
    });
    const seen: (string | null)[] = [];
    tm.subscribe((s) => seen.push(s ? s.access_token : null));
    tm.setSession(session(1));
    await expect(tm.refresh()).rejects.toBeInstanceOf(RefreshRefused);
    expect(tm.session).toBeNull();
    expect(storage.data.has("chat.session")).toBe(false);
    expect(seen).toEqual(["access-1", null]);
    expect(await tm.accessToken()).toBeNull();
  });

  it("keeps the session on a network failure and tries again later", async () => {
    let fail = true;
    const refresh = vi.fn(async () => {
      if (fail) throw new TypeError("Failed to fetch");
      return session(2);
    });
    const tm = new TokenManager({ storage: memory(), refresh });
    tm.setSession(session(1));
    await expect(tm.refresh()).rejects.toBeInstanceOf(TypeError);
    expect(tm.session?.access_token).toBe("access-1");
    fail = false;
    await vi.advanceTimersByTimeAsync(1_000); // refreshRetryDelay(1) = 2 s
    expect(tm.session?.access_token).toBe("access-1");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(tm.session?.access_token).toBe("access-2");
  });

  it("adopts a session another tab rotated instead of reusing the old refresh token", async () => {
    const storage = memory();
    const refresh = vi.fn(async () => {
      throw new RefreshRefused(); // our refresh-1 was already used by the other tab
    });
    const tm = new TokenManager({ storage, refresh });
    tm.setSession(session(1));
    // The other tab refreshed a moment ago; its write races with our request.
    const otherTab = new TokenManager({ storage, refresh: async () => session(2) });
    await otherTab.refresh();
    // Our copy is still the old one until the storage event arrives.
    expect(tm.session?.refresh_token).toBe("refresh-1");
    const s = await tm.refresh();
    expect(s.refresh_token).toBe("refresh-2");
    expect(refresh).not.toHaveBeenCalled(); // it saw the fresh stored session first
    expect(tm.session?.access_token).toBe("access-2");
  });

  it("picks up a session from storage (another tab logged in or out)", () => {
    const storage = memory();
    const tm = new TokenManager({ storage, refresh: async () => session(9) });
    expect(tm.session).toBeNull();
    storage.setItem("chat.session", JSON.stringify(toStored(session(3), Date.now())));
    tm.reloadFromStorage();
    expect(tm.session?.access_token).toBe("access-3");
    storage.removeItem("chat.session");
    tm.reloadFromStorage();
    expect(tm.session).toBeNull();
  });

  it("ignores a corrupt stored session", () => {
    const storage = memory();
    storage.setItem("chat.session", "{not json");
    expect(new TokenManager({ storage, refresh: async () => session(1) }).session).toBeNull();
  });

  it("refreshes at once a kept session that expired while the page was closed", async () => {
    const storage = memory();
    storage.setItem("chat.session", JSON.stringify(toStored(session(1), Date.now() - 2_000_000)));
    const refresh = vi.fn(async () => session(2));
    const tm = new TokenManager({ storage, refresh });
    await vi.advanceTimersByTimeAsync(0);
    expect(refresh).toHaveBeenCalledWith("refresh-1");
    expect(tm.session?.access_token).toBe("access-2");
  });
});
