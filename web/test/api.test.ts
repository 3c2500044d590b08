import { describe, expect, it, vi } from "vitest";
import { Api, fetchWsTicket, makeRefresher } from "../src/net/api";
import { ApiError } from "../src/lib/errors";
import { RefreshRefused, TokenManager, type KeyValueStore } from "../src/lib/tokens";
import type { Session } from "../src/lib/types";

const user = { id: "u1", username: "alice", display_name: "Alice" };
const session = (n: number): Session => ({ user, access_token: `a${n}`, refresh_token: `r${n}`, expires_in: 900 });

function memory(): KeyValueStore {
  const m = new Map<string, string>();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v), removeItem: (k) => void m.delete(k) };
}

const json = (status: number, body: unknown) =>
  new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });

function setup(refresh: (rt: string) => Promise<Session>) {
  const tokens = new TokenManager({ storage: memory(), refresh, setTimer: () => 0, clearTimer: () => {} });
  tokens.setSession(session(1));
  const calls: { url: string; auth: string | null; body: unknown; method?: string }[] = [];
  const responses: Response[] = [];
  const fetchFn = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    const h = new Headers(init?.headers);
    calls.push({ url: String(url), auth: h.get("authorization"), body: init?.body ? JSON.parse(String(init.body)) : undefined, method: init?.method });
    const r = responses.shift();
    if (!r) throw new Error("no response queued");
    return r;
  });
  const api = new Api(tokens, "/api/v1", fetchFn as unknown as typeof fetch);
  return { api, tokens, calls, responses };
}

describe("Api", () => {
  it("sends the bearer token and reads the body", async () => {
    const { api, calls, responses } = setup(async () => session(2));
    responses.push(json(200, { channels: [{ id: "c1", kind: "group", name: "x", description: "", created_at: "" }] }));
    const chans = await api.channels();
    expect(chans.map((c) => c.id)).toEqual(["c1"]);
    expect(calls[0]).toMatchObject({ url: "/api/v1/channels", auth: "Bearer a1" });
  });

  it("makes the four attachment calls (declare, new URL, complete, link) on the channel's paths", async () => {
    const { api, calls, responses } = setup(async () => session(2));
    const upload = { id: "a/1", upload: { method: "PUT", url: "https://s/o/a", headers: {} }, expires_in: 900 };
    responses.push(json(201, upload), json(200, upload), json(200, { id: "a/1", state: "ready" }), json(200, { url: "u", thumbnail: "none", expires_in: 300 }));
    await expect(api.createAttachment("c1", { name: "n.txt", content_type: "text/plain", size: 5 })).resolves.toEqual(upload);
    await api.renewUploadUrl("c1", "a/1");
    await api.completeAttachment("c1", "a/1");
    await expect(api.attachmentLink("c1", "a/1")).resolves.toMatchObject({ url: "u" });
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "POST /api/v1/channels/c1/attachments",
      "POST /api/v1/channels/c1/attachments/a%2F1/upload-url",
      "POST /api/v1/channels/c1/attachments/a%2F1/complete",
      "GET /api/v1/channels/c1/attachments/a%2F1",
    ]);
    expect(calls[0].body).toEqual({ name: "n.txt", content_type: "text/plain", size: 5 });
    expect(calls[2].body).toBeUndefined();
  });

  it("reads a refused upload as an ApiError with the server's code", async () => {
    const { api, responses } = setup(async () => session(2));
    responses.push(json(413, { error: { code: "attachment_too_large", message: "at most 26214400 bytes" } }));
    const err = await api.createAttachment("c1", { name: "big.mp4", content_type: "video/mp4", size: 1 << 30 }).catch((e) => e);
    expect(err).toMatchObject({ status: 413, code: "attachment_too_large" });
  });

  it("builds history queries with before/after and limit", async () => {
    const { api, calls, responses } = setup(async () => session(2));
    responses.push(json(200, { messages: [] }), json(200, { messages: [] }));
    await api.messages("c/1", { before: "m9", limit: 50 });
    await api.messages("c1", {});
    expect(calls[0].url).toBe("/api/v1/channels/c%2F1/messages?before=m9&limit=50");
    expect(calls[1].url).toBe("/api/v1/channels/c1/messages");
  });

  it("asks the directory for a sort, a page size and the cursor of the previous page", async () => {
    const { api, calls, responses } = setup(async () => session(2));
    const entry = { id: "c1", name: "x", description: "", member_count: 3, last_activity_at: null, is_member: false };
    responses.push(json(200, { channels: [entry], next_cursor: "bTEu+/=" }), json(200, { channels: [], next_cursor: null }));
    const first = await api.directory("members", null, 20);
    const last = await api.directory("activity", first.next_cursor);
    expect(calls[0].url).toBe("/api/v1/channels/directory?sort=members&limit=20");
    expect(calls[1].url).toBe("/api/v1/channels/directory?sort=activity&cursor=bTEu%2B%2F%3D");
    expect(first.channels).toEqual([entry]);
    expect(last).toEqual({ channels: [], next_cursor: null });
  });

  it("refreshes once on a 401 and retries with the new token", async () => {
    const refresh = vi.fn(async () => session(2));
    const { api, calls, responses, tokens } = setup(refresh);
    responses.push(json(401, { error: { code: "unauthorized", message: "expired" } }), json(200, user));
    await expect(api.me()).resolves.toEqual(user);
    expect(refresh).toHaveBeenCalledWith("r1");
    expect(calls.map((c) => c.auth)).toEqual(["Bearer a1", "Bearer a2"]);
    expect(tokens.session?.refresh_token).toBe("r2");
  });

  it("gives up (and logs out) when the retried call is refused again", async () => {
    const { api, responses, tokens } = setup(async () => session(2));
    responses.push(json(401, { error: { code: "unauthorized", message: "x" } }));
    responses.push(json(401, { error: { code: "unauthorized", message: "x" } }));
    await expect(api.me()).rejects.toMatchObject({ status: 401 });
    expect(tokens.session).toBeNull();
  });

  it("does not refresh for login: a 401 there is a wrong password", async () => {
    const refresh = vi.fn(async () => session(2));
    const { api, responses, calls } = setup(refresh);
    responses.push(json(401, { error: { code: "invalid_credentials", message: "no" } }));
    const err = await api.login("alice", "wrongpass").catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 401, code: "invalid_credentials" });
    expect(refresh).not.toHaveBeenCalled();
    expect(calls[0].auth).toBeNull();
    expect(calls[0].body).toEqual({ username: "alice", password: "wrongpass" });
  });

  it("turns error bodies into ApiError, and a 204 into undefined", async () => {
    const { api, responses } = setup(async () => session(2));
    responses.push(json(403, { error: { code: "not_a_member", message: "not a member" } }));
    await expect(api.messages("c1")).rejects.toMatchObject({ status: 403, code: "not_a_member" });
    responses.push(new Response(null, { status: 204 }));
    await expect(api.leave("c1")).resolves.toBeUndefined();
    responses.push(new Response("<html>bad gateway</html>", { status: 502 }));
    await expect(api.channels()).rejects.toMatchObject({ status: 502, code: "http_502" });
  });

  it("reports a network failure as network_error", async () => {
    const tokens = new TokenManager({ storage: memory(), refresh: async () => session(2), setTimer: () => 0, clearTimer: () => {} });
    tokens.setSession(session(1));
    const api = new Api(tokens, "/api/v1", (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch);
    await expect(api.channels()).rejects.toMatchObject({ code: "network_error", status: 0 });
  });
});

