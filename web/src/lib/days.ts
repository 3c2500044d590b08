// Calendar days in the reader's own time zone, for the separators of the timeline: a message sent
// at 23:30 UTC belongs to the day it was where the reader is. `timeZone` is for tests (and is the
// browser's own when absent).

const keyFormats = new Map<string, Intl.DateTimeFormat>();
const labelFormats = new Map<string, Intl.DateTimeFormat>();

function cached(
  cache: Map<string, Intl.DateTimeFormat>,
  key: string,
  make: () => Intl.DateTimeFormat,
): Intl.DateTimeFormat {
  let f = cache.get(key);
  if (!f) {
    f = make();
    cache.set(key, f);
  }
  return f;
}

/** The calendar day of a time in the time zone, as `YYYY-MM-DD` (comparable, usable as a key). */
export function dayKey(d: Date, timeZone?: string): string {
  const f = cached(keyFormats, timeZone ?? "", () =>
    new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }),
  );
  const parts = f.formatToParts(d);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** The day before a `YYYY-MM-DD` day, by the calendar (days around a clock change are 23 or 25 hours long). */
function dayBefore(key: string): string {
  const [y, m, d] = key.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d - 1)).toISOString().slice(0, 10);
}

/** "Today", "Yesterday", or the date ("Wednesday, January 15", with the year if not this one). */
export function dayLabel(d: Date, now: Date = new Date(), locale?: string, timeZone?: string): string {
  const key = dayKey(d, timeZone);
  const today = dayKey(now, timeZone);
  if (key === today) return "Today";
  if (key === dayBefore(today)) return "Yesterday";
  const withYear = key.slice(0, 4) !== today.slice(0, 4);
  const f = cached(labelFormats, `${locale ?? ""}|${timeZone ?? ""}|${withYear}`, () =>
    new Intl.DateTimeFormat(locale, {
      timeZone,
      weekday: "long",
      month: "long",
      day: "numeric",
      ...(withYear ? { year: "numeric" } : {}),
    }),
  );
  return f.format(d);
}
