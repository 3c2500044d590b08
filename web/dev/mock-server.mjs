// A small in-memory stand-in for the chat backend, for working on the web client without the
// Rust stack: REST under /api/v1, the WebSocket at /ws, and web/dist at /. Not the real thing:
// one process, no persistence, no auth hardening. It follows API.md and crates/chat-types.
//
//   npm run build && npm run mock          # http://127.0.0.1:8090
//   BASE_URL=http://127.0.0.1:8090 npm run e2e
//
// MOCK_PORT (8090), MOCK_TOKEN_TTL (access token lifetime in seconds, default 900).

import { createHash, randomUUID } from "node:crypto";
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocketServer } from "ws";

const PORT = Number(process.env.MOCK_PORT ?? 8090);
const TTL = Number(process.env.MOCK_TOKEN_TTL ?? 900);
const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

const users = new Map(); // id -> {id, username, display_name, password}
const access = new Map(); // token -> {userId, exp}
const refresh = new Map(); // token -> {userId, used}
// id -> {id, kind, name, description, created_at, created_by, members:Set, messages:[], events:[], seq,
//        reads: Map<userId, seq> (read marks), dmKey?}
// Messages and events share the channel's `seq` (docs/protocol.md, "Edits, deletes, reactions,
// replies"); a stored message keeps its state: body, edited_at, deleted, reply_to (an id) and
// reactions (emoji -> Set of user ids, in the order first used).
const channels = new Map();
const sockets = new Map(); // userId -> Set<ws>

const err = (res, status, code, message) => json(res, status, { error: { code, message } });
function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(body === undefined ? "" : JSON.stringify(body));
}
const pub = (u) => ({ id: u.id, username: u.username, display_name: u.display_name });

function session(u) {
  const at = randomUUID();
  const rt = randomUUID();
  access.set(at, { userId: u.id, exp: Date.now() + TTL * 1000 });
  refresh.set(rt, { userId: u.id, used: false });
  return { user: pub(u), access_token: at, refresh_token: rt, expires_in: TTL };
}

function authUser(token) {
  const a = token && access.get(token);
  if (!a || a.exp < Date.now()) return null;
  return users.get(a.userId) ?? null;
}

function channelFor(c, viewer) {
  let name = c.name;
  if (c.kind === "direct") {
    const other = [...c.members].find((m) => m !== viewer) ?? viewer;
    name = users.get(other)?.display_name ?? "direct";
  }
  const out = { id: c.id, kind: c.kind, name, description: c.description, created_at: c.created_at };
  if (c.kind === "group" && c.created_by) out.created_by = c.created_by;
  return out;
}

/** A channel as the conversation list shows it: with the viewer's read mark and what is after it. */
function conversationFor(c, viewer) {
  const alive = c.messages.filter((m) => !m.deleted);
  const newest = alive[alive.length - 1];
  const read = c.reads.get(viewer) ?? 0;
  const unread = alive.filter((m) => m.seq > read && m.sender_id !== viewer);
  return {
    ...channelFor(c, viewer),
    last_message: newest
      ? { id: newest.id, seq: newest.seq, sender_id: newest.sender_id, preview: [...newest.body].slice(0, 140).join(""), created_at: newest.created_at }
      : null,
    head_seq: newest?.seq ?? 0,
    read_seq: read,
    unread_count: unread.length,
    mention_count: unread.filter((m) => mentionsOf(c, m.body).includes(viewer)).length,
  };
}