describe("makeRefresher", () => {
  it("posts the refresh token and returns the new session", async () => {
    const f = vi.fn(async () => json(200, session(2)));
    const s = await makeRefresher("/api/v1", f as unknown as typeof fetch)("r1");
    expect(s.refresh_token).toBe("r2");
    const [url, init] = f.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/auth/refresh");
    expect(JSON.parse(String(init.body))).toEqual({ refresh_token: "r1" });
  });

  it("says RefreshRefused for a 401 (reused or revoked token), but not for a 503", async () => {
    const refused = makeRefresher("/api/v1", (async () =>
      json(401, { error: { code: "invalid_refresh_token", message: "reused" } })) as unknown as typeof fetch);
    await expect(refused("r1")).rejects.toBeInstanceOf(RefreshRefused);
    const down = makeRefresher("/api/v1", (async () =>
      json(503, { error: { code: "unavailable", message: "down" } })) as unknown as typeof fetch);
    const err = await down("r1").catch((e) => e);
    expect(err).not.toBeInstanceOf(RefreshRefused);
    expect(err).toMatchObject({ status: 503 });
  });
});

describe("fetchWsTicket", () => {
  it("asks for a ticket with the bearer token and returns it", async () => {
    const fetchFn = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => json(201, { ticket: "tk", expires_in: 30 }));
    await expect(fetchWsTicket("a1", "/api/v1", fetchFn as unknown as typeof fetch)).resolves.toBe("tk");
    const [url, init] = fetchFn.mock.calls[0];
    expect(String(url)).toBe("/api/v1/ws-tickets");
    expect(init?.method).toBe("POST");
    expect(new Headers(init?.headers).get("authorization")).toBe("Bearer a1");
  });

  it("turns a refusal into an ApiError with the status and code", async () => {
    const fetchFn = vi.fn(async () => json(401, { error: { code: "token_revoked", message: "ended" } }));
    const err = await fetchWsTicket("a1", "/api/v1", fetchFn as unknown as typeof fetch).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 401, code: "token_revoked" });
  });
});
