import Foundation

// WebSocket frames (`/ws`), mirroring `chat-types/src/ws.rs`: JSON text frames tagged by `type`.

/// Frames the client sends.
public enum ClientFrame: Sendable, Hashable, Codable {
    case send(channelID: String, clientMsgID: String, body: String)
    /// After a reconnect: the last message id seen, per channel id.
    case resume(channels: [String: String])
    case ping
    /// The user is typing in the channel (send at most every `Limits.typingIntervalMs`).
    case typing(channelID: String)

    enum CodingKeys: String, CodingKey {
        case type
        case channelID = "channel_id"
        case clientMsgID = "client_msg_id"
        case body
        case channels
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "send":
            self = .send(
                channelID: try container.decode(String.self, forKey: .channelID),
                clientMsgID: try container.decode(String.self, forKey: .clientMsgID),
                body: try container.decode(String.self, forKey: .body)
            )
        case "resume":
            self = .resume(channels: try container.decode([String: String].self, forKey: .channels))
        case "ping":
            self = .ping
        case "typing":
            self = .typing(channelID: try container.decode(String.self, forKey: .channelID))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type,
                in: container,
                debugDescription: "Unknown client frame type \(type)"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .send(channelID, clientMsgID, body):
            try container.encode("send", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(clientMsgID, forKey: .clientMsgID)
            try container.encode(body, forKey: .body)
        case let .resume(channels):
            try container.encode("resume", forKey: .type)
            try container.encode(channels, forKey: .channels)
        case .ping:
            try container.encode("ping", forKey: .type)
        case let .typing(channelID):
            try container.encode("typing", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
        }
    }
}

/// An `error` frame: a request was refused. The connection stays open unless it is closed too.
public struct FrameError: Sendable, Hashable, Codable {
    public var code: String
    public var message: String
    /// Set when the refused request was a `send`.
    public var clientMsgID: String?
    /// With `rate_limited`: resend (same client_msg_id) after this many milliseconds.
    public var retryAfterMs: Int?

    public init(code: String, message: String, clientMsgID: String? = nil, retryAfterMs: Int? = nil) {
        self.code = code
        self.message = message
        self.clientMsgID = clientMsgID
        self.retryAfterMs = retryAfterMs
    }

    enum CodingKeys: String, CodingKey {
        case code
        case message
        case clientMsgID = "client_msg_id"
        case retryAfterMs = "retry_after_ms"
    }
}

/// Frames the server sends. A frame type this client does not know decodes as `.unknown`, so a
/// newer server does not break the connection.
public enum ServerFrame: Sendable, Hashable, Codable {
    /// First frame after the upgrade.
    case ready(userID: String, connectionID: String)
    /// The message is durably accepted. Its `seq` is usually absent: the message gets its place
    /// later, and arrives again as a `message` frame.
    case ack(clientMsgID: String, message: Message)
    case message(Message)
    /// Every missed message of these channels was sent before this frame; live ones follow.
    case resumed(channelIDs: [String])
    case error(FrameError)
    case pong
    /// `userID` is typing in the channel: show it for `expiresInMs`. Never stored or resumed.
    case typing(channelID: String, userID: String, expiresInMs: Int)
    /// A DM peer came online or went offline (`lastSeenAt`: when their last device left).
    case presence(userID: String, online: Bool, lastSeenAt: Date?)
    case unknown(type: String)

