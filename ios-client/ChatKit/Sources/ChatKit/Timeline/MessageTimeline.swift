import Foundation

/// One row of a conversation: a stored message, or one of the user's sends on its way.
public struct TimelineEntry: Sendable, Hashable, Identifiable {
    public enum Status: Sendable, Hashable {
        /// Queued or in flight, not acked yet.
        case pending
        /// Refused by the server, or not acked in time. Can be retried with the same
        /// `clientMsgID`.
        case failed(code: String, reason: String)
        /// Acked: durably stored, but its place in the channel (`seq`) is not known yet.
        case sent
        /// Has its `seq`: this is its final place.
        case delivered
    }

    /// Stable across every status change, for list identity: the sender and the
    /// `client_msg_id` name a message just as its server id does (which is derived from them).
    public let id: String
    /// The server's id, once known.
    public internal(set) var messageID: String?
    public let channelID: String
    public let senderID: String
    public let clientMsgID: String
    public internal(set) var body: String
    /// The server's timestamp once known; before that, when the user sent it.
    public internal(set) var createdAt: Date
    public internal(set) var seq: Int64?
    public internal(set) var status: Status

    public var isOutgoingUnsent: Bool {
        switch status {
        case .pending, .failed: true
        case .sent, .delivered: false
        }
    }

    static func key(senderID: String, clientMsgID: String) -> String {
        // A newline cannot occur in either id, so the pair maps to one key only.
        senderID + "\n" + clientMsgID
    }

    init(message: Message) {
        id = Self.key(senderID: message.senderID, clientMsgID: message.clientMsgID)
        messageID = message.id
        channelID = message.channelID
        senderID = message.senderID
        clientMsgID = message.clientMsgID
        body = message.body
        createdAt = message.createdAt
        seq = message.seq
        status = message.seq == nil ? .sent : .delivered
    }

    init(pendingBody body: String, channelID: String, senderID: String, clientMsgID: String, createdAt: Date) {
        id = Self.key(senderID: senderID, clientMsgID: clientMsgID)
        messageID = nil
        self.channelID = channelID
        self.senderID = senderID
        self.clientMsgID = clientMsgID
        self.body = body
        self.createdAt = createdAt
        seq = nil
        status = .pending
    }
}

/// A place where messages are known to be missing: `seq`s are gapless, so a jump between two
/// neighbours means the ones between have not been loaded.
public struct TimelineGap: Sendable, Hashable {
    /// Fetch `HistoryCursor.after(messageID:)` this one.
    public var afterMessageID: String
    public var missing: ClosedRange<Int64>
}

/// The messages of one conversation in channel order, from every source (history pages, live
/// frames, acks, the user's own pending sends) merged into one duplicate-free list.
///
/// Order: messages with a `seq` first, ascending; then those without one (acked but not
/// placed yet, pending, failed) in the order they were sent. A message moves up into the
/// ordered part when its `seq` becomes known.
///
/// Duplicates are recognised by message id and by (sender, `client_msg_id`), so an ack, the
/// live frame, a replay after `resume` and a history page of the same message make one entry.
public struct MessageTimeline: Sendable, Hashable {
    public let channelID: String
    /// The rows, in display order.
    public private(set) var entries: [TimelineEntry] = []
    /// `entries[..<sequencedCount]` have a `seq`, ascending.
    private var sequencedCount = 0
    private var keyByMessageID: [String: String] = [:]
    /// Every entry's key, with its `seq` when it has one.
    private var seqByKey: [String: Int64?] = [:]

    /// Whether older history may exist on the server.
    public private(set) var hasOlderHistory = true
    /// Whether the newest page has been loaded at least once.
    public private(set) var hasLoadedLatest = false

