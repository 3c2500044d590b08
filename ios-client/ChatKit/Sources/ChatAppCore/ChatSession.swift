import Foundation
import Observation
import ChatKit

/// A signed-in user's session: the conversation list, every conversation's messages, the
/// realtime connection, and the actions of the screens.
///
/// All realtime calls go through one ordered command queue, so that sends leave in the order
/// the user made them and a stop/start pair from quick backgrounding is not reordered.
@MainActor @Observable
public final class ChatSession {
    public static let pageSize = 50
    /// How long closing the socket for the background may wait for the frames already written
    /// (the `app_state` saying so among them) to leave.
    public static let backgroundCloseGrace: Duration = .milliseconds(300)

    /// The signed-in user, refreshed from `GET /users/me` when the session starts.
    public private(set) var user: User
    public private(set) var channels: [Channel] = []
    /// Per channel id: the newest message as the conversation list reported it (the preview of
    /// a conversation not opened yet).
    public private(set) var lastMessages: [String: LastMessage] = [:]
    /// Unread and mention counts, and read marks, of every conversation.
    public private(set) var reads: ReadTracker
    /// Per conversation on screen: the read mark when it was opened, if others' messages were
    /// unread then; the "new messages" divider goes above the first later one.
    public private(set) var unreadMarkers: [String: Int64] = [:]
    public private(set) var store: MessageStore
    public private(set) var connection: ConnectionState = .disconnected
    public private(set) var isLoadingChannels = false
    public private(set) var loadingHistory: Set<String> = []
    /// Display names of the users met so far (members, search results, DM partners).
    public private(set) var usersByID: [String: User] = [:]
    /// The last error of a background action, shown as an alert by the conversation list.
    public var errorMessage: String?

    public let api: APIClient
    /// Notification levels of the conversations and the "Hide previews" preference.
    public let notificationSettings: NotificationSettings
    private let realtime: RealtimeClient
    private let onSessionExpired: @MainActor () -> Void
    private let commands: AsyncStream<Command>.Continuation
    @ObservationIgnored private var commandTask: Task<Void, Never>?
    @ObservationIgnored private var eventTask: Task<Void, Never>?
    @ObservationIgnored private var fillingGaps: Set<String> = []
    /// The conversations on screen: their new messages are read as they come.
    @ObservationIgnored private var visibleChannels: Set<String> = []
    /// Per attachment id: its download link, and until when it may be used.
    @ObservationIgnored private var attachmentLinks: [String: (link: AttachmentLink, usableUntil: Date)] = [:]
    /// Per conversation: the files of its composer (`uploads(for:)`).
    @ObservationIgnored private var composerUploads: [String: AttachmentUploads] = [:]
    private let attachmentPreparer: any AttachmentPreparing

    private enum Command: Sendable {
        case start
        case stopGracefully
        case reconnectNow
        case appState(AppState)
        case send(PendingSend)
        case cancelSend(clientMsgID: String)
        case change(PendingChange)
        case noteSeen([Message])
        case forget(channelID: String)
        case markRead(channelID: String, seq: Int64)
    }

