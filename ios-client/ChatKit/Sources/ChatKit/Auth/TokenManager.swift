import Foundation

/// Owns the signed-in user's tokens: signs in and out, persists credentials, and hands out
/// access tokens, refreshing them shortly before they expire and after the server refused one.
///
/// Refreshing is single-flight: refresh tokens are rotated on every use and a reused one is
/// refused, so two concurrent refreshes with the same token would sign the user out.
public actor TokenManager: AccessTokenProvider {
    /// The unauthenticated API client used for the auth endpoints.
    public nonisolated let api: APIClient
    private let store: any TokenStore
    private let now: @Sendable () -> Date
    private var credentials: Credentials?
    private var refreshTask: Task<Credentials, any Error>?
    /// Tells a finishing refresh whether `refreshTask` is still its own.
    private var refreshGeneration = 0

    public init(api: APIClient, store: any TokenStore, now: @escaping @Sendable () -> Date = { Date() }) {
        self.api = api
        self.store = store
        self.now = now
    }

    /// The signed-in user, if any.
    public var currentUser: User? { credentials?.user }

    public var isSignedIn: Bool { credentials != nil }

    /// Loads the credentials kept from an earlier launch. Returns the user they belong to, or
    /// `nil` when nobody is signed in.
    @discardableResult
    public func restore() async throws -> User? {
        if let credentials { return credentials.user }
        credentials = try await store.load()
        return credentials?.user
    }

    public func signIn(username: String, password: String) async throws -> User {
        let session = try await api.login(username: username, password: password)
        try await adopt(session)
        return session.user
    }

    public func register(username: String, password: String, displayName: String?) async throws -> User {
        let session = try await api.register(username: username, password: password, displayName: displayName)
        try await adopt(session)
        return session.user
    }

    /// Makes `session` the current one and persists it.
    public func adopt(_ session: Session) async throws {
        let fresh = Credentials(session: session, receivedAt: now())
        credentials = fresh
        try await store.save(fresh)
    }

    /// Forgets the credentials locally, then revokes the refresh token on the server. The local
    /// part always happens; the server call is best effort (the device may be offline).
    public func signOut() async {
        let refreshToken = credentials?.refreshToken
        credentials = nil
        refreshTask?.cancel()
        refreshTask = nil
        try? await store.clear()
        if let refreshToken {
            try? await api.logout(refreshToken: refreshToken)
        }
    }

    // MARK: - AccessTokenProvider

    public func accessToken() async throws -> String {
        guard let current = credentials else { throw ChatError.notSignedIn }
        if now() < current.refreshAfter {
            return current.accessToken
        }
        return try await refreshed(replacing: current).accessToken
    }

    public func accessTokenAfterRejection(of rejected: String) async throws -> String {
        guard let current = credentials else { throw ChatError.notSignedIn }
        if current.accessToken != rejected {
            // Someone refreshed while the rejected request was in flight.
            return current.accessToken
        }
        return try await refreshed(replacing: current).accessToken
    }

    /// Refreshes now, whatever the expiry says.
    @discardableResult
    public func refresh() async throws -> String {
        guard let current = credentials else { throw ChatError.notSignedIn }
        return try await refreshed(replacing: current).accessToken
    }

    // MARK: - Refreshing

    private func refreshed(replacing stale: Credentials) async throws -> Credentials {
        if let inFlight = refreshTask {
            return try await inFlight.value
        }
        refreshGeneration += 1
        let generation = refreshGeneration
        let task = Task { try await self.performRefresh(replacing: stale, generation: generation) }
        refreshTask = task
        return try await task.value
    }

    private func performRefresh(replacing stale: Credentials, generation: Int) async throws -> Credentials {
        defer {
            if refreshGeneration == generation {
                refreshTask = nil
            }
        }
        let session: Session
        do {
            session = try await api.refresh(refreshToken: stale.refreshToken)
        } catch let error as ChatError where error.isUnauthorized {
            // The refresh token is expired, revoked or already used: only signing in helps.
            if credentials?.refreshToken == stale.refreshToken {
                credentials = nil
                try? await store.clear()
            }
            throw ChatError.sessionExpired
        }
        guard credentials?.refreshToken == stale.refreshToken else {
            // Signed out (or in as someone else) while the refresh was in flight.
            throw ChatError.notSignedIn
        }
        let fresh = Credentials(session: session, receivedAt: now())
        credentials = fresh
        // Keeping the rotated token matters: the old one is dead. If the store fails, the
        // session still works until the app quits.
        try? await store.save(fresh)
        return fresh
    }
}
