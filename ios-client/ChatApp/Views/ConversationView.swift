import SwiftUI
import PhotosUI
import UIKit
import UniformTypeIdentifiers
import ChatAppCore
import ChatKit

/// One conversation: its history (older pages load when scrolled to the top), live messages,
/// and the composer. The user's own messages show whether they are pending, sent or failed.
/// A stored message's actions (reply, react, and for the user's own: edit, delete; in a group
/// the user owns, delete on anyone's) are in its long-press menu and in its VoiceOver actions;
/// reaction chips toggle the user's reaction. Days are separated ("Today", "Yesterday", the
/// date), and a "New messages" line marks where the unread ones began when it was opened
/// (`TimelineLayout`); while it is on screen, the conversation is marked read. The composer's
/// "+" attaches photos, files and a pasted image, and files dragged onto the composer are
/// attached too (`AttachmentUploads`: each uploads at once, with its progress, cancel and retry,
/// in a strip above the text field); Send waits for them.
struct ConversationView: View {
    let session: ChatSession
    let channelID: String

    @State private var draft = ""
    @State private var isAtBottom = true
    @State private var showsMembers = false
    @State private var selectedFailure: TimelineEntry?
    /// The message the next send answers.
    @State private var replyingTo: TimelineEntry?
    /// The user's message whose body the composer is replacing.
    @State private var editing: TimelineEntry?
    /// The message the emoji menu reacts to.
    @State private var reactingTo: TimelineEntry?
    /// The message waiting for "Delete for everyone" to be confirmed.
    @State private var confirmingDelete: TimelineEntry?
    /// The message at the top of the screen; keeps its place when an older page is prepended.
    @State private var topEntryID: String?
    @FocusState private var composerFocused: Bool

    private static let bottomID = "bottom"

