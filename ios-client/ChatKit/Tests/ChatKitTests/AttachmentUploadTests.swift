import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatAppCore
@testable import ChatKit

// MARK: - A fake API and object store

/// Plays the REST API's attachment routes and the object store: a declared file is
/// `f-<name>`, its upload URL `/chat-attachments/o/f-<name>?sig=<n>` (a new `n` per URL given).
/// PUTs report their progress in `chunks` steps; a held file's PUT waits before each step until
/// the test allows it (`step`), and stops when its task is cancelled, like a URLSession task.
actor FakeAttachmentServer: HTTPClient {
    static let chunks = 4

    private(set) var requests: [HTTPRequest] = []
    /// Per attachment id: the store's answers to its next PUTs (then 200).
    private var putStatuses: [String: [Int]] = [:]
    /// Per attachment id: the API's refusals of its next `…/complete` (then the attachment).
    private var completeRefusals: [String: [ServerError]] = [:]
    /// Per held attachment id: the progress steps allowed so far.
    private var allowedSteps: [String: Int] = [:]
    private var urlsGiven = 0
    /// Declared files by id.
    private var declared: [String: CreateAttachment] = [:]

    func failNextPUTs(of attachmentID: String, with statuses: [Int]) {
        putStatuses[attachmentID, default: []].append(contentsOf: statuses)
    }

    func refuseNextComplete(of attachmentID: String, with error: ServerError) {
        completeRefusals[attachmentID, default: []].append(error)
    }

    /// The file's PUTs wait before each progress step until `step` allows it.
    func hold(_ attachmentID: String) {
        allowedSteps[attachmentID] = 0
    }

    func step(_ attachmentID: String, by steps: Int = 1) {
        allowedSteps[attachmentID, default: 0] += steps
    }

    func release(_ attachmentID: String) {
        allowedSteps[attachmentID] = nil
    }

    /// The file's PUTs repeat each report after the next one, as a stack reporting late would.
    func stutter(_ attachmentID: String) {
        stuttering.insert(attachmentID)
    }

    private var stuttering: Set<String> = []

    /// "METHOD path" of every request, in order.
    var log: [String] {
        requests.map { "\($0.method) \($0.url.path)" }
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.append(request)
        let path = request.url.path
        let prefix = "/api/v1/channels/c1/attachments"
        if request.method == "POST", path == prefix {
            let file = try WireJSON.decode(CreateAttachment.self, from: request.body ?? Data())
            let id = "f-\(file.name)"
            declared[id] = file
            return try .json(201, encoding: target(for: id))
        }
        if request.method == "POST", path.hasPrefix(prefix + "/"), path.hasSuffix("/upload-url") {
            let id = String(path.dropFirst(prefix.count + 1).dropLast("/upload-url".count))
            return try .json(200, encoding: target(for: id))
        }
        if request.method == "POST", path.hasPrefix(prefix + "/"), path.hasSuffix("/complete") {
            let id = String(path.dropFirst(prefix.count + 1).dropLast("/complete".count))
            if var refusals = completeRefusals[id], !refusals.isEmpty {
                let refusal = refusals.removeFirst()
                completeRefusals[id] = refusals
                return try .json(refusal.status, encoding: ErrorBody(code: refusal.code, message: refusal.message))
            }
            let file = try XCTUnwrap(declared[id])
            return try .json(200, encoding: Attachment(
                id: id,
                channelID: "c1",
                uploaderID: "u-me",
                name: file.name,
                contentType: file.contentType,
                size: file.size,
                state: .ready,
                createdAt: Sample.date
            ))
        }
        return .json(404, Data(#"{"error":{"code":"not_found","message":"no route"}}"#.utf8))
    }

    func upload(_ request: HTTPRequest, progress: @escaping TransferProgressHandler) async throws -> HTTPResponse {
        requests.append(request)
        let id = request.url.lastPathComponent
        let total = Int64(request.body?.count ?? 0)
        for chunk in 1...Self.chunks {
            while let allowed = allowedSteps[id], allowed < chunk {
                try await Task.sleep(for: .milliseconds(2))
            }
            try Task.checkCancellation()
            progress(TransferProgress(sentBytes: total * Int64(chunk) / Int64(Self.chunks), totalBytes: total))
            if stuttering.contains(id) {
                progress(TransferProgress(sentBytes: total * Int64(chunk - 1) / Int64(Self.chunks), totalBytes: total))
            }
        }
        if var statuses = putStatuses[id], !statuses.isEmpty {
            let status = statuses.removeFirst()
            putStatuses[id] = statuses
            return HTTPResponse(status: status, body: Data("<Error><Code>AccessDenied</Code></Error>".utf8))
        }
        return HTTPResponse(status: 200)
    }

    private func target(for id: String) -> AttachmentUpload {
        urlsGiven += 1
        let file = declared[id]
        return AttachmentUpload(
            id: id,
            upload: UploadRequest(
                method: "PUT",
                url: "http://chat.test/chat-attachments/o/\(id)?sig=\(urlsGiven)",
                headers: ["content-type": file?.contentType ?? "", "content-length": "\(file?.size ?? 0)"]
            ),
            expiresIn: 900
        )
    }
}

/// The client's clock, moved by the test.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Sample.date

    var now: @Sendable () -> Date {
        { self.read() }
    }

    func advance(by seconds: TimeInterval) {
        lock.lock()
        current.addTimeInterval(seconds)
        lock.unlock()
    }

    private func read() -> Date {
        lock.lock()
        defer { lock.unlock() }
        return current
    }
}

/// Turns HEIC into a marked "JPEG" wherever the tests run, to test what follows a conversion.
struct FakeConverter: AttachmentPreparing {
    func plan(for file: PickedFile) -> PreparationPlan {
        guard ImagePreparation.needsConversion(name: file.name, contentType: file.contentType) else {
            return PreparationPlan(name: file.name, contentType: file.resolvedContentType, changesBytes: false)
        }
        return PreparationPlan(name: ImagePreparation.convertedName(file.name), contentType: "image/jpeg", changesBytes: true)
    }

    func prepare(_ file: PickedFile) async throws -> PickedFile {
        guard ImagePreparation.needsConversion(name: file.name, contentType: file.contentType) else { return file }
        return PickedFile(name: ImagePreparation.convertedName(file.name), contentType: "image/jpeg", data: Data("jpeg of ".utf8) + file.data)
    }
}

// MARK: - The composer's uploads

/// `@unchecked Sendable`: the `@MainActor` tests hand the test case to the main actor (Linux's
/// test runner calls them from elsewhere); XCTest runs one test at a time.
final class AttachmentUploadTests: XCTestCase, @unchecked Sendable {
    private static let me = User(id: "u-me", username: "me", displayName: "Me")

    @MainActor
    private func makeUploads(
        preparer: any AttachmentPreparing = ImagePreparation(),
        clock: TestClock = TestClock()
    ) -> (AttachmentUploads, FakeAttachmentServer) {
        let server = FakeAttachmentServer()
        let api = APIClient(server: ServerEndpoint(string: "http://chat.test")!, http: server, tokens: FakeTokens())
        return (AttachmentUploads(channelID: "c1", api: api, preparer: preparer, now: clock.now), server)
    }

    @MainActor
    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private static func pdf(_ name: String = "a.pdf", bytes: Int = 400) -> PickedFile {
        PickedFile(name: name, data: Data(repeating: 0x25, count: bytes))
    }

    @MainActor
    func testProgressComesFromTheBytesSentInOrderAndReachesOne() async throws {
        let (uploads, server) = makeUploads()
        await server.hold("f-a.pdf")
        await server.stutter("f-a.pdf")
        let id = try XCTUnwrap(uploads.add(Self.pdf()))
        try await waitUntil("the PUT") { uploads.items.first?.state == .uploading(fractionCompleted: 0) }
        XCTAssertTrue(uploads.isBusy)
        XCTAssertFalse(uploads.canSend("caption"), "Send waits for the upload")

        var seen: [Double] = []
        for step in 1...FakeAttachmentServer.chunks {
            await server.step("f-a.pdf")
            let expected = Double(step) / Double(FakeAttachmentServer.chunks)
            try await waitUntil("progress \(expected)") { uploads.items.first.map { $0.fractionCompleted >= expected } ?? false }
            // A late, smaller report (sent after this one) does not move the bar back.
            try await Task.sleep(for: .milliseconds(10))
            seen.append(uploads.items[0].fractionCompleted)
        }
        XCTAssertEqual(seen, [0.25, 0.5, 0.75, 1.0])

        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        let item = uploads.items[0]
        XCTAssertEqual(item.id, id)
        XCTAssertEqual(item.fractionCompleted, 1)
        XCTAssertEqual(item.attachment, MessageAttachment(id: "f-a.pdf", name: "a.pdf", contentType: "application/pdf", size: 400))
        XCTAssertFalse(uploads.isBusy)
        XCTAssertTrue(uploads.canSend(""), "files alone make a message")
        let log = await server.log
        XCTAssertEqual(log, [
            "POST /api/v1/channels/c1/attachments",
            "PUT /chat-attachments/o/f-a.pdf",
            "POST /api/v1/channels/c1/attachments/f-a.pdf/complete",
        ])
        // The PUT is the presigned request, exactly, without the access token.
        let put = await server.requests[1]
        XCTAssertEqual(put.headers, ["content-type": "application/pdf", "content-length": "400"])
        XCTAssertEqual(put.body?.count, 400)
    }

    func testTransferProgressIsAFraction() {
        XCTAssertEqual(TransferProgress(sentBytes: 5, totalBytes: 0).fractionCompleted, 0)
        XCTAssertEqual(TransferProgress(sentBytes: 15, totalBytes: 10).fractionCompleted, 1)
        XCTAssertEqual(TransferProgress(sentBytes: 1, totalBytes: 4).fractionCompleted, 0.25)
    }

    /// A stack that cannot watch its bytes (the default `HTTPClient.upload`): none, then all.
    func testAStackWithoutProgressReportsNoneThenAll() async throws {
        let http = ScriptedHTTP { _, _ in HTTPResponse(status: 200) }
        let reports = AsyncQueue<TransferProgress>()
        let request = HTTPRequest(method: "PUT", url: URL(string: "http://chat.test/o/1")!, body: Data(count: 10))
        _ = try await http.upload(request) { progress in Task { await reports.put(progress) } }
        var seen: [Int64] = []
        for _ in 0..<2 {
            seen.append(try await reports.take().sentBytes)
        }
        XCTAssertEqual(Set(seen), [0, 10])
    }

    @MainActor
    func testCancellingMidUploadStopsItAndSendsNothing() async throws {
        let (session, transport, server) = makeSession()
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }

        let uploads = session.uploads(for: "c1")
        XCTAssertTrue(uploads === session.uploads(for: "c1"), "one strip per conversation")
        await server.hold("f-a.pdf")
        let id = try XCTUnwrap(uploads.add(Self.pdf()))
        await server.step("f-a.pdf")
        try await waitUntil("a quarter") { uploads.items.first?.fractionCompleted == 0.25 }
        XCTAssertFalse(session.sendComposed("", to: "c1"), "nothing to send while uploading")

        uploads.remove(id)
        XCTAssertTrue(uploads.items.isEmpty)
        XCTAssertFalse(uploads.isBusy)
        // The transfer stopped: nothing more reaches the store or the API.
        await server.step("f-a.pdf", by: 3)
        try await Task.sleep(for: .milliseconds(50))
        let log = await server.log
        XCTAssertEqual(log.filter { $0.contains("attachments") }, [
            "POST /api/v1/channels/c1/attachments",
            "PUT /chat-attachments/o/f-a.pdf",
        ])
        XCTAssertTrue(uploads.items.isEmpty)

        // No message: files alone were all there was.
        XCTAssertFalse(session.sendComposed("  ", to: "c1"))
        XCTAssertTrue(session.timeline("c1").isEmpty)
        let sent = try await connection.unreadSent()
        XCTAssertTrue(sent.isEmpty, "\(sent)")
        await session.shutdown()
    }

    @MainActor
    func testAFailedPUTCanBeRetriedWithAFreshURL() async throws {
        let (uploads, server) = makeUploads()
        await server.failNextPUTs(of: "f-a.pdf", with: [500])
        let id = try XCTUnwrap(uploads.add(Self.pdf()))
        try await waitUntil("the failure") { uploads.items.first?.failure != nil }
        let failure = try XCTUnwrap(uploads.items[0].failure)
        XCTAssertTrue(failure.isRetryable)
        XCTAssertFalse(uploads.isBusy)
        XCTAssertFalse(uploads.canSend(""), "a failed file is not sent")
        XCTAssertTrue(uploads.canSend("text only"), "text alone may still go")

        uploads.retry(id)
        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        XCTAssertEqual(uploads.readyAttachments.map(\.id), ["f-a.pdf"])
        let log = await server.log
        XCTAssertEqual(log, [
            "POST /api/v1/channels/c1/attachments",
            "PUT /chat-attachments/o/f-a.pdf",
            // The same upload, a new URL (the first may have expired by now).
            "POST /api/v1/channels/c1/attachments/f-a.pdf/upload-url",
            "PUT /chat-attachments/o/f-a.pdf",
            "POST /api/v1/channels/c1/attachments/f-a.pdf/complete",
        ])
        let urls = await server.requests.filter { $0.method == "PUT" }.map(\.url.query)
        XCTAssertEqual(urls, ["sig=1", "sig=2"])
    }

    @MainActor
    func testAnExpiredURLIsRenewedOnceAtOnce() async throws {
        let (uploads, server) = makeUploads()
        await server.failNextPUTs(of: "f-a.pdf", with: [403])
        uploads.add(Self.pdf())
        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        let log = await server.log
        XCTAssertEqual(log.map { String($0.split(separator: "/").last ?? "") }, ["attachments", "f-a.pdf", "upload-url", "f-a.pdf", "complete"])

        // Refused twice: failed, retryable.
        await server.failNextPUTs(of: "f-b.pdf", with: [403, 403])
        uploads.add(Self.pdf("b.pdf"))
        try await waitUntil("the failure") { uploads.items.last?.failure != nil }
        XCTAssertEqual(uploads.items.last?.failure, AttachmentUploadFailure(message: "The storage refused the upload. Try again.", isRetryable: true))
    }

    @MainActor
    func testARetryAfterTheServerGaveUpOnTheUploadDeclaresItAgain() async throws {
        let clock = TestClock()
        let (uploads, server) = makeUploads(clock: clock)
        await server.failNextPUTs(of: "f-a.pdf", with: [502])
        let id = try XCTUnwrap(uploads.add(Self.pdf()))
        try await waitUntil("the failure") { uploads.items.first?.failure != nil }

        // An hour later the server no longer renews it: declared anew.
        clock.advance(by: TimeInterval(Limits.uploadRenewableSecs))
        uploads.retry(id)
        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        let log = await server.log
        XCTAssertEqual(log, [
            "POST /api/v1/channels/c1/attachments",
            "PUT /chat-attachments/o/f-a.pdf",
            "POST /api/v1/channels/c1/attachments",
            "PUT /chat-attachments/o/f-a.pdf",
            "POST /api/v1/channels/c1/attachments/f-a.pdf/complete",
        ])
    }

    @MainActor
    func testARetryAfterTheBytesArrivedOnlyCompletes() async throws {
        let (uploads, server) = makeUploads()
        await server.refuseNextComplete(of: "f-a.pdf", with: ServerError(status: 503, code: "unavailable", message: "try later"))
        let id = try XCTUnwrap(uploads.add(Self.pdf()))
        try await waitUntil("the failure") { uploads.items.first?.failure != nil }
        XCTAssertEqual(uploads.items[0].failure?.isRetryable, true)
        uploads.retry(id)
        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        let log = await server.log
        XCTAssertEqual(log.suffix(2), [
            "POST /api/v1/channels/c1/attachments/f-a.pdf/complete",
            "POST /api/v1/channels/c1/attachments/f-a.pdf/complete",
        ])
        XCTAssertEqual(log.filter { $0.hasPrefix("PUT") }.count, 1)
    }

    @MainActor
    func testFilesTheServerWouldRefuseAreRefusedBeforeAnyRequest() async throws {
        let (uploads, server) = makeUploads()
        let tooLarge = try XCTUnwrap(uploads.add(PickedFile(name: "movie.mp4", data: Data(count: Int(Limits.attachmentMaxBytes) + 1))))
        let html = try XCTUnwrap(uploads.add(PickedFile(name: "index.html", contentType: "text/html", data: Data("<p>".utf8))))
        let empty = try XCTUnwrap(uploads.add(PickedFile(name: "empty.txt", data: Data())))
        let badName = try XCTUnwrap(uploads.add(PickedFile(name: "\u{202E}gnp.exe.txt", data: Data("x".utf8))))

        XCTAssertEqual(uploads.items.map(\.id), [tooLarge, html, empty, badName])
        XCTAssertTrue(uploads.items.allSatisfy { $0.failure?.isRetryable == false })
        XCTAssertEqual(uploads.items[0].failure?.message, "movie.mp4 is too large (25 MB): files can be up to 25 MB.")
        XCTAssertEqual(
            uploads.items[1].failure?.message,
            "index.html can't be sent: only images (JPEG, PNG, GIF, WebP), PDF, text, ZIP, MP4, MP3 and M4A files can."
        )
        XCTAssertEqual(uploads.items[2].failure?.message, "empty.txt is empty.")
        XCTAssertTrue(uploads.items[3].failure?.message.contains("rename it") ?? false)
        XCTAssertFalse(uploads.isBusy)
        XCTAssertFalse(uploads.canSend(""))

        // Retry does nothing for them; a fifth file is not added.
        uploads.retry(html)
        XCTAssertNil(uploads.add(Self.pdf()))
        XCTAssertEqual(uploads.notice, "A message can carry at most 4 files: a.pdf was not added.")
        XCTAssertEqual(uploads.items.count, 4)

        // Removing one makes room.
        uploads.remove(tooLarge)
        XCTAssertEqual(uploads.remainingCapacity, 1)

        try await Task.sleep(for: .milliseconds(20))
        let count = await server.requests.count
        XCTAssertEqual(count, 0, "nothing was sent")
    }

    @MainActor
    func testALargeFileOnDiskIsRefusedBeforeBeingRead() async throws {
        let (uploads, _) = makeUploads()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("chatkit-\(UUID().uuidString).zip")
        XCTAssertTrue(FileManager.default.createFile(atPath: url.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: url) }
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: Limits.attachmentMaxBytes + 1_000_000)
        try handle.close()

        uploads.add(fileAt: url)
        XCTAssertEqual(uploads.items.count, 1)
        XCTAssertEqual(uploads.items[0].failure?.isRetryable, false)
        XCTAssertEqual(uploads.items[0].size, Limits.attachmentMaxBytes + 1_000_000)
        XCTAssertTrue(uploads.items[0].failure?.message.hasSuffix("(26 MB): files can be up to 25 MB.") ?? false, uploads.items[0].failure?.message ?? "")
    }

    @MainActor
    func testTheMessageCarriesOnlyUploadedFilesInPickingOrder() async throws {
        let (session, transport, server) = makeSession()
        session.start()
        let connection = try await transport.nextConnection()
        try connection.serverSends(.ready(userID: "u-me", connectionID: "gw:1"))
        try await waitUntil("connected") { session.connection == .connected }

        let uploads = session.uploads(for: "c1")
        await server.hold("f-first.pdf")
        await server.failNextPUTs(of: "f-second.txt", with: [500])
        uploads.add(Self.pdf("first.pdf"))
        uploads.add(PickedFile(name: "second.txt", data: Data("notes".utf8)))
        uploads.add(PickedFile(name: "third.png", data: Data("png".utf8)))

        // The third finishes first, the second fails; the first is still going: Send waits.
        try await waitUntil("the third") { uploads.items.count == 3 && uploads.items[2].attachment != nil }
        try await waitUntil("the second's failure") { uploads.items[1].failure != nil }
        XCTAssertTrue(uploads.isBusy)
        XCTAssertFalse(session.sendComposed("look", to: "c1"))
        XCTAssertTrue(session.timeline("c1").isEmpty)

        await server.release("f-first.pdf")
        try await waitUntil("the first") { uploads.items[0].attachment != nil }
        XCTAssertTrue(session.sendComposed("look", to: "c1"))

        let sent = try await connection.nextSent()
        guard case let .sendWithAttachments("c1", _, "look", ids, nil) = sent else { return XCTFail("not a send of files: \(sent)") }
        XCTAssertEqual(ids, ["f-first.pdf", "f-third.png"], "picking order, the failed one left out")
        XCTAssertEqual(session.timeline("c1").entries.first?.attachments.map(\.name), ["first.pdf", "third.png"])
        // The failed file stays in the strip, to retry or remove.
        XCTAssertEqual(uploads.items.map(\.name), ["second.txt"])
        await session.shutdown()
    }

    @MainActor
    func testAConvertedPhotoIsUploadedAsJPEG() async throws {
        let (uploads, server) = makeUploads(preparer: FakeConverter())
        uploads.add(PickedFile(name: "IMG_0042.HEIC", contentType: "image/heic", data: Data("heic".utf8)))
        try await waitUntil("uploaded") { uploads.items.first?.attachment != nil }
        let attachment = try XCTUnwrap(uploads.items[0].attachment)
        XCTAssertEqual(attachment.name, "IMG_0042.jpg")
        XCTAssertEqual(attachment.contentType, "image/jpeg")
        XCTAssertEqual(attachment.size, UInt64("jpeg of heic".utf8.count))
        let body = await server.requests.first?.body
        let declared = try WireJSON.decode(CreateAttachment.self, from: XCTUnwrap(body))
        XCTAssertEqual(declared, CreateAttachment(name: "IMG_0042.jpg", contentType: "image/jpeg", size: 12))
    }

    func testUploadErrorsInWords() {
        func failure(_ status: Int, _ code: String) -> AttachmentUploadFailure {
            AttachmentUploads.failure(for: ChatError.server(ServerError(status: status, code: code, message: "server words")))
        }
        XCTAssertFalse(failure(413, APIErrorCode.attachmentTooLarge).isRetryable)
        XCTAssertFalse(failure(400, APIErrorCode.unsupportedType).isRetryable)
        XCTAssertFalse(failure(403, APIErrorCode.notAMember).isRetryable)
        XCTAssertTrue(failure(409, APIErrorCode.tooManyUploads).isRetryable)
        XCTAssertTrue(failure(404, APIErrorCode.unknownAttachment).isRetryable)
        XCTAssertTrue(failure(503, "http_503").isRetryable)
        XCTAssertEqual(failure(400, "something_new"), AttachmentUploadFailure(message: "server words", isRetryable: false))
        XCTAssertTrue(AttachmentUploads.failure(for: ChatError.network("offline")).isRetryable)
        XCTAssertFalse(AttachmentUploads.failure(for: ChatError.sessionExpired).isRetryable)
    }

    /// A session whose REST calls go to a `FakeAttachmentServer` (the profile and the list
    /// answered apart).
    @MainActor
    private func makeSession() -> (ChatSession, FakeTransport, FakeAttachmentServer) {
        let transport = FakeTransport()
        let server = FakeAttachmentServer()
        let http = ProfileAnswering(next: server, me: Self.me)
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
        return (session, transport, server)
    }
}

