// The composer's uploads: the state machine (declare, PUT with progress, a new URL once when the
// store refuses an expired one, complete; errors in words, Retry from where it stopped), what
// the message may be sent with, the controller that runs it, and the XMLHttpRequest PUT.

import { describe, expect, it } from "vitest";
import { Uploads } from "../src/app/uploads";
import { ApiError } from "../src/lib/errors";
import type { Attachment, AttachmentUpload } from "../src/lib/types";
import {
  advance,
  composeProblem,
  newUpload,
  progressOf,
  readyAttachments,
  type Upload,
  type UploadEvent,
} from "../src/lib/uploads";
import { makePut, type PutHandle, type XhrLike } from "../src/net/upload";

const CH = "c1";
const file = { name: "IMG_0042.jpg", size: 1000, type: "image/jpeg" };

const target = (id: string, n = 1): AttachmentUpload => ({
  id,
  upload: { method: "PUT", url: `https://s/o/${id}?sig=${n}`, headers: { "content-type": "image/jpeg", "content-length": "1000" } },
  expires_in: 900,
});
const stored = (id: string, over: Partial<Attachment> = {}): Attachment => ({
  id,
  channel_id: CH,
  uploader_id: "u-me",
  name: "IMG_0042.jpg",
  content_type: "image/jpeg",
  size: 1000,
  width: 40,
  height: 30,
  state: "ready",
  created_at: "2025-01-15T09:31:00Z",
  ...over,
});

const run = (u: Upload, ...events: UploadEvent[]) => events.reduce(advance, u);

