import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AppState, ChatApp, ChannelView } from "../app/client";
import { overlayChanges, type PendingChange } from "../lib/changes";
import { describe } from "../lib/errors";
import { emptyTimeline, findMessage, hasOlder, timelineItems, type TimelineItem } from "../lib/messages";
import { ACCEPTED_IN_WORDS, messagePreview, replyPreview } from "../lib/attachments";
import { mentionsMe } from "../lib/mentions";
import { timelineRows } from "../lib/rows";
import type { Channel, Message } from "../lib/types";
import { ATTACHMENT_TYPES, Limits } from "../lib/types";
import { captionOf, composeProblem, type Upload } from "../lib/uploads";
import { charCount } from "../lib/validate";
import { presenceText, typingIn, typingLine } from "../lib/ephemeral";
import { longTime, shortTime } from "./format";
import { go, href } from "./route";
import { IconBack, IconPaperclip } from "./icons";
import { MessageAttachments, UploadChips } from "./Attachments";
import { Body, EditBox, EmojiPicker, Reactions, ReplyQuote } from "./MessageParts";

const drafts = new Map<string, string>();
const NEAR_BOTTOM_PX = 48;
const NEAR_TOP_PX = 160;
const NO_CHANGES: PendingChange[] = [];
const NO_UPLOADS: Upload[] = [];
/** What the file picker offers: the types the server accepts (and their usual extensions, for
 * systems that know a file only by its name). */
const ACCEPT = [...ATTACHMENT_TYPES, ".jpg", ".jpeg", ".png", ".gif", ".webp", ".pdf", ".txt", ".zip", ".mp4", ".mp3", ".m4a"].join(",");

/** Whether a drag carries files (not text or a link being dragged around the page). */
const draggingFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes("Files");

/** Cut for the words of a button or a dialog. */
const short = (text: string) => (text.length > 40 ? `${text.slice(0, 40)}…` : text);

const emptyView: ChannelView = {
  tl: emptyTimeline(),
  loadedNewest: false,
  loadingNewest: false,
  loadingOlder: false,
};

function senderOf(it: TimelineItem): string {
  return it.kind === "message" ? it.message.sender_id : it.outgoing.sender_id;
}
function timeOf(it: TimelineItem): string {
  return it.kind === "message" ? it.message.created_at : it.outgoing.created_at;
}

/** The buttons of a failed message go away once used: keep the focus somewhere useful. */
const focusComposer = () => document.getElementById("composer-input")?.focus();

/** The DOM id of a message's list item (the target of "go to the original"). */
const domId = (messageId: string) => `msg-${messageId}`;

/** Focus a control of a message (or the message itself) once it is rendered again. */
function focusLater(messageId: string, selector?: string): void {
  requestAnimationFrame(() => {
    const li = document.getElementById(domId(messageId));
    ((selector ? li?.querySelector<HTMLElement>(selector) : null) ?? li)?.focus();
  });
}

export interface ItemProps {
  app: ChatApp;
  item: TimelineItem;
  channelId: string;
  myId: string;
  myUsername?: string;
  compact: boolean;
  connected: boolean;
  /** Our pending changes of this message. */
  changes: PendingChange[];
  editing: boolean;
  pickerOpen: boolean;
  lookup: (id: string) => Message | undefined;
  onReply: (m: Message) => void;
  onEdit: (id: string | null) => void;
  onPicker: (id: string | null) => void;
  onJump: (id: string) => void;
}

