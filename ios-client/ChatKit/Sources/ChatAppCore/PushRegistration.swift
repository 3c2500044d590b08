import ChatKit
import Foundation
import Observation

/// What `PushRegistration` needs from the server: `APIClient` (authenticated by the session's
/// tokens) in the app, a fake in tests.
public protocol DeviceRegistrar: Sendable {
    func registerDevice(_ request: RegisterDeviceRequest) async throws -> Device
    func unregisterDevice(token: String) async throws
}

extension APIClient: DeviceRegistrar {}

/// How this build registers its device token.
public struct PushConfiguration: Sendable, Hashable {
    /// Which APNs server the token belongs to.
    public var environment: PushEnvironment
    /// The app's bundle id: the topic the notifier sends with.
    public var bundleID: String

    public init(environment: PushEnvironment, bundleID: String) {
        self.environment = environment
        self.bundleID = bundleID
    }

    /// The app's: `buildEnvironment`, and the main bundle's id.
    public static var live: PushConfiguration {
        PushConfiguration(environment: buildEnvironment, bundleID: Bundle.main.bundleIdentifier ?? fallbackBundleID)
    }

    /// Sandbox in a DEBUG build (run from Xcode, signed for development), production otherwise
    /// (TestFlight, App Store). The token's real environment is the `aps-environment` the
    /// provisioning profile grants; a Release build signed for development would get sandbox
    /// tokens and be registered as production.
    public static var buildEnvironment: PushEnvironment {
        #if DEBUG
        .sandbox
        #else
        .production
        #endif
    }

    /// project.yml's `PRODUCT_BUNDLE_IDENTIFIER`, for a process without a bundle id (tests).
    public static let fallbackBundleID = "dev.chat.ChatApp"
}

/// Who a registration is for: a user on a server.
public struct PushAccount: Codable, Sendable, Hashable {
    public var server: String
    public var userID: String

    public init(server: ServerEndpoint, userID: String) {
        self.server = server.description
        self.userID = userID
    }
}

/// Keeps this device's APNs token registered with the server for the signed-in user.
///
/// - Once the OS has given a token (`didReceiveDeviceToken`) and someone is signed in
///   (`sessionStarted`), whichever comes second, the token is registered (`POST /devices`).
///   At every launch both happen again, so the device is registered again at every launch
///   (the server's `updated_at` says the device is alive); within a launch, only a new token or
///   a new account registers again.
/// - A failure that may pass (no network, 5xx, 429) is retried, but only when something happens:
///   the next launch, the app coming to the foreground (`appBecameActive`), a new token, a new
///   sign-in. Foregrounding retries only once the backoff has passed (30 s, doubling to an
///   hour), so a flapping app does not hammer a server that is down. There is no timer: nothing
///   runs in the background. A refusal that cannot pass (400: the token or bundle id) is not
///   retried until the next launch or a new token.
/// - `sessionEnding()` (sign-out, switching servers) unregisters the token
///   (`DELETE /devices/{token}`) while the session's tokens still authenticate it: call it
///   before `TokenManager.signOut()`. It waits at most `unregisterTimeout`, so that sign-out
///   stays quick offline (the device then stays registered on the server; see README).
/// - `sessionLost()` (the refresh token was refused) can no longer authenticate anything: the
///   registration stays until another user registers the token or the notifier finds it dead.
///
/// The last registered token is kept in user defaults with its account: sign-out can
/// unregister it before the OS has handed this launch's token over, and when the OS rotates
/// the token the old one is unregistered after the new one is registered.
@MainActor @Observable
public final class PushRegistration {
    public enum Status: Sendable, Hashable {
        /// Nothing to do yet: no token from the OS, or nobody signed in.
        case waiting
        case registering
        /// The server has the token for the signed-in user.
        case registered(Device)
        /// Registration failed; retried at the next foreground after `retryAfter` (nil: not
        /// before the next launch or a new token).
        case failed(message: String, retryAfter: Date?)
        /// The OS gave no token (`didFailToRegisterForRemoteNotificationsWithError`).
        case unavailable(message: String)

        /// One line for the settings screen.
        public var summary: String {
            switch self {
            case .waiting: "Not registered yet"
            case .registering: "Registering…"
            case .registered: "Registered"
            case .failed(let message, let retryAfter):
                retryAfter == nil ? "Not registered: \(message)" : "Not registered: \(message) Will try again later."
            case .unavailable(let message): "Unavailable: \(message)"
            }
        }
    }

