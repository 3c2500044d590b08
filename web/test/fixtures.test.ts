// The wire examples of the contract (fixtures/wire, written by crates/chat-types) read as the
// client's types and handled by its logic: the frames it builds match them field for field.

import { describe, expect, it } from "vitest";
import { appStateFrame, appStateToSend } from "../src/lib/appstate";
import { changeFrame, type PendingChange } from "../src/lib/changes";
import { mentionsMe } from "../src/lib/mentions";
import { applyEvent, emptyTimeline, mergeMessages, resumePoint, sendFrame, type Outgoing } from "../src/lib/messages";
import { markFromList, unreadOf } from "../src/lib/readstate";
import { imageBox, imageSource, isInlineImage, messagePreview } from "../src/lib/attachments";
import { describeError } from "../src/lib/errors";
import { advance, newUpload, uploadErrorText } from "../src/lib/uploads";
import {
  ATTACHMENT_TYPES,
  Limits,
  type Attachment,
  type AttachmentLink,
  type AttachmentUpload,
  type Channel,
  type ChannelEvent,
  type ClientFrame,
  type Message,
  type ServerFrame,
} from "../src/lib/types";

// Read by Vite at test time; empty when the web client is tested outside the repository.
const FILES = import.meta.glob<unknown>("../../fixtures/wire/*.json", { eager: true, import: "default" });
const load = <T,>(name: string): T => {
  const f = FILES[`../../fixtures/wire/${name}.json`];
  if (f === undefined) throw new Error(`fixture ${name} is missing`);
  return structuredClone(f) as T;
};
const ALICE = "0190a2b4-0000-7000-8000-00000000a11c";
const BOB = "0190a2b4-0000-7000-8000-000000000b0b";

describe.skipIf(Object.keys(FILES).length === 0)("wire fixtures of edits, deletes, reactions and replies", () => {
  it("the client builds the change frames exactly as the fixtures show them", () => {
    for (const [name, kind] of [
      ["ws_client_edit", "edit"],
      ["ws_client_delete", "delete"],
      ["ws_client_react", "react"],
      ["ws_client_unreact", "unreact"],
    ] as const) {
      const f = load<Record<string, string>>(name);
      const c: PendingChange = {
        client_event_id: f.client_event_id,
        channel_id: f.channel_id,
        message_id: f.message_id,
        kind,
        ...(f.body !== undefined ? { body: f.body } : {}),
        ...(f.emoji !== undefined ? { emoji: f.emoji } : {}),
        attempts: 0,
      };
      expect(changeFrame(c), name).toEqual(f);
    }
    const reply = load<Extract<ClientFrame, { type: "send" }>>("ws_client_send_reply");
    expect(reply.type).toBe("send");
    expect(typeof reply.reply_to).toBe("string");
  });

  it("decodes the history with changes and applies the event frames to it", () => {
    const { messages } = load<{ messages: Message[] }>("rest_message_list_with_changes");
    let tl = mergeMessages(emptyTimeline(), messages, 44);
    const [first, reply, tomb] = tl.placed;
    expect(first.edited_at).toBeTruthy();
    expect(first.mentions).toEqual([BOB]);
    expect(reply.mentions).toBeUndefined(); // absent when none
    expect(first.reactions?.[0]).toEqual({ emoji: "👍", count: 2, me: true });
    expect(reply.reply_to).toMatchObject({ id: first.id, seq: 41, preview: first.body });
    expect(tomb).toMatchObject({ deleted: true, body: "" });
    expect(resumePoint(tl)).toBe(tomb.id);

    const frames = [
      "ws_server_event_edited",
      "ws_server_event_deleted",
      "ws_server_event_reaction_added",
      "ws_server_event_reaction_removed",
    ].map((n) => load<Extract<ServerFrame, { type: "event" }>>(n));
    for (const f of frames) expect(f.type).toBe("event");
    // Each fixture shares one event id; give them their own, as the server would.
    const [edit, del, add, remove] = frames.map((f, i) => ({ ...f.event, id: `${f.event.id}-${i}` }));
    expect([edit.seq, del.seq, add.seq, remove.seq]).toEqual([45, 46, 47, 48]);

    tl = applyEvent(tl, edit, ALICE);
    expect(tl.placed[0].body).toBe(edit.kind === "edited" ? edit.body : "");
    expect(tl.placed[0].edited_at).toBe(edit.created_at);
    // The edit's mentions are those of the new body: they replace the message's.
    expect(edit.kind === "edited" && edit.mentions).toEqual([BOB]);
    expect(tl.placed[0].mentions).toEqual([BOB]);
    expect(mentionsMe(tl.placed[0], BOB)).toBe(true);
    expect(mentionsMe(tl.placed[0], ALICE)).toBe(false); // her own message

    // Without the delete: the reactions, absolute, `me` following Alice (the caller here).
    let alive = applyEvent(tl, add, ALICE);
    expect(alive.placed[0].reactions?.[0]).toEqual({ emoji: "👍", count: 2, me: true });
    alive = applyEvent(alive, remove, ALICE); // Alice took hers back: 1 left, not hers
    expect(alive.placed[0].reactions?.[0]).toEqual({ emoji: "👍", count: 1, me: false });
    expect(resumePoint(alive)).toBe(remove.id);

    // In the fixtures' order: the delete (46) comes before the reactions (47, 48), which then
    // change nothing.
    for (const e of [del, add, remove]) tl = applyEvent(tl, e, ALICE);
    expect(tl.placed[0]).toMatchObject({ deleted: true, body: "" });
    expect(tl.placed[0].reactions).toBeUndefined();
    expect(tl.placed[1].reply_to).toMatchObject({ preview: "", deleted: true });
    expect(resumePoint(tl)).toBe(remove.id);
  });

  it("decodes event_ack and the error of a change", () => {
    const ack = load<Extract<ServerFrame, { type: "event_ack" }>>("ws_server_event_ack");
    expect(ack).toMatchObject({ type: "event_ack" });
    expect(typeof ack.client_event_id).toBe("string");
    expect(typeof ack.event_id).toBe("string");
    const err = load<Extract<ServerFrame, { type: "error" }>>("ws_server_error_for_event");
    expect(err).toMatchObject({ type: "error", code: "not_author" });
    expect(typeof err.client_event_id).toBe("string");
    const codes = load<Record<string, string>>("ws_error_codes");
    for (const c of ["not_author", "message_deleted", "invalid_emoji", "invalid_client_event_id"]) expect(codes[c]).toBe(c);
  });
});

