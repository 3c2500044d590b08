import SwiftUI
import ChatKit

/// One message bubble. The user's own messages are on the right, with their delivery state.
struct MessageRow: View {
    let entry: TimelineEntry
    let isMine: Bool
    /// Shown above the bubble; nil to leave it out.
    let senderName: String?

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
                Text(entry.body)
                    .textSelection(.enabled)
                    .padding(.horizontal, 12)
                    .padding(.vertical, 8)
                    .foregroundStyle(isMine ? Color.white : Color.primary)
                    .background(bubbleColor, in: RoundedRectangle(cornerRadius: 16, style: .continuous))
                HStack(spacing: 4) {
                    Text(entry.createdAt, style: .time)
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

    private var bubbleColor: Color {
        switch (isMine, entry.status) {
        case (true, .failed): Color.red.opacity(0.8)
        case (true, _): Color.accentColor
        case (false, _): Color(white: 0.5, opacity: 0.15)
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