/** The members a body mentions (`@username`, roughly as chat_types::limits::mentioned_usernames). */
function mentionsOf(c, body) {
  const out = [];
  for (const [, name] of String(body).matchAll(/(?:^|[^A-Za-z0-9._@-])@([A-Za-z0-9._-]+)/g)) {
    const n = name.replace(/\.+$/, "").toLowerCase();
    const u = [...c.members].map((id) => users.get(id)).find((x) => x && x.username.toLowerCase() === n);
    if (u && !out.includes(u.id)) out.push(u.id);
  }
  return out;
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const s = Buffer.concat(chunks).toString("utf8");
  if (!s) return {};
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

function messageId(senderId, cmid) {
  const h = createHash("sha1").update(senderId).update(cmid).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A stored message as `viewer` sees it now (reactions counted for them, the reply's preview). */
function wireMessage(c, m, viewer) {
  const out = {
    id: m.id,
    channel_id: m.channel_id,
    sender_id: m.sender_id,
    body: m.deleted ? "" : m.body,
    client_msg_id: m.client_msg_id,
    created_at: m.created_at,
    seq: m.seq,
  };
  if (m.edited_at && !m.deleted) out.edited_at = m.edited_at;
  if (m.deleted) out.deleted = true;
  const mentions = m.deleted ? [] : mentionsOf(c, m.body);
  if (mentions.length) out.mentions = mentions;
  if (m.reply_to) {
    const o = c.messages.find((x) => x.id === m.reply_to);
    if (o) {
      out.reply_to = { id: o.id, seq: o.seq, sender_id: o.sender_id, preview: o.deleted ? "" : [...o.body].slice(0, 140).join("") };
      if (o.deleted) out.reply_to.deleted = true;
    }
  }
  if (!m.deleted && m.reactions.size) {
    out.reactions = [...m.reactions].map(([emoji, who]) => ({ emoji, count: who.size, me: who.has(viewer) }));
  }
  return out;
}

function deliver(c, message) {
  for (const uid of c.members) {
    for (const ws of sockets.get(uid) ?? []) {
      if (ws.readyState === 1) ws.send(JSON.stringify({ type: "message", message: wireMessage(c, message, uid) }));
    }
  }
}

function deliverEvent(c, event) {
  for (const uid of c.members) {
    for (const ws of sockets.get(uid) ?? []) {
      if (ws.readyState === 1) ws.send(JSON.stringify({ type: "event", event }));
    }
  }
}

const EMOJI_BAD = /[\s\p{Cc}]/u;

/** edit / delete / react / unreact: checks, event_ack, then the event (unless moot). */
function change(ws, me, f) {
  const ceid = f.client_event_id;
  const fail = (code, message) => ws.send(JSON.stringify({ type: "error", code, message, client_event_id: ceid }));
  if (typeof ceid !== "string" || !ceid || ceid.length > 128) return fail("invalid_client_event_id", "client_event_id must be 1 to 128 characters");
  const c = channels.get(f.channel_id);
  if (!c) return fail("unknown_channel", "no such channel");
  if (!c.members.has(me.id)) return fail("not_a_member", "not a member");
  const eventId = messageId(`event:${me.id}`, ceid);
  const done = c.events.find((e) => e.id === eventId);
  if (done || c.acked.has(eventId)) return ws.send(JSON.stringify({ type: "event_ack", client_event_id: ceid, event_id: eventId }));
  const m = c.messages.find((x) => x.id === f.message_id);
  if (!m) return fail("unknown_message", "no such message in this channel");
  if (m.deleted) return fail("message_deleted", "the message was deleted");
  let kind;
  const extra = {};
  if (f.type === "edit") {
    if (m.sender_id !== me.id) return fail("not_author", "only the author may edit a message");
    const n = [...String(f.body ?? "")].length;
    if (n < 1 || n > 4000 || !String(f.body).trim()) return fail("invalid_body", "body must be 1 to 4000 characters");
    kind = "edited";
    extra.body = f.body;
    const mentions = mentionsOf(c, f.body);
    if (mentions.length) extra.mentions = mentions;
  } else if (f.type === "delete") {
    if (m.sender_id !== me.id && !(c.kind === "group" && c.created_by === me.id)) {
      return fail("not_author", "only the author or the channel's owner may delete a message");
    }
    kind = "deleted";
  } else {
    const e = f.emoji;
    if (typeof e !== "string" || !e || Buffer.byteLength(e) > 64 || EMOJI_BAD.test(e)) return fail("invalid_emoji", "not a usable emoji");
    kind = f.type === "react" ? "reaction_added" : "reaction_removed";
    extra.emoji = e;
  }
  c.acked.add(eventId);
  ws.send(JSON.stringify({ type: "event_ack", client_event_id: ceid, event_id: eventId }));
  // Applied in order; a moot change takes no position and makes no event.
  const now = new Date().toISOString();
  if (kind === "edited") {
    m.body = extra.body;
    m.edited_at = now;
  } else if (kind === "deleted") {
    m.deleted = true;
    m.reactions = new Map();
  } else {
    const who = m.reactions.get(extra.emoji) ?? new Set();
    if (kind === "reaction_added") {
      if (who.has(me.id)) return;
      who.add(me.id);
      m.reactions.set(extra.emoji, who);
    } else {
      if (!who.has(me.id)) return;
      who.delete(me.id);
      if (who.size === 0) m.reactions.delete(extra.emoji);
    }
    extra.count = who.size;
  }
  const event = {
    id: eventId,
    channel_id: c.id,
    seq: ++c.seq,
    actor_id: me.id,
    message_id: m.id,
    message_seq: m.seq,
    client_event_id: ceid,
    created_at: now,
    kind,
    ...extra,
  };
  c.events.push(event);
  deliverEvent(c, event);
}

const VALID_USER = /^[A-Za-z0-9._-]{3,32}$/;

async function api(req, res, url) {
  const path = url.pathname.replace(/^\/api\/v1/, "");
  const m = req.method;
  if (m === "POST" && path === "/auth/register") {
    const b = await body(req);
    if (!b) return err(res, 400, "malformed_json", "the body is not JSON");
    if (typeof b.username !== "string" || !VALID_USER.test(b.username)) {
      return err(res, 400, "invalid_username", "usernames are 3 to 32 letters, digits, '.', '_' or '-'");
    }
    if (typeof b.password !== "string" || [...b.password].length < 8) {
      return err(res, 400, "invalid_password", "passwords need at least 8 characters");
    }
    for (const u of users.values()) {
      if (u.username.toLowerCase() === b.username.toLowerCase()) return err(res, 409, "username_taken", "that username is taken");
    }
    const u = { id: randomUUID(), username: b.username, display_name: b.display_name || b.username, password: b.password };
    users.set(u.id, u);
    return json(res, 201, session(u));
  }
  if (m === "POST" && path === "/auth/login") {
    const b = (await body(req)) ?? {};
    const u = [...users.values()].find((x) => x.username.toLowerCase() === String(b.username).toLowerCase());
    if (!u || u.password !== b.password) return err(res, 401, "invalid_credentials", "wrong username or password");
    return json(res, 200, session(u));
  }
  if (m === "POST" && path === "/auth/refresh") {
    const b = (await body(req)) ?? {};
    const r = refresh.get(b.refresh_token);
    if (!r || r.used) return err(res, 401, "invalid_refresh_token", "refresh token is not valid");
    r.used = true;
    return json(res, 200, session(users.get(r.userId)));
  }
  if (m === "POST" && path === "/auth/logout") {
    const b = (await body(req)) ?? {};
    refresh.delete(b.refresh_token);
    res.writeHead(204).end();
    return;
  }

  const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  const me = authUser(token);
  if (!me) return err(res, 401, "unauthorized", "missing or expired access token");
  if (m === "POST" && path === "/ws-tickets") {
    // Single use, 30 s, like the real API.
    const ticket = randomUUID();
    wsTickets.set(ticket, { userId: me.id, until: Date.now() + 30_000 });
    return json(res, 201, { ticket, expires_in: 30 });
  }

  if (m === "GET" && path === "/users/me") return json(res, 200, pub(me));
  if (m === "GET" && path === "/users") {
    const q = (url.searchParams.get("query") ?? "").toLowerCase();
    const found = [...users.values()].filter((u) => u.username.toLowerCase().startsWith(q)).slice(0, 20);
    return json(res, 200, { users: found.map(pub) });
  }
  if (m === "GET" && path === "/channels") {
    const mine = [...channels.values()].filter((c) => c.members.has(me.id)).map((c) => conversationFor(c, me.id));
    const at = (x) => Date.parse(x.last_message?.created_at ?? x.created_at);
    mine.sort((a, b) => at(b) - at(a));
    return json(res, 200, { channels: mine });
  }
  if (m === "POST" && path === "/channels") {
    const b = (await body(req)) ?? {};
    if (typeof b.name !== "string" || !b.name.trim() || b.name.length > 80) {
      return err(res, 400, "validation_error", "name must be 1 to 80 characters");
    }
    const c = {
      id: randomUUID(),
      kind: "group",
      name: b.name,
      description: b.description ?? "",
      created_at: new Date().toISOString(),
      created_by: me.id,
      members: new Set([me.id]),
      messages: [],
      events: [],
      acked: new Set(),
      seq: 0,
      reads: new Map(),
    };
    channels.set(c.id, c);
    return json(res, 201, channelFor(c, me.id));
  }
  if (m === "GET" && path === "/channels/search") {
    const q = (url.searchParams.get("query") ?? "").toLowerCase();
    const found = [...channels.values()].filter((c) => c.kind === "group" && c.name.toLowerCase().includes(q));
    return json(res, 200, { channels: found.map((c) => channelFor(c, me.id)) });
  }
  if (m === "POST" && path === "/dms") {
    const b = (await body(req)) ?? {};
    const other = users.get(b.user_id);
    if (!other) return err(res, 404, "user_not_found", "no such user");
    const key = [me.id, other.id].sort().join(":");
    let c = [...channels.values()].find((x) => x.dmKey === key);
    let status = 200;
    if (!c) {
      c = {
        id: randomUUID(),
        kind: "direct",
        name: "",
        description: "",
        created_at: new Date().toISOString(),
        members: new Set([me.id, other.id]),
        messages: [],
        events: [],
        acked: new Set(),
        seq: 0,
        reads: new Map(),
        dmKey: key,
      };
      channels.set(c.id, c);
      status = 201;
    }
    return json(res, status, channelFor(c, me.id));
  }
  const cm = path.match(/^\/channels\/([^/]+)\/(join|leave|members|messages)$/);
  if (cm) {
    const c = channels.get(decodeURIComponent(cm[1]));
    if (!c) return err(res, 404, "channel_not_found", "no such channel");
    const what = cm[2];
    if (m === "POST" && what === "join") {
      if (c.kind !== "group") return err(res, 403, "forbidden", "cannot join a direct conversation");
      // History is not unread news: the mark starts at the newest message.
      if (!c.members.has(me.id)) c.reads.set(me.id, c.seq);
      c.members.add(me.id);
      return json(res, 200, channelFor(c, me.id));
    }
    if (m === "POST" && what === "leave") {
      c.members.delete(me.id);
      res.writeHead(204).end();
      return;
    }
    if (!c.members.has(me.id)) return err(res, 403, "not_a_member", "you are not a member of this channel");
    if (m === "GET" && what === "members") return json(res, 200, { members: [...c.members].map((id) => pub(users.get(id))) });
    if (m === "GET" && what === "messages") {
      const limit = Math.min(100, Math.max(1, Number(url.searchParams.get("limit") ?? 50) || 50));
      const before = url.searchParams.get("before");
      const after = url.searchParams.get("after");
      let list = c.messages;
      if (before) {
        const i = list.findIndex((x) => x.id === before);
        if (i < 0) return err(res, 404, "unknown_message", "no such message");
        list = list.slice(Math.max(0, i - limit), i);
      } else if (after) {
        const i = list.findIndex((x) => x.id === after);
        if (i < 0) return err(res, 404, "unknown_message", "no such message");
        list = list.slice(i + 1, i + 1 + limit);
      } else {
        list = list.slice(-limit);
      }
      return json(res, 200, { messages: list.map((x) => wireMessage(c, x, me.id)) });
    }
  }
  return err(res, 404, "not_found", `no route for ${m} ${url.pathname}`);
}

const MIME = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".map": "application/json" };

function serveStatic(req, res, url) {
  let p = normalize(join(DIST, decodeURIComponent(url.pathname)));
  if (!p.startsWith(DIST) || !existsSync(p) || statSync(p).isDirectory()) p = join(DIST, "index.html");
  if (!existsSync(p)) return err(res, 404, "not_built", "run npm run build first");
  res.writeHead(200, { "content-type": MIME[extname(p)] ?? "application/octet-stream", "cache-control": "no-cache" });
  createReadStream(p).pipe(res);
}

const server = createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  if (url.pathname.startsWith("/api/")) {
    api(req, res, url).catch((e) => err(res, 500, "internal", String(e)));
  } else serveStatic(req, res, url);
});

