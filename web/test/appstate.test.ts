import { describe, expect, it } from "vitest";
import { appStateFrame, appStateOf, appStateToSend, INITIAL_APP_STATE } from "../src/lib/appstate";

describe("appStateOf", () => {
  it("is background only while the page is hidden", () => {
    expect(appStateOf({ visibilityState: "hidden", hidden: true })).toBe("background");
    expect(appStateOf({ visibilityState: "visible", hidden: false })).toBe("foreground");
    // Prerendering and the like are not "hidden".
    expect(appStateOf({ visibilityState: "prerender" })).toBe("foreground");
  });

  it("falls back to `hidden` without visibilityState, and to foreground without a document", () => {
    expect(appStateOf({ hidden: true })).toBe("background");
    expect(appStateOf({ hidden: false })).toBe("foreground");
    expect(appStateOf({})).toBe("foreground");
    expect(appStateOf(undefined)).toBe("foreground");
  });
});

describe("appStateToSend", () => {
  it("on a fresh socket (nothing sent yet): only a hidden tab has something to say", () => {
    expect(INITIAL_APP_STATE).toBe("foreground");
    expect(appStateToSend("foreground", undefined)).toBeNull();
    expect(appStateToSend("background", undefined)).toEqual({ type: "app_state", state: "background" });
  });

  it("says each change, and never the state last sent again", () => {
    expect(appStateToSend("background", "foreground")).toEqual({ type: "app_state", state: "background" });
    expect(appStateToSend("background", "background")).toBeNull();
    expect(appStateToSend("foreground", "background")).toEqual({ type: "app_state", state: "foreground" });
    expect(appStateToSend("foreground", "foreground")).toBeNull();
  });

  it("follows a hide/show sequence on one socket with no duplicates", () => {
    let last: "foreground" | "background" | undefined;
    const sent: string[] = [];
    for (const now of ["foreground", "background", "background", "foreground", "foreground", "background"] as const) {
      const f = appStateToSend(now, last);
      if (f) {
        sent.push(f.state);
        last = f.state;
      }
    }
    expect(sent).toEqual(["background", "foreground", "background"]);
  });

  it("builds the frame", () => {
    expect(appStateFrame("foreground")).toEqual({ type: "app_state", state: "foreground" });
  });
});
