import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatKit

// MARK: - Wire fixtures

/// `fixtures/wire/` at the repository root, written by the Rust test
/// `crates/chat-types/tests/fixtures.rs` from the server's own types.
enum WireFixtures {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent() // Support
        .deletingLastPathComponent() // ChatKitTests
        .deletingLastPathComponent() // Tests
        .deletingLastPathComponent() // ChatKit
        .deletingLastPathComponent() // ios-client
        .deletingLastPathComponent() // repository root
        .appendingPathComponent("fixtures", isDirectory: true)
        .appendingPathComponent("wire", isDirectory: true)
}

/// The bytes of `fixtures/wire/<name>.json`. scripts/check-swift.sh checks that every name
/// passed here exists.
func fixture(_ name: String) throws -> Data {
    let url = WireFixtures.directory.appendingPathComponent("\(name).json")
    do {
        return try Data(contentsOf: url)
    } catch {
        throw FixtureMissing(path: url.path)
    }
}

struct FixtureMissing: Error, CustomStringConvertible {
    let path: String
    var description: String {
        "\(path) is missing; run `UPDATE_FIXTURES=1 cargo test -p chat-types --test fixtures`"
    }
}

/// JSON with sorted keys, for comparing documents regardless of key order and whitespace.
func canonicalJSON(_ data: Data) throws -> Data {
    let object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])
}

func assertSameJSON(_ actual: Data, _ expected: Data, file: StaticString = #filePath, line: UInt = #line) throws {
    let actualText = String(decoding: try canonicalJSON(actual), as: UTF8.self)
    let expectedText = String(decoding: try canonicalJSON(expected), as: UTF8.self)
    XCTAssertEqual(actualText, expectedText, file: file, line: line)
}

// MARK: - Sample values

enum Sample {
    static let date = Date(timeIntervalSince1970: 1_736_933_530)

    static func message(
        seq: Int64?,
        channelID: String = "c1",
        senderID: String = "u-bob",
        clientMsgID: String,
        body: String? = nil,
        mentions: [String] = []
    ) -> Message {
        Message(
            id: "m-\(senderID)-\(clientMsgID)",
            channelID: channelID,
            senderID: senderID,
            body: body ?? "body of \(clientMsgID)",
            clientMsgID: clientMsgID,
            createdAt: date.addingTimeInterval(TimeInterval(seq ?? 0)),
            seq: seq,
            mentions: mentions
        )
    }

    /// An event at position `seq` changing `message` (a `Sample.message`).
    static func event(
        seq: Int64,
        of message: Message,
        actorID: String = "u-bob",
        _ change: ChannelEvent.Change,
        clientEventID: String? = nil
    ) -> ChannelEvent {
        ChannelEvent(
            id: "e-\(seq)",
            channelID: message.channelID,
            seq: seq,
            actorID: actorID,
            messageID: message.id,
            messageSeq: message.seq ?? 0,
            clientEventID: clientEventID ?? "ce-\(seq)",
            createdAt: date.addingTimeInterval(TimeInterval(seq)),
            change: change
        )
    }

    static let alice = User(id: "u-alice", username: "alice", displayName: "Alice")

    static func session(access: String, refresh: String, expiresIn: Int64 = 900) -> Session {
        Session(user: alice, accessToken: access, refreshToken: refresh, expiresIn: expiresIn)
    }
}

// MARK: - Waiting with a deadline

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A FIFO that async code fills and tests drain, each take bounded by a timeout.
actor AsyncQueue<Element: Sendable> {
    private var buffer: [Element] = []
    private var waiters: [(id: Int, continuation: CheckedContinuation<Element, any Error>)] = []
    private var nextWaiterID = 0

    func put(_ element: Element) {
        if waiters.isEmpty {
            buffer.append(element)
        } else {
            waiters.removeFirst().continuation.resume(returning: element)
        }
    }

    func take(timeout: Duration = .seconds(5), what: String = "an element") async throws -> Element {
        if !buffer.isEmpty {
            return buffer.removeFirst()
        }
        nextWaiterID += 1
        let id = nextWaiterID
        return try await withCheckedThrowingContinuation { continuation in
            waiters.append((id, continuation))
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id, what: what)
            }
        }
    }

    /// What was put and not taken yet.
    var buffered: [Element] { buffer }

    private func expire(_ id: Int, what: String) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: TimedOut(what: what))
    }
}

