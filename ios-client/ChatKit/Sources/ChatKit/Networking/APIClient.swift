import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Supplies access tokens to authenticated calls. `TokenManager` is the real one.
public protocol AccessTokenProvider: Sendable {
    /// A token that is not about to expire (refreshing first if it is).
    func accessToken() async throws -> String
    /// Called after the server refused `rejected` (HTTP 401, WebSocket close 4401): a refreshed
    /// token, or the current one if another caller has refreshed already.
    func accessTokenAfterRejection(of rejected: String) async throws -> String
}

/// Which page of a channel's history to fetch. Pages are in channel order, oldest first.
public enum HistoryCursor: Sendable, Hashable {
    /// The newest messages.
    case latest
    /// The messages just before this one.
    case before(messageID: String)
    /// The messages just after this one.
    case after(messageID: String)
}

/// The REST API (`/api/v1`). A value type: copies share the HTTP stack and token provider.
///
/// Authenticated calls get their token from the `AccessTokenProvider`; when the server answers
/// 401 they ask it for a fresh token once and repeat the call.
public struct APIClient: Sendable {
    public let server: ServerEndpoint
    private let http: any HTTPClient
    private let tokens: (any AccessTokenProvider)?

    public init(
        server: ServerEndpoint,
        http: any HTTPClient = URLSessionHTTPClient(),
        tokens: (any AccessTokenProvider)? = nil
    ) {
        self.server = server
        self.http = http
        self.tokens = tokens
    }

    /// The same client, authenticating its calls with `tokens`.
    public func authenticated(by tokens: any AccessTokenProvider) -> APIClient {
        APIClient(server: server, http: http, tokens: tokens)
    }

    // MARK: - Auth

    /// `POST /auth/register`: creates the account and signs in.
    public func register(username: String, password: String, displayName: String? = nil) async throws -> Session {
        let body = RegisterRequest(username: username, password: password, displayName: displayName)
        return try await call("POST", "auth/register", body: body, authenticated: false)
    }

    /// `POST /auth/login`.
    public func login(username: String, password: String) async throws -> Session {
        try await call("POST", "auth/login", body: LoginRequest(username: username, password: password), authenticated: false)
    }

    /// `POST /auth/refresh`: a new session; the refresh token is rotated, the old one is dead.
    public func refresh(refreshToken: String) async throws -> Session {
        try await call("POST", "auth/refresh", body: RefreshRequest(refreshToken: refreshToken), authenticated: false)
    }

    /// `POST /auth/logout`: revokes the refresh token.
    public func logout(refreshToken: String) async throws {
        try await callWithoutResult("POST", "auth/logout", body: RefreshRequest(refreshToken: refreshToken), authenticated: false)
    }

    // MARK: - Users

    /// `GET /users/me`.
    public func me() async throws -> User {
        try await call("GET", "users/me")
    }

    /// `GET /users?query=<text>`: people whose username starts with `text` or whose display name
    /// contains it, ignoring case; the exact username first, at most 20.
    public func searchUsers(query text: String) async throws -> [User] {
        let list: UserList = try await call("GET", "users", query: [URLQueryItem(name: "query", value: text)])
        return list.users
    }

    /// The same search; `prefix` was its only use before display names matched too.
    public func searchUsers(prefix: String) async throws -> [User] {
        try await searchUsers(query: prefix)
    }

    // MARK: - Channels

    /// `POST /channels`: the creator is a member.
    public func createChannel(name: String, description: String? = nil) async throws -> Channel {
        try await call("POST", "channels", body: CreateChannelRequest(name: name, description: description))
    }

    /// `GET /channels`: the caller's groups and direct conversations.
    public func channels() async throws -> [Channel] {
        try await conversations().map(\.channel)
    }

    /// `GET /channels`: the caller's groups and direct conversations, most recent activity
    /// first, each with its newest message and the caller's read state (unread and mention
    /// counts).
    public func conversations() async throws -> [Conversation] {
        let list: ConversationList = try await call("GET", "channels")
        return list.channels
    }

    /// `GET /channels/search?query=<text>`: group channels anyone may join.
    public func searchChannels(query: String) async throws -> [Channel] {
        let list: ChannelList = try await call("GET", "channels/search", query: [URLQueryItem(name: "query", value: query)])
        return list.channels
    }

