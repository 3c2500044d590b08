// Parts of a message in the conversation: its body with @mentions, the quote of the message it
// answers, its reaction chips, the emoji picker, the inline editor.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { splitBody } from "../lib/links";
import type { Reaction, ReplyRef } from "../lib/types";
import { bodyProblem } from "../lib/validate";

/** The reactions offered by the picker, with their names for screen readers. */
export const COMMON_EMOJI: ReadonlyArray<{ emoji: string; name: string }> = [
  { emoji: "👍", name: "thumbs up" },
  { emoji: "❤️", name: "heart" },
  { emoji: "😂", name: "laughing" },
  { emoji: "🎉", name: "party" },
  { emoji: "😮", name: "surprised" },
  { emoji: "😢", name: "sad" },
  { emoji: "🙏", name: "thank you" },
  { emoji: "👀", name: "eyes" },
];

export function emojiName(emoji: string): string {
  return COMMON_EMOJI.find((e) => e.emoji === emoji)?.name ?? emoji;
}

/**
 * A body: mentions marked (`myUsername`'s highlighted: pass it only when the message mentions the
 * current user), http(s) addresses as links that open in a new tab without access to this one.
 */
export function Body({ text, myUsername }: { text: string; myUsername?: string }) {
  const parts = splitBody(text, myUsername);
  if (parts.length === 1 && !parts[0].mention && !parts[0].href) return <>{text}</>;
  return (
    <>
      {parts.map((p, i) =>
        p.href ? (
          <a key={i} class="msg-link" href={p.href} target="_blank" rel="noopener noreferrer">
            {p.text}
          </a>
        ) : p.mention ? (
          p.me ? (
            <mark key={i} class="mention mention--me" title="Mentions you">
              {p.text}
            </mark>
          ) : (
            <span key={i} class="mention">
              {p.text}
            </span>
          )
        ) : (
          p.text
        ),
      )}
    </>
  );
}

/** The message a reply answers, above the reply; a button that goes to it. */
export function ReplyQuote({
  reply,
  senderName,
  onJump,
}: {
  reply: ReplyRef;
  senderName: string;
  onJump: (id: string) => void;
}) {
  const gone = reply.deleted === true;
  return (
    <button
      type="button"
      class={`reply-quote${gone ? " reply-quote--deleted" : ""}`}
      data-reply-to={reply.id}
      title="Go to the original message"
      onClick={() => onJump(reply.id)}
    >
      <span class="sr-only">In reply to </span>
      <span class="reply-sender" dir="auto">
        {senderName}
      </span>
      <span class="sr-only">: </span>
      <span class="reply-preview" dir={gone ? undefined : "auto"}>
        {gone ? "Message deleted" : reply.preview}
      </span>
    </button>
  );
}

/** The reaction chips of a message: each shows its count; a click adds or takes back ours. */
export function Reactions({
  reactions,
  disabled,
  onToggle,
}: {
  reactions: readonly Reaction[];
  disabled?: boolean;
  onToggle: (emoji: string) => void;
}) {
  if (reactions.length === 0) return null;
  return (
    <ul class="reactions" aria-label="Reactions">
      {reactions.map((r) => (
        <li key={r.emoji}>
          <button
            type="button"
            class={`reaction${r.me ? " reaction--me" : ""}`}
            data-emoji={r.emoji}
            aria-pressed={r.me}
            disabled={disabled}
            title={`${emojiName(r.emoji)}: ${r.count} (${r.me ? "click to take yours back" : "click to add yours"})`}
            onClick={() => onToggle(r.emoji)}
          >
            <span class="reaction-emoji">{r.emoji}</span>
            <span class="reaction-count">{r.count}</span>
            <span class="sr-only"> {r.count === 1 ? "reaction" : "reactions"}</span>
          </button>
        </li>
      ))}
    </ul>
  );
}

/** A small row of common emoji; Escape closes it. */
export function EmojiPicker({
  id,
  onPick,
  onClose,
}: {
  id: string;
  onPick: (emoji: string) => void;
  onClose: () => void;
}) {
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => first.current?.focus(), []);
  return (
    <div
      id={id}
      class="emoji-picker"
      role="group"
      aria-label="Choose a reaction"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation();
          onClose();
        }
      }}
    >
      {COMMON_EMOJI.map((e, i) => (
        <button
          key={e.emoji}
          ref={i === 0 ? first : undefined}
          type="button"
          class="emoji-choice"
          aria-label={`React with ${e.name}`}
          title={e.name}
          onClick={() => onPick(e.emoji)}
        >
          {e.emoji}
        </button>
      ))}
      <button type="button" class="link small" onClick={onClose}>
        Close
      </button>
    </div>
  );
}

/** The inline editor of a message: Enter saves, Shift+Enter starts a line, Escape cancels. */
export function EditBox({
  initial,
  onSave,
  onCancel,
}: {
  initial: string;
  onSave: (body: string) => void;
  onCancel: () => void;
}) {
  const [text, setText] = useState(initial);
  const [problem, setProblem] = useState<string | null>(null);
  const box = useRef<HTMLTextAreaElement>(null);
  // A layout effect, not a plain one: it runs in the same task that puts the textarea in the
  // page, so nothing can select the text or type before the caret goes to the end. A plain
  // effect runs after paint, and could move the caret between a "select all" and the typing
  // that should replace the selection (the old body then stayed in front of the new one).
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
  }, []);
  const save = () => {
    const p = bodyProblem(text);
    if (p) {
      setProblem(p);
      box.current?.focus();
      return;
    }
    onSave(text);
  };
  return (
    <form
      class="edit-box"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <textarea
        ref={box}
        class="edit-input"
        dir="auto"
        aria-label="Edit message"
        aria-describedby="edit-hint"
        aria-invalid={problem ? true : undefined}
        value={text}
        rows={1}
        onInput={(e) => {
          setText(e.currentTarget.value);
          if (problem) setProblem(null);
          const el = e.currentTarget;
          el.style.height = "auto";
          el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            save();
          } else if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            onCancel();
          }
        }}
      />
      <p id="edit-hint" class="sr-only">
        Enter saves, Escape cancels.
      </p>
      {problem && (
        <p class="error small" role="alert">
          {problem}
        </p>
      )}
      <div class="edit-buttons">
        <button type="submit" class="small primary">
          Save
        </button>
        <button type="button" class="small" onClick={onCancel}>
          Cancel
        </button>
        <span class="muted small" aria-hidden="true">
          Enter saves · Esc cancels
        </span>
      </div>
    </form>
  );
}
