// Runs the composer's uploads: for each file, the call its stage names (lib/uploads.ts), its
// answer fed back, until it is done or failed. The state lives in the app's store (per
// conversation, so an upload goes on while another conversation is open); the files and the
// running PUTs live here.

import { ApiError } from "../lib/errors";
import {
  advance,
  isActive,
  newUpload,
  readyAttachments,
  type Upload,
  type UploadEvent,
} from "../lib/uploads";
import { Limits, type Attachment, type AttachmentUpload, type MessageAttachment } from "../lib/types";
import type { PutFn, PutHandle } from "../net/upload";

export interface UploadApi {
  createAttachment(channelId: string, file: { name: string; content_type: string; size: number }): Promise<AttachmentUpload>;
  renewUploadUrl(channelId: string, attachmentId: string): Promise<AttachmentUpload>;
  completeAttachment(channelId: string, attachmentId: string): Promise<Attachment>;
}

export interface UploadsDeps {
  api: UploadApi;
  put: PutFn;
  /** The uploads of every conversation, as the store holds them now. */
  get: () => Record<string, Upload[]>;
  set: (uploads: Record<string, Upload[]>) => void;
  newKey: () => string;
}

/** What `add` did with the files it was given. */
export interface AddResult {
  added: number;
  /** Files left out because the message already has as many as it may carry. */
  leftOut: number;
}

export class Uploads {
  private files = new Map<string, Blob>();
  private puts = new Map<string, PutHandle>();
  /** Per upload, the number of the call in flight: answers of an older one are ignored. */
  private calls = new Map<string, number>();

  constructor(private readonly deps: UploadsDeps) {}

  list(channelId: string): Upload[] {
    return this.deps.get()[channelId] ?? [];
  }

  /** Adds files to the composer of `channelId`: each is checked, and the good ones start uploading. */
  add(channelId: string, files: ArrayLike<File | (Blob & { name: string })>): AddResult {
    const room = Math.max(0, Limits.ATTACHMENTS_PER_MESSAGE_MAX - this.list(channelId).length);
    const taken = Array.from(files).slice(0, room);
    const added = taken.map((f) => {
      const u = newUpload(this.deps.newKey(), channelId, { name: f.name, size: f.size, type: f.type });
      if (u.stage !== "invalid") this.files.set(u.key, f);
      return u;
    });
    if (added.length) this.setList(channelId, [...this.list(channelId), ...added]);
    for (const u of added) this.run(u);
    return { added: added.length, leftOut: files.length - taken.length };
  }

  /** Cancel (while uploading: the PUT is aborted) or remove (done, failed, invalid): the chip goes. */
  remove(channelId: string, key: string): void {
    this.puts.get(key)?.abort();
    this.forget(key);
    const list = this.list(channelId);
    if (list.some((u) => u.key === key)) this.setList(channelId, list.filter((u) => u.key !== key));
  }

  retry(channelId: string, key: string): void {
    this.dispatch(channelId, key, { type: "retry" });
  }

  /**
   * The attachments ready to go with a message being sent now; their chips leave the composer.
   * Chips that failed stay (they were not sent), so the person sees them.
   */
  take(channelId: string): MessageAttachment[] {
    const list = this.list(channelId);
    const ready = readyAttachments(list);
    if (ready.length) {
      for (const u of list) if (u.stage === "done") this.forget(u.key);
      this.setList(channelId, list.filter((u) => u.stage !== "done"));
    }
    return ready;
  }

  /** Stops everything (logged out, or the conversation was left). */
  clear(channelId?: string): void {
    const all = this.deps.get();
    const ids = channelId === undefined ? Object.keys(all) : [channelId];
    for (const id of ids) {
      for (const u of all[id] ?? []) {
        this.puts.get(u.key)?.abort();
        this.forget(u.key);
      }
    }
    if (channelId === undefined) this.deps.set({});
    else if (all[channelId]) {
      const rest = { ...all };
      delete rest[channelId];
      this.deps.set(rest);
    }
  }

  private forget(key: string): void {
    this.files.delete(key);
    this.puts.delete(key);
    this.calls.delete(key);
  }

  private setList(channelId: string, list: Upload[]): void {
    const all = { ...this.deps.get() };
    if (list.length) all[channelId] = list;
    else delete all[channelId];
    this.deps.set(all);
  }

  /** Feeds `e` to the upload; when its stage changed to one with a call, makes that call. */
  private dispatch(channelId: string, key: string, e: UploadEvent, call?: number): void {
    if (call !== undefined && this.calls.get(key) !== call) return; // cancelled, or an older call
    const list = this.list(channelId);
    const i = list.findIndex((u) => u.key === key);
    if (i < 0) return;
    const cur = list[i];
    const next = advance(cur, e);
    if (next === cur) return;
    const copy = list.slice();
    copy[i] = next;
    this.setList(channelId, copy);
    if (next.stage !== cur.stage) {
      if (cur.stage === "uploading") this.puts.delete(key);
      this.run(next);
    }
  }

  /** Makes the call the upload's stage names. */
  private run(u: Upload): void {
    if (!isActive(u)) {
      if (u.stage === "done") this.files.delete(u.key); // the bytes are stored: let the browser free them
      return;
    }
    const call = (this.calls.get(u.key) ?? 0) + 1;
    this.calls.set(u.key, call);
    const ch = u.channel_id;
    const feed = (e: UploadEvent) => this.dispatch(ch, u.key, e, call);
    const refused = (err: unknown) => feed(refusal(err));
    const api = this.deps.api;
    switch (u.stage) {
      case "creating":
        api.createAttachment(ch, u).then((answer) => feed({ type: "target", answer }), refused);
        break;
      case "renewing":
        if (!u.id) return feed({ type: "refused", status: 404, code: "unknown_attachment" });
        api.renewUploadUrl(ch, u.id).then((answer) => feed({ type: "target", answer }), refused);
        break;
      case "completing":
        if (!u.id) return feed({ type: "refused", status: 404, code: "unknown_attachment" });
        api.completeAttachment(ch, u.id).then((attachment) => feed({ type: "completed", attachment }), refused);
        break;
      case "uploading": {
        const file = this.files.get(u.key);
        if (!file || !u.target) return feed({ type: "stored", status: 0 });
        const handle = this.deps.put(u.target, file, (sent) => feed({ type: "progress", sent }));
        this.puts.set(u.key, handle);
        void handle.done.then((status) => feed({ type: "stored", status }));
        break;
      }
    }
  }
}

/** An error of an API call as the state machine reads it. */
function refusal(err: unknown): UploadEvent {
  if (err instanceof ApiError) return { type: "refused", status: err.status, code: err.code, message: err.serverMessage };
  return { type: "refused", status: 0, code: "network_error" };
}
