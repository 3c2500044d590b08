import Foundation

// Attachments as the REST API sees them (issue #16), mirroring `chat-types/src/attachments.rs`:
// declare a file (`POST /channels/{id}/attachments`), PUT its bytes to the presigned URL with
// exactly the given headers, complete it (`…/complete`), then send it with a message (a `send`
// frame's `attachments`); members ask for a download link.

/// `POST /channels/{channel_id}/attachments`: the file about to be uploaded.
public struct CreateAttachment: Codable, Sendable, Hashable {
    /// 1 to 255 characters, no `/`, no control or invisible format characters.
    public var name: String
    /// One of the server's accepted types (`image/jpeg`, `application/pdf`, ...).
    public var contentType: String
    /// Bytes.
    public var size: UInt64

    public init(name: String, contentType: String, size: UInt64) {
        self.name = name
        self.contentType = contentType
        self.size = size
    }

    enum CodingKeys: String, CodingKey {
        case name
        case contentType = "content_type"
        case size
    }
}

/// A presigned request: send exactly this method, to this URL, with these headers.
public struct UploadRequest: Codable, Sendable, Hashable {
    /// `PUT`.
    public var method: String
    public var url: String
    /// Lowercase header names and their values (`content-type`, `content-length`).
    public var headers: [String: String]

    public init(method: String, url: String, headers: [String: String]) {
        self.method = method
        self.url = url
        self.headers = headers
    }
}

/// An attachment waiting for its bytes, and where to upload them.
public struct AttachmentUpload: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var upload: UploadRequest
    /// Seconds the upload URL stays valid (then ask for another: `…/upload-url`).
    public var expiresIn: Int

    public init(id: String, upload: UploadRequest, expiresIn: Int) {
        self.id = id
        self.upload = upload
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case id
        case upload
        case expiresIn = "expires_in"
    }
}

/// Whether an attachment's bytes arrived and were checked. A state this client does not know
/// decodes as `.other`.
public enum AttachmentState: OpenWireString {
    case pending
    case ready
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "pending": self = .pending
        case "ready": self = .ready
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .pending: "pending"
        case .ready: "ready"
        case .other(let value): value
        }
    }
}

/// An attachment of a channel (`…/complete`).
public struct Attachment: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var channelID: String
    public var uploaderID: String
    public var name: String
    public var contentType: String
    public var size: UInt64
    /// Pixels of an image shown upright; nil for other files.
    public var width: Int?
    public var height: Int?
    public var state: AttachmentState
    public var createdAt: Date

    public init(
        id: String,
        channelID: String,
        uploaderID: String,
        name: String,
        contentType: String,
        size: UInt64,
        width: Int? = nil,
        height: Int? = nil,
        state: AttachmentState,
        createdAt: Date
    ) {
        self.id = id
        self.channelID = channelID
        self.uploaderID = uploaderID
        self.name = name
        self.contentType = contentType
        self.size = size
        self.width = width
        self.height = height
        self.state = state
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case channelID = "channel_id"
        case uploaderID = "uploader_id"
        case name
        case contentType = "content_type"
        case size
        case width
        case height
        case state
        case createdAt = "created_at"
    }
}

/// Whether an attachment has a thumbnail. The wire's `"none"` is `.unavailable` here (a case
/// named `none` would be confused with `Optional.none`).
public enum ThumbnailState: OpenWireString {
    case ready
    /// Being made: ask again shortly.
    case pending
    /// There will be none: show a file chip.
    case unavailable
    case other(String)

    public init(rawValue: String) {
        switch rawValue {
        case "ready": self = .ready
        case "pending": self = .pending
        case "none": self = .unavailable
        default: self = .other(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .ready: "ready"
        case .pending: "pending"
        case .unavailable: "none"
        case .other(let value): value
        }
    }
}

/// `GET /channels/{channel_id}/attachments/{attachment_id}`: where to download it.
public struct AttachmentLink: Codable, Sendable, Hashable {
    public var url: String
    public var thumbnailURL: String?
    public var thumbnail: ThumbnailState
    /// Seconds the URLs stay valid.
    public var expiresIn: Int

    public init(url: String, thumbnailURL: String? = nil, thumbnail: ThumbnailState, expiresIn: Int) {
        self.url = url
        self.thumbnailURL = thumbnailURL
        self.thumbnail = thumbnail
        self.expiresIn = expiresIn
    }

    enum CodingKeys: String, CodingKey {
        case url
        case thumbnailURL = "thumbnail_url"
        case thumbnail
        case expiresIn = "expires_in"
    }
}

/// An attachment as a message carries it (`Message.attachments`): enough to lay it out (an
/// image's box, a file's chip) before anything is downloaded. The bytes: `GET …/attachments/{id}`
/// for a link (`APIClient.attachmentLink`).
public struct MessageAttachment: Codable, Sendable, Hashable, Identifiable {
    public var id: String
    public var name: String
    public var contentType: String
    /// Bytes.
    public var size: UInt64
    /// Pixels of an image shown upright (an EXIF quarter turn already swapped); nil for other
    /// files, and for a file that is not the image type it declares.
    public var width: Int?
    public var height: Int?

    public init(id: String, name: String, contentType: String, size: UInt64, width: Int? = nil, height: Int? = nil) {
        self.id = id
        self.name = name
        self.contentType = contentType
        self.size = size
        self.width = width
        self.height = height
    }

    /// A completed upload as the message that carries it will show it, so a pending send
    /// shows its files before the server has seen it.
    public init(_ attachment: Attachment) {
        self.init(
            id: attachment.id,
            name: attachment.name,
            contentType: attachment.contentType,
            size: attachment.size,
            width: attachment.width,
            height: attachment.height
        )
    }

    /// An image with known dimensions: shown inline, in a box of its aspect ratio. Anything
    /// else (an image the server could not measure included) is a file chip.
    public var isImage: Bool {
        contentType.hasPrefix("image/") && aspectRatio != nil
    }

    /// Width over height, when both are known and positive.
    public var aspectRatio: Double? {
        guard let width, let height, width > 0, height > 0 else { return nil }
        return Double(width) / Double(height)
    }

    enum CodingKeys: String, CodingKey {
        case id
        case name
        case contentType = "content_type"
        case size
        case width
        case height
    }
}

/// The content types the server accepts by default (`chat_types::limits::ATTACHMENT_TYPES`;
/// a server may be configured otherwise, and answers `unsupported_type`), and the one a file's
/// name implies, for uploading files picked by name. HEIC (the camera's format) is not among
/// them: convert photos to JPEG first.
public enum AttachmentContentType {
    public static let accepted: [String] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "application/zip",
        "video/mp4",
        "audio/mpeg",
        "audio/mp4",
    ]

    private static let byExtension: [String: String] = [
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "pdf": "application/pdf",
        "txt": "text/plain",
        "text": "text/plain",
        "zip": "application/zip",
        "mp4": "video/mp4",
        "m4v": "video/mp4",
        "mp3": "audio/mpeg",
        "m4a": "audio/mp4",
    ]

    /// The accepted type a file named `name` has by its extension (ignoring case), or nil when
    /// the server would refuse it.
    public static func forFileName(_ name: String) -> String? {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        return byExtension[name[name.index(after: dot)...].lowercased()]
    }
}