    var body: some View {
        let timeline = session.timeline(channelID)
        let rows = TimelineLayout.rows(
            for: timeline.entries,
            unreadAfter: session.unreadMarkers[channelID],
            currentUserID: session.user.id
        )
        ScrollViewReader { proxy in
            ScrollView {
                LazyVStack(alignment: .leading, spacing: 4) {
                    header(timeline)
                    ForEach(rows) { row in
                        switch row {
                        case .day(let label, _):
                            DaySeparator(label: label)
                                .id(row.id)
                        case .unreadDivider:
                            UnreadDivider()
                                .id(row.id)
                        case let .message(entry, startsRun):
                            messageRow(entry, startsRun: startsRun)
                        }
                    }
                    Color.clear
                        .frame(height: 1)
                        .id(Self.bottomID)
                        .onAppear { isAtBottom = true }
                        .onDisappear { isAtBottom = false }
                }
                .padding(.horizontal, 12)
                .padding(.vertical, 8)
                .scrollTargetLayout()
            }
            .scrollPosition(id: $topEntryID, anchor: .top)
            .defaultScrollAnchor(.bottom)
            .scrollDismissesKeyboard(.interactively)
            .onChange(of: timeline.entries.last?.id) { _, _ in
                // Follow new messages when already at the bottom, and always after sending.
                let lastIsMine = timeline.entries.last?.senderID == session.user.id
                if isAtBottom || lastIsMine {
                    withAnimation(.easeOut(duration: 0.2)) {
                        proxy.scrollTo(Self.bottomID, anchor: .bottom)
                    }
                }
            }
            .task(id: channelID) {
                await session.open(channelID)
                // Opened with unread messages: start at the first of them.
                if session.unreadMarkers[channelID] != nil {
                    proxy.scrollTo(TimelineRow.unreadDivider.id, anchor: .top)
                }
            }
        }
        .onAppear { session.conversationAppeared(channelID) }
        .onDisappear { session.conversationDisappeared(channelID) }
        .safeAreaInset(edge: .top, spacing: 0) {
            ConnectionBanner(state: session.connection) { session.reconnectNow() }
        }
        .safeAreaInset(edge: .bottom, spacing: 0) {
            ComposerView(
                draft: $draft,
                isFocused: $composerFocused,
                context: composerContext,
                uploads: session.uploads(for: channelID),
                cancelContext: cancelComposerContext
            ) {
                if let editing {
                    session.edit(editing, to: draft)
                    self.editing = nil
                } else {
                    // With the files uploaded so far; refused while one is still on its way.
                    guard session.sendComposed(draft, to: channelID, replyTo: replyingTo?.messageID) else { return }
                    replyingTo = nil
                }
                draft = ""
            }
        }
        .navigationTitle(session.channel(channelID)?.name ?? "Conversation")
        .navigationBarTitleDisplayMode(.inline)
        .toolbar {
            ToolbarItem(placement: .topBarTrailing) {
                // The conversation's info: its members, and how much of it notifies.
                Menu {
                    Button("Members", systemImage: "person.2") {
                        showsMembers = true
                    }
                    Picker(selection: notificationLevel) {
                        ForEach(NotificationLevel.allCases) { level in
                            Label(level.title, systemImage: level.systemImage)
                                .tag(level)
                        }
                    } label: {
                        Label("Notifications", systemImage: "bell")
                    }
                    .pickerStyle(.menu)
                } label: {
                    Image(systemName: "ellipsis.circle")
                }
                .accessibilityLabel("Conversation info")
                .accessibilityValue("Notifications: \(notificationSettings.level(of: channelID).title)")
            }
        }
        .task(id: channelID) {
            await notificationSettings.loadLevel(of: channelID)
        }
        .alert("Notifications", isPresented: hasNotificationError) {
            Button("OK") { notificationSettings.errorMessage = nil }
        } message: {
            Text(notificationSettings.errorMessage ?? "")
        }
        .sheet(isPresented: $showsMembers) {
            MembersView(session: session, channelID: channelID)
        }
        .confirmationDialog(
            "This message was not sent.",
            isPresented: Binding(get: { selectedFailure != nil }, set: { if !$0 { selectedFailure = nil } }),
            titleVisibility: .visible,
            presenting: selectedFailure
        ) { entry in
            ForEach(MessageAction.available(for: entry), id: \.self) { action in
                Button(action.title, role: action.isDestructive ? .destructive : nil) {
                    session.perform(action, on: entry)
                }
            }
        } message: { entry in
            if case .failed(_, let reason) = entry.status {
                Text(reason)
            }
        }
        .confirmationDialog(
            "React",
            isPresented: Binding(get: { reactingTo != nil }, set: { if !$0 { reactingTo = nil } }),
            presenting: reactingTo
        ) { entry in
            ForEach(ChatSession.quickReactions, id: \.self) { emoji in
                let mine = entry.reactions.contains { $0.emoji == emoji && $0.me }
                Button(mine ? "\(emoji) (take back)" : emoji) {
                    session.toggleReaction(emoji, on: entry)
                }
            }
        }
        .confirmationDialog(
            "Delete this message for everyone?",
            isPresented: Binding(get: { confirmingDelete != nil }, set: { if !$0 { confirmingDelete = nil } }),
            titleVisibility: .visible,
            presenting: confirmingDelete
        ) { entry in
            Button("Delete for Everyone", role: .destructive) {
                session.perform(.delete, on: entry)
            }
        } message: { entry in
            if entry.senderID != session.user.id {
                Text("You own this channel, so you can delete anyone's message.")
            }
        }
    }

    private var notificationSettings: NotificationSettings {
        session.notificationSettings
    }

    /// The picker's level: shown at once, saved on the server (undone if it refuses).
    private var notificationLevel: Binding<NotificationLevel> {
        Binding(
            get: { notificationSettings.level(of: channelID) },
            set: { level in
                Task { await notificationSettings.setLevel(level, of: channelID) }
            }
        )
    }

    private var hasNotificationError: Binding<Bool> {
        Binding(
            get: { notificationSettings.errorMessage != nil },
            set: { if !$0 { notificationSettings.errorMessage = nil } }
        )
    }

