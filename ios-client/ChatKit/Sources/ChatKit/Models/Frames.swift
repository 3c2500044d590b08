import Foundation

// WebSocket frames (`/ws`), mirroring `chat-types/src/ws.rs`: JSON text frames tagged by `type`.

/// Whether the app is in front of the user, as an `app_state` frame says it.
public enum AppState: String, Sendable, Hashable, Codable {
    case foreground
    case background
}

/// Frames the client sends.
public enum ClientFrame: Sendable, Hashable, Codable {
    case send(channelID: String, clientMsgID: String, body: String)
    /// A `send` that answers `replyTo`, an earlier message of the same channel (stored, not
    /// deleted). On the wire a `send` with `reply_to`; a `send` without one decodes as `.send`.
    case reply(channelID: String, clientMsgID: String, body: String, replyTo: String)
    /// A `send` that carries files: `attachments` are ids of the sender's completed uploads to
    /// this channel (1 to `Limits.attachmentsPerMessageMax`, each carried by one message only),
    /// `body` may then be empty (`Limits.isValidCaption`), `replyTo` as for `.reply`. On the wire
    /// a `send` with `attachments` (left out when empty, so that the frame is then exactly a
    /// `.send` or `.reply`); a `send` without them decodes as `.send` or `.reply`.
    case sendWithAttachments(channelID: String, clientMsgID: String, body: String, attachments: [String], replyTo: String?)
    /// After a reconnect: per channel id, the id of the last message or event seen.
    case resume(channels: [String: String])
    case ping
    /// The user is typing in the channel (send at most every `Limits.typingIntervalMs`).
    case typing(channelID: String)
    /// Replace the body of the user's own message. Idempotent by `clientEventID`; acked with
    /// `event_ack`, applied with an `event` frame.
    case edit(channelID: String, messageID: String, clientEventID: String, body: String)
    /// Delete the user's own message, or any message of a group channel they created.
    case delete(channelID: String, messageID: String, clientEventID: String)
    /// Add the user's reaction `emoji` (`Limits.isValidEmoji`).
    case react(channelID: String, messageID: String, clientEventID: String, emoji: String)
    /// Take the user's reaction `emoji` back.
    case unreact(channelID: String, messageID: String, clientEventID: String, emoji: String)
    /// The user has read the channel up to position `seq` (of a message shown). The server
    /// keeps the highest mark of any device; nothing comes back unless it is refused.
    case markRead(channelID: String, seq: Int64)
    /// The app went to the background, or came back. A connection starts in the foreground; push
    /// notifications skip users with a connection in the foreground. Nothing comes back.
    case appState(AppState)

    /// The frame that asks for `change` of `messageID`.
    public static func change(_ change: ChangeRequest, channelID: String, messageID: String, clientEventID: String) -> ClientFrame {
        switch change {
        case .edit(let body):
            .edit(channelID: channelID, messageID: messageID, clientEventID: clientEventID, body: body)
        case .delete:
            .delete(channelID: channelID, messageID: messageID, clientEventID: clientEventID)
        case .react(let emoji):
            .react(channelID: channelID, messageID: messageID, clientEventID: clientEventID, emoji: emoji)
        case .unreact(let emoji):
            .unreact(channelID: channelID, messageID: messageID, clientEventID: clientEventID, emoji: emoji)
        }
    }