/// Answers the profile and the conversation list, and passes the rest on.
private struct ProfileAnswering: HTTPClient {
    let next: FakeAttachmentServer
    let me: User

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        switch request.target {
        case "/api/v1/users/me": return try .json(200, encoding: me)
        case "/api/v1/channels": return try .json(200, encoding: ConversationList(channels: []))
        default: return try await next.send(request)
        }
    }

    func upload(_ request: HTTPRequest, progress: @escaping TransferProgressHandler) async throws -> HTTPResponse {
        try await next.upload(request, progress: progress)
    }
}

// MARK: - Preparing photos

final class ImagePreparationTests: XCTestCase {
    func testHEICAndHEIFPhotosAreTheOnesConverted() {
        XCTAssertTrue(ImagePreparation.needsConversion(name: "IMG_0042.HEIC", contentType: nil))
        XCTAssertTrue(ImagePreparation.needsConversion(name: "IMG_0042.heif", contentType: nil))
        XCTAssertTrue(ImagePreparation.needsConversion(name: "Photo", contentType: "image/heic"))
        XCTAssertTrue(ImagePreparation.needsConversion(name: "Photo", contentType: "image/HEIF"))
        XCTAssertFalse(ImagePreparation.needsConversion(name: "IMG_0042.jpg", contentType: "image/jpeg"))
        XCTAssertFalse(ImagePreparation.needsConversion(name: "scan.png", contentType: nil))
        XCTAssertFalse(ImagePreparation.needsConversion(name: ".heic", contentType: nil), "a hidden file, not a photo")
        XCTAssertEqual(ImagePreparation.jpegQuality, 0.85)
    }

