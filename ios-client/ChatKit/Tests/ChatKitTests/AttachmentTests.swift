import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatAppCore
@testable import ChatKit

/// Files in messages: a message of files without text is merged, previewed and laid out like any
/// other (never as an empty line), and the session sends, retries and links them.
enum AttachmentSample {
    static let photo = MessageAttachment(
        id: "f-photo",
        name: "IMG_0042.jpg",
        contentType: "image/jpeg",
        size: 2_483_921,
        width: 3024,
        height: 4032
    )
    static let pdf = MessageAttachment(id: "f-pdf", name: "minutes 2025-01-15.pdf", contentType: "application/pdf", size: 88_311)

    /// A stored message of `attachments` and `body` (empty: files alone).
    static func message(
        seq: Int64?,
        channelID: String = "c1",
        senderID: String = "u-bob",
        clientMsgID: String,
        body: String = "",
        attachments: [MessageAttachment] = [photo]
    ) -> Message {
        var message = Sample.message(seq: seq, channelID: channelID, senderID: senderID, clientMsgID: clientMsgID, body: body)
        message.attachments = attachments
        return message
    }
}

final class AttachmentTimelineTests: XCTestCase {
    func testAMessageOfFilesIsAnEntryWithItsFiles() {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.merge(AttachmentSample.message(seq: 1, clientMsgID: "a", attachments: [AttachmentSample.photo, AttachmentSample.pdf]))
        XCTAssertEqual(timeline.entries.count, 1)
        XCTAssertEqual(timeline.entries[0].body, "")
        XCTAssertEqual(timeline.entries[0].attachments, [AttachmentSample.photo, AttachmentSample.pdf])
    }

    func testAPendingSendShowsItsFilesUntilTheMessageArrives() {
        var store = MessageStore(currentUserID: "u-me")
        store.addPending(PendingSend(clientMsgID: "p1", channelID: "c1", body: "", attachments: [AttachmentSample.pdf]), at: Sample.date)
        XCTAssertEqual(store["c1"].entries[0].attachments, [AttachmentSample.pdf])
        XCTAssertEqual(store["c1"].entries[0].status, .pending)

        // An ack that leaves the files out keeps them; the placed message brings them again.
        var ack = AttachmentSample.message(seq: nil, senderID: "u-me", clientMsgID: "p1")
        ack.attachments = []
        store.apply(.acked(clientMsgID: "p1", message: ack))
        XCTAssertEqual(store["c1"].entries[0].status, .sent)
        XCTAssertEqual(store["c1"].entries[0].attachments, [AttachmentSample.pdf])
        store.apply(.message(AttachmentSample.message(seq: 3, senderID: "u-me", clientMsgID: "p1", attachments: [AttachmentSample.pdf])))
        XCTAssertEqual(store["c1"].entries.count, 1)
        XCTAssertEqual(store["c1"].entries[0].status, .delivered)
        XCTAssertEqual(store["c1"].entries[0].attachments, [AttachmentSample.pdf])
    }

    func testADeletedMessageLosesItsFiles() {
        var timeline = MessageTimeline(channelID: "c1")
        let message = AttachmentSample.message(seq: 1, clientMsgID: "a", body: "the photo")
        timeline.merge(message)
        timeline.apply(Sample.event(seq: 2, of: message, .deleted), currentUserID: "u-me")
        XCTAssertTrue(timeline.entries[0].isDeleted)
        XCTAssertEqual(timeline.entries[0].attachments, [])

        // A tombstone from history has none either.
        var history = MessageTimeline(channelID: "c1")
        var tombstone = AttachmentSample.message(seq: 1, clientMsgID: "a")
        tombstone.deleted = true
        history.merge(tombstone)
        XCTAssertEqual(history.entries[0].attachments, [])
    }
}

final class AttachmentPresentationTests: XCTestCase {
    private let me = "u-me"
    private let group = Channel(id: "c1", kind: .group, name: "general", description: "", createdAt: Sample.date)
    private let direct = Channel(id: "c1", kind: .direct, name: "Bob", description: "", createdAt: Sample.date)

    private func names(_ userID: String) -> String {
        userID == "u-bob" ? "Bob" : "Someone"
    }

    private func line(_ channel: Channel, _ messages: [Message], lastMessage: LastMessage? = nil) -> String? {
        var timeline = MessageTimeline(channelID: "c1")
        timeline.mergePage(messages, cursor: .latest, limit: 50)
        return MessagePreview.conversationLine(for: channel, timeline: timeline, lastMessage: lastMessage, currentUserID: me, displayName: names)
    }

