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
    /// Empty once deleted; may be empty when the message carries attachments.
    public internal(set) var body: String
    /// The server's timestamp once known; before that, when the user sent it.
    public internal(set) var createdAt: Date
    public internal(set) var seq: Int64?
    public internal(set) var status: Status
    /// When the body was last edited; nil if never.
    public internal(set) var editedAt: Date?
    /// A tombstone: show "Message deleted" instead of a body.
    public internal(set) var isDeleted: Bool
    /// The earlier message this one answers, as it is now.
    public internal(set) var replyTo: ReplyPreview?
    /// One entry per emoji, in the order they were first used; `me` when the user is among them.
    public internal(set) var reactions: [Reaction]
    /// The user ids the body mentions (`@username`, resolved by the server when it placed the
    /// message, and again at each edit). Empty while pending, and once deleted.
    public internal(set) var mentions: [String]
    /// The files the message carries, in the sender's order (a pending send's from its
    /// uploads). Empty when none, and once deleted.
    public internal(set) var attachments: [MessageAttachment]
    /// The positions of the events applied to it, so that a replayed or late event never
    /// undoes a newer one.
    var applied = AppliedChanges()

    /// The seqs of the last events applied to one entry, per thing they change.
    struct AppliedChanges: Sendable, Hashable {
        var edit: Int64?
        var delete: Int64?
        /// Per emoji.
        var reactions: [String: Int64] = [:]
    }

    /// Edited at least once (and not deleted since): show "(edited)".
    public var isEdited: Bool { editedAt != nil && !isDeleted }

    /// Whether the body, as it is now, mentions `userID` (the signed-in user: "mentions you").
    /// A tombstone mentions no one; an edit that took the mention out clears it.
    public func mentions(userID: String) -> Bool {
        !isDeleted && mentions.contains(userID)
    }

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
        editedAt = message.editedAt
        isDeleted = message.deleted
        replyTo = message.replyTo
        reactions = message.deleted ? [] : message.reactions
        mentions = message.deleted ? [] : message.mentions
        attachments = message.deleted ? [] : message.attachments
        if message.deleted { body = "" }
    }

    init(
        pendingBody body: String,
        channelID: String,
        senderID: String,
        clientMsgID: String,
        createdAt: Date,
        replyTo: ReplyPreview? = nil,
        attachments: [MessageAttachment] = []
    ) {
        id = Self.key(senderID: senderID, clientMsgID: clientMsgID)
        messageID = nil
        self.channelID = channelID
        self.senderID = senderID
        self.clientMsgID = clientMsgID
        self.body = body
        self.createdAt = createdAt
        seq = nil
        status = .pending
        editedAt = nil
        isDeleted = false
        self.replyTo = replyTo
        reactions = []
        mentions = []
        self.attachments = attachments
    }

    // MARK: Changes

    /// Takes what a newer copy of the message says ("as it is now": a history page, a replay
    /// after `resume`). A tombstone stays one; a body (with its mentions) is taken when the copy's
    /// edit is newer; reactions are taken unless events already set them (events are newer than
    /// any copy).
    mutating func absorb(_ message: Message) {
        messageID = message.id
        createdAt = message.createdAt
        if message.deleted {
            tombstone()
        }
        if message.replyTo != nil {
            replyTo = message.replyTo
        }
        guard !isDeleted else { return }
        // A message's files never change while it stands; an ack may leave them out.
        if !message.attachments.isEmpty {
            attachments = message.attachments
        }
        if status != .delivered || Self.isNewer(message.editedAt, than: editedAt) {
            body = message.body
            mentions = message.mentions
            editedAt = message.editedAt
        }
        if applied.reactions.isEmpty {
            reactions = message.reactions
        }
    }

    /// Applies a channel event of this message. Idempotent: an event applied again, or older
    /// than one already applied, changes nothing.
    mutating func apply(_ event: ChannelEvent, currentUserID: String) {
        switch event.change {
        case let .edited(newBody, newMentions):
            guard !isDeleted else { return }
            if let last = applied.edit {
                guard event.seq > last else { return }
            } else if let editedAt, event.createdAt < editedAt {
                // The state came from a copy edited later than this event.
                return
            }
            applied.edit = event.seq
            body = newBody
            // The mentions of the new body replace the old ones (none: the mention was edited out).
            mentions = newMentions
            editedAt = event.createdAt
        case .deleted:
            applied.delete = min(applied.delete ?? event.seq, event.seq)
            tombstone()
        case let .reactionAdded(emoji, count), let .reactionRemoved(emoji, count):
            guard !isDeleted else { return }
            if let last = applied.reactions[emoji], event.seq <= last { return }
            applied.reactions[emoji] = event.seq
            var mine: Bool?
            if event.actorID == currentUserID {
                if case .reactionAdded = event.change { mine = true } else { mine = false }
            }
            setReaction(emoji: emoji, count: count, mine: mine)
        case .unknown:
            return
        }
    }

    /// Counts are absolute: set the emoji's count (0 removes it), and `me` when known.
    private mutating func setReaction(emoji: String, count: Int, mine: Bool?) {
        if let index = reactions.firstIndex(where: { $0.emoji == emoji }) {
            if count <= 0 {
                reactions.remove(at: index)
            } else {
                reactions[index].count = count
                if let mine { reactions[index].me = mine }
            }
        } else if count > 0 {
            reactions.append(Reaction(emoji: emoji, count: count, me: mine ?? false))
        }
    }

    private mutating func tombstone() {
        isDeleted = true
        body = ""
        reactions = []
        mentions = []
        attachments = []
    }

    private static func isNewer(_ candidate: Date?, than current: Date?) -> Bool {
        guard let candidate else { return false }
        guard let current else { return true }
        return candidate > current
    }
}

