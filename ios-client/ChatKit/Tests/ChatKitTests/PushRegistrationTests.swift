import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatAppCore
@testable import ChatKit

/// The server's device endpoints, played by the test.
actor FakeRegistrar: DeviceRegistrar {
    enum Call: Hashable {
        case register(RegisterDeviceRequest)
        case unregister(String)
    }

    private(set) var calls: [Call] = []
    /// Thrown by the next registrations, in order; they succeed once it is empty.
    private var registerFailures: [any Error] = []
    private var unregisterFailure: (any Error)?
    /// Unregistrations wait until cancelled (a server that does not answer).
    private var unregisterHangs = false
    /// The next registration waits for `releaseRegistration()`.
    private var holdsNextRegistration = false
    private var held: CheckedContinuation<Void, Never>?

    func failNextRegistrations(_ errors: [any Error]) {
        registerFailures.append(contentsOf: errors)
    }

    func failUnregistrations(with error: (any Error)?) {
        unregisterFailure = error
    }

    func hangUnregistrations() {
        unregisterHangs = true
    }

    func holdNextRegistration() {
        holdsNextRegistration = true
    }

    func releaseRegistration() {
        held?.resume()
        held = nil
    }

    var isHoldingARegistration: Bool { held != nil }

    func registerDevice(_ request: RegisterDeviceRequest) async throws -> Device {
        calls.append(.register(request))
        if holdsNextRegistration {
            holdsNextRegistration = false
            await withCheckedContinuation { held = $0 }
        }
        if !registerFailures.isEmpty {
            throw registerFailures.removeFirst()
        }
        return Device(
            platform: request.platform,
            token: request.token.lowercased(),
            environment: request.environment,
            bundleID: request.bundleID,
            createdAt: Sample.date,
            updatedAt: Sample.date
        )
    }

    func unregisterDevice(token: String) async throws {
        calls.append(.unregister(token))
        if unregisterHangs {
            try await Task.sleep(for: .seconds(3600))
        }
        if let unregisterFailure { throw unregisterFailure }
    }

    var registeredTokens: [String] {
        calls.compactMap { call -> String? in
            guard case .register(let request) = call else { return nil }
            return request.token
        }
    }

    var unregisteredTokens: [String] {
        calls.compactMap { call -> String? in
            guard case .unregister(let token) = call else { return nil }
            return token
        }
    }
}

/// A clock the test moves.
final class MovableClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current = Sample.date

    var now: Date {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    func advance(_ seconds: TimeInterval) {
        lock.lock()
        current += seconds
        lock.unlock()
    }
}

/// `PushRegistration` (ChatAppCore), the app's model of its APNs registration, against a fake
/// server; and the sign-out order through `AppModel`.
///
/// `@unchecked Sendable`: see ChatAppCoreTests.
final class PushRegistrationTests: XCTestCase, @unchecked Sendable {
    private static let tokenA = Data((0..<32).map { UInt8($0) })
    private static let tokenAHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    private static let tokenB = Data((0..<32).map { UInt8(0xff - $0) })
    private static let server = ServerEndpoint(string: "http://chat.test")!
    private static let alice = PushAccount(server: server, userID: "u-alice")
    private static let bob = PushAccount(server: server, userID: "u-bob")
    private static let configuration = PushConfiguration(environment: .sandbox, bundleID: "com.example.chat")

    private var suites: [String] = []

    override func tearDown() {
        for suite in suites {
            UserDefaults(suiteName: suite)?.removePersistentDomain(forName: suite)
        }
        suites = []
        super.tearDown()
    }

    /// Fresh user defaults: one app install, shared by the launches of a test.
    private func makeDefaults() throws -> UserDefaults {
        let suite = "PushRegistrationTests-\(UUID().uuidString)"
        suites.append(suite)
        return try XCTUnwrap(UserDefaults(suiteName: suite))
    }

