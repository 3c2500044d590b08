import ChatKit
import Foundation
import Observation

/// What a push notification carries for the app. The notifier (issue #16, not built yet) is to
/// put the conversation's id at the top level of the payload, beside `aps`:
///
///     {"aps": {"alert": {...}, "thread-id": "<channel id>"}, "channel_id": "<channel id>"}
public enum PushPayload {
    /// The key of the conversation's id (a lowercase UUID string, like every id of the API).
    public static let channelIDKey = "channel_id"

    /// The conversation a notification is about: `channel_id`, if it is a UUID (in the
    /// lowercase form ids take in the API).
    public static func channelID(in userInfo: [AnyHashable: Any]) -> String? {
        guard let value = userInfo[channelIDKey] as? String,
              let uuid = UUID(uuidString: value.trimmingCharacters(in: .whitespaces))
        else { return nil }
        return uuid.uuidString.lowercased()
    }
}

/// The notification settings screens' model: each conversation's level (All / Mentions / None)
/// and the account's "Hide previews". A change shows at once and is undone when the server
/// refuses it; when changes overlap, the last one wins.
@MainActor @Observable
public final class NotificationSettings {
    /// Per channel id: the level shown (the server's, or the one being saved).
    public private(set) var levels: [String: NotificationLevel] = [:]
    /// Nil until loaded.
    public private(set) var hidePreviews: Bool?
    /// The last failure, for the screen to show.
    public var errorMessage: String?

    @ObservationIgnored private let api: APIClient
    /// What the server last confirmed, to go back to when a change fails.
    @ObservationIgnored private var confirmedLevels: [String: NotificationLevel] = [:]
    @ObservationIgnored private var confirmedHidePreviews: Bool?
    /// Per channel (and for the preferences): the newest change's number.
    @ObservationIgnored private var levelGenerations: [String: Int] = [:]
    @ObservationIgnored private var preferencesGeneration = 0

    public init(api: APIClient) {
        self.api = api
    }

    /// The channel's level as shown; the server's default (`.all`) until loaded.
    public func level(of channelID: String) -> NotificationLevel {
        levels[channelID] ?? .all
    }

    public func loadLevel(of channelID: String) async {
        let asked = levelGenerations[channelID, default: 0]
        do {
            let level = try await api.notificationLevel(ofChannel: channelID)
            confirmedLevels[channelID] = level
            // A change made meanwhile is newer than this answer.
            if levelGenerations[channelID, default: 0] == asked {
                levels[channelID] = level
            }
        } catch {
            report(error)
        }
    }

    public func setLevel(_ level: NotificationLevel, of channelID: String) async {
        let generation = levelGenerations[channelID, default: 0] + 1
        levelGenerations[channelID] = generation
        let before = levels[channelID]
        levels[channelID] = level
        do {
            let saved = try await api.setNotificationLevel(level, ofChannel: channelID)
            confirmedLevels[channelID] = saved
            if levelGenerations[channelID] == generation {
                levels[channelID] = saved
            }
        } catch {
            if levelGenerations[channelID] == generation {
                levels[channelID] = confirmedLevels[channelID] ?? before
            }
            report(error)
        }
    }

    public func loadPreferences() async {
        let asked = preferencesGeneration
        do {
            let preferences = try await api.notificationPreferences()
            confirmedHidePreviews = preferences.hidePreviews
            if preferencesGeneration == asked {
                hidePreviews = preferences.hidePreviews
            }
        } catch {
            report(error)
        }
    }

    public func setHidePreviews(_ hide: Bool) async {
        preferencesGeneration += 1
        let generation = preferencesGeneration
        let before = hidePreviews
        hidePreviews = hide
        do {
            let saved = try await api.setNotificationPreferences(NotificationPreferences(hidePreviews: hide))
            confirmedHidePreviews = saved.hidePreviews
            if preferencesGeneration == generation {
                hidePreviews = saved.hidePreviews
            }
        } catch {
            if preferencesGeneration == generation {
                hidePreviews = confirmedHidePreviews ?? before
            }
            report(error)
        }
    }

    private func report(_ error: any Error) {
        if error is CancellationError { return }
        errorMessage = error.localizedDescription
    }
}
