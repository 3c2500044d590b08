import ChatKit
import Foundation

/// A message body cut into what the bubble shows differently: plain text, links (tappable) and
/// `@mentions` (highlighted, more so when they name the user).
public enum MessageBody {
    public enum Segment: Sendable, Hashable {
        case text(String)
        /// `text` as written; `url` what opening it opens (`https://` added to `www.` links).
        case link(text: String, url: URL)
        /// `@name` as written; `username` lowercased; `isMe`: it names the signed-in user.
        case mention(text: String, username: String, isMe: Bool)

        public var text: String {
            switch self {
            case .text(let text), .link(let text, _), .mention(let text, _, _): text
            }
        }
    }

    /// The segments of `body`, in order; joined, their texts give `body` back. Mentions follow
    /// the server's rule (`Mentions`); a mention inside a link is part of the link.
    /// `currentUsername`: the signed-in user's username (case is ignored).
    public static func segments(of body: String, currentUsername: String? = nil) -> [Segment] {
        let scalars = body.unicodeScalars
        let me = currentUsername?.lowercased()
        var marks: [(range: Range<String.UnicodeScalarView.Index>, segment: (String) -> Segment)] = []
        let links = Links.find(in: body)
        for link in links {
            let url = link.url
            marks.append((link.range, { .link(text: $0, url: url) }))
        }
        for mention in Mentions.spans(in: body) where !links.contains(where: { $0.range.overlaps(mention.range) }) {
            let username = mention.username
            marks.append((mention.range, { .mention(text: $0, username: username, isMe: username == me) }))
        }
        marks.sort { $0.range.lowerBound < $1.range.lowerBound }

        var segments: [Segment] = []
        var position = scalars.startIndex
        for mark in marks {
            if position < mark.range.lowerBound {
                segments.append(.text(String(scalars[position..<mark.range.lowerBound])))
            }
            segments.append(mark.segment(String(scalars[mark.range])))
            position = mark.range.upperBound
        }
        if position < scalars.endIndex {
            segments.append(.text(String(scalars[position...])))
        }
        return segments
    }
}

/// Finds web links in text: `http://` and `https://` URLs, and `www.` names (opened as
/// `https://`). A link ends at white space or at a character that cannot be in one (`<>"`
/// and the like); punctuation that ends the sentence (`.`, `,`, `:`, `;`, `!`, `?`, quotes)
/// and a closing bracket without its opening one are not part of it.
public enum Links {
    public struct Link: Sendable, Hashable {
        public var range: Range<String.UnicodeScalarView.Index>
        public var url: URL
    }

