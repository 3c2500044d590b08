import Foundation

// Channel events (`chat-types/src/events.rs`): what changes a channel's existing messages. Each
// takes a position in the channel's sequence, the same sequence as its messages.

/// An applied change to message `messageID` (at `messageSeq`) of channel `channelID`, itself at
/// position `seq`. On the wire one flat object with a `kind` field.
public struct ChannelEvent: Codable, Sendable, Hashable, Identifiable {
    /// What changed. Reaction changes carry the emoji's count after the change (absolute), so
    /// applying an event twice leaves the same state.
    public enum Change: Sendable, Hashable {
        /// The author replaced the body; the message's `editedAt` is the event's `createdAt`, and
        /// its `mentions` are those of the new body (the user ids the server resolved; empty
        /// when none, absent on the wire).
        case edited(body: String, mentions: [String] = [])
        /// The author or the channel's owner deleted the message: show a tombstone.
        case deleted
        /// `actorID` reacted with `emoji`; `count` members now have.
        case reactionAdded(emoji: String, count: Int)
        /// `actorID` took back `emoji`; `count` members still have it (0: remove the entry).
        case reactionRemoved(emoji: String, count: Int)
        /// A kind this client does not know yet: it takes its position, and changes nothing.
        case unknown(kind: String)

        public var kind: String {
            switch self {
            case .edited: "edited"
            case .deleted: "deleted"
            case .reactionAdded: "reaction_added"
            case .reactionRemoved: "reaction_removed"
            case .unknown(let kind): kind
            }
        }
    }

    /// Idempotency: the event id is derived from the actor and `clientEventID`. May be named in
    /// `resume`, like a message id.
    public var id: String
    public var channelID: String
    /// The event's own position in the channel.
    public var seq: Int64
    /// Who made the change.
    public var actorID: String
    public var messageID: String
    public var messageSeq: Int64
    public var clientEventID: String
    public var createdAt: Date
    public var change: Change

    public init(
        id: String,
        channelID: String,
        seq: Int64,
        actorID: String,
        messageID: String,
        messageSeq: Int64,
        clientEventID: String,
        createdAt: Date,
        change: Change
    ) {
        self.id = id
        self.channelID = channelID
        self.seq = seq
        self.actorID = actorID
        self.messageID = messageID
        self.messageSeq = messageSeq
        self.clientEventID = clientEventID
        self.createdAt = createdAt
        self.change = change
    }

    enum CodingKeys: String, CodingKey {
        case id
        case channelID = "channel_id"
        case seq
        case actorID = "actor_id"
        case messageID = "message_id"
        case messageSeq = "message_seq"
        case clientEventID = "client_event_id"
        case createdAt = "created_at"
        case kind
        case body
        case mentions
        case emoji
        case count
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        channelID = try container.decode(String.self, forKey: .channelID)
        seq = try container.decode(Int64.self, forKey: .seq)
        actorID = try container.decode(String.self, forKey: .actorID)
        messageID = try container.decode(String.self, forKey: .messageID)
        messageSeq = try container.decode(Int64.self, forKey: .messageSeq)
        clientEventID = try container.decode(String.self, forKey: .clientEventID)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        let kind = try container.decode(String.self, forKey: .kind)
        switch kind {
        case "edited":
            change = .edited(
                body: try container.decode(String.self, forKey: .body),
                mentions: try container.decodeIfPresent([String].self, forKey: .mentions) ?? []
            )
        case "deleted":
            change = .deleted
        case "reaction_added":
            change = .reactionAdded(
                emoji: try container.decode(String.self, forKey: .emoji),
                count: try container.decode(Int.self, forKey: .count)
            )
        case "reaction_removed":
            change = .reactionRemoved(
                emoji: try container.decode(String.self, forKey: .emoji),
                count: try container.decode(Int.self, forKey: .count)
            )
        default:
            change = .unknown(kind: kind)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(channelID, forKey: .channelID)
        try container.encode(seq, forKey: .seq)
        try container.encode(actorID, forKey: .actorID)
        try container.encode(messageID, forKey: .messageID)
        try container.encode(messageSeq, forKey: .messageSeq)
        try container.encode(clientEventID, forKey: .clientEventID)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(change.kind, forKey: .kind)
        switch change {
        case let .edited(body, mentions):
            try container.encode(body, forKey: .body)
            if !mentions.isEmpty {
                try container.encode(mentions, forKey: .mentions)
            }
        case .deleted, .unknown:
            break
        case let .reactionAdded(emoji, count), let .reactionRemoved(emoji, count):
            try container.encode(emoji, forKey: .emoji)
            try container.encode(count, forKey: .count)
        }
    }
}

/// A change the user asks for: the body of an `edit`, `delete`, `react` or `unreact` frame.
public enum ChangeRequest: Sendable, Hashable {
    /// Replace the body of the user's own message.
    case edit(body: String)
    /// Delete the user's own message (or any message of a group channel they created).
    case delete
    /// Add the user's reaction `emoji`.
    case react(emoji: String)
    /// Take the user's reaction `emoji` back.
    case unreact(emoji: String)
}
