import SwiftUI
import ChatAppCore
import ChatKit

/// One message bubble. The user's own messages are on the right, with their delivery state.
/// A reply shows the message it answers above the bubble; a deleted message is a tombstone;
/// reactions are chips under the bubble (tap one to add or take back the same reaction).
/// Files come above the text (`MessageAttachmentsView`): images inline, others as chips; a
/// message of files alone has no text bubble.
/// Links in the body open when tapped; `@mentions` are bold, the user's own highlighted; a
/// message that mentions the user is tinted and marked "@" ("mentions you" for VoiceOver). A
/// body written right to left (Hebrew, Arabic) is laid out from the right.
struct MessageRow: View {
    let entry: TimelineEntry
    let isMine: Bool
    /// Shown above the bubble; nil to leave it out.
    let senderName: String?
    /// The display name of the sender of the message this one answers.
    var replySenderName: String? = nil
    /// The body mentions the signed-in user (`ChatSession.mentionsMe`).
    var mentionsMe: Bool = false
    /// The signed-in user's username: their `@name` in a body stands out.
    var currentUsername: String? = nil
    /// Adds or takes back the user's reaction; nil: chips are not tappable.
    var onToggleReaction: ((String) -> Void)? = nil
    /// Where to download the message's files (`ChatSession.link(for:in:)`); nil: they are laid
    /// out, not loaded.
    var loadLink: AttachmentLinkLoader? = nil

    var body: some View {
        HStack(alignment: .bottom, spacing: 6) {
            if isMine { Spacer(minLength: 48) }
            VStack(alignment: isMine ? .trailing : .leading, spacing: 2) {
                if let senderName {
                    Text(senderName)
                        .font(.caption.bold())
                        .foregroundStyle(.secondary)
                        .padding(.top, 6)
                }
                if let reply = entry.replyTo {
                    ReplyPreviewView(reply: reply, senderName: replySenderName)
                }
                if !entry.attachments.isEmpty {
                    MessageAttachmentsView(
                        attachments: entry.attachments,
                        alignment: isMine ? .trailing : .leading,
                        loadLink: loadLink
                    )
                }
                if showsBubble {
                    bubble
                }
                if !entry.reactions.isEmpty {
                    ReactionChips(reactions: entry.reactions, onToggle: onToggleReaction)
                }
                HStack(spacing: 4) {
                    if mentionsMe {
                        Image(systemName: "at")
                            .foregroundStyle(Color.orange)
                            .accessibilityLabel("mentions you")
                    }
                    Text(entry.createdAt, style: .time)
                    if entry.isEdited {
                        Text("(edited)")
                    }
                    if isMine {
                        statusIcon
                    }
                }
                .font(.caption2)
                .foregroundStyle(.secondary)
                if case .failed = entry.status {
                    Text("Not sent. Tap to retry.")
                        .accessibilityHint("Actions: Try Again, Delete")
                        .font(.caption2)
                        .foregroundStyle(.red)
                }
            }
            if !isMine { Spacer(minLength: 48) }
        }
        .opacity(entry.status == .pending ? 0.7 : 1)
        .accessibilityElement(children: .combine)
    }

    /// The text bubble: a message of files alone has none (a tombstone always has one).
    private var showsBubble: Bool {
        entry.isDeleted || !entry.body.isEmpty || entry.attachments.isEmpty
    }

    @ViewBuilder
    private var bubble: some View {
        if entry.isDeleted {
            Label("Message deleted", systemImage: "trash")
                .font(.callout.italic())
                .foregroundStyle(.secondary)
                .padding(.horizontal, 12)
                .padding(.vertical, 8)
                .overlay(
                    RoundedRectangle(cornerRadius: 16, style: .continuous)
                        .strokeBorder(Color.secondary.opacity(0.4), style: StrokeStyle(lineWidth: 1, dash: [4]))
                )
                .accessibilityLabel("Message deleted")
        } else {
            Text(bodyText)
                .textSelection(.enabled)
                // Natural direction: a right-to-left body starts on the right, also in an app
                // laid out left to right (and the other way round).
                .multilineTextAlignment(.leading)
                .environment(\.layoutDirection, bodyDirection)
                .tint(isMine ? Color.white : Color.accentColor)
                .padding(.horizontal, 12)
                .padding(.vertical, 8)
                .foregroundStyle(isMine ? Color.white : Color.primary)
                .background(bubbleColor, in: RoundedRectangle(cornerRadius: 16, style: .continuous))
                .overlay(
                    RoundedRectangle(cornerRadius: 16, style: .continuous)
                        .strokeBorder(mentionsMe && !isMine ? Color.orange : Color.clear, lineWidth: 1.5)
                )
        }
    }