// MARK: - Fake WebSocket transport

/// A transport whose connections the test drives: it plays the server.
actor FakeTransport: Transport {
    private(set) var requests: [URLRequest] = []
    /// Errors thrown by the next `connect` calls, in order; connects succeed once it is empty.
    private var connectFailures: [any Error] = []
    private let opened = AsyncQueue<FakeConnection>()

    func failNextConnects(with errors: [any Error]) {
        connectFailures.append(contentsOf: errors)
    }

    func connect(_ request: URLRequest) async throws -> any TransportConnection {
        requests.append(request)
        if !connectFailures.isEmpty {
            throw connectFailures.removeFirst()
        }
        let connection = FakeConnection(request: request)
        await opened.put(connection)
        return connection
    }

    /// The next connection the client opens.
    func nextConnection() async throws -> FakeConnection {
        try await opened.take(what: "a connection")
    }

    var connectCount: Int { requests.count }
}

/// One fake WebSocket connection.
final class FakeConnection: TransportConnection, @unchecked Sendable {
    // @unchecked: `request` is immutable, the rest is behind `lock` or Sendable.
    let request: URLRequest
    let incoming: AsyncThrowingStream<TransportEvent, any Error>
    private let continuation: AsyncThrowingStream<TransportEvent, any Error>.Continuation
    private let sent = AsyncQueue<String>()
    private let lock = NSLock()
    private var closedByClient: (code: Int, reason: String)?
    private var holding = false

    init(request: URLRequest) {
        self.request = request
        let (stream, continuation) = AsyncThrowingStream<TransportEvent, any Error>.makeStream()
        self.incoming = stream
        self.continuation = continuation
    }

    var authorization: String? { request.value(forHTTPHeaderField: "Authorization") }

    // Client side (called by RealtimeClient).

    /// Records the frame, unless the client closed the connection already: then it fails, as
    /// on a real socket. While `holdSends()` is in effect it waits for `releaseSends()` or the
    /// close.
    func send(_ text: String) async throws {
        while isHolding && closeByClient == nil {
            try await Task.sleep(for: .milliseconds(2))
        }
        guard closeByClient == nil else { throw URLError(.networkConnectionLost) }
        await sent.put(text)
    }

    func close(code: Int, reason: String) {
        lock.lock()
        if closedByClient == nil { closedByClient = (code, reason) }
        lock.unlock()
        continuation.yield(.closed(code: code, reason: reason))
        continuation.finish()
    }

    // Server side (called by tests).

    func serverSends(_ frame: ServerFrame) throws {
        let data = try WireJSON.encode(frame)
        continuation.yield(.text(String(decoding: data, as: UTF8.self)))
    }

    func serverSendsRaw(_ text: String) {
        continuation.yield(.text(text))
    }

    func serverCloses(code: Int, reason: String = "") {
        continuation.yield(.closed(code: code, reason: reason))
        continuation.finish()
    }

    func networkFails() {
        continuation.finish(throwing: URLError(.networkConnectionLost))
    }

    /// From now on no send completes (a slow or stalled network) until `releaseSends()`.
    func holdSends() {
        lock.lock()
        holding = true
        lock.unlock()
    }

    func releaseSends() {
        lock.lock()
        holding = false
        lock.unlock()
    }

    private var isHolding: Bool {
        lock.lock()
        defer { lock.unlock() }
        return holding
    }

    /// The next frame the client sent on this connection.
    func nextSent() async throws -> ClientFrame {
        let text = try await sent.take(what: "a client frame")
        return try WireJSON.decode(ClientFrame.self, from: Data(text.utf8))
    }

    /// Frames sent and not yet taken by `nextSent`.
    func unreadSent() async throws -> [ClientFrame] {
        let texts = await sent.buffered
        return try texts.map { try WireJSON.decode(ClientFrame.self, from: Data($0.utf8)) }
    }

    var closeByClient: (code: Int, reason: String)? {
        lock.lock()
        defer { lock.unlock() }
        return closedByClient
    }
}

// MARK: - Fake token provider