    public init(
        user: User,
        endpoint: ServerEndpoint,
        tokens: any AccessTokenProvider,
        environment: ChatEnvironment = .live,
        onSessionExpired: @escaping @MainActor () -> Void
    ) {
        self.user = user
        self.api = APIClient(server: endpoint, http: environment.http).authenticated(by: tokens)
        self.notificationSettings = NotificationSettings(api: api)
        self.attachmentPreparer = environment.attachmentPreparer
        self.realtime = RealtimeClient(
            url: endpoint.webSocketURL,
            transport: environment.transport,
            tokens: tokens,
            configuration: environment.realtime,
            network: environment.network()
        )
        self.store = MessageStore(currentUserID: user.id)
        self.reads = ReadTracker(currentUserID: user.id)
        self.usersByID = [user.id: user]
        self.onSessionExpired = onSessionExpired
        let (stream, continuation) = AsyncStream<Command>.makeStream()
        self.commands = continuation
        let realtime = self.realtime
        let closeGrace = Self.backgroundCloseGrace
        self.commandTask = Task {
            for await command in stream {
                switch command {
                case .start: await realtime.start()
                case .stopGracefully: await realtime.stop(flushingWithin: closeGrace)
                case .reconnectNow: await realtime.reconnectNow()
                case .appState(let state): await realtime.setAppState(state)
                case .send(let pending):
                    await realtime.send(
                        pending.body,
                        to: pending.channelID,
                        clientMsgID: pending.clientMsgID,
                        replyTo: pending.replyTo,
                        attachments: pending.attachments
                    )
                case .cancelSend(let clientMsgID): await realtime.cancelSend(clientMsgID: clientMsgID)
                case .change(let pending):
                    await realtime.change(pending.change, of: pending.messageID, in: pending.channelID, clientEventID: pending.clientEventID)
                case .noteSeen(let messages): await realtime.noteSeen(messages)
                case .forget(let channelID): await realtime.forget(channelID: channelID)
                case let .markRead(channelID, seq): await realtime.markRead(channelID: channelID, seq: seq)
                }
            }
        }
    }

    // MARK: - Lifecycle

    /// Starts the session: the realtime connection, the profile, the conversation list.
    /// `inBackground`: the app is not in front of the user (a sign-in or a restore that ended
    /// after it left): the connection tells the server so, until `becameActive()`.
    public func start(inBackground: Bool = false) {
        guard eventTask == nil else { return }
        if inBackground {
            commands.yield(.appState(.background))
        }
        let events = realtime.events
        eventTask = Task { [weak self] in
            for await event in events {
                guard let self else { return }
                self.handle(event)
            }
        }
        commands.yield(.start)
        Task { await refreshProfile() }
        Task { await refreshChannels() }
    }

    public func becameActive() {
        // Said on the socket if it stayed open (`start(inBackground:)`); a new one starts in
        // the foreground.
        commands.yield(.appState(.foreground))
        commands.yield(.start)
        commands.yield(.reconnectNow)
        Task { await refreshChannels() }
    }

    public func enteredBackground() {
        // The system suspends the socket anyway; closing it cleanly lets the gateway forget us.
        // Just before, `app_state` `background` tells it that push notifications must reach the
        // user from now on, should the close take a while to be noticed; the close waits for it
        // a moment at most. Unacked sends stay queued for the next start.
        commands.yield(.appState(.background))
        commands.yield(.stopGracefully)
    }

    public func reconnectNow() {
        commands.yield(.start)
        commands.yield(.reconnectNow)
    }

    /// Ends the session for good (sign-out, expiry, server change).
    public func shutdown() async {
        for uploads in composerUploads.values {
            uploads.removeAll()
        }
        eventTask?.cancel()
        commands.finish()
        await commandTask?.value
        await realtime.stop()
    }

    // MARK: - Conversations

    /// Group channels, most recent activity first.
    public var groups: [Channel] {
        ConversationOrder.byRecentActivity(channels.filter { $0.kind != .direct }, store: store, lastMessages: lastMessages)
    }

    /// Direct conversations, most recent activity first.
    public var directConversations: [Channel] {
        ConversationOrder.byRecentActivity(channels.filter { $0.kind == .direct }, store: store, lastMessages: lastMessages)
    }

    /// How much of `channelID` is unread (bold in the list, with a badge).
    public func readState(of channelID: String) -> ConversationReadState {
        reads[channelID]
    }

    public func channel(_ id: String) -> Channel? {
        channels.first { $0.id == id }
    }

    public func timeline(_ channelID: String) -> MessageTimeline {
        store[channelID]
    }

    public func displayName(of userID: String) -> String {
        usersByID[userID]?.displayName ?? "Someone"
    }

