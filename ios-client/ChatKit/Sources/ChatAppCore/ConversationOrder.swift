import ChatKit
import Foundation

/// The order of the conversation list: most recent activity first, like every messenger.
public enum ConversationOrder {
    /// A conversation's last activity: its newest known message (loaded, live, or the user's
    /// own pending send; a deleted one does not count; for a conversation not opened yet, the
    /// newest message the list reported, `lastMessage`), or its creation when nothing is known.
    public static func lastActivity(of channel: Channel, in store: MessageStore, lastMessage: LastMessage? = nil) -> Date {
        let newest = store[channel.id].entries.lazy.filter { !$0.isDeleted }.map(\.createdAt).max()
        let listed = lastMessage?.createdAt
        let known = [newest, listed].compactMap { $0 }.max()
        return max(known ?? channel.createdAt, channel.createdAt)
    }

    /// Newest activity first; ties (no messages, same instant) by name, then id, so the list
    /// does not shuffle between refreshes. `lastMessages`: per channel id, the newest message
    /// of the conversation list (`GET /channels`).
    public static func byRecentActivity(_ channels: [Channel], store: MessageStore, lastMessages: [String: LastMessage] = [:]) -> [Channel] {
        channels
            .map { (channel: $0, activity: lastActivity(of: $0, in: store, lastMessage: lastMessages[$0.id])) }
            .sorted { a, b in
                if a.activity != b.activity { return a.activity > b.activity }
                switch a.channel.name.localizedCaseInsensitiveCompare(b.channel.name) {
                case .orderedAscending: return true
                case .orderedDescending: return false
                case .orderedSame: return a.channel.id < b.channel.id
                }
            }
            .map(\.channel)
    }
}
