import SwiftUI
import ChatAppCore
import ChatKit

/// Asks the server where to download a message's file (`ChatSession.link(for:in:)`): links are
/// short-lived, so they are asked for when a row shows, never stored with the message.
typealias AttachmentLinkLoader = @MainActor (MessageAttachment) async throws -> AttachmentLink

/// A message's files, in the sender's order: images inline in a box of their own aspect ratio
/// (laid out before anything is downloaded, so the conversation does not jump when a picture
/// arrives; tap to open the whole file), other files as chips with their name and size that
/// open the file.
struct MessageAttachmentsView: View {
    let attachments: [MessageAttachment]
    /// The side of the conversation the message is on.
    let alignment: HorizontalAlignment
    /// Nil: the files are laid out (placeholders, chips that do nothing), not loaded.
    let loadLink: AttachmentLinkLoader?

    var body: some View {
        VStack(alignment: alignment, spacing: 4) {
            ForEach(attachments) { attachment in
                if let size = AttachmentLayout.imageSize(of: attachment) {
                    AttachmentImage(attachment: attachment, size: size, loadLink: loadLink)
                } else {
                    AttachmentChip(attachment: attachment, loadLink: loadLink)
                }
            }
        }
    }
}

/// An image: a placeholder box of the image's shape until its link and then the picture (the
/// thumbnail when the server made one, else the file itself) have arrived.
private struct AttachmentImage: View {
    let attachment: MessageAttachment
    let size: AttachmentLayout.Size
    let loadLink: AttachmentLinkLoader?

    @Environment(\.openURL) private var openURL
    @State private var link: AttachmentLink?
    @State private var failed = false

    var body: some View {
        RoundedRectangle(cornerRadius: 12, style: .continuous)
            .fill(Color(white: 0.5, opacity: 0.15))
            .overlay {
                if let imageURL {
                    AsyncImage(url: imageURL) { phase in
                        switch phase {
                        case .success(let image):
                            image
                                .resizable()
                                .scaledToFill()
                        case .failure:
                            Image(systemName: "photo")
                                .foregroundStyle(.secondary)
                        default:
                            ProgressView()
                        }
                    }
                } else if failed {
                    Image(systemName: "exclamationmark.triangle")
                        .foregroundStyle(.secondary)
                } else {
                    ProgressView()
                }
            }
            .frame(width: size.width, height: size.height)
            .clipShape(RoundedRectangle(cornerRadius: 12, style: .continuous))
            .contentShape(RoundedRectangle(cornerRadius: 12, style: .continuous))
            .onTapGesture { openFile() }
            .task(id: attachment.id) {
                await load()
            }
            .accessibilityElement(children: .ignore)
            .accessibilityLabel("Image, \(attachment.name)")
            .accessibilityAddTraits(.isImage)
            .accessibilityAction(named: "Open") { openFile() }
    }

    /// The thumbnail when there is one, else the file.
    private var imageURL: URL? {
        guard let link else { return nil }
        return URL(string: link.thumbnailURL ?? link.url)
    }

    private func load() async {
        guard let loadLink else { return }
        do {
            link = try await loadLink(attachment)
            failed = false
        } catch is CancellationError {
            // The row scrolled away; it asks again when it is back.
        } catch {
            failed = true
        }
    }

    /// The whole file, in the browser (a link is asked for again: the one shown may be old).
    private func openFile() {
        guard let loadLink else { return }
        Task {
            guard let fresh = try? await loadLink(attachment), let url = URL(string: fresh.url) else { return }
            openURL(url)
        }
    }
}

/// Any other file: its kind, name and size; tapping it opens (downloads) the file.
private struct AttachmentChip: View {
    let attachment: MessageAttachment
    let loadLink: AttachmentLinkLoader?

    @Environment(\.openURL) private var openURL
    @State private var isOpening = false
    @State private var failed = false

    var body: some View {
        Button(action: openFile) {
            HStack(spacing: 8) {
                Image(systemName: Self.symbol(for: attachment.contentType))
                    .font(.title3)
                    .foregroundStyle(Color.accentColor)
                VStack(alignment: .leading, spacing: 1) {
                    Text(attachment.name)
                        .font(.subheadline)
                        .lineLimit(1)
                        .truncationMode(.middle)
                    Text(failed ? "Could not open. Tap to try again." : sizeText)
                        .font(.caption)
                        .foregroundStyle(failed ? Color.red : Color.secondary)
                }
                if isOpening {
                    ProgressView()
                }
            }
            .padding(.horizontal, 10)
            .padding(.vertical, 8)
            .frame(maxWidth: 260, alignment: .leading)
            .background(Color(white: 0.5, opacity: 0.12), in: RoundedRectangle(cornerRadius: 12, style: .continuous))
        }
        .buttonStyle(.plain)
        .disabled(isOpening || loadLink == nil)
        .accessibilityLabel("\(attachment.name), \(sizeText)")
        .accessibilityHint("Opens the file")
    }

