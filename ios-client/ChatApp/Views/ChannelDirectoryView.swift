import ChatAppCore
import ChatKit
import SwiftUI

/// Every group channel, shown in Browse Channels while no query is typed: a sort picker (most
/// members / recent activity), the channels a page at a time with "Load More", and Join / Open.
struct ChannelDirectorySection: View {
    let session: ChatSession
    let onOpen: (Channel) -> Void

    @State private var directory: ChannelDirectory?
    @State private var joining: String?
    @State private var joinError: String?

    var body: some View {
        Section {
            if let directory {
                Picker("Sort by", selection: Binding(
                    get: { directory.sort },
                    set: { sort in Task { await directory.setSort(sort) } }
                )) {
                    Text("Most Members").tag(DirectorySort.members)
                    Text("Recent Activity").tag(DirectorySort.activity)
                }
                .pickerStyle(.segmented)
                if let message = joinError ?? directory.errorMessage {
                    Text(message).foregroundStyle(.red)
                }
                ForEach(directory.entries) { entry in
                    row(entry, in: directory)
                }
                if directory.isLoading {
                    ProgressView().frame(maxWidth: .infinity)
                } else if directory.canLoadMore {
                    Button("Load More Channels") {
                        Task { await directory.loadNextPage() }
                    }
                    .frame(maxWidth: .infinity)
                } else if directory.entries.isEmpty && directory.isComplete {
                    Text("No channels yet. Create the first one.").foregroundStyle(.secondary)
                }
            }
        } header: {
            Text("All Channels")
        }
        .task {
            if directory == nil {
                let model = ChannelDirectory(api: session.api)
                directory = model
                await model.reload()
            }
        }
    }

    private func row(_ entry: DirectoryEntry, in directory: ChannelDirectory) -> some View {
        HStack {
            VStack(alignment: .leading, spacing: 2) {
                Text("#\(entry.name)").font(.headline)
                if !entry.description.isEmpty {
                    Text(entry.description)
                        .font(.subheadline)
                        .foregroundStyle(.secondary)
                        .lineLimit(2)
                }
                HStack(spacing: 4) {
                    Text(ChannelDirectory.membersLabel(entry.memberCount))
                    if let active = entry.lastActivityAt {
                        Text("· active \(active, format: .relative(presentation: .named))")
                    } else {
                        Text("· no messages yet")
                    }
                }
                .font(.footnote)
                .foregroundStyle(.secondary)
            }
            .accessibilityElement(children: .combine)
            Spacer()
            if entry.isMember || session.channel(entry.id) != nil {
                Button("Open") {
                    Task { await open(entry) }
                }
                .buttonStyle(.bordered)
                .accessibilityLabel("Open #\(entry.name)")
            } else if joining == entry.id {
                ProgressView()
            } else {
                Button("Join") {
                    Task { await join(entry, in: directory) }
                }
                .buttonStyle(.borderedProminent)
                .disabled(joining != nil)
                .accessibilityLabel("Join #\(entry.name)")
            }
        }
    }

    private func open(_ entry: DirectoryEntry) async {
        if let channel = session.channel(entry.id) {
            onOpen(channel)
        } else {
            // A member whose list is not loaded yet: joining again is not an error.
            await join(entry, in: directory)
        }
    }

    private func join(_ entry: DirectoryEntry, in directory: ChannelDirectory?) async {
        joining = entry.id
        defer { joining = nil }
        do {
            let channel = try await session.join(channelID: entry.id)
            directory?.markJoined(entry.id)
            joinError = nil
            onOpen(channel)
        } catch {
            joinError = error.localizedDescription
        }
    }
}
