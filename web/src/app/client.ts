// The application controller: owns the session, the REST client, the WebSocket and the state the
// UI renders. Every server answer goes through here into the store.

import { Api, fetchWsTicket, makeRefresher } from "../net/api";
import { ChatSocket, type ConnInfo, type RefreshOutcome } from "../net/socket";
import { makePut } from "../net/upload";
import { ApiError, describe, describeError } from "../lib/errors";
import {
  addOutgoing,
  applyAck,
  applyEvent,
  coverRange,
  dropOutgoing,
  emptyTimeline,
  findGap,
  findMessage,
  lastPlacedId,
  maxKnown,
  mergeMessages,
  oldestPlaced,
  pageCoverage,
  resumePoints,
  sendFrame,
  sendingEntries,
  setOutgoingStatus,
  type Outgoing,
  type Timeline,
} from "../lib/messages";
import {
  ackChange,
  addChange,
  changeFrame,
  countAttempt,
  dropChange,
  emojiProblem,
  isRetryable,
  overlayChanges,
  settleByEvent,
  unackedChanges,
  type ChangeKind,
  type PendingChange,
} from "../lib/changes";
import {
  addTyping,
  clearTyping,
  nextTypingExpiry,
  pruneTyping,
  TypingThrottle,
  type Presence,
  type TypingState,
} from "../lib/ephemeral";
import { RefreshRefused, TokenManager, type KeyValueStore, type StoredSession } from "../lib/tokens";
import { appStateOf, appStateToSend } from "../lib/appstate";
import { attachmentsLine } from "../lib/attachments";
import type { Upload } from "../lib/uploads";
import { lastActivity } from "../lib/conversations";
import { mentionsMe } from "../lib/mentions";
import { notificationText, shouldNotify, type NotifyStatus } from "../lib/notify";
import { advanceMark, markFromList, markTarget, unreadOf, type ReadMark, type Unread } from "../lib/readstate";
import {
  Limits,
  type AppVisibility,
  type Channel,
  type AttachmentLink,
  type ChannelEvent,
  type DirectoryPage,
  type DirectorySort,
  type Message,
  type MessageAttachment,
  type ServerFrame,
  type User,
} from "../lib/types";
import { uuid } from "../lib/uuid";
import { AttachmentLinks } from "./attachmentLinks";
import { Notifier } from "./notifier";
import { Store } from "./store";
import { Uploads, type AddResult } from "./uploads";

export interface ChannelView {
  tl: Timeline;
  /** The newest history page was loaded (the conversation was opened at least once). */
  loadedNewest: boolean;
  loadingNewest: boolean;
  loadingOlder: boolean;
  /** An older page came back empty although seq says there is more: stop asking. */
  olderExhausted?: boolean;
  /** Why the history could not be loaded, for a person. */
  error?: string;
}

export interface Notice {
  id: number;
  kind: "error" | "info";
  text: string;
}

export interface AppState {
  phase: "anonymous" | "ready";
  me: User | null;
  conn: ConnInfo;
  online: boolean;
  channels: Channel[];
  channelsLoaded: boolean;
  channelsError?: string;
  activeId: string | null;
  views: Record<string, ChannelView>;
  /** Per conversation: how far the user has read it (lib/readstate.ts). */
  reads: Record<string, ReadMark>;
  /**
   * Per conversation: the read mark when the person last came to look at it with something unread
   * (opened it, or came back to the tab): the "new since you last read" line goes after it.
   */
  readLine: Record<string, number>;
  /** Conversations joined, created or started here, and when: the list orders them by it until they have messages. */
  joinedAt: Record<string, string>;
  /** Desktop notifications: whether they are on, and whether they can be. */
  notifications: NotifyStatus;
  users: Record<string, User>;
  notice: Notice | null;
  /** Text for the screen reader live region (new messages elsewhere, connection changes). */
  announcement: { id: number; text: string };
  /** Shown on the login form (e.g. after the session ended). */
  authMessage?: string;
  /** Who is typing where (until when). */
  typing: TypingState;
  /** Online / last seen, by user id (DM peers live; members of the open channel on request). */
  presence: Record<string, Presence>;
  /** Per channel, its members' ids, once its presence was asked for (a DM's peer is the other). */
  channelMembers: Record<string, string[]>;
  /** Our edits, deletes and reactions on their way (shown on top of the messages until their events). */
  changes: PendingChange[];
  /** Per conversation, the files in its composer, uploading or ready to go with the next message. */
  uploads: Record<string, Upload[]>;
}

const ACK_TIMEOUT_MS = 10_000;
/** A conversation's presence is asked for again at most this often when it is opened. */
const PRESENCE_REFRESH_MS = 30_000;
const PLACE_CHECK_MS = 3_000;
/** An acked change whose event has not come by then was moot (nothing changed): forget it. */
const MOOT_AFTER_MS = 10_000;
/** A change is written at most this often before we give up on it (timeouts, `unavailable`). */
const MAX_CHANGE_ATTEMPTS = 6;
/** Error notices about changes go away by themselves after this long. */
const CHANGE_NOTICE_MS = 6_000;

const CHANGE_WORDS: Record<ChangeKind, string> = {
  edit: "Your edit",
  delete: "Deleting the message",
  react: "Your reaction",
  unreact: "Removing your reaction",
};

const emptyView = (): ChannelView => ({
  tl: emptyTimeline(),
  loadedNewest: false,
  loadingNewest: false,
  loadingOlder: false,
});

function memoryStorage(): KeyValueStore {
  const m = new Map<string, string>();
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
  };
}

function browserStorage(): KeyValueStore {
  try {
    const s = window.localStorage;
    s.setItem("chat.probe", "1");
    s.removeItem("chat.probe");
    return s;
  } catch {
    return memoryStorage(); // private mode: the session lasts as long as the tab
  }
}

/** The socket's URL, with a fresh single-use ticket: the access token stays out of URLs.
 * `resume`: the first frame will be a `resume`, so the gateway holds live messages until it is
 * served (docs/protocol.md, "Reconnect and resume"). */
