// The files of the composer, each on its way to becoming an attachment (docs/protocol.md,
// "Attachments"): declared (`POST …/attachments`), PUT to the store with progress, completed
// (`POST …/complete`), then sent with the message. A pure state machine: `advance` takes an upload
// and what happened and returns the next state; the controller (app/uploads.ts) does what each
// state asks for (the stage names the call in flight) and feeds the answers back.

import { attachmentProblem, declaredType, type FileInfo } from "./attachments";
import { describeError } from "./errors";
import type { Attachment, AttachmentUpload, MessageAttachment, UploadRequest } from "./types";
import { bodyProblem } from "./validate";

export type UploadStage =
  /** Refused before uploading (type, size, name): it can only be removed. */
  | "invalid"
  /** `POST …/attachments`: asking where to put it. */
  | "creating"
  /** PUT to the store, with progress. */
  | "uploading"
  /** The store refused the URL (expired): `POST …/upload-url` for a new one. */
  | "renewing"
  /** `POST …/complete`. */
  | "completing"
  /** Ready to go with the message. */
  | "done"
  /** Stopped on an error: Retry (when `retryFrom` says where from) or remove. */
  | "failed";

/** The stages with a call in flight: the message waits for them. */
export const ACTIVE_STAGES: readonly UploadStage[] = ["creating", "uploading", "renewing", "completing"];

export interface Upload {
  /** Local id of the chip (the server's `id` comes later). */
  key: string;
  channel_id: string;
  name: string;
  /** The type declared to the server (and bound into the upload URL). */
  content_type: string;
  size: number;
  stage: UploadStage;
  /** Bytes the store has received in the current PUT. */
  sent: number;
  /** The server's attachment id, once declared. */
  id?: string;
  /** Where and how to PUT the bytes (valid `expires_in` seconds from when it came). */
  target?: UploadRequest;
  /** A new URL was already asked for after the store refused one: a second refusal is an error. */
  renewed?: boolean;
  /** Why it is invalid or failed, in words for a person. */
  error?: string;
  /** Failed: the stage Retry starts again from; absent when retrying cannot help. */
  retryFrom?: Exclude<UploadStage, "invalid" | "done" | "failed">;
  /** Done: what the message carries. */
  attachment?: MessageAttachment;
}

export type UploadEvent =
  /** `POST …/attachments` or `…/upload-url` answered with where to PUT. */
  | { type: "target"; answer: AttachmentUpload }
  /** The PUT progressed (bytes sent so far). */
  | { type: "progress"; sent: number }
  /** The store answered the PUT with this HTTP status (0: no answer: network error, timeout). */
  | { type: "stored"; status: number }
  /** `POST …/complete` answered with the attachment. */
  | { type: "completed"; attachment: Attachment }
  /** The API refused the call of the current stage (status 0: it could not be reached). */
  | { type: "refused"; status: number; code: string; message?: string }
  /** The person pressed Retry. */
  | { type: "retry" };

/** A chip for a file the person picked, pasted or dropped: checked first, as the server would. */
export function newUpload(key: string, channelId: string, file: FileInfo, maxBytes?: number): Upload {
  const problem = attachmentProblem(file, maxBytes);
  return {
    key,
    channel_id: channelId,
    name: file.name,
    content_type: declaredType(file),
    size: file.size,
    stage: problem ? "invalid" : "creating",
    sent: 0,
    ...(problem ? { error: problem } : {}),
  };
}

/** Words for refusals that mean something else here than elsewhere in the app (errors.ts). */
const WORDS: Record<string, string> = {
  attachment_too_large: "The file is too large for the server.",
  invalid_name: "The file's name can't be used. Rename it and try again.",
  invalid_field: "The server did not accept this file.",
  unknown_attachment: "The server no longer knows this upload. Try again.",
  not_a_member: "You are not a member of this conversation any more.",
};

export function uploadErrorText(status: number, code: string, message?: string): string {
  return WORDS[code] ?? describeError(code, message, status);
}

/** Whether trying the same call again may succeed: no answer, busy, throttled, too many at once. */
export function retryable(status: number, code: string): boolean {
  return status === 0 || status === 408 || status === 429 || status >= 500 || code === "too_many_uploads";
}

