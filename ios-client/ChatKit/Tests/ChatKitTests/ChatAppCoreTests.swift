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

    /// A session wired to fakes: the server's REST answers come from `channels`.
    @MainActor
    private func makeSession(channels: [Channel]) -> (ChatSession, FakeTransport) {
        let transport = FakeTransport()
        let me = User(id: "u-me", username: "me", displayName: "Me")
        let http = ScriptedHTTP { request, _ in
            switch request.target {
            case "/api/v1/users/me": return try .json(200, encoding: me)
            case "/api/v1/channels": return try .json(200, encoding: ChannelList(channels: channels))
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
}