    /// Delays between retries after consecutive failures.
    public struct Backoff: Sendable, Hashable {
        public var initial: TimeInterval
        public var maximum: TimeInterval

        public init(initial: TimeInterval = 30, maximum: TimeInterval = 3600) {
            self.initial = initial
            self.maximum = maximum
        }

        /// The wait after `failures` consecutive failures (1 or more).
        public func delay(afterFailures failures: Int) -> TimeInterval {
            let exponent = Double(min(max(failures - 1, 0), 30))
            return min(initial * pow(2, exponent), maximum)
        }
    }

    public static let defaultsKey = "push.registeredDevice"

    public private(set) var status: Status = .waiting
    /// This launch's token from the OS, in lowercase hexadecimal.
    public private(set) var deviceToken: String?

    public let configuration: PushConfiguration
    /// How long sign-out waits for `DELETE /devices/{token}`.
    public let unregisterTimeout: Duration

    @ObservationIgnored private let defaults: UserDefaults
    @ObservationIgnored private let now: @Sendable () -> Date
    @ObservationIgnored private let sleep: @Sendable (Duration) async throws -> Void
    @ObservationIgnored private let backoff: Backoff
    @ObservationIgnored private var session: (api: any DeviceRegistrar, account: PushAccount)?
    /// What was registered during this launch (and for whom).
    @ObservationIgnored private var registered: Record?
    /// A token the server refused for good (400), not tried again this launch.
    @ObservationIgnored private var refusedToken: String?
    @ObservationIgnored private var failures = 0
    @ObservationIgnored private var retryAfter: Date?
    @ObservationIgnored private var inFlight: Task<Void, Never>?
    /// Numbers the registrations, so that the answer to one abandoned (`sessionLost`) is dropped.
    @ObservationIgnored private var attemptNumber = 0

    /// A token registered for an account.
    struct Record: Codable, Hashable {
        var token: String
        var account: PushAccount
    }

    /// - Parameters:
    ///   - defaults: where the last registered token is kept.
    ///   - now: the clock of the backoff.
    ///   - sleep: waits (the unregister timeout); injected so tests control time.
    public init(
        configuration: PushConfiguration = .live,
        defaults: UserDefaults = .standard,
        backoff: Backoff = Backoff(),
        unregisterTimeout: Duration = .seconds(5),
        now: @escaping @Sendable () -> Date = { Date() },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.configuration = configuration
        self.defaults = defaults
        self.backoff = backoff
        self.unregisterTimeout = unregisterTimeout
        self.now = now
        self.sleep = sleep
    }

    // MARK: - Events

    /// The OS's token (`application(_:didRegisterForRemoteNotificationsWithDeviceToken:)`).
    public func didReceiveDeviceToken(_ token: Data) {
        didReceiveDeviceToken(hex: DeviceToken.hex(token))
    }

    /// The OS's token, already in hexadecimal.
    public func didReceiveDeviceToken(hex: String) {
        let token = hex.lowercased()
        guard token != deviceToken else {
            // The OS hands the same token over at every `registerForRemoteNotifications`.
            registerIfDue()
            return
        }
        deviceToken = token
        // A new token is a new situation: no backoff from the old one's failures.
        resetBackoff()
        registerIfNeeded()
    }

    /// The OS could not give a token (no entitlement, no network on first use, a simulator
    /// without APNs).
    public func didFailToRegister(_ error: any Error) {
        guard deviceToken == nil else { return }
        status = .unavailable(message: error.localizedDescription)
    }

    /// Someone is signed in (after signing in, and at launch when the session is restored).
    /// `api` must authenticate as that user.
    public func sessionStarted(api: any DeviceRegistrar, account: PushAccount) {
        session = (api, account)
        resetBackoff()
        registerIfNeeded()
    }

    /// The app came to the foreground: a failed registration is tried again, if its backoff
    /// has passed.
    public func appBecameActive() {
        registerIfDue()
    }

    /// Sign-out or a server change: unregisters this device from the account while the session
    /// still authenticates. Best effort, within `unregisterTimeout`; a device the server does
    /// not know (404 `device_not_found`) counts as unregistered. Returns whether the server
    /// confirmed.
    @discardableResult
    public func sessionEnding() async -> Bool {
        guard let ending = session else { return true }
        session = nil
        registered = nil
        // A registration on its way would land after the unregistration: let it finish first
        // (its answer is then for nobody, and nothing new starts without a session).
        await inFlight?.value
        resetBackoff()
        status = .waiting
        var tokens: [String] = []
        if let deviceToken { tokens.append(deviceToken) }
        if let stored = storedRecord(), stored.account == ending.account {
            clearStoredRecord()
            if !tokens.contains(stored.token) { tokens.append(stored.token) }
        }
        var confirmed = true
        for token in tokens {
            let done = await Self.unregister(token, api: ending.api, within: unregisterTimeout, sleep: sleep)
            confirmed = confirmed && done
        }
        return confirmed
    }