    public static func find(in text: String) -> [Link] {
        let scalars = text.unicodeScalars
        var links: [Link] = []
        var previous: Unicode.Scalar?
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let atWordStart = previous.map { !isWordScalar($0) } ?? true
            if atWordStart, let prefixLength = linkPrefixLength(scalars[index...]) {
                var end = index
                while end < scalars.endIndex, !endsLink(scalars[end]) {
                    end = scalars.index(after: end)
                }
                end = trimmedEnd(scalars, start: index, end: end)
                let written = String(scalars[index..<end])
                let hasMoreThanThePrefix = scalars.distance(from: index, to: end) > prefixLength
                if hasMoreThanThePrefix, let url = url(for: written) {
                    links.append(Link(range: index..<end, url: url))
                    previous = scalars[scalars.index(before: end)]
                    index = end
                    continue
                }
            }
            previous = scalars[index]
            index = scalars.index(after: index)
        }
        return links
    }

    /// The length of `http://`, `https://` or `www.` when `text` starts with one (any case).
    private static func linkPrefixLength(_ text: Substring.UnicodeScalarView) -> Int? {
        for prefix in ["https://", "http://", "www."] {
            var candidate = text.makeIterator()
            var matches = true
            for expected in prefix.unicodeScalars {
                guard let scalar = candidate.next(), lowercased(scalar) == expected else {
                    matches = false
                    break
                }
            }
            if matches { return prefix.unicodeScalars.count }
        }
        return nil
    }

    private static func url(for written: String) -> URL? {
        let lower = written.lowercased()
        let full = lower.hasPrefix("www.") ? "https://" + written : written
        guard let url = URL(string: full) ?? URL(string: percentEncodedOutsideASCII(full)),
              let host = url.host, !host.isEmpty else { return nil }
        return url
    }

    /// `full` with every non-ASCII character percent-encoded (a path in another script).
    private static func percentEncodedOutsideASCII(_ full: String) -> String {
        var allowed = CharacterSet()
        allowed.insert(charactersIn: Unicode.Scalar(0x21)...Unicode.Scalar(0x7E))
        return full.addingPercentEncoding(withAllowedCharacters: allowed) ?? full
    }

    /// Drops what ends a sentence rather than the link: trailing punctuation, and closing
    /// brackets that close nothing opened inside the link.
    private static func trimmedEnd(
        _ scalars: String.UnicodeScalarView,
        start: String.UnicodeScalarView.Index,
        end: String.UnicodeScalarView.Index
    ) -> String.UnicodeScalarView.Index {
        var end = end
        while end > start {
            let lastIndex = scalars.index(before: end)
            let last = scalars[lastIndex]
            if ".,:;!?'\u{2019}\u{201D}*".unicodeScalars.contains(last) {
                end = lastIndex
                continue
            }
            if let opening = closingBrackets[last] {
                let inside = scalars[start..<lastIndex]
                let opened = inside.filter { $0 == opening }.count
                let closed = inside.filter { $0 == last }.count
                if closed >= opened {
                    end = lastIndex
                    continue
                }
            }
            break
        }
        return end
    }

    private static let closingBrackets: [Unicode.Scalar: Unicode.Scalar] = [")": "(", "]": "[", "}": "{"]

    private static func endsLink(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.properties.isWhitespace { return true }
        if scalar.properties.generalCategory == .control { return true }
        return "<>\"`\u{00AB}\u{00BB}\u{201C}".unicodeScalars.contains(scalar)
    }

    /// Letters, digits and the like: a link starting right after one is part of a word.
    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isAlphabetic || scalar.properties.numericType != nil || scalar == "_" || scalar == "@" || scalar == "/" || scalar == "."
    }

    private static func lowercased(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if ("A"..."Z").contains(scalar), let lower = Unicode.Scalar(scalar.value + 32) { return lower }
        return scalar
    }
}

/// The direction a text is written in, for laying it out naturally: a Hebrew or Arabic
/// message reads from the right, also in an app laid out left to right.
public enum TextDirection: Sendable, Hashable {
    case leftToRight
    case rightToLeft

    /// The direction of the first strongly directional character (a letter), as HTML's
    /// `dir="auto"` decides; text without letters (digits, emoji, punctuation) is `fallback`.
    public static func of(_ text: String, fallback: TextDirection = .leftToRight) -> TextDirection {
        for scalar in text.unicodeScalars {
            if let direction = strongDirection(of: scalar) { return direction }
        }
        return fallback
    }

    /// Letters are strong: those of the scripts written right to left (bidi classes R and AL:
    /// Hebrew, Arabic, Syriac, Thaana, N'Ko, Samaritan, Mandaic, their presentation forms, and
    /// the supplementary planes' right-to-left blocks) go right to left, every other letter
    /// left to right. Digits, marks, punctuation and symbols are not strong.
    static func strongDirection(of scalar: Unicode.Scalar) -> TextDirection? {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            break
        default:
            return nil
        }
        let value = scalar.value
        let rightToLeft = (0x0590...0x08FF).contains(value)
            || (0xFB1D...0xFDFF).contains(value)
            || (0xFE70...0xFEFE).contains(value)
            || (0x10800...0x10FFF).contains(value)
            || (0x1E800...0x1EFFF).contains(value)
        return rightToLeft ? .rightToLeft : .leftToRight
    }
}
