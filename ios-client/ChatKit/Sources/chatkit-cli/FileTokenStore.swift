import ChatKit
import Foundation

/// Keeps the CLI's session in a JSON file (the app keeps it in the Keychain). Dates are Unix
/// seconds, so other tools (the end-to-end tests) can read and write the file.
actor FileTokenStore: TokenStore {
    let path: String

    init(path: String) {
        self.path = path
    }

    func load() throws -> Credentials? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try decoder.decode(Credentials.self, from: data)
    }

    func save(_ credentials: Credentials) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(credentials).write(to: url, options: .atomic)
    }

    func clear() throws {
        if FileManager.default.fileExists(atPath: path) {
            try FileManager.default.removeItem(atPath: path)
        }
    }
}
