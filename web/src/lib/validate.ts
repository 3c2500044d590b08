// The contract's input limits, checked before a request so a person gets an answer at once.

import { Limits } from "./types";

/** Length in Unicode scalar values, as the server counts. */
export const charCount = (s: string): number => Array.from(s).length;

export function usernameProblem(name: string): string | null {
  if (name.length < Limits.USERNAME_MIN) return `Usernames need at least ${Limits.USERNAME_MIN} characters.`;
  if (name.length > Limits.USERNAME_MAX) return `Usernames can be at most ${Limits.USERNAME_MAX} characters long.`;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    return "Use only letters, digits, dots (.), underscores (_) and hyphens (-); no spaces.";
  }
  return null;
}

export function passwordProblem(pw: string): string | null {
  const n = charCount(pw);
  if (n < Limits.PASSWORD_MIN) return `Passwords need at least ${Limits.PASSWORD_MIN} characters.`;
  if (n > Limits.PASSWORD_MAX) return `Passwords can be at most ${Limits.PASSWORD_MAX} characters long.`;
  return null;
}

export function displayNameProblem(name: string): string | null {
  if (charCount(name) > Limits.DISPLAY_NAME_MAX) {
    return `Display names can be at most ${Limits.DISPLAY_NAME_MAX} characters long.`;
  }
  return null;
}

export function channelNameProblem(name: string): string | null {
  if (!name.trim()) return "Give the channel a name.";
  if (charCount(name) > Limits.CHANNEL_NAME_MAX) {
    return `Channel names can be at most ${Limits.CHANNEL_NAME_MAX} characters long.`;
  }
  return null;
}

export function bodyProblem(body: string): string | null {
  if (!body.trim()) return "Write something first.";
  const n = charCount(body);
  if (n > Limits.BODY_MAX_CHARS) {
    return `Messages can be at most ${Limits.BODY_MAX_CHARS} characters long (this one has ${n}).`;
  }
  return null;
}
