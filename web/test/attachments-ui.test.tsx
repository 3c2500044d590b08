// @vitest-environment jsdom
// Attachments on the page: a picture's box is reserved before anything loads and its link is
// asked for only once it scrolls into view; files are chips that download; a message of files
// only has no empty text bubble; the composer's chips have buttons with names.

import { h, render } from "preact";
import { act } from "preact/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ChatApp } from "../src/app/client";
import type { AttachmentLink, MessageAttachment } from "../src/lib/types";
import { advance, newUpload } from "../src/lib/uploads";
import { MessageAttachments, UploadChips } from "../src/ui/Attachments";
import { MessageItem, type ItemProps } from "../src/ui/Conversation";
import { msg } from "./support";

const photo: MessageAttachment = { id: "f1", name: "IMG_0042.jpg", content_type: "image/jpeg", size: 2483921, width: 3024, height: 4032 };
const pdf: MessageAttachment = { id: "f2", name: "minutes.pdf", content_type: "application/pdf", size: 88311 };
const link: AttachmentLink = { url: "http://x/o/f1?sig", thumbnail_url: "http://x/t/f1.jpg?sig", thumbnail: "ready", expires_in: 300 };

/** IntersectionObserver under the test's control: `show()` brings every observed element into view. */
class FakeObserver {
  static all: FakeObserver[] = [];
  targets: Element[] = [];
  constructor(private readonly cb: (entries: Array<{ isIntersecting: boolean; target: Element }>) => void) {
    FakeObserver.all.push(this);
  }
  observe(el: Element) {
    this.targets.push(el);
  }
  disconnect() {
    this.targets = [];
  }
  static show() {
    for (const o of FakeObserver.all) if (o.targets.length) o.cb(o.targets.map((target) => ({ isIntersecting: true, target })));
  }
}

function fakeApp() {
  return {
    attachmentLink: vi.fn(async () => link),
    cachedAttachmentLink: vi.fn(() => link),
    notify: vi.fn(),
    nameOf: () => "Bob",
    canDelete: () => false,
  };
}

const flush = () => act(async () => void (await new Promise((r) => setTimeout(r, 0))));