    /// The top of the list: a spinner that loads the previous page when it scrolls into view,
    /// or the start of the conversation.
    @ViewBuilder
    private func header(_ timeline: MessageTimeline) -> some View {
        if !timeline.hasLoadedLatest {
            ProgressView()
                .frame(maxWidth: .infinity)
                .padding()
        } else if timeline.hasOlderHistory {
            ProgressView()
                .frame(maxWidth: .infinity)
                .padding()
                .task(id: timeline.oldestMessageID) {
                    await session.loadOlder(channelID)
                }
        } else {
            Text(timeline.isEmpty ? "No messages yet. Say hello!" : "This is the beginning of the conversation.")
                .font(.footnote)
                .foregroundStyle(.secondary)
                .frame(maxWidth: .infinity)
                .padding()
        }
    }

    /// A message with its menus and VoiceOver actions. `startsRun`: the first of its sender's
    /// run (`TimelineLayout`), where the name goes in a group.
    private func messageRow(_ entry: TimelineEntry, startsRun: Bool) -> some View {
        MessageRow(
            entry: entry,
            isMine: entry.senderID == session.user.id,
            senderName: showsSender(entry, startsRun: startsRun) ? session.displayName(of: entry.senderID) : nil,
            replySenderName: entry.replyTo.map { session.displayName(of: $0.senderID) },
            mentionsMe: session.mentionsMe(entry),
            currentUsername: session.user.username,
            onToggleReaction: entry.status == .delivered && !entry.isDeleted
                ? { emoji in session.toggleReaction(emoji, on: entry) }
                : nil,
            loadLink: { attachment in try await session.link(for: attachment, in: channelID) }
        )
        .id(entry.id)
        .onTapGesture {
            if case .failed = entry.status {
                selectedFailure = entry
            }
        }
        .contextMenu {
            ForEach(session.actions(for: entry), id: \.self) { action in
                Button(role: action.isDestructive ? .destructive : nil) {
                    handle(action, on: entry)
                } label: {
                    Label(action.title, systemImage: action.systemImage)
                }
            }
        }
        // The same actions as the menus, for VoiceOver (swipe up/down on the
        // row): a tap or a long press alone is not reachable there.
        .accessibilityActions {
            ForEach(session.actions(for: entry), id: \.self) { action in
                Button(action.title) { handle(action, on: entry) }
            }
            if entry.status == .delivered && !entry.isDeleted {
                ForEach(entry.reactions, id: \.emoji) { reaction in
                    Button(ReactionChips.actionTitle(for: reaction)) {
                        session.toggleReaction(reaction.emoji, on: entry)
                    }
                }
            }
        }
    }

    /// Runs an action of the row's menus; the ones that need more from the user open it.
    private func handle(_ action: MessageAction, on entry: TimelineEntry) {
        switch action {
        case .reply:
            editing = nil
            replyingTo = entry
            composerFocused = true
        case .edit:
            replyingTo = nil
            editing = entry
            draft = entry.body
            composerFocused = true
        case .react:
            reactingTo = entry
        case .delete where !entry.isOutgoingUnsent:
            confirmingDelete = entry
        case .delete, .retry:
            session.perform(action, on: entry)
        }
    }

    /// What the composer is doing besides sending a new message.
    private var composerContext: ComposerView.Context? {
        if editing != nil { return .editing }
        if let replyingTo {
            return .replying(to: session.displayName(of: replyingTo.senderID), preview: MessagePreview.text(of: replyingTo))
        }
        return nil
    }

    private func cancelComposerContext() {
        if editing != nil { draft = "" }
        editing = nil
        replyingTo = nil
    }

    /// Names are shown on others' messages in groups, once per run of the same sender.
    private func showsSender(_ entry: TimelineEntry, startsRun: Bool) -> Bool {
        guard entry.senderID != session.user.id, session.channel(channelID)?.kind != .direct else { return false }
        return startsRun
    }
}

