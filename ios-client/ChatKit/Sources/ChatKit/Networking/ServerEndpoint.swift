import Foundation

/// Where the backend is: the load balancer's base URL (`http://localhost:8080` for the compose
/// stack). REST calls go to `<base>/api/v1/...`, the WebSocket to `<base>/ws`.
public struct ServerEndpoint: Sendable, Hashable, Codable {
    /// An http(s) URL without query or fragment and without a trailing slash.
    public let baseURL: URL

    /// The compose stack and the native stack, on this machine.
    public static let localDefault = ServerEndpoint(validated: URL(string: "http://localhost:8080")!)

    private init(validated url: URL) {
        self.baseURL = url
    }

    /// Accepts what a person types in settings: `http://host:port`, `https://host/prefix`, or a
    /// bare `host:port` (taken as http). Returns `nil` for anything that cannot be a server.
    public init?(string: String) {
        var text = string.trimmingCharacters(in: .whitespacesAndNewlines)
        if !text.contains("://") {
            text = "http://" + text
        }
        guard var components = URLComponents(string: text),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host, !host.isEmpty,
              components.query == nil, components.fragment == nil,
              components.user == nil, components.password == nil
        else { return nil }
        components.scheme = scheme
        while components.path.hasSuffix("/") {
            components.path.removeLast()
        }
        guard let url = components.url else { return nil }
        self.baseURL = url
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let endpoint = ServerEndpoint(string: text) else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath,
                debugDescription: "Not a server URL: \(text)"
            ))
        }
        self = endpoint
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(baseURL.absoluteString)
    }

    /// `<base>/api/v1/<path>?<query>`. `path` is already percent-encoded (see `pathSegment`).
    public func apiURL(path: String, query: [URLQueryItem] = []) throws -> URL {
        try url(percentEncodedPath: "/api/v1/" + path, query: query)
    }

    /// `ws(s)://<host>/<prefix>/ws`.
    public var webSocketURL: URL {
        // The base URL was validated, so this cannot fail; fall back to it rather than trap.
        guard var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false) else {
            return baseURL
        }
        components.scheme = baseURL.scheme?.lowercased() == "https" ? "wss" : "ws"
        // Read, then write: `x.path = x.path + ...` through an optional chain is an overlapping
        // access (an exclusivity error in Swift 6).
        let path = components.percentEncodedPath
        components.percentEncodedPath = path + "/ws"
        return components.url ?? baseURL
    }

    /// Percent-encodes one path segment (an id, say), `/` included.
    public static func pathSegment(_ value: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    private func url(percentEncodedPath path: String, query: [URLQueryItem]) throws -> URL {
        guard var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false) else {
            throw ChatError.invalidServerURL(baseURL.absoluteString)
        }
        components.percentEncodedPath += path
        if !query.isEmpty {
            components.queryItems = query
            // URLComponents leaves `+` alone, and the server's form decoding reads it as a space.
            components.percentEncodedQuery = components.percentEncodedQuery?
                .replacingOccurrences(of: "+", with: "%2B")
        }
        guard let url = components.url else {
            throw ChatError.invalidServerURL(baseURL.absoluteString)
        }
        return url
    }
}

extension ServerEndpoint: CustomStringConvertible {
    public var description: String { baseURL.absoluteString }
}
