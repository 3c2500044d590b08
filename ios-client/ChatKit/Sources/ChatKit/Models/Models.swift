import Foundation

// Bodies of the public REST API (`/api/v1/...`), mirroring `chat-types/src/rest.rs`.
// Every id is a string on the wire and stays one here: the client never needs to look inside.

/// A registered user.
public struct User: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var username: String
    public var displayName: String

    public init(id: String, username: String, displayName: String) {
        self.id = id
        self.username = username
        self.displayName = displayName
    }

    enum CodingKeys: String, CodingKey {
        case id
        case username
        case displayName = "display_name"
    }
}

/// What register, login and refresh return.
public struct Session: Codable, Sendable, Hashable {
    public var user: User
    public var accessToken: String
    public var refreshToken: String
    /// Seconds until the access token expires, counted from when the response was received.
    public var expiresIn: Int64

    public init(user: User, accessToken: String, refreshToken: String, expiresIn: Int64) {
        self.user = user
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case user
        case accessToken = "access_token"
        case refreshToken = "refresh_token"
        case expiresIn = "expires_in"
    }
}

/// A group channel or a direct conversation. Kinds this client does not know yet decode as
/// `.other` instead of failing the whole channel list.
public enum ChannelKind: OpenWireString {
    case group
    case direct
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "group": self = .group
        case "direct": self = .direct
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .group: "group"
        case .direct: "direct"
        case .other(let value): value
        }
    }
}

public struct Channel: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var kind: ChannelKind
    /// For a direct conversation: the other user's display name as the caller sees it.
    public var name: String
    public var description: String
    public var createdAt: Date
    /// Who created a group channel: its owner, who may delete anyone's messages in it. Nil for a
    /// direct conversation, when the creator's account is gone, and from servers before owners.
    public var createdBy: String?

    public init(id: String, kind: ChannelKind, name: String, description: String, createdAt: Date, createdBy: String? = nil) {
        self.id = id
        self.kind = kind
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.createdBy = createdBy
    }

    /// Whether `userID` owns this channel (created it): the owner may delete others' messages.
    public func isOwned(by userID: String) -> Bool {
        kind == .group && createdBy != nil && createdBy == userID
    }

    enum CodingKeys: String, CodingKey {
        case id
        case kind
        case name
        case description
        case createdAt = "created_at"
        case createdBy = "created_by"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        kind = try container.decode(ChannelKind.self, forKey: .kind)
        name = try container.decode(String.self, forKey: .name)
        // Direct conversations have no description; tolerate a server that omits it.
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        createdBy = try container.decodeIfPresent(String.self, forKey: .createdBy)
    }

    // Like the server: `created_by` absent rather than null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(kind, forKey: .kind)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(createdBy, forKey: .createdBy)
    }
}