/// "Today", "Yesterday" or the date, between the messages of two days.
private struct DaySeparator: View {
    let label: String

    var body: some View {
        Text(label)
            .font(.caption.weight(.semibold))
            .foregroundStyle(.secondary)
            .padding(.horizontal, 10)
            .padding(.vertical, 3)
            .background(Color(white: 0.5, opacity: 0.12), in: Capsule())
            .frame(maxWidth: .infinity)
            .padding(.vertical, 6)
            .accessibilityAddTraits(.isHeader)
    }
}

/// The line above the first message that is new since the user last read the conversation.
private struct UnreadDivider: View {
    var body: some View {
        HStack(spacing: 8) {
            Rectangle()
                .fill(Color.red.opacity(0.6))
                .frame(height: 1)
            Text(TimelineLayout.unreadDividerTitle)
                .font(.caption.bold())
                .foregroundStyle(Color.red)
                .fixedSize()
            Rectangle()
                .fill(Color.red.opacity(0.6))
                .frame(height: 1)
        }
        .padding(.vertical, 6)
        .accessibilityElement(children: .ignore)
        .accessibilityLabel("New messages below")
    }
}

/// The text field and send button, with what is being answered or edited above them; the "+"
/// menu (Photos, Files, a pasted image), files dropped onto it (drag and drop, from another app
/// on iPad or a file dragged within the app), and the strip of files picked for the message.
private struct ComposerView: View {
    enum Context {
        case replying(to: String, preview: String)
        case editing
    }

    @Binding var draft: String
    var isFocused: FocusState<Bool>.Binding
    let context: Context?
    /// The files of this conversation's next message.
    let uploads: AttachmentUploads
    let cancelContext: () -> Void
    let send: () -> Void

    @State private var showsPhotoPicker = false
    @State private var showsFileImporter = false
    @State private var pickedPhotos: [PhotosPickerItem] = []
    /// A drag with files is over the composer.
    @State private var isDropTarget = false

    /// What the Files picker offers: the server's types, and HEIC photos (sent as JPEG).
    private static let importableTypes: [UTType] = [
        .jpeg, .png, .gif, .webP, .heic, .heif, .pdf, .plainText, .zip, .mpeg4Movie, .mp3, .mpeg4Audio,
    ]

    var body: some View {
        VStack(spacing: 4) {
            if let context {
                HStack(spacing: 8) {
                    Image(systemName: context.isEditing ? "pencil" : "arrowshape.turn.up.left")
                        .foregroundStyle(Color.accentColor)
                        .accessibilityHidden(true)
                    VStack(alignment: .leading, spacing: 1) {
                        Text(context.title)
                            .font(.caption.bold())
                        if case .replying(_, let preview) = context {
                            Text(preview)
                                .font(.caption)
                                .foregroundStyle(.secondary)
                                .lineLimit(1)
                        }
                    }
                    .accessibilityElement(children: .combine)
                    Spacer()
                    Button(action: cancelContext) {
                        Image(systemName: "xmark.circle.fill")
                            .foregroundStyle(.secondary)
                    }
                    .accessibilityLabel(context.isEditing ? "Cancel editing" : "Cancel reply")
                }
            }
            if remaining < 200 {
                Text(remaining >= 0 ? "\(remaining) characters left" : "\(-remaining) characters too many")
                    .font(.caption)
                    .foregroundStyle(remaining >= 0 ? Color.secondary : Color.red)
                    .frame(maxWidth: .infinity, alignment: .trailing)
            }
            if !isEditing && (!uploads.items.isEmpty || uploads.notice != nil) {
                PendingAttachmentsStrip(uploads: uploads)
            }
            if !isEditing && uploads.isBusy {
                Text("Send waits until the files are uploaded.")
                    .font(.caption)
                    .foregroundStyle(.secondary)
                    .frame(maxWidth: .infinity, alignment: .leading)
            }
            HStack(alignment: .bottom, spacing: 8) {
                if !isEditing {
                    attachMenu
                }
                TextField("Message", text: $draft, axis: .vertical)
                    .lineLimit(1...6)
                    .textFieldStyle(.roundedBorder)
                    .focused(isFocused)
                    .onSubmit(submit)
                Button(action: submit) {
                    Image(systemName: "arrow.up.circle.fill")
                        .font(.title)
                }
                .disabled(!canSend)
                .accessibilityLabel(context?.isEditing == true ? "Save edit" : "Send")
            }
        }
        .padding(.horizontal, 12)
        .padding(.vertical, 8)
        .background(.bar)
        .overlay {
            if isDropTarget {
                RoundedRectangle(cornerRadius: 8)
                    .strokeBorder(Color.accentColor, lineWidth: 2)
                    .accessibilityHidden(true)
            }
        }
        .onDrop(of: [.data], isTargeted: $isDropTarget) { providers in
            // Not while editing: an edit changes the text only.
            guard !isEditing else { return false }
            Task { await addDropped(providers) }
            return true
        }
    }