    /// The body with tappable links and bold mentions (`MessageBody` finds them).
    private var bodyText: AttributedString {
        var text = AttributedString()
        for segment in MessageBody.segments(of: entry.body, currentUsername: currentUsername) {
            var part = AttributedString(segment.text)
            switch segment {
            case .text:
                break
            case .link(_, let url):
                part.link = url
                part.swiftUI.underlineStyle = .single
            case .mention(_, _, let isMe):
                part.swiftUI.font = .body.bold()
                if isMe {
                    part.swiftUI.backgroundColor = Color.orange.opacity(0.35)
                }
            }
            text += part
        }
        return text
    }

    private var bodyDirection: LayoutDirection {
        TextDirection.of(entry.body) == .rightToLeft ? .rightToLeft : .leftToRight
    }

    private var bubbleColor: Color {
        switch (isMine, entry.status) {
        case (true, .failed): Color.red.opacity(0.8)
        case (true, _): Color.accentColor
        case (false, _): mentionsMe ? Color.orange.opacity(0.15) : Color(white: 0.5, opacity: 0.15)
        }
    }

    @ViewBuilder
    private var statusIcon: some View {
        switch entry.status {
        case .pending:
            Image(systemName: "clock")
                .accessibilityLabel("Sending")
        case .failed:
            Image(systemName: "exclamationmark.circle.fill")
                .foregroundStyle(.red)
                .accessibilityLabel("Not sent")
        case .sent:
            Image(systemName: "checkmark")
                .accessibilityLabel("Sent")
        case .delivered:
            Image(systemName: "checkmark.circle")
                .accessibilityLabel("Delivered")
        }
    }
}

/// The message a reply answers: its sender and the start of its body (or that it was deleted).
struct ReplyPreviewView: View {
    let reply: ReplyPreview
    let senderName: String?

    var body: some View {
        HStack(spacing: 6) {
            RoundedRectangle(cornerRadius: 1.5)
                .fill(Color.accentColor)
                .frame(width: 3)
            VStack(alignment: .leading, spacing: 1) {
                if let senderName {
                    Text(senderName)
                        .font(.caption2.bold())
                }
                Text(MessagePreview.text(of: reply))
                    .font(.caption)
                    .italic(reply.deleted)
                    .lineLimit(2)
            }
            .foregroundStyle(.secondary)
        }
        .fixedSize(horizontal: false, vertical: true)
        .padding(.vertical, 2)
        .accessibilityElement(children: .ignore)
        .accessibilityLabel(accessibilityText)
    }

    private var accessibilityText: String {
        let who = senderName.map { " \($0)" } ?? ""
        return reply.deleted ? "Reply to a deleted message" : "Reply to\(who): \(MessagePreview.text(of: reply))"
    }
}

/// One chip per emoji: the emoji and how many reacted; highlighted when the user did.
struct ReactionChips: View {
    let reactions: [Reaction]
    let onToggle: ((String) -> Void)?

    var body: some View {
        HStack(spacing: 4) {
            ForEach(reactions, id: \.emoji) { reaction in
                Button {
                    onToggle?(reaction.emoji)
                } label: {
                    HStack(spacing: 2) {
                        Text(reaction.emoji)
                        Text("\(reaction.count)")
                            .font(.caption.monospacedDigit())
                    }
                    .padding(.horizontal, 8)
                    .padding(.vertical, 3)
                    .background(
                        reaction.me ? Color.accentColor.opacity(0.25) : Color(white: 0.5, opacity: 0.12),
                        in: Capsule()
                    )
                    .overlay(Capsule().strokeBorder(reaction.me ? Color.accentColor : Color.clear, lineWidth: 1))
                }
                .buttonStyle(.plain)
                .disabled(onToggle == nil)
                .accessibilityLabel(Self.label(for: reaction))
                .accessibilityHint(reaction.me ? "Takes your reaction back" : "Adds your reaction")
            }
        }
    }

    /// The VoiceOver action that toggles the user's own reaction with this emoji.
    static func actionTitle(for reaction: Reaction) -> String {
        reaction.me ? "Take back \(reaction.emoji)" : "React \(reaction.emoji)"
    }

    static func label(for reaction: Reaction) -> String {
        let people = reaction.count == 1 ? "1 reaction" : "\(reaction.count) reactions"
        return reaction.me ? "\(reaction.emoji), \(people), including yours" : "\(reaction.emoji), \(people)"
    }
}
