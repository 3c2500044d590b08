import ChatKit

/// What the user can do with a message row. One list feeds both the tap/long-press menus and
/// the VoiceOver actions, so nothing is reachable by touch only.
public enum MessageAction: String, Sendable, Hashable, CaseIterable {
    case retry
    case reply
    case react
    case edit
    case delete

    public var title: String {
        switch self {
        case .retry: "Try Again"
        case .reply: "Reply"
        case .react: "React"
        case .edit: "Edit"
        case .delete: "Delete"
        }
    }

    /// An SF Symbol for menus.
    public var systemImage: String {
        switch self {
        case .retry: "arrow.clockwise"
        case .reply: "arrowshape.turn.up.left"
        case .react: "face.smiling"
        case .edit: "pencil"
        case .delete: "trash"
        }
    }

    public var isDestructive: Bool { self == .delete }

    /// Reply, react and edit need more from the user (the reply's text, an emoji, the new
    /// body): the screen collects it, then calls `send(_:to:replyTo:)`, `toggleReaction` or
    /// `edit`. The others are done by `ChatSession.perform(_:on:)` at once.
    public var needsInput: Bool {
        switch self {
        case .reply, .react, .edit: true
        case .retry, .delete: false
        }
    }

    /// A failed send can be retried (same `client_msg_id`) or deleted. A stored message (with
    /// its place) can be replied to and reacted to, and, when it is the user's own
    /// (`currentUserID`), edited and deleted for everyone. In a group channel the user owns
    /// (`channel.createdBy`, see `ChatSession.actions(for:)`), others' messages can be deleted
    /// too, as the server allows; never edited. Pending sends, messages not placed yet and
    /// tombstones have no actions.
    public static func available(
        for entry: TimelineEntry,
        currentUserID: String? = nil,
        ownsChannel: Bool = false
    ) -> [MessageAction] {
        switch entry.status {
        case .failed:
            return [.retry, .delete]
        case .pending, .sent:
            return []
        case .delivered:
            guard currentUserID != nil, entry.messageID != nil, !entry.isDeleted else { return [] }
            if entry.senderID == currentUserID {
                return [.reply, .react, .edit, .delete]
            }
            return ownsChannel ? [.reply, .react, .delete] : [.reply, .react]
        }
    }
}

extension ChatSession {
    /// The actions of `entry` for the signed-in user: the owner of a group channel (its
    /// `createdBy`) may also delete others' messages.
    public func actions(for entry: TimelineEntry) -> [MessageAction] {
        MessageAction.available(for: entry, currentUserID: user.id, ownsChannel: ownsChannel(entry.channelID))
    }

    /// Whether the signed-in user created (owns) the group channel `channelID`.
    public func ownsChannel(_ channelID: String) -> Bool {
        channel(channelID)?.isOwned(by: user.id) ?? false
    }

    /// Whether `entry`, as it is now, mentions the signed-in user ("mentions you").
    public func mentionsMe(_ entry: TimelineEntry) -> Bool {
        entry.mentions(userID: user.id)
    }

    /// Performs `action` on `entry`: retries a failed send, deletes (a failed send is discarded,
    /// a stored message deleted for everyone). Actions that need input do nothing here.
    public func perform(_ action: MessageAction, on entry: TimelineEntry) {
        switch action {
        case .retry: retry(entry)
        case .delete:
            if entry.isOutgoingUnsent {
                discard(entry)
            } else {
                deleteForEveryone(entry)
            }
        case .reply, .react, .edit:
            break
        }
    }
}