    /// The conversation list's line under the channel's name (`MessagePreview.conversationLine`).
    public func preview(of channel: Channel) -> String? {
        MessagePreview.conversationLine(
            for: channel,
            timeline: store[channel.id],
            lastMessage: lastMessages[channel.id],
            currentUserID: user.id,
            displayName: displayName(of:)
        )
    }

    /// Reloads the user's own profile; also surfaces an expired session right at launch.
    public func refreshProfile() async {
        do {
            let me = try await api.me()
            user = me
            usersByID[me.id] = me
        } catch {
            report(error)
        }
    }

    public func refreshChannels() async {
        isLoadingChannels = true
        defer { isLoadingChannels = false }
        do {
            let conversations = try await api.conversations()
            channels = conversations.map(\.channel)
            lastMessages = Dictionary(
                conversations.compactMap { conversation in conversation.lastMessage.map { (conversation.id, $0) } },
                uniquingKeysWith: { first, _ in first }
            )
            reads.reset(from: conversations, store: store)
            // A conversation on screen is read, whatever the list counted.
            for channelID in visibleChannels {
                markRead(channelID)
            }
        } catch {
            report(error)
        }
    }

    public func createChannel(name: String, description: String?) async throws -> Channel {
        let channel = try await api.createChannel(name: name, description: description)
        upsert(channel)
        return channel
    }

    public func searchChannels(_ query: String) async throws -> [Channel] {
        try await api.searchChannels(query: query)
    }

    /// Join a channel found in the directory.
    public func join(channelID: String) async throws -> Channel {
        let joined = try await api.joinChannel(id: channelID)
        upsert(joined)
        return joined
    }

    public func join(_ channel: Channel) async throws -> Channel {
        let joined = try await api.joinChannel(id: channel.id)
        upsert(joined)
        return joined
    }

    public func leave(_ channel: Channel) async {
        do {
            try await api.leaveChannel(id: channel.id)
            channels.removeAll { $0.id == channel.id }
            lastMessages.removeValue(forKey: channel.id)
            reads.remove(channelID: channel.id)
            store.remove(channelID: channel.id)
            commands.yield(.forget(channelID: channel.id))
        } catch {
            report(error)
        }
    }

    /// People whose display name contains `text` or whose username starts with it.
    public func searchUsers(_ text: String) async throws -> [User] {
        let users = try await api.searchUsers(query: text)
        for found in users {
            usersByID[found.id] = found
        }
        return users.filter { $0.id != user.id }
    }

    public func openDirectConversation(with other: User) async throws -> Channel {
        let channel = try await api.openDirectConversation(with: other.id)
        usersByID[other.id] = other
        upsert(channel)
        return channel
    }

    /// Loads what a conversation screen needs: its newest page and its members' names; then,
    /// if it is on screen (`conversationAppeared`), marks it read.
    public func open(_ channelID: String) async {
        async let members: Void = loadMembers(channelID)
        if !store[channelID].hasLoadedLatest {
            await loadLatest(channelID)
        }
        await members
        if visibleChannels.contains(channelID) {
            markRead(channelID)
        }
    }

    // MARK: - Read state

    /// Whether `channelID`'s conversation is on screen now.
    public func isOnScreen(_ channelID: String) -> Bool {
        visibleChannels.contains(channelID)
    }

    /// The conversation screen of `channelID` is showing: remembers where the unread messages
    /// start (for the "new messages" divider), and reads new messages as they come.
    public func conversationAppeared(_ channelID: String) {
        visibleChannels.insert(channelID)
        let state = reads[channelID]
        unreadMarkers[channelID] = state.hasUnread ? state.readSeq : nil
        markRead(channelID)
    }

    /// The conversation screen of `channelID` is gone: its new messages are unread again.
    public func conversationDisappeared(_ channelID: String) {
        visibleChannels.remove(channelID)
        unreadMarkers[channelID] = nil
    }