    func testConvertedPhotosAreNamedJPG() {
        XCTAssertEqual(ImagePreparation.convertedName("IMG_0042.HEIC"), "IMG_0042.jpg")
        XCTAssertEqual(ImagePreparation.convertedName("holiday.photo.heif"), "holiday.photo.jpg")
        XCTAssertEqual(ImagePreparation.convertedName("Photo"), "Photo.jpg")
    }

    func testDroppedFilesAreNamedWithTheirTypesExtension() {
        XCTAssertEqual(PickedFile.droppedName(suggested: "IMG_0042", fileExtension: "jpeg", stamp: 7, index: 1), "IMG_0042.jpeg")
        XCTAssertEqual(PickedFile.droppedName(suggested: "Report.PDF", fileExtension: "pdf", stamp: 7, index: 1), "Report.PDF")
        XCTAssertEqual(PickedFile.droppedName(suggested: "notes.txt", fileExtension: nil, stamp: 7, index: 1), "notes.txt")
        XCTAssertEqual(PickedFile.droppedName(suggested: "/private/tmp/drop/scan.png", fileExtension: "png", stamp: 7, index: 1), "scan.png")
        XCTAssertEqual(PickedFile.droppedName(suggested: nil, fileExtension: "png", stamp: 7, index: 2), "Dropped file 7-2.png")
        XCTAssertEqual(PickedFile.droppedName(suggested: "  ", fileExtension: nil, stamp: 7, index: 3), "Dropped file 7-3")
        // The name decides the type the server is told when the drop reports none.
        let dropped = PickedFile(name: PickedFile.droppedName(suggested: "IMG_0042", fileExtension: "png", stamp: 7, index: 1), data: Data())
        XCTAssertEqual(dropped.resolvedContentType, "image/png")
    }