    public init(channelID: String) {
        self.channelID = channelID
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The oldest stored message: the cursor of the next older page.
    public var oldestMessageID: String? {
        sequencedCount > 0 ? entries[0].messageID : nil
    }

    /// The newest message with a known place: where `resume` and gap filling start.
    public var newestPlaced: TimelineEntry? {
        sequencedCount > 0 ? entries[sequencedCount - 1] : nil
    }

    public func entry(id: String) -> TimelineEntry? {
        entries.first { $0.id == id }
    }

    /// The first hole between loaded messages, if any.
    public var firstGap: TimelineGap? {
        guard sequencedCount > 1 else { return nil }
        for index in 1..<sequencedCount {
            guard let previous = entries[index - 1].seq, let current = entries[index].seq,
                  let after = entries[index - 1].messageID else { continue }
            if current > previous + 1 {
                return TimelineGap(afterMessageID: after, missing: (previous + 1)...(current - 1))
            }
        }
        return nil
    }

    // MARK: - Merging

    /// Merges a message from any source. Returns whether anything changed.
    @discardableResult
    public mutating func merge(_ message: Message) -> Bool {
        guard message.channelID == channelID else { return false }
        let key = TimelineEntry.key(senderID: message.senderID, clientMsgID: message.clientMsgID)
        let existingKey = keyByMessageID[message.id] ?? (seqByKey[key] != nil ? key : nil)
        guard let existingKey, let index = index(ofKey: existingKey) else {
            insertNew(TimelineEntry(message: message))
            return true
        }

        var entry = entries[index]
        if entry.seq != nil {
            // Already in its final place; a replay or a second copy changes nothing.
            return false
        }
        entry.messageID = message.id
        entry.body = message.body
        entry.createdAt = message.createdAt
        keyByMessageID[message.id] = existingKey
        if let seq = message.seq {
            entries.remove(at: index)
            entry.seq = seq
            entry.status = .delivered
            insertPlaced(entry)
        } else {
            // An ack: stored, even if this client had given up on it.
            let changed = entry.status != .sent || entries[index] != entry
            entry.status = .sent
            entries[index] = entry
            return changed
        }
        return true
    }

    /// Merges a history page fetched with `cursor` and `limit`.
    public mutating func mergePage(_ messages: [Message], cursor: HistoryCursor, limit: Int) {
        for message in messages {
            merge(message)
        }
        switch cursor {
        case .latest:
            hasLoadedLatest = true
            if messages.count < limit { hasOlderHistory = false }
        case .before:
            if messages.count < limit { hasOlderHistory = false }
        case .after:
            break
        }
        if let first = entries.first, first.seq == 1 {
            hasOlderHistory = false
        }
    }

    /// Adds a send of the user before the server has seen it.
    public mutating func addPending(body: String, senderID: String, clientMsgID: String, at date: Date) {
        let entry = TimelineEntry(pendingBody: body, channelID: channelID, senderID: senderID, clientMsgID: clientMsgID, createdAt: date)
        guard seqByKey[entry.id] == nil else { return }
        insertNew(entry)
    }

    /// Marks an unacked send as failed. Does nothing once it was acked.
    public mutating func markFailed(senderID: String, clientMsgID: String, code: String, reason: String) {
        updateUnsent(senderID: senderID, clientMsgID: clientMsgID) { $0.status = .failed(code: code, reason: reason) }
    }

    /// Marks a failed send as pending again (it is being retried).
    public mutating func markPending(senderID: String, clientMsgID: String) {
        updateUnsent(senderID: senderID, clientMsgID: clientMsgID) { $0.status = .pending }
    }

    /// Removes a pending or failed send the user discarded. Acked messages stay.
    public mutating func removeUnsent(senderID: String, clientMsgID: String) {
        let key = TimelineEntry.key(senderID: senderID, clientMsgID: clientMsgID)
        guard let index = index(ofKey: key), entries[index].isOutgoingUnsent else { return }
        entries.remove(at: index)
        seqByKey.removeValue(forKey: key)
    }

    // MARK: - Internals

    private mutating func updateUnsent(senderID: String, clientMsgID: String, _ change: (inout TimelineEntry) -> Void) {
        let key = TimelineEntry.key(senderID: senderID, clientMsgID: clientMsgID)
        guard let index = index(ofKey: key), entries[index].isOutgoingUnsent else { return }
        change(&entries[index])
    }

    private mutating func insertNew(_ entry: TimelineEntry) {
        if let messageID = entry.messageID {
            keyByMessageID[messageID] = entry.id
        }
        if entry.seq != nil {
            insertPlaced(entry)
        } else {
            seqByKey[entry.id] = .some(nil)
            entries.append(entry)
        }
    }

    /// Inserts an entry with a `seq` at its place in the ordered part.
    private mutating func insertPlaced(_ entry: TimelineEntry) {
        guard let seq = entry.seq else { return }
        let position = lowerBound(seq)
        entries.insert(entry, at: position)
        sequencedCount += 1
        seqByKey[entry.id] = .some(seq)
    }

    /// The first index of the ordered part whose `seq` is not below `seq`.
    private func lowerBound(_ seq: Int64) -> Int {
        var low = 0
        var high = sequencedCount
        while low < high {
            let middle = (low + high) / 2
            if let current = entries[middle].seq, current < seq {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low
    }

    private func index(ofKey key: String) -> Int? {
        guard let known = seqByKey[key] else { return nil }
        if let seq = known {
            var index = lowerBound(seq)
            while index < sequencedCount, entries[index].seq == seq {
                if entries[index].id == key { return index }
                index += 1
            }
            return nil
        }
        return entries[sequencedCount...].firstIndex { $0.id == key }
    }
}