    /// `sleeper` is manual by default: nothing waits unless a test releases it. Signing out races
    /// each unregistration against its time limit, and an immediate limit made every test that
    /// signs out a coin toss (the limit sometimes won before the fake answered). Tests of the
    /// limit pass an immediate sleeper.
    @MainActor
    private func makeRegistration(
        defaults: UserDefaults,
        clock: MovableClock = MovableClock(),
        sleeper: TestSleeper = TestSleeper(mode: .manual)
    ) -> PushRegistration {
        PushRegistration(
            configuration: Self.configuration,
            defaults: defaults,
            backoff: PushRegistration.Backoff(initial: 30, maximum: 3600),
            unregisterTimeout: .seconds(5),
            now: { clock.now },
            sleep: sleeper.function
        )
    }

    @MainActor
    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// An earlier launch: Alice signed in and token A registered (what `defaults` remembers).
    @MainActor
    private func launchRegistered(defaults: UserDefaults, api: FakeRegistrar) async throws {
        let first = makeRegistration(defaults: defaults)
        first.sessionStarted(api: api, account: Self.alice)
        first.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(first)
    }

    @MainActor
    private func waitForRegistered(_ push: PushRegistration) async throws {
        try await waitUntil("registered") {
            if case .registered = push.status { return true }
            return false
        }
    }

    @MainActor
    private func waitForFailure(_ push: PushRegistration) async throws -> Date? {
        var retryAfter: Date?
        try await waitUntil("a failure") {
            if case .failed(_, let retry) = push.status {
                retryAfter = retry
                return true
            }
            return false
        }
        return retryAfter
    }

