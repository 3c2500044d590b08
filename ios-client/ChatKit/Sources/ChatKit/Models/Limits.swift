import Foundation

/// Limits of the public contract (`chat_types::limits`), checked before a request is sent so
/// the user gets a precise message instead of a round trip and a 4xx.
public enum Limits {
    public static let usernameMin = 3
    public static let usernameMax = 32
    public static let passwordMin = 8
    public static let passwordMax = 1024
    public static let displayNameMax = 64
    public static let channelNameMax = 80
    public static let channelDescriptionMax = 1000
    /// Message bodies: 1 to 4000 characters, counted as Unicode scalar values like the server.
    public static let bodyMaxChars = 4000
    public static let clientMsgIDMax = 128
    public static let maxRequestBytes = 1024 * 1024
    public static let historyDefaultLimit = 50
    public static let historyMaxLimit = 100
    /// Channel directory page size.
    public static let directoryDefaultLimit = 20
    public static let directoryMaxLimit = 100
    /// People search: most users in one answer, and the longest query (a display name).
    public static let userSearchLimit = 20
    public static let userQueryMax = 64
    /// At most one `typing` per channel this often; the server drops the others.
    public static let typingIntervalMs = 2000
    /// How long a `typing` indicator lasts (the frame's `expires_in_ms`).
    public static let typingExpiresMs = 5000
    /// A reaction's emoji: at most this many UTF-8 bytes.
    public static let emojiMaxBytes = 64
    /// A `client_event_id` (edits, deletes, reactions): 1 to 128 characters, like a
    /// `client_msg_id`.
    public static let clientEventIDMax = 128
    /// A conversation's `unread_count` stops counting here (`chat_types::limits::UNREAD_COUNT_MAX`).
    public static let unreadCountMax = 9_999
    /// At most this many distinct `@username` mentions per message count
    /// (`chat_types::limits::MENTIONS_MAX`).
    public static let mentionsMax = 20
    /// A push device token: a whole number of bytes within these, sent as hexadecimal (twice as
    /// many digits). APNs tokens are 32 bytes today; Apple asks providers not to rely on that.
    /// (`chat_types::limits::DEVICE_TOKEN_MIN_BYTES` / `MAX_BYTES`; not in `limits.json` yet.)
    public static let deviceTokenMinBytes = 16
    public static let deviceTokenMaxBytes = 100
    /// Characters of an app bundle id (`chat_types::limits::BUNDLE_ID_MAX`).
    public static let bundleIDMax = 155
    /// Devices one user keeps; registering one more forgets the one registered longest ago
    /// (`chat_types::limits::DEVICES_PER_USER_MAX`).
    public static let devicesPerUserMax = 20
    /// Files one message carries (`attachments` of a `send`).
    public static let attachmentsPerMessageMax = 4
    /// Characters of an attachment's name (`chat_types::limits::ATTACHMENT_NAME_MAX`; not in
    /// `limits.json`).
    public static let attachmentNameMax = 255
    /// The largest file a server takes by default (`api.attachment_max_bytes`, configurable:
    /// a server may answer `attachment_too_large` below it).
    public static let attachmentMaxBytes: UInt64 = 25 * 1024 * 1024
    /// Seconds an upload URL stays valid (`chat_types::limits::UPLOAD_URL_SECS`).
    public static let uploadURLSecs = 15 * 60
    /// Seconds after its creation during which an upload not completed may get a new upload URL
    /// (`…/upload-url`); after that the server has abandoned it (`unknown_attachment`): declare
    /// the file again (`chat_types::limits::UPLOAD_RENEWABLE_SECS`).
    public static let uploadRenewableSecs = 60 * 60

    /// An attachment's name: 1 to 255 characters (Unicode scalar values), no `/`, no control
    /// characters, line or paragraph separators, or invisible format characters (bidi overrides
    /// and isolates, zero-width spaces, the byte-order mark) but the zero-width joiner and
    /// non-joiner (`chat_types::limits::valid_attachment_name`).
    public static func isValidAttachmentName(_ name: String) -> Bool {
        (1...attachmentNameMax).contains(name.unicodeScalars.count) && !name.unicodeScalars.contains { scalar in
            switch scalar.value {
            case 0x2F, 0x2028, 0x2029: return true
            case 0x200C, 0x200D: return false
            default:
                let category = scalar.properties.generalCategory
                return category == .control || category == .format
            }
        }
    }

    /// 3 to 32 ASCII letters, digits, `.`, `_` or `-`.
    public static func isValidUsername(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (usernameMin...usernameMax).contains(bytes.count) && bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// At least 8 characters (Unicode scalar values), at most 1024.
    public static func isValidPassword(_ password: String) -> Bool {
        (passwordMin...passwordMax).contains(password.unicodeScalars.count)
    }

    /// 1 to 4000 characters, not only white space.
    public static func isValidBody(_ body: String) -> Bool {
        (1...bodyMaxChars).contains(body.unicodeScalars.count)
            && !body.unicodeScalars.allSatisfy { $0.properties.isWhitespace }
    }

    /// The body of a message that carries attachments: empty (the files say it all) or a valid
    /// body (`chat_types::limits::valid_caption`).
    public static func isValidCaption(_ body: String) -> Bool {
        body.isEmpty || isValidBody(body)
    }

    /// A message that may be sent: a valid body, or, with 1 to 4 attachments, a valid caption
    /// (an empty one included).
    public static func isValidMessage(body: String, attachmentCount: Int) -> Bool {
        attachmentCount == 0
            ? isValidBody(body)
            : attachmentCount <= attachmentsPerMessageMax && isValidCaption(body)
    }

    /// A reaction: 1 to 64 bytes (UTF-8), no white space, no control characters.
    public static func isValidEmoji(_ emoji: String) -> Bool {
        (1...emojiMaxBytes).contains(emoji.utf8.count)
            && !emoji.unicodeScalars.contains { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
    }

    /// A channel name: 1 to 80 characters, not only white space.
    public static func isValidChannelName(_ name: String) -> Bool {
        (1...channelNameMax).contains(name.unicodeScalars.count)
            && !name.unicodeScalars.allSatisfy { $0.properties.isWhitespace }
    }
}