    /// `GET /channels/directory`: one page of every group channel in `sort`'s order. Pass the
    /// previous page's `nextCursor` (with the same sort) for the next one. `limit` is clamped to
    /// 1...100; `nil` leaves the server's default (20).
    public func channelDirectory(sort: DirectorySort = .members, cursor: String? = nil, limit: Int? = nil) async throws -> DirectoryPage {
        var query = [URLQueryItem(name: "sort", value: sort.rawValue)]
        if let limit {
            query.append(URLQueryItem(name: "limit", value: String(min(max(limit, 1), Limits.directoryMaxLimit))))
        }
        if let cursor {
            query.append(URLQueryItem(name: "cursor", value: cursor))
        }
        return try await call("GET", "channels/directory", query: query)
    }

    /// `POST /channels/{id}/join`. Joining twice is not an error.
    public func joinChannel(id channelID: String) async throws -> Channel {
        try await call("POST", "channels/\(ServerEndpoint.pathSegment(channelID))/join")
    }

    /// `POST /channels/{id}/leave`.
    public func leaveChannel(id channelID: String) async throws {
        try await callWithoutResult("POST", "channels/\(ServerEndpoint.pathSegment(channelID))/leave")
    }

    /// `GET /channels/{id}/members`.
    public func members(ofChannel channelID: String) async throws -> [User] {
        let list: MemberList = try await call("GET", "channels/\(ServerEndpoint.pathSegment(channelID))/members")
        return list.members
    }

    /// `POST /dms`: the direct conversation with `userID`; the same pair always gets the same one.
    public func openDirectConversation(with userID: String) async throws -> Channel {
        try await call("POST", "dms", body: CreateDMRequest(userID: userID))
    }

    // MARK: - History

    /// `GET /channels/{id}/messages`: one page, oldest first. `limit` is clamped to 1...100;
    /// `nil` leaves the server's default (50).
    public func messages(inChannel channelID: String, cursor: HistoryCursor = .latest, limit: Int? = nil) async throws -> [Message] {
        var query: [URLQueryItem] = []
        switch cursor {
        case .latest:
            break
        case .before(let messageID):
            query.append(URLQueryItem(name: "before", value: messageID))
        case .after(let messageID):
            query.append(URLQueryItem(name: "after", value: messageID))
        }
        if let limit {
            query.append(URLQueryItem(name: "limit", value: String(min(max(limit, 1), Limits.historyMaxLimit))))
        }
        let list: MessageList = try await call("GET", "channels/\(ServerEndpoint.pathSegment(channelID))/messages", query: query)
        return list.messages
    }

    // MARK: - Attachments

    /// `POST /channels/{id}/attachments`: declares a file about to be uploaded to the channel;
    /// answers where to PUT its bytes (`putAttachment`). Refusals: `unsupported_type`,
    /// `invalid_name` (400), `attachment_too_large` (413), `too_many_uploads` (409).
    public func createAttachment(_ file: CreateAttachment, inChannel channelID: String) async throws -> AttachmentUpload {
        try await call("POST", "channels/\(ServerEndpoint.pathSegment(channelID))/attachments", body: file)
    }

    /// `POST /channels/{id}/attachments/{aid}/upload-url`: a new upload URL for the caller's
    /// upload still waiting for its bytes, once the first one expired.
    public func renewUploadURL(ofAttachment attachmentID: String, inChannel channelID: String) async throws -> AttachmentUpload {
        try await call("POST", attachmentPath(attachmentID, channelID) + "/upload-url")
    }

    /// PUTs the bytes to the object store with exactly the presigned request's method, URL and
    /// headers, and without the access token: the URL's signature is the permission. The store
    /// refuses (403) an expired URL and bytes of another length or type. `progress`: told the
    /// bytes sent so far as they leave (`HTTPClient.upload`).
    public func putAttachment(_ data: Data, to upload: UploadRequest, progress: TransferProgressHandler? = nil) async throws {
        guard let url = URL(string: upload.url), url.scheme == "http" || url.scheme == "https" else {
            throw ChatError.invalidResponse("upload URL \(upload.url)")
        }
        let request = HTTPRequest(method: upload.method, url: url, headers: upload.headers, body: data)
        let response = try await transmit(request, token: nil, progress: progress)
        guard (200..<300).contains(response.status) else {
            throw ChatError.server(Self.serverError(from: response))
        }
    }

