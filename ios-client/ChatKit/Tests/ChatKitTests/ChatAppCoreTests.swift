import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatAppCore
@testable import ChatKit

/// The app's models (ChatAppCore) with ChatKit's fakes: the logic behind the SwiftUI views.
///
/// `@unchecked Sendable`: the `@MainActor` tests hand the test case to the main actor (Linux's
/// test runner calls them from elsewhere); XCTest runs one test at a time.
final class ChatAppCoreTests: XCTestCase, @unchecked Sendable {
    private static func channel(_ id: String, _ name: String, kind: ChannelKind = .group, created: TimeInterval) -> Channel {
        Channel(id: id, kind: kind, name: name, description: "", createdAt: Sample.date.addingTimeInterval(created))
    }

    // MARK: - Conversation list order

    func testConversationsAreListedByMostRecentActivityNotByName() {
        let alpha = Self.channel("c-a", "alpha", created: 0)
        let beta = Self.channel("c-b", "beta", created: 10)
        let gamma = Self.channel("c-c", "gamma", created: 20)
        var store = MessageStore(currentUserID: "u-me")
        // A message in alpha, newer than every creation.
        store.merge(Sample.message(seq: 100, channelID: "c-a", clientMsgID: "x"))

        let ordered = ConversationOrder.byRecentActivity([beta, gamma, alpha], store: store)
        XCTAssertEqual(ordered.map(\.name), ["alpha", "gamma", "beta"])

        // The user's own send counts as activity at once, before its ack.
        store.addPending(PendingSend(clientMsgID: "p", channelID: "c-b", body: "hi"), at: Sample.date.addingTimeInterval(500))
        XCTAssertEqual(ConversationOrder.byRecentActivity([alpha, beta, gamma], store: store).map(\.name), ["beta", "alpha", "gamma"])
    }

    func testConversationsWithoutActivityKeepAStableOrder() {
        let a = Self.channel("c-2", "Same", created: 0)
        let b = Self.channel("c-1", "same", created: 0)
        let c = Self.channel("c-3", "other", created: 0)
        let store = MessageStore(currentUserID: "u-me")
        XCTAssertEqual(ConversationOrder.byRecentActivity([a, b, c], store: store).map(\.id), ["c-3", "c-1", "c-2"])
        XCTAssertEqual(ConversationOrder.byRecentActivity([c, b, a], store: store).map(\.id), ["c-3", "c-1", "c-2"])
    }

    // MARK: - Message actions (tap menu and VoiceOver)

