import Foundation

/// A refusal from the server: the HTTP status and the contract's `{"error": {code, message}}`.
public struct ServerError: Error, Sendable, Hashable {
    public var status: Int
    /// Stable snake_case code a program can switch on. When the body was not the contract's
    /// error body (a proxy's error page, say), `http_<status>`.
    public var code: String
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// Every error ChatKit's clients throw, apart from `CancellationError`.
public enum ChatError: Error, Sendable, Hashable {
    /// The server answered with a 4xx or 5xx.
    case server(ServerError)
    /// The request did not get an answer: offline, timed out, refused, TLS failure...
    case network(String)
    /// The server answered, but not with what the contract promises.
    case invalidResponse(String)
    /// The configured server URL cannot address the API.
    case invalidServerURL(String)
    /// An authenticated call was made while nobody is signed in.
    case notSignedIn
    /// The refresh token was refused: the user has to sign in again.
    case sessionExpired
    /// A file that cannot be attached, and why: its type is not one the server takes
    /// (`AttachmentContentType`), or it could not be read.
    case fileNotAttachable(name: String, reason: String)

    /// Whether the server said 401 (bad credentials, or a token it refuses).
    public var isUnauthorized: Bool {
        if case .server(let error) = self { return error.status == 401 }
        return false
    }

    /// Whether nobody is signed in any more (so retrying cannot help).
    public var meansSignedOut: Bool {
        self == .sessionExpired || self == .notSignedIn
    }

    /// The contract's error code, when the server sent one.
    public var serverCode: String? {
        if case .server(let error) = self { return error.code }
        return nil
    }
}

extension ChatError: LocalizedError {
    public var errorDescription: String? {
        switch self {
        case .server(let error):
            error.message
        case .network(let detail):
            "The server could not be reached (\(detail))."
        case .invalidResponse(let detail):
            "The server sent an unexpected response (\(detail))."
        case .invalidServerURL(let url):
            "\(url) is not a usable server address."
        case .notSignedIn:
            "You are not signed in."
        case .sessionExpired:
            "Your session has expired. Please sign in again."
        case let .fileNotAttachable(name, reason):
            "\(name) cannot be attached: \(reason)."
        }
    }
}
