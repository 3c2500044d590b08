import SwiftUI
import ChatAppCore
import ChatKit

/// Groups and direct conversations, and the ways to start new ones.
struct ConversationListView: View {
    private enum Sheet: String, Identifiable {
        case newChannel, browseChannels, newDirectMessage, settings

        var id: String { rawValue }
    }

    let session: ChatSession
    @State private var path: [String] = []
    @State private var sheet: Sheet?

    var body: some View {
        NavigationStack(path: $path) {
            List {
                Section("Channels") {
                    ForEach(session.groups) { channel in
                        NavigationLink(value: channel.id) {
                            ConversationRow(channel: channel, preview: preview(for: channel))
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
                            ConversationRow(channel: channel, preview: preview(for: channel))
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

    /// The newest loaded message, if the conversation was opened before. A deleted message is
    /// never shown as the last one; an edited one shows its new body.
    private func preview(for channel: Channel) -> String? {
        guard let last = session.timeline(channel.id).entries.last(where: { !$0.isDeleted }) else {
            return channel.description.isEmpty ? nil : channel.description
        }
        let sender = last.senderID == session.user.id ? "You" : session.displayName(of: last.senderID)
        return channel.kind == .direct && last.senderID != session.user.id ? last.body : "\(sender): \(last.body)"
    }
}

private struct ConversationRow: View {
    let channel: Channel
    let preview: String?

    var body: some View {
        HStack(spacing: 12) {
            Image(systemName: channel.kind == .direct ? "person.circle.fill" : "number.circle.fill")
                .font(.title2)
                .foregroundStyle(channel.kind == .direct ? Color.accentColor : Color.secondary)
            VStack(alignment: .leading, spacing: 2) {
                Text(channel.name)
                    .font(.headline)
                    .lineLimit(1)
                if let preview {
                    Text(preview)
                        .font(.subheadline)
                        .foregroundStyle(.secondary)
                        .lineLimit(1)
                }
            }
        }
        .padding(.vertical, 2)
    }
}