/// A stored message.
public struct Message: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var channelID: String
    public var senderID: String
    /// Empty for a tombstone (`deleted`), and may be empty when the message carries attachments.
    public var body: String
    public var clientMsgID: String
    public var createdAt: Date
    /// Position in the channel, the same for every member. A channel's messages and its events
    /// (edits, deletes, reactions) share one sequence of positions 1, 2, 3, ... without gaps, so
    /// two consecutive messages may skip the positions of events between them. Absent in an
    /// `ack`, which is sent before the message has its place.
    public var seq: Int64?
    /// When the body was last edited; nil if never.
    public var editedAt: Date?
    /// A tombstone: the message was deleted, its body is empty and it has no reactions.
    public var deleted: Bool
    /// The earlier message of the channel this one answers, as it is now.
    public var replyTo: ReplyPreview?
    /// One entry per emoji, in the order they were first used (history only: live changes come
    /// as `event` frames).
    public var reactions: [Reaction]
    /// The user ids of the channel's members the body mentions (`@username`), in the order the
    /// body names them, resolved by the server when it places the message (so an `ack`, sent
    /// before that, has none) and again at each edit. Empty when none (absent on the wire).
    public var mentions: [String]
    /// Files sent with the message (at most `Limits.attachmentsPerMessageMax`), in the order the
    /// sender listed them; the body may then be empty. Empty when none, and on a tombstone
    /// (absent on the wire).
    public var attachments: [MessageAttachment]

    public init(
        id: String,
        channelID: String,
        senderID: String,
        body: String,
        clientMsgID: String,
        createdAt: Date,
        seq: Int64?,
        editedAt: Date? = nil,
        deleted: Bool = false,
        replyTo: ReplyPreview? = nil,
        reactions: [Reaction] = [],
        mentions: [String] = [],
        attachments: [MessageAttachment] = []
    ) {
        self.id = id
        self.channelID = channelID
        self.senderID = senderID
        self.body = body
        self.clientMsgID = clientMsgID
        self.createdAt = createdAt
        self.seq = seq
        self.editedAt = editedAt
        self.deleted = deleted
        self.replyTo = replyTo
        self.reactions = reactions
        self.mentions = mentions
        self.attachments = attachments
    }

    /// Whether the body mentions `userID` (the server resolved `@username` to that member).
    public func mentions(userID: String) -> Bool {
        !deleted && mentions.contains(userID)
    }

    enum CodingKeys: String, CodingKey {
        case id
        case channelID = "channel_id"
        case senderID = "sender_id"
        case body
        case clientMsgID = "client_msg_id"
        case createdAt = "created_at"
        case seq
        case editedAt = "edited_at"
        case deleted
        case replyTo = "reply_to"
        case reactions
        case mentions
        case attachments
    }

    // Messages of servers before edits, reactions, mentions and attachments have none of the
    // new keys.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        channelID = try container.decode(String.self, forKey: .channelID)
        senderID = try container.decode(String.self, forKey: .senderID)
        body = try container.decode(String.self, forKey: .body)
        clientMsgID = try container.decode(String.self, forKey: .clientMsgID)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        seq = try container.decodeIfPresent(Int64.self, forKey: .seq)
        editedAt = try container.decodeIfPresent(Date.self, forKey: .editedAt)
        deleted = try container.decodeIfPresent(Bool.self, forKey: .deleted) ?? false
        replyTo = try container.decodeIfPresent(ReplyPreview.self, forKey: .replyTo)
        reactions = try container.decodeIfPresent([Reaction].self, forKey: .reactions) ?? []
        mentions = try container.decodeIfPresent([String].self, forKey: .mentions) ?? []
        attachments = try container.decodeIfPresent([MessageAttachment].self, forKey: .attachments) ?? []
    }

    // Like the server: absent rather than null, false or empty.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(channelID, forKey: .channelID)
        try container.encode(senderID, forKey: .senderID)
        try container.encode(body, forKey: .body)
        try container.encode(clientMsgID, forKey: .clientMsgID)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(seq, forKey: .seq)
        try container.encodeIfPresent(editedAt, forKey: .editedAt)
        if deleted {
            try container.encode(true, forKey: .deleted)
        }
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
        if !reactions.isEmpty {
            try container.encode(reactions, forKey: .reactions)
        }
        if !mentions.isEmpty {
            try container.encode(mentions, forKey: .mentions)
        }
        if !attachments.isEmpty {
            try container.encode(attachments, forKey: .attachments)
        }
    }
}

/// The message a reply answers, as it is now: enough to show it above the reply.
public struct ReplyPreview: Codable, Sendable, Hashable {
    /// How much of the replied-to body a preview holds (characters).
    public static let maxChars = 140

    public var id: String
    public var seq: Int64
    public var senderID: String
    /// The replied-to body's first 140 characters; empty once it is deleted.
    public var preview: String
    public var deleted: Bool

    public init(id: String, seq: Int64, senderID: String, preview: String, deleted: Bool = false) {
        self.id = id
        self.seq = seq
        self.senderID = senderID
        self.preview = preview
        self.deleted = deleted
    }