    /// Marks `channelID` read up to its newest loaded message, here and (`mark_read`) on the
    /// server, which tells the user's other devices.
    public func markRead(_ channelID: String) {
        let timeline = store[channelID]
        guard let seq = timeline.newestPlaced?.seq else { return }
        if reads.markRead(channelID: channelID, seq: seq, timeline: timeline) {
            commands.yield(.markRead(channelID: channelID, seq: seq))
        }
    }

    public func loadMembers(_ channelID: String) async {
        do {
            for member in try await api.members(ofChannel: channelID) {
                usersByID[member.id] = member
            }
        } catch {
            // Names fall back to "Someone"; not worth an alert.
        }
    }

    public func members(of channelID: String) async throws -> [User] {
        let members = try await api.members(ofChannel: channelID)
        for member in members {
            usersByID[member.id] = member
        }
        return members
    }

    // MARK: - History

    public func loadLatest(_ channelID: String) async {
        await loadPage(channelID, cursor: .latest)
    }

    /// The page before the oldest loaded message (scrolling up).
    public func loadOlder(_ channelID: String) async {
        let timeline = store[channelID]
        guard timeline.hasOlderHistory, let oldest = timeline.oldestMessageID else { return }
        await loadPage(channelID, cursor: .before(messageID: oldest))
    }

    private func loadPage(_ channelID: String, cursor: HistoryCursor) async {
        guard !loadingHistory.contains(channelID) else { return }
        loadingHistory.insert(channelID)
        defer { loadingHistory.remove(channelID) }
        do {
            let page = try await api.messages(inChannel: channelID, cursor: cursor, limit: Self.pageSize)
            store.mergePage(page, channelID: channelID, cursor: cursor, limit: Self.pageSize)
            commands.yield(.noteSeen(page))
        } catch {
            report(error)
        }
        await fillGaps(channelID)
    }

    /// Fetches the messages missing between loaded ones: positions between two neighbours that
    /// no event and no history page accounts for (`MessageTimeline.firstGap`).
    private func fillGaps(_ channelID: String) async {
        guard !fillingGaps.contains(channelID) else { return }
        fillingGaps.insert(channelID)
        defer { fillingGaps.remove(channelID) }
        // Bounded: a channel that keeps producing holes is retried on the next event instead.
        for _ in 0..<20 {
            guard let gap = store[channelID].firstGap else { return }
            do {
                let limit = Limits.historyMaxLimit
                let page = try await api.messages(inChannel: channelID, cursor: .after(messageID: gap.afterMessageID), limit: limit)
                store.mergePage(page, channelID: channelID, cursor: .after(messageID: gap.afterMessageID), limit: limit)
                commands.yield(.noteSeen(page))
                if page.isEmpty { return }
            } catch {
                report(error)
                return
            }
        }
    }

    // MARK: - Sending

    /// Sends `text` to the conversation; `replyTo`: the id of the message it answers;
    /// `attachments`: files uploaded for it (`upload`), at most 4, with which `text` may be
    /// empty (`Limits.isValidMessage`).
    public func send(_ text: String, to channelID: String, replyTo: String? = nil, attachments: [MessageAttachment] = []) {
        let body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard Limits.isValidMessage(body: body, attachmentCount: attachments.count) else { return }
        let pending = PendingSend(
            clientMsgID: UUID().uuidString.lowercased(),
            channelID: channelID,
            body: body,
            replyTo: replyTo,
            attachments: attachments
        )
        store.addPending(pending, at: .now)
        commands.yield(.send(pending))
    }

    /// Sends a failed message again, with its original `client_msg_id`: if the first attempt did
    /// reach the server after all, the server keeps one copy.
    public func retry(_ entry: TimelineEntry) {
        guard case .failed = entry.status else { return }
        store.markPending(channelID: entry.channelID, clientMsgID: entry.clientMsgID)
        commands.yield(.send(PendingSend(
            clientMsgID: entry.clientMsgID,
            channelID: entry.channelID,
            body: entry.body,
            replyTo: entry.replyTo?.id,
            attachments: entry.attachments
        )))
    }