    /// The session ended without a way to authenticate (the refresh token was refused): nothing
    /// can be unregistered. The next sign-in registers the token again (moving it, if it is
    /// someone else).
    public func sessionLost() {
        attemptNumber += 1
        inFlight?.cancel()
        inFlight = nil
        session = nil
        registered = nil
        resetBackoff()
        clearStoredRecord()
        status = .waiting
    }

    // MARK: - Registering

    /// Whether the token still has to be registered for the signed-in account.
    public var needsRegistration: Bool {
        guard let account = session?.account, let deviceToken else { return false }
        return registered != Record(token: deviceToken, account: account) && refusedToken != deviceToken
    }

    /// Registers unless a backoff is running.
    private func registerIfDue() {
        if let retryAfter, now() < retryAfter { return }
        registerIfNeeded()
    }

    private func registerIfNeeded() {
        guard inFlight == nil, needsRegistration, let session, let token = deviceToken else { return }
        let request = RegisterDeviceRequest(
            platform: .apns,
            token: token,
            environment: configuration.environment,
            bundleID: configuration.bundleID
        )
        let api = session.api
        let account = session.account
        attemptNumber += 1
        let number = attemptNumber
        status = .registering
        inFlight = Task { [weak self] in
            let result: Result<Device, any Error>
            do {
                result = .success(try await api.registerDevice(request))
            } catch {
                result = .failure(error)
            }
            self?.finish(number, Record(token: token, account: account), with: result, api: api)
        }
    }

    private func finish(_ number: Int, _ attempt: Record, with result: Result<Device, any Error>, api: any DeviceRegistrar) {
        // Abandoned (the session was lost); another registration may be on its way.
        guard number == attemptNumber else { return }
        inFlight = nil
        // Signed out, or in as someone else, meanwhile: this answer is for nobody.
        guard session?.account == attempt.account else { return }
        switch result {
        case .success(let device):
            registered = attempt
            resetBackoff()
            status = .registered(device)
            let previous = storedRecord()
            store(attempt)
            if let previous, previous.account == attempt.account, previous.token != attempt.token {
                // The OS rotated the token: the old one reaches nobody any more.
                Task { try? await api.unregisterDevice(token: previous.token) }
            }
        case .failure(let error):
            fail(attempt, error)
        }
        // The token or the account may have changed while the request was out.
        registerIfDue()
    }

    private func fail(_ attempt: Record, _ error: any Error) {
        let message = error.localizedDescription
        if let chatError = error as? ChatError {
            if chatError.meansSignedOut || chatError.isUnauthorized {
                // The session is ending; AppModel signs out.
                status = .failed(message: message, retryAfter: nil)
                refusedToken = attempt.token
                return
            }
            if case .server(let server) = chatError, (400..<500).contains(server.status),
               server.status != 408, server.status != 429 {
                // The server will refuse this token (or bundle id) again.
                refusedToken = attempt.token
                status = .failed(message: message, retryAfter: nil)
                return
            }
        }
        failures += 1
        let retry = now().addingTimeInterval(backoff.delay(afterFailures: failures))
        retryAfter = retry
        status = .failed(message: message, retryAfter: retry)
    }

    private func resetBackoff() {
        failures = 0
        retryAfter = nil
        refusedToken = nil
    }

    nonisolated private static func unregister(
        _ token: String,
        api: any DeviceRegistrar,
        within timeout: Duration,
        sleep: @escaping @Sendable (Duration) async throws -> Void
    ) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await api.unregisterDevice(token: token)
                    return true
                } catch let error as ChatError where error.serverCode == APIErrorCode.deviceNotFound {
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                try? await sleep(timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    // MARK: - Persistence

    func storedRecord() -> Record? {
        guard let data = defaults.data(forKey: Self.defaultsKey) else { return nil }
        return try? JSONDecoder().decode(Record.self, from: data)
    }

    private func store(_ record: Record) {
        guard let data = try? JSONEncoder().encode(record) else { return }
        defaults.set(data, forKey: Self.defaultsKey)
    }

    private func clearStoredRecord() {
        defaults.removeObject(forKey: Self.defaultsKey)
    }
}