actor FakeTokens: AccessTokenProvider {
    private(set) var current = "token-1"
    private(set) var rejected: [String] = []
    /// When set, refreshing throws it (`.sessionExpired`: the refresh token is dead).
    var refreshError: ChatError?

    func failRefreshes(with error: ChatError?) {
        refreshError = error
    }

    func accessToken() throws -> String {
        current
    }

    func accessTokenAfterRejection(of token: String) throws -> String {
        rejected.append(token)
        if let refreshError { throw refreshError }
        if token == current {
            current = "token-\(rejected.count + 1)"
        }
        return current
    }
}

// MARK: - Controllable time

/// Replaces `Task.sleep` in the code under test. `.immediate` returns at once (recording the
/// duration); `.manual` suspends each sleep until the test releases it. Both honour cancellation.
actor TestSleeper {
    enum Mode { case immediate, manual }

    private let mode: Mode
    /// Every sleep started, in order.
    private(set) var requested: [Duration] = []
    private var reported = 0
    private var sleeping: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    private var cancelledBeforeSleeping: Set<Int> = []
    private var nextID = 0

    init(mode: Mode) {
        self.mode = mode
    }

    nonisolated var function: @Sendable (Duration) async throws -> Void {
        { duration in try await self.sleep(duration) }
    }

    func sleep(_ duration: Duration) async throws {
        switch mode {
        case .immediate:
            requested.append(duration)
            await Task.yield()
            try Task.checkCancellation()
        case .manual:
            nextID += 1
            let id = nextID
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    // Recorded together, so a sleep reported by `nextRequest` can be released.
                    requested.append(duration)
                    if cancelledBeforeSleeping.remove(id) != nil {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        sleeping.append((id, continuation))
                    }
                }
            } onCancel: {
                Task { await self.cancel(id) }
            }
        }
    }

    /// The duration of the next sleep started (in order of starting), waiting for it if needed.
    func nextRequest(timeout: Duration = .seconds(5)) async throws -> Duration {
        let deadline = ContinuousClock.now + timeout
        while requested.count <= reported {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: "a sleep") }
            try await Task.sleep(for: .milliseconds(2))
        }
        reported += 1
        return requested[reported - 1]
    }

    /// Waits until exactly `count` sleeps are ongoing (manual mode): a cancelled sleep is
    /// withdrawn by a task of its own, some time after the cancellation.
    func waitUntilSleeping(_ count: Int, timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        while sleeping.count != count {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: "\(count) ongoing sleeps") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Ends the oldest ongoing sleep (manual mode).
    func releaseOldest() {
        guard !sleeping.isEmpty else { return }
        sleeping.removeFirst().continuation.resume()
    }

    private func cancel(_ id: Int) {
        if let index = sleeping.firstIndex(where: { $0.id == id }) {
            sleeping.remove(at: index).continuation.resume(throwing: CancellationError())
        } else {
            cancelledBeforeSleeping.insert(id)
        }
    }
}

// MARK: - Network path

/// Plays `NWPathMonitor`: the test reports availability changes.
final class FakeNetwork: NetworkPathMonitor, @unchecked Sendable {
    private let lock = NSLock()
    private var continuations: [AsyncStream<Bool>.Continuation] = []

    func availabilityChanges() -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream<Bool>.makeStream()
        lock.lock()
        continuations.append(continuation)
        lock.unlock()
        return stream
    }

    func report(available: Bool) {
        lock.lock()
        let all = continuations
        lock.unlock()
        for continuation in all {
            continuation.yield(available)
        }
    }
}

// MARK: - Scripted HTTP

/// An HTTP stack answering from a closure, recording every request.
actor ScriptedHTTP: HTTPClient {
    typealias Handler = @Sendable (HTTPRequest, _ index: Int) throws -> HTTPResponse
    private let handler: Handler
    private(set) var requests: [HTTPRequest] = []

    init(_ handler: @escaping Handler) {
        self.handler = handler
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.append(request)
        return try handler(request, requests.count - 1)
    }
}

extension HTTPResponse {
    static func json(_ status: Int, _ body: Data) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["content-type": "application/json"], body: body)
    }

    static func json<T: Encodable>(_ status: Int, encoding value: T) throws -> HTTPResponse {
        .json(status, try WireJSON.encode(value))
    }
}

extension HTTPRequest {
    /// The path and query, e.g. `/api/v1/channels?x=y`.
    var target: String {
        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        let query = components?.percentEncodedQuery.map { "?" + $0 } ?? ""
        return (components?.percentEncodedPath ?? "") + query
    }
}
