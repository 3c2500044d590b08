import ChatKit
import Foundation

/// How a message's files are laid out before anything is downloaded: an image gets a box of its
/// own aspect ratio at once (from the message's `width` and `height`), so the conversation does
/// not jump when the picture arrives; other files are chips.
public enum AttachmentLayout {
    /// A box in points.
    public struct Size: Sendable, Hashable {
        public var width: Double
        public var height: Double

        public init(width: Double, height: Double) {
            self.width = width
            self.height = height
        }
    }

    /// The largest box of an inline image, in points.
    public static let maxImageSize = Size(width: 240, height: 320)
    /// The smallest side of an image's box, in points: something to see and to tap (the picture
    /// fills the box, cropped, when its own shape is more extreme).
    public static let minImageSide: Double = 32

    /// The box of an image: its aspect ratio, as large as fits within `limit` but never larger
    /// than its pixels (one point per pixel), each side at least `minImageSide`. Nil for a file
    /// shown as a chip (not an image, or one the server could not measure).
    public static func imageSize(of attachment: MessageAttachment, within limit: Size = maxImageSize) -> Size? {
        guard attachment.isImage, let width = attachment.width, let height = attachment.height else { return nil }
        let scale = min(limit.width / Double(width), limit.height / Double(height), 1)
        return Size(
            width: max(Double(width) * scale, minImageSide),
            height: max(Double(height) * scale, minImageSide)
        )
    }
}
