import Foundation
import XCTest
@testable import ChatKit

final class MessageTimelineTests: XCTestCase {
    private let me = "u-me"

    private func ids(_ timeline: MessageTimeline) -> [String] {
        timeline.entries.map(\.clientMsgID)
    }

    // MARK: - Ordering

    func testMessagesAreOrderedBySeqWhateverTheArrivalOrder() {
        var timeline = MessageTimeline(channelID: "c1")
        for seq: Int64 in [5, 2, 9, 1, 7] {
            timeline.merge(Sample.message(seq: seq, clientMsgID: "m\(seq)"))
        }
        XCTAssertEqual(ids(timeline), ["m1", "m2", "m5", "m7", "m9"])
        XCTAssertEqual(timeline.entries.map(\.status), Array(repeating: .delivered, count: 5))
    }

    func testAckedMessagesWithoutSeqGoAfterPlacedOnesUntilTheirFrameArrives() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.merge(Sample.message(seq: 1, clientMsgID: "m1"))
        timeline.addPending(body: "mine", senderID: me, clientMsgID: "mine-1", at: Sample.date)
        timeline.merge(Sample.message(seq: nil, senderID: me, clientMsgID: "mine-1")) // ack
        XCTAssertEqual(ids(timeline), ["m1", "mine-1"])
        XCTAssertEqual(timeline.entries.last?.status, .sent)

        // Others' messages placed meanwhile go before the unplaced ack.
        timeline.merge(Sample.message(seq: 2, clientMsgID: "m2"))
        XCTAssertEqual(ids(timeline), ["m1", "m2", "mine-1"])

