// Access token lifetime: when to refresh it, and a manager that keeps one session, refreshes it
// ahead of expiry (once at a time, across tabs too), and stores it in localStorage.

import type { Session, User } from "./types";

/** The session as we keep it: absolute expiry instead of "seconds from now". */
export interface StoredSession {
  user: User;
  access_token: string;
  refresh_token: string;
  /** When the access token expires (ms since the epoch, local clock). */
  expires_at: number;
  /** How long the access token was valid when issued (ms). */
  lifetime_ms: number;
}

export function toStored(s: Session, now: number): StoredSession {
  const lifetime = Math.max(0, Number(s.expires_in) || 0) * 1000;
  return {
    user: s.user,
    access_token: s.access_token,
    refresh_token: s.refresh_token,
    expires_at: now + lifetime,
    lifetime_ms: lifetime,
  };
}

/**
 * How long before expiry to refresh: a fifth of the lifetime, at least 5 s and at most 60 s,
 * but never more than half the lifetime (a very short-lived token is still used for a while).
 */
export function refreshMargin(lifetimeMs: number): number {
  const margin = Math.min(60_000, Math.max(5_000, lifetimeMs * 0.2));
  return Math.min(margin, lifetimeMs / 2);
}

/** Milliseconds from `now` until the token should be refreshed (0: now). */
export function refreshDelay(s: Pick<StoredSession, "expires_at" | "lifetime_ms">, now: number): number {
  return Math.max(0, s.expires_at - refreshMargin(s.lifetime_ms) - now);
}

/** Whether the token is due for refresh (or already expired). */
export function needsRefresh(s: Pick<StoredSession, "expires_at" | "lifetime_ms">, now: number): boolean {
  return refreshDelay(s, now) <= 0;
}

/** Delay before trying a refresh again after it failed for a reason other than "refused". */
export function refreshRetryDelay(failures: number): number {
  return Math.min(30_000, 1_000 * Math.pow(2, Math.max(0, failures)));
}

/** The refresh call failed because the server refused the refresh token (401): log out. */
export class RefreshRefused extends Error {
  constructor(message = "refresh token refused") {
    super(message);
    this.name = "RefreshRefused";
  }
}

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface TokenManagerDeps {
  storage: KeyValueStore;
  /** POST /auth/refresh. Must throw `RefreshRefused` when the server answers 401. */
  refresh: (refreshToken: string) => Promise<Session>;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  /** Runs `fn` holding a lock shared by the tabs of this origin (Web Locks), if there is one. */
  withLock?: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  storageKey?: string;
}

export type SessionListener = (s: StoredSession | null) => void;

export class TokenManager {
  private current: StoredSession | null;
  private inflight: Promise<StoredSession> | null = null;
  private timer: unknown = null;
  private failures = 0;
  private listeners = new Set<SessionListener>();
  private readonly key: string;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly deps: TokenManagerDeps) {
    this.key = deps.storageKey ?? "chat.session";
    this.now = deps.now ?? (() => Date.now());
    this.setTimer = deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = deps.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.current = this.load();
    this.schedule();
  }

  get session(): StoredSession | null {
    return this.current;
  }

  subscribe(fn: SessionListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Keeps a session from login, register or refresh. */
  setSession(s: Session): StoredSession {
    const stored = toStored(s, this.now());
    this.adopt(stored, true);
    return stored;
  }

  /** Forgets the session (logout, or the refresh token was refused). */
  clear(): void {
    this.cancelTimer();
    this.inflight = null;
    this.deps.storage.removeItem(this.key);
    if (this.current !== null) {
      this.current = null;
      this.emit();
    }
  }

  /** Another tab changed the stored session: take it over. */
  reloadFromStorage(): void {
    const s = this.load();
    if (s === null) {
      if (this.current !== null) {
        this.cancelTimer();
        this.current = null;
        this.emit();
      }
      return;
    }
    if (!this.current || s.refresh_token !== this.current.refresh_token || s.access_token !== this.current.access_token) {
      this.adopt(s, false);
    }
  }

  /** A usable access token, refreshed first if it is due. Null when logged out. */
  async accessToken(): Promise<string | null> {
    const s = this.current;
    if (!s) return null;
    if (needsRefresh(s, this.now())) {
      try {
        return (await this.refresh()).access_token;
      } catch (e) {
        if (e instanceof RefreshRefused) return null;
        // Network trouble: the old token may still work for a moment; the caller will see.
        return this.current?.access_token ?? null;
      }
    }
    return s.access_token;
  }

  /**
   * Refreshes the access token. Concurrent calls share one request: with refresh token
   * rotation, a second request with the same refresh token would be refused.
   */
  refresh(): Promise<StoredSession> {
    if (!this.current) return Promise.reject(new RefreshRefused("not logged in"));
    if (!this.inflight) {
      const used = this.current.refresh_token;
      const run = () => this.doRefresh(used);
      const p = (this.deps.withLock ? this.deps.withLock("chat.session.refresh", run) : run()).finally(() => {
        if (this.inflight === p) this.inflight = null;
      });
      this.inflight = p;
    }
    return this.inflight;
  }

  private async doRefresh(used: string): Promise<StoredSession> {
    // Another tab may have refreshed while we waited for the lock: use its result.
    const fresh = this.load();
    if (fresh && fresh.refresh_token !== used && !needsRefresh(fresh, this.now())) {
      this.adopt(fresh, false);
      return fresh;
    }
    try {
      const s = await this.deps.refresh(used);
      this.failures = 0;
      return this.setSession(s);
    } catch (e) {
      if (e instanceof RefreshRefused) {
        // Rotated by another tab in the meantime?
        const other = this.load();
        if (other && other.refresh_token !== used) {
          this.adopt(other, false);
          return other;
        }
        this.clear();
        throw e;
      }
      // Offline or server trouble: keep the session and try again later.
      this.failures++;
      this.schedule(refreshRetryDelay(this.failures));
      throw e;
    }
  }

  private adopt(s: StoredSession, persist: boolean): void {
    this.current = s;
    if (persist) this.deps.storage.setItem(this.key, JSON.stringify(s));
    this.schedule();
    this.emit();
  }

  private schedule(delay?: number): void {
    this.cancelTimer();
    const s = this.current;
    if (!s) return;
    const ms = delay ?? refreshDelay(s, this.now());
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.refresh().catch(() => {
        /* refused: already logged out; otherwise a retry is scheduled */
      });
    }, ms);
  }

  private cancelTimer(): void {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
  }

  private load(): StoredSession | null {
    try {
      const raw = this.deps.storage.getItem(this.key);
      if (!raw) return null;
      const s = JSON.parse(raw) as StoredSession;
      if (!s || typeof s.access_token !== "string" || typeof s.refresh_token !== "string" || !s.user) return null;
      return s;
    } catch {
      return null;
    }
  }

  private emit(): void {
    for (const l of this.listeners) l(this.current);
  }
}
