import Foundation

// Push notifications as the REST API sees them (issue #16), mirroring
// `chat-types/src/notifications.rs`: the devices a user registers, how much of each channel
// notifies them, and whether notifications show a preview.

/// The push service a device is reached through. Only Apple's today; a platform this client
/// does not know (in `GET /devices`, say) decodes as `.other` instead of failing the list.
public enum PushPlatform: OpenWireString {
    /// Apple Push Notification service.
    case apns
    case other(String)

    public init(rawValue: String) {
        self = rawValue == "apns" ? .apns : .other(rawValue)
    }

    public var rawValue: String {
        switch self {
        case .apns: "apns"
        case .other(let value): value
        }
    }
}

/// Which APNs server a token belongs to: an app signed for development gets sandbox tokens, one
/// from TestFlight or the App Store production tokens.
public enum PushEnvironment: String, Codable, Sendable, Hashable, CaseIterable {
    case production
    case sandbox
}

/// `POST /devices`: registers (or registers again) a device of the caller. A token belongs to
/// one user: registering a token another user had moves it to the caller.
public struct RegisterDeviceRequest: Codable, Sendable, Hashable {
    public var platform: PushPlatform
    /// The device token in hexadecimal (`DeviceToken.hex(_:)`).
    public var token: String
    public var environment: PushEnvironment
    /// The app's bundle id: the `apns-topic` its notifications are sent with.
    public var bundleID: String

    public init(platform: PushPlatform = .apns, token: String, environment: PushEnvironment, bundleID: String) {
        self.platform = platform
        self.token = token
        self.environment = environment
        self.bundleID = bundleID
    }

    enum CodingKeys: String, CodingKey {
        case platform
        case token
        case environment
        case bundleID = "bundle_id"
    }
}

/// A registered device (`POST /devices`, `GET /devices`).
public struct Device: Codable, Sendable, Hashable, Identifiable {
    public var platform: PushPlatform
    /// Lowercase hexadecimal.
    public var token: String
    public var environment: PushEnvironment
    public var bundleID: String
    /// When the caller first registered it.
    public var createdAt: Date
    /// When it was last registered (the app registers at every launch).
    public var updatedAt: Date

    public var id: String { token }

    public init(
        platform: PushPlatform = .apns,
        token: String,
        environment: PushEnvironment,
        bundleID: String,
        createdAt: Date,
        updatedAt: Date
    ) {
        self.platform = platform
        self.token = token
        self.environment = environment
        self.bundleID = bundleID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case platform
        case token
        case environment
        case bundleID = "bundle_id"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

/// `GET /devices`: the caller's devices, most recently registered first.
public struct DeviceList: Codable, Sendable, Hashable {
    public var devices: [Device]

    public init(devices: [Device]) {
        self.devices = devices
    }
}

/// How much of a channel notifies a member's devices.
///
/// The wire's `"none"` is `.muted` here: a case named `none` would be confused with
/// `Optional.none` wherever a level is optional.
public enum NotificationLevel: String, Codable, Sendable, Hashable, CaseIterable, Identifiable {
    /// Every message from someone else (the server's default).
    case all
    /// Only messages that mention the member.
    case mentions
    /// Nothing.
    case muted = "none"

    public var id: String { rawValue }

    /// What a picker shows: "All", "Mentions", "None".
    public var title: String {
        switch self {
        case .all: "All"
        case .mentions: "Mentions"
        case .muted: "None"
        }
    }
}

/// `PUT /channels/{channel_id}/notifications`.
public struct SetNotificationLevel: Codable, Sendable, Hashable {
    public var level: NotificationLevel

    public init(level: NotificationLevel) {
        self.level = level
    }
}

/// A member's notification level for one channel (`GET` / `PUT /channels/{id}/notifications`).
public struct ChannelNotifications: Codable, Sendable, Hashable {
    public var channelID: String
    public var level: NotificationLevel

    public init(channelID: String, level: NotificationLevel) {
        self.channelID = channelID
        self.level = level
    }

    enum CodingKeys: String, CodingKey {
        case channelID = "channel_id"
        case level
    }
}

/// `GET` / `PUT /users/me/notifications`: the caller's notification preferences.
public struct NotificationPreferences: Codable, Sendable, Hashable {
    /// Notifications say who wrote and where, never what (for lock screens others can see).
    public var hidePreviews: Bool

    public init(hidePreviews: Bool = false) {
        self.hidePreviews = hidePreviews
    }

    enum CodingKeys: String, CodingKey {
        case hidePreviews = "hide_previews"
    }
}

/// APNs device tokens as the API takes them.
public enum DeviceToken {
    /// `token` (the `Data` the OS hands to `didRegisterForRemoteNotificationsWithDeviceToken`)
    /// in lowercase hexadecimal, two digits per byte: the form the server stores and returns.
    public static func hex(_ token: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(token.count * 2)
        for byte in token {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Whether the server accepts `hex` as a token: hexadecimal, a whole number of bytes,
    /// `Limits.deviceTokenMinBytes` to `Limits.deviceTokenMaxBytes` of them.
    public static func isValid(hex: String) -> Bool {
        let utf8 = hex.utf8
        return utf8.count % 2 == 0
            && (Limits.deviceTokenMinBytes * 2...Limits.deviceTokenMaxBytes * 2).contains(utf8.count)
            && utf8.allSatisfy { byte in
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                    || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
            }
    }
}

/// Error codes of REST answers (`fixtures/wire/rest_error_codes.json`) this client acts on.
/// `ChatError.serverCode` carries them.
public enum APIErrorCode {
    public static let notAMember = "not_a_member"
    public static let channelNotFound = "channel_not_found"
    /// `DELETE /devices/{token}`: not a device of the caller (never registered, moved to another
    /// user, or already unregistered).
    public static let deviceNotFound = "device_not_found"
    /// `POST` / `DELETE /devices`: the token is not 16 to 100 bytes of hexadecimal.
    public static let invalidDeviceToken = "invalid_device_token"
    /// `POST /devices`: the bundle id is not reverse DNS.
    public static let invalidBundleID = "invalid_bundle_id"
    public static let rateLimited = "rate_limited"
    /// `POST …/attachments`: a content type the server does not take (400).
    public static let unsupportedType = "unsupported_type"
    /// `POST …/attachments`: a file over the server's largest (413).
    public static let attachmentTooLarge = "attachment_too_large"
    /// `POST …/attachments`: 20 uploads created and not completed within the hour (409).
    public static let tooManyUploads = "too_many_uploads"
    /// `…/complete` before the bytes arrived, or a link of an attachment not completed (409).
    public static let uploadIncomplete = "upload_incomplete"
    /// `…/complete`: the bytes that arrived are not the declared size or type; they were
    /// deleted (409): upload them again with a new URL.
    public static let uploadMismatch = "upload_mismatch"
    /// No attachment with this id in this channel, or (`…/upload-url`) not the caller's upload
    /// still waiting for its bytes (404).
    public static let unknownAttachment = "unknown_attachment"
}