        // The message frame gives it its place, after a message that was placed even later.
        timeline.merge(Sample.message(seq: 4, senderID: me, clientMsgID: "mine-1"))
        timeline.merge(Sample.message(seq: 3, clientMsgID: "m3"))
        XCTAssertEqual(ids(timeline), ["m1", "m2", "m3", "mine-1"])
        XCTAssertEqual(timeline.entries.last?.status, .delivered)
        XCTAssertEqual(timeline.entries.last?.seq, 4)
    }

    func testPendingSendsKeepTheirSendOrderAfterPlacedMessages() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        timeline.addPending(body: "b", senderID: me, clientMsgID: "p2", at: Sample.date)
        timeline.merge(Sample.message(seq: 10, clientMsgID: "m10"))
        XCTAssertEqual(ids(timeline), ["m10", "p1", "p2"])
        XCTAssertEqual(timeline.entries.map(\.status), [.delivered, .pending, .pending])

        // p2 is acked before p1: both stay in send order.
        timeline.merge(Sample.message(seq: nil, senderID: me, clientMsgID: "p2"))
        XCTAssertEqual(ids(timeline), ["m10", "p1", "p2"])
        XCTAssertEqual(timeline.entries.map(\.status), [.delivered, .pending, .sent])
    }

    // MARK: - Deduplication

    func testTheSameMessageFromEverySourceIsOneEntry() {
        var timeline = MessageTimeline(channelID: "c1")
        let placed = Sample.message(seq: 3, senderID: me, clientMsgID: "x")
        var acked = placed
        acked.seq = nil

        timeline.addPending(body: placed.body, senderID: me, clientMsgID: "x", at: Sample.date)
        timeline.merge(acked)                                  // ack
        timeline.merge(placed)                                 // live frame
        XCTAssertFalse(timeline.merge(placed))                 // replay after resume
        timeline.mergePage([placed], cursor: .latest, limit: 50) // history
        timeline.merge(acked)                                  // a late duplicate ack

        XCTAssertEqual(timeline.entries.count, 1)
        XCTAssertEqual(timeline.entries[0].messageID, placed.id)
        XCTAssertEqual(timeline.entries[0].seq, 3)
        XCTAssertEqual(timeline.entries[0].status, .delivered)
    }

    func testDuplicatesAreFoundByMessageIDToo() {
        var timeline = MessageTimeline(channelID: "c1")
        let original = Sample.message(seq: 1, clientMsgID: "a")
        var sameID = Sample.message(seq: 1, clientMsgID: "different-client-id")
        sameID.id = original.id
        timeline.merge(original)
        XCTAssertFalse(timeline.merge(sameID))
        XCTAssertEqual(timeline.entries.count, 1)
    }

    func testTheSameClientMsgIDFromAnotherSenderIsAnotherMessage() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.merge(Sample.message(seq: 1, senderID: "u-a", clientMsgID: "same"))
        timeline.merge(Sample.message(seq: 2, senderID: "u-b", clientMsgID: "same"))
        XCTAssertEqual(timeline.entries.count, 2)
    }

    func testMessagesOfOtherChannelsAreIgnored() {
        var timeline = MessageTimeline(channelID: "c1")
        XCTAssertFalse(timeline.merge(Sample.message(seq: 1, channelID: "c2", clientMsgID: "a")))
        XCTAssertTrue(timeline.isEmpty)
    }

    // MARK: - Send states

    func testFailedSendsCanBeRetriedOrDiscarded() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        timeline.markFailed(senderID: me, clientMsgID: "p1", code: "not_a_member", reason: "no")
        XCTAssertEqual(timeline.entries[0].status, .failed(code: "not_a_member", reason: "no"))
        timeline.markPending(senderID: me, clientMsgID: "p1")
        XCTAssertEqual(timeline.entries[0].status, .pending)
        timeline.markFailed(senderID: me, clientMsgID: "p1", code: "timeout", reason: "slow")
        timeline.removeUnsent(senderID: me, clientMsgID: "p1")
        XCTAssertTrue(timeline.isEmpty)
    }

    func testAnAckAfterATimeoutStillCounts() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        timeline.markFailed(senderID: me, clientMsgID: "p1", code: RealtimeClient.timeoutCode, reason: "slow")
        timeline.merge(Sample.message(seq: nil, senderID: me, clientMsgID: "p1"))
        XCTAssertEqual(timeline.entries[0].status, .sent)
    }

    func testAckedMessagesCannotBeFailedOrDiscarded() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        timeline.merge(Sample.message(seq: 1, senderID: me, clientMsgID: "p1"))
        timeline.markFailed(senderID: me, clientMsgID: "p1", code: "timeout", reason: "late")
        timeline.removeUnsent(senderID: me, clientMsgID: "p1")
        XCTAssertEqual(timeline.entries.map(\.status), [.delivered])
    }

    func testAddingAPendingSendTwiceKeepsOne() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        timeline.addPending(body: "a", senderID: me, clientMsgID: "p1", at: Sample.date)
        XCTAssertEqual(timeline.entries.count, 1)
    }

    // MARK: - History

    func testHistoryPagesMergeWithLiveMessagesAndTrackOlderPages() {
        var timeline = MessageTimeline(channelID: "c1")
        // A live message arrives while the first page loads.
        timeline.merge(Sample.message(seq: 101, clientMsgID: "m101"))
        let latest = (52...101).map { Sample.message(seq: Int64($0), clientMsgID: "m\($0)") }
        timeline.mergePage(latest, cursor: .latest, limit: 50)
        XCTAssertEqual(timeline.entries.count, 50)
        XCTAssertTrue(timeline.hasLoadedLatest)
        XCTAssertTrue(timeline.hasOlderHistory)
        XCTAssertEqual(timeline.oldestMessageID, latest[0].id)

        let older = (2...51).map { Sample.message(seq: Int64($0), clientMsgID: "m\($0)") }
        timeline.mergePage(older, cursor: .before(messageID: latest[0].id), limit: 50)
        XCTAssertTrue(timeline.hasOlderHistory, "a full page: there may be more")

        timeline.mergePage([Sample.message(seq: 1, clientMsgID: "m1")], cursor: .before(messageID: older[0].id), limit: 50)
        XCTAssertFalse(timeline.hasOlderHistory)
        XCTAssertEqual(timeline.entries.map(\.seq), (1...101).map { Int64($0) })
        XCTAssertNil(timeline.firstGap)
    }

    func testReachingSeqOneMeansNoOlderHistory() {
        var timeline = MessageTimeline(channelID: "c1")
        let page = (1...50).map { Sample.message(seq: Int64($0), clientMsgID: "m\($0)") }
        timeline.mergePage(page, cursor: .latest, limit: 50)
        XCTAssertFalse(timeline.hasOlderHistory)
    }

    func testGapsBetweenLoadedMessagesAreReported() throws {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.mergePage([Int64(3), 4, 5].map { (seq: Int64) in Sample.message(seq: seq, clientMsgID: "m\(seq)") }, cursor: .latest, limit: 50)
        // Missed while offline, then a live one arrives.
        timeline.merge(Sample.message(seq: 9, clientMsgID: "m9"))
        let gap = try XCTUnwrap(timeline.firstGap)
        XCTAssertEqual(gap.afterMessageID, Sample.message(seq: 5, clientMsgID: "m5").id)
        XCTAssertEqual(gap.missing, 6...8)

        timeline.mergePage([Int64(6), 7, 8].map { (seq: Int64) in Sample.message(seq: seq, clientMsgID: "m\(seq)") }, cursor: .after(messageID: gap.afterMessageID), limit: 50)
        XCTAssertNil(timeline.firstGap)
        XCTAssertEqual(timeline.newestPlaced?.seq, 9)
    }
}

final class MessageStoreTests: XCTestCase {
    func testRealtimeEventsLandInTheirConversations() {
        var store = MessageStore(currentUserID: "u-me")
        let pending = PendingSend(clientMsgID: "p1", channelID: "c1", body: "hello")
        store.addPending(pending, at: Sample.date)

        XCTAssertEqual(store.apply(.message(Sample.message(seq: 1, channelID: "c2", clientMsgID: "x"))), "c2")
        XCTAssertEqual(store.apply(.acked(clientMsgID: "p1", message: Sample.message(seq: nil, senderID: "u-me", clientMsgID: "p1"))), "c1")
        XCTAssertNil(store.apply(.stateChanged(.connected)))

        XCTAssertEqual(store["c1"].entries.map(\.status), [.sent])
        XCTAssertEqual(store["c2"].entries.count, 1)
        XCTAssertTrue(store["unknown"].isEmpty)
    }

    func testFailuresWithoutAChannelAreMatchedByClientMsgID() {
        var store = MessageStore(currentUserID: "u-me")
        store.addPending(PendingSend(clientMsgID: "p1", channelID: "c7", body: "hello"), at: Sample.date)
        let failure = SendFailure(clientMsgID: "p1", channelID: nil, code: "not_a_member", message: "no")
        XCTAssertEqual(store.apply(.sendFailed(failure)), "c7")
        XCTAssertEqual(store["c7"].entries.first?.status, .failed(code: "not_a_member", reason: "no"))
    }
}
