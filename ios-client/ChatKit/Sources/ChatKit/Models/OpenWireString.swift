import Foundation

/// A string value of the wire that keeps values this client does not know yet (as an `.other`
/// case), so a newer server never fails a whole decode: its JSON form is `rawValue`.
public protocol OpenWireString: Sendable, Hashable, Codable {
    init(rawValue: String)
    var rawValue: String { get }
}

extension OpenWireString {
    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
