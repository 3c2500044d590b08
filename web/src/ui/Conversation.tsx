import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AppState, ChatApp, ChannelView } from "../app/client";
import { describe } from "../lib/errors";
import { emptyTimeline, hasOlder, timelineItems, type TimelineItem } from "../lib/messages";
import type { Channel } from "../lib/types";
import { Limits } from "../lib/types";
import { bodyProblem, charCount } from "../lib/validate";
import { presenceText, typingIn, typingLine } from "../lib/ephemeral";
import { longTime, shortTime } from "./format";
import { go, href } from "./route";
import { IconBack } from "./icons";

const drafts = new Map<string, string>();
const NEAR_BOTTOM_PX = 48;
const NEAR_TOP_PX = 160;
const GROUP_MS = 5 * 60_000;

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

function MessageItem({
  app,
  item,
  myId,
  compact,
  connected,
}: {
  app: ChatApp;
  item: TimelineItem;
  myId: string;
  compact: boolean;
  connected: boolean;
}) {
  const sender = senderOf(item);
  const mine = sender === myId;
  const name = mine ? "You" : app.nameOf(sender);
  const at = timeOf(item);
  if (item.kind === "message") {
    const m = item.message;
    return (
      <li
        class={`msg${mine ? " msg--mine" : ""}${compact ? " msg--compact" : ""}`}
        data-id={m.id}
        data-seq={m.seq ?? undefined}
        data-client-msg-id={m.client_msg_id}
        data-status="sent"
      >
        <p class={`msg-meta${compact ? " sr-only" : ""}`}>
          <span class="msg-sender">{name}</span>{" "}
          <time dateTime={m.created_at} title={longTime(m.created_at)}>
            {shortTime(m.created_at)}
          </time>
        </p>
        <p class="msg-body">{m.body}</p>
      </li>
    );
  }
  const o = item.outgoing;
  const failed = o.status === "failed";
  const statusText = failed ? "Not sent" : connected ? "Sending…" : "Waiting for connection…";
  return (
    <li
      class={`msg msg--mine msg--pending${failed ? " msg--failed" : ""}`}
      data-client-msg-id={o.client_msg_id}
      data-status={o.status}
    >
      <p class="msg-meta">
        <span class="msg-sender">{name}</span>{" "}
        <time dateTime={at} title={longTime(at)}>
          {shortTime(at)}
        </time>{" "}
        <span class="msg-state">{statusText}</span>
      </p>
      <p class="msg-body">{o.body}</p>
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
            Retry<span class="sr-only"> sending “{o.body.slice(0, 40)}”</span>
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
  const connected = state.conn.status === "connected";

  const scroller = useRef<HTMLDivElement>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const atBottom = useRef(true);
  const fromBottom = useRef(0);
  const firstKey = useRef<string | undefined>(undefined);
  const lastKey = useRef<string | undefined>(undefined);
  const [showJump, setShowJump] = useState(false);
  const [draft, setDraft] = useState(drafts.get(channel.id) ?? "");
  const [composeError, setComposeError] = useState<string | null>(null);
  const [leaving, setLeaving] = useState(false);

  // A different conversation: start at the bottom, restore its draft, move focus into it.
  useEffect(() => {
    atBottom.current = true;
    firstKey.current = lastKey.current = undefined;
    setShowJump(false);
    setDraft(drafts.get(channel.id) ?? "");
    setComposeError(null);
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
    firstKey.current = first;
    lastKey.current = last;
    fromBottom.current = el.scrollHeight - el.scrollTop;
    // Not enough to scroll yet: fetch older pages until there is.
    if (older && !view.loadingOlder && !view.error && el.scrollHeight <= el.clientHeight + NEAR_TOP_PX) {
      void app.loadOlder(channel.id);
    }
  }, [items, older, view.loadingOlder, view.error, channel.id, app]);

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
    const problem = bodyProblem(draft);
    if (problem) {
      setComposeError(problem);
      input.current?.focus();
      return;
    }
    app.send(channel.id, draft);
    setAndKeep("");
    if (input.current) {
      input.current.value = "";
      autoGrow(input.current);
      input.current.focus();
    }
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
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

  return (
    <section class="conversation" aria-labelledby="conv-title">
      <header class="conv-header">
        {narrow && (
          <a class="back" href={href({ name: "home" })}>
            <IconBack />
            <span class="sr-only">Back to conversations</span>
          </a>
        )}
        <div class="conv-titles">
          <h2 id="conv-title" ref={heading} tabIndex={-1}>
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
            ) : (
              channel.description || "Group channel"
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
                      {u === myId ? "You" : app.nameOf(u)}
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
          {items.map((it, i) => {
            const prev = items[i - 1];
            const compact =
              prev !== undefined &&
              senderOf(prev) === senderOf(it) &&
              it.kind === "message" &&
              prev.kind === "message" &&
              Date.parse(timeOf(it)) - Date.parse(timeOf(prev)) < GROUP_MS;
            return (
              <MessageItem key={it.key} app={app} item={it} myId={myId} compact={compact} connected={connected} />
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
        <label for="composer-input" class="sr-only">
          Message {title}
        </label>
        <textarea
          id="composer-input"
          ref={input}
          rows={1}
          value={draft}
          placeholder={`Message ${title}`}
          aria-invalid={composeError ? true : undefined}
          aria-describedby={composeError ? "composer-error" : "composer-hint"}
          onInput={(e) => {
            setAndKeep(e.currentTarget.value);
            autoGrow(e.currentTarget);
            app.typed(channel.id, e.currentTarget.value);
          }}
          onKeyDown={onKeyDown}
        />
        <button type="submit" class="primary">
          Send
        </button>
        <p id="composer-hint" class="sr-only">
          Enter sends; Shift and Enter starts a new line.
        </p>
        {(composeError || nearLimit) && (
          <p id="composer-error" class={composeError ? "error small composer-note" : "muted small composer-note"} role={composeError ? "alert" : undefined}>
            {composeError ?? `${count} / ${Limits.BODY_MAX_CHARS} characters`}
          </p>
        )}
      </form>
    </section>
  );
}
