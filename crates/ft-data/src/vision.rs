//! Images for vision models, prepared exactly as torchvision prepares a PIL image.
//!
//! The notebook classifies `Image.open(path).convert("RGB")` with
//! `ResNet18_Weights.IMAGENET1K_V1.transforms()`: resize the shorter side to 256 with PIL's
//! bilinear filter, center-crop 224, scale to [0, 1], normalise with the ImageNet mean and std.
//! This module decodes files; the pixel operations live in `ft_hub::image` (shared with the
//! models, whose `pretrained_cfg` describes the transform) and are re-exported here. Each step
//! reproduces its Python counterpart:
//!
//! - [`decode_rgb`] / [`open_rgb`]: PNG and JPEG through the `image` crate, converted to 8-bit RGB
//!   as PIL's `convert("RGB")` converts: grayscale is replicated, alpha is dropped (not
//!   composited), palette entries are looked up; 16-bit RGB/RGBA/gray-alpha keep the high byte
//!   (PIL reads them as 8-bit modes), and 16-bit grayscale — PIL's mode `I;16` — is **clipped**
//!   at 255, so that anything brighter than 255/65535 becomes white, exactly as PIL does.
//! - [`resize`]: PIL's `ImagingResample` (`Image.resize` with `BILINEAR` or `BICUBIC`): a
//!   separable convolution whose filter support is widened by the downscale factor
//!   (antialiasing), fixed-point coefficients with 22 fractional bits, a horizontal pass rounded
//!   to 8 bits, then a vertical pass.
//! - [`shorter_side_size`]: torchvision's `Resize(int)` output size; [`center_crop`]:
//!   torchvision's `center_crop` (Python's round-half-to-even offsets, zero padding when the crop
//!   is larger than the image).
//! - [`ImageTransform::normalize`]: `pil_to_tensor`, `convert_image_dtype(float)` (divide by 255)
//!   and `normalize(mean, std)`, in f32 like torch.
//!
//! Measured against torchvision 0.29.2 / Pillow 13.0 (`tests/fixtures/README.md`): on PNG images
//! the resized and cropped pixels are identical (0 levels of difference); JPEG decoding differs
//! from libjpeg-turbo by at most a few levels on some pixels, which the numbers in the README
//! quantify.
//!
//! ```no_run
//! use ft_data::vision::{ImageTransform, open_rgb};
//! # fn main() -> ft_data::Result<()> {
//! let image = open_rgb(std::path::Path::new("cat.jpg"))?;
//! let chw = ImageTransform::imagenet().apply(&image); // 3 x 224 x 224, normalised
//! assert_eq!(chw.len(), 3 * 224 * 224);
//! # Ok(()) }
//! ```

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::{DataError, Result};
pub use ft_hub::image::{ImageTransform, Interpolation, RgbImage, center_crop, resize, shorter_side_size};

/// The colour layout a file was stored in (PIL's mode, roughly), reported by [`decode_rgb_with_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// 8-bit (or fewer bits) grayscale, PIL `L` / `1`.
    Gray,
    /// Grayscale with alpha, PIL `LA`.
    GrayAlpha,
    /// RGB, PIL `RGB` (palette images without transparency decode to this too).
    Rgb,
    /// RGB with alpha, PIL `RGBA` (palette images with a `tRNS` chunk decode to this too).
    Rgba,
    /// 16-bit grayscale, PIL `I;16`: values above 255 are clipped to 255 by `convert("RGB")`.
    Gray16,
    /// 16-bit grayscale with alpha (high byte kept).
    GrayAlpha16,
    /// 16-bit RGB (high byte kept).
    Rgb16,
    /// 16-bit RGBA (high byte kept).
    Rgba16,
}

/// The most pixels an image may have: PIL's `Image.MAX_IMAGE_PIXELS` (89,478,485, about
/// 9459 × 9459); larger images are refused from their header, before decoding.
pub const MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Width and height from a PNG or JPEG header, without decoding (`None`: not readable).
pub fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?.into_dimensions().ok()
}

/// Decodes a PNG or JPEG file's bytes to RGB as `Image.open(..).convert("RGB")` does.
/// `origin` names the file in errors.
pub fn decode_rgb(bytes: &[u8], origin: &Path) -> Result<RgbImage> {
    decode_rgb_with_mode(bytes, origin).map(|(image, _)| image)
}

