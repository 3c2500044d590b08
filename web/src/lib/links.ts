// Links in message bodies, and a body cut into the parts the UI shows: plain text, links and
// `@mentions`.
//
// Only `http://` and `https://` addresses written out in full become links: a scheme we did not
// choose (`javascript:`, `data:`, `file:`) must never reach an `href`, and guessing at bare
// `example.com` words links things nobody meant as addresses.

import { mentionSpans } from "./mentions";

export interface LinkSpan {
  /** UTF-16 offsets into the body: `body.slice(start, end)` is the address as written. */
  start: number;
  end: number;
  /** What the link opens: the address, parsed and serialised by the URL parser. */
  href: string;
}

const CANDIDATE = /https?:\/\/[^\s<>"'`]+/gi;
/** Punctuation that ends a sentence rather than an address ("see https://x.org/a."). */
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "*", "_", "~"]);
const CLOSERS: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

const isWordChar = (c: string) => /[\p{L}\p{N}_]/u.test(c);

function count(s: string, c: string): number {
  let n = 0;
  for (const x of s) if (x === c) n++;
  return n;
}

/** The end of an address once the punctuation that belongs to the sentence is dropped. */
function trimEnd(url: string): string {
  let u = url;
  for (;;) {
    const last = u[u.length - 1];
    if (last === undefined) return u;
    if (TRAILING.has(last)) {
      u = u.slice(0, -1);
      continue;
    }
    // "(see https://en.wikipedia.org/wiki/Rust_(language))": keep a closer that the address opened.
    const opener = CLOSERS[last];
    if (opener !== undefined && count(u, last) > count(u, opener)) {
      u = u.slice(0, -1);
      continue;
    }
    return u;
  }
}

/** The safe target of an address, or undefined if it is not an http(s) address with a host. */
export function safeHref(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) return undefined;
  return url.href;
}

/** Every http(s) address in `body`, in order. */
export function linkSpans(body: string): LinkSpan[] {
  const out: LinkSpan[] = [];
  for (const m of body.matchAll(CANDIDATE)) {
    const start = m.index ?? 0;
    // "xhttp://…" is a word that happens to contain a scheme, not an address.
    if (start > 0 && isWordChar(body[start - 1])) continue;
    const text = trimEnd(m[0]);
    const href = safeHref(text);
    if (href) out.push({ start, end: start + text.length, href });
  }
  return out;
}

export interface BodyPart {
  text: string;
  /** A link: where it goes. */
  href?: string;
  /** A mention: the username (lowercased). */
  mention?: string;
  /** A mention of the current user. */
  me?: boolean;
}

/**
 * The body cut into text, links and mentions, in order; the parts join back to the body. `@name`
 * inside an address is part of the link. `myUsername`: mentions of that name are marked `me`
 * (pass it only when the server says the message mentions the current user).
 */
export function splitBody(body: string, myUsername?: string): BodyPart[] {
  const links = linkSpans(body);
  const mentions = mentionSpans(body).filter((s) => !links.some((l) => s.start < l.end && l.start < s.end));
  if (links.length === 0 && mentions.length === 0) return [{ text: body }];
  const mine = myUsername?.toLowerCase();
  const spans = [
    ...links.map((l) => ({ start: l.start, end: l.end, part: { text: body.slice(l.start, l.end), href: l.href } })),
    ...mentions.map((s) => ({
      start: s.start,
      end: s.end,
      part: { text: body.slice(s.start, s.end), mention: s.username, me: s.username === mine },
    })),
  ].sort((a, b) => a.start - b.start);
  const parts: BodyPart[] = [];
  let at = 0;
  for (const s of spans) {
    if (s.start > at) parts.push({ text: body.slice(at, s.start) });
    parts.push(s.part);
    at = s.end;
  }
  if (at < body.length) parts.push({ text: body.slice(at) });
  return parts;
}
