import ChatKit
import Foundation

/// One row of the conversation screen: a message, a day separator, or the line above the first
/// message that is new since the user last read the conversation.
public enum TimelineRow: Sendable, Hashable, Identifiable {
    /// The first row of a calendar day: "Today", "Yesterday", or the date.
    case day(label: String, firstEntryID: String)
    /// "New messages": the unread messages start below.
    case unreadDivider
    /// A message. `startsRun`: the first of a run of messages by the same sender (nothing
    /// between them), where its sender's name goes.
    case message(TimelineEntry, startsRun: Bool)

    public var id: String {
        switch self {
        case .day(_, let firstEntryID): "day:" + firstEntryID
        case .unreadDivider: "unread-divider"
        case .message(let entry, _): entry.id
        }
    }
}

/// Lays a conversation's messages out in rows: day separators, and the "new messages" divider.
public enum TimelineLayout {
    public static let unreadDividerTitle = "New messages"

    /// The rows of `entries` (in timeline order).
    /// - Parameters:
    ///   - unreadAfter: the read mark when the conversation was opened, if messages by others
    ///     were unread then: the divider goes above the first later message not sent by
    ///     `currentUserID`. Nil: no divider.
    ///   - now: what "Today" is; `calendar` decides where days start (its time zone).
    public static func rows(
        for entries: [TimelineEntry],
        unreadAfter: Int64?,
        currentUserID: String,
        now: Date = .now,
        calendar: Calendar = .current,
        locale: Locale = .current
    ) -> [TimelineRow] {
        var rows: [TimelineRow] = []
        rows.reserveCapacity(entries.count + 4)
        var currentDay: Date?
        var previousSender: String?
        var dividerPlaced = unreadAfter == nil
        for entry in entries {
            let day = calendar.startOfDay(for: entry.createdAt)
            if day != currentDay {
                currentDay = day
                rows.append(.day(label: dayLabel(for: entry.createdAt, now: now, calendar: calendar, locale: locale), firstEntryID: entry.id))
                previousSender = nil
            }
            if !dividerPlaced, let unreadAfter, let seq = entry.seq, seq > unreadAfter, entry.senderID != currentUserID {
                dividerPlaced = true
                rows.append(.unreadDivider)
                previousSender = nil
            }
            rows.append(.message(entry, startsRun: previousSender != entry.senderID))
            previousSender = entry.senderID
        }
        return rows
    }

    /// "Today", "Yesterday", else the date: with the weekday in the current year ("Monday,
    /// January 13"), with the year otherwise ("January 13, 2024"), in `locale`'s words and order.
    public static func dayLabel(for date: Date, now: Date = .now, calendar: Calendar = .current, locale: Locale = .current) -> String {
        let day = calendar.startOfDay(for: date)
        let today = calendar.startOfDay(for: now)
        if day == today { return "Today" }
        if let yesterday = calendar.date(byAdding: .day, value: -1, to: today), day == yesterday {
            return "Yesterday"
        }
        let formatter = DateFormatter()
        formatter.calendar = calendar
        formatter.timeZone = calendar.timeZone
        formatter.locale = locale
        let sameYear = calendar.component(.year, from: date) == calendar.component(.year, from: now)
        formatter.setLocalizedDateFormatFromTemplate(sameYear ? "EEEEMMMMd" : "yMMMMd")
        return formatter.string(from: date)
    }
}
