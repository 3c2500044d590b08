// The channel directory inside "Browse channels": every group channel without typing a query,
// by member count or by recent activity, a page at a time ("Load more"), with Join / Open.

import { useEffect, useRef, useState } from "preact/hooks";
import type { ChatApp } from "../app/client";
import { activityLabel, appendPage, emptyDirectory, markJoined, membersLabel, type DirectoryList } from "../lib/directory";
import { describe } from "../lib/errors";
import type { DirectoryEntry, DirectorySort } from "../lib/types";
import { useMounted } from "./hooks";
import { go, href } from "./route";

const SORTS: { value: DirectorySort; label: string }[] = [
  { value: "members", label: "Most members" },
  { value: "activity", label: "Recent activity" },
];

export function ChannelDirectory({ app }: { app: ChatApp }) {
  const [list, setList] = useState<DirectoryList>(emptyDirectory("members"));
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [joining, setJoining] = useState<string | null>(null);
  const mounted = useMounted();
  // Answers for an older sort (the person switched meanwhile) are dropped.
  const generation = useRef(0);

  const load = async (from: DirectoryList) => {
    const n = generation.current;
    setLoading(true);
    setError(null);
    try {
      const page = await app.channelDirectory(from.sort, from.cursor);
      if (!mounted.current || n !== generation.current) return;
      setList(appendPage(from, page));
    } catch (e) {
      if (!mounted.current || n !== generation.current) return;
      setError(describe(e));
    } finally {
      if (mounted.current && n === generation.current) setLoading(false);
    }
  };

  useEffect(() => {
    void load(emptyDirectory("members"));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const sortBy = (sort: DirectorySort) => {
    if (sort === list.sort) return;
    generation.current++;
    const fresh = emptyDirectory(sort);
    setList(fresh);
    void load(fresh);
  };

  const join = async (c: DirectoryEntry) => {
    setJoining(c.id);
    setError(null);
    try {
      await app.join(c.id);
      if (!mounted.current) return;
      setList((l) => markJoined(l, c.id));
      go({ name: "channel", id: c.id });
    } catch (e) {
      if (!mounted.current) return;
      setError(describe(e));
      setJoining(null);
    }
  };

  return (
    <div class="directory">
      <fieldset class="sort-toggle">
        <legend>All channels, sorted by</legend>
        {SORTS.map((s) => (
          <label key={s.value} class="radio">
            <input
              type="radio"
              name="directory-sort"
              value={s.value}
              checked={list.sort === s.value}
              onChange={() => sortBy(s.value)}
            />
            {s.label}
          </label>
        ))}
      </fieldset>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <p class="muted small" role="status">
        {loading && list.entries.length === 0
          ? "Loading channels…"
          : list.entries.length === 0 && list.done
            ? "No channels yet. Create the first one."
            : `Showing ${list.entries.length} ${list.entries.length === 1 ? "channel" : "channels"}${list.done ? "" : " so far"}.`}
      </p>
      {list.entries.length > 0 && (
        <ul class="results" aria-label="Channel directory">
          {list.entries.map((c) => (
            <li key={c.id} class="result">
              <div class="result-text">
                <span class="result-name" dir="auto">#{c.name}</span>
                {c.description && <span class="result-desc" dir="auto">{c.description}</span>}
                <span class="result-desc small">
                  {membersLabel(c.member_count)} · {activityLabel(c.last_activity_at)}
                </span>
              </div>
              {c.is_member ? (
                <a class="button small" href={href({ name: "channel", id: c.id })}>
                  Open<span class="sr-only"> #{c.name}</span>
                </a>
              ) : (
                <button type="button" class="small primary" disabled={joining !== null} onClick={() => join(c)}>
                  {joining === c.id ? "Joining…" : "Join"}
                  <span class="sr-only"> #{c.name}</span>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {!list.done && list.entries.length > 0 && (
        <button type="button" class="load-more" disabled={loading} onClick={() => load(list)}>
          {loading ? "Loading…" : "Load more channels"}
        </button>
      )}
    </div>
  );
}
