import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatKit

/// The reconnect/resume state machine and the resend queue, against a fake transport: each test
/// plays the server on `FakeConnection`s.
final class RealtimeClientTests: XCTestCase {
    /// A client wired to fakes. Heartbeats and send timeouts are off unless a test turns them on.
    private struct Harness {
        let transport = FakeTransport()
        let tokens = FakeTokens()
        let events = AsyncQueue<RealtimeEvent>()
        let sleeper: TestSleeper
        let client: RealtimeClient

        init(
            configuration: RealtimeConfiguration = RealtimeConfiguration(pingInterval: nil, sendTimeout: nil),
            sleeper: TestSleeper = TestSleeper(mode: .immediate),
            jitter: Double = 1,
            network: FakeNetwork? = nil
        ) {
            self.sleeper = sleeper
            self.client = RealtimeClient(
                url: URL(string: "ws://chat.test/ws")!,
                transport: transport,
                tokens: tokens,
                configuration: configuration,
                sleep: sleeper.function,
                random: { jitter },
                // Never the real monitor: on a Mac it would report the host's network.
                network: network
            )
            let stream = client.events
            let events = self.events
            Task {
                for await event in stream {
                    await events.put(event)
                }
            }
        }

        /// The next event satisfying `matches`, skipping others.
        @discardableResult
        func event(_ what: String, where matches: (RealtimeEvent) -> Bool) async throws -> RealtimeEvent {
            while true {
                let event = try await events.take(what: what)
                if matches(event) { return event }
            }
        }

        /// Skips events until exactly `expected`.
        func event(_ expected: RealtimeEvent) async throws {
            try await event("\(expected)") { $0 == expected }
        }

        /// Takes the next connection and completes its handshake with `ready`.
        func connectAndReady(userID: String = "u-me") async throws -> FakeConnection {
            let connection = try await transport.nextConnection()
            try connection.serverSends(.ready(userID: userID, connectionID: "k-\(UUID().uuidString)"))
            try await event("ready") { if case .ready = $0 { true } else { false } }
            return connection
        }
    }

    private let me = "u-me"

    // MARK: - Sending

    func testSendsQueuedBeforeReadyGoOutInOrderOnceReady() async throws {
        let h = Harness()
        await h.client.start()
        await h.client.send("one", to: "c1", clientMsgID: "s1")
        await h.client.send("two", to: "c2", clientMsgID: "s2")

        let connection = try await h.transport.nextConnection()
        XCTAssertEqual(connection.authorization, "Bearer token-1")
        let early = try await connection.unreadSent()
        XCTAssertTrue(early.isEmpty, "nothing may be sent before ready")

        try connection.serverSends(.ready(userID: me, connectionID: "k1"))
        let first = try await connection.nextSent()
        let second = try await connection.nextSent()
        XCTAssertEqual(first, .send(channelID: "c1", clientMsgID: "s1", body: "one"))
        XCTAssertEqual(second, .send(channelID: "c2", clientMsgID: "s2", body: "two"))
        try await h.event(.stateChanged(.connected))
        await h.client.stop()
    }

    func testAnAckTakesTheSendOutOfTheQueue() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        _ = try await connection.nextSent()

