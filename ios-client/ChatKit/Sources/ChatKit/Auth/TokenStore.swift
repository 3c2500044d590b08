import Foundation

/// What is kept between launches to stay signed in.
public struct Credentials: Codable, Sendable, Hashable {
    public var user: User
    public var accessToken: String
    public var refreshToken: String
    /// When the server will stop accepting `accessToken`.
    public var accessTokenExpiresAt: Date
    /// From when on the access token is refreshed before use: a little before it expires, so
    /// that a request never leaves with a token that dies on the way.
    public var refreshAfter: Date

    public init(user: User, accessToken: String, refreshToken: String, accessTokenExpiresAt: Date, refreshAfter: Date) {
        self.user = user
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.accessTokenExpiresAt = accessTokenExpiresAt
        self.refreshAfter = refreshAfter
    }

    /// Credentials from a `Session` received at `receivedAt`. The token is refreshed once 80%
    /// of its lifetime has passed, and at the latest 60 seconds before it expires.
    public init(session: Session, receivedAt: Date) {
        let lifetime = TimeInterval(max(session.expiresIn, 0))
        let margin = min(60, lifetime * 0.2)
        self.init(
            user: session.user,
            accessToken: session.accessToken,
            refreshToken: session.refreshToken,
            accessTokenExpiresAt: receivedAt.addingTimeInterval(lifetime),
            refreshAfter: receivedAt.addingTimeInterval(lifetime - margin)
        )
    }

    enum CodingKeys: String, CodingKey {
        case user
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        case accessTokenExpiresAt = "access_token_expires_at"
        case refreshAfter = "refresh_after"
    }
}

/// Where credentials are kept. The app uses `KeychainTokenStore`; tests use `InMemoryTokenStore`.
public protocol TokenStore: Sendable {
    func load() async throws -> Credentials?
    func save(_ credentials: Credentials) async throws
    func clear() async throws
}

/// A `TokenStore` that forgets everything when the process ends.
public actor InMemoryTokenStore: TokenStore {
    private var credentials: Credentials?
    /// How many times `save` was called; lets tests check that rotated tokens are persisted.
    public private(set) var saveCount = 0

    public init(_ credentials: Credentials? = nil) {
        self.credentials = credentials
    }

    public func load() -> Credentials? {
        credentials
    }

    public func save(_ credentials: Credentials) {
        self.credentials = credentials
        saveCount += 1
    }

    public func clear() {
        credentials = nil
    }
}