    func testAFailedSendOffersRetryAndDeleteToEveryInputMethod() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "hi", senderID: "u-me", clientMsgID: "p1", at: Sample.date)
        let pending = timeline.entries[0]
        XCTAssertEqual(MessageAction.available(for: pending), [])
        timeline.markFailed(senderID: "u-me", clientMsgID: "p1", code: "timeout", reason: "Not delivered yet.")
        let failed = timeline.entries[0]
        XCTAssertEqual(MessageAction.available(for: failed), [.retry, .delete])
        XCTAssertEqual(MessageAction.available(for: failed).map(\.title), ["Try Again", "Delete"])
        XCTAssertEqual(MessageAction.available(for: failed).map(\.isDestructive), [false, true])
    }

    func testStoredMessagesOfferReplyAndReactAndTheUsersOwnEditAndDelete() {
        var timeline = MessageTimeline(channelID: "c1")
        let mine = Sample.message(seq: 1, senderID: "u-me", clientMsgID: "a")
        let theirs = Sample.message(seq: 2, senderID: "u-bob", clientMsgID: "b")
        timeline.mergePage([mine, theirs], cursor: .latest, limit: 50)
        XCTAssertEqual(MessageAction.available(for: timeline.entries[0], currentUserID: "u-me"), [.reply, .react, .edit, .delete])
        XCTAssertEqual(MessageAction.available(for: timeline.entries[1], currentUserID: "u-me"), [.reply, .react])
        XCTAssertEqual(MessageAction.available(for: timeline.entries[0]), [], "without the user, nothing but failed sends")
        XCTAssertEqual([MessageAction.reply, .react, .edit, .delete].map(\.title), ["Reply", "React", "Edit", "Delete"])
        XCTAssertEqual([MessageAction.reply, .react, .edit, .delete, .retry].map(\.needsInput), [true, true, true, false, false])

        // A tombstone has no actions; neither has a send not placed yet.
        timeline.apply(Sample.event(seq: 3, of: mine, actorID: "u-me", .deleted), currentUserID: "u-me")
        XCTAssertEqual(MessageAction.available(for: timeline.entries[0], currentUserID: "u-me"), [])
        timeline.addPending(body: "x", senderID: "u-me", clientMsgID: "p", at: Sample.date)
        timeline.merge(Sample.message(seq: nil, senderID: "u-me", clientMsgID: "p"))
        XCTAssertEqual(MessageAction.available(for: timeline.entries.last!, currentUserID: "u-me"), [])
    }

    // MARK: - Server settings

    @MainActor
    func testServerSettingsPersistTheChosenServer() async throws {
        let suite = "ChatAppCoreTests-\(UUID().uuidString)"
        let defaults = try XCTUnwrap(UserDefaults(suiteName: suite))
        defer { defaults.removePersistentDomain(forName: suite) }

        let settings = ServerSettings(defaults: defaults)
        XCTAssertEqual(settings.endpoint, .localDefault)
        let lan = try XCTUnwrap(ServerEndpoint(string: "192.168.1.20:8080"))
        settings.update(to: lan)
        XCTAssertEqual(ServerSettings(defaults: defaults).endpoint.description, "http://192.168.1.20:8080")
    }

    // MARK: - Session

    /// A session wired to fakes: the server's REST answers come from `channels` (plain channels,
    /// as a server before read state lists them) or `conversations` (with read state).
    @MainActor
    private func makeSession(channels: [Channel] = [], conversations: [Conversation]? = nil) -> (ChatSession, FakeTransport) {
        let transport = FakeTransport()
        let me = User(id: "u-me", username: "me", displayName: "Me")
        let http = ScriptedHTTP { request, _ in
            switch request.target {
            case "/api/v1/users/me": return try .json(200, encoding: me)
            case "/api/v1/channels":
                if let conversations {
                    return try .json(200, encoding: ConversationList(channels: conversations))
                }
                return try .json(200, encoding: ChannelList(channels: channels))
            default: return .json(404, Data("{}".utf8))
            }
        }
        let environment = ChatEnvironment(
            http: http,
            transport: transport,
            realtime: RealtimeConfiguration(pingInterval: nil, sendTimeout: nil),
            tokenStore: { _ in InMemoryTokenStore() }
        )
        let session = ChatSession(
            user: me,
            endpoint: ServerEndpoint(string: "http://chat.test")!,
            tokens: FakeTokens(),
            environment: environment,
            onSessionExpired: {}
        )
        return (session, transport)
    }

    @MainActor
    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @MainActor
    func testALiveMessageMovesItsConversationToTheTop() async throws {
        let old = Self.channel("c-old", "aardvarks", created: 0)
        let new = Self.channel("c-new", "zebras", created: 60)
        let (session, transport) = makeSession(channels: [old, new])
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("the channel list") { session.channels.count == 2 }
        XCTAssertEqual(session.groups.map(\.id), ["c-new", "c-old"], "newest first, not alphabetical")

        try connection.serverSends(.message(Sample.message(seq: 1, channelID: "c-old", clientMsgID: "m1")))
        // Sample messages are dated from `Sample.date` + seq: older than c-new's creation.
        try connection.serverSends(.message(Sample.message(seq: 120, channelID: "c-old", clientMsgID: "m2")))
        try await waitUntil("the live message") { session.timeline("c-old").entries.count == 2 }
        XCTAssertEqual(session.groups.map(\.id), ["c-old", "c-new"])
        await session.shutdown()
    }

    @MainActor
    func testRetryingAFailedSendResendsTheSameClientMsgID() async throws {
        let (session, transport) = makeSession(channels: [])
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }

        session.send("hello", to: "c1")
        guard case .send(_, let clientMsgID, _) = try await connection.nextSent() else { return XCTFail("no send") }
        try connection.serverSends(.error(FrameError(code: FrameErrorCode.notAMember, message: "no", clientMsgID: clientMsgID)))
        try await waitUntil("the failure") { MessageAction.available(for: session.timeline("c1").entries[0]) == [.retry, .delete] }

        session.perform(.retry, on: session.timeline("c1").entries[0])
        XCTAssertEqual(session.timeline("c1").entries[0].status, .pending)
        let resent = try await connection.nextSent()
        XCTAssertEqual(resent, .send(channelID: "c1", clientMsgID: clientMsgID, body: "hello"))

        session.perform(.delete, on: session.timeline("c1").entries[0])
        XCTAssertTrue(session.timeline("c1").entries.isEmpty)
        await session.shutdown()
    }

    @MainActor
    func testReactingEditingAndDeletingGoThroughTheServersEvents() async throws {
        let (session, transport) = makeSession(channels: [])
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }
        let mine = Sample.message(seq: 1, channelID: "c1", senderID: "u-me", clientMsgID: "m1", body: "helo")
        try connection.serverSends(.message(mine))
        try await waitUntil("the message") { session.timeline("c1").entries.count == 1 }

        // React: the frame goes out; the timeline changes when the event comes back.
        session.toggleReaction("👍", on: session.timeline("c1").entries[0])
        guard case let .react(channelID, messageID, clientEventID, emoji) = try await connection.nextSent() else {
            return XCTFail("no react")
        }
        XCTAssertEqual([channelID, messageID, emoji], ["c1", mine.id, "👍"])
        try connection.serverSends(.eventAck(clientEventID: clientEventID, eventID: "e-2"))
        try connection.serverSends(.event(Sample.event(seq: 2, of: mine, actorID: "u-me", .reactionAdded(emoji: "👍", count: 1), clientEventID: clientEventID)))
        try await waitUntil("the reaction") { !session.timeline("c1").entries[0].reactions.isEmpty }
        XCTAssertEqual(session.timeline("c1").entries[0].reactions, [Reaction(emoji: "👍", count: 1, me: true)])

        // Toggling again takes it back.
        session.toggleReaction("👍", on: session.timeline("c1").entries[0])
        guard case .unreact(_, _, _, "👍") = try await connection.nextSent() else { return XCTFail("no unreact") }

        // Edit, then delete for everyone.
        session.edit(session.timeline("c1").entries[0], to: "  hello ")
        let edit = try await connection.nextSent()
        guard case let .edit(_, editedID, _, body) = edit else { return XCTFail("no edit: \(edit)") }
        XCTAssertEqual([editedID, body], [mine.id, "hello"])
        session.perform(.delete, on: session.timeline("c1").entries[0])
        guard case .delete(_, mine.id, _) = try await connection.nextSent() else { return XCTFail("no delete") }
        try connection.serverSends(.event(Sample.event(seq: 3, of: mine, actorID: "u-me", .deleted)))
        try await waitUntil("the tombstone") { session.timeline("c1").entries[0].isDeleted }
        XCTAssertEqual(session.actions(for: session.timeline("c1").entries[0]), [])

        // A reply carries the id of the message it answers.
        let theirs = Sample.message(seq: 4, channelID: "c1", senderID: "u-bob", clientMsgID: "m2", body: "lunch?")
        try connection.serverSends(.message(theirs))
        try await waitUntil("their message") { session.timeline("c1").entries.count == 2 }
        session.send("yes", to: "c1", replyTo: theirs.id)
        guard case .reply(_, _, "yes", theirs.id) = try await connection.nextSent() else { return XCTFail("no reply") }
        XCTAssertEqual(session.timeline("c1").entries.last?.replyTo?.preview, "lunch?")

        // A refused change is reported.
        try connection.serverSends(.error(FrameError(code: FrameErrorCode.notAuthor, message: "not yours", clientEventID: "x")))
        try await waitUntil("the error") { session.errorMessage == "not yours" }
        await session.shutdown()
    }

    // MARK: - Background and foreground

    @MainActor
    func testGoingToTheBackgroundSaysSoJustBeforeTheCloseAndComingBackReconnectsInTheForeground() async throws {
        let (session, transport) = makeSession()
        session.start()
        let first = try await transport.nextConnection()
        try first.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }

        session.enteredBackground()
        let said = try await first.nextSent()
        XCTAssertEqual(said, .appState(.background))
        try await waitUntil("the close") { first.closeByClient != nil }
        XCTAssertEqual(first.closeByClient?.code, CloseCode.normal)
        try await waitUntil("disconnected") { session.connection == .disconnected }

        // Back: a new connection, which starts in the foreground, so nothing is said on it.
        session.becameActive()
        let second = try await transport.nextConnection()
        try second.serverSends(.ready(userID: "u-me", connectionID: "gw:2"))
        try await waitUntil("connected again") { session.connection == .connected }
        session.send("back", to: "c1")
        guard case .send(_, _, "back") = try await second.nextSent() else { return XCTFail("not the send first") }
        await session.shutdown()
    }

    @MainActor
    func testASessionStartedInTheBackgroundSaysSoUntilTheAppIsBack() async throws {
        let suite = "ChatAppCoreTests-\(UUID().uuidString)"
        let defaults = try XCTUnwrap(UserDefaults(suiteName: suite))
        defer { defaults.removePersistentDomain(forName: suite) }
        let transport = FakeTransport()
        let http = ScriptedHTTP { request, _ in
            switch (request.method, request.target) {
            case ("POST", "/api/v1/auth/login"):
                return try .json(200, encoding: Sample.session(access: "access-1", refresh: "refresh-1"))
            case ("POST", "/api/v1/auth/logout"):
                return HTTPResponse(status: 204)
            case ("GET", "/api/v1/users/me"):
                return try .json(200, encoding: Sample.alice)
            case ("GET", "/api/v1/channels"):
                return try .json(200, encoding: ConversationList(channels: []))
            default:
                return .json(404, Data("{}".utf8))
            }
        }
        let model = AppModel(
            settings: ServerSettings(defaults: defaults),
            environment: ChatEnvironment(
                http: http,
                transport: transport,
                realtime: RealtimeConfiguration(pingInterval: nil, sendTimeout: nil),
                tokenStore: { _ in InMemoryTokenStore() }
            ),
            push: PushRegistration(configuration: PushConfiguration(environment: .sandbox, bundleID: "com.example.chat"), defaults: defaults)
        )

        // The user left while the sign-in was under way: the session starts in the background,
        // and its socket stays open until the system suspends the app.
        model.appEnteredBackground()
        try await model.signIn(username: "alice", password: "correct horse battery staple")
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: Sample.alice.id, connectionID: "gw:1"))
        let background = try await connection.nextSent()
        XCTAssertEqual(background, .appState(.background))

        model.appBecameActive()
        let foreground = try await connection.nextSent()
        XCTAssertEqual(foreground, .appState(.foreground))
        await model.signOut()
    }

    // MARK: - Mentions, owners, read state

    @MainActor
    func testTheOwnerOfAGroupIsOfferedDeleteOnOthersMessages() async throws {
        let owned = Channel(id: "c-owned", kind: .group, name: "mine", description: "", createdAt: Sample.date, createdBy: "u-me")
        let theirs = Channel(id: "c-theirs", kind: .group, name: "bobs", description: "", createdAt: Sample.date, createdBy: "u-bob")
        let (session, transport) = makeSession(channels: [owned, theirs])
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("the channel list") { session.channels.count == 2 }
        XCTAssertTrue(session.ownsChannel("c-owned"))
        XCTAssertFalse(session.ownsChannel("c-theirs"))

        let inOwned = Sample.message(seq: 1, channelID: "c-owned", senderID: "u-bob", clientMsgID: "a", body: "@me spam", mentions: ["u-me"])
        let inTheirs = Sample.message(seq: 1, channelID: "c-theirs", senderID: "u-bob", clientMsgID: "b")
        try connection.serverSends(.message(inOwned))
        try connection.serverSends(.message(inTheirs))
        try await waitUntil("the messages") { !session.timeline("c-owned").isEmpty && !session.timeline("c-theirs").isEmpty }
        let spam = session.timeline("c-owned").entries[0]
        XCTAssertEqual(session.actions(for: spam), [.reply, .react, .delete])
        XCTAssertEqual(session.actions(for: session.timeline("c-theirs").entries[0]), [.reply, .react])
        XCTAssertTrue(session.mentionsMe(spam))
        XCTAssertFalse(session.mentionsMe(session.timeline("c-theirs").entries[0]))

        // The owner deletes it for everyone.
        session.perform(.delete, on: spam)
        guard case .delete("c-owned", inOwned.id, _) = try await connection.nextSent() else { return XCTFail("no delete") }
        await session.shutdown()
    }

    @MainActor
    func testAnEditThatRemovesTheMentionClearsTheFlag() async throws {
        let (session, transport) = makeSession()
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        let message = Sample.message(seq: 1, channelID: "c1", senderID: "u-bob", clientMsgID: "a", body: "@me look", mentions: ["u-me"])
        try connection.serverSends(.message(message))
        try await waitUntil("the message") { session.timeline("c1").entries.count == 1 }
        XCTAssertTrue(session.mentionsMe(session.timeline("c1").entries[0]))
        let edit = Sample.event(seq: 2, of: message, .edited(body: "look", mentions: []))
        try connection.serverSends(.event(edit))
        try await waitUntil("the edit") { session.timeline("c1").entries[0].body == "look" }
        XCTAssertFalse(session.mentionsMe(session.timeline("c1").entries[0]))
        // The same edit again (a replay): still no mention, nothing else changed.
        try connection.serverSends(.event(edit))
        try connection.serverSends(.event(Sample.event(seq: 3, of: message, .edited(body: "@me look again", mentions: ["u-me"]))))
        try await waitUntil("the second edit") { session.timeline("c1").entries[0].body == "@me look again" }
        XCTAssertTrue(session.mentionsMe(session.timeline("c1").entries[0]))
        await session.shutdown()
    }

    @MainActor
    func testUnreadCountsFollowLiveMessagesTheScreenAndOtherDevices() async throws {
        let general = Conversation(
            channel: Self.channel("c1", "general", created: 0),
            lastMessage: LastMessage(id: "m10", seq: 10, senderID: "u-bob", preview: "hi", createdAt: Sample.date.addingTimeInterval(10)),
            headSeq: 10,
            readSeq: 8,
            unreadCount: 2,
            mentionCount: 0
        )
        let (session, transport) = makeSession(conversations: [general])
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("the conversation list") { session.channels.count == 1 }
        XCTAssertEqual(session.readState(of: "c1").unreadCount, 2)
        XCTAssertEqual(session.lastMessages["c1"]?.preview, "hi")

        // A live message by someone else, mentioning the user: one more unread, one mention.
        let m11 = Sample.message(seq: 11, channelID: "c1", senderID: "u-bob", clientMsgID: "a", mentions: ["u-me"])
        try connection.serverSends(.message(m11))
        try await waitUntil("the count") { session.readState(of: "c1").unreadCount == 3 }
        XCTAssertEqual(session.readState(of: "c1").mentionCount, 1)

        // The user opens the conversation: the divider goes after what was read (8), and the
        // conversation is marked read up to its newest message, on the server too.
        session.conversationAppeared("c1")
        XCTAssertEqual(session.unreadMarkers["c1"], 8)
        XCTAssertEqual(session.readState(of: "c1").unreadCount, 0)
        let firstMark = try await connection.nextSent()
        XCTAssertEqual(firstMark, .markRead(channelID: "c1", seq: 11))

        // While it is on screen, new messages are read as they come.
        try connection.serverSends(.message(Sample.message(seq: 12, channelID: "c1", senderID: "u-bob", clientMsgID: "b")))
        let secondMark = try await connection.nextSent()
        XCTAssertEqual(secondMark, .markRead(channelID: "c1", seq: 12))
        XCTAssertEqual(session.readState(of: "c1").unreadCount, 0)

        // Closed: the next one is unread again, until another device reads it.
        session.conversationDisappeared("c1")
        XCTAssertNil(session.unreadMarkers["c1"])
        try connection.serverSends(.message(Sample.message(seq: 13, channelID: "c1", senderID: "u-bob", clientMsgID: "c")))
        try await waitUntil("unread again") { session.readState(of: "c1").unreadCount == 1 }
        try connection.serverSends(.read(channelID: "c1", seq: 13))
        try await waitUntil("read elsewhere") { session.readState(of: "c1").unreadCount == 0 }
        XCTAssertEqual(session.readState(of: "c1").readSeq, 13)

        // Reopened with nothing unread: no divider.
        session.conversationAppeared("c1")
        XCTAssertNil(session.unreadMarkers["c1"])
        await session.shutdown()
    }

    // MARK: - Channel directory

    private static func entry(_ id: String, members: Int, member: Bool = false) -> DirectoryEntry {
        DirectoryEntry(id: id, name: "chan \(id)", description: "", memberCount: members, lastActivityAt: nil, isMember: member)
    }

    /// A directory over scripted pages: `pages[sort]` answers the first request of that sort,
    /// then the one with cursor "<sort>-2", and so on.
    @MainActor
    private func makeDirectory(_ pages: [String: [DirectoryPage]]) -> (ChannelDirectory, ScriptedHTTP) {
        let http = ScriptedHTTP { request, _ in
            let query = URLComponents(url: request.url, resolvingAgainstBaseURL: false)?.queryItems ?? []
            let sort = query.first { $0.name == "sort" }?.value ?? "members"
            let cursor = query.first { $0.name == "cursor" }?.value
            let index = cursor.flatMap { Int($0.split(separator: "-").last ?? "") } ?? 1
            guard let list = pages[sort], list.indices.contains(index - 1) else {
                return .json(400, Data(#"{"error":{"code":"invalid_cursor","message":"no such page"}}"#.utf8))
            }
            return try .json(200, encoding: list[index - 1])
        }
        let api = APIClient(server: ServerEndpoint(string: "http://chat.test")!, http: http, tokens: FakeTokens())
        return (ChannelDirectory(api: api, pageSize: 2), http)
    }

    @MainActor
    func testTheDirectoryLoadsPageAfterPageAndEachChannelOnce() async throws {
        let (directory, http) = makeDirectory([
            "members": [
                DirectoryPage(channels: [Self.entry("a", members: 9), Self.entry("b", members: 5)], nextCursor: "members-2"),
                // "b" gained members between the requests and comes back: it keeps its first place.
                DirectoryPage(channels: [Self.entry("b", members: 6), Self.entry("c", members: 2)], nextCursor: "members-3"),
                DirectoryPage(channels: [Self.entry("d", members: 1)], nextCursor: nil),
            ],
        ])
        XCTAssertFalse(directory.canLoadMore, "nothing loaded yet")
        await directory.reload()
        XCTAssertEqual(directory.entries.map(\.id), ["a", "b"])
        XCTAssertTrue(directory.canLoadMore)
        await directory.loadNextPage()
        await directory.loadNextPage()
        XCTAssertEqual(directory.entries.map(\.id), ["a", "b", "c", "d"])
        XCTAssertEqual(directory.entries[1].memberCount, 5)
        XCTAssertTrue(directory.isComplete)
        XCTAssertFalse(directory.canLoadMore)
        await directory.loadNextPage() // past the end: no request
        let targets = await http.requests.map(\.target)
        XCTAssertEqual(targets, [
            "/api/v1/channels/directory?sort=members&limit=2",
            "/api/v1/channels/directory?sort=members&limit=2&cursor=members-2",
            "/api/v1/channels/directory?sort=members&limit=2&cursor=members-3",
        ])
    }

    @MainActor
    func testSwitchingTheSortStartsAgainFromTheFirstPage() async throws {
        let (directory, http) = makeDirectory([
            "members": [DirectoryPage(channels: [Self.entry("a", members: 9), Self.entry("b", members: 5)], nextCursor: "members-2")],
            "activity": [DirectoryPage(channels: [Self.entry("b", members: 5)], nextCursor: nil)],
        ])
        await directory.reload()
        await directory.setSort(.activity)
        XCTAssertEqual(directory.sort, .activity)
        XCTAssertEqual(directory.entries.map(\.id), ["b"])
        XCTAssertTrue(directory.isComplete)
        await directory.setSort(.activity) // the same sort: nothing happens
        let targets = await http.requests.map(\.target)
        XCTAssertEqual(targets.last, "/api/v1/channels/directory?sort=activity&limit=2")
        XCTAssertEqual(targets.count, 2)
    }

    @MainActor
    func testJoiningFromTheDirectoryCountsTheUserOnce() async throws {
        let (directory, _) = makeDirectory([
            "members": [DirectoryPage(channels: [Self.entry("a", members: 3), Self.entry("b", members: 1, member: true)], nextCursor: nil)],
        ])
        await directory.reload()
        directory.markJoined("a")
        directory.markJoined("a")
        directory.markJoined("b")
        XCTAssertEqual(directory.entries.map(\.memberCount), [4, 1])
        XCTAssertEqual(directory.entries.map(\.isMember), [true, true])
        XCTAssertEqual(ChannelDirectory.membersLabel(1), "1 member")
        XCTAssertEqual(ChannelDirectory.membersLabel(4), "4 members")
    }

    @MainActor
    func testADirectoryErrorIsShownAndTheListKept() async throws {
        let (directory, _) = makeDirectory([
            "members": [DirectoryPage(channels: [Self.entry("a", members: 3)], nextCursor: "members-9")],
        ])
        await directory.reload()
        await directory.loadNextPage() // the scripted server refuses page 9
        XCTAssertEqual(directory.entries.map(\.id), ["a"])
        XCTAssertNotNil(directory.errorMessage)
        XCTAssertFalse(directory.isComplete)
    }
}
