import ChatKit

/// What the user can do with a message row. One list feeds both the tap menu and the
/// VoiceOver actions, so nothing is reachable by touch only.
public enum MessageAction: String, Sendable, Hashable, CaseIterable {
    case retry
    case delete

    public var title: String {
        switch self {
        case .retry: "Try Again"
        case .delete: "Delete"
        }
    }

    public var isDestructive: Bool { self == .delete }

    /// A failed send can be retried (same `client_msg_id`) or deleted; nothing else has actions.
    public static func available(for entry: TimelineEntry) -> [MessageAction] {
        if case .failed = entry.status { return [.retry, .delete] }
        return []
    }
}

extension ChatSession {
    /// Performs `action` on `entry`.
    public func perform(_ action: MessageAction, on entry: TimelineEntry) {
        switch action {
        case .retry: retry(entry)
        case .delete: discard(entry)
        }
    }
}