    func testWhatAPickedFileBecomes() {
        let heic = PickedFile(name: "IMG_0042.HEIC", contentType: "image/heic", data: Data())
        if ImagePreparation.canConvert {
            XCTAssertEqual(ImagePreparation().plan(for: heic), PreparationPlan(name: "IMG_0042.jpg", contentType: "image/jpeg", changesBytes: true))
        } else {
            // Without ImageIO it stays HEIC, a type the server does not take.
            XCTAssertEqual(ImagePreparation().plan(for: heic), PreparationPlan(name: "IMG_0042.HEIC", contentType: "image/heic", changesBytes: false))
        }
        let png = PickedFile(name: "scan.png", data: Data())
        XCTAssertEqual(ImagePreparation().plan(for: png), PreparationPlan(name: "scan.png", contentType: "image/png", changesBytes: false))
        // The type a picker reports wins when the server takes it; else the name's.
        XCTAssertEqual(PickedFile(name: "scan", contentType: "image/png", data: Data()).resolvedContentType, "image/png")
        XCTAssertEqual(PickedFile(name: "notes.txt", contentType: "text/plain; charset=utf-8", data: Data()).resolvedContentType, "text/plain")
        XCTAssertEqual(PickedFile(name: "index.html", contentType: "text/html", data: Data()).resolvedContentType, "text/html")
        XCTAssertNil(PickedFile(name: "README", data: Data()).resolvedContentType)
    }