    enum CodingKeys: String, CodingKey {
        case type
        case userID = "user_id"
        case connectionID = "connection_id"
        case clientMsgID = "client_msg_id"
        case message
        case channels
        case code
        case retryAfterMs = "retry_after_ms"
        case channelID = "channel_id"
        case expiresInMs = "expires_in_ms"
        case online
        case lastSeenAt = "last_seen_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "ready":
            self = .ready(
                userID: try container.decode(String.self, forKey: .userID),
                connectionID: try container.decode(String.self, forKey: .connectionID)
            )
        case "ack":
            self = .ack(
                clientMsgID: try container.decode(String.self, forKey: .clientMsgID),
                message: try container.decode(Message.self, forKey: .message)
            )
        case "message":
            self = .message(try container.decode(Message.self, forKey: .message))
        case "resumed":
            self = .resumed(channelIDs: try container.decode([String].self, forKey: .channels))
        case "error":
            self = .error(FrameError(
                code: try container.decode(String.self, forKey: .code),
                message: try container.decode(String.self, forKey: .message),
                clientMsgID: try container.decodeIfPresent(String.self, forKey: .clientMsgID),
                retryAfterMs: try container.decodeIfPresent(Int.self, forKey: .retryAfterMs)
            ))
        case "pong":
            self = .pong
        case "typing":
            self = .typing(
                channelID: try container.decode(String.self, forKey: .channelID),
                userID: try container.decode(String.self, forKey: .userID),
                expiresInMs: try container.decode(Int.self, forKey: .expiresInMs)
            )
        case "presence":
            self = .presence(
                userID: try container.decode(String.self, forKey: .userID),
                online: try container.decode(Bool.self, forKey: .online),
                lastSeenAt: try container.decodeIfPresent(Date.self, forKey: .lastSeenAt)
            )
        default:
            self = .unknown(type: type)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .ready(userID, connectionID):
            try container.encode("ready", forKey: .type)
            try container.encode(userID, forKey: .userID)
            try container.encode(connectionID, forKey: .connectionID)
        case let .ack(clientMsgID, message):
            try container.encode("ack", forKey: .type)
            try container.encode(clientMsgID, forKey: .clientMsgID)
            try container.encode(message, forKey: .message)
        case let .message(message):
            try container.encode("message", forKey: .type)
            try container.encode(message, forKey: .message)
        case let .resumed(channelIDs):
            try container.encode("resumed", forKey: .type)
            try container.encode(channelIDs, forKey: .channels)
        case let .error(error):
            try container.encode("error", forKey: .type)
            try container.encode(error.code, forKey: .code)
            try container.encode(error.message, forKey: .message)
            try container.encodeIfPresent(error.clientMsgID, forKey: .clientMsgID)
            try container.encodeIfPresent(error.retryAfterMs, forKey: .retryAfterMs)
        case .pong:
            try container.encode("pong", forKey: .type)
        case let .typing(channelID, userID, expiresInMs):
            try container.encode("typing", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(userID, forKey: .userID)
            try container.encode(expiresInMs, forKey: .expiresInMs)
        case let .presence(userID, online, lastSeenAt):
            try container.encode("presence", forKey: .type)
            try container.encode(userID, forKey: .userID)
            try container.encode(online, forKey: .online)
            try container.encodeIfPresent(lastSeenAt, forKey: .lastSeenAt)
        case let .unknown(type):
            try container.encode(type, forKey: .type)
        }
    }
}

/// Close codes of the gateway (`chat_types::ws::close`). 4000-4999 are the server's own; the
/// others are RFC 6455's.
public enum CloseCode {
    public static let normal = 1000
    /// The gateway is shutting down: reconnect (through the load balancer) and `resume`.
    public static let goingAway = 1001
    /// The client broke the protocol: do not reconnect in a loop.
    public static let protocolError = 1008
    /// The client sent a frame over the size limit: do not resend it.
    public static let messageTooBig = 1009
    /// Nothing was heard from the client (no frame, no pong) for too long.
    public static let idleTimeout = 4000
    /// The access token is missing, malformed, forged or expired: refresh it, then reconnect.
    public static let unauthorized = 4401
    /// The client fell too far behind reading: reconnect and `resume`.
    public static let slowConsumer = 4408
}

/// Codes of `error` frames (`chat_types::ws::error_code`).
public enum FrameErrorCode {
    public static let malformedFrame = "malformed_frame"
    public static let notAMember = "not_a_member"
    public static let unknownChannel = "unknown_channel"
    public static let invalidBody = "invalid_body"
    public static let invalidClientMsgID = "invalid_client_msg_id"
    public static let unknownMessage = "unknown_message"
    /// The server could not take the request now; the same request may succeed later.
    public static let unavailable = "unavailable"
    /// Too many sends: resend after the frame's `retryAfterMs`, same client_msg_id.
    public static let rateLimited = "rate_limited"
    /// A `mark_read` whose `seq` is not a position (below 1).
    public static let invalidSeq = "invalid_seq"
}
