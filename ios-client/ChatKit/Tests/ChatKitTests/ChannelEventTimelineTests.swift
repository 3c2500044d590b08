import Foundation
import XCTest
@testable import ChatKit

/// Edits, deletes and reactions applied to the timeline, and message positions shared with
/// events (so message seqs have gaps that are not missing messages).
final class ChannelEventTimelineTests: XCTestCase {
    private let me = "u-me"

    /// A timeline holding `messages`, loaded as the latest page.
    private func timeline(_ messages: [Message]) -> MessageTimeline {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.mergePage(messages, cursor: .latest, limit: 50)
        return timeline
    }

    private func entry(_ timeline: MessageTimeline, _ message: Message) throws -> TimelineEntry {
        try XCTUnwrap(timeline.entry(messageID: message.id))
    }

    // MARK: - Edits

    func testAnEditReplacesTheBodyAndMarksTheMessageEdited() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "typo")
        var timeline = timeline([m1])
        let edit = Sample.event(seq: 2, of: m1, .edited(body: "fixed"))
        XCTAssertTrue(timeline.apply(edit, currentUserID: me))
        let edited = try entry(timeline, m1)
        XCTAssertEqual(edited.body, "fixed")
        XCTAssertEqual(edited.editedAt, edit.createdAt)
        XCTAssertTrue(edited.isEdited)
        XCTAssertEqual(edited.seq, 1, "the message keeps its place")

        // Applied twice (a replay after resume): the same state, and no change reported.
        let once = timeline
        XCTAssertFalse(timeline.apply(edit, currentUserID: me))
        XCTAssertEqual(timeline, once)
    }

    // MARK: - Mentions

    func testAMessageMentioningTheUserIsFlagged() throws {
        let mentioning = Sample.message(seq: 1, clientMsgID: "a", body: "@me lunch?", mentions: [me])
        let other = Sample.message(seq: 2, clientMsgID: "b", body: "@carol lunch?", mentions: ["u-carol"])
        let plain = Sample.message(seq: 3, clientMsgID: "c", body: "lunch?")
        let timeline = timeline([mentioning, other, plain])
        XCTAssertEqual(timeline.entries.map { $0.mentions(userID: me) }, [true, false, false])
        XCTAssertEqual(try entry(timeline, other).mentions, ["u-carol"])
        XCTAssertTrue(try entry(timeline, other).mentions(userID: "u-carol"))
    }

    /// An edit's mentions replace the message's: taking the `@name` out clears the flag,
    /// putting one in sets it; applying the same edit again changes nothing.
    func testAnEditReplacesTheMentions() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "@me lunch?", mentions: [me])
        var timeline = timeline([m1])
        XCTAssertTrue(try entry(timeline, m1).mentions(userID: me))

        let removal = Sample.event(seq: 2, of: m1, .edited(body: "lunch?", mentions: []))
        XCTAssertTrue(timeline.apply(removal, currentUserID: me))
        XCTAssertFalse(try entry(timeline, m1).mentions(userID: me), "the edit took the mention out")
        XCTAssertEqual(try entry(timeline, m1).mentions, [])
        let once = timeline
        XCTAssertFalse(timeline.apply(removal, currentUserID: me), "idempotent")
        XCTAssertEqual(timeline, once)

        let addition = Sample.event(seq: 3, of: m1, .edited(body: "@carol @me lunch?", mentions: ["u-carol", me]))
        XCTAssertTrue(timeline.apply(addition, currentUserID: me))
        XCTAssertEqual(try entry(timeline, m1).mentions, ["u-carol", me])
        XCTAssertTrue(try entry(timeline, m1).mentions(userID: me))

        // The removal replayed late (older than the addition) does not undo it.
        XCTAssertFalse(timeline.apply(removal, currentUserID: me))
        XCTAssertTrue(try entry(timeline, m1).mentions(userID: me))
        let settled = timeline
        XCTAssertFalse(timeline.apply(addition, currentUserID: me))
        XCTAssertEqual(timeline, settled)
    }

    func testATombstoneMentionsNoOne() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "@me hi", mentions: [me])
        var timeline = timeline([m1])
        timeline.apply(Sample.event(seq: 3, of: m1, .deleted), currentUserID: me)
        XCTAssertFalse(try entry(timeline, m1).mentions(userID: me))
        XCTAssertEqual(try entry(timeline, m1).mentions, [])
        // A late edit (older than the delete, replayed) does not bring it back.
        timeline.apply(Sample.event(seq: 2, of: m1, .edited(body: "@me", mentions: [me])), currentUserID: me)
        XCTAssertFalse(try entry(timeline, m1).mentions(userID: me))
    }

    /// A copy newer than what is loaded (history after an edit missed while away) brings its
    /// body's mentions with it; an older copy does not take them back.
    func testANewerCopyBringsItsMentions() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "lunch?")
        var timeline = timeline([m1])
        var edited = m1
        edited.body = "@me lunch?"
        edited.mentions = [me]
        edited.editedAt = Sample.date.addingTimeInterval(60)
        XCTAssertTrue(timeline.merge(edited))
        XCTAssertTrue(try entry(timeline, m1).mentions(userID: me))
        timeline.merge(m1)
        XCTAssertTrue(try entry(timeline, m1).mentions(userID: me), "an older copy changes nothing")
    }

    /// The server resolves mentions when it places a message: the `ack` (before that) has none,
    /// the `message` frame has them.
    func testTheUsersOwnSendGetsItsMentionsWhenPlaced() throws {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.addPending(body: "@bob hi", senderID: me, clientMsgID: "p1", at: Sample.date)
        XCTAssertEqual(timeline.entries[0].mentions, [])
        timeline.merge(Sample.message(seq: nil, senderID: me, clientMsgID: "p1", body: "@bob hi"))
        XCTAssertEqual(timeline.entries[0].mentions, [])
        timeline.merge(Sample.message(seq: 4, senderID: me, clientMsgID: "p1", body: "@bob hi", mentions: ["u-bob"]))
        XCTAssertEqual(timeline.entries[0].status, .delivered)
        XCTAssertEqual(timeline.entries[0].mentions, ["u-bob"])
    }

    // MARK: - Deletes

    func testADeleteLeavesATombstoneThatNothingRevives() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "oops")
        let m2 = Sample.message(seq: 2, clientMsgID: "b")
        var timeline = timeline([m1, m2])
        timeline.apply(Sample.event(seq: 3, of: m1, .reactionAdded(emoji: "👍", count: 1)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions.count, 1)

        let delete = Sample.event(seq: 4, of: m1, .deleted)
        XCTAssertTrue(timeline.apply(delete, currentUserID: me))
        var tombstone = try entry(timeline, m1)
        XCTAssertTrue(tombstone.isDeleted)
        XCTAssertEqual(tombstone.body, "")
        XCTAssertEqual(tombstone.reactions, [])
        XCTAssertFalse(tombstone.isEdited)
        XCTAssertEqual(timeline.entries.map(\.clientMsgID), ["a", "b"], "a tombstone keeps its place")

        // Twice: the same. Later changes of a deleted message, and an older copy of it: ignored.
        let once = timeline
        XCTAssertFalse(timeline.apply(delete, currentUserID: me))
        XCTAssertEqual(timeline, once)
        timeline.apply(Sample.event(seq: 5, of: m1, .edited(body: "back")), currentUserID: me)
        timeline.apply(Sample.event(seq: 6, of: m1, .reactionAdded(emoji: "🎉", count: 1)), currentUserID: me)
        timeline.merge(m1)
        tombstone = try entry(timeline, m1)
        XCTAssertTrue(tombstone.isDeleted)
        XCTAssertEqual(tombstone.body, "")
        XCTAssertEqual(tombstone.reactions, [])
    }

    // MARK: - Reactions

    func testReactionCountsAreAbsoluteAndMeFollowsTheUsersOwnReactions() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a")
        var timeline = timeline([m1])

        timeline.apply(Sample.event(seq: 2, of: m1, actorID: "u-bob", .reactionAdded(emoji: "👍", count: 1)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions, [Reaction(emoji: "👍", count: 1, me: false)])

        timeline.apply(Sample.event(seq: 3, of: m1, actorID: me, .reactionAdded(emoji: "👍", count: 2)), currentUserID: me)
        timeline.apply(Sample.event(seq: 4, of: m1, actorID: "u-carol", .reactionAdded(emoji: "🎉", count: 1)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions, [
            Reaction(emoji: "👍", count: 2, me: true),
            Reaction(emoji: "🎉", count: 1, me: false),
        ], "in the order first used")

        // Someone else takes theirs back: the user's own stays.
        timeline.apply(Sample.event(seq: 5, of: m1, actorID: "u-bob", .reactionRemoved(emoji: "👍", count: 1)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions.first, Reaction(emoji: "👍", count: 1, me: true))

        // The user takes theirs back: count 0 removes the entry.
        let removal = Sample.event(seq: 6, of: m1, actorID: me, .reactionRemoved(emoji: "👍", count: 0))
        timeline.apply(removal, currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions, [Reaction(emoji: "🎉", count: 1, me: false)])

        // Every event again, in order (a resume replaying them): nothing changes.
        let settled = timeline
        for seq: Int64 in 2...6 {
            let replay: ChannelEvent
            switch seq {
            case 2: replay = Sample.event(seq: 2, of: m1, actorID: "u-bob", .reactionAdded(emoji: "👍", count: 1))
            case 3: replay = Sample.event(seq: 3, of: m1, actorID: me, .reactionAdded(emoji: "👍", count: 2))
            case 4: replay = Sample.event(seq: 4, of: m1, actorID: "u-carol", .reactionAdded(emoji: "🎉", count: 1))
            case 5: replay = Sample.event(seq: 5, of: m1, actorID: "u-bob", .reactionRemoved(emoji: "👍", count: 1))
            default: replay = removal
            }
            XCTAssertFalse(timeline.apply(replay, currentUserID: me), "seq \(seq)")
        }
        XCTAssertEqual(timeline, settled)
    }

    func testAReactionOnTopOfHistoryKeepsTheOtherEmoji() throws {
        var m1 = Sample.message(seq: 1, clientMsgID: "a")
        m1.reactions = [Reaction(emoji: "👍", count: 2, me: true), Reaction(emoji: "🎉", count: 1, me: false)]
        var timeline = timeline([m1])
        timeline.apply(Sample.event(seq: 2, of: m1, actorID: "u-bob", .reactionAdded(emoji: "🎉", count: 2)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).reactions, [
            Reaction(emoji: "👍", count: 2, me: true),
            Reaction(emoji: "🎉", count: 2, me: false),
        ])
    }

    // MARK: - Order

    /// Events are placed by `seq`: one older than what was already applied (a replay arriving
    /// late, a history copy newer than the event) never undoes the newer state.
    func testEventsOutOfOrderNeverUndoNewerOnes() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "v0")
        let m2 = Sample.message(seq: 2, clientMsgID: "b")
        var timeline = timeline([m1, m2])

        // Edits: 7 then 5.
        timeline.apply(Sample.event(seq: 7, of: m1, .edited(body: "v2")), currentUserID: me)
        XCTAssertFalse(timeline.apply(Sample.event(seq: 5, of: m1, .edited(body: "v1")), currentUserID: me))
        XCTAssertEqual(try entry(timeline, m1).body, "v2")

        // Reactions: the count after seq 9 (1) stays when seq 8 (2) comes late.
        timeline.apply(Sample.event(seq: 9, of: m2, actorID: me, .reactionRemoved(emoji: "👍", count: 1)), currentUserID: me)
        timeline.apply(Sample.event(seq: 8, of: m2, actorID: me, .reactionAdded(emoji: "👍", count: 2)), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m2).reactions, [Reaction(emoji: "👍", count: 1, me: false)])

        // A delete then an older edit: still a tombstone.
        timeline.apply(Sample.event(seq: 11, of: m1, .deleted), currentUserID: me)
        timeline.apply(Sample.event(seq: 10, of: m1, .edited(body: "v3")), currentUserID: me)
        XCTAssertTrue(try entry(timeline, m1).isDeleted)
        XCTAssertEqual(try entry(timeline, m1).body, "")
    }

    func testAnEditOlderThanTheHistoryCopyIsIgnored() throws {
        var m1 = Sample.message(seq: 1, clientMsgID: "a", body: "latest")
        m1.editedAt = Sample.date.addingTimeInterval(100)
        var timeline = timeline([m1])
        // A replayed edit made before the copy's edit.
        timeline.apply(Sample.event(seq: 3, of: m1, .edited(body: "older")), currentUserID: me)
        XCTAssertEqual(try entry(timeline, m1).body, "latest")
        XCTAssertEqual(try entry(timeline, m1).editedAt, m1.editedAt)
    }

    func testANewerCopyBringsChangesMissedMeanwhile() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a", body: "first")
        let m2 = Sample.message(seq: 2, clientMsgID: "b")
        var timeline = timeline([m1, m2])

        var edited = m1
        edited.body = "second"
        edited.editedAt = Sample.date.addingTimeInterval(50)
        edited.reactions = [Reaction(emoji: "🎉", count: 3, me: true)]
        var deleted = m2
        deleted.body = ""
        deleted.deleted = true
        XCTAssertTrue(timeline.merge(edited))
        XCTAssertTrue(timeline.merge(deleted))
        XCTAssertEqual(try entry(timeline, m1).body, "second")
        XCTAssertEqual(try entry(timeline, m1).reactions, [Reaction(emoji: "🎉", count: 3, me: true)])
        XCTAssertTrue(try entry(timeline, m2).isDeleted)

        // An ack copy changes nothing; an older copy (never edited) does not undo the edit.
        var ack = m1
        ack.seq = nil
        XCTAssertFalse(timeline.merge(ack))
        XCTAssertEqual(try entry(timeline, m1).reactions.count, 1)
        timeline.merge(m1)
        XCTAssertEqual(try entry(timeline, m1).body, "second")
        XCTAssertTrue(try entry(timeline, m1).isEdited)
    }

    func testAnEventOfAMessageNotLoadedOnlyAccountsForItsPosition() {
        let m5 = Sample.message(seq: 5, clientMsgID: "e")
        let m7 = Sample.message(seq: 7, clientMsgID: "g")
        var timeline = timeline([m5])
        let unloaded = Sample.message(seq: 2, clientMsgID: "b")
        XCTAssertFalse(timeline.apply(Sample.event(seq: 6, of: unloaded, .edited(body: "x")), currentUserID: me))
        XCTAssertEqual(timeline.entries.map(\.clientMsgID), ["e"])
        timeline.merge(m7)
        XCTAssertNil(timeline.firstGap, "position 6 is that event, not a missing message")
    }

    func testEventsOfOtherChannelsAreIgnored() {
        let m1 = Sample.message(seq: 1, clientMsgID: "a")
        var timeline = timeline([m1])
        var event = Sample.event(seq: 2, of: m1, .deleted)
        event.channelID = "c2"
        XCTAssertFalse(timeline.apply(event, currentUserID: me))
        XCTAssertFalse(timeline.entries[0].isDeleted)
    }

    // MARK: - Gaps

    /// Message seqs skip the positions of events: those are not holes once accounted for.
    func testMessagePositionsSkippedByEventsAreNotGaps() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a")
        var timeline = timeline([m1])
        // Live: two events, then a message after them.
        timeline.apply(Sample.event(seq: 2, of: m1, .edited(body: "x")), currentUserID: me)
        timeline.apply(Sample.event(seq: 3, of: m1, .reactionAdded(emoji: "👍", count: 1)), currentUserID: me)
        timeline.merge(Sample.message(seq: 4, clientMsgID: "d"))
        XCTAssertNil(timeline.firstGap)

        // Position 5 was never seen (missed while offline), 6 is a live message: a gap.
        timeline.merge(Sample.message(seq: 6, clientMsgID: "f"))
        let gap = try XCTUnwrap(timeline.firstGap)
        XCTAssertEqual(gap.missing, 5...5)
        XCTAssertEqual(gap.afterMessageID, Sample.message(seq: 4, clientMsgID: "d").id)

        // Filling it over REST: the page after message 4 holds only message 6, so 5 was an event.
        timeline.mergePage([Sample.message(seq: 6, clientMsgID: "f")], cursor: .after(messageID: gap.afterMessageID), limit: 100)
        XCTAssertNil(timeline.firstGap)
    }

    func testAHistoryPageAccountsForThePositionsItSpans() throws {
        // As in rest_message_list_with_changes: 41, 42, 44 (43 is an event).
        let page = [Int64(41), 42, 44].map { (seq: Int64) in Sample.message(seq: seq, clientMsgID: "m\(seq)") }
        var timeline = timeline(page)
        XCTAssertNil(timeline.firstGap)

        // An older page ending at 38, before 41: 39 and 40 are events, the page spans them.
        let older = [Int64(36), 38].map { (seq: Int64) in Sample.message(seq: seq, clientMsgID: "m\(seq)") }
        timeline.mergePage(older, cursor: .before(messageID: page[0].id), limit: 2)
        XCTAssertNil(timeline.firstGap)
        XCTAssertEqual(timeline.entries.map(\.seq), [36, 38, 41, 42, 44])

        // A live message far ahead: everything after 44 is unaccounted for.
        timeline.merge(Sample.message(seq: 50, clientMsgID: "m50"))
        XCTAssertEqual(timeline.firstGap?.missing, 45...49)
        timeline.apply(Sample.event(seq: 45, of: page[0], .deleted), currentUserID: me)
        timeline.apply(Sample.event(seq: 47, of: page[0], .deleted), currentUserID: me)
        XCTAssertEqual(timeline.firstGap?.missing, 46...46, "the first run not accounted for")
    }

    func testSeqCoverageMergesAndFindsHoles() {
        var coverage = SeqCoverage()
        coverage.insert(5...5)
        coverage.insert(1...2)
        coverage.insert(3...3)
        coverage.insert(8...9)
        XCTAssertEqual(coverage.ranges, [1...3, 5...5, 8...9])
        coverage.insert(4...8)
        XCTAssertEqual(coverage.ranges, [1...9])
        XCTAssertNil(coverage.firstUncovered(in: 2...9))
        XCTAssertEqual(coverage.firstUncovered(in: 5...12), 10...12)
        coverage.insert(11...11)
        XCTAssertEqual(coverage.firstUncovered(in: 5...20), 10...10)
        XCTAssertEqual(SeqCoverage().firstUncovered(in: 3...4), 3...4)
    }

    // MARK: - Replies

    func testReplyPreviewsDecodeAndFollowTheOriginal() throws {
        let list = try WireJSON.decode(MessageList.self, from: try fixture("rest_message_list_with_changes"))
        var timeline = MessageTimeline(channelID: list.messages[0].channelID)
        timeline.mergePage(list.messages, cursor: .latest, limit: 50)
        let original = list.messages[0]
        let reply = try XCTUnwrap(timeline.entry(messageID: list.messages[1].id))
        XCTAssertEqual(reply.replyTo?.id, original.id)
        XCTAssertEqual(reply.replyTo?.preview, "Hello, world! (edited) @bob")
        XCTAssertEqual(timeline.entries.map(\.isDeleted), [false, false, true])
        XCTAssertEqual(timeline.entries.map(\.mentions), [["0190a2b4-0000-7000-8000-000000000b0b"], [], []])
        XCTAssertTrue(timeline.entries[0].isEdited)
        XCTAssertNil(timeline.firstGap, "43 is an event")

        // The original is edited, then deleted: the reply's preview follows.
        let long = String(repeating: "é", count: 150)
        var edit = Sample.event(seq: 45, of: original, .edited(body: long))
        edit.createdAt = try XCTUnwrap(original.editedAt).addingTimeInterval(60)
        timeline.apply(edit, currentUserID: "u")
        XCTAssertEqual(timeline.entries[0].body, long)
        XCTAssertEqual(try XCTUnwrap(timeline.entry(messageID: reply.messageID ?? "")).replyTo?.preview, String(repeating: "é", count: 140))
        timeline.apply(Sample.event(seq: 46, of: original, .deleted), currentUserID: "u")
        let after = try XCTUnwrap(try XCTUnwrap(timeline.entry(messageID: reply.messageID ?? "")).replyTo)
        XCTAssertTrue(after.deleted)
        XCTAssertEqual(after.preview, "")
    }

    func testAPendingReplyShowsItsPreviewAtOnce() throws {
        let original = Sample.message(seq: 1, senderID: "u-bob", clientMsgID: "a", body: "lunch?")
        var store = MessageStore(currentUserID: me)
        store.mergePage([original], channelID: "c1", cursor: .latest, limit: 50)
        store.addPending(PendingSend(clientMsgID: "p1", channelID: "c1", body: "yes", replyTo: original.id), at: Sample.date)
        let pending = try XCTUnwrap(store["c1"].entries.last)
        XCTAssertEqual(pending.status, .pending)
        XCTAssertEqual(pending.replyTo, ReplyPreview(id: original.id, seq: 1, senderID: "u-bob", preview: "lunch?"))
    }

    // MARK: - Store

    func testTheStoreAppliesEventsWithTheCurrentUsersMe() throws {
        let m1 = Sample.message(seq: 1, clientMsgID: "a")
        var store = MessageStore(currentUserID: me)
        store.apply(.message(m1))
        let react = Sample.event(seq: 2, of: m1, actorID: me, .reactionAdded(emoji: "👍", count: 1))
        XCTAssertEqual(store.apply(.event(react)), "c1")
        XCTAssertEqual(store["c1"].entries[0].reactions, [Reaction(emoji: "👍", count: 1, me: true)])
        XCTAssertNil(store.apply(.event(react)), "applied twice: nothing changed")
        var elsewhere = react
        elsewhere.channelID = "c-unknown"
        XCTAssertNil(store.apply(.event(elsewhere)))
        XCTAssertNil(store.apply(.changeAcked(clientEventID: "x", eventID: "y")))
    }
}