    /// The conversation list never shows an empty line for a message of files alone.
    func testAMessageOfFilesAloneIsPreviewedByItsFiles() {
        XCTAssertEqual(line(group, [AttachmentSample.message(seq: 1, clientMsgID: "a")]), "Bob: 📎 IMG_0042.jpg")
        XCTAssertEqual(line(direct, [AttachmentSample.message(seq: 1, clientMsgID: "a")]), "📎 IMG_0042.jpg")
        XCTAssertEqual(
            line(group, [AttachmentSample.message(seq: 1, senderID: me, clientMsgID: "a", attachments: [AttachmentSample.photo, AttachmentSample.pdf])]),
            "You: 📎 IMG_0042.jpg, minutes 2025-01-15.pdf"
        )
        // With a caption, the caption, marked.
        XCTAssertEqual(line(group, [AttachmentSample.message(seq: 1, clientMsgID: "a", body: "Minutes")]), "Bob: 📎 Minutes")
        // Text alone is unchanged.
        XCTAssertEqual(line(group, [Sample.message(seq: 1, clientMsgID: "a", body: "lunch?")]), "Bob: lunch?")
    }

    /// The list's own preview is the body's start: empty only for files alone.
    func testAListedMessageWithoutTextIsAnAttachment() {
        let listed = LastMessage(id: "m9", seq: 9, senderID: "u-bob", preview: "", createdAt: Sample.date)
        XCTAssertEqual(line(group, [], lastMessage: listed), "Bob: 📎 Attachment")
        var text = listed
        text.preview = "see you"
        XCTAssertEqual(line(direct, [], lastMessage: text), "see you")
    }

    func testTheQuoteOfAReplyToFilesIsNotEmpty() {
        XCTAssertEqual(MessagePreview.text(of: ReplyPreview(id: "m1", seq: 1, senderID: "u-bob", preview: "")), "📎 Attachment")
        XCTAssertEqual(MessagePreview.text(of: ReplyPreview(id: "m1", seq: 1, senderID: "u-bob", preview: "", deleted: true)), "Message deleted")
        XCTAssertEqual(MessagePreview.text(of: ReplyPreview(id: "m1", seq: 1, senderID: "u-bob", preview: "lunch?")), "lunch?")

        // The composer's "Replying to" line for a message of files.
        var timeline = MessageTimeline(channelID: "c1")
        timeline.merge(AttachmentSample.message(seq: 1, clientMsgID: "a"))
        XCTAssertEqual(MessagePreview.text(of: timeline.entries[0]), "📎 IMG_0042.jpg")
    }

    func testImagesGetABoxOfTheirShapeBeforeAnythingIsDownloaded() throws {
        // A portrait photo (3024 × 4032 upright): as wide as allowed, 3:4.
        XCTAssertEqual(AttachmentLayout.imageSize(of: AttachmentSample.photo), AttachmentLayout.Size(width: 240, height: 320))
        // A panorama: as wide as allowed.
        var panorama = AttachmentSample.photo
        panorama.width = 8000
        panorama.height = 2000
        XCTAssertEqual(AttachmentLayout.imageSize(of: panorama), AttachmentLayout.Size(width: 240, height: 60))
        // A tall screenshot: as tall as allowed.
        var tall = AttachmentSample.photo
        tall.width = 1000
        tall.height = 4000
        XCTAssertEqual(AttachmentLayout.imageSize(of: tall), AttachmentLayout.Size(width: 80, height: 320))
        // A small picture is not blown up; a sliver is still something to tap.
        var icon = AttachmentSample.photo
        icon.width = 100
        icon.height = 50
        XCTAssertEqual(AttachmentLayout.imageSize(of: icon), AttachmentLayout.Size(width: 100, height: 50))
        icon.height = 2
        XCTAssertEqual(AttachmentLayout.imageSize(of: icon), AttachmentLayout.Size(width: 100, height: 32))

        // Other files, and images the server could not measure, are chips.
        XCTAssertNil(AttachmentLayout.imageSize(of: AttachmentSample.pdf))
        var unmeasured = AttachmentSample.photo
        unmeasured.width = nil
        unmeasured.height = nil
        XCTAssertFalse(unmeasured.isImage)
        XCTAssertNil(AttachmentLayout.imageSize(of: unmeasured))
    }
}

/// `@unchecked Sendable`: the `@MainActor` tests hand the test case to the main actor (Linux's
/// test runner calls them from elsewhere); XCTest runs one test at a time.
final class AttachmentSessionTests: XCTestCase, @unchecked Sendable {
    private static let me = User(id: "u-me", username: "me", displayName: "Me")