describe("an upload, step by step", () => {
  it("goes from declared to uploaded to complete, with progress", () => {
    let u = newUpload("k1", CH, file);
    expect(u).toMatchObject({ stage: "creating", content_type: "image/jpeg", size: 1000, sent: 0 });
    u = advance(u, { type: "target", answer: target("a1") });
    expect(u).toMatchObject({ stage: "uploading", id: "a1", target: target("a1").upload });
    u = advance(u, { type: "progress", sent: 250 });
    expect(progressOf(u)).toBe(0.25);
    expect(advance(u, { type: "progress", sent: 250 })).toBe(u); // nothing new
    u = advance(u, { type: "stored", status: 200 });
    expect(u.stage).toBe("completing");
    u = advance(u, { type: "completed", attachment: stored("a1") });
    expect(u).toMatchObject({ stage: "done" });
    // What the message carries: the attachment without the upload's bookkeeping.
    expect(u.attachment).toEqual({ id: "a1", name: "IMG_0042.jpg", content_type: "image/jpeg", size: 1000, width: 40, height: 30 });
    expect(readyAttachments([u])).toEqual([u.attachment]);
  });

  it("a file the server would refuse never starts: it can only be removed", () => {
    const u = newUpload("k1", CH, { name: "page.html", size: 10, type: "text/html" });
    expect(u).toMatchObject({ stage: "invalid" });
    expect(u.error).toMatch(/can't be attached/);
    expect(advance(u, { type: "retry" })).toBe(u);
    expect(newUpload("k2", CH, { ...file, size: 26 * 1024 * 1024 }).error).toMatch(/too large/);
  });

  it("asks for a new URL once when the store refuses the PUT (expired), then fails with Retry", () => {
    let u = run(newUpload("k1", CH, file), { type: "target", answer: target("a1") }, { type: "progress", sent: 900 });
    u = advance(u, { type: "stored", status: 403 });
    expect(u).toMatchObject({ stage: "renewing", renewed: true, sent: 0 });
    u = advance(u, { type: "target", answer: target("a1", 2) });
    expect(u).toMatchObject({ stage: "uploading", id: "a1" });
    expect(u.target?.url).toContain("sig=2");
    u = advance(u, { type: "stored", status: 403 });
    expect(u).toMatchObject({ stage: "failed", retryFrom: "renewing" });
    expect(u.error).toMatch(/refused/);
    // Retry: a new URL again (and the next refusal fails at once).
    u = advance(u, { type: "retry" });
    expect(u).toMatchObject({ stage: "renewing", renewed: true });
    expect(u.error).toBeUndefined();
  });

  it("a network failure of the PUT is retried with the same URL; a new one if that expired meanwhile", () => {
    let u = run(newUpload("k1", CH, file), { type: "target", answer: target("a1") });
    u = advance(u, { type: "stored", status: 0 });
    expect(u).toMatchObject({ stage: "failed", retryFrom: "uploading" });
    expect(u.error).toMatch(/interrupted/);
    u = advance(u, { type: "retry" });
    expect(u).toMatchObject({ stage: "uploading", sent: 0, renewed: false });
    u = advance(u, { type: "stored", status: 403 });
    expect(u.stage).toBe("renewing");
  });

  it("refusals of the API: words, and Retry only where it can help", () => {
    const creating = newUpload("k1", CH, file);
    const tooMany = advance(creating, { type: "refused", status: 409, code: "too_many_uploads" });
    expect(tooMany).toMatchObject({ stage: "failed", retryFrom: "creating" });
    expect(tooMany.error).toMatch(/too many unfinished uploads/);
    const offline = advance(creating, { type: "refused", status: 0, code: "network_error" });
    expect(offline).toMatchObject({ stage: "failed", retryFrom: "creating" });
    expect(offline.error).toMatch(/Can't reach the server/);
    const tooLarge = advance(creating, { type: "refused", status: 413, code: "attachment_too_large" });
    expect(tooLarge).toMatchObject({ stage: "failed", error: "The file is too large for the server." });
    expect(tooLarge.retryFrom).toBeUndefined();
    expect(advance(tooLarge, { type: "retry" })).toBe(tooLarge);
    const badName = advance(creating, { type: "refused", status: 400, code: "invalid_name" });
    expect(badName.error).toMatch(/name can't be used/);
  });

  it("complete: not arrived → upload again; changed → a new URL; forgotten → start over", () => {
    const completing = run(newUpload("k1", CH, file), { type: "target", answer: target("a1") }, { type: "stored", status: 200 });
    const incomplete = advance(completing, { type: "refused", status: 409, code: "upload_incomplete" });
    expect(incomplete).toMatchObject({ stage: "failed", retryFrom: "uploading" });
    expect(advance(incomplete, { type: "retry" }).stage).toBe("uploading");
    const mismatch = advance(completing, { type: "refused", status: 409, code: "upload_mismatch" });
    expect(advance(mismatch, { type: "retry" }).stage).toBe("renewing");
    const forgotten = advance(completing, { type: "refused", status: 404, code: "unknown_attachment" });
    expect(forgotten).toMatchObject({ stage: "failed", retryFrom: "creating", id: undefined });
    expect(advance(forgotten, { type: "retry" }).stage).toBe("creating");
  });

  it("ignores answers that do not belong to its stage", () => {
    const u = newUpload("k1", CH, file);
    expect(advance(u, { type: "stored", status: 200 })).toBe(u);
    expect(advance(u, { type: "completed", attachment: stored("a1") })).toBe(u);
    expect(advance(u, { type: "progress", sent: 10 })).toBe(u);
  });
});

describe("when the message can be sent", () => {
  const done = run(
    newUpload("k1", CH, file),
    { type: "target", answer: target("a1") },
    { type: "stored", status: 200 },
    { type: "completed", attachment: stored("a1") },
  );
  const uploading = run(newUpload("k2", CH, file), { type: "target", answer: target("a2") });
  const failed = advance(newUpload("k3", CH, file), { type: "refused", status: 0, code: "network_error" });

  it("with valid text, or at least one file ready and none still uploading", () => {
    expect(composeProblem("hello", [])).toBeNull();
    expect(composeProblem("", [])).toBe("Write something first.");
    expect(composeProblem("", [done])).toBeNull(); // files alone
    expect(composeProblem("   ", [done])).toBeNull(); // (sent without a caption)
    expect(composeProblem("caption", [done])).toBeNull();
    expect(composeProblem("hello", [done, uploading])).toMatch(/finished uploading/);
    expect(composeProblem("", [failed])).toBe("Write something first.");
    expect(composeProblem("", [done, failed])).toBeNull(); // the failed one stays in the composer
    expect(composeProblem("x".repeat(4001), [done])).toMatch(/at most 4000/);
  });
});

// ----- the controller ------------------------------------------------------------------------

interface FakePut {
  url: string;
  body: Blob;
  progress: (n: number) => void;
  finish: (status: number) => void;
  aborted: boolean;
}

function harness() {
  let state: Record<string, Upload[]> = {};
  const calls: string[] = [];
  const puts: FakePut[] = [];
  let n = 0;
  let renewals = 0;
  let completeAnswer: () => Promise<Attachment> = async () => stored("a1");
  const api = {
    createAttachment: async (ch: string, f: { name: string; content_type: string; size: number }) => {
      calls.push(`create ${ch} ${f.name} ${f.content_type} ${f.size}`);
      return target(`a${++n}`);
    },
    renewUploadUrl: async (_ch: string, id: string) => {
      calls.push(`renew ${id}`);
      return target(id, 2 + renewals++);
    },
    completeAttachment: async (_ch: string, id: string) => {
      calls.push(`complete ${id}`);
      return { ...(await completeAnswer()), id };
    },
  };
  const uploads = new Uploads({
    api,
    put: (req, body, onProgress): PutHandle => {
      let finish!: (s: number) => void;
      const done = new Promise<number>((r) => (finish = r));
      const p: FakePut = { url: req.url, body, progress: onProgress, finish, aborted: false };
      puts.push(p);
      return {
        done,
        abort: () => {
          p.aborted = true;
          finish(0);
        },
      };
    },
    get: () => state,
    set: (s) => (state = s),
    newKey: () => `k${Object.values(state).flat().length + 1}-${Math.random()}`,
  });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return {
    uploads,
    calls,
    puts,
    settle,
    list: () => state[CH] ?? [],
    failComplete: (e: Error) => (completeAnswer = async () => Promise.reject(e)),
  };
}

const blob = (name: string, type: string, size = 1000) => Object.assign(new Blob([new Uint8Array(size)], { type }), { name });

describe("the uploads controller", () => {
  it("runs each file through declare, PUT (exactly the signed URL), complete; then hands the attachments to the message", async () => {
    const h = harness();
    const f = blob("IMG_0042.jpg", "image/jpeg");
    expect(h.uploads.add(CH, [f])).toEqual({ added: 1, leftOut: 0 });
    expect(h.list()[0].stage).toBe("creating");
    await h.settle();
    expect(h.calls).toEqual(["create c1 IMG_0042.jpg image/jpeg 1000"]);
    expect(h.puts).toHaveLength(1);
    expect(h.puts[0].url).toBe("https://s/o/a1?sig=1");
    expect(h.puts[0].body).toBe(f);
    h.puts[0].progress(600);
    expect(progressOf(h.list()[0])).toBe(0.6);
    h.puts[0].finish(200);
    await h.settle();
    expect(h.calls).toEqual(["create c1 IMG_0042.jpg image/jpeg 1000", "complete a1"]);
    expect(h.list()[0].stage).toBe("done");
    expect(h.uploads.take(CH).map((a) => a.id)).toEqual(["a1"]);
    expect(h.list()).toEqual([]); // the chips left with the message
    expect(h.uploads.take(CH)).toEqual([]);
  });

  it("takes at most 4 files per message, and checks each before uploading", async () => {
    const h = harness();
    const r = h.uploads.add(CH, [
      blob("a.png", "image/png"),
      blob("b.html", "text/html"),
      blob("c.txt", "text/plain"),
      blob("d.pdf", "application/pdf"),
      blob("e.pdf", "application/pdf"),
    ]);
    expect(r).toEqual({ added: 4, leftOut: 1 });
    expect(h.list().map((u) => u.stage)).toEqual(["creating", "invalid", "creating", "creating"]);
    await h.settle();
    expect(h.calls.filter((c) => c.startsWith("create"))).toHaveLength(3); // not the refused one
    expect(h.uploads.add(CH, [blob("f.png", "image/png")])).toEqual({ added: 0, leftOut: 1 });
  });

  it("cancel aborts the PUT and removes the chip; a late answer changes nothing", async () => {
    const h = harness();
    h.uploads.add(CH, [blob("big.mp4", "video/mp4")]);
    await h.settle();
    const key = h.list()[0].key;
    h.uploads.remove(CH, key);
    expect(h.puts[0].aborted).toBe(true);
    expect(h.list()).toEqual([]);
    await h.settle();
    expect(h.calls).toEqual(["create c1 big.mp4 video/mp4 1000"]); // no complete
  });

  it("an expired URL: a new one, and the PUT again, once", async () => {
    const h = harness();
    h.uploads.add(CH, [blob("a.png", "image/png")]);
    await h.settle();
    h.puts[0].finish(403);
    await h.settle();
    expect(h.calls).toEqual(["create c1 a.png image/png 1000", "renew a1"]);
    expect(h.puts[1].url).toBe("https://s/o/a1?sig=2");
    h.puts[1].finish(403);
    await h.settle();
    expect(h.list()[0]).toMatchObject({ stage: "failed", retryFrom: "renewing" });
    expect(h.puts).toHaveLength(2);
    h.uploads.retry(CH, h.list()[0].key);
    await h.settle();
    expect(h.puts[2].url).toBe("https://s/o/a1?sig=3");
    h.puts[2].finish(200);
    await h.settle();
    expect(h.list()[0].stage).toBe("done");
  });

  it("a refused complete fails the chip with words; Retry uploads again", async () => {
    const h = harness();
    h.failComplete(new ApiError(409, "upload_incomplete", "not uploaded yet"));
    h.uploads.add(CH, [blob("a.txt", "text/plain")]);
    await h.settle();
    h.puts[0].finish(200);
    await h.settle();
    expect(h.list()[0]).toMatchObject({ stage: "failed", error: "The file did not arrive completely. Try again." });
    h.uploads.retry(CH, h.list()[0].key);
    expect(h.list()[0].stage).toBe("uploading");
    expect(h.puts).toHaveLength(2);
  });

  it("clear stops every upload", async () => {
    const h = harness();
    h.uploads.add(CH, [blob("a.png", "image/png")]);
    h.uploads.add("c2", [blob("b.png", "image/png")]);
    await h.settle();
    h.uploads.clear();
    expect(h.puts.every((p) => p.aborted)).toBe(true);
    expect(h.list()).toEqual([]);
  });
});

// ----- the PUT ---------------------------------------------------------------------------------

class FakeXhr implements XhrLike {
  static last: FakeXhr;
  method = "";
  url = "";
  headers: Record<string, string> = {};
  body: Blob | null = null;
  status = 0;
  upload: { onprogress: ((e: { loaded: number }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  ontimeout: (() => void) | null = null;
  constructor() {
    FakeXhr.last = this;
  }
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  send(body: Blob) {
    this.body = body;
  }
  abort() {
    this.onabort?.();
  }
}

describe("the PUT of the bytes", () => {
  const req = target("a1").upload;

  it("sends the signed headers except those the browser sets itself, and reports progress and the status", async () => {
    const put = makePut(() => new FakeXhr());
    const seen: number[] = [];
    const body = blob("a.jpg", "image/jpeg");
    const h = put(req, body, (n) => seen.push(n));
    const x = FakeXhr.last;
    expect(x.method).toBe("PUT");
    expect(x.url).toBe(req.url);
    expect(x.headers).toEqual({ "content-type": "image/jpeg" }); // not content-length
    expect(x.body).toBe(body);
    x.upload.onprogress?.({ loaded: 10 });
    x.upload.onprogress?.({ loaded: 1000 });
    expect(seen).toEqual([10, 1000]);
    x.status = 403;
    x.onload?.();
    await expect(h.done).resolves.toBe(403);
  });

  it("answers 0 on a network error and on abort", async () => {
    const put = makePut(() => new FakeXhr());
    const a = put(req, blob("a", "image/jpeg"), () => {});
    FakeXhr.last.onerror?.();
    await expect(a.done).resolves.toBe(0);
    const b = put(req, blob("a", "image/jpeg"), () => {});
    b.abort();
    await expect(b.done).resolves.toBe(0);
  });
});
