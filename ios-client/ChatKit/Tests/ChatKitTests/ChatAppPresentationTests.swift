import Foundation
import XCTest
@testable import ChatAppCore
@testable import ChatKit

/// What the conversation screens show, decided in ChatAppCore (the SwiftUI views only call it):
/// day separators and the "new messages" divider, links and mentions in a body, the direction
/// a body is written in, unread counts, and who may delete what.
final class ChatAppPresentationTests: XCTestCase {
    private let me = "u-me"

    private var utc: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    private let english = Locale(identifier: "en_US")

    /// 2025-01-15T12:00:00Z, a Wednesday.
    private let now = Date(timeIntervalSince1970: 1_736_942_400)

    private func message(_ seq: Int64, _ sender: String, at date: Date, mentions: [String] = []) -> Message {
        Message(
            id: "m\(seq)",
            channelID: "c1",
            senderID: sender,
            body: "message \(seq)",
            clientMsgID: "k\(seq)",
            createdAt: date,
            seq: seq,
            mentions: mentions
        )
    }

    private func entries(_ messages: [Message]) -> [TimelineEntry] {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.mergePage(messages, cursor: .latest, limit: 50)
        return timeline.entries
    }

    /// A short description of rows, for comparing.
    private func describe(_ rows: [TimelineRow]) -> [String] {
        rows.map { row in
            switch row {
            case .day(let label, _): "day \(label)"
            case .unreadDivider: "new"
            case let .message(entry, startsRun): "\(entry.messageID ?? "?")\(startsRun ? " *" : "")"
            }
        }
    }

    // MARK: - Day separators and the unread divider

    func testDaySeparatorsSayTodayYesterdayOrTheDate() {
        let hour: TimeInterval = 3600
        let monday = now.addingTimeInterval(-2 * 24 * hour - 2 * hour) // 2025-01-13 10:00
        let yesterday = now.addingTimeInterval(-27 * hour)            // 2025-01-14 09:00
        let today = now.addingTimeInterval(-4 * hour)                 // 2025-01-15 08:00
        let list = entries([
            message(1, "u-bob", at: monday),
            message(2, "u-bob", at: yesterday),
            message(3, me, at: yesterday.addingTimeInterval(300)),
            message(5, "u-bob", at: today),
            message(6, "u-bob", at: today.addingTimeInterval(60)),
        ])
        let rows = TimelineLayout.rows(for: list, unreadAfter: 3, currentUserID: me, now: now, calendar: utc, locale: english)
        XCTAssertEqual(describe(rows), [
            "day Monday, January 13", "m1 *",
            "day Yesterday", "m2 *", "m3 *",
            "day Today", "new", "m5 *", "m6",
        ])
        // Every row has its own id (SwiftUI's identity), stable across renders.
        XCTAssertEqual(Set(rows.map(\.id)).count, rows.count)
        XCTAssertEqual(rows.map(\.id), TimelineLayout.rows(for: list, unreadAfter: 3, currentUserID: me, now: now, calendar: utc, locale: english).map(\.id))

        // Another year has the year and no weekday.
        let newYearsEve = Date(timeIntervalSince1970: 1_735_646_400) // 2024-12-31T12:00:00Z
        XCTAssertEqual(TimelineLayout.dayLabel(for: newYearsEve, now: now, calendar: utc, locale: english), "December 31, 2024")
        // Days follow the calendar's time zone: 23:30 UTC on the 14th is the 15th in Berlin.
        var berlin = utc
        berlin.timeZone = TimeZone(identifier: "Europe/Berlin")!
        let lateOn14th = Date(timeIntervalSince1970: 1_736_897_400) // 2025-01-14T23:30:00Z
        XCTAssertEqual(TimelineLayout.dayLabel(for: lateOn14th, now: now, calendar: utc, locale: english), "Yesterday")
        XCTAssertEqual(TimelineLayout.dayLabel(for: lateOn14th, now: now, calendar: berlin, locale: english), "Today")
    }