export async function wsUrl(token: string, resume: boolean): Promise<string> {
  const ticket = await fetchWsTicket(token);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const announce = resume ? "&resume=1" : "";
  return `${proto}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}${announce}`;
}

export class ChatApp {
  readonly store: Store<AppState>;
  readonly tokens: TokenManager;
  readonly api: Api;
  private readonly socket: ChatSocket;
  private ackTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private placeTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private gapFilling = new Set<string>();
  private membersLoadedAt = new Map<string, number>();
  private channelsLoading: Promise<void> | null = null;
  private channelsAgain = false;
  private unknownChannels = new Set<string>();
  private askedForUser = new Set<string>();
  private noticeSeq = 0;
  private announceSeq = 0;
  private connectedOnce = false;
  /** The current socket was opened with `resume=1`: its first frame must follow at once. */
  private announcedResume = false;
  private typingThrottle = new TypingThrottle();
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private presenceLoadedAt = new Map<string, number>();
  /** Per client_event_id: the ack timeout, the retry delay, or the wait for a moot change's event. */
  private changeTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private noticeTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly notifier: Notifier;
  private readonly uploads: Uploads;
  private readonly links: AttachmentLinks;
  /**
   * Conversations whose "new since you last read" line is to be placed at the next mark: "open"
   * (just opened: at the mark if something is unread, else no line), "return" (the tab is visible
   * again: moved only if something new came meanwhile).
   */
  private lineDue = new Map<string, "open" | "return">();
  /** Conversations whose last `mark_read` could not be written (no connection): sent on reconnect. */
  private unsentMarks = new Set<string>();
  /** The `app_state` last written on the current socket (undefined: none yet, so foreground). */
  private appStateSent: AppVisibility | undefined;
  /** Shows a conversation (a notification was clicked); the UI sets it, it owns the routes. */
  openConversation: (channelId: string) => void = () => {};

  constructor() {
    const withLock =
      typeof navigator !== "undefined" && navigator.locks
        ? <T,>(name: string, fn: () => Promise<T>) => navigator.locks.request(name, fn) as Promise<T>
        : undefined;
    const storage = browserStorage();
    this.tokens = new TokenManager({ storage, refresh: makeRefresher(), withLock });
    this.notifier = new Notifier(storage, (id) => this.openConversation(id));
    this.api = new Api(this.tokens);
    const s = this.tokens.session;
    this.store = new Store<AppState>({
      phase: s ? "ready" : "anonymous",
      me: s ? s.user : null,
      conn: { status: "stopped" },
      online: navigator.onLine !== false,
      channels: [],
      channelsLoaded: false,
      activeId: null,
      views: {},
      reads: {},
      readLine: {},
      joinedAt: {},
      notifications: this.notifier.status(s?.user.id),
      users: s ? { [s.user.id]: s.user } : {},
      notice: null,
      announcement: { id: 0, text: "" },
      typing: {},
      presence: {},
      channelMembers: {},
      changes: [],
      uploads: {},
    });
    this.uploads = new Uploads({
      api: this.api,
      put: makePut(),
      get: () => this.state.uploads,
      set: (uploads) => this.store.update({ uploads }),
      newKey: uuid,
    });
    this.links = new AttachmentLinks((channelId, id) => this.api.attachmentLink(channelId, id));
    this.socket = new ChatSocket({
      url: (token) => {
        this.announcedResume = Object.keys(this.resumeChannels()).length > 0;
        return wsUrl(token, this.announcedResume);
      },
      getToken: () => this.tokens.accessToken(),
      refreshToken: () => this.forceRefresh(),
      onFrame: (f) => this.onFrame(f),
      onReady: () => this.onReady(),
      onStatus: (info) => this.onConnStatus(info),
      onAuthLost: () => this.sessionEnded(),
      isOnline: () => navigator.onLine !== false,
    });
    this.tokens.subscribe((session) => this.onSessionChange(session));

    window.addEventListener("online", () => {
      this.store.update({ online: true });
      this.socket.wentOnline();
    });
    window.addEventListener("offline", () => {
      this.store.update({ online: false });
      this.socket.wentOffline();
    });
    window.addEventListener("storage", (e) => {
      if (e.key === null || e.key === "chat.session") this.tokens.reloadFromStorage();
    });
    document.addEventListener("visibilitychange", () => {
      const id = this.state.activeId;
      if (id && this.visible()) this.lineDue.set(id, "return");
      // The permission may have been changed in the site settings meanwhile.
      const notifications = this.notifier.status(this.state.me?.id);
      if (notifications !== this.state.notifications) this.store.update({ notifications });
      this.syncAppState();
      this.markSeen();
    });
    // Whatever changed (a page, a live message, the list, the open conversation), mark what is shown.
    this.store.subscribe(() => this.markSeen());
  }

  get state(): AppState {
    return this.store.get();
  }

  /** Starts the connected part if a session was kept from an earlier visit. */
  boot(): void {
    if (this.tokens.session) {
      this.start();
      // Check the kept session (and learn a changed display name).
      this.api.me().then(
        (me) => this.store.update((s) => ({ me, users: { ...s.users, [me.id]: me } })),
        (e) => {
          if (e instanceof ApiError && e.status === 401) this.sessionEnded();
        },
      );
    }
  }

  // ----- accounts -------------------------------------------------------------------------

  async login(username: string, password: string): Promise<void> {
    const s = await this.api.login(username, password);
    this.enter(this.tokens.setSession(s));
  }

  async register(username: string, password: string, displayName?: string): Promise<void> {
    const s = await this.api.register(username, password, displayName || undefined);
    this.enter(this.tokens.setSession(s));
  }

  async logout(): Promise<void> {
    const s = this.tokens.session;
    this.leaveSession();
    this.store.update({ authMessage: "You have logged out." });
    if (s) {
      try {
        await this.api.logout(s.refresh_token);
      } catch {
        /* the refresh token will expire on its own */
      }
    }
  }