/// A place where messages may be missing. A channel's positions are gapless, but shared by its
/// messages and its events (edits, deletes, reactions), so two neighbouring messages may skip
/// positions: those are a gap only while nothing has accounted for them (an event applied at
/// that position, or a history page that spans it, which has every message in its range).
public struct TimelineGap: Sendable, Hashable {
    /// Fetch `HistoryCursor.after(messageID:)` this one.
    public var afterMessageID: String
    /// The first run of positions not accounted for.
    public var missing: ClosedRange<Int64>
}

/// Positions of a channel known to hide no message: sorted, disjoint, non-adjacent ranges.
struct SeqCoverage: Sendable, Hashable {
    private(set) var ranges: [ClosedRange<Int64>] = []

    mutating func insert(_ range: ClosedRange<Int64>) {
        var merged = range
        var kept: [ClosedRange<Int64>] = []
        kept.reserveCapacity(ranges.count + 1)
        var placed = false
        for current in ranges {
            if current.upperBound < merged.lowerBound - 1 {
                kept.append(current)
            } else if current.lowerBound > merged.upperBound + 1 {
                if !placed {
                    kept.append(merged)
                    placed = true
                }
                kept.append(current)
            } else {
                merged = min(current.lowerBound, merged.lowerBound)...max(current.upperBound, merged.upperBound)
            }
        }
        if !placed { kept.append(merged) }
        ranges = kept
    }

    /// The first run of positions of `range` that no range covers.
    func firstUncovered(in range: ClosedRange<Int64>) -> ClosedRange<Int64>? {
        var start = range.lowerBound
        for covered in ranges where covered.upperBound >= start {
            if covered.lowerBound > start {
                return start...min(covered.lowerBound - 1, range.upperBound)
            }
            guard covered.upperBound < range.upperBound else { return nil }
            start = covered.upperBound + 1
            if start > range.upperBound { return nil }
        }
        return start...range.upperBound
    }
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
///
/// Channel events (edits, deletes, reactions) change entries in place (`apply(_:currentUserID:)`):
/// idempotent, and never undone by an older event or copy. They take positions of the channel's
/// sequence, so the seqs of neighbouring messages may skip numbers without anything missing.
public struct MessageTimeline: Sendable, Hashable {
    public let channelID: String
    /// The rows, in display order.
    public private(set) var entries: [TimelineEntry] = []
    /// `entries[..<sequencedCount]` have a `seq`, ascending.
    private var sequencedCount = 0
    private var keyByMessageID: [String: String] = [:]
    /// Every entry's key, with its `seq` when it has one.
    private var seqByKey: [String: Int64?] = [:]
    /// Positions between loaded messages that hide no message (events, spans of pages).
    private var coverage = SeqCoverage()
    /// Per replied-to message not loaded here: the position of the last edit applied to the
    /// previews of its replies.
    private var previewChanges: [String: Int64] = [:]

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

    /// The entry of the stored message `messageID`, if loaded.
    public func entry(messageID: String) -> TimelineEntry? {
        guard let key = keyByMessageID[messageID], let index = index(ofKey: key) else { return nil }
        return entries[index]
    }