    /// The preview of `body`: its first 140 characters (Unicode scalar values, like the server).
    public static func preview(of body: String) -> String {
        let scalars = body.unicodeScalars
        guard scalars.count > maxChars else { return body }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars.prefix(maxChars))
        return String(view)
    }

    enum CodingKeys: String, CodingKey {
        case id
        case seq
        case senderID = "sender_id"
        case preview
        case deleted
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        seq = try container.decode(Int64.self, forKey: .seq)
        senderID = try container.decode(String.self, forKey: .senderID)
        preview = try container.decode(String.self, forKey: .preview)
        deleted = try container.decodeIfPresent(Bool.self, forKey: .deleted) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(seq, forKey: .seq)
        try container.encode(senderID, forKey: .senderID)
        try container.encode(preview, forKey: .preview)
        if deleted {
            try container.encode(true, forKey: .deleted)
        }
    }
}

/// How many members reacted to a message with one emoji, and whether the user is one of them.
public struct Reaction: Codable, Sendable, Hashable {
    public var emoji: String
    public var count: Int
    /// The signed-in user reacted with this emoji.
    public var me: Bool

    public init(emoji: String, count: Int, me: Bool) {
        self.emoji = emoji
        self.count = count
        self.me = me
    }
}

// MARK: - Requests

public struct RegisterRequest: Codable, Sendable, Hashable {
    public var username: String
    public var password: String
    public var displayName: String?

    public init(username: String, password: String, displayName: String? = nil) {
        self.username = username
        self.password = password
        self.displayName = displayName
    }

    enum CodingKeys: String, CodingKey {
        case username
        case password
        case displayName = "display_name"
    }
}

public struct LoginRequest: Codable, Sendable, Hashable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// Body of `POST /auth/refresh` and `POST /auth/logout`.
public struct RefreshRequest: Codable, Sendable, Hashable {
    public var refreshToken: String

    public init(refreshToken: String) {
        self.refreshToken = refreshToken
    }

    enum CodingKeys: String, CodingKey {
        case refreshToken = "refresh_token"
    }
}

public struct CreateChannelRequest: Codable, Sendable, Hashable {
    public var name: String
    public var description: String?

    public init(name: String, description: String? = nil) {
        self.name = name
        self.description = description
    }
}

public struct CreateDMRequest: Codable, Sendable, Hashable {
    public var userID: String

    public init(userID: String) {
        self.userID = userID
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
    }
}

// MARK: - List responses

public struct ChannelList: Codable, Sendable, Hashable {
    public var channels: [Channel]

    public init(channels: [Channel]) {
        self.channels = channels
    }
}

/// The newest message of a conversation, as `GET /channels` lists it: a preview, not the message.
public struct LastMessage: Codable, Sendable, Hashable {
    public var id: String
    public var seq: Int64
    public var senderID: String
    /// The body's first 140 characters.
    public var preview: String
    public var createdAt: Date

    public init(id: String, seq: Int64, senderID: String, preview: String, createdAt: Date) {
        self.id = id
        self.seq = seq
        self.senderID = senderID
        self.preview = preview
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case seq
        case senderID = "sender_id"
        case preview
        case createdAt = "created_at"
    }
}

/// One conversation of `GET /channels`: the channel's fields and, beside them (one flat object
/// on the wire), the caller's read state (docs/protocol.md, "Read state").
public struct Conversation: Codable, Sendable, Hashable, Identifiable {
    public var channel: Channel
    /// The newest message; nil before the first.
    public var lastMessage: LastMessage?
    /// The newest message's position (0 without messages).
    public var headSeq: Int64
    /// The caller's read mark: every message up to this position is read (0: nothing yet).
    public var readSeq: Int64
    /// Messages after `readSeq` that others sent, counted up to `Limits.unreadCountMax`.
    public var unreadCount: Int
    /// Of those, the ones that mention the caller.
    public var mentionCount: Int