describe("attachments of a message", () => {
  beforeEach(() => {
    FakeObserver.all = [];
    vi.stubGlobal("IntersectionObserver", FakeObserver);
  });
  afterEach(() => {
    render(null, document.body);
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it("reserves the picture's box at once, and asks for its link only when it comes into view", async () => {
    const app = fakeApp();
    await act(() => render(h(MessageAttachments, { app: app as unknown as ChatApp, channelId: "c1", attachments: [photo] }), document.body));
    expect(FakeObserver.all.some((o) => o.targets.length === 1)).toBe(true); // watching the box
    const box = document.querySelector<HTMLElement>(".attachment-image");
    expect(box?.style.width).toBe("240px"); // 3024×4032 upright, at most 320 high
    expect(box?.style.aspectRatio).toBe("240 / 320");
    expect(document.querySelector("img")).toBeNull();
    expect(app.attachmentLink).not.toHaveBeenCalled();

    await act(() => FakeObserver.show());
    await flush();
    expect(app.attachmentLink).toHaveBeenCalledWith("c1", "f1", false);
    const img = document.querySelector("img");
    expect(img?.getAttribute("src")).toBe(link.thumbnail_url);
    expect(img?.getAttribute("alt")).toBe("IMG_0042.jpg");
    const a = document.querySelector<HTMLAnchorElement>("a.attachment-image");
    expect(a?.getAttribute("href")).toBe(link.url); // the file itself, in a new tab
    expect(a?.target).toBe("_blank");
    expect(a?.rel).toBe("noopener noreferrer");
    expect(a?.getAttribute("aria-label")).toBe("Open IMG_0042.jpg in a new tab");
    expect(a?.style.aspectRatio).toBe("240 / 320"); // the same box
  });

  it("shows other files as chips that download through a fresh link", async () => {
    const app = fakeApp();
    const clicked: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push(`${this.href} ${this.download}`);
    });
    render(h(MessageAttachments, { app: app as unknown as ChatApp, channelId: "c1", attachments: [pdf] }), document.body);
    const chip = document.querySelector<HTMLButtonElement>("button.attachment-file");
    expect(chip?.getAttribute("aria-label")).toBe("Download minutes.pdf, 86 KB");
    expect(chip?.textContent).toBe("minutes.pdf86 KB");
    expect(app.attachmentLink).not.toHaveBeenCalled();
    await act(() => chip?.click());
    await flush();
    expect(app.attachmentLink).toHaveBeenCalledWith("c1", "f2");
    expect(clicked).toEqual([`${link.url} minutes.pdf`]);
  });

  it("a message of files only has no text bubble; a deleted one has no files", () => {
    const app = fakeApp();
    const props = (message: ReturnType<typeof msg>): ItemProps => ({
      app: app as unknown as ChatApp,
      item: { kind: "message", key: `m:${message.id}`, message, confirmed: true },
      channelId: "c1",
      myId: "u-me",
      compact: false,
      connected: true,
      changes: [],
      editing: false,
      pickerOpen: false,
      lookup: () => undefined,
      onReply: () => {},
      onEdit: () => {},
      onPicker: () => {},
      onJump: () => {},
    });
    render(h("ol", null, h(MessageItem, props(msg(3, { body: "", attachments: [photo, pdf] })))), document.body);
    expect(document.querySelector(".msg-body")).toBeNull();
    expect(document.querySelectorAll(".attachments > li")).toHaveLength(2);
    render(h("ol", null, h(MessageItem, props(msg(3, { body: "see these", attachments: [pdf] })))), document.body);
    expect(document.querySelector(".msg-body")?.textContent).toBe("see these");
    expect(document.querySelector(".attachment-file")).not.toBeNull();
    render(h("ol", null, h(MessageItem, props(msg(3, { body: "", deleted: true, attachments: [pdf] })))), document.body);
    expect(document.querySelector(".msg-tombstone")?.textContent).toBe("Message deleted");
    expect(document.querySelector(".attachments")).toBeNull();
  });
});

describe("the composer's file chips", () => {
  afterEach(() => render(null, document.body));

  it("name their buttons after the file: cancel while uploading, retry and remove after an error", () => {
    const uploading = advance(newUpload("k1", "c1", { name: "a.png", size: 1000, type: "image/png" }), {
      type: "target",
      answer: { id: "a1", upload: { method: "PUT", url: "u", headers: {} }, expires_in: 900 },
    });
    const progressed = advance(uploading, { type: "progress", sent: 420 });
    const failed = advance(newUpload("k2", "c1", { name: "b.txt", size: 5, type: "text/plain" }), {
      type: "refused",
      status: 0,
      code: "network_error",
    });
    const invalid = newUpload("k3", "c1", { name: "c.html", size: 5, type: "text/html" });
    const removed: string[] = [];
    const retried: string[] = [];
    render(
      h(UploadChips, { uploads: [progressed, failed, invalid], onRemove: (k) => removed.push(k), onRetry: (k) => retried.push(k) }),
      document.body,
    );
    const buttons = [...document.querySelectorAll("button")].map((b) => b.getAttribute("aria-label") ?? b.textContent);
    expect(buttons).toEqual(["Cancel uploading a.png", "Retry uploading b.txt", "Remove b.txt", "Remove c.html"]);
    const bar = document.querySelector("progress");
    expect(bar?.getAttribute("aria-label")).toBe("Uploading a.png");
    expect(bar?.value).toBe(42);
    expect(document.querySelector('[data-stage="uploading"] .upload-state')?.textContent).toBe("42%");
    const alerts = [...document.querySelectorAll('[role="alert"]')].map((e) => e.textContent);
    expect(alerts).toHaveLength(2);
    expect(alerts[0]).toMatch(/Can't reach the server/);
    expect(alerts[1]).toMatch(/can't be attached/);
    document.querySelector<HTMLButtonElement>(".upload-retry")?.click();
    document.querySelector<HTMLButtonElement>('[data-stage="uploading"] .upload-remove')?.click();
    expect(retried).toEqual(["k2"]);
    expect(removed).toEqual(["k1"]);
  });
});
