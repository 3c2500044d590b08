// The `app_state` frame: tells the server whether this tab is in front of the user, so push
// notifications to their phones skip them while they are looking (docs/design/push-and-attachments.md).
// A connection starts in the foreground; a hidden tab says `background`, and `foreground` once it
// is visible again. Each socket is told only changes: never the state it already has.

import type { AppVisibility, ClientFrame } from "./types";

export type AppStateFrame = Extract<ClientFrame, { type: "app_state" }>;

/** What the server takes a fresh connection to be in, before it is told anything. */
export const INITIAL_APP_STATE: AppVisibility = "foreground";

/** The parts of `document` that tell whether the page is on screen. */
export interface PageVisibility {
  visibilityState?: string;
  hidden?: boolean;
}

/** The page's state: `background` while it is hidden, else `foreground` (also without a document). */
export function appStateOf(page: PageVisibility | undefined): AppVisibility {
  if (!page) return "foreground";
  const hidden = page.visibilityState ? page.visibilityState === "hidden" : page.hidden === true;
  return hidden ? "background" : "foreground";
}

export function appStateFrame(state: AppVisibility): AppStateFrame {
  return { type: "app_state", state };
}

/**
 * The frame to send on a socket, given the page's state now and the state last sent on that
 * socket (undefined: nothing sent yet, so it is in the foreground); null when there is nothing to say.
 */
export function appStateToSend(now: AppVisibility, lastSent: AppVisibility | undefined): AppStateFrame | null {
  return now === (lastSent ?? INITIAL_APP_STATE) ? null : appStateFrame(now);
}