        let stored = Sample.message(seq: nil, senderID: me, clientMsgID: "s1", body: "hi")
        try connection.serverSends(.ack(clientMsgID: "s1", message: stored))
        try await h.event(.acked(clientMsgID: "s1", message: stored))
        let pending = await h.client.pendingSends
        XCTAssertTrue(pending.isEmpty)
        await h.client.stop()
    }

    func testSendingTheSameClientMsgIDTwiceQueuesItOnce() async throws {
        let h = Harness()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        let pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"])
    }

    func testARefusedSendIsReportedAndNotResent() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        _ = try await connection.nextSent()

        try connection.serverSends(.error(FrameError(code: FrameErrorCode.notAMember, message: "no", clientMsgID: "s1")))
        try await h.event(.sendFailed(SendFailure(clientMsgID: "s1", channelID: "c1", code: FrameErrorCode.notAMember, message: "no")))
        let pending = await h.client.pendingSends
        XCTAssertTrue(pending.isEmpty)

        // Not resent after a reconnect either: the next frame out is a later send.
        connection.serverCloses(code: CloseCode.goingAway)
        let next = try await h.connectAndReady()
        await h.client.send("later", to: "c1", clientMsgID: "s2")
        let frame = try await next.nextSent()
        XCTAssertEqual(frame, .send(channelID: "c1", clientMsgID: "s2", body: "later"))
        await h.client.stop()
    }

    func testAnUnavailableServerKeepsTheSendQueuedAndRetriesIt() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        let first = try await connection.nextSent()

        try connection.serverSends(.error(FrameError(code: FrameErrorCode.unavailable, message: "busy", clientMsgID: "s1")))
        let retry = try await connection.nextSent()
        XCTAssertEqual(retry, first, "the same frame, same client_msg_id")
        let pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"])
        await h.client.stop()
    }

    func testARateLimitedSendIsResentAfterTheTimeTheServerNames() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        let first = try await connection.nextSent()

        try connection.serverSends(.error(FrameError(
            code: FrameErrorCode.rateLimited, message: "slow down", clientMsgID: "s1", retryAfterMs: 250
        )))
        let retry = try await connection.nextSent()
        XCTAssertEqual(retry, first, "the same frame, same client_msg_id")
        let waits = await h.sleeper.requested
        XCTAssertTrue(waits.contains(.milliseconds(250)), "waited as told: \(waits)")
        let pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"])
        await h.client.stop()
    }

    func testAnUnackedSendTimesOut() async throws {
        let h = Harness(configuration: RealtimeConfiguration(pingInterval: nil, sendTimeout: .seconds(30)))
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        _ = try await connection.nextSent()
        let failed = try await h.event("timeout") { if case .sendFailed = $0 { true } else { false } }
        guard case .sendFailed(let failure) = failed else { return XCTFail("\(failed)") }
        XCTAssertEqual(failure.clientMsgID, "s1")
        XCTAssertEqual(failure.channelID, "c1")
        XCTAssertEqual(failure.code, RealtimeClient.timeoutCode)
        let pending = await h.client.pendingSends
        XCTAssertTrue(pending.isEmpty)
        let waits = await h.sleeper.requested
        XCTAssertEqual(waits, [.seconds(30)])
        await h.client.stop()
    }

    func testTheSendTimeoutDoesNotRunWhileTheClientIsStopped() async throws {
        // Sleeps end at once here: a timeout armed at enqueue would fail the send right away.
        let h = Harness(configuration: RealtimeConfiguration(pingInterval: nil, sendTimeout: .seconds(30)))
        await h.client.send("written offline", to: "c1", clientMsgID: "s1")
        try await Task.sleep(for: .milliseconds(50))
        var pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"], "still queued, as the banner promises")
        var waits = await h.sleeper.requested
        XCTAssertEqual(waits, [], "no clock runs for a send that has not gone out")

        // Started and stopped again before the server said ready: still no clock.
        await h.client.start()
        _ = try await h.transport.nextConnection()
        await h.client.stop()
        pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"])

        // On a ready connection it goes out, and only now may it time out.
        await h.client.start()
        let connection = try await h.connectAndReady()
        let sent = try await connection.nextSent()
        XCTAssertEqual(sent, .send(channelID: "c1", clientMsgID: "s1", body: "written offline"))
        try await h.event("timeout") { if case .sendFailed = $0 { true } else { false } }
        waits = await h.sleeper.requested
        XCTAssertEqual(waits, [.seconds(30)])
        await h.client.stop()
    }

    func testALostConnectionStopsTheSendClockUntilTheResend() async throws {
        let sleeper = TestSleeper(mode: .manual)
        let h = Harness(configuration: RealtimeConfiguration(pingInterval: nil, sendTimeout: .seconds(60)), sleeper: sleeper)
        await h.client.start()
        let first = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        _ = try await first.nextSent()
        let armed = try await sleeper.nextRequest()
        XCTAssertEqual(armed, .seconds(60))

        first.networkFails()
        // The reconnect wait; the send's clock was stopped with the connection.
        let backoff = try await sleeper.nextRequest()
        XCTAssertEqual(backoff, .milliseconds(500))
        // Wait for the cancelled timeout's sleep to be withdrawn, so the oldest sleep is the backoff.
        try await sleeper.waitUntilSleeping(1)
        await sleeper.releaseOldest()
        let second = try await h.connectAndReady()
        _ = try await second.nextSent()
        let rearmed = try await sleeper.nextRequest()
        XCTAssertEqual(rearmed, .seconds(60), "a fresh clock for the resend")
        let pending = await h.client.pendingSends
        XCTAssertEqual(pending.map(\.clientMsgID), ["s1"])
        await h.client.stop()
    }

    // MARK: - Reconnect and resume

    func testGoingAwayReconnectsResumesFromTheNewestSeenMessagesAndResendsUnacked() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()

        let m5 = Sample.message(seq: 5, channelID: "c1", clientMsgID: "a")
        let m6 = Sample.message(seq: 6, channelID: "c1", clientMsgID: "b")
        let m7 = Sample.message(seq: 7, channelID: "c2", clientMsgID: "c")
        // m5 arrives last (a replay): the resume position stays at the highest seq.
        for message in [m6, m7, m5] {
            try first.serverSends(.message(message))
        }
        for message in [m6, m7, m5] {
            try await h.event(.message(message))
        }
        await h.client.send("unacked", to: "c1", clientMsgID: "s1")
        let sent = try await first.nextSent()
        XCTAssertEqual(sent, .send(channelID: "c1", clientMsgID: "s1", body: "unacked"))

        XCTAssertEqual(first.request.url?.absoluteString, "ws://chat.test/ws", "nothing to resume yet")
        first.serverCloses(code: CloseCode.goingAway)
        let second = try await h.connectAndReady()
        XCTAssertEqual(second.request.url?.absoluteString, "ws://chat.test/ws?resume=1", "the resume is announced")
        let resume = try await second.nextSent()
        let resend = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": m6.id, "c2": m7.id]))
        XCTAssertEqual(resend, sent, "resent with the same client_msg_id")

        // A working connection's loss is retried after one short, jittered wait.
        let waits = await h.sleeper.requested
        XCTAssertEqual(waits, [.milliseconds(500)])
        await h.client.stop()
    }

    func testSlowConsumerReconnectsAndAReplayedOwnMessageCompletesItsSend() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        let m1 = Sample.message(seq: 1, channelID: "c1", clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))
        await h.client.send("mine", to: "c1", clientMsgID: "s1")
        _ = try await first.nextSent()

        // The ack is lost with the connection.
        first.serverCloses(code: CloseCode.slowConsumer)
        let second = try await h.connectAndReady()
        let resume = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": m1.id]))
        _ = try await second.nextSent() // the resend

        // The replay brings our message with its place: the send is done.
        let mine = Sample.message(seq: 2, channelID: "c1", senderID: me, clientMsgID: "s1", body: "mine")
        try second.serverSends(.message(mine))
        try second.serverSends(.resumed(channelIDs: ["c1"]))
        try await h.event(.acked(clientMsgID: "s1", message: mine))
        try await h.event(.message(mine))
        try await h.event(.resumed(channelIDs: ["c1"]))
        let pending = await h.client.pendingSends
        XCTAssertTrue(pending.isEmpty)
        let positions = await h.client.resumePositions
        XCTAssertEqual(positions, ["c1": mine.id])
        await h.client.stop()
    }

    func testHistorySeenOutsideTheSocketSeedsTheFirstResume() async throws {
        let h = Harness()
        let seen = Sample.message(seq: 40, channelID: "c9", clientMsgID: "h")
        await h.client.noteSeen([Sample.message(seq: 39, channelID: "c9", clientMsgID: "g"), seen])
        await h.client.start()
        let connection = try await h.connectAndReady()
        let resume = try await connection.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c9": seen.id]))
        await h.client.stop()
    }

    func testOnlyTheChannelsTheServerRefusedToResumeAreForgotten() async throws {
        let h = Harness()
        let unknown = Sample.message(seq: 3, channelID: "c1", clientMsgID: "x")
        let left = Sample.message(seq: 4, channelID: "c2", clientMsgID: "y")
        let fine = Sample.message(seq: 5, channelID: "c3", clientMsgID: "z")
        await h.client.noteSeen([unknown, left, fine])
        await h.client.start()
        let first = try await h.connectAndReady()
        let resume = try await first.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": unknown.id, "c2": left.id, "c3": fine.id]))

        // What the gateway answers: one error per refused channel (no channel field), then
        // `resumed` naming the channels it did resume.
        try first.serverSends(.error(FrameError(code: FrameErrorCode.unknownMessage, message: "message x is not a stored message of channel c1")))
        try first.serverSends(.error(FrameError(code: FrameErrorCode.notAMember, message: "not a member of channel c2")))
        try first.serverSends(.resumed(channelIDs: ["c3"]))
        try await h.event(.resumeRefused(channelIDs: ["c1", "c2"]))
        try await h.event(.resumed(channelIDs: ["c3"]))
        let positions = await h.client.resumePositions
        XCTAssertEqual(positions, ["c3": fine.id], "the good position is kept")

        // The next reconnect does not ask for the refused channels again.
        first.serverCloses(code: CloseCode.goingAway)
        let second = try await h.connectAndReady()
        let again = try await second.nextSent()
        XCTAssertEqual(again, .resume(channels: ["c3": fine.id]))
        await h.client.stop()
    }

    func testTheNetworkComingBackSkipsTheBackoff() async throws {
        let sleeper = TestSleeper(mode: .manual)
        let network = FakeNetwork()
        let h = Harness(sleeper: sleeper, network: network)
        await h.transport.failNextConnects(with: Array(repeating: URLError(.notConnectedToInternet), count: 6))
        await h.client.start()
        // Offline: attempts fail and the waits grow; release the first few.
        for _ in 0..<5 {
            _ = try await sleeper.nextRequest()
            await sleeper.releaseOldest()
        }
        let longWait = try await sleeper.nextRequest()
        XCTAssertEqual(longWait, .seconds(16))

        // The path monitor says the network is back: no need to sit out the 16 s.
        network.report(available: true)
        let connection = try await h.connectAndReady()
        XCTAssertNotNil(connection)
        await h.client.stop()
    }

    func testBackoffGrowsWhileConnectsFailAndStartsOverAfterAWorkingConnection() async throws {
        let h = Harness()
        await h.transport.failNextConnects(with: Array(repeating: URLError(.cannotConnectToHost), count: 4))
        await h.client.start()
        try await h.event(.stateChanged(.waitingToReconnect(attempt: 1, delay: .milliseconds(500))))
        let first = try await h.connectAndReady()
        var waits = await h.sleeper.requested
        XCTAssertEqual(waits, [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4)])

        first.serverCloses(code: CloseCode.goingAway)
        _ = try await h.connectAndReady()
        waits = await h.sleeper.requested
        XCTAssertEqual(waits.last, .milliseconds(500))
        await h.client.stop()
    }

    func testANetworkFailureReconnects() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        first.networkFails()
        _ = try await h.connectAndReady()
        let connects = await h.transport.connectCount
        XCTAssertEqual(connects, 2)
        await h.client.stop()
    }

    // MARK: - Authentication

    func testUnauthorizedCloseRefreshesTheTokenAndReconnectsAtOnce() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        XCTAssertEqual(first.authorization, "Bearer token-1")

        first.serverCloses(code: CloseCode.unauthorized)
        let second = try await h.transport.nextConnection()
        XCTAssertEqual(second.authorization, "Bearer token-2")
        let rejected = await h.tokens.rejected
        XCTAssertEqual(rejected, ["token-1"])
        let waits = await h.sleeper.requested
        XCTAssertTrue(waits.isEmpty, "a refreshed token is tried without waiting")
        await h.client.stop()
    }

    func testAnUpgradeRefusedWith401RefreshesTheTokenToo() async throws {
        let h = Harness()
        await h.transport.failNextConnects(with: [TransportError.handshakeRejected(status: 401)])
        await h.client.start()
        let connection = try await h.connectAndReady()
        XCTAssertEqual(connection.authorization, "Bearer token-2")
        let rejected = await h.tokens.rejected
        XCTAssertEqual(rejected, ["token-1"])
        await h.client.stop()
    }

    func testADeadRefreshTokenSignsOutAndFailsQueuedSends() async throws {
        let h = Harness()
        await h.tokens.failRefreshes(with: .sessionExpired)
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        _ = try await connection.nextSent()

        connection.serverCloses(code: CloseCode.unauthorized)
        let failed = try await h.event("send failure") { if case .sendFailed = $0 { true } else { false } }
        XCTAssertEqual(failed, .sendFailed(SendFailure(
            clientMsgID: "s1", channelID: "c1", code: RealtimeClient.sessionExpiredCode, message: "Your session has expired."
        )))
        try await h.event(.stateChanged(.signedOut))
        let connects = await h.transport.connectCount
        XCTAssertEqual(connects, 1)
    }

    func testTheTokenCanTravelInTheQuery() async throws {
        let h = Harness(configuration: RealtimeConfiguration(pingInterval: nil, sendTimeout: nil, tokenPlacement: .query))
        await h.client.start()
        let connection = try await h.transport.nextConnection()
        XCTAssertNil(connection.authorization)
        XCTAssertEqual(connection.request.url?.absoluteString, "ws://chat.test/ws?token=token-1")
        await h.client.stop()
    }

    // MARK: - Replies, edits, deletes, reactions

    func testAReplyGoesOutAsASendWithReplyTo() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.send("yes", to: "c1", clientMsgID: "s1", replyTo: "m-original")
        let frame = try await connection.nextSent()
        XCTAssertEqual(frame, .reply(channelID: "c1", clientMsgID: "s1", body: "yes", replyTo: "m-original"))
        await h.client.stop()
    }

    func testAChangeIsAckedThenItsEventArrivesAndBecomesTheResumePosition() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        let m1 = Sample.message(seq: 1, channelID: "c1", senderID: me, clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))

        await h.client.change(.edit(body: "better"), of: m1.id, in: "c1", clientEventID: "ce1")
        let sent = try await first.nextSent()
        XCTAssertEqual(sent, .edit(channelID: "c1", messageID: m1.id, clientEventID: "ce1", body: "better"))
        try first.serverSends(.eventAck(clientEventID: "ce1", eventID: "e-3"))
        try await h.event(.changeAcked(clientEventID: "ce1", eventID: "e-3"))
        var queued = await h.client.pendingChanges
        XCTAssertTrue(queued.isEmpty)

        // Someone else's reaction (position 2), then the edit (position 3).
        let reaction = Sample.event(seq: 2, of: m1, actorID: "u-bob", .reactionAdded(emoji: "👍", count: 1))
        let edit = Sample.event(seq: 3, of: m1, actorID: me, .edited(body: "better"), clientEventID: "ce1")
        try first.serverSends(.event(reaction))
        try first.serverSends(.event(edit))
        try await h.event(.event(reaction))
        try await h.event(.event(edit))
        queued = await h.client.pendingChanges
        XCTAssertTrue(queued.isEmpty)

        // An event's id is a resume position like a message's: the newest by seq wins.
        let positions = await h.client.resumePositions
        XCTAssertEqual(positions, ["c1": edit.id])
        first.serverCloses(code: CloseCode.goingAway)
        let second = try await h.connectAndReady()
        let resume = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": edit.id]))
        await h.client.stop()
    }

    func testAnUnackedChangeIsResentWithItsClientEventIDAndItsOwnEventCompletesIt() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        let m1 = Sample.message(seq: 1, channelID: "c1", clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))
        await h.client.send("hi", to: "c1", clientMsgID: "s1")
        await h.client.change(.react(emoji: "🎉"), of: m1.id, in: "c1", clientEventID: "ce1")
        _ = try await first.nextSent()
        let react = try await first.nextSent()

        // The ack is lost with the connection: resume, then the unacked send, then the change.
        first.serverCloses(code: CloseCode.slowConsumer)
        let second = try await h.connectAndReady()
        let resume = try await second.nextSent()
        let resend = try await second.nextSent()
        let again = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": m1.id]))
        XCTAssertEqual(resend, .send(channelID: "c1", clientMsgID: "s1", body: "hi"))
        XCTAssertEqual(again, react, "the same client_event_id: never applied twice")

        // Its event arrives (replayed) before any ack: the change is done.
        let event = Sample.event(seq: 2, of: m1, actorID: me, .reactionAdded(emoji: "🎉", count: 1), clientEventID: "ce1")
        try second.serverSends(.event(event))
        try await h.event(.changeAcked(clientEventID: "ce1", eventID: event.id))
        try await h.event(.event(event))
        let queued = await h.client.pendingChanges
        XCTAssertTrue(queued.isEmpty)
        await h.client.stop()
    }

    func testARefusedChangeIsReportedByItsClientEventID() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        let pending = await h.client.change(.delete, of: "m9", in: "c1", clientEventID: "ce1")
        _ = try await connection.nextSent()
        try connection.serverSends(.error(FrameError(code: FrameErrorCode.notAuthor, message: "not yours", clientEventID: "ce1")))
        try await h.event(.changeFailed(ChangeFailure(clientEventID: "ce1", change: pending, code: FrameErrorCode.notAuthor, message: "not yours")))
        let queued = await h.client.pendingChanges
        XCTAssertTrue(queued.isEmpty)
        await h.client.stop()
    }

    func testARateLimitedChangeIsResentAfterTheTimeTheServerNames() async throws {
        let h = Harness()
        await h.client.start()
        let connection = try await h.connectAndReady()
        await h.client.change(.unreact(emoji: "👍"), of: "m9", in: "c1", clientEventID: "ce1")
        let first = try await connection.nextSent()
        try connection.serverSends(.error(FrameError(
            code: FrameErrorCode.rateLimited, message: "slow down", retryAfterMs: 300, clientEventID: "ce1"
        )))
        let retry = try await connection.nextSent()
        XCTAssertEqual(retry, first)
        let waits = await h.sleeper.requested
        XCTAssertTrue(waits.contains(.milliseconds(300)), "waited as told: \(waits)")
        let queued = await h.client.pendingChanges
        XCTAssertEqual(queued.map(\.clientEventID), ["ce1"])
        await h.client.stop()
    }

    // MARK: - Read marks

    func testReadMarksMadeWhileOfflineGoOutAfterReadyAndOnlyTheHighest() async throws {
        let h = Harness()
        await h.client.markRead(channelID: "c1", seq: 3)
        await h.client.markRead(channelID: "c1", seq: 7)
        await h.client.markRead(channelID: "c1", seq: 5)
        await h.client.markRead(channelID: "c2", seq: 0) // not a position: dropped
        let pending = await h.client.pendingReadMarks
        XCTAssertEqual(pending, ["c1": 7])
        await h.client.start()
        let connection = try await h.connectAndReady()
        let mark = try await connection.nextSent()
        XCTAssertEqual(mark, .markRead(channelID: "c1", seq: 7))
        let left = await h.client.pendingReadMarks
        XCTAssertEqual(left, [:])

        // Connected: a new mark goes out at once; one not above it does not go out again.
        await h.client.markRead(channelID: "c1", seq: 7)
        await h.client.markRead(channelID: "c1", seq: 9)
        let next = try await connection.nextSent()
        XCTAssertEqual(next, .markRead(channelID: "c1", seq: 9))
        let unsent = try await connection.unreadSent()
        XCTAssertEqual(unsent, [])
        await h.client.stop()
    }

    func testAReadFrameIsReportedAndMakesLowerMarksMoot() async throws {
        let h = Harness()
        await h.client.markRead(channelID: "c1", seq: 4)
        await h.client.start()
        let connection = try await h.transport.nextConnection()
        // Marked on another device before this connection is ready.
        try connection.serverSends(.read(channelID: "c1", seq: 6))
        try await h.event(.read(channelID: "c1", seq: 6))
        let pending = await h.client.pendingReadMarks
        XCTAssertEqual(pending, [:], "the other device read further")
        try connection.serverSends(.ready(userID: me, connectionID: "k-1"))
        try await h.event("ready") { if case .ready = $0 { true } else { false } }
        await h.client.markRead(channelID: "c1", seq: 5)
        await h.client.markRead(channelID: "c1", seq: 8)
        let sent = try await connection.nextSent()
        XCTAssertEqual(sent, .markRead(channelID: "c1", seq: 8), "5 is below the other device's mark")
        await h.client.stop()
    }

    // MARK: - Lifecycle

    func testStopClosesTheConnectionAndStartCarriesOn() async throws {
        let h = Harness()
        await h.client.start()
        let first = try await h.connectAndReady()
        let m1 = Sample.message(seq: 1, channelID: "c1", clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))

        await h.client.stop()
        XCTAssertEqual(first.closeByClient?.code, CloseCode.normal)
        try await h.event(.stateChanged(.disconnected))

        // Queued while stopped, sent after the next start, after the resume.
        await h.client.send("later", to: "c1", clientMsgID: "s1")
        await h.client.start()
        let second = try await h.connectAndReady()
        let resume = try await second.nextSent()
        let send = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": m1.id]))
        XCTAssertEqual(send, .send(channelID: "c1", clientMsgID: "s1", body: "later"))
        let connects = await h.transport.connectCount
        XCTAssertEqual(connects, 2)
        await h.client.stop()
    }

    func testTheBackgroundIsSaidBeforeTheCloseAndToEveryConnectionUntilTheAppIsBack() async throws {
        // Manual sleeps: the close's grace never runs out by itself, so only the frames having
        // left can end the wait.
        let sleeper = TestSleeper(mode: .manual)
        let h = Harness(sleeper: sleeper)
        await h.client.start()
        let first = try await h.connectAndReady()
        let m1 = Sample.message(seq: 1, channelID: "c1", clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))
        // A connection starts in the foreground: nothing to say.
        await h.client.setAppState(.foreground)
        await h.client.markRead(channelID: "c1", seq: 1)
        let mark = try await first.nextSent()
        XCTAssertEqual(mark, .markRead(channelID: "c1", seq: 1))

        // Going to the background: said, then closed once it left (on a slow network here).
        first.holdSends()
        await h.client.setAppState(.background)
        async let stopped: Void = h.client.stop(flushingWithin: .milliseconds(300))
        let grace = try await sleeper.nextRequest()
        XCTAssertEqual(grace, .milliseconds(300))
        XCTAssertNil(first.closeByClient, "the close waits for the frame")
        first.releaseSends()
        await stopped
        XCTAssertEqual(first.closeByClient?.code, CloseCode.normal)
        let beforeClose = try await first.unreadSent()
        XCTAssertEqual(beforeClose, [.appState(.background)], "a frame sent after the close would be missing")
        try await h.event(.stateChanged(.disconnected))

        // Started again while still in the background (the socket stays open): the server hears
        // it right after the resume, and `foreground` once the app is back, once.
        await h.client.start()
        let second = try await h.connectAndReady()
        let resume = try await second.nextSent()
        XCTAssertEqual(resume, .resume(channels: ["c1": m1.id]))
        let background = try await second.nextSent()
        XCTAssertEqual(background, .appState(.background))
        await h.client.setAppState(.foreground)
        await h.client.setAppState(.foreground)
        await h.client.markRead(channelID: "c1", seq: 2)
        let foreground = try await second.nextSent()
        XCTAssertEqual(foreground, .appState(.foreground))
        let next = try await second.nextSent()
        XCTAssertEqual(next, .markRead(channelID: "c1", seq: 2))
        let state = await h.client.appState
        XCTAssertEqual(state, .foreground)
        await h.client.stop()
    }

    func testTheBackgroundCloseWaitsForAStalledConnectionOnlyAMoment() async throws {
        let sleeper = TestSleeper(mode: .manual)
        let h = Harness(sleeper: sleeper)
        await h.client.start()
        let connection = try await h.connectAndReady()
        connection.holdSends()
        await h.client.setAppState(.background)
        async let stopped: Void = h.client.stop(flushingWithin: .milliseconds(300))

        let grace = try await sleeper.nextRequest()
        XCTAssertEqual(grace, .milliseconds(300))
        XCTAssertNil(connection.closeByClient, "the close waits for the frame...")
        await sleeper.releaseOldest()
        await stopped
        XCTAssertEqual(connection.closeByClient?.code, CloseCode.normal, "...no longer than the grace")
        let sent = try await connection.unreadSent()
        XCTAssertEqual(sent, [])
        try await h.event(.stateChanged(.disconnected))

        // Stopped with nothing open: returns at once.
        await h.client.stop(flushingWithin: .seconds(60))
    }

    func testHeartbeatReplacesASilentConnection() async throws {
        let sleeper = TestSleeper(mode: .manual)
        let h = Harness(configuration: RealtimeConfiguration(pingInterval: .seconds(20), sendTimeout: nil), sleeper: sleeper)
        await h.client.start()
        let first = try await h.connectAndReady()

        // First tick: a ping.
        var nap = try await sleeper.nextRequest()
        XCTAssertEqual(nap, .seconds(20))
        await sleeper.releaseOldest()
        var sent = try await first.nextSent()
        XCTAssertEqual(sent, .ping)

        // The server spoke since: still alive, ping again.
        let m1 = Sample.message(seq: 1, clientMsgID: "a")
        try first.serverSends(.message(m1))
        try await h.event(.message(m1))
        nap = try await sleeper.nextRequest()
        XCTAssertEqual(nap, .seconds(20))
        await sleeper.releaseOldest()
        sent = try await first.nextSent()
        XCTAssertEqual(sent, .ping)

        // Silence for a whole interval: closed and replaced after a short wait.
        nap = try await sleeper.nextRequest()
        XCTAssertEqual(nap, .seconds(20))
        await sleeper.releaseOldest()
        nap = try await sleeper.nextRequest()
        XCTAssertEqual(nap, .milliseconds(500))
        XCTAssertEqual(first.closeByClient?.reason, "heartbeat timeout")
        await sleeper.releaseOldest()
        _ = try await h.transport.nextConnection()
        await h.client.stop()
    }

    // MARK: - Backoff

    func testBackoffDoublesUpToTheMaximumWithJitterInTheUpperHalf() {
        let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30), multiplier: 2)
        XCTAssertEqual(backoff.delay(attempt: 0, unit: 1), .milliseconds(500))
        XCTAssertEqual(backoff.delay(attempt: 0, unit: 0), .milliseconds(250))
        XCTAssertEqual(backoff.delay(attempt: 3, unit: 1), .seconds(4))
        XCTAssertEqual(backoff.delay(attempt: 10, unit: 1), .seconds(30))
        XCTAssertEqual(backoff.delay(attempt: 10, unit: 0), .seconds(15))
        XCTAssertEqual(backoff.delay(attempt: 1_000, unit: 1), .seconds(30))
    }
}