    public func discard(_ entry: TimelineEntry) {
        store.removeUnsent(channelID: entry.channelID, clientMsgID: entry.clientMsgID)
        commands.yield(.cancelSend(clientMsgID: entry.clientMsgID))
    }

    /// Sends the composer's message: `text` and the files of `uploads(for: channelID)` that are
    /// uploaded, in the order they were picked (taken out of the strip; failed ones stay). Does
    /// nothing, and answers false, while a file is still being prepared or uploaded, or when
    /// there is nothing valid to send (`AttachmentUploads.canSend`).
    @discardableResult
    public func sendComposed(_ text: String, to channelID: String, replyTo: String? = nil) -> Bool {
        let uploads = uploads(for: channelID)
        guard uploads.canSend(text) else { return false }
        send(text, to: channelID, replyTo: replyTo, attachments: uploads.takeReadyAttachments())
        return true
    }

    // MARK: - Attachments

    /// The files picked for `channelID`'s next message: one strip per conversation, kept while
    /// the session lasts (leaving the screen and coming back finds them still uploading).
    public func uploads(for channelID: String) -> AttachmentUploads {
        if let uploads = composerUploads[channelID] { return uploads }
        let uploads = AttachmentUploads(channelID: channelID, api: api, preparer: attachmentPreparer)
        composerUploads[channelID] = uploads
        return uploads
    }

    /// An image's thumbnail is normally made within a second of its upload: while the server
    /// says it is on its way, ask again after these waits before settling for the whole file.
    public static let thumbnailRetryDelays: [Duration] = [.seconds(1), .seconds(2), .seconds(4)]
    /// A download link is not handed out this close to its expiry: it must last for the download.
    static let linkExpiryMargin: TimeInterval = 30

    /// Uploads a file for a message to `channelID` (declare, PUT, complete): what
    /// `send(_:to:replyTo:attachments:)` then sends. Throws the server's refusals
    /// (`APIErrorCode.unsupportedType`, `.attachmentTooLarge`, `.tooManyUploads`, ...).
    public func upload(_ data: Data, name: String, contentType: String, to channelID: String) async throws -> MessageAttachment {
        MessageAttachment(try await api.uploadAttachment(data, name: name, contentType: contentType, toChannel: channelID))
    }

    /// Uploads a local file under its own name, of the type its extension implies.
    public func upload(fileAt fileURL: URL, to channelID: String) async throws -> MessageAttachment {
        MessageAttachment(try await api.uploadAttachment(fileAt: fileURL, toChannel: channelID))
    }

    /// Where to download `attachment` of `channelID`, and its thumbnail: asked once and kept
    /// while it stays valid, so rows scrolling back into view do not ask again. For an image
    /// whose thumbnail is still being made, asks again a few times (`thumbnailRetryDelays`);
    /// such a link is not kept, so the thumbnail is looked for again next time.
    public func link(for attachment: MessageAttachment, in channelID: String) async throws -> AttachmentLink {
        if let known = attachmentLinks[attachment.id], known.usableUntil > .now {
            return known.link
        }
        var link = try await api.attachmentLink(attachment.id, inChannel: channelID)
        if attachment.isImage {
            for delay in Self.thumbnailRetryDelays where link.thumbnail == .pending {
                try await Task.sleep(for: delay)
                link = try await api.attachmentLink(attachment.id, inChannel: channelID)
            }
        }
        if link.thumbnail != .pending {
            let lifetime = max(0, TimeInterval(link.expiresIn) - Self.linkExpiryMargin)
            attachmentLinks[attachment.id] = (link, Date.now.addingTimeInterval(lifetime))
        }
        return link
    }

