import Foundation

/// The orders of the channel directory (`GET /channels/directory?sort=`).
public enum DirectorySort: String, Codable, Sendable, Hashable, CaseIterable {
    /// Most members first (the server's default).
    case members
    /// Most recent message first; channels without messages last, newest first.
    case activity
}

/// A group channel as the directory lists it.
public struct DirectoryEntry: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var name: String
    public var description: String
    public var memberCount: Int
    /// When the channel last received a message; `nil` before its first.
    public var lastActivityAt: Date?
    /// Whether the caller is a member.
    public var isMember: Bool

    public init(id: String, name: String, description: String, memberCount: Int, lastActivityAt: Date?, isMember: Bool) {
        self.id = id
        self.name = name
        self.description = description
        self.memberCount = memberCount
        self.lastActivityAt = lastActivityAt
        self.isMember = isMember
    }

    enum CodingKeys: String, CodingKey {
        case id
        case name
        case description
        case memberCount = "member_count"
        case lastActivityAt = "last_activity_at"
        case isMember = "is_member"
    }

    // `last_activity_at` is always present, `null` when there is no message: encode it so.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(memberCount, forKey: .memberCount)
        try container.encode(lastActivityAt, forKey: .lastActivityAt)
        try container.encode(isMember, forKey: .isMember)
    }
}

/// One page of the channel directory.
public struct DirectoryPage: Codable, Sendable, Hashable {
    public var channels: [DirectoryEntry]
    /// Pass back (with the same sort) for the next page; `nil` on the last page.
    public var nextCursor: String?

    public init(channels: [DirectoryEntry], nextCursor: String?) {
        self.channels = channels
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case channels
        case nextCursor = "next_cursor"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(channels, forKey: .channels)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}