    private func waitForCalls(_ api: FakeRegistrar, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        var made = await api.calls.count
        while made < count {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: "\(count) calls") }
            try await Task.sleep(for: .milliseconds(2))
            made = await api.calls.count
        }
    }

    /// Lets any task the model started run (and show that none did).
    private func settle() async throws {
        for _ in 0..<20 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(20))
    }

    // MARK: - Registering

    @MainActor
    func testTheTokenIsRegisteredOnceTheOSGaveItAndSomeoneSignedIn() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        XCTAssertEqual(push.status, .waiting)

        push.didReceiveDeviceToken(Self.tokenA)
        try await settle()
        let beforeSignIn = await api.calls
        XCTAssertEqual(beforeSignIn, [], "nobody to register it for yet")
        XCTAssertEqual(push.deviceToken, Self.tokenAHex)

        push.sessionStarted(api: api, account: Self.alice)
        try await waitForRegistered(push)
        let calls = await api.calls
        XCTAssertEqual(calls, [.register(RegisterDeviceRequest(
            platform: .apns, token: Self.tokenAHex, environment: .sandbox, bundleID: "com.example.chat"
        ))])
        XCTAssertFalse(push.needsRegistration)
        XCTAssertEqual(push.storedRecord(), PushRegistration.Record(token: Self.tokenAHex, account: Self.alice))
    }

    @MainActor
    func testASessionFirstThenTheTokenRegistersToo() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        try await settle()
        let beforeToken = await api.calls
        XCTAssertEqual(beforeToken, [])
        push.didReceiveDeviceToken(hex: Self.tokenAHex.uppercased())
        try await waitForRegistered(push)
        let tokens = await api.registeredTokens
        XCTAssertEqual(tokens, [Self.tokenAHex], "lowercase, whatever the OS's form")
    }

    @MainActor
    func testTheSameTokenAgainAndForegroundingDoNotRegisterAgain() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(push)

        push.didReceiveDeviceToken(Self.tokenA)
        push.appBecameActive()
        push.appBecameActive()
        try await settle()
        let count = await api.calls.count
        XCTAssertEqual(count, 1)
    }

    @MainActor
    func testEveryLaunchRegistersAgain() async throws {
        let defaults = try makeDefaults()
        let api = FakeRegistrar()
        try await launchRegistered(defaults: defaults, api: api)

        // The next launch: the session is restored and the OS hands the token over again.
        let second = makeRegistration(defaults: defaults)
        second.sessionStarted(api: api, account: Self.alice)
        second.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(second)
        let tokens = await api.registeredTokens
        XCTAssertEqual(tokens, [Self.tokenAHex, Self.tokenAHex])
        let unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [])
    }

    @MainActor
    func testARotatedTokenReplacesTheOldOneOnTheServer() async throws {
        let defaults = try makeDefaults()
        let api = FakeRegistrar()
        try await launchRegistered(defaults: defaults, api: api)

        // A later launch: the OS gives another token (restored from a backup, say).
        let second = makeRegistration(defaults: defaults)
        second.sessionStarted(api: api, account: Self.alice)
        second.didReceiveDeviceToken(Self.tokenB)
        try await waitForRegistered(second)
        let tokenBHex = DeviceToken.hex(Self.tokenB)
        let expected: [FakeRegistrar.Call] = [
            .register(RegisterDeviceRequest(token: Self.tokenAHex, environment: .sandbox, bundleID: "com.example.chat")),
            .register(RegisterDeviceRequest(token: tokenBHex, environment: .sandbox, bundleID: "com.example.chat")),
            .unregister(Self.tokenAHex),
        ]
        try await waitForCalls(api, expected.count)
        let calls = await api.calls
        XCTAssertEqual(calls, expected)
        XCTAssertEqual(second.storedRecord()?.token, tokenBHex)
    }

    @MainActor
    func testSigningInAsSomeoneElseRegistersTheTokenForThem() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        push.didReceiveDeviceToken(Self.tokenA)
        push.sessionStarted(api: api, account: Self.alice)
        try await waitForRegistered(push)
        await push.sessionEnding()
        push.sessionStarted(api: api, account: Self.bob)
        try await waitForRegistered(push)
        let calls = await api.calls
        XCTAssertEqual(calls.count, 3)
        XCTAssertEqual(calls[1], .unregister(Self.tokenAHex))
        XCTAssertEqual(push.storedRecord()?.account, Self.bob)
    }

    // MARK: - Failures

    @MainActor
    func testAFailureIsRetriedAtAForegroundOnlyAfterItsBackoff() async throws {
        let clock = MovableClock()
        let api = FakeRegistrar()
        await api.failNextRegistrations([ChatError.network("offline"), ChatError.network("offline")])
        let push = makeRegistration(defaults: try makeDefaults(), clock: clock)
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        var retryAfter = try await waitForFailure(push)
        XCTAssertEqual(retryAfter, clock.now + 30)

        // Nothing retries by itself: no loop, no timer.
        try await settle()
        var count = await api.calls.count
        XCTAssertEqual(count, 1)

        // Too early.
        clock.advance(10)
        push.appBecameActive()
        try await settle()
        count = await api.calls.count
        XCTAssertEqual(count, 1)

        // Due: tried again, fails again, waits twice as long.
        clock.advance(20)
        push.appBecameActive()
        try await waitForCalls(api, 2)
        let second = clock.now + 60
        try await waitUntil("the second failure") { push.status != .registering }
        retryAfter = try await waitForFailure(push)
        XCTAssertEqual(retryAfter, second)

        clock.advance(60)
        push.appBecameActive()
        try await waitForRegistered(push)
        count = await api.calls.count
        XCTAssertEqual(count, 3)
    }

    @MainActor
    func testANewTokenOrSignInDoesNotWaitForTheBackoff() async throws {
        let api = FakeRegistrar()
        await api.failNextRegistrations([ChatError.server(ServerError(status: 503, code: "unavailable", message: "down"))])
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        _ = try await waitForFailure(push)
        push.didReceiveDeviceToken(Self.tokenB)
        try await waitForRegistered(push)
        let tokens = await api.registeredTokens
        XCTAssertEqual(tokens, [Self.tokenAHex, DeviceToken.hex(Self.tokenB)])
    }

    @MainActor
    func testARefusedTokenIsNotRetriedUntilItChanges() async throws {
        let clock = MovableClock()
        let api = FakeRegistrar()
        await api.failNextRegistrations([ChatError.server(ServerError(status: 400, code: APIErrorCode.invalidDeviceToken, message: "no"))])
        let push = makeRegistration(defaults: try makeDefaults(), clock: clock)
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        let retryAfter = try await waitForFailure(push)
        XCTAssertNil(retryAfter)
        XCTAssertFalse(push.needsRegistration)

        clock.advance(86_400)
        push.appBecameActive()
        push.didReceiveDeviceToken(Self.tokenA)
        try await settle()
        let count = await api.calls.count
        XCTAssertEqual(count, 1)
    }

    func testBackoffDoublesUpToItsMaximum() {
        let backoff = PushRegistration.Backoff(initial: 30, maximum: 3600)
        XCTAssertEqual((1...9).map { backoff.delay(afterFailures: $0) }, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600])
        XCTAssertEqual(backoff.delay(afterFailures: 1_000), 3600)
    }

    @MainActor
    func testTheOSRefusingATokenIsShown() async throws {
        let push = makeRegistration(defaults: try makeDefaults())
        XCTAssertEqual(push.status.summary, "Not registered yet")
        push.didFailToRegister(ChatError.invalidResponse("no valid aps-environment entitlement"))
        XCTAssertEqual(push.status, .unavailable(message: "The server sent an unexpected response (no valid aps-environment entitlement)."))
        XCTAssertTrue(push.status.summary.hasPrefix("Unavailable: "))
        XCTAssertEqual(PushRegistration.Status.failed(message: "Offline.", retryAfter: Sample.date).summary, "Not registered: Offline. Will try again later.")
    }

    // MARK: - Ending the session

    @MainActor
    func testSigningOutUnregistersTheToken() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(push)

        let confirmed = await push.sessionEnding()
        XCTAssertTrue(confirmed)
        let unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [Self.tokenAHex])
        XCTAssertEqual(push.status, .waiting)
        XCTAssertNil(push.storedRecord())

        // Signed out: foregrounds and tokens register nothing.
        push.appBecameActive()
        push.didReceiveDeviceToken(Self.tokenB)
        try await settle()
        let count = await api.calls.count
        XCTAssertEqual(count, 2)
    }

    @MainActor
    func testSigningOutBeforeTheOSGaveTheTokenUnregistersTheOneKept() async throws {
        let defaults = try makeDefaults()
        let api = FakeRegistrar()
        try await launchRegistered(defaults: defaults, api: api)

        // The next launch signs out at once.
        let second = makeRegistration(defaults: defaults)
        second.sessionStarted(api: api, account: Self.alice)
        await second.sessionEnding()
        let unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [Self.tokenAHex])
    }

    @MainActor
    func testATokenKeptForSomeoneElseIsNotTheirsToUnregister() async throws {
        let defaults = try makeDefaults()
        let api = FakeRegistrar()
        try await launchRegistered(defaults: defaults, api: api)

        let second = makeRegistration(defaults: defaults)
        second.sessionStarted(api: api, account: Self.bob)
        await second.sessionEnding()
        let unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [])
        XCTAssertEqual(second.storedRecord()?.account, Self.alice)
    }

    @MainActor
    func testTheAnswerToARegistrationOfALostSessionIsDropped() async throws {
        let api = FakeRegistrar()
        await api.holdNextRegistration()
        let push = makeRegistration(defaults: try makeDefaults())
        push.didReceiveDeviceToken(Self.tokenA)
        push.sessionStarted(api: api, account: Self.alice)
        try await waitUntil("the registration on its way") { push.status == .registering }
        push.sessionLost()

        push.sessionStarted(api: api, account: Self.bob)
        try await waitForRegistered(push)
        await api.releaseRegistration()
        try await settle()
        XCTAssertEqual(push.storedRecord()?.account, Self.bob)
        XCTAssertFalse(push.needsRegistration)
        guard case .registered = push.status else { return XCTFail("\(push.status)") }
        let count = await api.calls.count
        XCTAssertEqual(count, 2)
    }

    @MainActor
    func testSigningOutWhileRegisteringUnregistersAfterTheRegistrationLanded() async throws {
        let api = FakeRegistrar()
        await api.holdNextRegistration()
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitUntil("the registration on its way") { push.status == .registering }

        let ending = Task { await push.sessionEnding() }
        try await settle()
        var unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [], "not before the registration's answer")
        let deadline = ContinuousClock.now + .seconds(5)
        var holding = await api.isHoldingARegistration
        while !holding, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
            holding = await api.isHoldingARegistration
        }
        await api.releaseRegistration()
        _ = await ending.value
        unregistered = await api.unregisteredTokens
        XCTAssertEqual(unregistered, [Self.tokenAHex])
        XCTAssertEqual(push.status, .waiting, "the late answer is for nobody")
        XCTAssertNil(push.storedRecord())
    }

    @MainActor
    func testADeviceTheServerDoesNotKnowCountsAsUnregistered() async throws {
        let api = FakeRegistrar()
        await api.failUnregistrations(with: ChatError.server(ServerError(status: 404, code: APIErrorCode.deviceNotFound, message: "no")))
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(push)
        let confirmed = await push.sessionEnding()
        XCTAssertTrue(confirmed)
    }

    @MainActor
    func testSigningOutDoesNotWaitLongForAServerThatDoesNotAnswer() async throws {
        let api = FakeRegistrar()
        await api.hangUnregistrations()
        let sleeper = TestSleeper(mode: .immediate)
        let push = makeRegistration(defaults: try makeDefaults(), sleeper: sleeper)
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(push)

        let started = ContinuousClock.now
        let confirmed = await push.sessionEnding()
        XCTAssertFalse(confirmed)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        let slept = await sleeper.requested
        XCTAssertEqual(slept, [.seconds(5)])
        XCTAssertNil(push.storedRecord())
    }

    @MainActor
    func testALostSessionUnregistersNothingAndTheNextSignInRegisters() async throws {
        let api = FakeRegistrar()
        let push = makeRegistration(defaults: try makeDefaults())
        push.sessionStarted(api: api, account: Self.alice)
        push.didReceiveDeviceToken(Self.tokenA)
        try await waitForRegistered(push)
        push.sessionLost()
        XCTAssertEqual(push.status, .waiting)
        push.appBecameActive()
        try await settle()
        var count = await api.calls.count
        XCTAssertEqual(count, 1)

        push.sessionStarted(api: api, account: Self.alice)
        try await waitForRegistered(push)
        count = await api.calls.count
        XCTAssertEqual(count, 2)
    }

    // MARK: - Configuration and payload

    func testTheBuildDecidesTheAPNsEnvironment() {
        #if DEBUG
        XCTAssertEqual(PushConfiguration.buildEnvironment, .sandbox)
        #else
        XCTAssertEqual(PushConfiguration.buildEnvironment, .production)
        #endif
        XCTAssertFalse(PushConfiguration.live.bundleID.isEmpty)
    }

    func testANotificationNamesItsConversationByChannelID() {
        let id = "0190a2b4-0000-7000-8000-000000000001"
        XCTAssertEqual(PushPayload.channelIDKey, "channel_id")
        XCTAssertEqual(PushPayload.channelID(in: ["channel_id": id, "aps": ["alert": "hi"]]), id)
        XCTAssertEqual(PushPayload.channelID(in: ["channel_id": id.uppercased()]), id)
        XCTAssertNil(PushPayload.channelID(in: [:]))
        XCTAssertNil(PushPayload.channelID(in: ["channel_id": 42]))
        XCTAssertNil(PushPayload.channelID(in: ["channel_id": "general"]))
        XCTAssertNil(PushPayload.channelID(in: ["channelId": id]))
    }

    // MARK: - Through AppModel

    /// A server for the app: sign-in, profile, an empty conversation list, the device
    /// endpoints, logout.
    private static func appServer() -> ScriptedHTTP {
        ScriptedHTTP { request, _ in
            switch (request.method, request.target) {
            case ("POST", "/api/v1/auth/login"):
                return try .json(200, encoding: Sample.session(access: "access-1", refresh: "refresh-1"))
            case ("POST", "/api/v1/auth/logout"):
                return HTTPResponse(status: 204)
            case ("GET", "/api/v1/users/me"):
                return try .json(200, encoding: Sample.alice)
            case ("GET", "/api/v1/channels"):
                return try .json(200, encoding: ConversationList(channels: []))
            case ("POST", "/api/v1/devices"):
                let body = try WireJSON.decode(RegisterDeviceRequest.self, from: request.body ?? Data())
                return try .json(201, encoding: Device(
                    token: body.token, environment: body.environment, bundleID: body.bundleID,
                    createdAt: Sample.date, updatedAt: Sample.date
                ))
            case ("DELETE", let target) where target.hasPrefix("/api/v1/devices/"):
                return HTTPResponse(status: 204)
            default:
                return .json(404, Data("{}".utf8))
            }
        }
    }

    @MainActor
    private func makeAppModel(http: ScriptedHTTP, defaults: UserDefaults) -> AppModel {
        let environment = ChatEnvironment(
            http: http,
            transport: FakeTransport(),
            realtime: RealtimeConfiguration(pingInterval: nil, sendTimeout: nil),
            tokenStore: { _ in InMemoryTokenStore() }
        )
        return AppModel(
            settings: ServerSettings(defaults: defaults),
            environment: environment,
            push: makeRegistration(defaults: defaults)
        )
    }

    @MainActor
    func testSignOutUnregistersTheDeviceBeforeTheTokensAreDiscarded() async throws {
        let http = Self.appServer()
        let model = makeAppModel(http: http, defaults: try makeDefaults())
        model.push.didReceiveDeviceToken(Self.tokenA)
        try await model.signIn(username: "alice", password: "correct horse battery staple")
        try await waitForRegistered(model.push)

        await model.signOut()
        guard case .signedOut = model.phase else { return XCTFail("still signed in") }
        let requests = await http.requests.map { ($0.method + " " + $0.target, $0.headers["Authorization"]) }
        let register = try XCTUnwrap(requests.firstIndex { $0.0 == "POST /api/v1/devices" })
        let unregister = try XCTUnwrap(requests.firstIndex { $0.0 == "DELETE /api/v1/devices/\(Self.tokenAHex)" })
        let logout = try XCTUnwrap(requests.firstIndex { $0.0 == "POST /api/v1/auth/logout" })
        XCTAssertLessThan(register, unregister)
        XCTAssertLessThan(unregister, logout, "unregistered while the session still authenticates")
        XCTAssertEqual(requests[register].1, "Bearer access-1")
        XCTAssertEqual(requests[unregister].1, "Bearer access-1")
    }

    @MainActor
    func testATappedNotificationOpensItsConversationOnce() async throws {
        let http = Self.appServer()
        let model = makeAppModel(http: http, defaults: try makeDefaults())
        let id = "0190a2b4-0000-7000-8000-000000000001"
        model.openNotification(userInfo: ["aps": ["alert": "hi"], "channel_id": "not an id"])
        XCTAssertNil(model.requestedConversation)
        model.openNotification(userInfo: ["aps": ["alert": "hi"], "channel_id": id])
        XCTAssertEqual(model.requestedConversation, id)
        XCTAssertEqual(model.takeRequestedConversation(), id)
        XCTAssertNil(model.takeRequestedConversation())

        // In the foreground, a notification of the conversation on screen is not shown.
        try await model.signIn(username: "alice", password: "correct horse battery staple")
        let session = try XCTUnwrap(model.session)
        XCTAssertTrue(model.shouldPresentNotification(userInfo: ["channel_id": id]))
        session.conversationAppeared(id)
        XCTAssertFalse(model.shouldPresentNotification(userInfo: ["channel_id": id]))
        XCTAssertTrue(model.shouldPresentNotification(userInfo: ["channel_id": "0190a2b4-0000-7000-8000-000000000002"]))
        session.conversationDisappeared(id)
        XCTAssertTrue(model.shouldPresentNotification(userInfo: ["channel_id": id]))
        await model.signOut()
    }
}