    /// `POST /channels/{id}/attachments/{aid}/complete`: the bytes are there; the server checks
    /// them and measures an image. `upload_incomplete` (409): PUT them first;
    /// `upload_mismatch` (409): they were not what was declared, and are gone.
    public func completeAttachment(_ attachmentID: String, inChannel channelID: String) async throws -> Attachment {
        try await call("POST", attachmentPath(attachmentID, channelID) + "/complete")
    }

    /// `GET /channels/{id}/attachments/{aid}`: short-lived links to the file and its thumbnail
    /// (valid `expiresIn` seconds; ask again after that).
    public func attachmentLink(_ attachmentID: String, inChannel channelID: String) async throws -> AttachmentLink {
        try await call("GET", attachmentPath(attachmentID, channelID))
    }

    /// The whole upload of one file, ready to be sent (`MessageAttachment(_:)`, then a send's
    /// `attachments`): declares it, PUTs the bytes, completes it. An upload URL the store
    /// refuses (it expired while waiting, say) is renewed once. Cancelling the task stops it;
    /// an upload left pending is removed by the server within the hour.
    public func uploadAttachment(
        _ data: Data,
        name: String,
        contentType: String,
        toChannel channelID: String
    ) async throws -> Attachment {
        let file = CreateAttachment(name: name, contentType: contentType, size: UInt64(data.count))
        let created = try await createAttachment(file, inChannel: channelID)
        do {
            try await putAttachment(data, to: created.upload)
        } catch let error as ChatError {
            guard case .server(let refusal) = error, refusal.status == 403 else { throw error }
            let renewed = try await renewUploadURL(ofAttachment: created.id, inChannel: channelID)
            try await putAttachment(data, to: renewed.upload)
        }
        return try await completeAttachment(created.id, inChannel: channelID)
    }

    /// Uploads the file at `fileURL` (a local file) under its own name. `contentType`: nil to
    /// take the one its extension implies (`AttachmentContentType.forFileName`); a file without
    /// an accepted one throws `ChatError.fileNotAttachable` before anything is sent.
    public func uploadAttachment(
        fileAt fileURL: URL,
        contentType: String? = nil,
        toChannel channelID: String
    ) async throws -> Attachment {
        let name = fileURL.lastPathComponent
        guard let type = contentType ?? AttachmentContentType.forFileName(name) else {
            throw ChatError.fileNotAttachable(
                name: name,
                reason: "only images (JPEG, PNG, GIF, WebP), PDF, text, ZIP, MP4, MP3 and M4A files can be"
            )
        }
        let data: Data
        do {
            data = try Data(contentsOf: fileURL, options: .mappedIfSafe)
        } catch {
            throw ChatError.fileNotAttachable(name: name, reason: "it could not be read (\(error.localizedDescription))")
        }
        return try await uploadAttachment(data, name: name, contentType: type, toChannel: channelID)
    }

    private func attachmentPath(_ attachmentID: String, _ channelID: String) -> String {
        "channels/\(ServerEndpoint.pathSegment(channelID))/attachments/\(ServerEndpoint.pathSegment(attachmentID))"
    }

    // MARK: - Push notifications

    /// `POST /devices`: registers this device's push token for the caller (201 when new to
    /// them, 200 when registered again; both give the device). A token belongs to whoever
    /// registered it last.
    public func registerDevice(_ request: RegisterDeviceRequest) async throws -> Device {
        try await call("POST", "devices", body: request)
    }

    /// `POST /devices` for an APNs token in hexadecimal (`DeviceToken.hex(_:)`).
    public func registerDevice(token: String, environment: PushEnvironment, bundleID: String) async throws -> Device {
        try await registerDevice(RegisterDeviceRequest(platform: .apns, token: token, environment: environment, bundleID: bundleID))
    }

    /// `GET /devices`: the caller's devices, most recently registered first.
    public func devices() async throws -> [Device] {
        let list: DeviceList = try await call("GET", "devices")
        return list.devices
    }

