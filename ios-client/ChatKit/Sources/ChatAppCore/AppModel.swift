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
    /// Keeps this device's push token registered for the signed-in user.
    public let push: PushRegistration
    /// The conversation a tapped notification named, until the conversation list opens it
    /// (`takeRequestedConversation()`).
    public private(set) var requestedConversation: String?

    @ObservationIgnored private var tokens: TokenManager
    /// The app is in the background (`appEnteredBackground`, until `appBecameActive`): a
    /// session starting then (a sign-in or restore that ended after the user left) says so.
    @ObservationIgnored private var isInBackground = false
    @ObservationIgnored private let environment: ChatEnvironment

    /// - Parameters:
    ///   - environment: where sessions are kept and how the network is reached; the defaults
    ///     are the device's (Keychain, URLSession, NWPathMonitor). Tests pass fakes.
    ///   - push: the device's push registration; by default this build's (`PushConfiguration.live`).
    public init(settings: ServerSettings = ServerSettings(), environment: ChatEnvironment = .live, push: PushRegistration? = nil) {
        self.settings = settings
        self.environment = environment
        self.push = push ?? PushRegistration()
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

    /// Unregisters the device for push first, while the session's tokens still authenticate
    /// the call; then forgets the tokens.
    public func signOut() async {
        await push.sessionEnding()
        await session?.shutdown()
        await tokens.signOut()
        requestedConversation = nil
        phase = .signedOut
    }

    /// Switches servers. Credentials are kept per server, so switching back restores the
    /// session that was there.
    public func changeServer(to endpoint: ServerEndpoint) async {
        guard endpoint != settings.endpoint else { return }
        // Only the server on screen notifies: a tapped notification opens one of its
        // conversations. Switching back registers the device there again.
        await push.sessionEnding()
        await session?.shutdown()
        requestedConversation = nil
        settings.update(to: endpoint)
        tokens = Self.makeTokenManager(for: endpoint, environment: environment)
        phase = .restoring
        await restore()
    }

    public func appBecameActive() {
        isInBackground = false
        session?.becameActive()
        push.appBecameActive()
    }

    // MARK: - Notifications

    /// A notification was tapped: its conversation (`channel_id` in the payload) opens once
    /// someone is signed in and the conversation list is on screen.
    public func openNotification(userInfo: [AnyHashable: Any]) {
        openNotification(channelID: PushPayload.channelID(in: userInfo))
    }

    /// The same with the payload's `PushPayload.channelID(in:)`, read where the notification
    /// arrived (a payload is not `Sendable`).
    public func openNotification(channelID: String?) {
        guard let channelID else { return }
        requestedConversation = channelID
    }

    /// The conversation a tapped notification asked for, once; nil when none is waiting.
    public func takeRequestedConversation() -> String? {
        defer { requestedConversation = nil }
        return requestedConversation
    }

    /// Whether a notification arriving while the app is in the foreground is shown: not when its
    /// conversation is on screen (its messages are already appearing there).
    public func shouldPresentNotification(userInfo: [AnyHashable: Any]) -> Bool {
        shouldPresentNotification(channelID: PushPayload.channelID(in: userInfo))
    }

    /// The same with the payload's `PushPayload.channelID(in:)`.
    public func shouldPresentNotification(channelID: String?) -> Bool {
        guard let session, let channelID else { return true }
        return !session.isOnScreen(channelID)
    }

    public func appEnteredBackground() {
        isInBackground = true
        session?.enteredBackground()
    }

    private func startSession(for user: User) {
        let session = ChatSession(user: user, endpoint: settings.endpoint, tokens: tokens, environment: environment) { [weak self] in
            self?.sessionExpired()
        }
        phase = .signedIn(session)
        session.start(inBackground: isInBackground)
        push.sessionStarted(api: session.api, account: PushAccount(server: settings.endpoint, userID: user.id))
    }

    /// The refresh token was refused: back to the sign-in screen, with a word why.
    private func sessionExpired() {
        guard let session else { return }
        // Without tokens the device cannot be unregistered (see PushRegistration).
        push.sessionLost()
        phase = .signedOut
        notice = "Your session has expired. Please sign in again."
        Task { await session.shutdown() }
    }

    private static func makeTokenManager(for endpoint: ServerEndpoint, environment: ChatEnvironment) -> TokenManager {
        TokenManager(api: APIClient(server: endpoint, http: environment.http), store: environment.tokenStore(endpoint))
    }
}
