import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, closeAction, DEFAULT_BACKOFF, soonDelay } from "../src/lib/backoff";

describe("backoffDelay", () => {
  const opts = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

  it("grows exponentially up to the cap", () => {
    const top = (n: number) => backoffDelay(n, opts, () => 1);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map(top)).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
  });

  it("keeps the jitter inside [delay * (1 - jitter), delay]", () => {
    expect(backoffDelay(3, opts, () => 0)).toBe(2000);
    expect(backoffDelay(3, opts, () => 0.5)).toBe(3000);
    expect(backoffDelay(3, opts, () => 1)).toBe(4000);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(10, opts);
      expect(d).toBeGreaterThanOrEqual(15_000);
      expect(d).toBeLessThanOrEqual(30_000);
    }
  });

  it("spreads clients: different random draws give different delays", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(backoffDelay(4, opts));
    expect(seen.size).toBeGreaterThan(10);
  });

  it("supports full jitter and no jitter, and clamps bad input", () => {
    expect(backoffDelay(2, { ...opts, jitter: 1 }, () => 0)).toBe(0);
    expect(backoffDelay(2, { ...opts, jitter: 0 }, () => 0.3)).toBe(2000);
    expect(backoffDelay(-3, opts, () => 1)).toBe(500);
    expect(backoffDelay(2, opts, () => 7)).toBe(2000);
    expect(backoffDelay(1e6, opts, () => 1)).toBe(30_000);
  });
});

describe("Backoff", () => {
  it("counts failures and starts over after a success", () => {
    const b = new Backoff(DEFAULT_BACKOFF, () => 1);
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(500);
  });
});

describe("closeAction", () => {
  it("maps the gateway's close codes", () => {
    expect(closeAction(4401)).toBe("refresh_then_reconnect");
    expect(closeAction(4408)).toBe("reconnect_soon");
    expect(closeAction(1001)).toBe("reconnect_soon");
    expect(closeAction(1006)).toBe("reconnect_backoff");
    expect(closeAction(4000)).toBe("reconnect_backoff");
    expect(closeAction(1011)).toBe("reconnect_backoff");
  });

  it("reconnects 'soon' within a second, never at the very same instant", () => {
    expect(soonDelay(() => 0)).toBe(100);
    expect(soonDelay(() => 1)).toBe(1000);
  });
});
