// The side tasks: create a channel, find and join one, start a direct conversation.

import { useEffect, useRef, useState } from "preact/hooks";
import type { AppState, ChatApp } from "../app/client";
import { describe } from "../lib/errors";
import { Limits, type Channel, type User } from "../lib/types";
import { channelNameProblem } from "../lib/validate";
import { useMounted } from "./hooks";
import { go, href } from "./route";
import { IconBack } from "./icons";
import { ChannelDirectory } from "./Directory";

function PanelHeader({ title, narrow, id }: { title: string; narrow: boolean; id: string }) {
  return (
    <header class="conv-header">
      {narrow && (
        <a class="back" href={href({ name: "home" })}>
          <IconBack />
          <span class="sr-only">Back to conversations</span>
        </a>
      )}
      <div class="conv-titles">
        <h2 id={id} tabIndex={-1}>
          {title}
        </h2>
      </div>
    </header>
  );
}

export function NewChannel({ app, narrow }: { app: ChatApp; narrow: boolean }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const nameRef = useRef<HTMLInputElement>(null);
  const mounted = useMounted();

  useEffect(() => nameRef.current?.focus(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const problem = channelNameProblem(name);
    setNameError(problem);
    if (problem) {
      nameRef.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const c = await app.createChannel(name, description);
      go({ name: "channel", id: c.id });
    } catch (err) {
      if (!mounted.current) return;
      setError(describe(err));
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="new-title">
      <PanelHeader title="New channel" narrow={narrow} id="new-title" />
      <div class="panel-body">
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <form onSubmit={submit} noValidate>
          <div class="field">
            <label for="new-name">Name</label>
            <input
              id="new-name"
              ref={nameRef}
              required
              maxLength={Limits.CHANNEL_NAME_MAX}
              value={name}
              aria-invalid={nameError ? true : undefined}
              aria-describedby={nameError ? "new-name-err" : undefined}
              onInput={(e) => {
                setName(e.currentTarget.value);
                setNameError(null);
              }}
            />
            {nameError && (
              <p class="field-error" id="new-name-err">
                {nameError}
              </p>
            )}
          </div>
          <div class="field">
            <label for="new-desc">
              Description <span class="optional">(optional)</span>
            </label>
            <textarea
              id="new-desc"
              rows={3}
              maxLength={Limits.CHANNEL_DESCRIPTION_MAX}
              value={description}
              onInput={(e) => setDescription(e.currentTarget.value)}
            />
          </div>
          <button class="primary" type="submit" disabled={busy}>
            {busy ? "Creating…" : "Create channel"}
          </button>
        </form>
      </div>
    </section>
  );
}

/** Runs `search(query)` as the person types (debounced), keeping only the latest answer. */
function useSearch<T>(search: (q: string) => Promise<T[]>, query: string, minLength = 1) {
  const [results, setResults] = useState<T[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const seq = useRef(0);
  const run = (q: string) => {
    const n = ++seq.current;
    if (q.trim().length < minLength) {
      setResults(null);
      setBusy(false);
      setError(null);
      return;
    }
    setBusy(true);
    search(q.trim()).then(
      (r) => {
        if (n !== seq.current) return;
        setResults(r);
        setBusy(false);
        setError(null);
      },
      (e) => {
        if (n !== seq.current) return;
        setBusy(false);
        setError(describe(e));
      },
    );
  };
  useEffect(() => {
    const t = setTimeout(() => run(query), 250);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query]);
  return { results, busy, error, runNow: () => run(query) };
}

export function BrowseChannels({ app, state, narrow }: { app: ChatApp; state: AppState; narrow: boolean }) {
  const [query, setQuery] = useState("");
  const [joining, setJoining] = useState<string | null>(null);
  const [joinError, setJoinError] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const mounted = useMounted();
  const { results, busy, error, runNow } = useSearch<Channel>((q) => app.searchChannels(q), query);

  useEffect(() => inputRef.current?.focus(), []);

  const mine = new Set(state.channels.map((c) => c.id));
  const join = async (c: Channel) => {
    setJoining(c.id);
    setJoinError(null);
    try {
      await app.join(c.id);
      go({ name: "channel", id: c.id });
    } catch (e) {
      if (!mounted.current) return;
      setJoinError(describe(e));
      setJoining(null);
    }
  };

  return (
    <section class="panel" aria-labelledby="browse-title">
      <PanelHeader title="Browse channels" narrow={narrow} id="browse-title" />
      <div class="panel-body">
        <form
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            runNow();
          }}
        >
          <div class="field">
            <label for="browse-q">Search channels by name</label>
            <div class="inline">
              <input
                id="browse-q"
                ref={inputRef}
                type="search"
                autocomplete="off"
                value={query}
                onInput={(e) => setQuery(e.currentTarget.value)}
              />
              <button type="submit">Search</button>
            </div>
          </div>
        </form>
        {(error || joinError) && (
          <p class="error" role="alert">
            {joinError ?? error}
          </p>
        )}
        {query.trim() === "" && <ChannelDirectory app={app} />}
        <p class="muted small" role="status" hidden={query.trim() === ""}>
          {busy
            ? "Searching…"
            : results === null
              ? "Type part of a channel name."
              : results.length === 0
                ? "No channels found."
                : `${results.length} ${results.length === 1 ? "channel" : "channels"} found.`}
        </p>
        {results && results.length > 0 && (
          <ul class="results" aria-label="Channels found">
            {results.map((c) => (
              <li key={c.id} class="result">
                <div class="result-text">
                  <span class="result-name" dir="auto">#{c.name}</span>
                  {c.description && <span class="result-desc" dir="auto">{c.description}</span>}
                </div>
                {mine.has(c.id) ? (
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
      </div>
    </section>
  );
}

export function NewDirect({ app, state, narrow }: { app: ChatApp; state: AppState; narrow: boolean }) {
  const [query, setQuery] = useState("");
  const [opening, setOpening] = useState<string | null>(null);
  const [openError, setOpenError] = useState<string | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const mounted = useMounted();
  const { results, busy, error, runNow } = useSearch<User>((q) => app.searchUsers(q), query);
  const others = results?.filter((u) => u.id !== state.me?.id) ?? null;

  useEffect(() => inputRef.current?.focus(), []);

  const open = async (u: User) => {
    setOpening(u.id);
    setOpenError(null);
    try {
      const c = await app.openDm(u);
      go({ name: "channel", id: c.id });
    } catch (e) {
      if (!mounted.current) return;
      setOpenError(describe(e));
      setOpening(null);
    }
  };

  return (
    <section class="panel" aria-labelledby="dm-title">
      <PanelHeader title="New direct message" narrow={narrow} id="dm-title" />
      <div class="panel-body">
        <form
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            runNow();
          }}
        >
          <div class="field">
            <label for="dm-q">Find people by name or username</label>
            <div class="inline">
              <input
                id="dm-q"
                ref={inputRef}
                type="search"
                autocomplete="off"
                autocapitalize="none"
                spellcheck={false}
                maxLength={Limits.USER_QUERY_MAX}
                value={query}
                onInput={(e) => setQuery(e.currentTarget.value)}
              />
              <button type="submit">Search</button>
            </div>
          </div>
        </form>
        {(error || openError) && (
          <p class="error" role="alert">
            {openError ?? error}
          </p>
        )}
        <p class="muted small" role="status">
          {busy
            ? "Searching…"
            : others === null
              ? "Type part of a name, or the beginning of a username."
              : others.length === 0
                ? "Nobody found."
                : `${others.length} ${others.length === 1 ? "person" : "people"} found.`}
        </p>
        {others && others.length > 0 && (
          <ul class="results" aria-label="People found">
            {others.map((u) => (
              <li key={u.id} class="result">
                <div class="result-text">
                  <span class="result-name" dir="auto">{u.display_name || u.username}</span>
                  <span class="result-desc">@{u.username}</span>
                </div>
                <button type="button" class="small primary" disabled={opening !== null} onClick={() => open(u)}>
                  {opening === u.id ? "Opening…" : "Message"}
                  <span class="sr-only"> {u.display_name || u.username}</span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
