// Which files may be attached (the server's rules, checked before uploading), sizes and boxes
// for people, and what previews say of a message that is only files.

import { describe, expect, it } from "vitest";
import {
  attachmentProblem,
  attachmentsLine,
  declaredType,
  humanSize,
  imageBox,
  imageSource,
  isInlineImage,
  messagePreview,
  replyPreview,
  validAttachmentName,
} from "../src/lib/attachments";
import { AttachmentLinks } from "../src/app/attachmentLinks";
import { notificationText } from "../src/lib/notify";
import { ATTACHMENT_TYPES, Limits, type AttachmentLink, type Channel, type MessageAttachment } from "../src/lib/types";
import { msg } from "./support";

const MiB = 1024 * 1024;
const photo: MessageAttachment = { id: "f1", name: "IMG_0042.jpg", content_type: "image/jpeg", size: 2483921, width: 3024, height: 4032 };
const pdf: MessageAttachment = { id: "f2", name: "minutes 2025-01-15.pdf", content_type: "application/pdf", size: 88311 };

describe("client-side checks of a file, as the server makes them", () => {
  it("accepts exactly the server's types, under the names browsers give them", () => {
    for (const t of ATTACHMENT_TYPES) expect(attachmentProblem({ name: "a", size: 1, type: t }), t).toBeNull();
    expect(declaredType({ name: "x.jpg", size: 1, type: "image/jpg" })).toBe("image/jpeg");
    expect(declaredType({ name: "x.zip", size: 1, type: "application/x-zip-compressed" })).toBe("application/zip");
    expect(declaredType({ name: "x.m4a", size: 1, type: "audio/x-m4a" })).toBe("audio/mp4");
    expect(declaredType({ name: "x.txt", size: 1, type: "text/plain;charset=utf-8" })).toBe("text/plain");
    expect(declaredType({ name: "Notes.TXT", size: 1, type: "" })).toBe("text/plain");
    expect(declaredType({ name: "scan.pdf", size: 1, type: "application/octet-stream" })).toBe("application/pdf");
  });

  it("refuses other types, whatever the file is called", () => {
    for (const type of ["text/html", "image/svg+xml", "image/heic", "application/x-msdownload", ""]) {
      const problem = attachmentProblem({ name: "evil.png.html", size: 10, type });
      expect(problem, type).toMatch(/can't be attached/);
      expect(problem).toMatch(/PDF/); // says what can be
    }
    // A browser's own type wins over the extension: an .html called .png is still refused.
    expect(attachmentProblem({ name: "page.png", size: 10, type: "text/html" })).toMatch(/can't be attached/);
  });

  it("refuses empty files and files over 25 MiB, saying how large", () => {
    expect(attachmentProblem({ name: "a.txt", size: 0, type: "text/plain" })).toBe("The file is empty.");
    expect(attachmentProblem({ name: "a.mp4", size: Limits.ATTACHMENT_MAX_BYTES, type: "video/mp4" })).toBeNull();
    expect(attachmentProblem({ name: "a.mp4", size: Limits.ATTACHMENT_MAX_BYTES + 1, type: "video/mp4" })).toBe(
      "The file is too large (25 MB). Files can be at most 25 MB.",
    );
    expect(attachmentProblem({ name: "a.mp4", size: 31.2 * MiB, type: "video/mp4" })).toMatch(/\(31 MB\)/);
  });

  it("names: 1 to 255 characters, no slash, no controls, no bidi or invisible tricks (as limits.rs tests them)", () => {
    expect(validAttachmentName("IMG_0042.jpg")).toBe(true);
    expect(validAttachmentName("Résumé (final) 🦀.pdf")).toBe(true);
    expect(validAttachmentName("Family 👨\u200d👩\u200d👧.png")).toBe(true); // joiners stay allowed
    expect(validAttachmentName("é".repeat(255))).toBe(true);
    expect(validAttachmentName("é".repeat(256))).toBe(false);
    expect(validAttachmentName("🦀".repeat(255))).toBe(true); // characters, not UTF-16 units
    expect(validAttachmentName("")).toBe(false);
    for (const bad of [
      "../etc/passwd",
      "a/b.txt",
      "nul\u0000.txt",
      "line\nbreak.txt",
      "\u202egnp.exe",
      "zero\u200bwidth.png",
      "c1\u0085.txt",
      "tag\u{e0041}.txt",
      "bom\ufeff.txt",
    ]) {
      expect(validAttachmentName(bad), JSON.stringify(bad)).toBe(false);
    }
    expect(attachmentProblem({ name: "\u202egnp.exe", size: 5, type: "image/png" })).toMatch(/characters that can't be used/);
    expect(attachmentProblem({ name: `${"a".repeat(256)}.txt`, size: 5, type: "text/plain" })).toMatch(/too long/);
  });
});

describe("sizes and boxes", () => {
  it("gives sizes in words", () => {
    expect(humanSize(0)).toBe("0 B");
    expect(humanSize(512)).toBe("512 B");
    expect(humanSize(1536)).toBe("1.5 KB");
    expect(humanSize(88311)).toBe("86 KB");
    expect(humanSize(2483921)).toBe("2.4 MB");
    expect(humanSize(25 * MiB)).toBe("25 MB");
  });

  it("keeps the image's shape within 320 px, never enlarging it", () => {
    expect(imageBox(3024, 4032)).toEqual({ width: 240, height: 320 });
    expect(imageBox(4000, 1000)).toEqual({ width: 320, height: 80 });
    expect(imageBox(64, 48)).toEqual({ width: 64, height: 48 });
    expect(imageBox(10000, 1)).toEqual({ width: 320, height: 1 });
  });

  it("shows images with a known size as pictures, everything else as a file", () => {
    expect(isInlineImage(photo)).toBe(true);
    expect(isInlineImage(pdf)).toBe(false);
    expect(isInlineImage({ ...photo, width: undefined, height: undefined })).toBe(false); // header unreadable
  });

  it("uses the thumbnail once made, asks again while it is being made, then falls back to the file", () => {
    const base: AttachmentLink = { url: "https://x/o/1", thumbnail: "pending", expires_in: 300 };
    expect(imageSource({ ...base, thumbnail: "ready", thumbnail_url: "https://x/t/1.jpg" }, 0)).toEqual({ src: "https://x/t/1.jpg" });
    expect(imageSource(base, 0)).toEqual({ retryInMs: 1000 });
    expect(imageSource(base, 1)).toEqual({ retryInMs: 2000 });
    expect(imageSource(base, 2)).toEqual({ retryInMs: 4000 });
    expect(imageSource(base, 3)).toEqual({ src: "https://x/o/1" });
    expect(imageSource({ ...base, thumbnail: "none" }, 0)).toEqual({ src: "https://x/o/1" });
  });
});

describe("previews of messages that are only files", () => {
  it("say which file (and how many more)", () => {
    expect(attachmentsLine([photo])).toBe("📎 IMG_0042.jpg");
    expect(attachmentsLine([photo, pdf])).toBe("📎 IMG_0042.jpg and 1 more file");
    expect(attachmentsLine([photo, pdf, pdf])).toBe("📎 IMG_0042.jpg and 2 more files");
    expect(messagePreview(msg(1, { body: "", attachments: [photo] }))).toBe("📎 IMG_0042.jpg");
    expect(messagePreview(msg(1, { body: "  \n", attachments: [photo] }))).toBe("📎 IMG_0042.jpg");
    // A caption is what the preview shows; a tombstone shows nothing.
    expect(messagePreview(msg(1, { body: "the photo", attachments: [photo] }))).toBe("the photo");
    expect(messagePreview(msg(1, { body: "", deleted: true }))).toBe("");
  });

  it("a reply's quote names the files of an original that has no text", () => {
    const ref = { id: "m1", seq: 1, sender_id: "u", preview: "" };
    expect(replyPreview(ref, { body: "", attachments: [pdf] })).toBe("📎 minutes 2025-01-15.pdf");
    expect(replyPreview(ref)).toBe("📎 Attachment"); // the original is not loaded
    expect(replyPreview({ ...ref, preview: "hi" })).toBe("hi");
    expect(replyPreview({ ...ref, deleted: true })).toBe("");
  });

  it("notifications say which file", () => {
    const m = msg(7, { body: "", attachments: [photo] });
    const group: Channel = { id: "c1", kind: "group", name: "general", description: "", created_at: "" };
    const dm: Channel = { ...group, kind: "direct", name: "Bob" };
    expect(notificationText(m, group, "Bob", false).body).toBe("Bob: 📎 IMG_0042.jpg");
    expect(notificationText(m, dm, "Bob", false).body).toBe("📎 IMG_0042.jpg");
  });
});

describe("download links", () => {
  it("are kept while valid for at least a minute more, asked for once at a time", async () => {
    let now = 0;
    let asked = 0;
    const links = new AttachmentLinks(async (_c, id) => {
      asked++;
      return { url: `u-${id}-${asked}`, thumbnail: "none", expires_in: 300 };
    }, () => now);
    const [a, b] = await Promise.all([links.get("c1", "f1"), links.get("c1", "f1")]);
    expect(a).toBe(b);
    expect(asked).toBe(1);
    now = 200_000;
    expect((await links.get("c1", "f1")).url).toBe("u-f1-1");
    expect(links.cached("f1")?.url).toBe("u-f1-1");
    now = 241_000; // less than a minute left
    expect(links.cached("f1")).toBeUndefined();
    expect((await links.get("c1", "f1")).url).toBe("u-f1-2");
    expect((await links.get("c1", "f1", true)).url).toBe("u-f1-3"); // fresh: asked again
  });

  it("forget a failed request, so the next one asks again", async () => {
    let fail = true;
    const links = new AttachmentLinks(async () => {
      if (fail) throw new Error("down");
      return { url: "u", thumbnail: "none", expires_in: 300 };
    });
    await expect(links.get("c1", "f1")).rejects.toThrow("down");
    fail = false;
    await expect(links.get("c1", "f1")).resolves.toMatchObject({ url: "u" });
  });
});