/// Like [`decode_rgb`], also telling the colour layout the file stored.
pub fn decode_rgb_with_mode(bytes: &[u8], origin: &Path) -> Result<(RgbImage, SourceMode)> {
    let err = |message: String| DataError::Format { path: origin.to_path_buf(), message };
    if bytes.is_empty() {
        return Err(err("empty file (expected a PNG or JPEG image)".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read image: {e}")))?;
    let format = match reader.format() {
        Some(ImageFormat::Png) => "PNG",
        Some(ImageFormat::Jpeg) => "JPEG",
        Some(other) => {
            return Err(err(format!("{other:?} images are not supported (only PNG and JPEG)")));
        }
        None => return Err(err("not a PNG or JPEG image (unrecognised file signature)".into())),
    };
    // The size from the header, before any pixel is decoded (decompression bombs).
    if let Some((w, h)) = image_dimensions(bytes)
        && (w as u64) * (h as u64) > MAX_IMAGE_PIXELS
    {
        return Err(err(format!(
            "the image is {w}x{h} = {} pixels, above the limit of {MAX_IMAGE_PIXELS} (PIL's MAX_IMAGE_PIXELS); \
             refusing to decode it (a decompression bomb?)",
            (w as u64) * (h as u64)
        )));
    }
    if format == "PNG"
        && let Some(message) = png_palette_problem(bytes)
    {
        // The `png` crate (0.18) panics on a palette whose length is not a multiple of 3.
        return Err(err(format!("cannot decode PNG image: {message}")));
    }
    if format == "JPEG" && !jpeg_is_complete(bytes) {
        // zune-jpeg fills a cut-off scan with gray; PIL refuses it ("image file is truncated").
        return Err(err("cannot decode JPEG image: truncated (the data ends before the end-of-image marker)".into()));
    }
    let decoded =
        reader.decode().map_err(|e| err(format!("cannot decode {format} image (truncated or corrupt?): {e}")))?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    if w == 0 || h == 0 {
        return Err(err(format!("image has no pixels ({w}x{h})")));
    }
    let (pixels, mode) = match decoded {
        DynamicImage::ImageRgb8(b) => (b.into_raw(), SourceMode::Rgb),
        DynamicImage::ImageRgba8(b) => (drop_alpha(b.as_raw(), 4, |v| v), SourceMode::Rgba),
        DynamicImage::ImageLuma8(b) => (gray_to_rgb(b.as_raw(), 1, |v| v), SourceMode::Gray),
        DynamicImage::ImageLumaA8(b) => (gray_to_rgb(b.as_raw(), 2, |v| v), SourceMode::GrayAlpha),
        // PIL opens 16-bit RGB(A) and LA PNGs as 8-bit modes through the `;16B` raw modes, which
        // keep the most significant byte.
        DynamicImage::ImageRgb16(b) => (drop_alpha(b.as_raw(), 3, high_byte), SourceMode::Rgb16),
        DynamicImage::ImageRgba16(b) => (drop_alpha(b.as_raw(), 4, high_byte), SourceMode::Rgba16),
        DynamicImage::ImageLumaA16(b) => (gray_to_rgb(b.as_raw(), 2, high_byte), SourceMode::GrayAlpha16),
        // PIL opens 16-bit grayscale as `I;16`; `convert("RGB")` clips it to 0..=255 (`I16_RGB`).
        DynamicImage::ImageLuma16(b) => {
            tracing::warn!(
                file = %origin.display(),
                "16-bit grayscale image: values above 255 are clipped to 255, as PIL's convert(\"RGB\") does"
            );
            (gray_to_rgb(b.as_raw(), 1, |v: u16| v.min(255) as u8), SourceMode::Gray16)
        }
        other => return Err(err(format!("unsupported pixel layout {:?}", other.color()))),
    };
    Ok((RgbImage { width: w, height: h, pixels }, mode))
}

/// A PNG `PLTE` chunk the specification forbids (a length that is not a multiple of 3, or more
/// than 256 entries), found by walking the chunks before the image data; `None` when there is none.
fn png_palette_problem(bytes: &[u8]) -> Option<String> {
    let mut i = 8; // after the signature
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        let kind = &bytes[i + 4..i + 8];
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        if kind == b"PLTE" && (!len.is_multiple_of(3) || len == 0 || len > 3 * 256) {
            return Some(format!("invalid PLTE chunk of {len} bytes (expected 3 to 768, a multiple of 3)"));
        }
        i = i.checked_add(12)?.checked_add(len)?;
    }
    None
}

/// Whether a JPEG stream has an end-of-image marker after its first top-level start-of-scan:
/// header segments are skipped by their lengths (so an EXIF thumbnail's own markers do not
/// count), then `FF D9` must follow somewhere in the entropy-coded data.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD9 {
            return true; // EOI before any scan (no image data; the decoder will say so)
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2; // markers without a length
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = (i + 2 + len).min(bytes.len());
            return bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + len;
    }
    false
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// `channels`-channel pixels (RGB or RGBA) to RGB, each value through `f`.
fn drop_alpha<T: Copy>(raw: &[T], channels: usize, f: impl Fn(T) -> u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() / channels * 3);
    for px in raw.chunks_exact(channels) {
        out.extend([f(px[0]), f(px[1]), f(px[2])]);
    }
    out
}

