// REST client of /api/v1: bearer token, one refresh-and-retry on 401, errors as ApiError.

import { ApiError, NETWORK_ERROR } from "../lib/errors";
import { RefreshRefused, type TokenManager } from "../lib/tokens";
import type {
  Attachment,
  AttachmentLink,
  AttachmentUpload,
  Channel,
  DirectoryPage,
  DirectorySort,
  ErrorBody,
  MemberPresence,
  Message,
  Session,
  User,
} from "../lib/types";

type FetchFn = typeof fetch;

const TIMEOUT_MS = 15_000;

async function readError(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = "";
  try {
    const body = (await res.json()) as Partial<ErrorBody>;
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || "";
    }
  } catch {
    /* not JSON: keep the status */
  }
  return new ApiError(res.status, code, message);
}

async function call(fetchFn: FetchFn, url: string, init: RequestInit): Promise<Response> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    return await fetchFn(url, { ...init, signal: ctl.signal });
  } catch (e) {
    if (ctl.signal.aborted) throw new ApiError(0, "timeout", "");
    throw new ApiError(0, NETWORK_ERROR, e instanceof Error ? e.message : "");
  } finally {
    clearTimeout(timer);
  }
}

/** POST /auth/refresh, for the TokenManager. A 4xx answer means the refresh token is dead. */
export function makeRefresher(base = "/api/v1", fetchFn: FetchFn = (...a) => fetch(...a)) {
  return async (refreshToken: string): Promise<Session> => {
    const res = await call(fetchFn, `${base}/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    });
    if (res.ok) return (await res.json()) as Session;
    const err = await readError(res);
    if (res.status === 400 || res.status === 401 || res.status === 403 || res.status === 404) {
      throw new RefreshRefused(err.serverMessage || err.code);
    }
    throw err;
  };
}

/**
 * POST /ws-tickets: a single-use ticket (valid for seconds) that opens one WebSocket, so the
 * access token never appears in a URL (browsers cannot set headers on a WebSocket).
 */
export async function fetchWsTicket(
  token: string,
  base = "/api/v1",
  fetchFn: FetchFn = (...a) => fetch(...a),
): Promise<string> {
  const res = await call(fetchFn, `${base}/ws-tickets`, {
    method: "POST",
    headers: { accept: "application/json", authorization: `Bearer ${token}` },
  });
  if (res.status !== 201) throw await readError(res);
  const body = (await res.json()) as { ticket?: unknown };
  if (typeof body.ticket !== "string") throw new ApiError(res.status, "unexpected_body", "no ticket");
  return body.ticket;
}

export interface HistoryQuery {
  before?: string;
  after?: string;
  limit?: number;
}

export class Api {
  constructor(
    private readonly tokens: TokenManager,
    private readonly base = "/api/v1",
    private readonly fetchFn: FetchFn = (...a) => fetch(...a),
  ) {}

  private async request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const send = async (token: string | null) => {
      const headers: Record<string, string> = { accept: "application/json" };
      if (body !== undefined) headers["content-type"] = "application/json";
      if (token) headers.authorization = `Bearer ${token}`;
      return call(this.fetchFn, `${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    };

    let token: string | null = null;
    if (auth) {
      token = await this.tokens.accessToken();
      if (!token) throw new ApiError(401, "unauthorized", "");
    }
    let res = await send(token);
    if (auth && res.status === 401) {
      // The token may have expired or been revoked: refresh once and try again.
      try {
        token = (await this.tokens.refresh()).access_token;
      } catch (e) {
        if (e instanceof RefreshRefused) throw new ApiError(401, "unauthorized", "");
        throw e;
      }
      res = await send(token);
      if (res.status === 401) {
        this.tokens.clear();
        throw await readError(res);
      }
    }
    if (!res.ok) throw await readError(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  register(username: string, password: string, display_name?: string): Promise<Session> {
    const body: Record<string, string> = { username, password };
    if (display_name) body.display_name = display_name;
    return this.request("POST", "/auth/register", body, false);
  }

  login(username: string, password: string): Promise<Session> {
    return this.request("POST", "/auth/login", { username, password }, false);
  }

  logout(refresh_token: string): Promise<void> {
    return this.request("POST", "/auth/logout", { refresh_token }, false);
  }

  me(): Promise<User> {
    return this.request("GET", "/users/me");
  }

  async searchUsers(query: string): Promise<User[]> {
    const r = await this.request<{ users: User[] }>("GET", `/users?query=${encodeURIComponent(query)}`);
    return r.users ?? [];
  }

  async channels(): Promise<Channel[]> {
    const r = await this.request<{ channels: Channel[] }>("GET", "/channels");
    return r.channels ?? [];
  }

  createChannel(name: string, description?: string): Promise<Channel> {
    const body: Record<string, string> = { name };
    if (description) body.description = description;
    return this.request("POST", "/channels", body);
  }

  async searchChannels(query: string): Promise<Channel[]> {
    const r = await this.request<{ channels: Channel[] }>("GET", `/channels/search?query=${encodeURIComponent(query)}`);
    return r.channels ?? [];
  }

  /** One page of the channel directory; pass the previous page's `next_cursor` for the next. */
  async directory(sort: DirectorySort, cursor?: string | null, limit?: number): Promise<DirectoryPage> {
    const params = new URLSearchParams({ sort });
    if (limit) params.set("limit", String(limit));
    if (cursor) params.set("cursor", cursor);
    const r = await this.request<DirectoryPage>("GET", `/channels/directory?${params}`);
    return { channels: r.channels ?? [], next_cursor: r.next_cursor ?? null };
  }

  join(channelId: string): Promise<Channel> {
    return this.request("POST", `/channels/${encodeURIComponent(channelId)}/join`);
  }

  leave(channelId: string): Promise<void> {
    return this.request("POST", `/channels/${encodeURIComponent(channelId)}/leave`);
  }

  /** Each member online or not, and when last seen (members only). */
  async presence(channelId: string): Promise<MemberPresence[]> {
    const r = await this.request<{ members: MemberPresence[] }>(
      "GET",
      `/channels/${encodeURIComponent(channelId)}/presence`,
    );
    return r.members ?? [];
  }

  async members(channelId: string): Promise<User[]> {
    const r = await this.request<{ members: User[] }>("GET", `/channels/${encodeURIComponent(channelId)}/members`);
    return r.members ?? [];
  }

  openDm(userId: string): Promise<Channel> {
    return this.request("POST", "/dms", { user_id: userId });
  }

  async messages(channelId: string, q: HistoryQuery = {}): Promise<Message[]> {
    const params = new URLSearchParams();
    if (q.before) params.set("before", q.before);
    if (q.after) params.set("after", q.after);
    if (q.limit) params.set("limit", String(q.limit));
    const qs = params.toString();
    const r = await this.request<{ messages: Message[] }>(
      "GET",
      `/channels/${encodeURIComponent(channelId)}/messages${qs ? `?${qs}` : ""}`,
    );
    return r.messages ?? [];
  }

  // ----- attachments (docs/protocol.md, "Attachments") -----

  private attachmentPath(channelId: string, attachmentId?: string): string {
    const base = `/channels/${encodeURIComponent(channelId)}/attachments`;
    return attachmentId === undefined ? base : `${base}/${encodeURIComponent(attachmentId)}`;
  }

  /** Declares a file: where to PUT its bytes (201). */
  createAttachment(channelId: string, file: { name: string; content_type: string; size: number }): Promise<AttachmentUpload> {
    return this.request("POST", this.attachmentPath(channelId), {
      name: file.name,
      content_type: file.content_type,
      size: file.size,
    });
  }

  /** A new upload URL when the first one expired (the store answered 403). */
  renewUploadUrl(channelId: string, attachmentId: string): Promise<AttachmentUpload> {
    return this.request("POST", `${this.attachmentPath(channelId, attachmentId)}/upload-url`);
  }

  /** After the PUT: the server checks the object and answers the attachment (409 when it is not there). */
  completeAttachment(channelId: string, attachmentId: string): Promise<Attachment> {
    return this.request("POST", `${this.attachmentPath(channelId, attachmentId)}/complete`);
  }

  /** Short-lived links to the file (and its thumbnail) for members. */
  attachmentLink(channelId: string, attachmentId: string): Promise<AttachmentLink> {
    return this.request("GET", this.attachmentPath(channelId, attachmentId));
  }
}
