// The opt-in for desktop notifications, at the bottom of the conversation list. The browser's
// permission prompt only ever comes from a click on it (app/notifier.ts says why).

import { useState } from "preact/hooks";
import type { ChatApp } from "../app/client";
import type { NotifyStatus } from "../lib/notify";

export function NotifyToggle({ app, status }: { app: ChatApp; status: NotifyStatus }) {
  const [asking, setAsking] = useState(false);
  if (status === "unsupported") return null;
  const on = status === "on";
  return (
    <div class="notify-toggle">
      {status === "blocked" ? (
        <p class="muted small" data-notifications="blocked">
          Desktop notifications are blocked for this site. Allow them in the browser's site settings to get them.
        </p>
      ) : (
        <>
          <button
            type="button"
            class="small notify-button"
            aria-pressed={on}
            aria-describedby="notify-hint"
            data-notifications={status}
            disabled={asking}
            onClick={async () => {
              if (on) return app.disableNotifications();
              setAsking(true);
              try {
                await app.enableNotifications();
              } finally {
                setAsking(false);
              }
            }}
          >
            <span class={`switch${on ? " is-on" : ""}`} aria-hidden="true" />
            Desktop notifications
            <span class="notify-state" aria-hidden="true">
              {on ? "On" : "Off"}
            </span>
          </button>
          <p id="notify-hint" class="muted small">
            New messages in other conversations, or while this tab is in the background.
          </p>
        </>
      )}
    </div>
  );
}