/// `channels`-channel gray pixels (L or LA) to RGB, the gray value through `f`.
fn gray_to_rgb<T: Copy>(raw: &[T], channels: usize, f: impl Fn(T) -> u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() / channels * 3);
    for px in raw.chunks_exact(channels) {
        let v = f(px[0]);
        out.extend([v, v, v]);
    }
    out
}

/// Reads and decodes an image file (see [`decode_rgb`]).
pub fn open_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    decode_rgb(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG whose header says `w` x `h` grayscale pixels, with (almost) no pixel data.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        fn crc32(data: &[u8]) -> u32 {
            let mut c = 0xFFFF_FFFFu32;
            for &b in data {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                }
            }
            !c
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], body: &[u8]| {
            out.extend((body.len() as u32).to_be_bytes());
            let mut typed = kind.to_vec();
            typed.extend(body);
            out.extend(&typed);
            out.extend(crc32(&typed).to_be_bytes());
        };
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(b"IEND", &[]);
        out
    }

    #[test]
    fn images_above_the_pixel_limit_are_refused_from_their_header() {
        let bomb = png_header(20_000, 20_000);
        assert_eq!(image_dimensions(&bomb), Some((20_000, 20_000)));
        let t = std::time::Instant::now();
        let e = decode_rgb(&bomb, Path::new("bomb.png")).unwrap_err().to_string();
        assert!(e.contains("bomb.png") && e.contains("MAX_IMAGE_PIXELS"), "{e}");
        assert!(t.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn decode_errors_name_the_file() {
        let p = Path::new("dir/broken.png");
        for bytes in [&b""[..], b"not an image at all", &b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..]] {
            let msg = decode_rgb(bytes, p).unwrap_err().to_string();
            assert!(msg.contains("dir/broken.png"), "{msg}");
        }
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        let msg = decode_rgb(gif, p).unwrap_err().to_string();
        assert!(msg.contains("not supported") || msg.contains("not a PNG"), "{msg}");
    }

    #[test]
    fn decodes_png_modes_as_pil_converts_them() {
        use image::{ImageBuffer, Luma, LumaA, Rgba};
        let encode = |img: DynamicImage| {
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
            out
        };
        let p = Path::new("x.png");
        let gray = ImageBuffer::from_fn(3, 2, |x, y| Luma([(x * 40 + y) as u8]));
        let (rgb, mode) = decode_rgb_with_mode(&encode(DynamicImage::ImageLuma8(gray)), p).unwrap();
        assert_eq!(mode, SourceMode::Gray);
        assert_eq!(rgb.pixel(2, 1), [81, 81, 81]);
        let rgba = ImageBuffer::from_fn(2, 2, |x, _| Rgba([10, 20, 30, (x * 100) as u8]));
        let (rgb, mode) = decode_rgb_with_mode(&encode(DynamicImage::ImageRgba8(rgba)), p).unwrap();
        assert_eq!(mode, SourceMode::Rgba);
        assert_eq!(rgb.pixel(0, 0), [10, 20, 30]); // alpha dropped, not composited
        let g16 = ImageBuffer::from_fn(2, 1, |x, _| Luma([[200u16, 1000][x as usize]]));
        let (rgb, mode) = decode_rgb_with_mode(&encode(DynamicImage::ImageLuma16(g16)), p).unwrap();
        assert_eq!(mode, SourceMode::Gray16);
        assert_eq!(rgb.pixels, vec![200, 200, 200, 255, 255, 255]); // PIL clips I;16
        let la16 = ImageBuffer::from_fn(1, 1, |_, _| LumaA([0x1234u16, 0xffff]));
        let (rgb, _) = decode_rgb_with_mode(&encode(DynamicImage::ImageLumaA16(la16)), p).unwrap();
        assert_eq!(rgb.pixels, vec![0x12, 0x12, 0x12]);
    }

    #[test]
    fn truncated_png_is_an_error() {
        use image::{ImageBuffer, Rgb};
        let img = ImageBuffer::from_fn(64, 64, |x, y| Rgb([(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        let cut = &bytes[..bytes.len() / 2];
        let msg = decode_rgb(cut, Path::new("half.png")).unwrap_err().to_string();
        assert!(msg.contains("half.png") && msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn truncated_jpeg_is_an_error() {
        use image::{ImageBuffer, Rgb};
        let img = ImageBuffer::from_fn(64, 48, |x, y| Rgb([(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg).ok();
        // Without the "jpeg" encoder in this build, use a hand-made header instead.
        if bytes.is_empty() {
            return;
        }
        assert!(decode_rgb(&bytes, Path::new("ok.jpg")).is_ok());
        for cut in [bytes.len() - 2, bytes.len() * 2 / 3, 300] {
            let msg = decode_rgb(&bytes[..cut], Path::new("cut.jpg")).unwrap_err().to_string();
            assert!(msg.contains("cut.jpg") && msg.contains("truncated"), "{cut}: {msg}");
        }
    }
}
