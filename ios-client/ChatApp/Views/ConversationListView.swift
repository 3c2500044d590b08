import SwiftUI
import ChatAppCore
import ChatKit

/// Groups and direct conversations, and the ways to start new ones. A conversation with unread
/// messages is bold, with their count in a badge (and "@" when some mention the user).
struct ConversationListView: View {
    private enum Sheet: String, Identifiable {
        case newChannel, browseChannels, newDirectMessage, settings

        var id: String { rawValue }
    }

    let session: ChatSession
    @Environment(AppModel.self) private var model
    @State private var path: [String] = []
    @State private var sheet: Sheet?

    var body: some View {
        NavigationStack(path: $path) {
            List {
                Section("Channels") {
                    ForEach(session.groups) { channel in
                        NavigationLink(value: channel.id) {
                            ConversationRow(channel: channel, preview: preview(for: channel), readState: session.readState(of: channel.id))
                        }
                        .swipeActions {
                            Button("Leave", role: .destructive) {
                                Task { await session.leave(channel) }
                            }
                        }
                    }
                    if session.groups.isEmpty && !session.isLoadingChannels {
                        Button("Create or join a channel") { sheet = .browseChannels }
                    }
                }
                Section("Direct messages") {
                    ForEach(session.directConversations) { channel in
                        NavigationLink(value: channel.id) {
                            ConversationRow(channel: channel, preview: preview(for: channel), readState: session.readState(of: channel.id))
                        }
                    }
                    if session.directConversations.isEmpty && !session.isLoadingChannels {
                        Button("Message someone") { sheet = .newDirectMessage }
                    }
                }
            }
            .refreshable {
                await session.refreshChannels()
            }
            .overlay {
                if session.isLoadingChannels && session.channels.isEmpty {
                    ProgressView()
                }
            }
            .navigationTitle("Chats")
            .navigationDestination(for: String.self) { channelID in
                ConversationView(session: session, channelID: channelID)
            }
            .toolbar {
                ToolbarItem(placement: .topBarLeading) {
                    Button {
                        sheet = .settings
                    } label: {
                        Image(systemName: "gearshape")
                    }
                    .accessibilityLabel("Settings")
                }
                ToolbarItem(placement: .topBarTrailing) {
                    Menu {
                        Button("New Channel", systemImage: "plus.bubble") { sheet = .newChannel }
                        Button("Browse Channels", systemImage: "magnifyingglass") { sheet = .browseChannels }
                        Button("New Direct Message", systemImage: "person.crop.circle.badge.plus") { sheet = .newDirectMessage }
                    } label: {
                        Image(systemName: "square.and.pencil")
                    }
                    .accessibilityLabel("New conversation")
                }
            }
            .safeAreaInset(edge: .top, spacing: 0) {
                ConnectionBanner(state: session.connection) { session.reconnectNow() }
                    .animation(.default, value: session.connection)
            }
            .sheet(item: $sheet) { sheet in
                switch sheet {
                case .newChannel:
                    NewChannelView(session: session, onOpen: openConversation)
                case .browseChannels:
                    BrowseChannelsView(session: session, onOpen: openConversation)
                case .newDirectMessage:
                    NewDirectMessageView(session: session, onOpen: openConversation)
                case .settings:
                    SettingsView()
                }
            }
            .alert("Something went wrong", isPresented: hasError) {
                Button("OK") { session.errorMessage = nil }
            } message: {
                Text(session.errorMessage ?? "")
            }
        }
        // A tapped notification's conversation (also the one that launched the app).
        .onChange(of: model.requestedConversation, initial: true) { _, requested in
            guard requested != nil, let channelID = model.takeRequestedConversation() else { return }
            sheet = nil
            path = [channelID]
        }
        .task {
            // Signed in, with the conversations in front of the user: the moment to ask for
            // notifications (once; later launches only register again). The token goes from
            // the app delegate to `model.push`, which registers it for this user.
            await PushPermission.requestAndRegister()
        }
    }

    private var hasError: Binding<Bool> {
        Binding(
            get: { session.errorMessage != nil },
            set: { if !$0 { session.errorMessage = nil } }
        )
    }

    private func openConversation(_ channel: Channel) {
        sheet = nil
        path = [channel.id]
    }

    /// The newest message (a message of files alone names them: "📎 IMG_0042.jpg"), or the
    /// channel's description (`MessagePreview.conversationLine`).
    private func preview(for channel: Channel) -> String? {
        session.preview(of: channel)
    }
}

private struct ConversationRow: View {
    let channel: Channel
    let preview: String?
    let readState: ConversationReadState

    var body: some View {
        HStack(spacing: 12) {
            Image(systemName: channel.kind == .direct ? "person.circle.fill" : "number.circle.fill")
                .font(.title2)
                .foregroundStyle(channel.kind == .direct ? Color.accentColor : Color.secondary)
            VStack(alignment: .leading, spacing: 2) {
                Text(channel.name)
                    .font(.headline)
                    .fontWeight(readState.hasUnread ? .heavy : .semibold)
                    .lineLimit(1)
                if let preview {
                    Text(preview)
                        .font(.subheadline)
                        .fontWeight(readState.hasUnread ? .semibold : .regular)
                        .foregroundStyle(readState.hasUnread ? Color.primary : Color.secondary)
                        .lineLimit(1)
                }
            }
            Spacer(minLength: 4)
            if readState.mentionCount > 0 {
                Image(systemName: "at.circle.fill")
                    .foregroundStyle(Color.orange)
                    .accessibilityHidden(true)
            }
            if readState.hasUnread {
                Text(readState.badgeText)
                    .font(.caption.bold().monospacedDigit())
                    .foregroundStyle(Color.white)
                    .padding(.horizontal, 7)
                    .padding(.vertical, 2)
                    .background(Color.accentColor, in: Capsule())
                    .accessibilityHidden(true)
            }
        }
        .padding(.vertical, 2)
        .accessibilityElement(children: .combine)
        .accessibilityValue(unreadDescription)
    }

    /// "3 unread, 1 mentions you" for VoiceOver; empty when everything is read.
    private var unreadDescription: String {
        guard readState.hasUnread else { return "" }
        var parts = ["\(readState.badgeText) unread"]
        if readState.mentionCount > 0 {
            parts.append(readState.mentionCount == 1 ? "1 mentions you" : "\(readState.mentionCount) mention you")
        }
        return parts.joined(separator: ", ")
    }
}