describe.skipIf(Object.keys(FILES).length === 0)("wire fixtures of channels, the conversation list and read state", () => {
  it("a group channel names its creator; a direct conversation does not", () => {
    const group = load<Channel>("rest_channel_group");
    expect(group).toMatchObject({ kind: "group", created_by: ALICE });
    const direct = load<Channel>("rest_channel_direct");
    expect(direct.kind).toBe("direct");
    expect(direct.created_by).toBeUndefined();
    const { channels } = load<{ channels: Channel[] }>("rest_channel_list");
    expect(channels.find((c) => c.kind === "group")?.created_by).toBe(ALICE);
  });

  it("the conversation list brings read marks and counts the client starts from", () => {
    const { channels } = load<{ channels: Channel[] }>("rest_conversation_list");
    const [general, dm] = channels;
    expect(general).toMatchObject({ created_by: ALICE, head_seq: 2, read_seq: 1, unread_count: 1, mention_count: 1 });
    expect(general.last_message).toMatchObject({ seq: 2, sender_id: BOB });
    expect(dm).toMatchObject({ kind: "direct", last_message: null, head_seq: 0, unread_count: 0 });
    expect(dm.created_by).toBeUndefined();
    const mark = markFromList(undefined, general);
    expect(mark).toEqual({ seq: 1, listed: { read: 1, head: 2, unread: 1, mentions: 1 } });
    expect(unreadOf(mark, undefined, ALICE)).toEqual({ count: 1, mentions: 1 });
    expect(unreadOf(markFromList(undefined, dm), undefined, ALICE)).toEqual({ count: 0, mentions: 0 });
  });

  it("mark_read and read frames are as the client builds and reads them", () => {
    const mark = load<Extract<ClientFrame, { type: "mark_read" }>>("ws_client_mark_read");
    expect(mark).toEqual({ type: "mark_read", channel_id: mark.channel_id, seq: 2 });
    const read = load<Extract<ServerFrame, { type: "read" }>>("ws_server_read");
    expect(read).toMatchObject({ type: "read", seq: 2 });
    expect(typeof read.channel_id).toBe("string");
  });
});

describe.skipIf(Object.keys(FILES).length === 0)("wire fixtures of app_state", () => {
  it("the client builds the app_state frame exactly as the fixture shows it", () => {
    const f = load<Extract<ClientFrame, { type: "app_state" }>>("ws_client_app_state");
    expect(f).toEqual({ type: "app_state", state: "background" });
    expect(appStateFrame(f.state)).toEqual(f);
    // What a hidden tab sends on a fresh connection.
    expect(appStateToSend("background", undefined)).toEqual(f);
  });
});