export function MessageItem({
  app,
  item,
  channelId,
  myId,
  myUsername,
  compact,
  connected,
  changes,
  editing,
  pickerOpen,
  lookup,
  onReply,
  onEdit,
  onPicker,
  onJump,
}: ItemProps) {
  const sender = senderOf(item);
  const mine = sender === myId;
  const name = mine ? "You" : app.nameOf(sender);
  const at = timeOf(item);
  const whose = (id: string) => (id === myId ? "You" : app.nameOf(id));
  if (item.kind === "message") {
    const m = item.message;
    const { message: shown, saving, deleting } = overlayChanges(m, changes);
    const deleted = shown.deleted === true;
    const editedAt = !deleted && shown.edited_at ? shown.edited_at : undefined;
    // Changes need the message stored: one known only from its ack waits for its place.
    const placed = typeof m.seq === "number";
    const canEdit = placed && mine && !deleted && !deleting;
    const canDelete = placed && !deleting && app.canDelete(channelId, m);
    // The server's word: `mentions` holds the members the body names (a pending edit keeps the old ones).
    const mentioned = mentionsMe(shown, myId);
    const pickerId = `picker-${m.id}`;
    const quote = short(messagePreview(shown));
    // A tombstone has no files (the server drops them too).
    const files = deleted ? [] : shown.attachments ?? [];
    return (
      <li
        id={domId(m.id)}
        tabIndex={-1}
        class={`msg${mine ? " msg--mine" : ""}${compact ? " msg--compact" : ""}${deleted ? " msg--deleted" : ""}${
          deleting ? " msg--pending" : ""
        }${mentioned ? " msg--mentions-me" : ""}`}
        data-id={m.id}
        data-seq={m.seq ?? undefined}
        data-client-msg-id={m.client_msg_id}
        data-status="sent"
        data-deleted={deleted ? "true" : undefined}
        data-edited={editedAt ? "true" : undefined}
        onKeyDown={
          pickerOpen
            ? (e: KeyboardEvent) => {
                if (e.key !== "Escape") return;
                e.preventDefault();
                onPicker(null);
                focusLater(m.id, ".msg-action-react");
              }
            : undefined
        }
      >
        <p class={`msg-meta${compact ? " sr-only" : ""}`}>
          <span class="msg-sender" dir="auto">
            {name}
          </span>{" "}
          <time dateTime={m.created_at} title={longTime(m.created_at)}>
            {shortTime(m.created_at)}
          </time>
          {mentioned && <span class="sr-only msg-mentions-note">, mentions you</span>}
          {saving && <span class="msg-state"> Saving…</span>}
          {deleting && <span class="msg-state"> Deleting…</span>}
        </p>
        {shown.reply_to && !deleted && (
          <ReplyQuote
            reply={{ ...shown.reply_to, preview: replyPreview(shown.reply_to, lookup(shown.reply_to.id)) }}
            senderName={whose(shown.reply_to.sender_id)}
            onJump={onJump}
          />
        )}
        {deleted ? (
          <p class="msg-tombstone">Message deleted</p>
        ) : editing ? (
          <EditBox
            initial={shown.body}
            onSave={(body) => {
              app.edit(channelId, m.id, body);
              onEdit(null);
              focusLater(m.id, ".msg-action-edit");
            }}
            onCancel={() => {
              onEdit(null);
              focusLater(m.id, ".msg-action-edit");
            }}
          />
        ) : shown.body || files.length === 0 ? (
          <div class="msg-text">
            <p class="msg-body" dir="auto">
              <Body text={shown.body} myUsername={mentioned ? myUsername : undefined} />
            </p>
            {editedAt && (
              <span class="msg-edited" title={`Edited ${longTime(editedAt)}`}>
                (edited)<span class="sr-only"> {longTime(editedAt)}</span>
              </span>
            )}
          </div>
        ) : null}
        {files.length > 0 && <MessageAttachments app={app} channelId={channelId} attachments={files} />}
        {!deleted && shown.reactions && shown.reactions.length > 0 && (
          <Reactions
            reactions={shown.reactions}
            disabled={!placed}
            onToggle={(emoji) => app.toggleReaction(channelId, m.id, emoji)}
          />
        )}
        {!deleted && !editing && placed && (
          <div class="msg-actions" role="group" aria-label={`Actions for the message from ${name}`}>
            <button type="button" class="msg-action msg-action-reply" onClick={() => onReply(m)}>
              Reply<span class="sr-only"> to {name === "You" ? "your message" : name}</span>
            </button>
            <button
              type="button"
              class="msg-action msg-action-react"
              aria-expanded={pickerOpen}
              aria-controls={pickerOpen ? pickerId : undefined}
              onClick={() => onPicker(pickerOpen ? null : m.id)}
            >
              React<span class="sr-only"> to this message</span>
            </button>
            {canEdit && (
              <button type="button" class="msg-action msg-action-edit" onClick={() => onEdit(m.id)}>
                Edit<span class="sr-only"> your message</span>
              </button>
            )}
            {canDelete && (
              <button
                type="button"
                class="msg-action msg-action-delete"
                onClick={() => {
                  const what = quote ? ` “${quote}”` : "";
                  if (!window.confirm(`Delete this message${what}? Everyone will see “Message deleted” in its place.`)) {
                    return;
                  }
                  app.deleteMessage(channelId, m.id);
                  focusLater(m.id);
                }}
              >
                Delete<span class="sr-only"> {mine ? "your message" : `the message from ${name}`}</span>
              </button>
            )}
          </div>
        )}
        {pickerOpen && !deleted && (
          <EmojiPicker
            id={pickerId}
            onPick={(emoji) => {
              app.toggleReaction(channelId, m.id, emoji);
              onPicker(null);
              focusLater(m.id, ".msg-action-react");
            }}
            onClose={() => {
              onPicker(null);
              focusLater(m.id, ".msg-action-react");
            }}
          />
        )}
      </li>
    );
  }
  const o = item.outgoing;
  const failed = o.status === "failed";
  const statusText = failed ? "Not sent" : connected ? "Sending…" : "Waiting for connection…";
  const original = o.reply_to ? lookup(o.reply_to) : undefined;
  return (
    <li
      class={`msg msg--mine msg--pending${failed ? " msg--failed" : ""}`}
      data-client-msg-id={o.client_msg_id}
      data-status={o.status}
    >
      <p class="msg-meta">
        <span class="msg-sender" dir="auto">
          {name}
        </span>{" "}
        <time dateTime={at} title={longTime(at)}>
          {shortTime(at)}
        </time>{" "}
        <span class="msg-state">{statusText}</span>
      </p>
      {original && (
        <ReplyQuote
          reply={{
            id: original.id,
            seq: original.seq ?? 0,
            sender_id: original.sender_id,
            preview: original.deleted ? "" : messagePreview(original),
            deleted: original.deleted,
          }}
          senderName={whose(original.sender_id)}
          onJump={onJump}
        />
      )}
      {(o.body || !o.attachments?.length) && (
        <p class="msg-body" dir="auto">
          <Body text={o.body} />
        </p>
      )}
      {o.attachments && o.attachments.length > 0 && (
        <MessageAttachments app={app} channelId={o.channel_id} attachments={o.attachments} />
      )}
      {failed && (
        <div class="msg-failed" role="alert">
          <span>{o.error ?? "The message was not sent."}</span>{" "}
          <button
            type="button"
            class="small"
            onClick={() => {
              app.retry(o.channel_id, o.client_msg_id);
              focusComposer();
            }}
          >
            Retry<span class="sr-only"> sending “{short(messagePreview(o))}”</span>
          </button>{" "}
          <button type="button" class="small link" onClick={() => {
              app.discard(o.channel_id, o.client_msg_id);
              focusComposer();
            }}
          >
            Discard
          </button>
        </div>
      )}
    </li>
  );
}

