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

/// What `APIClient` needs from an HTTP stack. Tests substitute a scripted one.
public protocol HTTPClient: Sendable {
    /// Sends the request and returns whatever status the server answered with; throws only when
    /// there is no answer (or on cancellation).
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

/// `HTTPClient` over `URLSession`.
///
/// `@unchecked Sendable`: its only state is a `URLSession`, which is thread-safe but not declared
/// `Sendable` by every Foundation (swift-corelibs-foundation on Linux).
public final class URLSessionHTTPClient: HTTPClient, @unchecked Sendable {
    private let session: URLSession
    private let timeout: TimeInterval

    public init(session: URLSession, timeout: TimeInterval = 30) {
        self.session = session
        self.timeout = timeout
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
        var urlRequest = URLRequest(url: request.url, timeoutInterval: timeout)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers {
            urlRequest.setValue(value, forHTTPHeaderField: name)
        }
        urlRequest.httpBody = request.body
        return try await perform(urlRequest)
    }

    #if canImport(FoundationNetworking)
    // swift-corelibs-foundation: build on the completion-handler API, which every version has.
    private func perform(_ request: URLRequest) async throws -> HTTPResponse {
        let handle = DataTaskHandle()
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

    private static func response(_ http: HTTPURLResponse, _ data: Data) -> HTTPResponse {
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String {
                headers[name.lowercased()] = value
            }
        }
        return HTTPResponse(status: http.statusCode, headers: headers, body: data)
    }
}

#if canImport(FoundationNetworking)
/// Lets the cancellation handler reach a data task that may not have been created yet.
private final class DataTaskHandle: @unchecked Sendable {
    private let lock = NSLock()
    private var task: URLSessionDataTask?
    private var cancelled = false

    func start(_ task: URLSessionDataTask) {
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
#endif
