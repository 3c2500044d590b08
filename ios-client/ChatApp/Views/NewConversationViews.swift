import SwiftUI
import ChatAppCore
import ChatKit

/// Creates a group channel; the creator is its first member.
struct NewChannelView: View {
    let session: ChatSession
    let onOpen: (Channel) -> Void

    @Environment(\.dismiss) private var dismiss
    @State private var name = ""
    @State private var description = ""
    @State private var isWorking = false
    @State private var errorMessage: String?

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    TextField("Name", text: $name)
                        .textInputAutocapitalization(.never)
                    TextField("Description (optional)", text: $description, axis: .vertical)
                        .lineLimit(2...5)
                } footer: {
                    Text("Anyone can find and join a channel.")
                }
                if let errorMessage {
                    Section {
                        Text(errorMessage).foregroundStyle(.red)
                    }
                }
            }
            .navigationTitle("New Channel")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel") { dismiss() }
                }
                ToolbarItem(placement: .confirmationAction) {
                    if isWorking {
                        ProgressView()
                    } else {
                        Button("Create") {
                            Task { await create() }
                        }
                        .disabled(!canCreate)
                    }
                }
            }
        }
    }

    private var trimmedName: String {
        name.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private var trimmedDescription: String {
        description.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private var canCreate: Bool {
        Limits.isValidChannelName(trimmedName) && trimmedDescription.unicodeScalars.count <= Limits.channelDescriptionMax
    }

    private func create() async {
        isWorking = true
        defer { isWorking = false }
        errorMessage = nil
        do {
            let channel = try await session.createChannel(
                name: trimmedName,
                description: trimmedDescription.isEmpty ? nil : trimmedDescription
            )
            onOpen(channel)
        } catch {
            errorMessage = error.localizedDescription
        }
    }
}

/// Finds group channels to join.
struct BrowseChannelsView: View {
    let session: ChatSession
    let onOpen: (Channel) -> Void

    @Environment(\.dismiss) private var dismiss
    @State private var query = ""
    @State private var results: [Channel] = []
    @State private var isSearching = false
    @State private var joining: String?
    @State private var errorMessage: String?

    var body: some View {
        NavigationStack {
            List {
                if query.isEmpty {
                    ChannelDirectorySection(session: session, onOpen: onOpen)
                }
                if let errorMessage {
                    Text(errorMessage).foregroundStyle(.red)
                }
                ForEach(results) { channel in
                    HStack {
                        VStack(alignment: .leading, spacing: 2) {
                            Text("#\(channel.name)").font(.headline)
                            if !channel.description.isEmpty {
                                Text(channel.description)
                                    .font(.subheadline)
                                    .foregroundStyle(.secondary)
                                    .lineLimit(2)
                            }
                        }
                        Spacer()
                        if session.channel(channel.id) != nil {
                            Button("Open") { onOpen(channel) }
                                .buttonStyle(.bordered)
                        } else if joining == channel.id {
                            ProgressView()
                        } else {
                            Button("Join") {
                                Task { await join(channel) }
                            }
                            .buttonStyle(.borderedProminent)
                            .disabled(joining != nil)
                        }
                    }
                }
            }
            .overlay {
                if query.isEmpty {
                    EmptyView() // the directory lists every channel
                } else if isSearching && results.isEmpty {
                    ProgressView()
                } else if !isSearching && results.isEmpty && errorMessage == nil {
                    ContentUnavailableView.search(text: query)
                }
            }
            .searchable(text: $query, placement: .navigationBarDrawer(displayMode: .always), prompt: "Channel name")
            .textInputAutocapitalization(.never)
            .navigationTitle("Browse Channels")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Close") { dismiss() }
                }
            }
            .task(id: query) {
                await search()
            }
        }
    }

    private func search() async {
        let text = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else {
            results = []
            return
        }
        // Debounce typing; a newer query cancels this task.
        try? await Task.sleep(for: .milliseconds(300))
        if Task.isCancelled { return }
        isSearching = true
        defer { isSearching = false }
        do {
            results = try await session.searchChannels(text)
            errorMessage = nil
        } catch is CancellationError {
            return
        } catch {
            errorMessage = error.localizedDescription
        }
    }

    private func join(_ channel: Channel) async {
        joining = channel.id
        defer { joining = nil }
        do {
            onOpen(try await session.join(channel))
        } catch {
            errorMessage = error.localizedDescription
        }
    }
}

/// Finds a user by display name or username prefix and opens the direct conversation with them.
struct NewDirectMessageView: View {
    let session: ChatSession
    let onOpen: (Channel) -> Void

    @Environment(\.dismiss) private var dismiss
    @State private var query = ""
    @State private var results: [User] = []
    @State private var isSearching = false
    @State private var opening: String?
    @State private var errorMessage: String?

    var body: some View {
        NavigationStack {
            List {
                if let errorMessage {
                    Text(errorMessage).foregroundStyle(.red)
                }
                ForEach(results) { user in
                    Button {
                        Task { await startConversation(with: user) }
                    } label: {
                        HStack {
                            VStack(alignment: .leading, spacing: 2) {
                                Text(user.displayName).foregroundStyle(.primary)
                                Text("@\(user.username)")
                                    .font(.footnote)
                                    .foregroundStyle(.secondary)
                            }
                            Spacer()
                            if opening == user.id {
                                ProgressView()
                            }
                        }
                    }
                    .disabled(opening != nil)
                }
            }
            .overlay {
                if query.isEmpty {
                    ContentUnavailableView(
                        "Find someone",
                        systemImage: "person.crop.circle.badge.questionmark",
                        description: Text("Type part of a name, or the beginning of a username.")
                    )
                } else if isSearching && results.isEmpty {
                    ProgressView()
                } else if !isSearching && results.isEmpty && errorMessage == nil {
                    ContentUnavailableView.search(text: query)
                }
            }
            .searchable(text: $query, placement: .navigationBarDrawer(displayMode: .always), prompt: "Name or username")
            .textInputAutocapitalization(.never)
            .autocorrectionDisabled()
            .navigationTitle("New Message")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .cancellationAction) {
                    Button("Cancel") { dismiss() }
                }
            }
            .task(id: query) {
                await search()
            }
        }
    }

    private func search() async {
        let prefix = query.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !prefix.isEmpty else {
            results = []
            return
        }
        try? await Task.sleep(for: .milliseconds(300))
        if Task.isCancelled { return }
        isSearching = true
        defer { isSearching = false }
        do {
            results = try await session.searchUsers(prefix)
            errorMessage = nil
        } catch is CancellationError {
            return
        } catch {
            errorMessage = error.localizedDescription
        }
    }

    private func startConversation(with user: User) async {
        opening = user.id
        defer { opening = nil }
        do {
            onOpen(try await session.openDirectConversation(with: user))
        } catch {
            errorMessage = error.localizedDescription
        }
    }
}