const fail = (u: Upload, error: string, retryFrom?: Upload["retryFrom"]): Upload => {
  const { retryFrom: _r, ...rest } = u;
  return { ...rest, stage: "failed", error, ...(retryFrom ? { retryFrom } : {}) };
};

/** The next state of an upload after `e`; the same object when `e` means nothing in its stage. */
export function advance(u: Upload, e: UploadEvent): Upload {
  switch (e.type) {
    case "target":
      if (u.stage !== "creating" && u.stage !== "renewing") return u;
      return { ...u, stage: "uploading", id: e.answer.id, target: e.answer.upload, sent: 0, error: undefined };

    case "progress": {
      if (u.stage !== "uploading") return u;
      const sent = Math.min(u.size, Math.max(0, e.sent));
      return sent === u.sent ? u : { ...u, sent };
    }

    case "stored":
      if (u.stage !== "uploading") return u;
      if (e.status >= 200 && e.status < 300) return { ...u, stage: "completing", sent: u.size };
      if (e.status === 403) {
        // The URL expired (15 minutes: a slow upload, a laptop that slept): a new one, once.
        if (!u.renewed) return { ...u, stage: "renewing", renewed: true, sent: 0 };
        return fail(u, "The storage refused the upload. Try again.", "renewing");
      }
      if (e.status === 0) return fail(u, "The upload was interrupted. Check your connection and try again.", "uploading");
      if (e.status === 413) return fail(u, "The file is too large for the server.");
      return fail(u, uploadErrorText(e.status, ""), "uploading");

    case "completed":
      if (u.stage !== "completing") return u;
      return { ...u, stage: "done", sent: u.size, error: undefined, attachment: messageAttachment(e.attachment) };

    case "refused": {
      if (!ACTIVE_STAGES.includes(u.stage) || u.stage === "uploading") return u;
      const words = uploadErrorText(e.status, e.code, e.message);
      // The server forgot the upload (swept after an hour, or another device completed it): start over.
      if (e.code === "unknown_attachment") return fail({ ...u, id: undefined, target: undefined }, words, "creating");
      if (u.stage === "completing") {
        if (e.code === "upload_incomplete") return fail(u, words, "uploading");
        // The store deleted the object: a new URL, then the bytes again.
        if (e.code === "upload_mismatch") return fail(u, words, "renewing");
      }
      return fail(u, words, retryable(e.status, e.code) ? (u.stage as Upload["retryFrom"]) : undefined);
    }

    case "retry": {
      if (u.stage !== "failed" || !u.retryFrom) return u;
      const { error: _e, retryFrom, ...rest } = u;
      const from = retryFrom === "uploading" && !u.target ? "renewing" : retryFrom;
      return { ...rest, stage: from, sent: 0, renewed: from === "renewing" };
    }
  }
}

/** What a message carries of a completed upload. */
export function messageAttachment(a: Attachment | MessageAttachment): MessageAttachment {
  return {
    id: a.id,
    name: a.name,
    content_type: a.content_type,
    size: a.size,
    ...(typeof a.width === "number" ? { width: a.width } : {}),
    ...(typeof a.height === "number" ? { height: a.height } : {}),
  };
}

export const isActive = (u: Upload): boolean => ACTIVE_STAGES.includes(u.stage);

/** How far along the upload is, 0 to 1 (the PUT is nearly all of it). */
export function progressOf(u: Upload): number {
  if (u.stage === "done" || u.stage === "completing") return 1;
  if (u.stage !== "uploading" || u.size <= 0) return 0;
  return Math.min(1, u.sent / u.size);
}

/** The attachments ready to go with the message, in the order they were added. */
export function readyAttachments(list: readonly Upload[]): MessageAttachment[] {
  return list.filter((u) => u.stage === "done" && u.attachment).map((u) => u.attachment as MessageAttachment);
}

/** The body a message with files goes out with: white space alone is no caption. */
export const captionOf = (draft: string): string => (draft.trim() ? draft : "");

/**
 * Why the message cannot be sent now (null: it can): text that is valid, or at least one
 * completed upload (the text then optional, but within the limit), and no upload still running.
 */
export function composeProblem(draft: string, uploads: readonly Upload[]): string | null {
  if (uploads.some(isActive)) return "Wait until the files have finished uploading.";
  if (readyAttachments(uploads).length === 0) return bodyProblem(draft);
  return captionOf(draft) ? bodyProblem(draft) : null;
}
