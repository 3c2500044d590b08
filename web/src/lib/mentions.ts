// `@username` mentions, recognised exactly as the server does (chat_types::limits::
// mentioned_usernames, docs/protocol.md "Mentions"): `@` at the start or after a character that
// cannot be in a username (and is not another `@`), then the longest run of username characters
// (letters, digits, `.`, `_`, `-`) with trailing dots dropped (they end the sentence), if that is a
// valid username (3-32 characters); case is ignored; at most 20 distinct names per message.

import { Limits, type Message } from "./types";

export interface MentionSpan {
  /** UTF-16 offsets into the body: `body.slice(start, end)` is `@name`. */
  start: number;
  end: number;
  /** Lowercased. */
  username: string;
}

// Username characters are ASCII, so UTF-16 code units can be tested like the server's bytes:
// no unit of a non-ASCII character is one of them.
const isNameUnit = (c: number) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 95 || c === 45;
const AT = 64;
const DOT = 46;

/** Every mention in `body`, in order (the same name may appear more than once). */
export function mentionSpans(body: string): MentionSpan[] {
  const out: MentionSpan[] = [];
  const distinct = new Set<string>();
  let i = 0;
  while (i < body.length && distinct.size < Limits.MENTIONS_MAX) {
    const prev = i > 0 ? body.charCodeAt(i - 1) : -1;
    if (body.charCodeAt(i) === AT && (i === 0 || (!isNameUnit(prev) && prev !== AT))) {
      const start = i + 1;
      let end = start;
      while (end < body.length && isNameUnit(body.charCodeAt(end))) end++;
      let nameEnd = end;
      while (nameEnd > start && body.charCodeAt(nameEnd - 1) === DOT) nameEnd--;
      const len = nameEnd - start;
      if (len >= Limits.USERNAME_MIN && len <= Limits.USERNAME_MAX) {
        const username = body.slice(start, nameEnd).toLowerCase();
        distinct.add(username);
        out.push({ start: i, end: nameEnd, username });
      }
      i = Math.max(end, i + 1);
    } else {
      i++;
    }
  }
  return out;
}

/** The usernames a body mentions: lowercased, each once, in order, at most 20. */
export function mentionedUsernames(body: string): string[] {
  const out: string[] = [];
  for (const s of mentionSpans(body)) if (!out.includes(s.username)) out.push(s.username);
  return out;
}

/**
 * Whether a message mentions the current user: the server's word (`Message.mentions`, the members
 * it resolved), not the body's, since a name only mentions someone who is a member. Our own
 * messages and tombstones never count.
 */
export function mentionsMe(m: Pick<Message, "sender_id" | "deleted" | "mentions">, myId: string | undefined): boolean {
  if (!myId || m.deleted || m.sender_id === myId) return false;
  return Array.isArray(m.mentions) && m.mentions.includes(myId);
}
