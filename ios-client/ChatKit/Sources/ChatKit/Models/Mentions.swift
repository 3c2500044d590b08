import Foundation

/// `@username` mentions, recognised exactly as the server does (`chat_types::limits::
/// mentioned_usernames`, docs/protocol.md "Mentions"): `@` at the start or after a character
/// that cannot be in a username (and is not another `@`), then the longest run of username
/// characters (ASCII letters, digits, `.`, `_`, `-`) with trailing dots dropped (they end the
/// sentence), if that is a valid username (3 to 32 characters); case is ignored; at most
/// `Limits.mentionsMax` distinct names per message.
///
/// The server resolves the names to the channel's members (`Message.mentions`, user ids); this
/// finds where they are in a body, to show them.
public enum Mentions {
    /// One `@name` of a body.
    public struct Span: Sendable, Hashable {
        /// `@name`, as written (without the dots that end a sentence).
        public var range: Range<String.UnicodeScalarView.Index>
        /// The name, lowercased, without the `@`.
        public var username: String
    }

    /// Every mention of `body`, in order (a name written twice is found twice), up to the point
    /// where `Limits.mentionsMax` distinct names were found.
    public static func spans(in body: String) -> [Span] {
        let scalars = body.unicodeScalars
        var spans: [Span] = []
        var distinct: Set<String> = []
        var previous: Unicode.Scalar?
        var index = scalars.startIndex
        while index < scalars.endIndex, distinct.count < Limits.mentionsMax {
            let scalar = scalars[index]
            guard scalar == "@", previous.map({ !isNameScalar($0) && $0 != "@" }) ?? true else {
                previous = scalar
                index = scalars.index(after: index)
                continue
            }
            let start = scalars.index(after: index)
            var end = start
            var last: Unicode.Scalar = scalar
            while end < scalars.endIndex, isNameScalar(scalars[end]) {
                last = scalars[end]
                end = scalars.index(after: end)
            }
            var nameEnd = end
            while nameEnd > start, scalars[scalars.index(before: nameEnd)] == "." {
                nameEnd = scalars.index(before: nameEnd)
            }
            let name = String(scalars[start..<nameEnd])
            if Limits.isValidUsername(name) {
                let username = name.lowercased()
                distinct.insert(username)
                spans.append(Span(range: index..<nameEnd, username: username))
            }
            // Carry on after the run (its last scalar is the next one's "previous").
            previous = last
            index = end
        }
        return spans
    }

    /// The usernames `body` mentions: lowercased, each once, in order, at most
    /// `Limits.mentionsMax`.
    public static func usernames(in body: String) -> [String] {
        var names: [String] = []
        for span in spans(in: body) where !names.contains(span.username) {
            names.append(span.username)
        }
        return names
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": true
        default: false
        }
    }
}