    /// A session wired to fakes; REST answers the profile, an empty conversation list, and
    /// otherwise `handler`.
    @MainActor
    private func makeSession(_ handler: @escaping ScriptedHTTP.Handler = { _, _ in .json(404, Data("{}".utf8)) }) -> (ChatSession, FakeTransport, ScriptedHTTP) {
        let transport = FakeTransport()
        let http = ScriptedHTTP { request, index in
            switch request.target {
            case "/api/v1/users/me": return try .json(200, encoding: Self.me)
            case "/api/v1/channels": return try .json(200, encoding: ConversationList(channels: []))
            default: return try handler(request, index)
            }
        }
        let environment = ChatEnvironment(
            http: http,
            transport: transport,
            realtime: RealtimeConfiguration(pingInterval: nil, sendTimeout: nil),
            tokenStore: { _ in InMemoryTokenStore() }
        )
        let session = ChatSession(
            user: Self.me,
            endpoint: ServerEndpoint(string: "http://chat.test")!,
            tokens: FakeTokens(),
            environment: environment,
            onSessionExpired: {}
        )
        return (session, transport, http)
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
    func testFilesAreSentShownAtOnceAndRetriedWithTheSameIDs() async throws {
        let (session, transport, _) = makeSession()
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }

        // Nothing to send: no text, no files; too many files.
        session.send("  ", to: "c1")
        session.send("", to: "c1", attachments: Array(repeating: AttachmentSample.pdf, count: 5))
        XCTAssertTrue(session.timeline("c1").isEmpty)

        // Files alone: shown at once, with the files, and previewed by them.
        session.send("  ", to: "c1", attachments: [AttachmentSample.photo, AttachmentSample.pdf])
        let entry = try XCTUnwrap(session.timeline("c1").entries.first)
        XCTAssertEqual(entry.attachments, [AttachmentSample.photo, AttachmentSample.pdf])
        XCTAssertEqual(entry.body, "")
        let channel = Channel(id: "c1", kind: .group, name: "general", description: "", createdAt: Sample.date)
        XCTAssertEqual(session.preview(of: channel), "You: 📎 IMG_0042.jpg, minutes 2025-01-15.pdf")

        let sent = try await connection.nextSent()
        guard case let .sendWithAttachments("c1", clientMsgID, "", ids, nil) = sent else { return XCTFail("not a send of files: \(sent)") }
        XCTAssertEqual(ids, ["f-photo", "f-pdf"])

        // Refused (the uploads were not the user's, say): failed, and a retry sends the same.
        try connection.serverSends(.error(FrameError(code: FrameErrorCode.invalidAttachment, message: "no such upload", clientMsgID: clientMsgID)))
        try await waitUntil("the failure") {
            session.timeline("c1").entries.first?.status == .failed(code: FrameErrorCode.invalidAttachment, reason: "no such upload")
        }
        session.retry(session.timeline("c1").entries[0])
        let resent = try await connection.nextSent()
        XCTAssertEqual(resent, sent)

        // A reply with a caption.
        session.send("Minutes", to: "c1", replyTo: "m-1", attachments: [AttachmentSample.pdf])
        guard case .sendWithAttachments("c1", _, "Minutes", ["f-pdf"], "m-1"?) = try await connection.nextSent() else {
            return XCTFail("not a reply with a file")
        }
        await session.shutdown()
    }

    @MainActor
    func testAnUploadGivesWhatTheMessageWillCarry() async throws {
        let (session, _, http) = makeSession { request, _ in
            if request.url.path.hasPrefix("/chat-attachments/") { return HTTPResponse(status: 200) }
            return request.target.hasSuffix("/attachments")
                ? .json(201, try fixture("rest_attachment_upload"))
                : .json(200, try fixture("rest_attachment"))
        }
        let attachment = try await session.upload(Data("jpeg".utf8), name: "IMG_0042.jpg", contentType: "image/jpeg", to: "c1")
        XCTAssertEqual(attachment.id, "0190a2b4-1234-7000-8000-000000000a77")
        XCTAssertEqual([attachment.width, attachment.height], [3024, 4032])
        let methods = await http.requests.map(\.method)
        XCTAssertEqual(methods, ["POST", "PUT", "POST"])
    }

    @MainActor
    func testDownloadLinksAreAskedForOnceWhileValid() async throws {
        let (session, _, http) = makeSession { _, _ in .json(200, try fixture("rest_attachment_link")) }
        let first = try await session.link(for: AttachmentSample.photo, in: "c1")
        let second = try await session.link(for: AttachmentSample.photo, in: "c1")
        XCTAssertEqual(first, second)
        XCTAssertNotNil(first.thumbnailURL)
        let requests = await http.requests.map(\.target)
        XCTAssertEqual(requests, ["/api/v1/channels/c1/attachments/f-photo"])

        // Another file has its own link.
        _ = try await session.link(for: AttachmentSample.pdf, in: "c1")
        let count = await http.requests.count
        XCTAssertEqual(count, 2)
    }
}
