//! A thumbnail from an image's bytes: decoded with limits (a small file may claim a huge
//! picture), turned upright (EXIF orientation), scaled to fit [`SIDE`]×[`SIDE`] keeping its
//! aspect ratio (never enlarged), transparency flattened onto white, encoded as JPEG. Pure and
//! CPU-bound: the caller runs it off the async runtime.

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// The longest side of a thumbnail, in pixels: a chat bubble's width on a phone at 3x.
pub const SIDE: u32 = 480;
/// JPEG quality: small files, no visible blocks at this size.
const QUALITY: u8 = 80;
/// Pictures larger than this on either side are not decoded (a 25 MiB file can hold a PNG of
/// 50,000 × 50,000 single-colour pixels: 10 GB decoded).
pub const MAX_SIDE: u32 = 12_000;
/// Memory one decode may take.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Why there is no thumbnail. All are final: the same bytes fail the same way again.
#[derive(Debug, thiserror::Error)]
pub enum NoThumbnail {
    #[error("{0} is not an image type we make thumbnails of")]
    NotAnImage(String),
    #[error(
        "the file is not the image type it was declared as ({declared}; it looks like {found:?})"
    )]
    WrongType {
        declared: String,
        found: Option<ImageFormat>,
    },
    #[error("could not decode the image: {0}")]
    Decode(#[from] image::ImageError),
    #[error("could not read the image: {0}")]
    Read(#[from] std::io::Error),
}

/// The JPEG thumbnail of the image `bytes`, declared as `content_type`.
pub fn make(content_type: &str, bytes: &[u8]) -> Result<Vec<u8>, NoThumbnail> {
    let declared = ImageFormat::from_mime_type(content_type)
        .ok_or_else(|| NoThumbnail::NotAnImage(content_type.to_owned()))?;
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    // The bytes decide what is decoded; a file that is not what it claims gets nothing.
    if reader.format() != Some(declared) {
        return Err(NoThumbnail::WrongType {
            declared: content_type.to_owned(),
            found: reader.format(),
        });
    }
    reader.limits(limits());
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    if img.width() > SIDE || img.height() > SIDE {
        img = img.thumbnail(SIDE, SIDE);
    }
    let rgb = on_white(img);
    let mut out = Vec::with_capacity(32 * 1024);
    JpegEncoder::new_with_quality(&mut out, QUALITY).encode_image(&rgb)?;
    Ok(out)
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// JPEG has no transparency: transparent pixels become white (dropping the alpha channel alone
/// would show whatever colour they happen to hold, usually black).
fn on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Rgba, RgbaImage};

    fn encoded(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }))
    }

    fn decoded(jpeg: &[u8]) -> DynamicImage {
        let reader = ImageReader::new(Cursor::new(jpeg))
            .with_guessed_format()
            .unwrap();
        assert_eq!(reader.format(), Some(ImageFormat::Jpeg));
        reader.decode().unwrap()
    }

    #[test]
    fn a_large_image_fits_the_box_with_its_aspect_ratio() {
        let png = encoded(gradient(1600, 900), ImageFormat::Png);
        let thumb = decoded(&make("image/png", &png).unwrap());
        assert_eq!(thumb.dimensions(), (480, 270));
    }

    #[test]
    fn a_tall_image_is_bounded_by_its_height() {
        let jpeg = encoded(gradient(300, 1200), ImageFormat::Jpeg);
        let thumb = decoded(&make("image/jpeg", &jpeg).unwrap());
        assert_eq!(thumb.dimensions(), (120, 480));
    }

    #[test]
    fn a_small_image_is_not_enlarged() {
        let gif = encoded(gradient(64, 40), ImageFormat::Gif);
        let thumb = decoded(&make("image/gif", &gif).unwrap());
        assert_eq!(thumb.dimensions(), (64, 40));
    }

    #[test]
    fn webp_is_read_too() {
        let webp = encoded(gradient(500, 500), ImageFormat::WebP);
        assert_eq!(
            decoded(&make("image/webp", &webp).unwrap()).dimensions(),
            (480, 480)
        );
    }

    #[test]
    fn transparency_becomes_white_not_black() {
        let img = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        let png = encoded(DynamicImage::ImageRgba8(img), ImageFormat::Png);
        let thumb = decoded(&make("image/png", &png).unwrap()).into_rgb8();
        let [r, g, b] = thumb.get_pixel(5, 5).0;
        assert!(r > 240 && g > 240 && b > 240, "{r} {g} {b}");
    }

    #[test]
    fn a_file_that_is_not_the_declared_image_type_gets_none() {
        let png = encoded(gradient(20, 20), ImageFormat::Png);
        assert!(matches!(
            make("image/jpeg", &png),
            Err(NoThumbnail::WrongType { .. })
        ));
        assert!(matches!(
            make("image/png", b"%PDF-1.7 not a picture"),
            Err(NoThumbnail::WrongType { .. })
        ));
        assert!(matches!(
            make("application/pdf", &png),
            Err(NoThumbnail::NotAnImage(_))
        ));
    }

    #[test]
    fn a_truncated_image_gets_none() {
        let png = encoded(gradient(200, 200), ImageFormat::Png);
        assert!(matches!(
            make("image/png", &png[..png.len() / 2]),
            Err(NoThumbnail::Decode(_))
        ));
    }

    #[test]
    fn a_picture_over_the_size_limit_is_not_decoded() {
        // A few hundred bytes that would decode to MAX_SIDE + 1 pixels a row.
        let png = encoded(
            DynamicImage::ImageLuma8(image::GrayImage::new(MAX_SIDE + 1, 1)),
            ImageFormat::Png,
        );
        assert!(png.len() < 4096);
        assert!(matches!(
            make("image/png", &png),
            Err(NoThumbnail::Decode(_))
        ));
    }

    #[test]
    fn an_exif_quarter_turn_is_applied() {
        // A 40×20 JPEG whose EXIF says "rotate 90° clockwise to show": upright it is 20×40,
        // so its thumbnail is taller than wide.
        let mut jpeg = encoded(gradient(40, 20), ImageFormat::Jpeg);
        insert_exif_orientation(&mut jpeg, 6);
        let thumb = decoded(&make("image/jpeg", &jpeg).unwrap());
        assert_eq!(thumb.dimensions(), (20, 40));
    }

    /// Put an APP1 EXIF segment with one Orientation entry right after SOI.
    fn insert_exif_orientation(jpeg: &mut Vec<u8>, orientation: u16) {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08"); // big endian, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut segment = vec![0xFF, 0xE1];
        segment.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(&app1);
        jpeg.splice(2..2, segment);
    }
}
