import Foundation
import Observation
import ChatKit

/// The app's top level: which server, whether someone is signed in, and their session.
@MainActor @Observable
public final class AppModel {
    public enum Phase {
        /// Looking for credentials kept from the last launch.
        case restoring
        case signedOut
        case signedIn(ChatSession)
    }

    public private(set) var phase: Phase = .restoring
    public let settings: ServerSettings
    /// Something to tell the user on the sign-in screen (an expired session, say).
    public var notice: String?

    @ObservationIgnored private var tokens: TokenManager
    @ObservationIgnored private let environment: ChatEnvironment

    /// - Parameter environment: where sessions are kept and how the network is reached; the
    ///   defaults are the device's (Keychain, URLSession, NWPathMonitor). Tests pass fakes.
    public init(settings: ServerSettings = ServerSettings(), environment: ChatEnvironment = .live) {
        self.settings = settings
        self.environment = environment
        self.tokens = Self.makeTokenManager(for: settings.endpoint, environment: environment)
    }

    public var session: ChatSession? {
        if case .signedIn(let session) = phase { return session }
        return nil
    }

    /// Restores the previous session, if there is one. Runs once, at launch or after the
    /// server changed.
    public func restore() async {
        guard case .restoring = phase else { return }
        do {
            if let user = try await tokens.restore() {
                startSession(for: user)
            } else {
                phase = .signedOut
            }
        } catch {
            notice = error.localizedDescription
            phase = .signedOut
        }
    }

    public func signIn(username: String, password: String) async throws {
        let user = try await tokens.signIn(username: username, password: password)
        notice = nil
        startSession(for: user)
    }

    public func register(username: String, password: String, displayName: String?) async throws {
        let user = try await tokens.register(username: username, password: password, displayName: displayName)
        notice = nil
        startSession(for: user)
    }

    public func signOut() async {
        await session?.shutdown()
        await tokens.signOut()
        phase = .signedOut
    }

    /// Switches servers. Credentials are kept per server, so switching back restores the
    /// session that was there.
    public func changeServer(to endpoint: ServerEndpoint) async {
        guard endpoint != settings.endpoint else { return }
        await session?.shutdown()
        settings.update(to: endpoint)
        tokens = Self.makeTokenManager(for: endpoint, environment: environment)
        phase = .restoring
        await restore()
    }

    public func appBecameActive() {
        session?.becameActive()
    }

    public func appEnteredBackground() {
        session?.enteredBackground()
    }

    private func startSession(for user: User) {
        let session = ChatSession(user: user, endpoint: settings.endpoint, tokens: tokens, environment: environment) { [weak self] in
            self?.sessionExpired()
        }
        phase = .signedIn(session)
        session.start()
    }

    /// The refresh token was refused: back to the sign-in screen, with a word why.
    private func sessionExpired() {
        guard let session else { return }
        phase = .signedOut
        notice = "Your session has expired. Please sign in again."
        Task { await session.shutdown() }
    }

    private static func makeTokenManager(for endpoint: ServerEndpoint, environment: ChatEnvironment) -> TokenManager {
        TokenManager(api: APIClient(server: endpoint, http: environment.http), store: environment.tokenStore(endpoint))
    }
}
