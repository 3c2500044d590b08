import { useEffect, useRef } from "preact/hooks";
import type { ChatApp } from "../app/client";
import { titleWithUnread } from "../lib/conversations";
import { AuthView } from "./AuthView";
import { ConnBadge } from "./ConnBadge";
import { Conversation } from "./Conversation";
import { useAppState, useHash, useMedia } from "./hooks";
import { BrowseChannels, NewChannel, NewDirect } from "./Panels";
import { go, href, parseRoute } from "./route";
import { Sidebar } from "./Sidebar";
import { Logo } from "./icons";

/** The page's title (index.html), to which the number of unread messages is added. */
const TITLE = "Chat";

function LiveRegion({ id, text }: { id: number; text: string }) {
  return (
    <div class="sr-only" aria-live="polite" aria-atomic="true">
      <span key={id}>{text}</span>
    </div>
  );
}

export function App({ app }: { app: ChatApp }) {
  const state = useAppState(app);
  const hash = useHash();
  const route = parseRoute(hash);
  const narrow = useMedia("(max-width: 720px)");
  const activeId = route.name === "channel" ? route.id : null;
  const prevRoute = useRef(route.name);
  const unreadTotal =
    state.phase === "ready" ? state.channels.reduce((n, c) => n + app.unread(c.id).count, 0) : 0;

  // The tab says how much is unread, also when it is in the background.
  useEffect(() => {
    document.title = titleWithUnread(TITLE, unreadTotal);
  }, [unreadTotal]);

  useEffect(() => {
    if (state.phase === "ready") app.setActive(activeId);
  }, [app, activeId, state.phase]);

  // Back to the list (on a phone): put focus where the person was in it.
  useEffect(() => {
    if (route.name === "home" && prevRoute.current !== "home" && state.phase === "ready") {
      const link =
        document.querySelector<HTMLElement>(".conv-link.is-active") ?? document.getElementById("groups-heading");
      link?.focus();
    }
    prevRoute.current = route.name;
  }, [route.name, state.phase]);

  if (state.phase === "anonymous") {
    return (
      <>
        <AuthView app={app} message={state.authMessage} />
        <LiveRegion id={state.announcement.id} text={state.announcement.text} />
      </>
    );
  }

  const channel = activeId ? state.channels.find((c) => c.id === activeId) : undefined;
  const showMain = !narrow || route.name !== "home";
  const showSidebar = !narrow || route.name === "home";
  const me = state.me;

  let main;
  if (route.name === "channel") {
    main = channel ? (
      <Conversation key={channel.id} app={app} state={state} channel={channel} narrow={narrow} />
    ) : (
      <section class="panel placeholder" aria-labelledby="missing-title">
        <h2 id="missing-title">{state.channelsLoaded ? "Conversation not found" : "Loading…"}</h2>
        {state.channelsLoaded && (
          <p>
            You are not a member of this conversation, or it no longer exists.{" "}
            <a href={href({ name: "browse" })}>Browse channels</a>
          </p>
        )}
      </section>
    );
  } else if (route.name === "browse") {
    main = <BrowseChannels app={app} state={state} narrow={narrow} />;
  } else if (route.name === "new") {
    main = <NewChannel app={app} narrow={narrow} />;
  } else if (route.name === "dm") {
    main = <NewDirect app={app} state={state} narrow={narrow} />;
  } else {
    main = (
      <section class="panel placeholder" aria-labelledby="welcome-title">
        <h2 id="welcome-title">Welcome{me ? `, ${me.display_name || me.username}` : ""}</h2>
        <p>Pick a conversation on the left, find a channel to join, or start a direct message.</p>
      </section>
    );
  }

  return (
    <div class={`shell${narrow ? " shell--narrow" : ""}`}>
      <a class="skip-link" href="#main">
        Skip to {route.name === "channel" ? "conversation" : "main content"}
      </a>
      <header class="topbar">
        <h1 class="brand">
          <Logo /> <span class="brand-text">Chat</span>
        </h1>
        <ConnBadge app={app} conn={state.conn} online={state.online} />
        <div class="me">
          <span class="me-name" title={me ? `@${me.username}` : undefined}>
            <span class="sr-only">Logged in as </span>
            <span dir="auto">{me?.display_name || me?.username}</span>
          </span>
          <button
            type="button"
            class="small"
            onClick={() => {
              go({ name: "home" });
              void app.logout();
            }}
          >
            Log out
          </button>
        </div>
      </header>
      {state.notice && (
        <div class={`notice notice--${state.notice.kind}`} role="alert" key={state.notice.id}>
          <span>{state.notice.text}</span>
          <button type="button" class="link small" onClick={() => app.dismissNotice()}>
            Dismiss
          </button>
        </div>
      )}
      <div class="layout">
        {showSidebar && <Sidebar app={app} state={state} route={route} />}
        {showMain && (
          <main class="main" id="main" tabIndex={-1}>
            {main}
          </main>
        )}
      </div>
      <LiveRegion id={state.announcement.id} text={state.announcement.text} />
    </div>
  );
}
