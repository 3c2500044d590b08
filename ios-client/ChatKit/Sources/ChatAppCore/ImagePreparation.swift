import ChatKit
import Foundation
#if canImport(ImageIO)
import ImageIO
#endif

/// A file picked for a message (Photos, Files, the pasteboard), before it is uploaded.
public struct PickedFile: Sendable, Hashable {
    /// The name the message shows (`IMG_0042.jpg`).
    public var name: String
    /// The MIME type the picker reported (`image/heic`), if any.
    public var contentType: String?
    public var data: Data

    public init(name: String, contentType: String? = nil, data: Data) {
        self.name = name
        self.contentType = contentType
        self.data = data
    }

    /// The type the server is told: the one reported when the server takes it, else the one the
    /// name implies (`AttachmentContentType.forFileName`), else the reported one (which the
    /// server will not take).
    public var resolvedContentType: String? {
        if let contentType, AttachmentContentType.accepted.contains(contentType) {
            return contentType
        }
        return AttachmentContentType.forFileName(name) ?? contentType
    }

    /// The name of the `index`-th file of a drop (from 1): drag and drop suggests a name, often
    /// without its extension (`IMG_0042` for a JPEG from Photos), a path, or none at all. The
    /// suggested name's last component, with `fileExtension` (the dropped type's) added when it
    /// does not end in it already, else `Dropped file <stamp>-<index>.<ext>`.
    public static func droppedName(suggested: String?, fileExtension: String?, stamp: Int, index: Int) -> String {
        let ext = fileExtension?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() ?? ""
        let base = (suggested ?? "")
            .split(separator: "/", omittingEmptySubsequences: true).last
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let name = base.isEmpty ? "Dropped file \(stamp)-\(index)" : base
        if ext.isEmpty || name.lowercased().hasSuffix(".\(ext)") {
            return name
        }
        return "\(name).\(ext)"
    }
}

/// Makes a picked file ready to upload. `ImagePreparation` is the app's; tests may substitute
/// another.
public protocol AttachmentPreparing: Sendable {
    /// What `prepare` will make of the file, known at once: what is checked before anything
    /// is sent.
    func plan(for file: PickedFile) -> PreparationPlan
    func prepare(_ file: PickedFile) async throws -> PickedFile
}

/// The name and type a picked file will have once prepared, and whether its bytes change (then
/// its size is known only once prepared).
public struct PreparationPlan: Sendable, Hashable {
    public var name: String
    public var contentType: String?
    public var changesBytes: Bool

    public init(name: String, contentType: String?, changesBytes: Bool) {
        self.name = name
        self.contentType = contentType
        self.changesBytes = changesBytes
    }
}

/// Why a picked file could not be prepared.
public struct PreparationFailed: Error, Sendable, Hashable, LocalizedError {
    public var name: String

    public init(name: String) {
        self.name = name
    }

    public var errorDescription: String? {
        "\(name) could not be converted to JPEG."
    }
}

/// Photos as the camera takes them (HEIC, HEIF) are not among the server's types: they become
/// JPEG (quality 0.85, same orientation, no location) named `.jpg`. Everything else passes
/// unchanged. The conversion needs ImageIO (Apple platforms); without it (Linux) files pass
/// unchanged, and a HEIC photo is then refused by `AttachmentValidation` like any type the
/// server does not take.
public struct ImagePreparation: AttachmentPreparing {
    /// JPEG quality of converted photos.
    public static let jpegQuality = 0.85
    /// The types that are converted.
    public static let convertedTypes: Set<String> = ["image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"]
    /// The file name extensions that are converted (compared ignoring case).
    public static let convertedExtensions: Set<String> = ["heic", "heif", "heics", "heifs", "hif"]

    /// Whether this build can convert photos (ImageIO is there).
    public static var canConvert: Bool {
        #if canImport(ImageIO)
        true
        #else
        false
        #endif
    }

    public init() {}

    /// Whether a file of this name and reported type is a HEIC/HEIF photo to convert.
    public static func needsConversion(name: String, contentType: String?) -> Bool {
        if let contentType, convertedTypes.contains(contentType.lowercased()) {
            return true
        }
        return fileExtension(of: name).map { convertedExtensions.contains($0.lowercased()) } ?? false
    }

