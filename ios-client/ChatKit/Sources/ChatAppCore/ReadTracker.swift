import ChatKit
import Foundation

/// How far the user has read one conversation, and what is unread after that.
public struct ConversationReadState: Sendable, Hashable {
    /// Every message up to this position is read (0: nothing yet).
    public var readSeq: Int64
    /// The newest message position known (from the list, then from live messages).
    public var headSeq: Int64
    /// Messages after `readSeq` sent by others.
    public var unreadCount: Int
    /// Of those, the ones that mention the user.
    public var mentionCount: Int

    public init(readSeq: Int64 = 0, headSeq: Int64 = 0, unreadCount: Int = 0, mentionCount: Int = 0) {
        self.readSeq = readSeq
        self.headSeq = headSeq
        self.unreadCount = unreadCount
        self.mentionCount = mentionCount
    }

    public var hasUnread: Bool { unreadCount > 0 }

    /// The badge: "9999+" past the server's count limit.
    public var badgeText: String {
        unreadCount >= Limits.unreadCountMax ? "\(Limits.unreadCountMax)+" : "\(unreadCount)"
    }
}

/// The read state of every conversation: the server's (`GET /channels`), moved on by live
/// messages, by the user reading, and by `read` frames (the user read on another device).
///
/// Counts follow the server's rule (docs/protocol.md, "Read state"): messages after the read
/// mark sent by others, and of those the ones that mention the user. A message at or below the
/// position the list was counted up to (`headSeq`) is already in the server's count, so a
/// replay is not counted twice.
public struct ReadTracker: Sendable, Hashable {
    public let currentUserID: String
    public private(set) var states: [String: ConversationReadState] = [:]

    public init(currentUserID: String) {
        self.currentUserID = currentUserID
    }

    public subscript(channelID: String) -> ConversationReadState {
        states[channelID] ?? ConversationReadState()
    }

    /// Takes the server's counts (a fresh `GET /channels`). Messages already loaded that are
    /// newer than the list's head (live ones the list did not count yet) are counted on top.
    public mutating func reset(from conversations: [Conversation], store: MessageStore) {
        var fresh: [String: ConversationReadState] = [:]
        for conversation in conversations {
            var state = ConversationReadState(
                readSeq: conversation.readSeq,
                headSeq: conversation.headSeq,
                unreadCount: conversation.unreadCount,
                mentionCount: conversation.mentionCount
            )
            let timeline = store[conversation.id]
            // A mark made here that the server had not stored yet still holds.
            if let known = states[conversation.id], known.readSeq > state.readSeq {
                state.readSeq = known.readSeq
                if Self.holdsEverything(after: state.readSeq, upTo: state.headSeq, in: timeline) {
                    recount(&state, from: timeline)
                    state.headSeq = max(state.headSeq, timeline.newestPlaced?.seq ?? 0)
                } else if known.readSeq >= state.headSeq {
                    state.unreadCount = 0
                    state.mentionCount = 0
                }
            }
            // Ascending positions: each is counted once, and later copies of it are not.
            for entry in timeline.entries {
                guard let seq = entry.seq, seq > state.headSeq else { continue }
                count(entry: entry, seq: seq, in: &state)
                state.headSeq = seq
            }
            fresh[conversation.id] = state
        }
        states = fresh
    }

    /// A live (or replayed) message. Returns whether a count changed. A message of a
    /// conversation on screen (`isVisible`) is read at once: call `markRead` for it instead.
    @discardableResult
    public mutating func noteMessage(_ message: Message, isVisible: Bool = false) -> Bool {
        guard let seq = message.seq else { return false }
        var state = self[message.channelID]
        guard seq > state.headSeq else { return false }
        state.headSeq = seq
        if !isVisible {
            countMessage(senderID: message.senderID, deleted: message.deleted, mentionsMe: message.mentions(userID: currentUserID), seq: seq, in: &state)
        }
        let changed = state != self[message.channelID]
        states[message.channelID] = state
        return changed
    }

    /// The user has read `channelID` up to `seq` here (a message shown). Returns whether the
    /// mark moved forward, i.e. whether to send `mark_read`. What remains unread is recounted
    /// from `timeline` (the loaded messages after the mark).
    @discardableResult
    public mutating func markRead(channelID: String, seq: Int64, timeline: MessageTimeline) -> Bool {
        var state = self[channelID]
        guard seq > state.readSeq else {
            return false
        }
        state.readSeq = seq
        state.headSeq = max(state.headSeq, seq)
        recount(&state, from: timeline)
        states[channelID] = state
        return true
    }

    /// What `readElsewhere` found.
    public enum Outcome: Sendable, Hashable {
        /// Nothing changed (the mark was not newer).
        case unchanged
        /// The counts are right.
        case updated
        /// The mark is newer, but what is unread after it is not known here: ask the server
        /// (`GET /channels`).
        case needsRefresh
    }

    /// The user read `channelID` up to `seq` on another device (a `read` frame).
    public mutating func readElsewhere(channelID: String, seq: Int64, timeline: MessageTimeline) -> Outcome {
        var state = self[channelID]
        guard seq > state.readSeq else { return .unchanged }
        state.readSeq = seq
        var outcome = Outcome.updated
        if seq >= state.headSeq {
            state.headSeq = seq
            state.unreadCount = 0
            state.mentionCount = 0
        } else if Self.holdsEverything(after: seq, upTo: state.headSeq, in: timeline) {
            recount(&state, from: timeline)
        } else {
            outcome = .needsRefresh
        }
        states[channelID] = state
        return outcome
    }

    /// Forgets a conversation (the user left it).
    public mutating func remove(channelID: String) {
        states.removeValue(forKey: channelID)
    }

    // MARK: - Counting

    private func count(entry: TimelineEntry, seq: Int64, in state: inout ConversationReadState) {
        countMessage(senderID: entry.senderID, deleted: entry.isDeleted, mentionsMe: entry.mentions(userID: currentUserID), seq: seq, in: &state)
    }

    private func countMessage(senderID: String, deleted: Bool, mentionsMe: Bool, seq: Int64, in state: inout ConversationReadState) {
        guard seq > state.readSeq, senderID != currentUserID, !deleted else { return }
        state.unreadCount = min(state.unreadCount + 1, Limits.unreadCountMax)
        if mentionsMe {
            state.mentionCount = min(state.mentionCount + 1, Limits.unreadCountMax)
        }
    }

    /// Counts the loaded messages after the mark: exact when the timeline holds every message
    /// after it.
    private func recount(_ state: inout ConversationReadState, from timeline: MessageTimeline) {
        var unread = 0
        var mentions = 0
        for entry in timeline.entries {
            guard let seq = entry.seq, seq > state.readSeq, entry.senderID != currentUserID, !entry.isDeleted else { continue }
            unread += 1
            if entry.mentions(userID: currentUserID) { mentions += 1 }
        }
        state.unreadCount = min(unread, Limits.unreadCountMax)
        state.mentionCount = min(mentions, Limits.unreadCountMax)
    }

    /// Whether `timeline` has every message in positions `(after, upTo]`: the newest page is
    /// loaded, reaches down to the mark, and has no hole.
    static func holdsEverything(after mark: Int64, upTo head: Int64, in timeline: MessageTimeline) -> Bool {
        guard timeline.hasLoadedLatest, timeline.firstGap == nil,
              let newest = timeline.newestPlaced?.seq, newest >= head,
              let oldest = timeline.entries.first?.seq else { return false }
        return oldest <= mark + 1 || !timeline.hasOlderHistory
    }
}
