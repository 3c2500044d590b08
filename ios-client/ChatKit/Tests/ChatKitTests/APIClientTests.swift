import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import ChatKit

final class APIClientTests: XCTestCase {
    private let server = ServerEndpoint(string: "http://chat.test:8080")!

    private func client(tokens: (any AccessTokenProvider)? = FakeTokens(), _ handler: @escaping ScriptedHTTP.Handler) -> (APIClient, ScriptedHTTP) {
        let http = ScriptedHTTP(handler)
        return (APIClient(server: server, http: http, tokens: tokens), http)
    }

    func testLoginPostsTheContractBodyAndDecodesTheSession() async throws {
        let (api, http) = client { _, _ in .json(200, try fixture("rest_session")) }
        let session = try await api.login(username: "alice", password: "correct horse battery staple")
        XCTAssertEqual(session.user.username, "alice")
        XCTAssertEqual(session.expiresIn, 900)

        let requestRecorded = await http.requests.first
        let request = try XCTUnwrap(requestRecorded)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.target, "/api/v1/auth/login")
        XCTAssertNil(request.headers["Authorization"], "login is not authenticated")
        XCTAssertEqual(request.headers["Content-Type"], "application/json")
        try assertSameJSON(try XCTUnwrap(request.body), try fixture("rest_login_request"))
    }

    func testRegisterLeavesAnAbsentDisplayNameOut() async throws {
        let (api, http) = client { _, _ in .json(201, try fixture("rest_session")) }
        _ = try await api.register(username: "bob", password: "hunter2hunter2")
        let requestRecorded = await http.requests.first
        let request = try XCTUnwrap(requestRecorded)
        XCTAssertEqual(request.target, "/api/v1/auth/register")
        try assertSameJSON(try XCTUnwrap(request.body), try fixture("rest_register_request_minimal"))
    }

    func testAuthenticatedCallsCarryTheBearerToken() async throws {
        let (api, http) = client { _, _ in .json(200, try fixture("rest_channel_list")) }
        let channels = try await api.channels()
        XCTAssertEqual(channels.map(\.kind), [.group, .direct])
        let requestRecorded = await http.requests.first
        let request = try XCTUnwrap(requestRecorded)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/api/v1/channels")
        XCTAssertEqual(request.headers["Authorization"], "Bearer token-1")
    }

    func testEveryEndpointUsesTheContractPathAndMethod() async throws {
        let (api, http) = client { request, _ in
            switch request.target {
            case "/api/v1/users/me": return .json(200, try fixture("rest_user"))
            case let target where target.hasPrefix("/api/v1/users?"): return .json(200, try fixture("rest_user_list"))
            case let target where target.hasPrefix("/api/v1/channels/search?"): return .json(200, try fixture("rest_channel_list"))
            case let target where target.hasSuffix("/members"): return .json(200, try fixture("rest_member_list"))
            case let target where target.hasSuffix("/leave"): return HTTPResponse(status: 204)
            case "/api/v1/dms": return .json(201, try fixture("rest_channel_direct"))
            default: return .json(200, try fixture("rest_channel_group"))
            }
        }
        _ = try await api.me()
        _ = try await api.searchUsers(prefix: "al")
        _ = try await api.createChannel(name: "general", description: "Company-wide announcements and chatter")
        _ = try await api.searchChannels(query: "gen")
        _ = try await api.joinChannel(id: "c/1")
        try await api.leaveChannel(id: "c1")
        _ = try await api.members(ofChannel: "c1")
        let dm = try await api.openDirectConversation(with: "0190a2b4-0000-7000-8000-000000000b0b")
        XCTAssertEqual(dm.kind, .direct)

        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, [
            "GET /api/v1/users/me",
            "GET /api/v1/users?query=al",
            "POST /api/v1/channels",
            "GET /api/v1/channels/search?query=gen",
            "POST /api/v1/channels/c%2F1/join",
            "POST /api/v1/channels/c1/leave",
            "GET /api/v1/channels/c1/members",
            "POST /api/v1/dms",
        ])
        try assertSameJSON(try XCTUnwrap(requests[2].body), try fixture("rest_create_channel_request"))
        try assertSameJSON(try XCTUnwrap(requests[7].body), try fixture("rest_create_dm_request"))
    }

    // MARK: - Attachments

    private static let attachmentID = "0190a2b4-1234-7000-8000-000000000a77"
    private static let uploadURL = "http://127.0.0.1:8080/chat-attachments/o/0190a2b4-1234-7000-8000-000000000a77?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature=5f2c"

    /// The object store's side of an upload: `PUT` to the presigned URL.
    private static func isUpload(_ request: HTTPRequest) -> Bool {
        request.url.path.hasPrefix("/chat-attachments/")
    }

    func testAnUploadDeclaresPutsAndCompletesTheFile() async throws {
        let (api, http) = client { request, _ in
            if Self.isUpload(request) { return HTTPResponse(status: 200) }
            switch request.target {
            case "/api/v1/channels/c1/attachments": return .json(201, try fixture("rest_attachment_upload"))
            default: return .json(200, try fixture("rest_attachment"))
            }
        }
        let bytes = Data(repeating: 0xFF, count: 2_483_921)
        let attachment = try await api.uploadAttachment(bytes, name: "IMG_0042.jpg", contentType: "image/jpeg", toChannel: "c1")
        XCTAssertEqual(attachment.id, Self.attachmentID)
        XCTAssertEqual(attachment.state, .ready)
        XCTAssertEqual(MessageAttachment(attachment).aspectRatio, 0.75)

        let requests = await http.requests
        XCTAssertEqual(requests.map(\.method), ["POST", "PUT", "POST"])
        XCTAssertEqual(requests[0].target, "/api/v1/channels/c1/attachments")
        try assertSameJSON(try XCTUnwrap(requests[0].body), try fixture("rest_create_attachment"))
        // The bytes go to the store with exactly the presigned headers, and no token: the
        // URL's signature is the permission.
        XCTAssertEqual(requests[1].url.absoluteString, Self.uploadURL)
        XCTAssertEqual(requests[1].headers, ["content-length": "2483921", "content-type": "image/jpeg"])
        XCTAssertEqual(requests[1].body, bytes)
        XCTAssertEqual(requests[2].target, "/api/v1/channels/c1/attachments/\(Self.attachmentID)/complete")
        XCTAssertEqual(requests[2].headers["Authorization"], "Bearer token-1")
    }

    func testAnUploadURLTheStoreRefusesIsRenewedOnce() async throws {
        let (api, http) = client { request, _ in
            if Self.isUpload(request) {
                // The first URL expired; the renewed one works.
                return HTTPResponse(status: request.url.query?.contains("renewed") == true ? 200 : 403, body: Data("<Error/>".utf8))
            }
            switch request.target {
            case "/api/v1/channels/c1/attachments":
                return .json(201, try fixture("rest_attachment_upload"))
            case "/api/v1/channels/c1/attachments/\(Self.attachmentID)/upload-url":
                var renewed = try WireJSON.decode(AttachmentUpload.self, from: try fixture("rest_attachment_upload"))
                renewed.upload.url += "&renewed=1"
                return try .json(200, encoding: renewed)
            default:
                return .json(200, try fixture("rest_attachment"))
            }
        }
        _ = try await api.uploadAttachment(Data("hello".utf8), name: "IMG_0042.jpg", contentType: "image/jpeg", toChannel: "c1")
        let requests = await http.requests
        XCTAssertEqual(requests.map { Self.isUpload($0) ? "PUT store" : "\($0.method) \($0.target)" }, [
            "POST /api/v1/channels/c1/attachments",
            "PUT store",
            "POST /api/v1/channels/c1/attachments/\(Self.attachmentID)/upload-url",
            "PUT store",
            "POST /api/v1/channels/c1/attachments/\(Self.attachmentID)/complete",
        ])
    }

    func testAStoreThatKeepsRefusingFailsTheUploadBeforeCompleting() async throws {
        let (api, http) = client { request, _ in
            if Self.isUpload(request) { return HTTPResponse(status: 403, body: Data("<Error/>".utf8)) }
            return .json(request.target.hasSuffix("/attachments") ? 201 : 200, try fixture("rest_attachment_upload"))
        }
        do {
            _ = try await api.uploadAttachment(Data("hello".utf8), name: "a.txt", contentType: "text/plain", toChannel: "c1")
            XCTFail("uploaded")
        } catch let error as ChatError {
            XCTAssertEqual(error, .server(ServerError(status: 403, code: "http_403", message: HTTPURLResponse.localizedString(forStatusCode: 403))))
        }
        let requests = await http.requests
        XCTAssertFalse(requests.contains { $0.target.hasSuffix("/complete") })
    }

    func testAFileIsUploadedUnderItsNameWithTheTypeItsExtensionImplies() async throws {
        let (api, http) = client { request, _ in
            if Self.isUpload(request) { return HTTPResponse(status: 200) }
            return .json(request.target.hasSuffix("/attachments") ? 201 : 200, try fixture(request.target.hasSuffix("/attachments") ? "rest_attachment_upload" : "rest_attachment_pending"))
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chatkit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let pdf = folder.appendingPathComponent("Minutes 2025.PDF")
        try Data("%PDF-1.7".utf8).write(to: pdf)
        _ = try await api.uploadAttachment(fileAt: pdf, toChannel: "c1")
        let declared = await http.requests.first?.body
        XCTAssertEqual(
            try WireJSON.decode(CreateAttachment.self, from: try XCTUnwrap(declared)),
            CreateAttachment(name: "Minutes 2025.PDF", contentType: "application/pdf", size: 8)
        )

        // A type the server does not take is refused before anything is sent.
        let photo = folder.appendingPathComponent("IMG_0001.HEIC")
        try Data("heic".utf8).write(to: photo)
        do {
            _ = try await api.uploadAttachment(fileAt: photo, toChannel: "c1")
            XCTFail("uploaded a HEIC file")
        } catch ChatError.fileNotAttachable(let name, _) {
            XCTAssertEqual(name, "IMG_0001.HEIC")
        }
        let count = await http.requests.count
        XCTAssertEqual(count, 3)
    }

    func testDownloadLinks() async throws {
        let (api, http) = client { _, _ in .json(200, try fixture("rest_attachment_link")) }
        let link = try await api.attachmentLink(Self.attachmentID, inChannel: "c1")
        XCTAssertEqual(link.thumbnail, .ready)
        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, ["GET /api/v1/channels/c1/attachments/\(Self.attachmentID)"])
    }

    func testContentTypesByFileName() {
        XCTAssertEqual(AttachmentContentType.forFileName("IMG_0042.JPG"), "image/jpeg")
        XCTAssertEqual(AttachmentContentType.forFileName("notes.txt"), "text/plain")
        XCTAssertEqual(AttachmentContentType.forFileName("voice memo.m4a"), "audio/mp4")
        XCTAssertNil(AttachmentContentType.forFileName("IMG_0001.heic"))
        XCTAssertNil(AttachmentContentType.forFileName("index.html"))
        XCTAssertNil(AttachmentContentType.forFileName(".pdf"), "a hidden file, not a PDF")
        XCTAssertNil(AttachmentContentType.forFileName("README"))
        // Only types the server takes.
        let types = ["a.jpg", "a.jpeg", "a.png", "a.gif", "a.webp", "a.pdf", "a.txt", "a.zip", "a.mp4", "a.mp3", "a.m4a"]
            .compactMap(AttachmentContentType.forFileName)
        XCTAssertEqual(Set(types), Set(AttachmentContentType.accepted))
    }

    // MARK: - Push notifications

    private static let deviceToken = "5e0f2a8c0b1d4e7f9a3c6b2d8e1f4a7c0b3d6e9f2a5c8b1d4e7f0a3c6b9d2e5f"

    func testRegisteringADeviceSendsTheContractBodyAndTakes201Or200() async throws {
        let (api, http) = client { _, index in .json(index == 0 ? 201 : 200, try fixture("rest_device")) }
        let token = Data([0x5e, 0x0f, 0x2a, 0x8c, 0x0b, 0x1d, 0x4e, 0x7f, 0x9a, 0x3c, 0x6b, 0x2d, 0x8e, 0x1f, 0x4a, 0x7c,
                          0x0b, 0x3d, 0x6e, 0x9f, 0x2a, 0x5c, 0x8b, 0x1d, 0x4e, 0x7f, 0x0a, 0x3c, 0x6b, 0x9d, 0x2e, 0x5f])
        let first = try await api.registerDevice(token: DeviceToken.hex(token), environment: .sandbox, bundleID: "com.example.chat")
        let again = try await api.registerDevice(RegisterDeviceRequest(token: Self.deviceToken, environment: .sandbox, bundleID: "com.example.chat"))
        XCTAssertEqual(first, again)
        XCTAssertEqual(first.token, Self.deviceToken)

        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, ["POST /api/v1/devices", "POST /api/v1/devices"])
        XCTAssertEqual(requests[0].headers["Authorization"], "Bearer token-1")
        XCTAssertEqual(requests[0].headers["Content-Type"], "application/json")
        try assertSameJSON(try XCTUnwrap(requests[0].body), try fixture("rest_register_device_request"))
        XCTAssertEqual(requests[0].body, requests[1].body)
    }

    func testListingAndUnregisteringDevices() async throws {
        let (api, http) = client { request, _ in
            request.method == "DELETE" ? HTTPResponse(status: 204) : .json(200, try fixture("rest_device_list"))
        }
        let devices = try await api.devices()
        XCTAssertEqual(devices.map(\.environment), [.sandbox, .production])
        try await api.unregisterDevice(token: Self.deviceToken)
        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, [
            "GET /api/v1/devices",
            "DELETE /api/v1/devices/\(Self.deviceToken)",
        ])
        XCTAssertNil(requests[1].body)
        XCTAssertEqual(requests[1].headers["Authorization"], "Bearer token-1")
    }

    func testUnregisteringSomeoneElsesDeviceIsDeviceNotFound() async throws {
        let (api, _) = client { _, _ in
            try .json(404, encoding: ErrorBody(code: "device_not_found", message: "you have no device with this token"))
        }
        do {
            try await api.unregisterDevice(token: Self.deviceToken)
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error, .server(ServerError(status: 404, code: "device_not_found", message: "you have no device with this token")))
            XCTAssertEqual(error.serverCode, APIErrorCode.deviceNotFound)
        }
    }

    func testAnInvalidTokenIsRefusedWithItsCode() async throws {
        let (api, _) = client { _, _ in
            try .json(400, encoding: ErrorBody(code: "invalid_device_token", message: "a device token is hexadecimal"))
        }
        do {
            _ = try await api.registerDevice(token: "xyz", environment: .production, bundleID: "com.example.chat")
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error.serverCode, APIErrorCode.invalidDeviceToken)
        }
    }

    func testChannelNotificationLevels() async throws {
        let (api, http) = client { request, _ in
            if request.method == "PUT" {
                let body = try WireJSON.decode(SetNotificationLevel.self, from: request.body ?? Data())
                return try .json(200, encoding: ChannelNotifications(channelID: "0190a2b4-0000-7000-8000-000000000001", level: body.level))
            }
            return .json(200, try fixture("rest_channel_notifications"))
        }
        let channel = "0190a2b4-0000-7000-8000-000000000001"
        let level = try await api.notificationLevel(ofChannel: channel)
        XCTAssertEqual(level, .muted)
        let saved = try await api.setNotificationLevel(.mentions, ofChannel: channel)
        XCTAssertEqual(saved, .mentions)

        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, [
            "GET /api/v1/channels/\(channel)/notifications",
            "PUT /api/v1/channels/\(channel)/notifications",
        ])
        try assertSameJSON(try XCTUnwrap(requests[1].body), try fixture("rest_set_notification_level"))
    }

    func testNotificationLevelsOfAChannelOfOthersAreRefused() async throws {
        let (api, _) = client { request, _ in
            request.target.contains("/c-gone/")
                ? try .json(404, encoding: ErrorBody(code: "channel_not_found", message: "no such channel"))
                : try .json(403, encoding: ErrorBody(code: "not_a_member", message: "not a member"))
        }
        do {
            _ = try await api.notificationLevel(ofChannel: "c-other")
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error.serverCode, APIErrorCode.notAMember)
        }
        do {
            try await api.setNotificationLevel(.all, ofChannel: "c-gone")
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error.serverCode, APIErrorCode.channelNotFound)
        }
    }

    func testNotificationPreferences() async throws {
        let (api, http) = client { request, _ in
            request.method == "PUT" ? .json(200, request.body ?? Data()) : .json(200, try fixture("rest_notification_preferences"))
        }
        let preferences = try await api.notificationPreferences()
        XCTAssertTrue(preferences.hidePreviews)
        let saved = try await api.setNotificationPreferences(NotificationPreferences(hidePreviews: true))
        XCTAssertEqual(saved, preferences)
        let requests = await http.requests
        XCTAssertEqual(requests.map { "\($0.method) \($0.target)" }, [
            "GET /api/v1/users/me/notifications",
            "PUT /api/v1/users/me/notifications",
        ])
        try assertSameJSON(try XCTUnwrap(requests[1].body), try fixture("rest_notification_preferences"))
    }

    func testDeviceTokensAreLowercaseHex() {
        XCTAssertEqual(DeviceToken.hex(Data()), "")
        XCTAssertEqual(DeviceToken.hex(Data([0x00, 0x01, 0x7f, 0x80, 0xab, 0xff])), "00017f80abff")
        let token = Data((0..<32).map { UInt8($0 * 8) })
        let hex = DeviceToken.hex(token)
        XCTAssertEqual(hex.count, 64)
        XCTAssertEqual(hex, hex.lowercased())
        XCTAssertEqual(hex, token.map { String(format: "%02x", $0) }.joined())
        XCTAssertTrue(DeviceToken.isValid(hex: hex))
        XCTAssertTrue(DeviceToken.isValid(hex: hex.uppercased()))
        XCTAssertFalse(DeviceToken.isValid(hex: String(hex.dropLast())), "half a byte")
        XCTAssertFalse(DeviceToken.isValid(hex: String(repeating: "g", count: 64)))
        XCTAssertFalse(DeviceToken.isValid(hex: String(repeating: "a", count: 30)), "15 bytes")
        XCTAssertFalse(DeviceToken.isValid(hex: String(repeating: "a", count: 202)), "101 bytes")
    }

    func testTheDirectoryIsAskedForASortAPageSizeAndTheNextCursor() async throws {
        let (api, http) = client { request, _ in
            if request.target.hasPrefix("/api/v1/users?") { return .json(200, try fixture("rest_user_list")) }
            return request.target.contains("cursor=")
                ? .json(200, try fixture("rest_directory_page_last"))
                : .json(200, try fixture("rest_directory_page"))
        }
        let first = try await api.channelDirectory()
        XCTAssertEqual(first.channels.count, 2)
        let cursor = try XCTUnwrap(first.nextCursor)
        let last = try await api.channelDirectory(sort: .activity, cursor: cursor, limit: 500)
        XCTAssertNil(last.nextCursor)
        _ = try await api.searchUsers(query: "Zoë Q")
        let targets = await http.requests.map(\.target)
        XCTAssertEqual(targets, [
            "/api/v1/channels/directory?sort=members",
            "/api/v1/channels/directory?sort=activity&limit=100&cursor=\(cursor)",
            "/api/v1/users?query=Zo%C3%AB%20Q",
        ])
    }

    func testHistoryCursorsAndLimit() async throws {
        let (api, http) = client { _, _ in .json(200, try fixture("rest_message_list")) }
        let page = try await api.messages(inChannel: "c1")
        XCTAssertEqual(page.map(\.seq), [41, 42])
        _ = try await api.messages(inChannel: "c1", cursor: .before(messageID: "m41"), limit: 20)
        _ = try await api.messages(inChannel: "c1", cursor: .after(messageID: "m42"), limit: 500)
        let targets = await http.requests.map(\.target)
        XCTAssertEqual(targets, [
            "/api/v1/channels/c1/messages",
            "/api/v1/channels/c1/messages?before=m41&limit=20",
            "/api/v1/channels/c1/messages?after=m42&limit=100",
        ])
    }

    func testContractErrorsBecomeServerErrors() async throws {
        let (api, _) = client { _, _ in .json(409, try fixture("rest_error")) }
        do {
            _ = try await api.register(username: "alice", password: "whatever123")
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error, .server(ServerError(status: 409, code: "username_taken", message: "that username is already taken")))
            XCTAssertEqual(error.serverCode, "username_taken")
        }
    }

    func testAnErrorPageWithoutTheContractBodyStillGivesAStatusCode() async throws {
        let (api, _) = client { _, _ in HTTPResponse(status: 502, body: Data("<html>Bad Gateway</html>".utf8)) }
        do {
            _ = try await api.channels()
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error.serverCode, "http_502")
        }
    }

    func testA401IsRetriedOnceWithARefreshedToken() async throws {
        let tokens = FakeTokens()
        let (api, http) = client(tokens: tokens) { request, _ in
            if request.headers["Authorization"] == "Bearer token-2" {
                return .json(200, try fixture("rest_user"))
            }
            return .json(401, try WireJSON.encode(ErrorBody(code: "invalid_token", message: "expired")))
        }
        let me = try await api.me()
        XCTAssertEqual(me.username, "alice")
        let authorizations = await http.requests.map { $0.headers["Authorization"] }
        XCTAssertEqual(authorizations, ["Bearer token-1", "Bearer token-2"])
        let rejected = await tokens.rejected
        XCTAssertEqual(rejected, ["token-1"])
    }

    func testASecond401IsNotRetriedAgain() async throws {
        let (api, http) = client { _, _ in .json(401, try WireJSON.encode(ErrorBody(code: "invalid_token", message: "no"))) }
        do {
            _ = try await api.me()
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertTrue(error.isUnauthorized)
        }
        let count = await http.requests.count
        XCTAssertEqual(count, 2)
    }

    func testAuthenticatedCallsNeedSomeoneSignedIn() async throws {
        let (api, http) = client(tokens: nil) { _, _ in .json(200, Data("{}".utf8)) }
        do {
            _ = try await api.me()
            XCTFail("expected an error")
        } catch let error as ChatError {
            XCTAssertEqual(error, .notSignedIn)
        }
        let count = await http.requests.count
        XCTAssertEqual(count, 0)
    }

    func testNoAnswerIsANetworkError() async throws {
        let (api, _) = client { _, _ in throw URLError(.notConnectedToInternet) }
        do {
            _ = try await api.channels()
            XCTFail("expected an error")
        } catch ChatError.network {
            // expected
        }
    }

    func testAnUnexpectedBodyIsAnInvalidResponse() async throws {
        let (api, _) = client { _, _ in .json(200, Data(#"{"nope": true}"#.utf8)) }
        do {
            _ = try await api.me()
            XCTFail("expected an error")
        } catch ChatError.invalidResponse {
            // expected
        }
    }
}

final class TokenManagerTests: XCTestCase {
    /// A clock the test moves.
    private final class TestClock: @unchecked Sendable {
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

    /// An auth server: login gives access-1/refresh-1, each refresh rotates to the next pair and
    /// refuses a refresh token used before.
    private func authServer() -> ScriptedHTTP {
        let state = RotationState()
        return ScriptedHTTP { request, _ in
            switch request.target {
            case "/api/v1/auth/login":
                return try .json(200, encoding: Sample.session(access: "access-1", refresh: "refresh-1", expiresIn: 900))
            case "/api/v1/auth/refresh":
                let body = try WireJSON.decode(RefreshRequest.self, from: request.body ?? Data())
                guard let next = state.rotate(body.refreshToken) else {
                    return try .json(401, encoding: ErrorBody(code: "invalid_refresh_token", message: "used"))
                }
                return try .json(200, encoding: Sample.session(access: "access-\(next)", refresh: "refresh-\(next)", expiresIn: 900))
            case "/api/v1/auth/logout":
                return HTTPResponse(status: 204)
            default:
                return HTTPResponse(status: 404)
            }
        }
    }

    private final class RotationState: @unchecked Sendable {
        private let lock = NSLock()
        private var live = 1

        /// The number of the next pair if `token` is the live refresh token.
        func rotate(_ token: String) -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard token == "refresh-\(live)" else { return nil }
            live += 1
            return live
        }
    }

    func testTokensAreRefreshedShortlyBeforeTheyExpire() async throws {
        let clock = TestClock()
        let http = authServer()
        let store = InMemoryTokenStore()
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: store, now: { clock.now })
        _ = try await manager.signIn(username: "alice", password: "secret-password")

        var token = try await manager.accessToken()
        XCTAssertEqual(token, "access-1")
        clock.advance(800) // 100 s left: more than the 60 s margin
        token = try await manager.accessToken()
        XCTAssertEqual(token, "access-1")
        clock.advance(50) // 50 s left
        token = try await manager.accessToken()
        XCTAssertEqual(token, "access-2")

        // The rotated refresh token is what is kept.
        let saved = await store.load()
        XCTAssertEqual(saved?.refreshToken, "refresh-2")
    }

    func testConcurrentCallersShareOneRefresh() async throws {
        let http = authServer()
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: InMemoryTokenStore())
        _ = try await manager.signIn(username: "alice", password: "secret-password")

        async let first = manager.accessTokenAfterRejection(of: "access-1")
        async let second = manager.accessTokenAfterRejection(of: "access-1")
        async let third = manager.accessTokenAfterRejection(of: "access-1")
        let tokens = try await [first, second, third]
        XCTAssertEqual(Set(tokens), ["access-2"])
        let refreshes = await http.requests.filter { $0.target == "/api/v1/auth/refresh" }.count
        XCTAssertEqual(refreshes, 1)
    }

    func testARejectedTokenThatWasAlreadyReplacedIsNotRefreshedAgain() async throws {
        let http = authServer()
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: InMemoryTokenStore())
        _ = try await manager.signIn(username: "alice", password: "secret-password")
        let fresh = try await manager.refresh()
        let again = try await manager.accessTokenAfterRejection(of: "access-1")
        XCTAssertEqual(fresh, again)
        let refreshes = await http.requests.filter { $0.target == "/api/v1/auth/refresh" }.count
        XCTAssertEqual(refreshes, 1)
    }

    func testARefusedRefreshTokenEndsTheSession() async throws {
        let http = ScriptedHTTP { _, _ in try .json(401, encoding: ErrorBody(code: "invalid_refresh_token", message: "reused")) }
        let store = InMemoryTokenStore(Credentials(
            session: Sample.session(access: "old", refresh: "dead"),
            receivedAt: Date.distantPast
        ))
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: store)
        let user = try await manager.restore()
        XCTAssertEqual(user, Sample.alice)
        do {
            _ = try await manager.accessToken()
            XCTFail("expected the session to expire")
        } catch let error as ChatError {
            XCTAssertEqual(error, .sessionExpired)
        }
        let signedIn = await manager.isSignedIn
        XCTAssertFalse(signedIn)
        let saved = await store.load()
        XCTAssertNil(saved)
    }

    func testANetworkFailureWhileRefreshingKeepsTheSession() async throws {
        let http = ScriptedHTTP { _, _ in throw URLError(.timedOut) }
        let store = InMemoryTokenStore(Credentials(
            session: Sample.session(access: "old", refresh: "r"),
            receivedAt: Date.distantPast
        ))
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: store)
        try await manager.restore()
        do {
            _ = try await manager.accessToken()
            XCTFail("expected a network error")
        } catch ChatError.network {
            // expected
        }
        let signedIn = await manager.isSignedIn
        XCTAssertTrue(signedIn)
    }

    func testSignOutForgetsLocallyAndRevokesOnTheServer() async throws {
        let http = authServer()
        let store = InMemoryTokenStore()
        let manager = TokenManager(api: APIClient(server: .localDefault, http: http), store: store)
        _ = try await manager.signIn(username: "alice", password: "secret-password")
        await manager.signOut()
        let saved = await store.load()
        XCTAssertNil(saved)
        let logoutRecorded = await http.requests.last
        let logout = try XCTUnwrap(logoutRecorded)
        XCTAssertEqual(logout.target, "/api/v1/auth/logout")
        try assertSameJSON(try XCTUnwrap(logout.body), try WireJSON.encode(RefreshRequest(refreshToken: "refresh-1")))
        do {
            _ = try await manager.accessToken()
            XCTFail("expected notSignedIn")
        } catch let error as ChatError {
            XCTAssertEqual(error, .notSignedIn)
        }
    }

    func testCredentialsRefreshAtEightyPercentOrAMinuteBeforeExpiry() {
        let long = Credentials(session: Sample.session(access: "a", refresh: "r", expiresIn: 900), receivedAt: Sample.date)
        XCTAssertEqual(long.refreshAfter, Sample.date + 840)
        XCTAssertEqual(long.accessTokenExpiresAt, Sample.date + 900)
        let short = Credentials(session: Sample.session(access: "a", refresh: "r", expiresIn: 30), receivedAt: Sample.date)
        XCTAssertEqual(short.refreshAfter, Sample.date + 24)
    }
}