    func testTheUnreadDividerGoesAboveTheFirstNewMessageByOthers() {
        let list = entries([
            message(1, "u-bob", at: now),
            message(2, me, at: now),
            message(3, "u-bob", at: now),
        ])
        // Read up to 1: the user's own message 2 is not news; the divider is above 3.
        XCTAssertEqual(describe(TimelineLayout.rows(for: list, unreadAfter: 1, currentUserID: me, now: now, calendar: utc)), [
            "day Today", "m1 *", "m2 *", "new", "m3 *",
        ])
        // Nothing unread when opened, or only own messages after the mark: no divider.
        XCTAssertFalse(TimelineLayout.rows(for: list, unreadAfter: nil, currentUserID: me, now: now, calendar: utc).contains(.unreadDivider))
        XCTAssertFalse(TimelineLayout.rows(for: Array(list.prefix(2)), unreadAfter: 1, currentUserID: me, now: now, calendar: utc).contains(.unreadDivider))
        // A divider or a new day starts a new run of the same sender (the name is shown again).
        let same = entries([message(1, "u-bob", at: now), message(2, "u-bob", at: now)])
        XCTAssertEqual(describe(TimelineLayout.rows(for: same, unreadAfter: 1, currentUserID: me, now: now, calendar: utc)), [
            "day Today", "m1 *", "new", "m2 *",
        ])
    }

    // MARK: - Links and mentions in a body

    private func describe(_ segments: [MessageBody.Segment]) -> [String] {
        segments.map { segment in
            switch segment {
            case .text(let text): "text:\(text)"
            case let .link(text, url): "link:\(text)=\(url.absoluteString)"
            case let .mention(text, username, isMe): "mention:\(text)=\(username)\(isMe ? " (me)" : "")"
            }
        }
    }

    func testLinksAreFoundWithoutTheSentencesPunctuation() {
        let body = "see https://example.com/wiki/A_(b). and www.swift.org, or (http://x.io/y) OK?"
        let segments = MessageBody.segments(of: body)
        XCTAssertEqual(describe(segments), [
            "text:see ",
            "link:https://example.com/wiki/A_(b)=https://example.com/wiki/A_(b)",
            "text:. and ",
            "link:www.swift.org=https://www.swift.org",
            "text:, or (",
            "link:http://x.io/y=http://x.io/y",
            "text:) OK?",
        ])
        XCTAssertEqual(segments.map(\.text).joined(), body, "nothing lost or added")
    }

    func testWhatIsNotALink() {
        for body in ["mail a@b.com", "https:// and http://", "xhttps://example.com", "www.", "just text"] {
            XCTAssertEqual(describe(MessageBody.segments(of: body)), ["text:\(body)"], body)
        }
        XCTAssertEqual(MessageBody.segments(of: ""), [])
        // Upper case schemes, and a path in another script.
        XCTAssertEqual(Links.find(in: "HTTPS://Example.com/").map { $0.url.host?.lowercased() }, ["example.com"])
        let hebrew = "https://he.wikipedia.org/wiki/שלום"
        XCTAssertEqual(Links.find(in: "ראו \(hebrew)").count, 1)
    }

    func testMentionsAreMarkedAndTheUsersOwnStandOut() {
        let body = "hi @Meg and @bob: https://x.com/@bob"
        XCTAssertEqual(describe(MessageBody.segments(of: body, currentUsername: "meg")), [
            "text:hi ",
            "mention:@Meg=meg (me)",
            "text: and ",
            "mention:@bob=bob",
            "text:: ",
            "link:https://x.com/@bob=https://x.com/@bob",
        ])
    }

    // MARK: - Right-to-left text

    func testTheFirstLetterDecidesTheDirection() {
        XCTAssertEqual(TextDirection.of("שלום world"), .rightToLeft)
        XCTAssertEqual(TextDirection.of("hello שלום"), .leftToRight)
        XCTAssertEqual(TextDirection.of("123 مرحبا"), .rightToLeft, "digits are not strong")
        XCTAssertEqual(TextDirection.of("«ދިވެހި»"), .rightToLeft, "Thaana")
        XCTAssertEqual(TextDirection.of("👍 123!"), .leftToRight)
        XCTAssertEqual(TextDirection.of("👍 123!", fallback: .rightToLeft), .rightToLeft)
        XCTAssertEqual(TextDirection.of(""), .leftToRight)
        XCTAssertEqual(TextDirection.of("日本語"), .leftToRight)
    }

