import type { AppState } from "../app/client";
import type { Presence } from "../lib/ephemeral";
import type { Channel } from "../lib/types";
import { href, type Route } from "./route";
import { IconAt, IconPlus, IconSearch } from "./icons";

function byName(a: Channel, b: Channel) {
  return a.name.localeCompare(b.name, undefined, { sensitivity: "base" });
}

function Item({ c, active, unread, presence }: { c: Channel; active: boolean; unread: number; presence?: Presence }) {
  return (
    <li>
      <a
        class={`conv-link${active ? " is-active" : ""}${unread ? " has-unread" : ""}`}
        href={href({ name: "channel", id: c.id })}
        aria-current={active ? "page" : undefined}
        data-channel-id={c.id}
      >
        <span class="conv-icon" aria-hidden="true">
          {c.kind === "direct" ? "@" : "#"}
        </span>
        <span class="conv-name">{c.name}</span>
        {presence && (
          <span
            class={`presence-dot${presence.online ? " is-online" : ""}`}
            data-presence={presence.online ? "online" : "offline"}
            title={presence.online ? "Online" : "Offline"}
          >
            <span class="sr-only">{presence.online ? " online" : " offline"}</span>
          </span>
        )}
        {unread > 0 && (
          <span class="badge">
            {unread > 99 ? "99+" : unread}
            <span class="sr-only"> unread</span>
          </span>
        )}
      </a>
    </li>
  );
}

export function Sidebar({ state, route }: { state: AppState; route: Route }) {
  const groups = state.channels.filter((c) => c.kind !== "direct").sort(byName);
  const dms = state.channels.filter((c) => c.kind === "direct").sort(byName);
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
            <Item key={c.id} c={c} active={c.id === activeId} unread={state.unread[c.id] ?? 0} />
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
                unread={state.unread[c.id] ?? 0}
                presence={peer ? state.presence[peer] : undefined}
              />
            );
          })}
        </ul>
      ) : (
        <p class="muted small">{state.channelsLoaded ? "No direct messages yet." : "Loading…"}</p>
      )}
    </nav>
  );
}
