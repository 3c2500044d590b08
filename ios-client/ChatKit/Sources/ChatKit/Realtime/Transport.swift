import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What arrives on a WebSocket connection.
public enum TransportEvent: Sendable, Hashable {
    /// A text frame.
    case text(String)
    /// The connection is closed, by the server (its close frame's code) or by the client
    /// (`close(code:reason:)`'s code). Nothing follows.
    case closed(code: Int, reason: String)
}

public enum TransportError: Error, Sendable, Hashable {
    /// The server answered the upgrade request with this HTTP status (401: bad token).
    case handshakeRejected(status: Int)
}

/// Opens WebSocket connections. `URLSessionTransport` is the real one; tests use a fake.
public protocol Transport: Sendable {
    /// Starts opening a connection. It may return before the handshake completes: a failed
    /// handshake then ends `incoming` by throwing.
    func connect(_ request: URLRequest) async throws -> any TransportConnection
}

/// One WebSocket connection.
public protocol TransportConnection: AnyObject, Sendable {
    /// Frames in arrival order. Ends after `.closed`, or by throwing when the connection fails
    /// without a close frame (network loss, refused handshake).
    var incoming: AsyncThrowingStream<TransportEvent, any Error> { get }
    /// Sends a text frame.
    func send(_ text: String) async throws
    /// Closes the connection. `incoming` ends with `.closed(code, reason)` right away.
    func close(code: Int, reason: String)
}

/// `Transport` over `URLSessionWebSocketTask`, one `URLSession` per connection (its delegate
/// reports the close code, which `receive()`'s error alone does not carry reliably).
public struct URLSessionTransport: Transport {
    private let makeConfiguration: @Sendable () -> URLSessionConfiguration

    public init(configuration: @escaping @Sendable () -> URLSessionConfiguration = { .default }) {
        self.makeConfiguration = configuration
    }

    public func connect(_ request: URLRequest) async throws -> any TransportConnection {
        URLSessionWebSocketConnection(request: request, configuration: makeConfiguration())
    }
}

/// `@unchecked Sendable`: it holds only `let`s; `URLSession` and `URLSessionWebSocketTask` are
/// thread-safe but not declared `Sendable` on every platform, and the stream continuation is.
///
/// Only the async `send`/`receive` of `URLSessionWebSocketTask` are used: they are the ones that
/// exist in both Apple's Foundation and swift-corelibs-foundation (Linux), so the code path is
/// the same on the iPhone and in the Linux test suite.
final class URLSessionWebSocketConnection: TransportConnection, @unchecked Sendable {
    let incoming: AsyncThrowingStream<TransportEvent, any Error>
    private let continuation: AsyncThrowingStream<TransportEvent, any Error>.Continuation
    private let session: URLSession
    private let task: URLSessionWebSocketTask
    private let reader: Task<Void, Never>

    init(request: URLRequest, configuration: URLSessionConfiguration) {
        let (stream, continuation) = AsyncThrowingStream<TransportEvent, any Error>.makeStream()
        self.incoming = stream
        self.continuation = continuation
        let delegate = SocketDelegate(continuation: continuation)
        // The session retains its delegate until it is invalidated, which `close` and the
        // delegate's completion callback both do.
        self.session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        let task = session.webSocketTask(with: request)
        self.task = task
        task.resume()
        self.reader = Task { [task, continuation] in
            await Self.read(task, into: continuation)
        }
    }

    deinit {
        reader.cancel()
    }

    func send(_ text: String) async throws {
        try await task.send(.string(text))
    }

    func close(code: Int, reason: String) {
        let closeCode = URLSessionWebSocketTask.CloseCode(rawValue: code) ?? .normalClosure
        task.cancel(with: closeCode, reason: reason.data(using: .utf8))
        continuation.yield(.closed(code: code, reason: reason))
        continuation.finish()
        reader.cancel()
        session.finishTasksAndInvalidate()
    }

    /// Receives until the task fails; the delegate's callbacks then say how the connection ended
    /// (close code, HTTP status), so a receive error itself ends nothing here.
    private static func read(
        _ task: URLSessionWebSocketTask,
        into continuation: AsyncThrowingStream<TransportEvent, any Error>.Continuation
    ) async {
        while !Task.isCancelled {
            let message: URLSessionWebSocketTask.Message
            do {
                message = try await task.receive()
            } catch {
                return
            }
            switch message {
            case .string(let text):
                continuation.yield(.text(text))
            case .data(let data):
                // The protocol uses text frames only; accept UTF-8 binary ones rather than fail.
                if let text = String(data: data, encoding: .utf8) {
                    continuation.yield(.text(text))
                }
            @unknown default:
                break
            }
        }
    }
}

/// Turns the session's callbacks into the end of `incoming`. Yielding after `finish` is a no-op,
/// so whichever callback comes first decides.
private final class SocketDelegate: NSObject, URLSessionWebSocketDelegate, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<TransportEvent, any Error>.Continuation

    init(continuation: AsyncThrowingStream<TransportEvent, any Error>.Continuation) {
        self.continuation = continuation
    }

    // Required by swift-corelibs-foundation's protocol (Apple's has a default); nothing to do:
    // the server's `ready` frame is what says the connection is usable.
    func urlSession(
        _ session: URLSession,
        webSocketTask: URLSessionWebSocketTask,
        didOpenWithProtocol protocol: String?
    ) {}

    func urlSession(
        _ session: URLSession,
        webSocketTask: URLSessionWebSocketTask,
        didCloseWith closeCode: URLSessionWebSocketTask.CloseCode,
        reason: Data?
    ) {
        continuation.yield(.closed(code: closeCode.rawValue, reason: Self.text(reason)))
        continuation.finish()
        session.finishTasksAndInvalidate()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        defer { session.finishTasksAndInvalidate() }
        if let socket = task as? URLSessionWebSocketTask, socket.closeCode != .invalid {
            continuation.yield(.closed(code: socket.closeCode.rawValue, reason: Self.text(socket.closeReason)))
            continuation.finish()
        } else if let response = task.response as? HTTPURLResponse, response.statusCode >= 400 {
            continuation.finish(throwing: TransportError.handshakeRejected(status: response.statusCode))
        } else if let error {
            continuation.finish(throwing: error)
        } else {
            // Ended without a close frame and without an error: RFC 6455's "abnormal closure".
            continuation.yield(.closed(code: 1006, reason: ""))
            continuation.finish()
        }
    }

    private static func text(_ data: Data?) -> String {
        data.flatMap { String(data: $0, encoding: .utf8) } ?? ""
    }
}