    private var remaining: Int {
        Limits.bodyMaxChars - draft.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars.count
    }

    private var isEditing: Bool {
        context?.isEditing == true
    }

    /// An edit: a valid body. A message: nothing uploading, and text or uploaded files.
    private var canSend: Bool {
        if isEditing {
            return Limits.isValidBody(draft.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return uploads.canSend(draft)
    }

    private func submit() {
        guard canSend else { return }
        send()
    }

    /// "+": a photo from the library (the system's picker runs out of process, so the app
    /// needs no photo library permission or usage description), any file the server takes, or
    /// the image on the pasteboard.
    private var attachMenu: some View {
        Menu {
            Button("Photo Library", systemImage: "photo.on.rectangle") {
                showsPhotoPicker = true
            }
            Button("Choose File", systemImage: "folder") {
                showsFileImporter = true
            }
            if UIPasteboard.general.hasImages {
                Button("Paste Image", systemImage: "doc.on.clipboard") {
                    pasteImage()
                }
            }
        } label: {
            Image(systemName: "plus.circle.fill")
                .font(.title)
        }
        .disabled(uploads.remainingCapacity == 0)
        .accessibilityLabel("Attach")
        .photosPicker(
            isPresented: $showsPhotoPicker,
            selection: $pickedPhotos,
            maxSelectionCount: max(1, uploads.remainingCapacity),
            selectionBehavior: .ordered,
            matching: .images,
            // The photo as it is stored (HEIC from the camera): ImagePreparation makes it JPEG.
            preferredItemEncoding: .current
        )
        .fileImporter(
            isPresented: $showsFileImporter,
            allowedContentTypes: Self.importableTypes,
            allowsMultipleSelection: true
        ) { result in
            importFiles(result)
        }
        .onChange(of: pickedPhotos) { _, items in
            guard !items.isEmpty else { return }
            pickedPhotos = []
            Task { await addPhotos(items) }
        }
    }

    /// The picked photos, in the order they were picked.
    @MainActor
    private func addPhotos(_ items: [PhotosPickerItem]) async {
        let stamp = Int(Date.now.timeIntervalSince1970)
        for (offset, item) in items.enumerated() {
            let type = item.supportedContentTypes.first
            do {
                guard let data = try await item.loadTransferable(type: Data.self) else { continue }
                let name = "Photo \(stamp)-\(offset + 1).\(type?.preferredFilenameExtension ?? "jpg")"
                uploads.add(PickedFile(name: name, contentType: type?.preferredMIMEType, data: data))
            } catch {
                uploads.notice = "A photo could not be loaded (\(error.localizedDescription))."
            }
        }
    }

    /// Files from the Files picker, read while their security scope is open.
    @MainActor
    private func importFiles(_ result: Result<[URL], any Error>) {
        switch result {
        case .success(let urls):
            for url in urls {
                let scoped = url.startAccessingSecurityScopedResource()
                defer {
                    if scoped { url.stopAccessingSecurityScopedResource() }
                }
                uploads.add(fileAt: url, contentType: UTType(filenameExtension: url.pathExtension)?.preferredMIMEType)
            }
        case .failure(let error):
            uploads.notice = "The files could not be opened (\(error.localizedDescription))."
        }
    }

    /// Files dropped onto the composer, in the order of the drop: each one's bytes in the first
    /// type it offers that is data (a file's own type, e.g. `public.jpeg` for a photo), named
    /// after the drop's suggestion with that type's extension. Too many, too large or of a type
    /// the server refuses: `AttachmentUploads` refuses them as it does picked ones.
    @MainActor
    private func addDropped(_ providers: [NSItemProvider]) async {
        let stamp = Int(Date.now.timeIntervalSince1970)
        for (offset, provider) in providers.enumerated() {
            guard let type = provider.registeredContentTypes.first(where: { $0.conforms(to: .data) }) else {
                continue
            }
            do {
                let data = try await Self.loadData(provider, as: type)
                let name = PickedFile.droppedName(
                    suggested: provider.suggestedName,
                    fileExtension: type.preferredFilenameExtension,
                    stamp: stamp,
                    index: offset + 1
                )
                uploads.add(PickedFile(name: name, contentType: type.preferredMIMEType, data: data))
            } catch {
                uploads.notice = "A dropped file could not be read (\(error.localizedDescription))."
            }
        }
    }

    /// The provider's bytes of `type` (its completion-handler API, awaited).
    private static func loadData(_ provider: NSItemProvider, as type: UTType) async throws -> Data {
        try await withCheckedThrowingContinuation { continuation in
            _ = provider.loadDataRepresentation(for: type) { data, error in
                if let data {
                    continuation.resume(returning: data)
                } else {
                    continuation.resume(throwing: error ?? CocoaError(.fileReadUnknown))
                }
            }
        }
    }

    /// The image on the pasteboard, as a JPEG.
    @MainActor
    private func pasteImage() {
        guard let image = UIPasteboard.general.image,
              let data = image.jpegData(compressionQuality: ImagePreparation.jpegQuality)
        else { return }
        uploads.add(PickedFile(name: "Pasted image \(Int(Date.now.timeIntervalSince1970)).jpg", contentType: "image/jpeg", data: data))
    }
}

extension ComposerView.Context {
    var isEditing: Bool {
        if case .editing = self { return true }
        return false
    }

    var title: String {
        switch self {
        case .replying(let name, _): "Replying to \(name)"
        case .editing: "Editing message"
        }
    }
}

/// The members of a conversation.
private struct MembersView: View {
    let session: ChatSession
    let channelID: String
    @Environment(\.dismiss) private var dismiss
    @State private var members: [User] = []
    @State private var errorMessage: String?
    @State private var isLoading = true

    var body: some View {
        NavigationStack {
            List {
                if let errorMessage {
                    Text(errorMessage).foregroundStyle(.red)
                }
                ForEach(members) { member in
                    VStack(alignment: .leading) {
                        Text(member.displayName)
                        Text("@\(member.username)")
                            .font(.footnote)
                            .foregroundStyle(.secondary)
                    }
                }
            }
            .overlay {
                if isLoading { ProgressView() }
            }
            .navigationTitle("Members")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .confirmationAction) {
                    Button("Done") { dismiss() }
                }
            }
            .task {
                defer { isLoading = false }
                do {
                    members = try await session.members(of: channelID)
                        .sorted { $0.displayName.localizedCaseInsensitiveCompare($1.displayName) == .orderedAscending }
                } catch {
                    errorMessage = error.localizedDescription
                }
            }
        }
    }
}

extension NotificationLevel {
    /// The level's symbol in the conversation's menu.
    var systemImage: String {
        switch self {
        case .all: "bell"
        case .mentions: "at"
        case .muted: "bell.slash"
        }
    }
}