describe.skipIf(Object.keys(FILES).length === 0)("wire fixtures of attachments", () => {
  it("the client builds the send frame with attachments exactly as the fixture shows it", () => {
    const f = load<Extract<ClientFrame, { type: "send" }>>("ws_client_send_attachments");
    const ids = f.attachments ?? [];
    expect(ids).toHaveLength(2);
    const out: Outgoing = {
      client_msg_id: f.client_msg_id,
      channel_id: f.channel_id,
      sender_id: ALICE,
      body: f.body,
      created_at: "2025-01-15T09:32:12Z",
      status: "sending",
      attachments: ids.map((id) => ({ id, name: "x", content_type: "text/plain", size: 1 })),
    };
    expect(sendFrame(out)).toEqual(f);
    // Without attachments the field is absent, as the server omits an empty list.
    const { attachments: _a, ...plain } = out;
    expect(sendFrame(plain)).not.toHaveProperty("attachments");
  });

  it("decodes messages with attachments, live and in history, and shows them as the server describes them", () => {
    const live = load<Extract<ServerFrame, { type: "message" }>>("ws_server_message_attachments");
    const history = load<Message>("rest_message_with_attachments");
    for (const m of [live.message, history]) {
      expect(m.body).toBe("");
      const [photo, pdf] = m.attachments ?? [];
      expect(photo).toEqual({
        id: photo.id,
        name: "IMG_0042.jpg",
        content_type: "image/jpeg",
        size: 2483921,
        width: 3024,
        height: 4032,
      });
      expect(isInlineImage(photo)).toBe(true);
      expect(imageBox(photo.width ?? 0, photo.height ?? 0)).toEqual({ width: 240, height: 320 }); // upright, portrait
      expect(isInlineImage(pdf)).toBe(false);
      expect(pdf.width).toBeUndefined();
      expect(messagePreview(m)).toBe("📎 IMG_0042.jpg and 1 more file");
    }
    // The live copy and the history copy are the same message: shown once, with its files.
    let tl = mergeMessages(emptyTimeline(), [live.message]);
    tl = mergeMessages(tl, [history], 43);
    expect(tl.placed).toHaveLength(1);
    expect(tl.placed[0].attachments).toHaveLength(2);
    // Deleted: the tombstone has no files.
    const del = {
      id: "e-del",
      channel_id: live.message.channel_id,
      seq: 44,
      actor_id: ALICE,
      message_id: live.message.id,
      message_seq: 43,
      client_event_id: "ce",
      created_at: "2025-01-15T09:40:00Z",
      kind: "deleted",
    } as ChannelEvent;
    tl = applyEvent(tl, del, ALICE);
    expect(tl.placed[0]).toMatchObject({ deleted: true, body: "" });
    expect(tl.placed[0].attachments).toBeUndefined();
  });

  it("the upload calls: the declaration the client makes, then its answers read by the state machine", () => {
    const declared = load<{ name: string; content_type: string; size: number }>("rest_create_attachment");
    let u = newUpload("k", "c", { name: declared.name, size: declared.size, type: declared.content_type });
    expect({ name: u.name, content_type: u.content_type, size: u.size }).toEqual(declared);
    const created = load<AttachmentUpload>("rest_attachment_upload");
    expect(created.upload.method).toBe("PUT");
    expect(created.upload.headers["content-type"]).toBe(declared.content_type);
    u = advance(u, { type: "target", answer: created });
    expect(u).toMatchObject({ stage: "uploading", id: created.id });
    u = advance(u, { type: "stored", status: 200 });
    const complete = load<Attachment>("rest_attachment");
    expect(complete.state).toBe("ready");
    u = advance(u, { type: "completed", attachment: complete });
    expect(u.attachment).toEqual({
      id: complete.id,
      name: "IMG_0042.jpg",
      content_type: "image/jpeg",
      size: 2483921,
      width: 3024,
      height: 4032,
    });
    const pending = load<Attachment>("rest_attachment_pending");
    expect(pending).toMatchObject({ state: "pending", content_type: "application/pdf" });
    expect(pending.width).toBeUndefined();
  });

  it("download links: the thumbnail when there is one, else the file", () => {
    const withThumb = load<AttachmentLink>("rest_attachment_link");
    expect(imageSource(withThumb, 0)).toEqual({ src: withThumb.thumbnail_url });
    const plain = load<AttachmentLink>("rest_attachment_link_no_thumbnail");
    expect(plain.thumbnail_url).toBeUndefined();
    expect(imageSource(plain, 0)).toEqual({ src: plain.url });
    expect(plain.expires_in).toBe(300);
  });

  it("knows the error codes of attachments in words, and the contract's limits", () => {
    const ws = load<Record<string, string>>("ws_error_codes");
    expect(ws.invalid_attachment).toBe("invalid_attachment");
    expect(describeError("invalid_attachment")).toMatch(/can't be sent/);
    const rest = load<Record<string, string>>("rest_error_codes");
    for (const c of [
      "attachment_too_large",
      "unsupported_type",
      "too_many_uploads",
      "unknown_attachment",
      "upload_incomplete",
      "upload_mismatch",
    ]) {
      expect(rest[c]).toBe(c);
      expect(uploadErrorText(409, c)).not.toMatch(/conflicts|Something went wrong/);
    }
    const limits = load<Record<string, number>>("limits");
    expect(limits.attachments_per_message_max).toBe(Limits.ATTACHMENTS_PER_MESSAGE_MAX);
    expect(limits.body_max_chars).toBe(Limits.BODY_MAX_CHARS);
    expect(ATTACHMENT_TYPES).toEqual(load<string[]>("attachment_types"));
  });
});