    // MARK: - Unread counts

    private func conversation(_ id: String, read: Int64, head: Int64, unread: Int, mentions: Int = 0) -> Conversation {
        Conversation(
            channel: Channel(id: id, kind: .group, name: id, description: "", createdAt: Sample.date),
            headSeq: head,
            readSeq: read,
            unreadCount: unread,
            mentionCount: mentions
        )
    }

    func testLiveMessagesByOthersCountOnceOnTopOfTheServersCount() {
        var reads = ReadTracker(currentUserID: me)
        reads.reset(from: [conversation("c1", read: 8, head: 10, unread: 2)], store: MessageStore(currentUserID: me))
        XCTAssertEqual(reads["c1"].unreadCount, 2)
        XCTAssertEqual(reads["c1"].badgeText, "2")

        XCTAssertFalse(reads.noteMessage(Sample.message(seq: 10, channelID: "c1", clientMsgID: "old")), "already counted by the server")
        XCTAssertTrue(reads.noteMessage(Sample.message(seq: 11, channelID: "c1", clientMsgID: "a", mentions: [me])))
        reads.noteMessage(Sample.message(seq: 12, channelID: "c1", senderID: me, clientMsgID: "mine"))
        reads.noteMessage(Sample.message(seq: 11, channelID: "c1", clientMsgID: "a", mentions: [me])) // replayed
        reads.noteMessage(Sample.message(seq: 13, channelID: "c1", clientMsgID: "b"), isVisible: true)
        XCTAssertEqual(reads["c1"].unreadCount, 3)
        XCTAssertEqual(reads["c1"].mentionCount, 1)
        XCTAssertEqual(reads["c1"].headSeq, 13)

        // A conversation the list did not have yet (a new direct message) counts from nothing.
        reads.noteMessage(Sample.message(seq: 1, channelID: "dm", clientMsgID: "d"))
        XCTAssertEqual(reads["dm"].unreadCount, 1)

        var full = ReadTracker(currentUserID: me)
        full.reset(from: [conversation("c1", read: 0, head: 20_000, unread: Limits.unreadCountMax)], store: MessageStore(currentUserID: me))
        XCTAssertEqual(full["c1"].badgeText, "9999+")
    }

    func testReadingHereZeroesTheCountsAndMovesOnlyForward() {
        var store = MessageStore(currentUserID: me)
        store.mergePage([
            Sample.message(seq: 9, channelID: "c1", clientMsgID: "a"),
            Sample.message(seq: 10, channelID: "c1", clientMsgID: "b", mentions: [me]),
        ], channelID: "c1", cursor: .latest, limit: 50)
        var reads = ReadTracker(currentUserID: me)
        reads.reset(from: [conversation("c1", read: 8, head: 10, unread: 2, mentions: 1)], store: store)
        XCTAssertTrue(reads.markRead(channelID: "c1", seq: 9, timeline: store["c1"]))
        XCTAssertEqual([reads["c1"].unreadCount, reads["c1"].mentionCount], [1, 1], "message 10 is still unread")
        XCTAssertTrue(reads.markRead(channelID: "c1", seq: 10, timeline: store["c1"]))
        XCTAssertEqual([reads["c1"].unreadCount, reads["c1"].mentionCount], [0, 0])
        XCTAssertFalse(reads.markRead(channelID: "c1", seq: 9, timeline: store["c1"]), "marks only move forward")
        XCTAssertEqual(reads["c1"].readSeq, 10)

        // A list fetched before the server stored that mark does not bring the counts back.
        reads.reset(from: [conversation("c1", read: 8, head: 10, unread: 2, mentions: 1)], store: store)
        XCTAssertEqual(reads["c1"].readSeq, 10)
        XCTAssertEqual(reads["c1"].unreadCount, 0)
    }