    func testOtherFilesPassUnchanged() async throws {
        let pdf = PickedFile(name: "a.pdf", data: Data("%PDF".utf8))
        let prepared = try await ImagePreparation().prepare(pdf)
        XCTAssertEqual(prepared, pdf)
    }

    func testAPhotoThatIsNotAnImageIsNotConvertedSilently() async throws {
        let heic = PickedFile(name: "IMG_0042.HEIC", contentType: "image/heic", data: Data("not an image".utf8))
        #if canImport(ImageIO)
        do {
            _ = try await ImagePreparation().prepare(heic)
            XCTFail("converted garbage")
        } catch let error as PreparationFailed {
            XCTAssertEqual(error.localizedDescription, "IMG_0042.HEIC could not be converted to JPEG.")
        }
        #else
        // Without ImageIO files pass unchanged.
        let prepared = try await ImagePreparation().prepare(heic)
        XCTAssertEqual(prepared, heic)
        #endif
    }

    func testAttachmentNamesAreCheckedAsTheServerDoes() {
        XCTAssertTrue(Limits.isValidAttachmentName("IMG_0042.jpg"))
        XCTAssertTrue(Limits.isValidAttachmentName("Résumé (final) 🦀.pdf"))
        XCTAssertTrue(Limits.isValidAttachmentName("👩\u{200D}💻 notes.txt"), "the zero-width joiner is allowed")
        XCTAssertTrue(Limits.isValidAttachmentName(String(repeating: "é", count: Limits.attachmentNameMax)))
        XCTAssertFalse(Limits.isValidAttachmentName(String(repeating: "é", count: Limits.attachmentNameMax + 1)))
        XCTAssertFalse(Limits.isValidAttachmentName(""))
        for bad in ["a/b.txt", "a\nb.txt", "\u{202E}gnp.exe", "a\u{200B}b.txt", "a\u{2028}b.txt", "\u{FEFF}a.txt"] {
            XCTAssertFalse(Limits.isValidAttachmentName(bad), bad.debugDescription)
        }
        XCTAssertEqual(AttachmentValidation.megabytes(25 * 1024 * 1024), "25 MB")
        XCTAssertEqual(AttachmentValidation.megabytes(27_500_000), "26.2 MB")
    }
}
