import ChatKit
import Foundation

/// The one line that stands for a message where the message itself does not fit: the
/// conversation list's newest message, the composer's "Replying to", the quote above a reply.
/// A message of files without text names its files ("📎 IMG_0042.jpg"): a line must never be
/// empty, or the conversation looks as if nothing had been said.
public enum MessagePreview {
    /// Marks a message that carries files.
    public static let attachmentMark = "📎"
    /// An empty preview made by the server: the server's previews (`LastMessage.preview`,
    /// `ReplyPreview.preview`) are the start of the body alone, so only a message of files
    /// without text has an empty one, and which files is not said.
    public static let filesOnly = "\(attachmentMark) Attachment"

    /// The line of a message with `body` and `attachments`: the body; the files' names after
    /// the mark when there is no text; the body after the mark when there are both.
    public static func text(body: String, attachments: [MessageAttachment]) -> String {
        guard !attachments.isEmpty else { return body }
        if body.isEmpty {
            return "\(attachmentMark) " + attachments.map(\.name).joined(separator: ", ")
        }
        return "\(attachmentMark) \(body)"
    }

    /// The line of a timeline entry (empty for a tombstone, which is never previewed).
    public static func text(of entry: TimelineEntry) -> String {
        entry.isDeleted ? "" : text(body: entry.body, attachments: entry.attachments)
    }

    /// A preview the server made from a body alone (a conversation's `lastMessage`).
    public static func text(serverPreview preview: String) -> String {
        preview.isEmpty ? filesOnly : preview
    }

    /// The quote above a reply (the server's preview of the message it answers).
    public static func text(of reply: ReplyPreview) -> String {
        reply.deleted ? "Message deleted" : text(serverPreview: reply.preview)
    }

    /// The conversation list's line under `channel`'s name: its newest loaded message if it was
    /// opened (a deleted one is skipped, an edited one shows its new body), else the newest one
    /// the list reported (`lastMessage`), else its description; nil when there is none of them.
    /// In a group (and for the user's own messages) the sender comes first: "You: ...",
    /// "Bob: ...". `displayName`: a user id's name.
    public static func conversationLine(
        for channel: Channel,
        timeline: MessageTimeline,
        lastMessage: LastMessage?,
        currentUserID: String,
        displayName: (String) -> String
    ) -> String? {
        let newest: (senderID: String, text: String)
        if let last = timeline.entries.last(where: { !$0.isDeleted }) {
            newest = (last.senderID, text(of: last))
        } else if let lastMessage {
            newest = (lastMessage.senderID, text(serverPreview: lastMessage.preview))
        } else {
            return channel.description.isEmpty ? nil : channel.description
        }
        if channel.kind == .direct && newest.senderID != currentUserID {
            return newest.text
        }
        let sender = newest.senderID == currentUserID ? "You" : displayName(newest.senderID)
        return "\(sender): \(newest.text)"
    }
}
