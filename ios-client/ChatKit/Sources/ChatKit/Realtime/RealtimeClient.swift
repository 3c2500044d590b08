import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The realtime connection (`/ws`): keeps one WebSocket open while started, and makes the
/// contract's guarantees hold across reconnects.
///
/// - Reconnects with exponential backoff and jitter after any loss. Close codes 1001 (going
///   away) and 4408 (slow consumer) come back quickly, as a healthy connection's loss does;
///   4401 (or HTTP 401 on the upgrade) refreshes the token, then reconnects at once.
/// - Remembers the last message or event seen per channel (by `seq`: messages and events share
///   one sequence) and sends `resume` with them after every `ready`, so the server replays what
///   was missed.
/// - Keeps every send in a queue until its `ack` (or its own `message` frame) arrives, and
///   resends the queue, in order and with the same `client_msg_id`, after every `ready`.
/// - Does the same for changes (edits, deletes, reactions): kept until their `event_ack` (or
///   their own `event` frame), resent with the same `client_event_id`.
/// - Sends read marks (`markRead`) at once when ready, or keeps the highest per channel until
///   the next `ready` (marks are not acked: the server keeps the highest of any device).
/// - Sends a ping every `pingInterval` and replaces a connection that went silent.
/// - Tells the server whether the app is in the foreground (`setAppState`, `app_state` frames):
///   a connection starts in the foreground, so a ready connection says `background` only when
///   the app is there, and `foreground` again when it returns.
///
/// `events` has a single consumer (the app's session model).
public actor RealtimeClient {
    /// `SendFailure.code` when a send was not acked within `sendTimeout`.
    public static let timeoutCode = "timeout"
    /// `SendFailure.code` for sends dropped because the session expired.
    public static let sessionExpiredCode = "session_expired"

    public nonisolated let events: AsyncStream<RealtimeEvent>
    private let eventSink: AsyncStream<RealtimeEvent>.Continuation

    private let url: URL
    private let transport: any Transport
    private let tokens: any AccessTokenProvider
    private let configuration: RealtimeConfiguration
    private let sleep: @Sendable (Duration) async throws -> Void
    private let random: @Sendable () -> Double

    public private(set) var state: ConnectionState = .disconnected
    /// The user of the session, from the last `ready`.
    public private(set) var userID: String?
    /// Whether the app is in front of the user (`setAppState`).
    public private(set) var appState: AppState = .foreground

    /// Turns "the network is back" into `reconnectNow()`.
    private var networkWatch: Task<Void, Never>?

    /// The run loop; `nil` when stopped.
    private var runTask: Task<Void, Never>?
    /// The connection of the current attempt, and its outgoing frames in order.
    private var connection: (any TransportConnection)?
    private var outbox: AsyncStream<String>.Continuation?
    /// Writes `outbox` to the current connection; ends once `outbox` is finished and sent.
    private var writer: Task<Void, Never>?
    private var isReady = false
    /// What the server of the current connection was told of `appState` (it starts in the
    /// foreground).
    private var announcedAppState: AppState = .foreground
    private var heardSincePing = false
    private var pingOutstanding = false

    /// Unacked sends, oldest first.
    private var queue: [PendingSend] = []
    private var sendTimeouts: [String: Task<Void, Never>] = [:]
    /// Unacked changes, oldest first.
    private var changeQueue: [PendingChange] = []
    private var changeTimeouts: [String: Task<Void, Never>] = [:]
    /// Per channel: the newest message or event seen, the one `resume` names.
    private var lastSeen: [String: ResumePosition] = [:]
    /// Per channel: the highest read mark asked for and not written on a ready connection yet.
    private var unsentReadMarks: [String: Int64] = [:]
    /// Per channel: the highest read mark written (on any connection), so that one mark is not
    /// sent twice.
    private var sentReadMarks: [String: Int64] = [:]

    /// The channels the last `resume` on this connection named; those missing from the
    /// server's `resumed` answer were refused (`unknown_message`, `not_a_member`).
    private var resumeRequested: Set<String> = []
    /// The current connection was opened with `?resume=1`: its first frame must come at once.
    private var announcedResume = false

    private struct ResumePosition {
        var seq: Int64
        /// A message id or an event id: `resume` accepts either.
        var id: String
    }

    /// - Parameters:
    ///   - url: the WebSocket URL (`ServerEndpoint.webSocketURL`).
    ///   - sleep: waits; injected so tests control time.
    ///   - random: a number in `0...1`, for jitter.
    public init(
        url: URL,
        transport: any Transport = URLSessionTransport(),
        tokens: any AccessTokenProvider,
        configuration: RealtimeConfiguration = RealtimeConfiguration(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
        network: (any NetworkPathMonitor)? = SystemNetworkPathMonitor.make()
    ) {
        self.url = url
        self.transport = transport
        self.tokens = tokens
        self.configuration = configuration
        self.sleep = sleep
        self.random = random
        let (events, eventSink) = AsyncStream<RealtimeEvent>.makeStream(bufferingPolicy: .unbounded)
        self.events = events
        self.eventSink = eventSink
        if let network {
            Task { await self.watch(network) }
        }
    }

    deinit {
        runTask?.cancel()
        networkWatch?.cancel()
        eventSink.finish()
    }

    // MARK: - Lifecycle

    /// Connects, and keeps reconnecting until `stop()`. Does nothing if already started.
    public func start() {
        guard runTask == nil else { return }
        runTask = Task { await self.run() }
    }

    /// Closes the connection and stops reconnecting. The send queue and the resume positions
    /// are kept, so a later `start()` carries on where this one left off.
    public func stop() {
        guard let task = runTask else { return }
        runTask = nil
        task.cancel()
        // Detach the connection now, so nothing more goes out on it while the run loop winds
        // down, and a `start()` right after this begins cleanly.
        let socket = connection
        connection = nil
        outbox?.finish()
        outbox = nil
        writer = nil
        isReady = false
        resumeRequested = []
        disarmTimeouts()
        socket?.close(code: CloseCode.normal, reason: "client stopped")
        setState(.disconnected)
    }

    /// Closes the connection like `stop()`, but first lets the frames already written leave
    /// (an `app_state` said just before, a read mark), waiting for them at most `grace`: the
    /// close is delayed by a moment at most, even on a stalled connection.
    public func stop(flushingWithin grace: Duration) async {
        guard runTask != nil else { return }
        if let outbox, let writer {
            // Nothing more goes on this connection: until the close, sends, changes and read
            // marks stay queued for the next one, as when stopped.
            self.outbox = nil
            isReady = false
            outbox.finish()
            // Whichever comes first: the writer has sent everything, or `grace` is over (a
            // send that never completes is then cut short by the close).
            let (done, signal) = AsyncStream<Void>.makeStream()
            let sleep = self.sleep
            let timer = Task {
                try? await sleep(grace)
                signal.yield()
            }
            let drained = Task {
                await writer.value
                signal.yield()
            }
            for await _ in done {
                break
            }
            timer.cancel()
            drained.cancel()
        }
        stop()
    }

    /// Records whether the app is in front of the user, and tells the server of a ready
    /// connection when that changed (`app_state`); a connection made later is told on `ready`.
    /// Push notifications skip users with a connection in the foreground.
    public func setAppState(_ state: AppState) {
        appState = state
        if isReady {
            announceAppState()
        }
    }

    private func announceAppState() {
        guard announcedAppState != appState else { return }
        write(.appState(appState))
        announcedAppState = appState
    }

    /// Skips the remaining backoff wait (the app came to the foreground, the network returned).
    public func reconnectNow() {
        retryWait?.cancel()
    }

    /// Reconnects at once whenever `network` reports that a path became available, instead of
    /// sitting out a backoff of up to 30 s. Runs until the client is deinitialised.
    private func watch(_ network: any NetworkPathMonitor) {
        networkWatch?.cancel()
        let changes = network.availabilityChanges()
        networkWatch = Task { [weak self] in
            for await available in changes where available {
                guard let self else { return }
                await self.reconnectNow()
            }
        }
    }

    // MARK: - Sending

    /// Queues a message for `channelID` and sends it as soon as the connection is ready.
    /// Sending the same `clientMsgID` again (a retry) keeps the one queued entry. `replyTo`: the
    /// id of an earlier message of the channel this one answers. `attachments`: completed uploads
    /// of the user to this channel (`APIClient.uploadAttachment`), at most
    /// `Limits.attachmentsPerMessageMax`; `body` may then be empty. Uploads the server does not
    /// accept fail the send with `FrameErrorCode.invalidAttachment`.
    @discardableResult
    public func send(
        _ body: String,
        to channelID: String,
        clientMsgID: String = UUID().uuidString.lowercased(),
        replyTo: String? = nil,
        attachments: [MessageAttachment] = []
    ) -> PendingSend {
        if let queued = queue.first(where: { $0.clientMsgID == clientMsgID }) {
            return queued
        }
        let pending = PendingSend(
            clientMsgID: clientMsgID,
            channelID: channelID,
            body: body,
            replyTo: replyTo,
            attachments: attachments
        )
        queue.append(pending)
        if isReady {
            transmit(pending)
        }
        return pending
    }

    /// Drops a queued send. If it already went out, the server may still accept it; its ack
    /// then arrives as usual.
    public func cancelSend(clientMsgID: String) {
        queue.removeAll { $0.clientMsgID == clientMsgID }
        sendTimeouts.removeValue(forKey: clientMsgID)?.cancel()
    }

    /// Sends not acked yet, oldest first.
    public var pendingSends: [PendingSend] { queue }

    // MARK: - Changes

    /// Queues a change of message `messageID` of `channelID` (edit, delete, react, unreact) and
    /// sends it as soon as the connection is ready. The same `clientEventID` again (a retry)
    /// keeps the one queued entry. The outcome comes as `.changeAcked` then `.event`, or
    /// `.changeFailed`.
    @discardableResult
    public func change(
        _ change: ChangeRequest,
        of messageID: String,
        in channelID: String,
        clientEventID: String = UUID().uuidString.lowercased()
    ) -> PendingChange {
        if let queued = changeQueue.first(where: { $0.clientEventID == clientEventID }) {
            return queued
        }
        let pending = PendingChange(clientEventID: clientEventID, channelID: channelID, messageID: messageID, change: change)
        changeQueue.append(pending)
        if isReady {
            transmit(pending)
        }
        return pending
    }

    /// Drops a queued change. If it already went out, the server may still apply it.
    public func cancelChange(clientEventID: String) {
        changeQueue.removeAll { $0.clientEventID == clientEventID }
        changeTimeouts.removeValue(forKey: clientEventID)?.cancel()
    }

    /// Changes not acked yet, oldest first.
    public var pendingChanges: [PendingChange] { changeQueue }

    // MARK: - Read marks

    /// Tells the server the user has read `channelID` up to position `seq` (a message shown).
    /// Goes out at once when connected, else with the next `ready`; a mark not above one already
    /// sent is dropped (the server's mark only moves forward anyway).
    public func markRead(channelID: String, seq: Int64) {
        guard seq >= 1 else { return }
        if let sent = sentReadMarks[channelID], sent >= seq { return }
        if let unsent = unsentReadMarks[channelID], unsent >= seq { return }
        unsentReadMarks[channelID] = seq
        if isReady {
            flushReadMarks()
        }
    }

    /// Read marks asked for and not sent yet.
    public var pendingReadMarks: [String: Int64] { unsentReadMarks }

    private func flushReadMarks() {
        for (channelID, seq) in unsentReadMarks.sorted(by: { $0.key < $1.key }) {
            write(.markRead(channelID: channelID, seq: seq))
            sentReadMarks[channelID] = max(sentReadMarks[channelID] ?? 0, seq)
        }
        unsentReadMarks.removeAll()
    }

    // MARK: - Resume positions

    /// Records messages seen outside the socket (history pages), so that `resume` after the
    /// next reconnect starts from them.
    public func noteSeen(_ messages: [Message]) {
        for message in messages {
            noteSeen(message)
        }
    }

    /// Stops resuming a channel (after leaving it).
    public func forget(channelID: String) {
        lastSeen.removeValue(forKey: channelID)
        unsentReadMarks.removeValue(forKey: channelID)
        sentReadMarks.removeValue(forKey: channelID)
    }

    /// The message or event id `resume` would name for each channel.
    public var resumePositions: [String: String] {
        lastSeen.mapValues { $0.id }
    }

    // MARK: - Run loop

    private enum Outcome {
        case stopped
        case lost(wasReady: Bool)
        case unauthorized(rejectedToken: String, wasReady: Bool)
        case sessionExpired
    }

    private var retryWait: Task<Void, Never>?

    private func run() async {
        var attempt = 0
        var unauthorizedInARow = 0
        while !Task.isCancelled {
            setState(.connecting)
            let outcome = await connectOnce()
            guard !Task.isCancelled else { return }

            let delay: Duration
            switch outcome {
            case .stopped:
                return
            case .sessionExpired:
                expireSession()
                return
            case let .unauthorized(rejected, wasReady):
                // A token that worked until now simply expired: not a refusal streak.
                unauthorizedInARow = wasReady ? 1 : unauthorizedInARow + 1
                do {
                    _ = try await tokens.accessTokenAfterRejection(of: rejected)
                } catch let error as ChatError where error.meansSignedOut {
                    expireSession()
                    return
                } catch {
                    // Could not refresh (offline?): try again later, the normal way.
                }
                guard !Task.isCancelled else { return }
                // A fresh token should be accepted at once; if it is not, back off.
                delay = unauthorizedInARow == 1 ? .zero : configuration.backoff.delay(attempt: attempt, unit: random())
                attempt += 1
            case .lost(let wasReady):
                unauthorizedInARow = 0
                if wasReady {
                    // A connection that worked: come back quickly (1001 and 4408 end here).
                    attempt = 0
                }
                delay = configuration.backoff.delay(attempt: attempt, unit: random())
                attempt += 1
            }

            if delay > .zero {
                setState(.waitingToReconnect(attempt: attempt, delay: delay))
                await wait(delay)
            }
        }
    }

    /// Waits `delay`, or less when `reconnectNow()` or `stop()` interrupts.
    private func wait(_ delay: Duration) async {
        let sleep = self.sleep
        let waiter = Task { _ = try? await sleep(delay) }
        retryWait = waiter
        await withTaskCancellationHandler {
            await waiter.value
        } onCancel: {
            waiter.cancel()
        }
        retryWait = nil
    }

    /// One connection, from the upgrade request to its end.
    private func connectOnce() async -> Outcome {
        let token: String
        do {
            token = try await tokens.accessToken()
        } catch let error as ChatError where error.meansSignedOut {
            return .sessionExpired
        } catch {
            return Task.isCancelled ? .stopped : .lost(wasReady: false)
        }
        guard !Task.isCancelled else { return .stopped }

        let socket: any TransportConnection
        do {
            socket = try await transport.connect(upgradeRequest(token: token))
        } catch TransportError.handshakeRejected(status: 401) {
            return .unauthorized(rejectedToken: token, wasReady: false)
        } catch {
            return Task.isCancelled ? .stopped : .lost(wasReady: false)
        }
        guard !Task.isCancelled else {
            socket.close(code: CloseCode.normal, reason: "client stopped")
            return .stopped
        }

        let (frames, outboxSink) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
        connection = socket
        outbox = outboxSink
        isReady = false
        announcedAppState = .foreground
        heardSincePing = false
        pingOutstanding = false
        let writer = Task {
            for await text in frames {
                do {
                    try await socket.send(text)
                } catch {
                    socket.close(code: CloseCode.normal, reason: "send failed")
                    return
                }
            }
        }
        self.writer = writer
        let heartbeat = startHeartbeat(for: socket)
        defer {
            writer.cancel()
            heartbeat?.cancel()
            outboxSink.finish()
            if connection === socket {
                connection = nil
                outbox = nil
                self.writer = nil
                isReady = false
                resumeRequested = []
                disarmTimeouts()
            }
        }

        var wasReady = false
        do {
            for try await event in socket.incoming {
                switch event {
                case .text(let text):
                    heardSincePing = true
                    if handle(text) {
                        wasReady = true
                    }
                case .closed(let code, _):
                    if Task.isCancelled { return .stopped }
                    if code == CloseCode.unauthorized { return .unauthorized(rejectedToken: token, wasReady: wasReady) }
                    return .lost(wasReady: wasReady)
                }
            }
        } catch TransportError.handshakeRejected(status: 401) {
            return .unauthorized(rejectedToken: token, wasReady: false)
        } catch {
            // Network loss, refused handshake: reconnect below.
        }
        return Task.isCancelled ? .stopped : .lost(wasReady: wasReady)
    }

    private func upgradeRequest(token: String) -> URLRequest {
        var target = url
        var items: [URLQueryItem] = []
        if configuration.tokenPlacement == .query {
            items.append(URLQueryItem(name: "token", value: token))
        }
        // A `resume` will be the first frame: announce it, so the gateway holds live messages
        // until it is served however long that takes (otherwise at most 1 s).
        announcedResume = !lastSeen.isEmpty
        if announcedResume {
            items.append(URLQueryItem(name: "resume", value: "1"))
        }
        if !items.isEmpty, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.queryItems = (components.queryItems ?? []) + items
            target = components.url ?? url
        }
        var request = URLRequest(url: target)
        if configuration.tokenPlacement == .header {
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        }
        return request
    }

    /// The refresh token is dead: nothing queued can be delivered any more.
    private func expireSession() {
        let dropped = queue
        queue.removeAll()
        for pending in dropped {
            sendTimeouts.removeValue(forKey: pending.clientMsgID)?.cancel()
            eventSink.yield(.sendFailed(SendFailure(
                clientMsgID: pending.clientMsgID,
                channelID: pending.channelID,
                code: Self.sessionExpiredCode,
                message: "Your session has expired."
            )))
        }
        let droppedChanges = changeQueue
        changeQueue.removeAll()
        for pending in droppedChanges {
            changeTimeouts.removeValue(forKey: pending.clientEventID)?.cancel()
            eventSink.yield(.changeFailed(ChangeFailure(
                clientEventID: pending.clientEventID,
                change: pending,
                code: Self.sessionExpiredCode,
                message: "Your session has expired."
            )))
        }
        runTask = nil
        setState(.signedOut)
    }

    private func setState(_ newState: ConnectionState) {
        guard state != newState else { return }
        state = newState
        eventSink.yield(.stateChanged(newState))
    }

    // MARK: - Frames

    /// Handles one incoming text frame. Returns true for `ready`.
    private func handle(_ text: String) -> Bool {
        guard let frame = try? WireJSON.decode(ServerFrame.self, from: Data(text.utf8)) else {
            // Not a frame this client understands; the rest of the connection may still be fine.
            return false
        }
        switch frame {
        case let .ready(userID, connectionID):
            self.userID = userID
            isReady = true
            // Resume first, then the unacked sends in their original order; the outbox keeps
            // this order on the wire.
            if !lastSeen.isEmpty {
                resumeRequested = Set(lastSeen.keys)
                write(.resume(channels: resumePositions))
            } else if announcedResume {
                // Announced, but nothing is left to resume: any first frame releases the hold.
                write(.ping)
            }
            // A connection starts in the foreground: say so at once if the app is not.
            announceAppState()
            for pending in queue {
                transmit(pending)
            }
            for pending in changeQueue {
                transmit(pending)
            }
            flushReadMarks()
            eventSink.yield(.ready(userID: userID, connectionID: connectionID))
            setState(.connected)
            return true

        case let .ack(clientMsgID, message):
            complete(clientMsgID: clientMsgID)
            noteSeen(message)
            eventSink.yield(.acked(clientMsgID: clientMsgID, message: message))

        case let .message(message):
            noteSeen(message)
            if message.senderID == userID, queue.contains(where: { $0.clientMsgID == message.clientMsgID }) {
                // Our own message, replayed or delivered before its ack (the ack may have been
                // lost with the previous connection): it is stored, stop resending it.
                complete(clientMsgID: message.clientMsgID)
                eventSink.yield(.acked(clientMsgID: message.clientMsgID, message: message))
            }
            eventSink.yield(.message(message))

        case let .resumed(channelIDs):
            // The server reports each refused channel in its own `error` frame (with no channel
            // field), then names the channels it did resume. Forget exactly the refused ones: a
            // channel left on another device (`not_a_member`) or an unknown position
            // (`unknown_message`) would otherwise be refused again on every reconnect, while the
            // other channels' positions stay good.
            let refused = resumeRequested.subtracting(channelIDs).sorted()
            resumeRequested = []
            for channelID in refused {
                lastSeen.removeValue(forKey: channelID)
            }
            if !refused.isEmpty {
                eventSink.yield(.resumeRefused(channelIDs: refused))
            }
            eventSink.yield(.resumed(channelIDs: channelIDs))

        case let .eventAck(clientEventID, eventID):
            let known = changeQueue.contains { $0.clientEventID == clientEventID }
            completeChange(clientEventID: clientEventID)
            if known {
                eventSink.yield(.changeAcked(clientEventID: clientEventID, eventID: eventID))
            }

        case let .event(event):
            noteSeen(event)
            if event.actorID == userID, changeQueue.contains(where: { $0.clientEventID == event.clientEventID }) {
                // Our own change, applied before its ack arrived (the ack may have been lost
                // with the previous connection): stop resending it.
                completeChange(clientEventID: event.clientEventID)
                eventSink.yield(.changeAcked(clientEventID: event.clientEventID, eventID: event.id))
            }
            eventSink.yield(.event(event))

        case let .error(error):
            handle(error)

        case .pong:
            pingOutstanding = false

        case let .read(channelID, seq):
            // Marked on another device: no need to send this mark (or a lower one) again.
            sentReadMarks[channelID] = max(sentReadMarks[channelID] ?? 0, seq)
            if let unsent = unsentReadMarks[channelID], unsent <= seq {
                unsentReadMarks.removeValue(forKey: channelID)
            }
            eventSink.yield(.read(channelID: channelID, seq: seq))

        case .typing, .presence:
            // Ephemeral signals: not shown by this client yet (the web client shows them).
            break

        case .unknown:
            break
        }
        return false
    }

    private func handle(_ error: FrameError) {
        if error.clientMsgID == nil, let clientEventID = error.clientEventID {
            handleChangeError(error, clientEventID: clientEventID)
            return
        }
        guard let clientMsgID = error.clientMsgID else {
            // A refused `resume` channel is handled when `resumed` says which ones went through.
            eventSink.yield(.serverError(code: error.code, message: error.message))
            return
        }
        let pending = queue.first { $0.clientMsgID == clientMsgID }
        if error.code == FrameErrorCode.unavailable, let pending {
            // Transient: keep it queued and try again shortly on this connection.
            scheduleResend(pending)
            return
        }
        if error.code == FrameErrorCode.rateLimited, let pending {
            // Over the send rate: keep it queued and resend when the server says.
            scheduleResend(pending, after: .milliseconds(error.retryAfterMs ?? 1000))
            return
        }
        complete(clientMsgID: clientMsgID)
        eventSink.yield(.sendFailed(SendFailure(
            clientMsgID: clientMsgID,
            channelID: pending?.channelID,
            code: error.code,
            message: error.message
        )))
    }

    private func handleChangeError(_ error: FrameError, clientEventID: String) {
        let pending = changeQueue.first { $0.clientEventID == clientEventID }
        if error.code == FrameErrorCode.unavailable, let pending {
            scheduleResend(pending)
            return
        }
        if error.code == FrameErrorCode.rateLimited, let pending {
            scheduleResend(pending, after: .milliseconds(error.retryAfterMs ?? 1000))
            return
        }
        completeChange(clientEventID: clientEventID)
        eventSink.yield(.changeFailed(ChangeFailure(
            clientEventID: clientEventID,
            change: pending,
            code: error.code,
            message: error.message
        )))
    }

    private func noteSeen(_ message: Message) {
        guard let seq = message.seq else { return }
        notePosition(channelID: message.channelID, seq: seq, id: message.id)
    }

    /// An event takes a position of its channel like a message: `resume` may name it.
    private func noteSeen(_ event: ChannelEvent) {
        notePosition(channelID: event.channelID, seq: event.seq, id: event.id)
    }

    private func notePosition(channelID: String, seq: Int64, id: String) {
        if let known = lastSeen[channelID], known.seq >= seq { return }
        lastSeen[channelID] = ResumePosition(seq: seq, id: id)
    }

    /// Removes an acked (or refused) send from the queue.
    private func complete(clientMsgID: String) {
        queue.removeAll { $0.clientMsgID == clientMsgID }
        sendTimeouts.removeValue(forKey: clientMsgID)?.cancel()
    }

    /// Removes an acked (or refused) change from the queue.
    private func completeChange(clientEventID: String) {
        changeQueue.removeAll { $0.clientEventID == clientEventID }
        changeTimeouts.removeValue(forKey: clientEventID)?.cancel()
    }

    /// Sends a queued message on the ready connection and starts its ack timeout: the timeout
    /// measures how long a send that went out waits for its ack, never the time the client
    /// spends stopped or reconnecting (the banner then promises the message will be sent).
    private func transmit(_ pending: PendingSend) {
        write(pending.frame)
        if sendTimeouts[pending.clientMsgID] == nil {
            armTimeout(for: pending)
        }
    }

    /// Sends a queued change on the ready connection and starts its ack timeout.
    private func transmit(_ pending: PendingChange) {
        write(pending.frame)
        if changeTimeouts[pending.clientEventID] == nil {
            armTimeout(for: pending)
        }
    }

    /// The connection is gone (stopped or lost): sends wait for the next one without a clock.
    private func disarmTimeouts() {
        for timeout in sendTimeouts.values {
            timeout.cancel()
        }
        sendTimeouts.removeAll()
        for timeout in changeTimeouts.values {
            timeout.cancel()
        }
        changeTimeouts.removeAll()
    }

    private func write(_ frame: ClientFrame) {
        guard let outbox, let data = try? WireJSON.encode(frame) else { return }
        outbox.yield(String(decoding: data, as: UTF8.self))
    }

    private func scheduleResend(_ pending: PendingSend, after wait: Duration? = nil) {
        let delay = wait ?? configuration.backoff.delay(attempt: 0, unit: random())
        let sleep = self.sleep
        Task {
            try? await sleep(delay)
            self.resendIfQueued(pending.clientMsgID)
        }
    }

    private func resendIfQueued(_ clientMsgID: String) {
        guard isReady, let pending = queue.first(where: { $0.clientMsgID == clientMsgID }) else { return }
        transmit(pending)
    }

    private func scheduleResend(_ pending: PendingChange, after wait: Duration? = nil) {
        let delay = wait ?? configuration.backoff.delay(attempt: 0, unit: random())
        let sleep = self.sleep
        Task {
            try? await sleep(delay)
            self.resendChangeIfQueued(pending.clientEventID)
        }
    }

    private func resendChangeIfQueued(_ clientEventID: String) {
        guard isReady, let pending = changeQueue.first(where: { $0.clientEventID == clientEventID }) else { return }
        transmit(pending)
    }

    private func armTimeout(for pending: PendingSend) {
        guard let timeout = configuration.sendTimeout else { return }
        let sleep = self.sleep
        sendTimeouts[pending.clientMsgID] = Task {
            do {
                try await sleep(timeout)
            } catch {
                return
            }
            guard !Task.isCancelled else { return }
            self.expire(pending.clientMsgID)
        }
    }

    private func armTimeout(for pending: PendingChange) {
        guard let timeout = configuration.sendTimeout else { return }
        let sleep = self.sleep
        changeTimeouts[pending.clientEventID] = Task {
            do {
                try await sleep(timeout)
            } catch {
                return
            }
            guard !Task.isCancelled else { return }
            self.expireChange(pending.clientEventID)
        }
    }

    private func expireChange(_ clientEventID: String) {
        guard let pending = changeQueue.first(where: { $0.clientEventID == clientEventID }) else { return }
        completeChange(clientEventID: clientEventID)
        eventSink.yield(.changeFailed(ChangeFailure(
            clientEventID: clientEventID,
            change: pending,
            code: Self.timeoutCode,
            message: "Not applied yet. Check your connection and try again."
        )))
    }

    private func expire(_ clientMsgID: String) {
        guard let pending = queue.first(where: { $0.clientMsgID == clientMsgID }) else { return }
        complete(clientMsgID: clientMsgID)
        eventSink.yield(.sendFailed(SendFailure(
            clientMsgID: clientMsgID,
            channelID: pending.channelID,
            code: Self.timeoutCode,
            message: "Not delivered yet. Check your connection and try again."
        )))
    }

    // MARK: - Heartbeat

    private func startHeartbeat(for socket: any TransportConnection) -> Task<Void, Never>? {
        guard let interval = configuration.pingInterval else { return nil }
        let sleep = self.sleep
        return Task {
            while !Task.isCancelled {
                do {
                    try await sleep(interval)
                } catch {
                    return
                }
                guard self.heartbeat(socket) else { return }
            }
        }
    }

    /// One heartbeat tick. Returns false once the connection is gone or declared dead.
    private func heartbeat(_ socket: any TransportConnection) -> Bool {
        guard let connection, connection === socket else { return false }
        if pingOutstanding && !heardSincePing {
            // Nothing at all since the last ping: the connection is dead even if the OS has
            // not noticed. Closing ends `incoming`, and the run loop reconnects.
            socket.close(code: CloseCode.normal, reason: "heartbeat timeout")
            return false
        }
        heardSincePing = false
        pingOutstanding = true
        write(.ping)
        return true
    }
}
