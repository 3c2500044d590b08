import ChatKit
import Foundation
import Observation

/// The "Browse channels" screen's model: every group channel without typing a query, by member
/// count or by recent activity, a page at a time ("Load More"), with Join.
///
/// Answers for a sort the user has left meanwhile are dropped, and a channel that comes back on a
/// later page (its count or activity changed between two requests) keeps its first place.
@MainActor @Observable
public final class ChannelDirectory {
    public private(set) var sort: DirectorySort = .members
    public private(set) var entries: [DirectoryEntry] = []
    public private(set) var isLoading = false
    /// Whether the last page has been read.
    public private(set) var isComplete = false
    public private(set) var errorMessage: String?

    private let api: APIClient
    private let pageSize: Int
    @ObservationIgnored private var cursor: String?
    @ObservationIgnored private var generation = 0

    public init(api: APIClient, pageSize: Int = Limits.directoryDefaultLimit) {
        self.api = api
        self.pageSize = pageSize
    }

    /// Whether "Load More" makes sense now.
    public var canLoadMore: Bool { !isComplete && !isLoading && !entries.isEmpty }

    /// The first page of the current sort, from scratch.
    public func reload() async {
        generation += 1
        entries = []
        cursor = nil
        isComplete = false
        await loadNextPage()
    }

    /// Switch the order; the list starts again from its first page.
    public func setSort(_ newSort: DirectorySort) async {
        guard newSort != sort else { return }
        sort = newSort
        await reload()
    }

    /// The next page of the current sort, appended.
    public func loadNextPage() async {
        guard !isComplete else { return }
        let asked = generation
        isLoading = true
        errorMessage = nil
        defer { if asked == generation { isLoading = false } }
        do {
            let page = try await api.channelDirectory(sort: sort, cursor: cursor, limit: pageSize)
            guard asked == generation else { return }
            let known = Set(entries.map(\.id))
            var seen = known
            entries += page.channels.filter { seen.insert($0.id).inserted }
            cursor = page.nextCursor
            isComplete = page.nextCursor == nil
        } catch {
            guard asked == generation else { return }
            errorMessage = error.localizedDescription
        }
    }

    /// After the user joined `channelID` (through `ChatSession.join(channelID:)`): a member now,
    /// counted once.
    public func markJoined(_ channelID: String) {
        guard let i = entries.firstIndex(where: { $0.id == channelID }), !entries[i].isMember else { return }
        entries[i].isMember = true
        entries[i].memberCount += 1
    }

    /// "3 members", "1 member".
    public static func membersLabel(_ count: Int) -> String {
        count == 1 ? "1 member" : "\(count) members"
    }
}