    public var id: String { channel.id }

    public init(
        channel: Channel,
        lastMessage: LastMessage? = nil,
        headSeq: Int64 = 0,
        readSeq: Int64 = 0,
        unreadCount: Int = 0,
        mentionCount: Int = 0
    ) {
        self.channel = channel
        self.lastMessage = lastMessage
        self.headSeq = headSeq
        self.readSeq = readSeq
        self.unreadCount = unreadCount
        self.mentionCount = mentionCount
    }

    enum CodingKeys: String, CodingKey {
        case lastMessage = "last_message"
        case headSeq = "head_seq"
        case readSeq = "read_seq"
        case unreadCount = "unread_count"
        case mentionCount = "mention_count"
    }

    // A server before read state lists plain channels: decode them as read, with no preview.
    public init(from decoder: any Decoder) throws {
        channel = try Channel(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lastMessage = try container.decodeIfPresent(LastMessage.self, forKey: .lastMessage)
        headSeq = try container.decodeIfPresent(Int64.self, forKey: .headSeq) ?? 0
        readSeq = try container.decodeIfPresent(Int64.self, forKey: .readSeq) ?? 0
        unreadCount = try container.decodeIfPresent(Int.self, forKey: .unreadCount) ?? 0
        mentionCount = try container.decodeIfPresent(Int.self, forKey: .mentionCount) ?? 0
    }

    // Flat, like the server; `last_message` is always present, `null` without messages.
    public func encode(to encoder: any Encoder) throws {
        try channel.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lastMessage, forKey: .lastMessage)
        try container.encode(headSeq, forKey: .headSeq)
        try container.encode(readSeq, forKey: .readSeq)
        try container.encode(unreadCount, forKey: .unreadCount)
        try container.encode(mentionCount, forKey: .mentionCount)
    }
}

/// `GET /channels`: the caller's conversations with their read state.
public struct ConversationList: Codable, Sendable, Hashable {
    public var channels: [Conversation]

    public init(channels: [Conversation]) {
        self.channels = channels
    }
}

public struct UserList: Codable, Sendable, Hashable {
    public var users: [User]

    public init(users: [User]) {
        self.users = users
    }
}

public struct MemberList: Codable, Sendable, Hashable {
    public var members: [User]

    public init(members: [User]) {
        self.members = members
    }
}

/// A member online or not, and when last seen (`GET /channels/{id}/presence`).
public struct MemberPresence: Codable, Sendable, Hashable {
    public var userID: String
    public var online: Bool
    /// When their last connection closed; nil while online or never seen.
    public var lastSeenAt: Date?

    public init(userID: String, online: Bool, lastSeenAt: Date?) {
        self.userID = userID
        self.online = online
        self.lastSeenAt = lastSeenAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case online
        case lastSeenAt = "last_seen_at"
    }

    // `last_seen_at` is always present, `null` while online: encode it so.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(userID, forKey: .userID)
        try container.encode(online, forKey: .online)
        try container.encode(lastSeenAt, forKey: .lastSeenAt)
    }
}

public struct PresenceList: Codable, Sendable, Hashable {
    public var members: [MemberPresence]

    public init(members: [MemberPresence]) {
        self.members = members
    }
}

public struct MessageList: Codable, Sendable, Hashable {
    public var messages: [Message]

    public init(messages: [Message]) {
        self.messages = messages
    }
}

// MARK: - Errors

/// Every error response: `{"error": {"code", "message"}}`.
public struct ErrorBody: Codable, Sendable, Hashable {
    public struct Detail: Codable, Sendable, Hashable {
        /// Stable snake_case code a program can switch on.
        public var code: String
        /// Human-readable explanation.
        public var message: String

        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    public var error: Detail

    public init(code: String, message: String) {
        self.error = Detail(code: code, message: message)
    }
}