  private enter(s: StoredSession): void {
    this.store.update({
      phase: "ready",
      me: s.user,
      users: { [s.user.id]: s.user },
      authMessage: undefined,
      notice: null,
      notifications: this.notifier.status(s.user.id),
    });
    this.start();
  }

  private start(): void {
    this.connectedOnce = false;
    this.socket.start();
    void this.loadChannels();
  }

  private onSessionChange(s: StoredSession | null): void {
    if (s === null && this.state.phase === "ready") this.sessionEnded();
    else if (s && this.state.phase === "anonymous") this.enter(s); // logged in in another tab
    else if (s && this.state.me && s.user.id !== this.state.me.id) location.reload(); // another person, another tab
  }

  private sessionEnded(): void {
    if (this.state.phase !== "ready") return;
    this.leaveSession();
    this.store.update({ authMessage: "Your session has ended. Please log in again." });
  }

  private leaveSession(): void {
    // Anonymous first, so the "session cleared" notification below finds nothing to end.
    this.store.update({ phase: "anonymous" });
    this.socket.stop();
    this.tokens.clear();
    for (const t of this.ackTimers.values()) clearTimeout(t);
    for (const t of this.placeTimers.values()) clearTimeout(t);
    for (const t of this.changeTimers.values()) clearTimeout(t);
    this.ackTimers.clear();
    this.placeTimers.clear();
    this.changeTimers.clear();
    this.membersLoadedAt.clear();
    this.askedForUser.clear();
    this.presenceLoadedAt.clear();
    this.lineDue.clear();
    this.unsentMarks.clear();
    this.uploads.clear();
    this.links.clear();
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    this.typingThrottle = new TypingThrottle();
    this.store.update({
      phase: "anonymous",
      me: null,
      conn: { status: "stopped" },
      channels: [],
      channelsLoaded: false,
      channelsError: undefined,
      activeId: null,
      views: {},
      reads: {},
      readLine: {},
      joinedAt: {},
      users: {},
      notice: null,
      typing: {},
      presence: {},
      channelMembers: {},
      changes: [],
      uploads: {},
    });
  }

  private async forceRefresh(): Promise<RefreshOutcome> {
    try {
      await this.tokens.refresh();
      return "ok";
    } catch (e) {
      return e instanceof RefreshRefused ? "refused" : "error";
    }
  }

  // ----- notices ----------------------------------------------------------------------------

  /** Shows a notice; with `ttlMs` it goes away by itself (unless another replaced it). */
  notify(text: string, kind: Notice["kind"] = "error", ttlMs?: number): void {
    const id = ++this.noticeSeq;
    this.store.update({ notice: { id, kind, text } });
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
    if (ttlMs) {
      this.noticeTimer = setTimeout(() => {
        this.noticeTimer = null;
        if (this.state.notice?.id === id) this.store.update({ notice: null });
      }, ttlMs);
    }
  }

  dismissNotice(): void {
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = null;
    this.store.update({ notice: null });
  }

  private announce(text: string): void {
    this.store.update({ announcement: { id: ++this.announceSeq, text } });
  }

  private guard(e: unknown): void {
    if (e instanceof ApiError && e.status === 401) {
      this.sessionEnded();
      return;
    }
    this.notify(describe(e));
  }

  // ----- channels ---------------------------------------------------------------------------

  /** Reloads the list; calls while a load is running make one more load after it. */
  loadChannels(): Promise<void> {
    if (this.channelsLoading) {
      this.channelsAgain = true;
      return this.channelsLoading;
    }
    this.channelsLoading = this.fetchChannels().finally(() => {
      this.channelsLoading = null;
      if (this.channelsAgain) {
        this.channelsAgain = false;
        void this.loadChannels();
      }
    });
    return this.channelsLoading;
  }

  private async fetchChannels(): Promise<void> {
    try {
      const channels = await this.api.channels();
      this.store.update((s) => {
        const reads = { ...s.reads };
        for (const c of channels) reads[c.id] = markFromList(s.reads[c.id], c);
        return { channels, reads, channelsLoaded: true, channelsError: undefined };
      });
      // The peers of direct conversations: their presence dots (live frames follow).
      void this.loadDmPresence(channels);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return this.sessionEnded();
      this.store.update({ channelsLoaded: true, channelsError: describe(e) });
    }
  }

  channel(id: string): Channel | undefined {
    return this.state.channels.find((c) => c.id === id);
  }

  /**
   * A conversation from an answer other than the list (create, join, a new DM). `joined`: it is
   * new to us, so it goes to the top of the list. Its read mark comes with the list, reloaded.
   */
  private addChannel(c: Channel, joined: boolean): void {
    this.store.update((s) => ({
      channels: s.channels.some((x) => x.id === c.id)
        ? s.channels.map((x) => (x.id === c.id ? { ...x, ...c } : x))
        : [...s.channels, c],
      joinedAt: joined ? { ...s.joinedAt, [c.id]: new Date().toISOString() } : s.joinedAt,
    }));
    if (joined) void this.loadChannels();
  }

  async createChannel(name: string, description?: string): Promise<Channel> {
    const c = await this.api.createChannel(name.trim(), description?.trim() || undefined);
    this.addChannel(c, true);
    return c;
  }

  /** Whether the current user may delete `message` of `channelId`: their own, or any in a group
   * channel they created (its owner; the server decides in the end: `not_author`). */
  canDelete(channelId: string, message: Message): boolean {
    const s = this.state;
    if (!s.me || message.deleted) return false;
    if (message.sender_id === s.me.id) return true;
    const c = this.channel(channelId);
    return c?.kind === "group" && !!c.created_by && c.created_by === s.me.id;
  }

  searchChannels(query: string): Promise<Channel[]> {
    return this.api.searchChannels(query);
  }

  channelDirectory(sort: DirectorySort, cursor?: string | null): Promise<DirectoryPage> {
    return this.api.directory(sort, cursor, Limits.DIRECTORY_DEFAULT_LIMIT);
  }

  async join(id: string): Promise<Channel> {
    const c = await this.api.join(id);
    this.addChannel(c, true);
    return c;
  }

