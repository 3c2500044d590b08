import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP request, as plain values so that it crosses concurrency domains freely.
public struct HTTPRequest: Sendable, Hashable {
    public var method: String
    public var url: URL
    public var headers: [String: String]
    public var body: Data?

    public init(method: String, url: URL, headers: [String: String] = [:], body: Data? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// One HTTP response. Header names are lowercased.
public struct HTTPResponse: Sendable, Hashable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// How much of a request's body has left so far: real byte counts, as the HTTP stack reports
/// them (`URLSessionTaskDelegate`'s `didSendBodyData`).
public struct TransferProgress: Sendable, Hashable {
    public var sentBytes: Int64
    public var totalBytes: Int64

    public init(sentBytes: Int64, totalBytes: Int64) {
        self.sentBytes = sentBytes
        self.totalBytes = totalBytes
    }

    /// 0 to 1 (0 while the size is unknown).
    public var fractionCompleted: Double {
        guard totalBytes > 0 else { return 0 }
        return min(1, max(0, Double(sentBytes) / Double(totalBytes)))
    }
}

/// Called as a request's body leaves, on whatever thread the HTTP stack reports from.
public typealias TransferProgressHandler = @Sendable (TransferProgress) -> Void

/// What `APIClient` needs from an HTTP stack. Tests substitute a scripted one.
public protocol HTTPClient: Sendable {
    /// Sends the request and returns whatever status the server answered with; throws only when
    /// there is no answer (or on cancellation).
    func send(_ request: HTTPRequest) async throws -> HTTPResponse

    /// `send`, reporting the body's bytes as they are sent (an attachment's PUT). Cancelling the
    /// calling task stops the transfer.
    func upload(_ request: HTTPRequest, progress: @escaping TransferProgressHandler) async throws -> HTTPResponse
}

extension HTTPClient {
    /// For a stack that cannot watch its bytes leave: nothing sent, then everything once the
    /// server has answered.
    public func upload(_ request: HTTPRequest, progress: @escaping TransferProgressHandler) async throws -> HTTPResponse {
        let total = Int64(request.body?.count ?? 0)
        progress(TransferProgress(sentBytes: 0, totalBytes: total))
        let response = try await send(request)
        progress(TransferProgress(sentBytes: total, totalBytes: total))
        return response
    }
}

/// `HTTPClient` over `URLSession`.
///
/// `@unchecked Sendable`: its only state is a `URLSession`, which is thread-safe but not declared
/// `Sendable` by every Foundation (swift-corelibs-foundation on Linux).
public final class URLSessionHTTPClient: HTTPClient, @unchecked Sendable {
    private let session: URLSession
    private let timeout: TimeInterval
    /// Uploads go through a session of their own whose delegate hears each task's bytes leave
    /// (a session-wide delegate: what both Apple's Foundation and swift-corelibs-foundation
    /// report `didSendBodyData` to).
    private let uploadSession: URLSession
    private let uploadDelegate: UploadDelegate

    public init(session: URLSession, timeout: TimeInterval = 30) {
        self.session = session
        self.timeout = timeout
        let delegate = UploadDelegate()
        self.uploadDelegate = delegate
        self.uploadSession = URLSession(configuration: session.configuration, delegate: delegate, delegateQueue: nil)
    }

    deinit {
        // A session keeps its delegate until invalidated.
        uploadSession.finishTasksAndInvalidate()
    }

    public convenience init(timeout: TimeInterval = 30) {
        let configuration = URLSessionConfiguration.default
        #if !canImport(FoundationNetworking)
        // Fail at once when offline instead of waiting; Linux's Foundation has no such setting
        // (and never waits).
        configuration.waitsForConnectivity = false
        #endif
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        self.init(session: URLSession(configuration: configuration), timeout: timeout)
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        var urlRequest = urlRequest(for: request)
        urlRequest.httpBody = request.body
        return try await perform(urlRequest)
    }

    /// An upload task on the delegate's session: `progress` hears every `didSendBodyData`, and
    /// cancelling the calling task cancels the URLSession task.
    public func upload(_ request: HTTPRequest, progress: @escaping TransferProgressHandler) async throws -> HTTPResponse {
        let urlRequest = urlRequest(for: request)
        let body = request.body ?? Data()
        let total = Int64(body.count)
        let handle = TaskHandle()
        let delegate = uploadDelegate
        let session = uploadSession
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                let task = session.uploadTask(with: urlRequest, from: body)
                delegate.register(task, continuation: continuation) { sent in
                    progress(TransferProgress(sentBytes: min(sent, total), totalBytes: total))
                }
                handle.start(task)
            }
        } onCancel: {
            handle.cancel()
        }
    }