    enum CodingKeys: String, CodingKey {
        case type
        case channelID = "channel_id"
        case clientMsgID = "client_msg_id"
        case body
        case replyTo = "reply_to"
        case attachments
        case channels
        case messageID = "message_id"
        case clientEventID = "client_event_id"
        case emoji
        case seq
        case state
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "app_state":
            self = .appState(try container.decode(AppState.self, forKey: .state))
        case "mark_read":
            self = .markRead(
                channelID: try container.decode(String.self, forKey: .channelID),
                seq: try container.decode(Int64.self, forKey: .seq)
            )
        case "send":
            let channelID = try container.decode(String.self, forKey: .channelID)
            let clientMsgID = try container.decode(String.self, forKey: .clientMsgID)
            let body = try container.decode(String.self, forKey: .body)
            let replyTo = try container.decodeIfPresent(String.self, forKey: .replyTo)
            let attachments = try container.decodeIfPresent([String].self, forKey: .attachments) ?? []
            if !attachments.isEmpty {
                self = .sendWithAttachments(
                    channelID: channelID,
                    clientMsgID: clientMsgID,
                    body: body,
                    attachments: attachments,
                    replyTo: replyTo
                )
            } else if let replyTo {
                self = .reply(channelID: channelID, clientMsgID: clientMsgID, body: body, replyTo: replyTo)
            } else {
                self = .send(channelID: channelID, clientMsgID: clientMsgID, body: body)
            }
        case "resume":
            self = .resume(channels: try container.decode([String: String].self, forKey: .channels))
        case "ping":
            self = .ping
        case "typing":
            self = .typing(channelID: try container.decode(String.self, forKey: .channelID))
        case "edit":
            self = .edit(
                channelID: try container.decode(String.self, forKey: .channelID),
                messageID: try container.decode(String.self, forKey: .messageID),
                clientEventID: try container.decode(String.self, forKey: .clientEventID),
                body: try container.decode(String.self, forKey: .body)
            )
        case "delete":
            self = .delete(
                channelID: try container.decode(String.self, forKey: .channelID),
                messageID: try container.decode(String.self, forKey: .messageID),
                clientEventID: try container.decode(String.self, forKey: .clientEventID)
            )
        case "react", "unreact":
            let channelID = try container.decode(String.self, forKey: .channelID)
            let messageID = try container.decode(String.self, forKey: .messageID)
            let clientEventID = try container.decode(String.self, forKey: .clientEventID)
            let emoji = try container.decode(String.self, forKey: .emoji)
            self = type == "react"
                ? .react(channelID: channelID, messageID: messageID, clientEventID: clientEventID, emoji: emoji)
                : .unreact(channelID: channelID, messageID: messageID, clientEventID: clientEventID, emoji: emoji)
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
        case let .reply(channelID, clientMsgID, body, replyTo):
            try container.encode("send", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(clientMsgID, forKey: .clientMsgID)
            try container.encode(body, forKey: .body)
            try container.encode(replyTo, forKey: .replyTo)
        case let .sendWithAttachments(channelID, clientMsgID, body, attachments, replyTo):
            try container.encode("send", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(clientMsgID, forKey: .clientMsgID)
            try container.encode(body, forKey: .body)
            if !attachments.isEmpty {
                try container.encode(attachments, forKey: .attachments)
            }
            try container.encodeIfPresent(replyTo, forKey: .replyTo)
        case let .resume(channels):
            try container.encode("resume", forKey: .type)
            try container.encode(channels, forKey: .channels)
        case .ping:
            try container.encode("ping", forKey: .type)
        case let .typing(channelID):
            try container.encode("typing", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
        case let .edit(channelID, messageID, clientEventID, body):
            try container.encode("edit", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(messageID, forKey: .messageID)
            try container.encode(clientEventID, forKey: .clientEventID)
            try container.encode(body, forKey: .body)
        case let .delete(channelID, messageID, clientEventID):
            try container.encode("delete", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(messageID, forKey: .messageID)
            try container.encode(clientEventID, forKey: .clientEventID)
        case let .react(channelID, messageID, clientEventID, emoji):
            try container.encode("react", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(messageID, forKey: .messageID)
            try container.encode(clientEventID, forKey: .clientEventID)
            try container.encode(emoji, forKey: .emoji)
        case let .unreact(channelID, messageID, clientEventID, emoji):
            try container.encode("unreact", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(messageID, forKey: .messageID)
            try container.encode(clientEventID, forKey: .clientEventID)
            try container.encode(emoji, forKey: .emoji)
        case let .markRead(channelID, seq):
            try container.encode("mark_read", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(seq, forKey: .seq)
        case let .appState(state):
            try container.encode("app_state", forKey: .type)
            try container.encode(state, forKey: .state)
        }
    }
}

/// An `error` frame: a request was refused. The connection stays open unless it is closed too.
public struct FrameError: Sendable, Hashable, Codable {
    public var code: String
    public var message: String
    /// Set when the refused request was a `send`.
    public var clientMsgID: String?
    /// With `rate_limited`: resend (same client_msg_id or client_event_id) after this many
    /// milliseconds.
    public var retryAfterMs: Int?
    /// Set when the refused request was an `edit`, `delete`, `react` or `unreact`.
    public var clientEventID: String?

    public init(
        code: String,
        message: String,
        clientMsgID: String? = nil,
        retryAfterMs: Int? = nil,
        clientEventID: String? = nil
    ) {
        self.code = code
        self.message = message
        self.clientMsgID = clientMsgID
        self.retryAfterMs = retryAfterMs
        self.clientEventID = clientEventID
    }

    enum CodingKeys: String, CodingKey {
        case code
        case message
        case clientMsgID = "client_msg_id"
        case retryAfterMs = "retry_after_ms"
        case clientEventID = "client_event_id"
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
    /// The `edit` / `delete` / `react` / `unreact` with this `clientEventID` is durably
    /// accepted. Its `event` follows once it has its position, or never if it became moot.
    case eventAck(clientEventID: String, eventID: String)
    /// A message of one of the user's channels changed, at position `event.seq`.
    case event(ChannelEvent)
    /// The user read the channel up to `seq` on another device (or connection).
    case read(channelID: String, seq: Int64)
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
        case clientEventID = "client_event_id"
        case eventID = "event_id"
        case event
        case seq
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
                retryAfterMs: try container.decodeIfPresent(Int.self, forKey: .retryAfterMs),
                clientEventID: try container.decodeIfPresent(String.self, forKey: .clientEventID)
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
        case "event_ack":
            self = .eventAck(
                clientEventID: try container.decode(String.self, forKey: .clientEventID),
                eventID: try container.decode(String.self, forKey: .eventID)
            )
        case "event":
            self = .event(try container.decode(ChannelEvent.self, forKey: .event))
        case "read":
            self = .read(
                channelID: try container.decode(String.self, forKey: .channelID),
                seq: try container.decode(Int64.self, forKey: .seq)
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
            try container.encodeIfPresent(error.clientEventID, forKey: .clientEventID)
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
        case let .eventAck(clientEventID, eventID):
            try container.encode("event_ack", forKey: .type)
            try container.encode(clientEventID, forKey: .clientEventID)
            try container.encode(eventID, forKey: .eventID)
        case let .event(event):
            try container.encode("event", forKey: .type)
            try container.encode(event, forKey: .event)
        case let .read(channelID, seq):
            try container.encode("read", forKey: .type)
            try container.encode(channelID, forKey: .channelID)
            try container.encode(seq, forKey: .seq)
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
    /// An `edit` of someone else's message; a `delete` of someone else's message in a channel
    /// the user does not own.
    public static let notAuthor = "not_author"
    /// An `edit`, `react`, `unreact` or `delete` of a deleted message, or a `reply_to` naming one.
    public static let messageDeleted = "message_deleted"
    /// A reaction's `emoji` is empty, over 64 bytes, or has white space or control characters.
    public static let invalidEmoji = "invalid_emoji"
    /// A `client_event_id` is empty or over 128 characters.
    public static let invalidClientEventID = "invalid_client_event_id"
    /// A `send`'s `attachments`: more than `Limits.attachmentsPerMessageMax`, an id twice, or one
    /// that is not the sender's completed upload to this channel not yet carried by another
    /// message (unknown, another channel's or user's, not completed, already sent). Resending the
    /// same ids cannot help.
    public static let invalidAttachment = "invalid_attachment"
}