    /// "2.5 MB", "86 KB": as the Files app says it.
    private var sizeText: String {
        Int64(clamping: attachment.size).formatted(.byteCount(style: .file))
    }

    private func openFile() {
        guard let loadLink else { return }
        isOpening = true
        Task {
            defer { isOpening = false }
            do {
                let link = try await loadLink(attachment)
                guard let url = URL(string: link.url) else {
                    failed = true
                    return
                }
                failed = false
                openURL(url)
            } catch {
                failed = true
            }
        }
    }

    /// The SF Symbol of a kind of file.
    static func symbol(for contentType: String) -> String {
        switch contentType {
        case "application/pdf": "doc.richtext"
        case "application/zip": "doc.zipper"
        case "text/plain": "doc.text"
        case let type where type.hasPrefix("image/"): "photo"
        case let type where type.hasPrefix("video/"): "film"
        case let type where type.hasPrefix("audio/"): "waveform"
        default: "doc"
        }
    }
}

/// The files picked for the next message, above the composer's text field (`AttachmentUploads`):
/// each with its progress while it uploads, a button that cancels the upload (or removes the
/// file), and when it failed, why, with Retry when trying again can help. Above them, why files
/// just picked were not added.
struct PendingAttachmentsStrip: View {
    let uploads: AttachmentUploads

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            if let notice = uploads.notice {
                HStack(alignment: .top, spacing: 6) {
                    Text(notice)
                        .font(.caption)
                        .foregroundStyle(.secondary)
                    Spacer(minLength: 0)
                    Button {
                        uploads.notice = nil
                    } label: {
                        Image(systemName: "xmark")
                            .font(.caption)
                    }
                    .accessibilityLabel("Dismiss")
                }
            }
            if !uploads.items.isEmpty {
                ScrollView(.horizontal, showsIndicators: false) {
                    HStack(spacing: 8) {
                        ForEach(uploads.items) { item in
                            PendingAttachmentChip(
                                item: item,
                                retry: { uploads.retry(item.id) },
                                remove: { uploads.remove(item.id) }
                            )
                        }
                    }
                }
            }
        }
    }
}

/// One picked file: its kind and name; a bar of the bytes sent while it uploads; why it failed.
private struct PendingAttachmentChip: View {
    let item: AttachmentUploadItem
    let retry: () -> Void
    let remove: () -> Void

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            HStack(spacing: 6) {
                Image(systemName: AttachmentChip.symbol(for: item.contentType ?? ""))
                    .foregroundStyle(item.failure == nil ? Color.accentColor : Color.red)
                    .accessibilityHidden(true)
                Text(item.name)
                    .font(.caption)
                    .lineLimit(1)
                    .truncationMode(.middle)
                Spacer(minLength: 0)
                if item.failure?.isRetryable == true {
                    Button(action: retry) {
                        Image(systemName: "arrow.clockwise")
                    }
                    .accessibilityLabel("Retry uploading \(item.name)")
                }
                Button(action: remove) {
                    Image(systemName: "xmark.circle.fill")
                        .foregroundStyle(.secondary)
                }
                .accessibilityLabel(item.isInFlight ? "Cancel uploading \(item.name)" : "Remove \(item.name)")
            }
            switch item.state {
            case .preparing:
                ProgressView()
                    .controlSize(.mini)
            case .uploading(let fraction):
                ProgressView(value: fraction)
                    .accessibilityLabel("Uploading \(item.name)")
            case .uploaded:
                Text(Int64(clamping: item.size).formatted(.byteCount(style: .file)))
                    .font(.caption2)
                    .foregroundStyle(.secondary)
            case .failed(let failure):
                Text(failure.message)
                    .font(.caption2)
                    .foregroundStyle(Color.red)
                    .lineLimit(3)
            }
        }
        .padding(8)
        .frame(width: 200, alignment: .leading)
        .background(Color(white: 0.5, opacity: 0.12), in: RoundedRectangle(cornerRadius: 10, style: .continuous))
        .accessibilityElement(children: .contain)
    }
}