  async leave(id: string): Promise<void> {
    await this.api.leave(id);
    this.uploads.clear(id);
    this.store.update((s) => {
      const views = { ...s.views };
      delete views[id];
      const reads = { ...s.reads };
      delete reads[id];
      return {
        channels: s.channels.filter((c) => c.id !== id),
        views,
        reads,
        changes: s.changes.filter((c) => c.channel_id !== id),
      };
    });
  }

  searchUsers(query: string): Promise<User[]> {
    return this.api.searchUsers(query);
  }

  async openDm(user: User): Promise<Channel> {
    const c = await this.api.openDm(user.id);
    this.addChannel(c, !this.channel(c.id));
    this.store.update((s) => ({ users: { ...s.users, [user.id]: user } }));
    return c;
  }

  // ----- conversation -----------------------------------------------------------------------

  /** The conversation shown now (null: none). Loads its history the first time. */
  setActive(id: string | null): void {
    if (this.state.activeId !== id) {
      this.store.update({ activeId: id });
      if (id) this.lineDue.set(id, "open");
    }
    if (!id) return;
    this.markSeen();
    const v = this.state.views[id];
    if (!v || (!v.loadedNewest && !v.loadingNewest)) void this.loadNewest(id);
    void this.loadMembers(id);
    void this.loadPresence(id);
  }

  // ----- typing and presence ----------------------------------------------------------------

  /** The person typed in the composer of `channelId` (the draft is now `draft`). */
  typed(channelId: string, draft: string): void {
    if (this.state.conn.status !== "connected") return;
    if (!this.typingThrottle.shouldSend(channelId, draft, Date.now())) return;
    this.socket.send({ type: "typing", channel_id: channelId });
  }

  /** Online / last seen of a channel's members; a DM's peer learned on the way. */
  async loadPresence(id: string, force = false): Promise<void> {
    const last = this.presenceLoadedAt.get(id) ?? 0;
    if (!force && Date.now() - last < PRESENCE_REFRESH_MS) return;
    this.presenceLoadedAt.set(id, Date.now());
    try {
      const members = await this.api.presence(id);
      this.store.update((s) => {
        const presence = { ...s.presence };
        for (const m of members) presence[m.user_id] = { online: m.online, last_seen_at: m.last_seen_at };
        return {
          presence,
          channelMembers: { ...s.channelMembers, [id]: members.map((m) => m.user_id) },
        };
      });
    } catch {
      this.presenceLoadedAt.delete(id); // no dots until the next try
    }
  }

  /** Presence of every DM peer, one conversation after another (there are few). Asked again
   * after every reconnect: frames sent while we were away were lost. */
  private async loadDmPresence(channels: Channel[]): Promise<void> {
    for (const c of channels) if (c.kind === "direct") await this.loadPresence(c.id, true);
  }

  /** The other person of a direct conversation, once known. */
  dmPeer(channelId: string): string | undefined {
    const me = this.state.me?.id;
    return this.state.channelMembers[channelId]?.find((u) => u !== me);
  }

  private onTyping(f: Extract<ServerFrame, { type: "typing" }>): void {
    if (!f.channel_id || !f.user_id || f.user_id === this.state.me?.id) return;
    this.store.update((s) => ({ typing: addTyping(s.typing, f.channel_id, f.user_id, f.expires_in_ms, Date.now()) }));
    this.scheduleTypingPrune();
  }