/// `NotificationSettings` (ChatAppCore): the level picker and "Hide previews".
final class NotificationSettingsTests: XCTestCase, @unchecked Sendable {
    private static let channel = "0190a2b4-0000-7000-8000-000000000001"

    private final class ServerState: @unchecked Sendable {
        private let lock = NSLock()
        private var level = "none"
        private var hidePreviews = true
        var refuses = false

        func handle(_ request: HTTPRequest) throws -> HTTPResponse {
            lock.lock()
            defer { lock.unlock() }
            if refuses {
                return try .json(403, encoding: ErrorBody(code: APIErrorCode.notAMember, message: "you are not a member of this channel"))
            }
            switch (request.method, request.target) {
            case ("GET", "/api/v1/users/me/notifications"):
                return try .json(200, encoding: NotificationPreferences(hidePreviews: hidePreviews))
            case ("PUT", "/api/v1/users/me/notifications"):
                hidePreviews = try WireJSON.decode(NotificationPreferences.self, from: request.body ?? Data()).hidePreviews
                return try .json(200, encoding: NotificationPreferences(hidePreviews: hidePreviews))
            case ("GET", _):
                return .json(200, Data(#"{"channel_id": "\#(NotificationSettingsTests.channel)", "level": "\#(level)"}"#.utf8))
            case ("PUT", _):
                level = try WireJSON.decode(SetNotificationLevel.self, from: request.body ?? Data()).level.rawValue
                return .json(200, Data(#"{"channel_id": "\#(NotificationSettingsTests.channel)", "level": "\#(level)"}"#.utf8))
            default:
                return HTTPResponse(status: 405)
            }
        }

        func refuse(_ value: Bool) {
            lock.lock()
            refuses = value
            lock.unlock()
        }
    }

    @MainActor
    private func makeSettings() -> (NotificationSettings, ServerState) {
        let state = ServerState()
        let http = ScriptedHTTP { request, _ in try state.handle(request) }
        let api = APIClient(server: ServerEndpoint(string: "http://chat.test")!, http: http, tokens: FakeTokens())
        return (NotificationSettings(api: api), state)
    }

    @MainActor
    func testALevelIsLoadedChangedAndUndoneWhenRefused() async {
        let (settings, server) = makeSettings()
        XCTAssertEqual(settings.level(of: Self.channel), .all, "the server's default until loaded")
        await settings.loadLevel(of: Self.channel)
        XCTAssertEqual(settings.level(of: Self.channel), .muted)

        await settings.setLevel(.mentions, of: Self.channel)
        XCTAssertEqual(settings.level(of: Self.channel), .mentions)
        XCTAssertNil(settings.errorMessage)

        server.refuse(true)
        await settings.setLevel(.all, of: Self.channel)
        XCTAssertEqual(settings.level(of: Self.channel), .mentions, "back to what the server kept")
        XCTAssertEqual(settings.errorMessage, "you are not a member of this channel")
    }

    @MainActor
    func testHidePreviewsIsLoadedToggledAndUndoneWhenRefused() async {
        let (settings, server) = makeSettings()
        XCTAssertNil(settings.hidePreviews)
        await settings.loadPreferences()
        XCTAssertEqual(settings.hidePreviews, true)
        await settings.setHidePreviews(false)
        XCTAssertEqual(settings.hidePreviews, false)

        server.refuse(true)
        await settings.setHidePreviews(true)
        XCTAssertEqual(settings.hidePreviews, false)
        XCTAssertNotNil(settings.errorMessage)
    }
}
