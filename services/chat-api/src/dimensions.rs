//! An image's width and height from its first bytes, as people see it (EXIF orientations that
//! turn it by a quarter swap the two). Pure: the caller fetches the bytes (a ranged GET of the
//! first [`HEADER_BYTES`], the whole object when that is not enough). The format is sniffed
//! from the bytes; a file that is not the image type it was declared as has no dimensions.

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

/// How much of an image is read first: JPEG's APP segments (EXIF, XMP) come before its frame
/// header and are rarely larger.
pub const HEADER_BYTES: u64 = 256 * 1024;

/// What the bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimensions {
    /// Width and height, upright.
    Known(u32, u32),
    /// Not an image of the declared type, or not readable: no dimensions.
    Unknown,
    /// The bytes end before the header does: read more (only when they are a prefix).
    NeedMore,
}

/// Width and height of the image of type `content_type` whose first bytes are `bytes`;
/// `complete` says whether they are the whole file.
pub fn dimensions(content_type: &str, bytes: &[u8], complete: bool) -> Dimensions {
    let Some(declared) = ImageFormat::from_mime_type(content_type) else {
        return Dimensions::Unknown;
    };
    let need_more = || {
        if complete {
            Dimensions::Unknown
        } else {
            Dimensions::NeedMore
        }
    };
    let reader = match ImageReader::new(Cursor::new(bytes)).with_guessed_format() {
        Ok(r) => r,
        Err(_) => return need_more(),
    };
    match reader.format() {
        Some(f) if f == declared => {}
        // Not what it claims to be (too few bytes to tell: read more).
        Some(_) => return Dimensions::Unknown,
        None => return need_more(),
    }
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(_) => return need_more(),
    };
    let (w, h) = decoder.dimensions();
    let orientation = match decoder.orientation() {
        Ok(o) => o,
        // WebP keeps its EXIF after the picture: a prefix may not reach it.
        Err(_) if !complete => return Dimensions::NeedMore,
        Err(_) => Orientation::NoTransforms,
    };
    if w == 0 || h == 0 {
        return Dimensions::Unknown;
    }
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => Dimensions::Known(h, w),
        _ => Dimensions::Known(w, h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 13) as u8, 90])
        }));
        let mut out = Cursor::new(Vec::new());
        let img = if format == ImageFormat::WebP {
            // The WebP encoder takes RGB(A) 8-bit only; so does GIF's path through RGBA.
            DynamicImage::ImageRgba8(img.to_rgba8())
        } else {
            img
        };
        img.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    /// A JPEG with an EXIF APP1 segment holding only `Orientation` = `orientation`, inserted
    /// right after SOI (where cameras put it).
    fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
        let jpeg = encoded(w, h, ImageFormat::Jpeg);
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big endian, IFD0 at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]); // padding of the value field
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn each_format_tells_its_size() {
        for (format, mime) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::Gif, "image/gif"),
            (ImageFormat::WebP, "image/webp"),
        ] {
            let bytes = encoded(37, 21, format);
            assert_eq!(
                dimensions(mime, &bytes, true),
                Dimensions::Known(37, 21),
                "{mime}"
            );
        }
    }

    #[test]
    fn a_quarter_turn_in_exif_swaps_width_and_height() {
        let turned = jpeg_with_orientation(40, 16, 6);
        assert_eq!(
            dimensions("image/jpeg", &turned, true),
            Dimensions::Known(16, 40)
        );
        let upside_down = jpeg_with_orientation(40, 16, 3);
        assert_eq!(
            dimensions("image/jpeg", &upside_down, true),
            Dimensions::Known(40, 16)
        );
    }

    #[test]
    fn a_file_that_is_not_its_declared_type_has_no_size() {
        let png = encoded(10, 10, ImageFormat::Png);
        assert_eq!(dimensions("image/jpeg", &png, true), Dimensions::Unknown);
        assert_eq!(
            dimensions("application/pdf", &png, true),
            Dimensions::Unknown
        );
        assert_eq!(
            dimensions("image/png", b"not a png at all", true),
            Dimensions::Unknown
        );
    }

    #[test]
    fn a_prefix_too_short_for_the_header_asks_for_more() {
        let png = encoded(10, 10, ImageFormat::Png);
        assert_eq!(
            dimensions("image/png", &png[..4], false),
            Dimensions::NeedMore
        );
        assert_eq!(
            dimensions("image/png", &png[..4], true),
            Dimensions::Unknown
        );
        // A prefix that holds the header is enough.
        let big = encoded(300, 200, ImageFormat::Png);
        assert_eq!(
            dimensions("image/png", &big[..64], false),
            Dimensions::Known(300, 200)
        );
    }
}