    /// The name of the converted photo: its extension replaced by `.jpg` (`IMG_0042.HEIC` →
    /// `IMG_0042.jpg`), or `.jpg` added to a name without one.
    public static func convertedName(_ name: String) -> String {
        guard fileExtension(of: name) != nil, let dot = name.lastIndex(of: ".") else {
            return name + ".jpg"
        }
        return String(name[..<dot]) + ".jpg"
    }

    /// A HEIC photo becomes a JPEG `.jpg` where ImageIO is there; anything else stays as it is.
    public func plan(for file: PickedFile) -> PreparationPlan {
        if Self.canConvert && Self.needsConversion(name: file.name, contentType: file.contentType) {
            return PreparationPlan(name: Self.convertedName(file.name), contentType: "image/jpeg", changesBytes: true)
        }
        return PreparationPlan(name: file.name, contentType: file.resolvedContentType, changesBytes: false)
    }

    public func prepare(_ file: PickedFile) async throws -> PickedFile {
        guard Self.needsConversion(name: file.name, contentType: file.contentType) else { return file }
        #if canImport(ImageIO)
        guard let jpeg = Self.jpeg(from: file.data) else { throw PreparationFailed(name: file.name) }
        return PickedFile(name: Self.convertedName(file.name), contentType: "image/jpeg", data: jpeg)
        #else
        return file
        #endif
    }

    /// The extension of a file name (after its last dot), if it has one; a leading dot (a
    /// hidden file) is not one.
    private static func fileExtension(of name: String) -> Substring? {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        let ext = name[name.index(after: dot)...]
        return ext.isEmpty ? nil : ext
    }

    #if canImport(ImageIO)
    /// The first image of `data` re-encoded as JPEG. Only the orientation is carried over (so
    /// the photo stays upright, and the server measures it upright); location and all other
    /// metadata are left behind. The pixels keep their color space (embedded as a profile).
    static func jpeg(from data: Data) -> Data? {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              CGImageSourceGetCount(source) > 0,
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil)
        else { return nil }
        let output = NSMutableData()
        guard let destination = CGImageDestinationCreateWithData(output as CFMutableData, "public.jpeg" as CFString, 1, nil) else {
            return nil
        }
        var properties: [CFString: Any] = [kCGImageDestinationLossyCompressionQuality: jpegQuality]
        let sourceProperties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [String: Any]
        if let orientation = sourceProperties?[kCGImagePropertyOrientation as String] {
            properties[kCGImagePropertyOrientation] = orientation
        }
        CGImageDestinationAddImage(destination, image, properties as CFDictionary)
        guard CGImageDestinationFinalize(destination) else { return nil }
        return output as Data
    }
    #endif
}

/// The checks the server makes of a declared file (`POST …/attachments`), made before anything
/// is sent, in words for the person who picked it.
public enum AttachmentValidation {
    /// Why the server would refuse this file, or nil when it would take it.
    public static func problem(name: String, contentType: String?, size: UInt64) -> String? {
        guard let contentType, AttachmentContentType.accepted.contains(contentType) else {
            return "\(name) can't be sent: only images (JPEG, PNG, GIF, WebP), PDF, text, ZIP, MP4, MP3 and M4A files can."
        }
        guard Limits.isValidAttachmentName(name) else {
            return "\(name) can't be sent: rename it (at most \(Limits.attachmentNameMax) characters, no \"/\") and try again."
        }
        if size == 0 {
            return "\(name) is empty."
        }
        if size > Limits.attachmentMaxBytes {
            return "\(name) is too large (\(megabytes(size))): files can be up to \(megabytes(Limits.attachmentMaxBytes))."
        }
        return nil
    }

    /// `26.2 MB`, `25 MB` (MiB, one decimal when it has one).
    static func megabytes(_ bytes: UInt64) -> String {
        let tenths = (bytes * 10 + 524_288) / 1_048_576
        return tenths % 10 == 0 ? "\(tenths / 10) MB" : "\(tenths / 10).\(tenths % 10) MB"
    }
}
