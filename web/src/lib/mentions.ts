// `@username` mentions, recognised exactly as the server does (chat_types::limits::
// mentioned_usernames, docs/protocol.md "Mentions"): `@` at the start or after a character that
// cannot be in a username (and is not another `@`), then the longest run of username characters
// (letters, digits, `.`, `_`, `-`) with trailing dots dropped (they end the sentence), if that is a
// valid username (3-32 characters); case is ignored; at most 20 distinct names per message.

import { Limits } from "./types";

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

export type BodyPart = { text: string; mention?: string; me?: boolean };

/**
 * The body cut into plain text and mentions, for display; `me` marks mentions of `myUsername`
 * (ignoring case).
 */
export function splitMentions(body: string, myUsername?: string): BodyPart[] {
  const spans = mentionSpans(body);
  if (spans.length === 0) return [{ text: body }];
  const mine = myUsername?.toLowerCase();
  const parts: BodyPart[] = [];
  let at = 0;
  for (const s of spans) {
    if (s.start > at) parts.push({ text: body.slice(at, s.start) });
    parts.push({ text: body.slice(s.start, s.end), mention: s.username, me: s.username === mine });
    at = s.end;
  }
  if (at < body.length) parts.push({ text: body.slice(at) });
  return parts;
}

/** Whether `body` mentions `myUsername`. */
export function mentionsUser(body: string, myUsername: string | undefined): boolean {
  if (!myUsername) return false;
  const mine = myUsername.toLowerCase();
  return mentionSpans(body).some((s) => s.username === mine);
}
