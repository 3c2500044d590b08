import Foundation
import Observation
import ChatKit

/// The server the app talks to, kept in user defaults.
///
/// Defaults to the compose stack (`http://localhost:8080`). A launch argument overrides it for a
/// run without touching the stored value: `-serverURL http://192.168.1.20:8080` (Xcode: scheme,
/// Run, Arguments), since launch arguments form the defaults' argument domain.
@MainActor @Observable
public final class ServerSettings {
    public static let key = "serverURL"

    public private(set) var endpoint: ServerEndpoint
    private let defaults: UserDefaults

    public init(defaults: UserDefaults = .standard) {
        self.defaults = defaults
        endpoint = defaults.string(forKey: Self.key).flatMap(ServerEndpoint.init(string:)) ?? .localDefault
    }

    public func update(to endpoint: ServerEndpoint) {
        self.endpoint = endpoint
        defaults.set(endpoint.baseURL.absoluteString, forKey: Self.key)
    }
}
