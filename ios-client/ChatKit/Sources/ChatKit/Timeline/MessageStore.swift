import Foundation

/// Every conversation's `MessageTimeline`, fed by realtime events, history pages and the user's
/// sends. A value type: the app keeps one in its `@MainActor` session model.
public struct MessageStore: Sendable, Hashable {
    public private(set) var timelines: [String: MessageTimeline] = [:]
    /// The signed-in user: the sender of pending entries.
    public let currentUserID: String

    public init(currentUserID: String) {
        self.currentUserID = currentUserID
    }

    /// The timeline of `channelID` (empty if nothing is known yet).
    public subscript(channelID: String) -> MessageTimeline {
        timelines[channelID] ?? MessageTimeline(channelID: channelID)
    }

    /// Applies a realtime event. Returns the channel whose timeline changed, if one did.
    @discardableResult
    public mutating func apply(_ event: RealtimeEvent) -> String? {
        switch event {
        case .message(let message), .acked(_, let message):
            return merge(message) ? message.channelID : nil
        case .sendFailed(let failure):
            return markFailed(failure)
        case .event(let event):
            return apply(event) ? event.channelID : nil
        case .stateChanged, .ready, .resumed, .resumeRefused, .serverError, .changeAcked, .changeFailed, .read:
            return nil
        }
    }

    /// Applies an edit, delete or reaction to the conversation it belongs to. A conversation
    /// with nothing loaded has nothing to change: its history will show the message as it is.
    @discardableResult
    public mutating func apply(_ event: ChannelEvent) -> Bool {
        timelines[event.channelID]?.apply(event, currentUserID: currentUserID) ?? false
    }

    @discardableResult
    public mutating func merge(_ message: Message) -> Bool {
        timelines[message.channelID, default: MessageTimeline(channelID: message.channelID)].merge(message)
    }

    public mutating func mergePage(_ messages: [Message], channelID: String, cursor: HistoryCursor, limit: Int) {
        timelines[channelID, default: MessageTimeline(channelID: channelID)]
            .mergePage(messages, cursor: cursor, limit: limit)
    }

    /// Shows a send of the user right away, as pending.
    public mutating func addPending(_ pending: PendingSend, at date: Date) {
        timelines[pending.channelID, default: MessageTimeline(channelID: pending.channelID)]
            .addPending(
                body: pending.body,
                senderID: currentUserID,
                clientMsgID: pending.clientMsgID,
                at: date,
                replyTo: pending.replyTo,
                attachments: pending.attachments
            )
    }

    public mutating func markPending(channelID: String, clientMsgID: String) {
        timelines[channelID]?.markPending(senderID: currentUserID, clientMsgID: clientMsgID)
    }

    public mutating func removeUnsent(channelID: String, clientMsgID: String) {
        timelines[channelID]?.removeUnsent(senderID: currentUserID, clientMsgID: clientMsgID)
    }

    /// Drops a conversation (the user left it).
    public mutating func remove(channelID: String) {
        timelines.removeValue(forKey: channelID)
    }

    private mutating func markFailed(_ failure: SendFailure) -> String? {
        let channelID = failure.channelID ?? timelines.first { _, timeline in
            timeline.entry(id: TimelineEntry.key(senderID: currentUserID, clientMsgID: failure.clientMsgID)) != nil
        }?.key
        guard let channelID else { return nil }
        timelines[channelID]?.markFailed(
            senderID: currentUserID,
            clientMsgID: failure.clientMsgID,
            code: failure.code,
            reason: failure.message
        )
        return channelID
    }
}
