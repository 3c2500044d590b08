import type { AppState, ChatApp } from "../app/client";
import { byRecentActivity } from "../lib/conversations";
import type { Presence } from "../lib/ephemeral";
import type { Unread } from "../lib/readstate";
import type { Channel } from "../lib/types";
import { NotifyToggle } from "./NotifyToggle";
import { href, type Route } from "./route";
import { IconAt, IconPlus, IconSearch } from "./icons";

function Item({ c, active, unread, presence }: { c: Channel; active: boolean; unread: Unread; presence?: Presence }) {
  const n = unread.count;
  return (
    <li>
      <a
        class={`conv-link${active ? " is-active" : ""}${n ? " has-unread" : ""}${unread.mentions ? " has-mention" : ""}`}
        href={href({ name: "channel", id: c.id })}
        aria-current={active ? "page" : undefined}
        data-channel-id={c.id}
      >
        <span class="conv-icon" aria-hidden="true">
          {c.kind === "direct" ? "@" : "#"}
        </span>
        <span class="conv-name" dir="auto">
          {c.name}
        </span>
        {presence && (
          <span
            class={`presence-dot${presence.online ? " is-online" : ""}`}
            data-presence={presence.online ? "online" : "offline"}
            title={presence.online ? "Online" : "Offline"}
          >
            <span class="sr-only">{presence.online ? " online" : " offline"}</span>
          </span>
        )}
        {n > 0 && (
          <span class={`badge${unread.mentions ? " badge--mention" : ""}`} data-unread={n}>
            {unread.mentions > 0 && <span aria-hidden="true">@ </span>}
            {n > 99 ? "99+" : n}
            <span class="sr-only">
              {" "}
              unread{unread.mentions > 0 ? `, ${unread.mentions} mentioning you` : ""}
            </span>
          </span>
        )}
      </a>
    </li>
  );
}

export function Sidebar({ app, state, route }: { app: ChatApp; state: AppState; route: Route }) {
  // Most recently active first, as the server lists them, and kept so as messages come.
  const activity = (c: Channel) => app.activity(c);
  const groups = byRecentActivity(state.channels.filter((c) => c.kind !== "direct"), activity);
  const dms = byRecentActivity(state.channels.filter((c) => c.kind === "direct"), activity);
  const activeId = route.name === "channel" ? route.id : null;
  return (
    <nav class="sidebar" aria-label="Conversations" id="conversations">
      <div class="sidebar-actions">
        <a class={`button${route.name === "new" ? " is-active" : ""}`} href={href({ name: "new" })}>
          <IconPlus />
          New channel
        </a>
        <a class={`button${route.name === "browse" ? " is-active" : ""}`} href={href({ name: "browse" })}>
          <IconSearch />
          Browse channels
        </a>
        <a class={`button${route.name === "dm" ? " is-active" : ""}`} href={href({ name: "dm" })}>
          <IconAt />
          New direct message
        </a>
      </div>
      {state.channelsError && (
        <p class="error small" role="alert">
          {state.channelsError}
        </p>
      )}
      <h2 id="groups-heading" class="sidebar-heading" tabIndex={-1}>
        Channels
      </h2>
      {groups.length ? (
        <ul class="conv-list" aria-labelledby="groups-heading">
          {groups.map((c) => (
            <Item key={c.id} c={c} active={c.id === activeId} unread={app.unread(c.id)} />
          ))}
        </ul>
      ) : (
        <p class="muted small">{state.channelsLoaded ? "No channels yet. Create one or find one to join." : "Loading…"}</p>
      )}
      <h2 id="dms-heading" class="sidebar-heading">
        Direct messages
      </h2>
      {dms.length ? (
        <ul class="conv-list" aria-labelledby="dms-heading">
          {dms.map((c) => {
            const peer = state.channelMembers[c.id]?.find((u) => u !== state.me?.id);
            return (
              <Item
                key={c.id}
                c={c}
                active={c.id === activeId}
                unread={app.unread(c.id)}
                presence={peer ? state.presence[peer] : undefined}
              />
            );
          })}
        </ul>
      ) : (
        <p class="muted small">{state.channelsLoaded ? "No direct messages yet." : "Loading…"}</p>
      )}
      <NotifyToggle app={app} status={state.notifications} />
    </nav>
  );
}