    /// `DELETE /devices/{token}`: stops notifying the device. Throws `device_not_found` (404)
    /// when the token is not one of the caller's devices.
    public func unregisterDevice(token: String) async throws {
        try await callWithoutResult("DELETE", "devices/\(ServerEndpoint.pathSegment(token))")
    }

    /// `GET /channels/{id}/notifications`: how much of the channel notifies the caller
    /// (`not_a_member` 403, `channel_not_found` 404).
    public func notificationLevel(ofChannel channelID: String) async throws -> NotificationLevel {
        let answer: ChannelNotifications = try await call("GET", "channels/\(ServerEndpoint.pathSegment(channelID))/notifications")
        return answer.level
    }

    /// `PUT /channels/{id}/notifications`: the level the server keeps (`not_a_member` 403,
    /// `channel_not_found` 404).
    @discardableResult
    public func setNotificationLevel(_ level: NotificationLevel, ofChannel channelID: String) async throws -> NotificationLevel {
        let answer: ChannelNotifications = try await call(
            "PUT",
            "channels/\(ServerEndpoint.pathSegment(channelID))/notifications",
            body: SetNotificationLevel(level: level)
        )
        return answer.level
    }

    /// `GET /users/me/notifications`.
    public func notificationPreferences() async throws -> NotificationPreferences {
        try await call("GET", "users/me/notifications")
    }

    /// `PUT /users/me/notifications`: the preferences the server keeps.
    @discardableResult
    public func setNotificationPreferences(_ preferences: NotificationPreferences) async throws -> NotificationPreferences {
        try await call("PUT", "users/me/notifications", body: preferences)
    }

    // MARK: - Plumbing

    private func call<Response: Decodable>(
        _ method: String,
        _ path: String,
        query: [URLQueryItem] = [],
        body: (any Encodable)? = nil,
        authenticated: Bool = true
    ) async throws -> Response {
        let response = try await perform(method, path, query: query, body: body, authenticated: authenticated)
        do {
            return try WireJSON.decode(Response.self, from: response.body)
        } catch {
            throw ChatError.invalidResponse("\(method) \(path): \(error)")
        }
    }

    private func callWithoutResult(
        _ method: String,
        _ path: String,
        body: (any Encodable)? = nil,
        authenticated: Bool = true
    ) async throws {
        _ = try await perform(method, path, query: [], body: body, authenticated: authenticated)
    }

    /// Sends the request (again with a fresh token after a 401) and turns any non-2xx into a
    /// `ChatError.server`.
    private func perform(
        _ method: String,
        _ path: String,
        query: [URLQueryItem],
        body: (any Encodable)?,
        authenticated: Bool
    ) async throws -> HTTPResponse {
        var request = HTTPRequest(method: method, url: try server.apiURL(path: path, query: query))
        request.headers["Accept"] = "application/json"
        if let body {
            request.body = try WireJSON.encode(body)
            request.headers["Content-Type"] = "application/json"
        }

        var response: HTTPResponse
        if authenticated {
            guard let tokens else { throw ChatError.notSignedIn }
            let token = try await tokens.accessToken()
            response = try await transmit(request, token: token)
            if response.status == 401 {
                let fresh = try await tokens.accessTokenAfterRejection(of: token)
                response = try await transmit(request, token: fresh)
            }
        } else {
            response = try await transmit(request, token: nil)
        }

        guard (200..<300).contains(response.status) else {
            throw ChatError.server(Self.serverError(from: response))
        }
        return response
    }

    private func transmit(_ request: HTTPRequest, token: String?, progress: TransferProgressHandler? = nil) async throws -> HTTPResponse {
        var request = request
        if let token {
            request.headers["Authorization"] = "Bearer \(token)"
        }
        do {
            if let progress {
                return try await http.upload(request, progress: progress)
            }
            return try await http.send(request)
        } catch let error as ChatError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as URLError where error.code == .cancelled {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw ChatError.network(error.localizedDescription)
        }
    }

    static func serverError(from response: HTTPResponse) -> ServerError {
        if let body = try? WireJSON.decode(ErrorBody.self, from: response.body) {
            return ServerError(status: response.status, code: body.error.code, message: body.error.message)
        }
        return ServerError(
            status: response.status,
            code: "http_\(response.status)",
            message: HTTPURLResponse.localizedString(forStatusCode: response.status)
        )
    }
}