    func testReadingOnAnotherDevice() {
        var store = MessageStore(currentUserID: me)
        store.mergePage([
            Sample.message(seq: 1, channelID: "c1", clientMsgID: "a"),
            Sample.message(seq: 2, channelID: "c1", clientMsgID: "b"),
            Sample.message(seq: 3, channelID: "c1", clientMsgID: "c"),
        ], channelID: "c1", cursor: .latest, limit: 50)
        var reads = ReadTracker(currentUserID: me)
        reads.reset(from: [
            conversation("c1", read: 0, head: 3, unread: 3),
            conversation("c2", read: 0, head: 9, unread: 4),
            conversation("c3", read: 0, head: 5, unread: 5),
        ], store: store)

        // Loaded here: counted from the timeline.
        XCTAssertEqual(reads.readElsewhere(channelID: "c1", seq: 2, timeline: store["c1"]), .updated)
        XCTAssertEqual(reads["c1"].unreadCount, 1)
        // Read to the end: nothing left, loaded or not.
        XCTAssertEqual(reads.readElsewhere(channelID: "c3", seq: 5, timeline: store["c3"]), .updated)
        XCTAssertEqual(reads["c3"].unreadCount, 0)
        // Part of a conversation not loaded here: only the server knows what is left.
        XCTAssertEqual(reads.readElsewhere(channelID: "c2", seq: 4, timeline: store["c2"]), .needsRefresh)
        XCTAssertEqual(reads["c2"].readSeq, 4)
        // Not newer than what is known: nothing to do.
        XCTAssertEqual(reads.readElsewhere(channelID: "c1", seq: 1, timeline: store["c1"]), .unchanged)
    }

    /// Live messages that arrived before the list was fetched (the list lags an ack by a moment)
    /// are counted on top of it, once.
    func testAListOlderThanTheLoadedMessagesKeepsTheirCount() {
        var store = MessageStore(currentUserID: me)
        store.merge(Sample.message(seq: 11, channelID: "c1", clientMsgID: "new", mentions: [me]))
        var reads = ReadTracker(currentUserID: me)
        reads.reset(from: [conversation("c1", read: 8, head: 10, unread: 2)], store: store)
        XCTAssertEqual([reads["c1"].unreadCount, reads["c1"].mentionCount], [3, 1])
        XCTAssertFalse(reads.noteMessage(Sample.message(seq: 11, channelID: "c1", clientMsgID: "new", mentions: [me])), "not twice")
        XCTAssertEqual(reads["c1"].unreadCount, 3)
    }

    // MARK: - Conversation order with the list's newest messages

    func testAConversationNotOpenedYetIsPlacedByItsNewestListedMessage() {
        let quiet = Channel(id: "c-quiet", kind: .group, name: "aaa", description: "", createdAt: Sample.date.addingTimeInterval(100))
        let busy = Channel(id: "c-busy", kind: .group, name: "zzz", description: "", createdAt: Sample.date)
        let store = MessageStore(currentUserID: me)
        XCTAssertEqual(ConversationOrder.byRecentActivity([quiet, busy], store: store).map(\.id), ["c-quiet", "c-busy"])
        let last = LastMessage(id: "m", seq: 4, senderID: "u-bob", preview: "hi", createdAt: Sample.date.addingTimeInterval(500))
        XCTAssertEqual(
            ConversationOrder.byRecentActivity([quiet, busy], store: store, lastMessages: ["c-busy": last]).map(\.id),
            ["c-busy", "c-quiet"]
        )
    }

    // MARK: - Who may delete what

    func testTheOwnerOfAGroupMayDeleteOthersMessagesButNotEditThem() {
        let theirs = entries([message(1, "u-bob", at: now)])[0]
        XCTAssertEqual(MessageAction.available(for: theirs, currentUserID: me), [.reply, .react])
        XCTAssertEqual(MessageAction.available(for: theirs, currentUserID: me, ownsChannel: true), [.reply, .react, .delete])
        XCTAssertEqual(MessageAction.available(for: theirs, ownsChannel: true), [], "without the user, nothing")

        let owned = Channel(id: "c1", kind: .group, name: "g", description: "", createdAt: now, createdBy: me)
        let others = Channel(id: "c2", kind: .group, name: "g", description: "", createdAt: now, createdBy: "u-bob")
        let legacy = Channel(id: "c3", kind: .group, name: "g", description: "", createdAt: now)
        let direct = Channel(id: "c4", kind: .direct, name: "Bob", description: "", createdAt: now, createdBy: me)
        XCTAssertEqual([owned, others, legacy, direct].map { $0.isOwned(by: me) }, [true, false, false, false])
    }
}