    // MARK: - Edits, deletes, reactions

    /// Emoji offered by the react menu.
    public static let quickReactions = ["👍", "❤️", "😂", "🎉", "😮", "😢"]

    /// Replaces the body of one of the user's own messages. The timeline changes when the
    /// server's `event` comes back.
    public func edit(_ entry: TimelineEntry, to text: String) {
        let body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard entry.senderID == user.id, Limits.isValidBody(body), body != entry.body else { return }
        change(.edit(body: body), of: entry)
    }

    /// Deletes a message for everyone (the user's own; the server also lets a group channel's
    /// creator delete any of its messages).
    public func deleteForEveryone(_ entry: TimelineEntry) {
        change(.delete, of: entry)
    }

    /// Adds the user's reaction, or takes it back when they already reacted with `emoji`.
    public func toggleReaction(_ emoji: String, on entry: TimelineEntry) {
        let mine = entry.reactions.contains { $0.emoji == emoji && $0.me }
        change(mine ? .unreact(emoji: emoji) : .react(emoji: emoji), of: entry)
    }

    private func change(_ request: ChangeRequest, of entry: TimelineEntry) {
        guard let messageID = entry.messageID, entry.status == .delivered, !entry.isDeleted else { return }
        if case .react(let emoji) = request, !Limits.isValidEmoji(emoji) { return }
        let pending = PendingChange(
            clientEventID: UUID().uuidString.lowercased(),
            channelID: entry.channelID,
            messageID: messageID,
            change: request
        )
        commands.yield(.change(pending))
    }

    // MARK: - Realtime events

    private func handle(_ event: RealtimeEvent) {
        switch event {
        case .stateChanged(let state):
            connection = state
            if state == .signedOut {
                onSessionExpired()
            }
        case .ready:
            // Conversations loaded while they were empty have no resume position: reload them.
            for (channelID, timeline) in store.timelines where timeline.hasLoadedLatest && timeline.newestPlaced == nil {
                Task { await loadLatest(channelID) }
            }
        case .message(let message):
            store.apply(event)
            let isVisible = visibleChannels.contains(message.channelID)
            reads.noteMessage(message, isVisible: isVisible)
            if isVisible {
                markRead(message.channelID)
            }
            if channel(message.channelID) == nil {
                // A new direct conversation, or a channel joined on another device.
                Task { await refreshChannels() }
            }
            if store[message.channelID].firstGap != nil {
                Task { await fillGaps(message.channelID) }
            }
        case .acked, .sendFailed:
            store.apply(event)
        case .resumed(let channelIDs):
            for channelID in channelIDs where store[channelID].firstGap != nil {
                Task { await fillGaps(channelID) }
            }
        case .resumeRefused(let channelIDs):
            // Unknown positions: reload those conversations from history. Channels left on
            // another device: the channel list no longer has them.
            for channelID in channelIDs where store[channelID].hasLoadedLatest {
                Task { await loadLatest(channelID) }
            }
            Task { await refreshChannels() }
        case .event:
            store.apply(event)
        case .changeAcked:
            break
        case .changeFailed(let failure):
            // The timeline never changed for it: only say why.
            if failure.code != FrameErrorCode.messageDeleted {
                errorMessage = failure.message
            }
        case .serverError:
            break
        case let .read(channelID, seq):
            if reads.readElsewhere(channelID: channelID, seq: seq, timeline: store[channelID]) == .needsRefresh {
                Task { await refreshChannels() }
            }
        }
    }

    private func upsert(_ channel: Channel) {
        if let index = channels.firstIndex(where: { $0.id == channel.id }) {
            channels[index] = channel
        } else {
            channels.append(channel)
        }
    }

    private func report(_ error: any Error) {
        if error is CancellationError { return }
        if let chatError = error as? ChatError, chatError == .sessionExpired {
            onSessionExpired()
            return
        }
        errorMessage = error.localizedDescription
    }
}