  /** Re-render when the next typing indicator ends. */
  private scheduleTypingPrune(): void {
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    const next = nextTypingExpiry(this.state.typing);
    if (next === null) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = null;
      this.store.update((s) => ({ typing: pruneTyping(s.typing, Date.now()) }));
      this.scheduleTypingPrune();
    }, Math.max(0, next - Date.now()) + 20);
  }

  // ----- read state, unread counts, notifications ------------------------------------------

  /** Whether the page is on screen (a hidden tab shows nothing, so marks nothing read). */
  private visible(): boolean {
    if (typeof document === "undefined") return true;
    return document.visibilityState ? document.visibilityState !== "hidden" : !document.hidden;
  }

  /**
   * Marks the open conversation read up to its newest message while it is on screen; first, if
   * the person just came to look, remembers where the mark was (the "new since you last read"
   * line). Waits for the mark (from the list) and the newest page: both are needed for the line.
   */
  private markSeen(): void {
    const s = this.state;
    const id = s.activeId;
    if (s.phase !== "ready" || !id || !this.visible()) return;
    const mark = s.reads[id];
    const v = s.views[id];
    if (!mark || !v?.loadedNewest) return;
    const target = markTarget(v.tl);
    let readLine = s.readLine;
    const due = this.lineDue.get(id);
    if (due !== undefined) {
      this.lineDue.delete(id);
      if (target > mark.seq) readLine = { ...readLine, [id]: mark.seq };
      else if (due === "open" && id in readLine) {
        // Nothing new when opened: no line (what comes while it is on screen is read as it comes).
        readLine = { ...readLine };
        delete readLine[id];
      }
    }
    if (target <= mark.seq) {
      if (readLine !== s.readLine) this.store.update({ readLine });
      return;
    }
    this.store.update({ readLine, reads: { ...s.reads, [id]: advanceMark(mark, target) } });
    this.sendMark(id, target);
  }

  private sendMark(channelId: string, seq: number): void {
    if (this.socket.send({ type: "mark_read", channel_id: channelId, seq })) this.unsentMarks.delete(channelId);
    else this.unsentMarks.add(channelId); // the mark only moves forward: the latest is enough, later
  }

  /** Another device of ours read a conversation up to `seq`. */
  private onRead(channelId: string, seq: number): void {
    const mark = this.state.reads[channelId];
    const next = advanceMark(mark, seq);
    if (next !== mark) this.store.update((s) => ({ reads: { ...s.reads, [channelId]: next } }));
  }

  /** What is unread in a conversation. */
  unread(channelId: string): Unread {
    const s = this.state;
    return unreadOf(s.reads[channelId], s.views[channelId]?.tl, s.me?.id ?? "");
  }

  /** When a conversation was last active (for the order of the list). */
  activity(c: Channel): number {
    return lastActivity(c, this.state.views[c.id]?.tl, this.state.joinedAt[c.id]);
  }

  /** Turns desktop notifications on: call it from a click (the browser asks for the permission). */
  async enableNotifications(): Promise<void> {
    const me = this.state.me;
    if (!me) return;
    const notifications = await this.notifier.enable(me.id);
    this.store.update({ notifications });
    if (notifications === "blocked") {
      this.notify("Notifications are blocked for this site. Allow them in the browser's site settings.", "info", CHANGE_NOTICE_MS);
    }
  }

  disableNotifications(): void {
    const me = this.state.me;
    if (me) this.store.update({ notifications: this.notifier.disable(me.id) });
  }

  /** A desktop notification for a new message of someone else, if the person is not looking at it. */
  private maybeNotify(m: Message): void {
    const s = this.state;
    if (!s.me) return;
    const context = { status: s.notifications, myId: s.me.id, activeId: s.activeId, hidden: !this.visible(), now: Date.now() };
    if (!shouldNotify(m, context)) return;
    const text = notificationText(m, this.channel(m.channel_id), this.nameOf(m.sender_id), mentionsMe(m, s.me.id));
    this.notifier.show(text, m.channel_id);
  }

  private view(id: string): ChannelView {
    return this.state.views[id] ?? emptyView();
  }

  private patchView(id: string, patch: Partial<ChannelView> | ((v: ChannelView) => Partial<ChannelView>)): void {
    this.store.update((s) => {
      const cur = s.views[id] ?? emptyView();
      const p = typeof patch === "function" ? patch(cur) : patch;
      return { views: { ...s.views, [id]: { ...cur, ...p } } };
    });
  }

  private mergeInto(id: string, messages: Message[]): void {
    if (messages.length === 0) return;
    this.patchView(id, (v) => ({ tl: mergeMessages(v.tl, messages) }));
  }

  /** The newest position known of a channel now (what a page asked for now at least reflects). */
  private knownMax(id: string): number {
    return maxKnown(this.view(id).tl);
  }

  /** The seq of a placed message of a channel. */
  private seqOf(id: string, messageId: string): number | undefined {
    const m = this.view(id).tl.placed.find((x) => x.id === messageId);
    return typeof m?.seq === "number" ? m.seq : undefined;
  }

  /**
   * Merges a history page, recording the positions it covers (message seqs have gaps: the
   * positions between its messages held events) and replacing older copies of its messages.
   */
  private mergePage(
    id: string,
    page: Message[],
    q: { limit: number; before?: number; after?: number; knownMax: number },
  ): void {
    const cover = pageCoverage(page, q);
    const version = Math.max(cover ? cover[1] : 0, q.knownMax);
    this.patchView(id, (v) => {
      let tl = mergeMessages(v.tl, page, version);
      if (cover) tl = coverRange(tl, cover[0], cover[1]);
      return { tl };
    });
  }

  async loadNewest(id: string): Promise<void> {
    this.patchView(id, { loadingNewest: true, error: undefined });
    try {
      const knownMax = this.knownMax(id);
      const page = await this.api.messages(id, { limit: Limits.HISTORY_PAGE });
      this.mergePage(id, page, { limit: Limits.HISTORY_PAGE, knownMax });
      this.patchView(id, { loadedNewest: true, loadingNewest: false });
      void this.fillGaps(id);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return this.sessionEnded();
      this.patchView(id, { loadingNewest: false, error: describe(e) });
    }
  }

  async loadOlder(id: string): Promise<void> {
    const v = this.view(id);
    const oldest = oldestPlaced(v.tl);
    if (!oldest || v.loadingOlder || v.olderExhausted) return;
    this.patchView(id, { loadingOlder: true, error: undefined });
    try {
      const knownMax = this.knownMax(id);
      const page = await this.api.messages(id, { before: oldest.id, limit: Limits.HISTORY_PAGE });
      const before = this.view(id).tl.placed.length;
      this.mergePage(id, page, { limit: Limits.HISTORY_PAGE, before: oldest.seq ?? undefined, knownMax });
      const grew = this.view(id).tl.placed.length !== before;
      this.patchView(id, { loadingOlder: false, olderExhausted: !grew });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return this.sessionEnded();
      this.patchView(id, { loadingOlder: false, error: describe(e) });
    }
  }

  /** Fetches what is missing between the messages we have (seq holes), page by page. */
  async fillGaps(id: string): Promise<void> {
    if (this.gapFilling.has(id)) return;
    this.gapFilling.add(id);
    try {
      for (let round = 0; round < 50; round++) {
        const gap = findGap(this.view(id).tl);
        if (!gap) break;
        const afterSeq = this.seqOf(id, gap.afterId);
        const knownMax = this.knownMax(id);
        const page = await this.api.messages(id, { after: gap.afterId, limit: Limits.HISTORY_MAX_LIMIT });
        const before = this.view(id).tl;
        this.mergePage(id, page, { limit: Limits.HISTORY_MAX_LIMIT, after: afterSeq, knownMax });
        // Nothing new, or the same hole again: don't spin.
        const again = findGap(this.view(id).tl);
        if (this.view(id).tl === before || (again && again.afterId === gap.afterId && again.missing >= gap.missing)) break;
      }
    } catch {
      /* try again on the next live message or reconnect */
    } finally {
      this.gapFilling.delete(id);
    }
  }

  /** Names of the members; `force` for a sender we don't know yet (joined after we looked). */
  private async loadMembers(id: string, force = false): Promise<void> {
    const last = this.membersLoadedAt.get(id) ?? 0;
    if (!force && Date.now() - last < 60_000) return;
    this.membersLoadedAt.set(id, Date.now());
    try {
      const members = await this.api.members(id);
      this.store.update((s) => {
        const users = { ...s.users };
        for (const u of members) users[u.id] = u;
        return { users };
      });
    } catch {
      /* names fall back to "someone" */
    }
  }

  // ----- sending ----------------------------------------------------------------------------

  /**
   * Sends a message; `replyTo`: the id of the message of the channel it answers; `attachments`:
   * completed uploads it carries (see `takeUploads`; the body may then be empty).
   */
  send(channelId: string, body: string, replyTo?: string, attachments?: MessageAttachment[]): void {
    const me = this.state.me;
    if (!me) return;
    const out: Outgoing = {
      client_msg_id: uuid(),
      channel_id: channelId,
      sender_id: me.id,
      body,
      created_at: new Date().toISOString(),
      status: "sending",
      ...(replyTo ? { reply_to: replyTo } : {}),
      ...(attachments && attachments.length ? { attachments } : {}),
    };
    this.patchView(channelId, (v) => ({ tl: addOutgoing(v.tl, out) }));
    this.typingThrottle.sent(channelId);
    this.transmit(out);
  }

  /** Sends a failed message again, with the same client_msg_id: the server won't duplicate it. */
  retry(channelId: string, clientMsgId: string): void {
    const out = this.view(channelId).tl.pending.find((p) => p.client_msg_id === clientMsgId);
    if (!out) return;
    this.patchView(channelId, (v) => ({ tl: setOutgoingStatus(v.tl, clientMsgId, "sending") }));
    this.transmit(out);
  }

  discard(channelId: string, clientMsgId: string): void {
    this.clearAckTimer(clientMsgId);
    this.patchView(channelId, (v) => ({ tl: dropOutgoing(v.tl, clientMsgId) }));
  }

  private transmit(out: Outgoing): void {
    const sent = this.socket.send(sendFrame(out));
    // Not connected: it waits and goes out after the reconnect (see onReady).
    if (!sent) return;
    this.clearAckTimer(out.client_msg_id);
    this.ackTimers.set(
      out.client_msg_id,
      setTimeout(() => {
        this.ackTimers.delete(out.client_msg_id);
        this.patchView(out.channel_id, (v) => ({
          tl: setOutgoingStatus(v.tl, out.client_msg_id, "failed", "Not confirmed by the server in time."),
        }));
      }, ACK_TIMEOUT_MS),
    );
  }

  private clearAckTimer(clientMsgId: string): void {
    const t = this.ackTimers.get(clientMsgId);
    if (t) clearTimeout(t);
    this.ackTimers.delete(clientMsgId);
  }

  // ----- attachments ------------------------------------------------------------------------

  /** Files picked, pasted or dropped into the composer of `channelId`: checked, then uploaded. */
  attach(channelId: string, files: ArrayLike<File>): AddResult {
    return this.uploads.add(channelId, files);
  }

  /** Cancels an upload (aborting its PUT) or removes a file from the composer. */
  removeUpload(channelId: string, key: string): void {
    this.uploads.remove(channelId, key);
  }

  retryUpload(channelId: string, key: string): void {
    this.uploads.retry(channelId, key);
  }

  /** The composer's completed uploads, for the message being sent now (their chips go). */
  takeUploads(channelId: string): MessageAttachment[] {
    return this.uploads.take(channelId);
  }

  /** Links to download an attachment (kept while valid); `fresh`: ask the server again. */
  attachmentLink(channelId: string, attachmentId: string, fresh = false): Promise<AttachmentLink> {
    return this.links.get(channelId, attachmentId, fresh);
  }

  /** A kept link still usable for a while, without asking (for a click that must open a tab now). */
  cachedAttachmentLink(attachmentId: string): AttachmentLink | undefined {
    return this.links.cached(attachmentId);
  }

  // ----- changes: edit, delete, react, unreact ---------------------------------------------

  /** Replaces the body of one of our messages. */
  edit(channelId: string, messageId: string, body: string): void {
    const m = findMessage(this.view(channelId).tl, messageId);
    if (m && overlayChanges(m, this.state.changes).message.body === body) return; // nothing to change
    this.change(channelId, messageId, "edit", { body });
  }

  /** Deletes a message (ours, or any in a group channel we created). */
  deleteMessage(channelId: string, messageId: string): void {
    this.change(channelId, messageId, "delete", {});
  }

  react(channelId: string, messageId: string, emoji: string): void {
    const problem = emojiProblem(emoji);
    if (problem) return this.notify(problem, "error", CHANGE_NOTICE_MS);
    this.change(channelId, messageId, "react", { emoji });
  }

  unreact(channelId: string, messageId: string, emoji: string): void {
    this.change(channelId, messageId, "unreact", { emoji });
  }

  /** Adds our `emoji` to the message, or takes it back if it is there (as shown, pending changes included). */
  toggleReaction(channelId: string, messageId: string, emoji: string): void {
    const m = findMessage(this.view(channelId).tl, messageId);
    if (!m) return;
    const shown = overlayChanges(m, this.state.changes).message;
    const mine = shown.reactions?.some((r) => r.emoji === emoji && r.me) ?? false;
    if (mine) this.unreact(channelId, messageId, emoji);
    else this.react(channelId, messageId, emoji);
  }

  private change(channelId: string, messageId: string, kind: ChangeKind, fields: { body?: string; emoji?: string }): void {
    if (!this.state.me) return;
    const c: PendingChange = {
      client_event_id: uuid(),
      channel_id: channelId,
      message_id: messageId,
      kind,
      ...fields,
      attempts: 0,
    };
    this.store.update((s) => ({ changes: addChange(s.changes, c) }));
    this.transmitChange(c.client_event_id);
  }

  /** Writes a change (again, with its client_event_id) if connected; otherwise it waits for onReady. */
  private transmitChange(clientEventId: string): void {
    const c = this.state.changes.find((x) => x.client_event_id === clientEventId);
    if (!c || c.event_id !== undefined) return;
    this.clearChangeTimer(clientEventId);
    if (c.attempts >= MAX_CHANGE_ATTEMPTS) {
      this.giveUpChange(c, "The server did not confirm it.");
      return;
    }
    if (!this.socket.send(changeFrame(c))) return;
    this.store.update((s) => ({ changes: countAttempt(s.changes, clientEventId) }));
    this.changeTimers.set(
      clientEventId,
      setTimeout(() => {
        this.changeTimers.delete(clientEventId);
        // No ack in time: the same change again (the server never applies it twice).
        this.transmitChange(clientEventId);
      }, ACK_TIMEOUT_MS),
    );
  }

  private clearChangeTimer(clientEventId: string): void {
    const t = this.changeTimers.get(clientEventId);
    if (t) clearTimeout(t);
    this.changeTimers.delete(clientEventId);
  }

  private giveUpChange(c: PendingChange, why: string): void {
    this.clearChangeTimer(c.client_event_id);
    this.store.update((s) => ({ changes: dropChange(s.changes, c.client_event_id) }));
    this.notify(`${CHANGE_WORDS[c.kind]} did not go through. ${why}`, "error", CHANGE_NOTICE_MS);
  }

  private onEventAck(f: Extract<ServerFrame, { type: "event_ack" }>): void {
    if (!f.client_event_id) return;
    this.clearChangeTimer(f.client_event_id);
    if (!this.state.changes.some((c) => c.client_event_id === f.client_event_id)) return; // its event came first
    this.store.update((s) => ({ changes: ackChange(s.changes, f.client_event_id, f.event_id) }));
    // Its event follows, or never if it turned out moot: then stop showing it as pending.
    const id = f.client_event_id;
    this.changeTimers.set(
      id,
      setTimeout(() => {
        this.changeTimers.delete(id);
        this.store.update((s) => ({ changes: dropChange(s.changes, id) }));
      }, MOOT_AFTER_MS),
    );
  }

  private onEvent(e: ChannelEvent): void {
    const me = this.state.me;
    if (!me || !e || !e.channel_id || typeof e.seq !== "number") return;
    this.patchView(e.channel_id, (v) => ({ tl: applyEvent(v.tl, e, me.id) }));
    const settled = settleByEvent(this.state.changes, e, me.id);
    if (settled !== this.state.changes) {
      for (const c of this.state.changes) if (!settled.includes(c)) this.clearChangeTimer(c.client_event_id);
      this.store.update({ changes: settled });
    }
    const tl = this.state.views[e.channel_id]?.tl;
    if (tl && findGap(tl)) void this.fillGaps(e.channel_id);
  }

  /** An `error` frame about one of our changes. */
  private onChangeError(f: Extract<ServerFrame, { type: "error" }>, clientEventId: string): void {
    const c = this.state.changes.find((x) => x.client_event_id === clientEventId);
    this.clearChangeTimer(clientEventId);
    if (!c) return;
    if (isRetryable(f.code)) {
      // Not made durable (or too fast): the same change again, with the same client_event_id.
      if (c.attempts >= MAX_CHANGE_ATTEMPTS) return this.giveUpChange(c, describeError(f.code, f.message));
      const delay =
        f.code === "rate_limited" && typeof f.retry_after_ms === "number" && f.retry_after_ms >= 0
          ? f.retry_after_ms
          : Math.min(500 * 2 ** Math.max(0, c.attempts - 1), 8_000);
      this.changeTimers.set(
        clientEventId,
        setTimeout(() => {
          this.changeTimers.delete(clientEventId);
          this.transmitChange(clientEventId);
        }, delay),
      );
      return;
    }
    this.store.update((s) => ({ changes: dropChange(s.changes, clientEventId) }));
    this.notify(describeError(f.code, f.message), "error", CHANGE_NOTICE_MS);
  }

  // ----- the connection ---------------------------------------------------------------------

  private onConnStatus(info: ConnInfo): void {
    const prev = this.state.conn.status;
    this.store.update({ conn: info });
    if (info.status !== "connected") {
      // The socket is gone: the next one starts over in the foreground.
      this.appStateSent = undefined;
      // In-flight sends wait for the next connection instead of timing out.
      for (const t of this.ackTimers.values()) clearTimeout(t);
      this.ackTimers.clear();
      // So do unacked changes (acked ones keep waiting for their event, which the resume brings).
      for (const c of unackedChanges(this.state.changes)) this.clearChangeTimer(c.client_event_id);
    }
    if (prev !== info.status) {
      if (info.status === "connected" && this.connectedOnce) this.announce("Connected again.");
      if (info.status === "offline") this.announce("You are offline. Messages will be sent when the connection is back.");
    }
  }

  /** Per conversation, the last message placed or event seen: where `resume` starts. */
  private resumeChannels(): Record<string, string> {
    const views = this.state.views;
    return resumePoints(Object.fromEntries(Object.entries(views).map(([id, v]) => [id, v.tl])));
  }

  private onReady(): void {
    const again = this.connectedOnce;
    this.connectedOnce = true;
    const views = this.state.views;

    // Ask for everything missed in the conversations we know.
    const channels = this.resumeChannels();
    if (Object.keys(channels).length > 0) this.socket.send({ type: "resume", channels });
    // Announced but nothing is left to resume: any first frame releases the held messages.
    else if (this.announcedResume) this.socket.send({ type: "ping" });
    // A fresh connection starts in the foreground: tell it if the tab is hidden (after the resume,
    // which must be the first frame).
    this.appStateSent = undefined;
    this.syncAppState();

    // Conversations we opened that had no message yet: nothing to resume from, so reload.
    for (const [id, v] of Object.entries(views)) {
      if (v.loadedNewest && !lastPlacedId(v.tl)) void this.loadNewest(id);
    }

    // What waited for the connection goes out now (same client_msg_id: never twice).
    for (const v of Object.values(views)) for (const out of sendingEntries(v.tl)) this.transmit(out);
    // Changes not acked yet: again, with the same client_event_id (never applied twice).
    for (const c of unackedChanges(this.state.changes)) this.transmitChange(c.client_event_id);
    // Read marks made while away.
    for (const id of [...this.unsentMarks]) {
      const mark = this.state.reads[id];
      if (mark) this.sendMark(id, mark.seq);
      else this.unsentMarks.delete(id);
    }

    // Joined or new direct conversations while away.
    if (again) void this.loadChannels();
  }

  /** Tells the current socket whether the tab is in front of the user, if that changed. Not
   * connected: nothing; the next socket is told in onReady. */
  private syncAppState(): void {
    const frame = appStateToSend(appStateOf(typeof document === "undefined" ? undefined : document), this.appStateSent);
    if (frame && this.socket.send(frame)) this.appStateSent = frame.state;
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case "message":
        if (f.message && f.message.channel_id) this.onMessage(f.message);
        break;
      case "ack": {
        const m = f.message;
        if (!m || !m.channel_id) break;
        this.clearAckTimer(f.client_msg_id);
        this.patchView(m.channel_id, (v) => ({ tl: applyAck(v.tl, f.client_msg_id, m) }));
        this.schedulePlaceCheck(m.channel_id);
        break;
      }
      case "resumed":
        for (const id of Array.isArray(f.channels) ? f.channels : []) void this.fillGaps(id);
        break;
      case "error":
        this.onErrorFrame(f);
        break;
      case "event_ack":
        this.onEventAck(f);
        break;
      case "event":
        if (f.event) this.onEvent(f.event);
        break;
      case "typing":
        this.onTyping(f);
        break;
      case "read":
        if (f.channel_id && typeof f.seq === "number" && Number.isFinite(f.seq)) this.onRead(f.channel_id, f.seq);
        break;
      case "presence":
        if (f.user_id) {
          const p: Presence = { online: f.online === true, last_seen_at: f.last_seen_at ?? null };
          this.store.update((s) => ({ presence: { ...s.presence, [f.user_id]: p } }));
        }
        break;
      default:
        break; // unknown frame types are ignored
    }
  }

  private onMessage(m: Message): void {
    const s = this.state;
    if (!s.me) return;
    const before = s.views[m.channel_id]?.tl;
    this.mergeInto(m.channel_id, [m]);
    // Their message is here: they are not typing it any more.
    const typing = clearTyping(this.state.typing, m.channel_id, m.sender_id);
    if (typing !== this.state.typing) this.store.update({ typing });
    const after = this.state.views[m.channel_id]?.tl;
    const isNew = before !== after;

    if (!s.channels.some((c) => c.id === m.channel_id) && !this.unknownChannels.has(m.channel_id)) {
      // A new direct conversation, or a channel joined on another device.
      this.unknownChannels.add(m.channel_id);
      void this.loadChannels().then(() => this.unknownChannels.delete(m.channel_id));
    }
    if (!s.users[m.sender_id] && !this.askedForUser.has(m.sender_id)) {
      this.askedForUser.add(m.sender_id);
      void this.loadMembers(m.channel_id, true);
    }
    if (after && findGap(after)) void this.fillGaps(m.channel_id);

    // New to us and someone else's: unread until shown (counted from the timeline, see unread()).
    if (!isNew || m.sender_id === s.me.id) return;
    this.maybeNotify(m);
    const who = this.state.users[m.sender_id]?.display_name || "Someone";
    if (s.activeId === m.channel_id) {
      const text = !m.body.trim()
        ? attachmentsLine(m.attachments ?? [])
        : m.body.length > 200
          ? `${m.body.slice(0, 200)}…`
          : m.body;
      this.announce(`${who}: ${text}`);
    } else {
      const c = this.channel(m.channel_id);
      const where = c ? (c.kind === "direct" ? c.name : `#${c.name}`) : "";
      if (mentionsMe(m, s.me.id)) this.announce(`${who} mentioned you${where ? ` in ${where}` : ""}`);
      else this.announce(where ? `New message in ${where}` : "New message");
    }
  }

  private onErrorFrame(f: Extract<ServerFrame, { type: "error" }>): void {
    const text = describeError(f.code, f.message);
    if (f.client_msg_id) {
      const id = f.client_msg_id;
      this.clearAckTimer(id);
      for (const [cid, v] of Object.entries(this.state.views)) {
        if (v.tl.pending.some((p) => p.client_msg_id === id)) {
          this.patchView(cid, (cur) => ({ tl: setOutgoingStatus(cur.tl, id, "failed", text) }));
        }
      }
      return;
    }
    if (f.client_event_id) {
      this.onChangeError(f, f.client_event_id);
      return;
    }
    if (f.code === "unknown_message") {
      // A resume started from a message the server doesn't know: reload what we show.
      for (const [id, v] of Object.entries(this.state.views)) if (v.loadedNewest) void this.loadNewest(id);
      return;
    }
    this.notify(text);
  }

  /** An ack has no seq: if the message frame that places it doesn't come, fetch its place. */
  private schedulePlaceCheck(id: string): void {
    if (this.placeTimers.has(id)) return;
    this.placeTimers.set(
      id,
      setTimeout(async () => {
        this.placeTimers.delete(id);
        const tl = this.view(id).tl;
        if (tl.unplaced.length === 0) return;
        const last = lastPlacedId(tl);
        const afterSeq = last ? this.seqOf(id, last) : undefined;
        const knownMax = maxKnown(tl);
        try {
          if (last) {
            const page = await this.api.messages(id, { after: last, limit: Limits.HISTORY_MAX_LIMIT });
            this.mergePage(id, page, { limit: Limits.HISTORY_MAX_LIMIT, after: afterSeq, knownMax });
          } else {
            const page = await this.api.messages(id, { limit: Limits.HISTORY_PAGE });
            this.mergePage(id, page, { limit: Limits.HISTORY_PAGE, knownMax });
          }
        } catch {
          /* it stays shown as sent */
        }
      }, PLACE_CHECK_MS),
    );
  }

  // Helpers for the UI.
  nameOf(userId: string): string {
    const s = this.state;
    if (s.me && userId === s.me.id) return s.me.display_name || s.me.username;
    const u = s.users[userId];
    return u ? u.display_name || u.username : "Someone";
  }

  handle(e: unknown): void {
    this.guard(e);
  }

  /** Reconnect at once (the person pressed "Try now"). */
  reconnectNow(): void {
    this.socket.wentOnline();
  }
}
