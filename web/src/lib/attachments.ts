// Attachments as people meet them: which files may be attached (the server's rules, checked here
// first so nobody waits for an upload the server would refuse), sizes in words, the box an image
// takes before it loads, and what previews say of a message that is only files.

import { previewOf } from "./messages";
import { ATTACHMENT_TYPES, Limits, type AttachmentLink, type MessageAttachment, type ReplyRef } from "./types";

/** What we know of a file before uploading it (a `File` is one). */
export interface FileInfo {
  name: string;
  size: number;
  /** The browser's idea of the type; may be empty. */
  type: string;
}

// Types browsers (or systems) report under another name than the one the server accepts. Only
// names of the same format: a type the server refuses stays refused.
const ALIASES: Record<string, string> = {
  "image/jpg": "image/jpeg",
  "image/pjpeg": "image/jpeg",
  "application/x-zip-compressed": "application/zip",
  "application/x-zip": "application/zip",
  "audio/mp3": "audio/mpeg",
  "audio/x-mp3": "audio/mpeg",
  "audio/x-m4a": "audio/mp4",
  "audio/m4a": "audio/mp4",
};

// For files whose type the browser does not know (an empty `type`): by extension.
const BY_EXTENSION: Record<string, string> = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  pdf: "application/pdf",
  txt: "text/plain",
  zip: "application/zip",
  mp4: "video/mp4",
  mp3: "audio/mpeg",
  m4a: "audio/mp4",
};

/**
 * The type to declare for a file: the browser's, without parameters and lowercased, under the
 * name the server knows; guessed from the extension when the browser gave none. May be a type
 * the server refuses (see `attachmentProblem`).
 */
export function declaredType(file: FileInfo): string {
  let t = (file.type || "").split(";")[0].trim().toLowerCase();
  if (!t || t === "application/octet-stream") {
    const ext = /\.([a-z0-9]+)$/i.exec(file.name)?.[1]?.toLowerCase();
    t = (ext && BY_EXTENSION[ext]) || t;
  }
  return ALIASES[t] ?? t;
}

/** Whether the server accepts files of this type (exactly one of its list). */
export const acceptedType = (contentType: string): boolean => ATTACHMENT_TYPES.includes(contentType);

/**
 * Whether `c` (one code point) may not be in a name: control characters, the line and paragraph
 * separators, and format characters (Cf) such as bidi overrides that make "\u202egnp.exe" read as
 * "exe.png". The zero-width joiner and non-joiner stay allowed (emoji, several scripts). The same
 * list as the server's `is_forbidden_in_names` (limits.rs), not the browser's Unicode tables, so
 * both always agree.
 */
export function forbiddenInNames(cp: number): boolean {
  if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029) return true;
  if (cp === 0x200c || cp === 0x200d) return false;
  const r = (a: number, b: number) => cp >= a && cp <= b;
  return (
    cp === 0x00ad || r(0x0600, 0x0605) || cp === 0x061c || cp === 0x06dd || cp === 0x070f ||
    r(0x0890, 0x0891) || cp === 0x08e2 || cp === 0x180e || r(0x200b, 0x200f) || r(0x202a, 0x202e) ||
    r(0x2060, 0x2064) || r(0x2066, 0x206f) || cp === 0xfeff || r(0xfff9, 0xfffb) || cp === 0x110bd ||
    cp === 0x110cd || r(0x13430, 0x1343f) || r(0x1bca0, 0x1bca3) || r(0x1d173, 0x1d17a) ||
    cp === 0xe0001 || r(0xe0020, 0xe007f)
  );
}

/** Whether the server accepts this file name: 1 to 255 characters, no `/`, none forbidden. */
export function validAttachmentName(name: string): boolean {
  const chars = Array.from(name);
  if (chars.length < 1 || chars.length > Limits.ATTACHMENT_NAME_MAX) return false;
  return !chars.some((c) => c === "/" || forbiddenInNames(c.codePointAt(0) as number));
}

/** The accepted types, for people. */
export const ACCEPTED_IN_WORDS = "images (JPEG, PNG, GIF, WebP), PDF, plain text, ZIP, MP4 video, MP3 or M4A audio";

