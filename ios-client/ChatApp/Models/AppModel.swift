import Foundation
import Observation
import ChatKit

/// The app's top level: which server, whether someone is signed in, and their session.
@MainActor @Observable
final class AppModel {
    enum Phase {
        /// Looking for credentials kept from the last launch.
        case restoring
        case signedOut
        case signedIn(ChatSession)
    }

    private(set) var phase: Phase = .restoring
    let settings: ServerSettings
    /// Something to tell the user on the sign-in screen (an expired session, say).
    var notice: String?

    @ObservationIgnored private var tokens: TokenManager

    init(settings: ServerSettings = ServerSettings()) {
        self.settings = settings
        self.tokens = Self.makeTokenManager(for: settings.endpoint)
    }

    var session: ChatSession? {
        if case .signedIn(let session) = phase { return session }
        return nil
    }

    /// Restores the previous session, if there is one. Runs once, at launch or after the
    /// server changed.
    func restore() async {
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

    func signIn(username: String, password: String) async throws {
        let user = try await tokens.signIn(username: username, password: password)
        notice = nil
        startSession(for: user)
    }

    func register(username: String, password: String, displayName: String?) async throws {
        let user = try await tokens.register(username: username, password: password, displayName: displayName)
        notice = nil
        startSession(for: user)
    }

    func signOut() async {
        await session?.shutdown()
        await tokens.signOut()
        phase = .signedOut
    }

    /// Switches servers. Credentials are kept per server, so switching back restores the
    /// session that was there.
    func changeServer(to endpoint: ServerEndpoint) async {
        guard endpoint != settings.endpoint else { return }
        await session?.shutdown()
        settings.update(to: endpoint)
        tokens = Self.makeTokenManager(for: endpoint)
        phase = .restoring
        await restore()
    }

    func appBecameActive() {
        session?.becameActive()
    }

    func appEnteredBackground() {
        session?.enteredBackground()
    }

    private func startSession(for user: User) {
        let session = ChatSession(user: user, endpoint: settings.endpoint, tokens: tokens) { [weak self] in
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

    private static func makeTokenManager(for endpoint: ServerEndpoint) -> TokenManager {
        let store = KeychainTokenStore(
            service: (Bundle.main.bundleIdentifier ?? "ChatApp") + ".session",
            account: endpoint.baseURL.absoluteString
        )
        return TokenManager(api: APIClient(server: endpoint), store: store)
    }
}