    /// The first hole between loaded messages, if any: positions between two neighbours that
    /// no applied event and no history page accounts for.
    public var firstGap: TimelineGap? {
        guard sequencedCount > 1 else { return nil }
        for index in 1..<sequencedCount {
            guard let previous = entries[index - 1].seq, let current = entries[index].seq,
                  let after = entries[index - 1].messageID else { continue }
            guard current > previous + 1 else { continue }
            if let missing = coverage.firstUncovered(in: (previous + 1)...(current - 1)) {
                return TimelineGap(afterMessageID: after, missing: missing)
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
            // Already in its final place. An ack changes nothing; a replay or a history copy
            // ("as it is now") may bring an edit, a tombstone or reactions missed meanwhile.
            guard message.seq != nil else { return false }
            entry.absorb(message)
            guard entry != entries[index] else { return false }
            entries[index] = entry
            return true
        }
        entry.absorb(message)
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
        // A page has every message of the range it spans: the positions it skips are events,
        // already reflected in the messages "as they are now".
        let seqs = messages.filter { $0.channelID == channelID }.compactMap(\.seq)
        if let first = seqs.min(), let last = seqs.max() {
            var span = first...last
            switch cursor {
            case .latest:
                break
            case .before(let messageID):
                if let end = entry(messageID: messageID)?.seq, end > last { span = first...end }
            case .after(let messageID):
                if let start = entry(messageID: messageID)?.seq, start < first { span = start...last }
            }
            coverage.insert(span)
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

    /// Adds a send of the user before the server has seen it. `replyTo`: the id of the message
    /// it answers; its preview is taken from this timeline when the message is loaded.
    /// `attachments`: the files it carries, shown at once.
    public mutating func addPending(
        body: String,
        senderID: String,
        clientMsgID: String,
        at date: Date,
        replyTo: String? = nil,
        attachments: [MessageAttachment] = []
    ) {
        var preview: ReplyPreview?
        if let replyTo, let original = entry(messageID: replyTo) {
            preview = ReplyPreview(
                id: replyTo,
                seq: original.seq ?? 0,
                senderID: original.senderID,
                preview: original.isDeleted ? "" : ReplyPreview.preview(of: original.body),
                deleted: original.isDeleted
            )
        }
        let pending = TimelineEntry(
            pendingBody: body,
            channelID: channelID,
            senderID: senderID,
            clientMsgID: clientMsgID,
            createdAt: date,
            replyTo: preview,
            attachments: attachments
        )
        guard seqByKey[pending.id] == nil else { return }
        insertNew(pending)
    }

    // MARK: - Channel events

    /// Applies an edit, delete or reaction event (live, or replayed after `resume`). Events are
    /// idempotent and order-safe: applying one twice, or one older than an already applied one
    /// (by `seq`), leaves the same state. An event of a message not loaded here only accounts
    /// for its position: that message arrives "as it is now" when its history is loaded.
    /// `currentUserID` decides the `me` of reactions. Returns whether an entry changed.
    @discardableResult
    public mutating func apply(_ event: ChannelEvent, currentUserID: String) -> Bool {
        guard event.channelID == channelID else { return false }
        coverage.insert(event.seq...event.seq)
        guard let key = keyByMessageID[event.messageID], let index = index(ofKey: key) else {
            return updatePreviews(of: event)
        }
        var entry = entries[index]
        entry.apply(event, currentUserID: currentUserID)
        var changed = false
        if entry != entries[index] {
            // Bookkeeping alone (which seqs were applied) is not a visible change.
            changed = Self.visibleState(entry) != Self.visibleState(entries[index])
            entries[index] = entry
        }
        switch event.change {
        case .edited, .deleted:
            // Replies show the original as it now is.
            let preview = entry.isDeleted ? "" : ReplyPreview.preview(of: entry.body)
            changed = setPreviews(of: event.messageID, preview: preview, deleted: entry.isDeleted) || changed
        case .reactionAdded, .reactionRemoved, .unknown:
            break
        }
        return changed
    }

    /// An edit or delete of a message not loaded here: its replies' previews still follow it.
    private mutating func updatePreviews(of event: ChannelEvent) -> Bool {
        switch event.change {
        case .edited(let body, _):
            if let last = previewChanges[event.messageID], event.seq <= last { return false }
            previewChanges[event.messageID] = event.seq
            return setPreviews(of: event.messageID, preview: ReplyPreview.preview(of: body), deleted: false)
        case .deleted:
            return setPreviews(of: event.messageID, preview: "", deleted: true)
        case .reactionAdded, .reactionRemoved, .unknown:
            return false
        }
    }

    private mutating func setPreviews(of messageID: String, preview: String, deleted: Bool) -> Bool {
        var changed = false
        for index in entries.indices {
            guard var reply = entries[index].replyTo, reply.id == messageID, !reply.deleted else { continue }
            reply.preview = preview
            reply.deleted = deleted
            if reply != entries[index].replyTo {
                entries[index].replyTo = reply
                changed = true
            }
        }
        return changed
    }

    private static func visibleState(_ entry: TimelineEntry) -> TimelineEntry {
        var copy = entry
        copy.applied = TimelineEntry.AppliedChanges()
        return copy
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