/**
 * Why the server would refuse this file, in words for a person (null: it would not). The same
 * checks as `POST …/attachments`: type, size, name.
 */
export function attachmentProblem(file: FileInfo, maxBytes: number = Limits.ATTACHMENT_MAX_BYTES): string | null {
  if (!acceptedType(declaredType(file))) {
    return `Files of this type can't be attached. You can attach ${ACCEPTED_IN_WORDS}.`;
  }
  if (!(file.size > 0)) return "The file is empty.";
  if (file.size > maxBytes) {
    return `The file is too large (${humanSize(file.size)}). Files can be at most ${humanSize(maxBytes)}.`;
  }
  if (!validAttachmentName(file.name)) {
    return Array.from(file.name).length > Limits.ATTACHMENT_NAME_MAX
      ? `The file's name is too long (at most ${Limits.ATTACHMENT_NAME_MAX} characters). Rename it and try again.`
      : "The file's name has characters that can't be used (such as / or invisible ones). Rename it and try again.";
  }
  return null;
}

/** A size for people: "512 B", "1.5 KB", "86 KB", "2.4 MB", "25 MB" (units of 1024). */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ["KB", "MB", "GB"];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = v < 10 ? Math.round(v * 10) / 10 : Math.round(v);
  return `${shown} ${units[i]}`;
}

/** Whether the message shows this attachment as a picture (an image whose size is known), or else as a file chip. */
export function isInlineImage(a: MessageAttachment): boolean {
  return a.content_type.startsWith("image/") && (a.width ?? 0) > 0 && (a.height ?? 0) > 0;
}

/** The largest side of an image in a message, in CSS pixels. */
export const IMAGE_BOX_MAX = 320;

/**
 * The box an image takes in the message, reserved before it loads (so nothing jumps when it
 * does): its aspect ratio, no larger than `max` on either side, never enlarged.
 */
export function imageBox(width: number, height: number, max = IMAGE_BOX_MAX): { width: number; height: number } {
  if (!(width > 0 && height > 0)) return { width: max, height: max };
  const scale = Math.min(1, max / width, max / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** How often a link whose thumbnail is still being made is asked for again (1 s, 2 s, 4 s) before the file itself is shown. */
export const THUMBNAIL_RETRIES = 3;

/**
 * What to show of an image, given its link and how many answers said "pending" before this one:
 * the thumbnail once it is made; while it is being made, ask again after 1 s, 2 s, 4 s (it is
 * normally ready within a second of the upload); then, or when there will be none, the file.
 */
export function imageSource(link: AttachmentLink, pendingBefore: number): { src: string } | { retryInMs: number } {
  if (link.thumbnail_url) return { src: link.thumbnail_url };
  if (link.thumbnail === "pending" && pendingBefore < THUMBNAIL_RETRIES) return { retryInMs: 1000 * 2 ** pendingBefore };
  return { src: link.url };
}

/** What a file-only message says in a line: "📎 IMG_0042.jpg", "📎 IMG_0042.jpg and 2 more files". */
export function attachmentsLine(list: readonly MessageAttachment[]): string {
  if (list.length === 0) return "";
  const more = list.length - 1;
  return `📎 ${list[0].name}${more > 0 ? ` and ${more} more file${more === 1 ? "" : "s"}` : ""}`;
}

/**
 * What previews (notifications, announcements, the reply bar) say of a message: the start of
 * its body, or, when it has none, its files.
 */
export function messagePreview(m: { body: string; attachments?: readonly MessageAttachment[]; deleted?: boolean }): string {
  if (m.deleted) return "";
  if (m.body.trim()) return previewOf(m.body);
  return attachmentsLine(m.attachments ?? []);
}

/**
 * What a reply's quote says of the message it answers: the server's preview is the start of the
 * body, so it is empty for a message that is only files. Then the original's files when it is
 * loaded, else just that it had some.
 */
export function replyPreview(ref: ReplyRef, original?: { body: string; attachments?: readonly MessageAttachment[] }): string {
  if (ref.deleted) return "";
  if (ref.preview) return ref.preview;
  const line = original ? attachmentsLine(original.attachments ?? []) : "";
  return line || "📎 Attachment";
}