export function Conversation({
  app,
  state,
  channel,
  narrow,
}: {
  app: ChatApp;
  state: AppState;
  channel: Channel;
  narrow: boolean;
}) {
  const view = state.views[channel.id] ?? emptyView;
  const items = useMemo(() => timelineItems(view.tl), [view.tl]);
  const older = hasOlder(view.tl) && !view.olderExhausted;
  const myId = state.me?.id ?? "";
  const lineAfter = state.readLine[channel.id];
  const rows = useMemo(
    () => timelineRows(items, { myId, lineAfter, known: view.tl.known }),
    [items, myId, lineAfter, view.tl.known],
  );
  const connected = state.conn.status === "connected";

  const scroller = useRef<HTMLDivElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const atBottom = useRef(true);
  const fromBottom = useRef(0);
  const firstKey = useRef<string | undefined>(undefined);
  const lastKey = useRef<string | undefined>(undefined);
  /** The "new since you last read" line was shown (and scrolled to) in this conversation. */
  const lineShown = useRef(false);
  const [showJump, setShowJump] = useState(false);
  const [draft, setDraft] = useState(drafts.get(channel.id) ?? "");
  const [composeError, setComposeError] = useState<string | null>(null);
  const [leaving, setLeaving] = useState(false);
  const [replyToId, setReplyToId] = useState<string | null>(null);
  const [editingId, setEditingId] = useState<string | null>(null);
  const [pickerId, setPickerId] = useState<string | null>(null);
  /** Something to say about files just added (too many), until the next change. */
  const [attachNote, setAttachNote] = useState<string | null>(null);
  /** Files are dragged over the conversation. */
  const [dropping, setDropping] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const myUsername = state.me?.username;
  const uploads = state.uploads[channel.id] ?? NO_UPLOADS;

  // Our pending changes, by message.
  const changesByMessage = useMemo(() => {
    const out = new Map<string, PendingChange[]>();
    for (const c of state.changes) {
      if (c.channel_id !== channel.id) continue;
      const list = out.get(c.message_id);
      if (list) list.push(c);
      else out.set(c.message_id, [c]);
    }
    return out;
  }, [state.changes, channel.id]);

  const lookup = (id: string) => findMessage(view.tl, id);
  const replyTo = replyToId ? lookup(replyToId) : undefined;

  const startReply = (m: Message) => {
    setReplyToId(m.id);
    setPickerId(null);
    input.current?.focus();
  };
  const cancelReply = () => {
    setReplyToId(null);
    input.current?.focus();
  };

  /** Scrolls to a message (the original of a reply) and puts the focus on it, if it is loaded. */
  const jumpTo = (id: string) => {
    const el = document.getElementById(domId(id));
    if (!el) {
      app.notify("The original message is not loaded. Load older messages to see it.", "info", 5000);
      return;
    }
    el.scrollIntoView({ block: "center" });
    el.focus({ preventScroll: true });
    el.classList.add("msg--flash");
    setTimeout(() => el.classList.remove("msg--flash"), 1600);
  };

  // A different conversation: start at the bottom, restore its draft, move focus into it.
  useEffect(() => {
    atBottom.current = true;
    firstKey.current = lastKey.current = undefined;
    lineShown.current = false;
    setShowJump(false);
    setDraft(drafts.get(channel.id) ?? "");
    setComposeError(null);
    setAttachNote(null);
    setDropping(false);
    if (narrow) heading.current?.focus();
    else input.current?.focus();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [channel.id]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const first = items[0]?.key;
    const last = items[items.length - 1]?.key;
    const prepended = firstKey.current !== undefined && first !== firstKey.current && last === lastKey.current;
    const appended = last !== lastKey.current;
    const lastItem = items[items.length - 1];
    const mineAppended = appended && lastItem !== undefined && lastItem.kind === "outgoing";
    if (atBottom.current || mineAppended) {
      el.scrollTop = el.scrollHeight;
      atBottom.current = true;
      setShowJump(false);
    } else if (prepended) {
      el.scrollTop = el.scrollHeight - fromBottom.current;
    } else if (appended && lastKey.current !== undefined) {
      setShowJump(true);
    }
    // The first time the "new since you last read" line shows, start reading there rather than
    // at the bottom, unless the person has scrolled up already.
    const line = el.querySelector<HTMLElement>(".unread-line");
    if (line && !lineShown.current) {
      lineShown.current = true;
      const offset = line.getBoundingClientRect().top - el.getBoundingClientRect().top;
      if (atBottom.current && offset < 0) {
        el.scrollTop += offset - 8;
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
      }
    }
    firstKey.current = first;
    lastKey.current = last;
    fromBottom.current = el.scrollHeight - el.scrollTop;
    // Not enough to scroll yet: fetch older pages until there is.
    if (older && !view.loadingOlder && !view.error && el.scrollHeight <= el.clientHeight + NEAR_TOP_PX) {
      void app.loadOlder(channel.id);
    }
  }, [items, rows, older, view.loadingOlder, view.error, channel.id, app]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    fromBottom.current = el.scrollHeight - el.scrollTop;
    if (atBottom.current) setShowJump(false);
    if (el.scrollTop < NEAR_TOP_PX && older && !view.loadingOlder && !view.error) void app.loadOlder(channel.id);
  };

  const jumpToEnd = () => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
    atBottom.current = true;
    setShowJump(false);
    input.current?.focus();
  };

  const setAndKeep = (v: string) => {
    setDraft(v);
    drafts.set(channel.id, v);
    if (composeError) setComposeError(null);
  };

  const autoGrow = (el: HTMLTextAreaElement) => {
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
  };

  const submit = () => {
    const problem = composeProblem(draft, uploads);
    if (problem) {
      setComposeError(problem);
      input.current?.focus();
      return;
    }
    const files = app.takeUploads(channel.id);
    app.send(channel.id, files.length ? captionOf(draft) : draft, replyTo && !replyTo.deleted ? replyTo.id : undefined, files);
    setReplyToId(null);
    setAttachNote(null);
    setAndKeep("");
    if (input.current) {
      input.current.value = "";
      autoGrow(input.current);
      input.current.focus();
    }
  };

  /** Files from the picker, a paste or a drop: checked and uploaded, each as a chip. */
  const attach = (files: ArrayLike<File> | null | undefined) => {
    if (!files || files.length === 0) return;
    const { leftOut } = app.attach(channel.id, files);
    setComposeError(null);
    setAttachNote(
      leftOut > 0
        ? `A message carries at most ${Limits.ATTACHMENTS_PER_MESSAGE_MAX} files: ${leftOut} ${leftOut === 1 ? "was" : "were"} left out.`
        : null,
    );
  };

  const onPaste = (e: ClipboardEvent) => {
    const files = e.clipboardData?.files;
    if (!files || files.length === 0) return; // text: the textarea takes it
    e.preventDefault();
    attach(files);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === "Escape" && replyToId) {
      e.preventDefault();
      cancelReply();
    }
  };

  const leave = async () => {
    if (!window.confirm(`Leave ${channel.name}? You can join it again later.`)) return;
    setLeaving(true);
    try {
      await app.leave(channel.id);
      go({ name: "home" });
    } catch (e) {
      app.notify(describe(e));
      setLeaving(false);
    }
  };

  const title = channel.kind === "direct" ? channel.name : `#${channel.name}`;
  const now = Date.now();
  const typers = typingIn(state.typing, channel.id, now).map((u) => app.nameOf(u));
  const peer = channel.kind === "direct" ? app.dmPeer(channel.id) : undefined;
  const peerPresence = peer ? state.presence[peer] : undefined;
  const members = channel.kind === "group" ? state.channelMembers[channel.id] : undefined;
  const onlineMembers = members ? members.filter((u) => state.presence[u]?.online) : [];
  const count = charCount(draft);
  const nearLimit = count > Limits.BODY_MAX_CHARS - 200;
  const canSend = composeProblem(draft, uploads) === null;
  const full = uploads.length >= Limits.ATTACHMENTS_PER_MESSAGE_MAX;
  // "Wait until the files have finished uploading" is moot once they have.
  useEffect(() => {
    if (canSend && composeError) setComposeError(null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [canSend]);

  return (
    <section
      class={`conversation${dropping ? " conversation--dropping" : ""}`}
      aria-labelledby="conv-title"
      onDragEnter={(e: DragEvent) => {
        if (draggingFiles(e)) setDropping(true);
      }}
      onDragOver={(e: DragEvent) => {
        if (!draggingFiles(e)) return;
        e.preventDefault(); // a drop target
        if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
        if (!dropping) setDropping(true);
      }}
      onDragLeave={(e: DragEvent) => {
        // Leaving for a child is no leaving.
        const to = e.relatedTarget as Node | null;
        if (!to || !(e.currentTarget as Node).contains(to)) setDropping(false);
      }}
      onDrop={(e: DragEvent) => {
        if (!draggingFiles(e)) return;
        e.preventDefault(); // or the browser opens the file instead of the page
        setDropping(false);
        attach(e.dataTransfer?.files);
        input.current?.focus();
      }}
    >
      {dropping && (
        <div class="drop-hint" aria-hidden="true">
          Drop files to attach them
        </div>
      )}
      <header class="conv-header">
        {narrow && (
          <a class="back" href={href({ name: "home" })}>
            <IconBack />
            <span class="sr-only">Back to conversations</span>
          </a>
        )}
        <div class="conv-titles">
          <h2 id="conv-title" ref={heading} tabIndex={-1} dir="auto">
            {title}
          </h2>
          <p class="conv-desc">
            {channel.kind === "direct" ? (
              peerPresence ? (
                <span class="presence-text" data-presence={peerPresence.online ? "online" : "offline"}>
                  <span class={`presence-dot${peerPresence.online ? " is-online" : ""}`} aria-hidden="true" />
                  {presenceText(peerPresence, now)}
                </span>
              ) : (
                "Direct message"
              )
            ) : channel.description ? (
              <span dir="auto">{channel.description}</span>
            ) : (
              "Group channel"
            )}
          </p>
          {members && (
            <details class="member-presence">
              <summary>
                {members.length} member{members.length === 1 ? "" : "s"}, {onlineMembers.length} online
              </summary>
              <ul>
                {members.map((u) => {
                  const p = state.presence[u];
                  return (
                    <li key={u} data-user-id={u} data-presence={p?.online ? "online" : "offline"}>
                      <span class={`presence-dot${p?.online ? " is-online" : ""}`} aria-hidden="true" />
                      <span dir="auto">{u === myId ? "You" : app.nameOf(u)}</span>
                      <span class="muted small"> {presenceText(p, now)}</span>
                    </li>
                  );
                })}
              </ul>
            </details>
          )}
        </div>
        {channel.kind === "group" && (
          <button type="button" class="small" onClick={leave} disabled={leaving}>
            {leaving ? "Leaving…" : "Leave"}
            <span class="sr-only"> {title}</span>
          </button>
        )}
      </header>

      <div class="scroller" ref={scroller} onScroll={onScroll} tabIndex={0} aria-label={`Messages in ${title}`}>
        <div class="history-top">
          {older ? (
            <button type="button" class="link" onClick={() => app.loadOlder(channel.id)} disabled={view.loadingOlder}>
              {view.loadingOlder ? "Loading older messages…" : "Load older messages"}
            </button>
          ) : view.olderExhausted ? (
            <p class="muted small">Older messages are not available.</p>
          ) : view.loadedNewest && items.length > 0 ? (
            <p class="muted small">This is the beginning of {title}.</p>
          ) : null}
          {view.loadingNewest && !view.loadedNewest && (
            <p class="muted small" role="status">
              Loading messages…
            </p>
          )}
          {view.error && (
            <p class="error small" role="alert">
              {view.error}{" "}
              <button
                type="button"
                class="small"
                onClick={() => (view.loadedNewest ? app.loadOlder(channel.id) : app.loadNewest(channel.id))}
              >
                Try again
              </button>
            </p>
          )}
        </div>
        {view.loadedNewest && items.length === 0 && <p class="empty muted">No messages yet. Say hello!</p>}
        <ol class="messages" aria-label="Messages">
          {rows.map((r) => {
            if (r.kind === "day") {
              return (
                <li key={r.key} class="day-sep" data-day={r.day}>
                  <h3 class="day-sep-label">
                    <time dateTime={r.day}>{r.label}</time>
                  </h3>
                </li>
              );
            }
            if (r.kind === "unread") {
              return (
                <li key={r.key} class="unread-line">
                  <span class="unread-line-label">New since you last read</span>
                </li>
              );
            }
            const it = r.item;
            const mid = it.kind === "message" ? it.message.id : "";
            return (
              <MessageItem
                key={it.key}
                app={app}
                item={it}
                channelId={channel.id}
                myId={myId}
                myUsername={myUsername}
                compact={r.compact}
                connected={connected}
                changes={changesByMessage.get(mid) ?? NO_CHANGES}
                editing={editingId !== null && editingId === mid}
                pickerOpen={pickerId !== null && pickerId === mid}
                lookup={lookup}
                onReply={startReply}
                onEdit={(id) => {
                  setEditingId(id);
                  if (id) setPickerId(null);
                }}
                onPicker={setPickerId}
                onJump={jumpTo}
              />
            );
          })}
        </ol>
      </div>
      <p class="typing-line muted small" aria-live="polite" data-typing={typers.length}>
        {typingLine(typers)}
      </p>
      {showJump && (
        <button type="button" class="jump" onClick={jumpToEnd}>
          New messages <span aria-hidden="true">↓</span>
        </button>
      )}

      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        {replyTo && (
          <div class="replying" id="replying">
            <span class="replying-text">
              Replying to <strong dir="auto">{replyTo.sender_id === myId ? "yourself" : app.nameOf(replyTo.sender_id)}</strong>
              {": "}
              <span class="replying-preview" dir="auto">{replyTo.deleted ? "Message deleted" : messagePreview(replyTo)}</span>
            </span>
            <button type="button" class="link small" onClick={cancelReply}>
              Cancel reply
            </button>
          </div>
        )}
        <UploadChips
          uploads={uploads}
          onRemove={(key) => {
            app.removeUpload(channel.id, key);
            setAttachNote(null);
            input.current?.focus();
          }}
          onRetry={(key) => app.retryUpload(channel.id, key)}
        />
        <input
          id="composer-file"
          ref={fileInput}
          type="file"
          multiple
          accept={ACCEPT}
          class="sr-only"
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => {
            attach(e.currentTarget.files);
            e.currentTarget.value = ""; // the same file may be picked again
            input.current?.focus();
          }}
        />
        <button
          type="button"
          class="attach"
          aria-label="Attach files"
          title={`Attach files: up to ${Limits.ATTACHMENTS_PER_MESSAGE_MAX}, ${Limits.ATTACHMENT_MAX_BYTES / (1024 * 1024)} MB each`}
          aria-describedby="composer-files-hint"
          disabled={full}
          onClick={() => fileInput.current?.click()}
        >
          <IconPaperclip />
        </button>
        <label for="composer-input" class="sr-only">
          Message {title}
        </label>
        <textarea
          id="composer-input"
          ref={input}
          rows={1}
          dir="auto"
          value={draft}
          placeholder={`Message ${title}`}
          aria-invalid={composeError ? true : undefined}
          aria-describedby={`${replyTo ? "replying " : ""}${composeError ? "composer-error" : "composer-hint"}`}
          onInput={(e) => {
            setAndKeep(e.currentTarget.value);
            autoGrow(e.currentTarget);
            app.typed(channel.id, e.currentTarget.value);
          }}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
        />
        <button type="submit" class="primary" disabled={!canSend}>
          Send
        </button>
        <p id="composer-hint" class="sr-only">
          Enter sends; Shift and Enter starts a new line; Escape cancels a reply. Files can be pasted or dropped here too.
        </p>
        <p id="composer-files-hint" class="sr-only">
          Up to {Limits.ATTACHMENTS_PER_MESSAGE_MAX} files per message, at most {Limits.ATTACHMENT_MAX_BYTES / (1024 * 1024)} MB
          each: {ACCEPTED_IN_WORDS}.
        </p>
        {attachNote && (
          <p class="error small composer-note" role="alert">
            {attachNote}
          </p>
        )}
        {(composeError || nearLimit) && (
          <p id="composer-error" class={composeError ? "error small composer-note" : "muted small composer-note"} role={composeError ? "alert" : undefined}>
            {composeError ?? `${count} / ${Limits.BODY_MAX_CHARS} characters`}
          </p>
        )}
      </form>
    </section>
  );
}
