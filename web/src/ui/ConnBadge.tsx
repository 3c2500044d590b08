import type { ChatApp } from "../app/client";
import type { ConnInfo } from "../net/socket";
import { useTicker } from "./hooks";

const LABEL: Record<string, string> = {
  connected: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  stopped: "Offline",
};

/** Shown state: connected / reconnecting / offline (connecting counts as reconnecting's twin). */
export function shownStatus(conn: ConnInfo, online: boolean): "connected" | "connecting" | "reconnecting" | "offline" {
  if (!online || conn.status === "offline" || conn.status === "stopped") return "offline";
  return conn.status;
}

export function ConnBadge({ app, conn, online }: { app: ChatApp; conn: ConnInfo; online: boolean }) {
  const status = shownStatus(conn, online);
  useTicker(status === "reconnecting" && conn.retryAt !== undefined);
  const secs = conn.retryAt ? Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000)) : 0;
  return (
    <div class={`conn conn--${status}`} data-status={status}>
      <span class="conn-dot" aria-hidden="true" />
      {/* Only the state is live; the countdown would be read every second. */}
      <span role="status" class="conn-label">
        {LABEL[status]}
      </span>
      {status === "reconnecting" && secs > 0 && (
        <>
          <span class="conn-retry" aria-hidden="true">
            in {secs} s
          </span>
          <button type="button" class="link small" onClick={() => app.reconnectNow()}>
            Try now
          </button>
        </>
      )}
    </div>
  );
}