/** WebSocket tickets: ticket -> { userId, until }. */
const wsTickets = new Map();
const wss = new WebSocketServer({ noServer: true });
server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  if (url.pathname !== "/ws") return socket.destroy();
  const ticket = url.searchParams.get("ticket");
  const granted = ticket ? wsTickets.get(ticket) : undefined;
  if (ticket) wsTickets.delete(ticket);
  const me = ticket
    ? granted && granted.until > Date.now()
      ? users.get(granted.userId)
      : undefined
    : authUser(url.searchParams.get("token"));
  if (!me) {
    socket.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    const set = sockets.get(me.id) ?? new Set();
    set.add(ws);
    sockets.set(me.id, set);
    ws.on("close", () => set.delete(ws));
    ws.send(JSON.stringify({ type: "ready", user_id: me.id, connection_id: randomUUID() }));
    ws.on("message", (data) => {
      let f;
      try {
        f = JSON.parse(String(data));
      } catch {
        return ws.send(JSON.stringify({ type: "error", code: "malformed_frame", message: "not JSON" }));
      }
      if (f.type === "ping") return ws.send(JSON.stringify({ type: "pong" }));
      if (f.type === "send") {
        const c = channels.get(f.channel_id);
        const cmid = f.client_msg_id;
        if (!c) return ws.send(JSON.stringify({ type: "error", code: "unknown_channel", message: "no such channel", client_msg_id: cmid }));
        if (!c.members.has(me.id)) return ws.send(JSON.stringify({ type: "error", code: "not_a_member", message: "not a member", client_msg_id: cmid }));
        const n = [...String(f.body ?? "")].length;
        if (n < 1 || n > 4000 || !String(f.body).trim()) {
          return ws.send(JSON.stringify({ type: "error", code: "invalid_body", message: "body must be 1 to 4000 characters", client_msg_id: cmid }));
        }
        const id = messageId(me.id, cmid);
        const existing = c.messages.find((x) => x.id === id);
        if (!existing && f.reply_to !== undefined) {
          const o = c.messages.find((x) => x.id === f.reply_to);
          if (!o) return ws.send(JSON.stringify({ type: "error", code: "unknown_message", message: "reply_to names no message of this channel", client_msg_id: cmid }));
          if (o.deleted) return ws.send(JSON.stringify({ type: "error", code: "message_deleted", message: "reply_to names a deleted message", client_msg_id: cmid }));
        }
        const msg = existing ?? {
          id,
          channel_id: c.id,
          sender_id: me.id,
          body: f.body,
          client_msg_id: cmid,
          created_at: new Date().toISOString(),
          seq: c.seq + 1,
          reply_to: typeof f.reply_to === "string" ? f.reply_to : undefined,
          reactions: new Map(),
        };
        // An ack has neither the position nor the mentions (both come when the message is placed).
        const { seq: _seq, mentions: _mentions, ...ackMsg } = wireMessage(c, msg, me.id);
        ws.send(JSON.stringify({ type: "ack", client_msg_id: cmid, message: ackMsg }));
        if (!existing) {
          c.seq = msg.seq;
          c.messages.push(msg);
          deliver(c, msg);
        }
        return;
      }
      if (f.type === "resume") {
        const done = [];
        for (const [cid, last] of Object.entries(f.channels ?? {})) {
          const c = channels.get(cid);
          if (!c || !c.members.has(me.id)) continue;
          // The id of the last message or event the client has.
          const from = c.messages.find((x) => x.id === last)?.seq ?? c.events.find((x) => x.id === last)?.seq;
          if (from === undefined) {
            ws.send(JSON.stringify({ type: "error", code: "unknown_message", message: `unknown message ${last}` }));
            continue;
          }
          const items = [
            ...c.messages.filter((x) => x.seq > from).map((x) => ({ seq: x.seq, frame: { type: "message", message: wireMessage(c, x, me.id) } })),
            ...c.events.filter((x) => x.seq > from).map((x) => ({ seq: x.seq, frame: { type: "event", event: x } })),
          ].sort((a, b) => a.seq - b.seq);
          for (const it of items) ws.send(JSON.stringify(it.frame));
          done.push(cid);
        }
        ws.send(JSON.stringify({ type: "resumed", channels: done }));
        return;
      }
      if (f.type === "edit" || f.type === "delete" || f.type === "react" || f.type === "unreact") return change(ws, me, f);
      if (f.type === "mark_read") {
        const c = channels.get(f.channel_id);
        if (!c || !c.members.has(me.id) || typeof f.seq !== "number" || f.seq < 1) return;
        if (f.seq <= (c.reads.get(me.id) ?? 0)) return;
        c.reads.set(me.id, f.seq);
        for (const other of sockets.get(me.id) ?? []) {
          if (other !== ws && other.readyState === 1) other.send(JSON.stringify({ type: "read", channel_id: c.id, seq: f.seq }));
        }
        return;
      }
      // unknown frame types: ignored
    });
  });
});

server.listen(PORT, "127.0.0.1", () => console.log(`mock chat backend on http://127.0.0.1:${PORT}/ (web root ${DIST})`));
