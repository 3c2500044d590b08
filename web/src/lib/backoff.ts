// Reconnect delays: exponential backoff with jitter, and what to do on each close code.

import { CloseCode } from "./types";

export interface BackoffOptions {
  /** Delay of the first retry, before jitter. */
  baseMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  /** Growth per attempt. */
  factor: number;
  /** Share of the delay that is random (0: none, 1: "full jitter"). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/**
 * The delay before retry number `attempt` (0 for the first retry): `base * factor^attempt`,
 * capped at `max`, of which a `jitter` share is random, so that many clients dropped at once
 * don't all come back at the same instant.
 */
export function backoffDelay(
  attempt: number,
  opts: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const n = Math.max(0, Math.floor(attempt));
  const exp = Math.min(opts.maxMs, opts.baseMs * Math.pow(opts.factor, n));
  const spread = exp * Math.min(1, Math.max(0, opts.jitter));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(exp - spread + r * spread);
}

/** Counts consecutive failures and hands out the next delay. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly opts: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next try; each call counts one more failure. */
  next(): number {
    return backoffDelay(this.attempt++, this.opts, this.random);
  }

  /** After a success: start again from the shortest delay. */
  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

export type CloseAction =
  /** The access token was refused: refresh it, then reconnect at once. */
  | "refresh_then_reconnect"
  /** The server asked us to come back (shutting down, or we fell behind): reconnect soon and resume. */
  | "reconnect_soon"
  /** Anything else (network drop, server crash): reconnect with backoff and resume. */
  | "reconnect_backoff";

export function closeAction(code: number): CloseAction {
  switch (code) {
    case CloseCode.UNAUTHORIZED:
      return "refresh_then_reconnect";
    case CloseCode.GOING_AWAY:
    case CloseCode.SLOW_CONSUMER:
      return "reconnect_soon";
    default:
      return "reconnect_backoff";
  }
}

/** A short random delay for "reconnect soon", so a gateway's clients don't all return at once. */
export function soonDelay(random: () => number = Math.random, maxMs = 1000): number {
  return Math.round(100 + random() * (maxMs - 100));
}