    private func urlRequest(for request: HTTPRequest) -> URLRequest {
        var urlRequest = URLRequest(url: request.url, timeoutInterval: timeout)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers {
            urlRequest.setValue(value, forHTTPHeaderField: name)
        }
        return urlRequest
    }

    #if canImport(FoundationNetworking)
    // swift-corelibs-foundation: build on the completion-handler API, which every version has.
    private func perform(_ request: URLRequest) async throws -> HTTPResponse {
        let handle = TaskHandle()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                let task = session.dataTask(with: request) { data, response, error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let http = response as? HTTPURLResponse {
                        continuation.resume(returning: Self.response(http, data ?? Data()))
                    } else {
                        continuation.resume(throwing: URLError(.badServerResponse))
                    }
                }
                handle.start(task)
            }
        } onCancel: {
            handle.cancel()
        }
    }
    #else
    private func perform(_ request: URLRequest) async throws -> HTTPResponse {
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else {
            throw URLError(.badServerResponse)
        }
        return Self.response(http, data)
    }
    #endif

    fileprivate static func response(_ http: HTTPURLResponse, _ data: Data) -> HTTPResponse {
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String {
                headers[name.lowercased()] = value
            }
        }
        return HTTPResponse(status: http.statusCode, headers: headers, body: data)
    }
}

/// Lets the cancellation handler reach a task that may not have been created yet.
private final class TaskHandle: @unchecked Sendable {
    private let lock = NSLock()
    private var task: URLSessionTask?
    private var cancelled = false

    func start(_ task: URLSessionTask) {
        lock.lock()
        self.task = task
        let cancelled = self.cancelled
        lock.unlock()
        if cancelled {
            task.cancel()
        } else {
            task.resume()
        }
    }

    func cancel() {
        lock.lock()
        cancelled = true
        let task = self.task
        lock.unlock()
        task?.cancel()
    }
}

/// The upload session's delegate: per task (by `taskIdentifier`), its progress handler, the
/// answer's bytes, and the continuation its caller waits on.
///
/// `@unchecked Sendable`: URLSession calls it on its delegate queue; its state is behind `lock`.
private final class UploadDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private struct Transfer {
        let progress: @Sendable (Int64) -> Void
        let continuation: CheckedContinuation<HTTPResponse, any Error>
        var body = Data()
    }

    private let lock = NSLock()
    private var transfers: [Int: Transfer] = [:]

    /// Before the task is resumed.
    func register(
        _ task: URLSessionTask,
        continuation: CheckedContinuation<HTTPResponse, any Error>,
        progress: @escaping @Sendable (Int64) -> Void
    ) {
        lock.lock()
        transfers[task.taskIdentifier] = Transfer(progress: progress, continuation: continuation)
        lock.unlock()
    }

    func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        didSendBodyData bytesSent: Int64,
        totalBytesSent: Int64,
        totalBytesExpectedToSend: Int64
    ) {
        lock.lock()
        let progress = transfers[task.taskIdentifier]?.progress
        lock.unlock()
        progress?(totalBytesSent)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        transfers[dataTask.taskIdentifier]?.body.append(data)
        lock.unlock()
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        lock.lock()
        let transfer = transfers.removeValue(forKey: task.taskIdentifier)
        lock.unlock()
        guard let transfer else { return }
        if let error {
            transfer.continuation.resume(throwing: error)
        } else if let http = task.response as? HTTPURLResponse {
            transfer.continuation.resume(returning: URLSessionHTTPClient.response(http, transfer.body))
        } else {
            transfer.continuation.resume(throwing: URLError(.badServerResponse))
        }
    }
}
