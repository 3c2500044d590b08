// The WebSocket to /ws: connects with a single-use ticket bought with the access token (the
// token itself never goes into a URL), keeps the connection alive with pings, and reconnects
// after any drop (backoff with jitter; refresh the token first after a 4401 or a refused ticket).
// What to do once connected (resume, resend) is the owner's business, told through `onReady`.

import { Backoff, closeAction, soonDelay } from "../lib/backoff";
import { ApiError } from "../lib/errors";
import type { ClientFrame, ServerFrame } from "../lib/types";

export type ConnStatus = "connecting" | "connected" | "reconnecting" | "offline" | "stopped";

export interface ConnInfo {
  status: ConnStatus;
  /** When the next attempt is due (ms since the epoch), while reconnecting. */
  retryAt?: number;
}

export type RefreshOutcome = "ok" | "refused" | "error";

export interface SocketDeps {
  /**
   * URL of the socket for a token, e.g. wss://host/ws?ticket=... (may ask the API for the
   * ticket). A rejection with an ApiError of status 401 means the token was refused.
   */
  url: (token: string) => string | Promise<string>;
  /** A usable access token (refreshed if due), or null when logged out. */
  getToken: () => Promise<string | null>;
  /** Forces a token refresh (after a 4401). */
  refreshToken: () => Promise<RefreshOutcome>;
  onFrame: (frame: ServerFrame) => void;
  /** The server said `ready`: send `resume` and anything that waits. */
  onReady: (frame: Extract<ServerFrame, { type: "ready" }>) => void;
  onStatus: (info: ConnInfo) => void;
  /** The token was refused for good: the owner logs out. */
  onAuthLost: () => void;
  isOnline?: () => boolean;
  createSocket?: (url: string) => WebSocket;
  random?: () => number;
  pingIntervalMs?: number;
  /** Nothing heard for this long (not even a pong): the connection is dead. */
  silenceTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export class ChatSocket {
  private ws: WebSocket | null = null;
  private running = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastHeard = 0;
  private readyAt = 0;
  private unauthorizedInRow = 0;
  private failuresBeforeOpen = 0;
  private everConnected = false;
  /** Bumped by every new attempt and by stop/offline, so a stale attempt gives up. */
  private generation = 0;
  private readonly backoff: Backoff;
  private info: ConnInfo = { status: "stopped" };

  constructor(private readonly deps: SocketDeps) {
    this.backoff = new Backoff(undefined, deps.random ?? Math.random);
  }

  get status(): ConnInfo {
    return this.info;
  }

  get isConnected(): boolean {
    return this.info.status === "connected" && this.ws?.readyState === 1;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.everConnected = false;
    this.backoff.reset();
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.clearTimers();
    this.drop(1000, "bye");
    this.setStatus({ status: "stopped" });
  }

  /** The browser lost the network: stop trying until it is back. */
  wentOffline(): void {
    if (!this.running) return;
    this.generation++;
    this.clearTimers();
    this.drop(1000, "offline");
    this.setStatus({ status: "offline" });
  }

  /** The network is back: try at once. */
  wentOnline(): void {
    if (!this.running) return;
    if (this.ws || this.info.status === "connecting") return; // already trying
    this.clearTimers();
    this.backoff.reset();
    void this.connect();
  }

  /** Sends a frame if connected; false if it could not be sent now. */
  send(frame: ClientFrame): boolean {
    if (!this.ws || this.ws.readyState !== 1 || this.info.status !== "connected") return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  private online(): boolean {
    return this.deps.isOnline ? this.deps.isOnline() : true;
  }

  private setStatus(info: ConnInfo): void {
    this.info = info;
    this.deps.onStatus(info);
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    if (!this.running) return;
    if (!this.online()) {
      this.setStatus({ status: "offline" });
      return;
    }
    const gen = ++this.generation;
    this.setStatus({ status: this.everConnected ? "reconnecting" : "connecting" });
    const token = await this.deps.getToken();
    if (!this.running || gen !== this.generation) return;
    if (!this.online()) {
      this.setStatus({ status: "offline" });
      return;
    }
    if (!token) {
      this.running = false;
      this.setStatus({ status: "stopped" });
      this.deps.onAuthLost();
      return;
    }
    let url: string;
    try {
      url = await this.deps.url(token);
    } catch (e) {
      if (!this.running || gen !== this.generation) return;
      if (e instanceof ApiError && e.status === 401) {
        // The token was refused (expired, revoked): as after a 4401.
        this.refreshThenReconnect();
      } else {
        this.scheduleRetry(this.backoff.next());
      }
      return;
    }
    if (!this.running || gen !== this.generation) return;
    let ws: WebSocket;
    try {
      ws = this.deps.createSocket ? this.deps.createSocket(url) : new WebSocket(url);
    } catch {
      this.scheduleRetry(this.backoff.next());
      return;
    }
    this.ws = ws;
    let opened = false;
    this.connectTimer = setTimeout(() => {
      // No `ready` in time: give up on this attempt.
      if (this.ws === ws) this.handleClose(ws, 4000, false);
    }, this.deps.connectTimeoutMs ?? 10_000);

    ws.onopen = () => {
      opened = true;
      this.lastHeard = Date.now();
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(typeof ev.data === "string" ? ev.data : "") as ServerFrame;
      } catch {
        return; // not JSON: ignore
      }
      if (!frame || typeof frame !== "object" || typeof (frame as { type?: unknown }).type !== "string") return;
      if (frame.type === "ready") {
        if (this.connectTimer) clearTimeout(this.connectTimer);
        this.connectTimer = null;
        this.readyAt = Date.now();
        this.everConnected = true;
        this.unauthorizedInRow = 0;
        this.failuresBeforeOpen = 0;
        this.startPings(ws);
        this.setStatus({ status: "connected" });
        this.deps.onReady(frame);
        return;
      }
      if (frame.type === "pong") return;
      this.deps.onFrame(frame);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = (ev: CloseEvent) => {
      this.handleClose(ws, ev.code, opened);
    };
  }

  private startPings(ws: WebSocket): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    const every = this.deps.pingIntervalMs ?? 20_000;
    const silence = this.deps.silenceTimeoutMs ?? 45_000;
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastHeard > silence) {
        // Dead connection that never told us: drop it and reconnect.
        this.handleClose(ws, 4000, true);
        return;
      }
      try {
        ws.send(JSON.stringify({ type: "ping" }));
      } catch {
        /* the close event will follow */
      }
    }, every);
  }

  private handleClose(ws: WebSocket, code: number, opened: boolean): void {
    if (this.ws !== ws) return; // an old socket
    const wasReady = this.info.status === "connected";
    const lasted = wasReady ? Date.now() - this.readyAt : 0;
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch {
      /* already closed */
    }
    this.clearTimers();
    if (!this.running) return;
    if (!this.online()) {
      this.setStatus({ status: "offline" });
      return;
    }
    // A connection that held for a while counts as a success: start the backoff over.
    if (lasted > 10_000) this.backoff.reset();

    const action = closeAction(code);
    if (action === "refresh_then_reconnect") {
      this.refreshThenReconnect();
      return;
    }
    if (!opened && !wasReady) {
      // Refused before the upgrade (maybe an HTTP 401, which a browser can't see) or unreachable.
      this.failuresBeforeOpen++;
      if (this.failuresBeforeOpen === 2 || this.failuresBeforeOpen % 6 === 0) {
        const delay = this.backoff.next();
        this.setStatus({ status: "reconnecting", retryAt: Date.now() + delay });
        void this.deps.refreshToken().then((outcome) => {
          if (!this.running) return;
          if (outcome === "refused") {
            this.running = false;
            this.setStatus({ status: "stopped" });
            this.deps.onAuthLost();
            return;
          }
          this.scheduleRetry(delay);
        });
        return;
      }
    }
    this.scheduleRetry(action === "reconnect_soon" ? soonDelay(this.deps.random) : this.backoff.next());
  }

  /** After a 4401 (token expired, session revoked) or a refused ticket: refresh, then retry. */
  private refreshThenReconnect(): void {
    this.unauthorizedInRow++;
    this.setStatus({ status: "reconnecting" });
    void this.deps.refreshToken().then((outcome) => {
      if (!this.running) return;
      if (outcome === "refused") {
        // Logged out (here or elsewhere) or the session was revoked: stop.
        this.running = false;
        this.setStatus({ status: "stopped" });
        this.deps.onAuthLost();
        return;
      }
      // First 4401: at once. Again and again: something is off, back off.
      this.scheduleRetry(this.unauthorizedInRow <= 1 && outcome === "ok" ? 0 : this.backoff.next());
    });
  }

  private scheduleRetry(delay: number): void {
    if (!this.running) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.setStatus({ status: "reconnecting", retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private drop(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      /* ignore */
    }
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.retryTimer = this.pingTimer = this.connectTimer = null;
  }
}
