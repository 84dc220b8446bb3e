//! Image preprocessing exactly as torchvision does it on a PIL image — pure Rust, no decoder.
//!
//! Shared by the models (a ResNet's `pretrained_cfg` describes its [`ImageTransform`]) and the
//! data crate (which decodes files into [`RgbImage`]s: `ft_data::vision`).
//!
//! - [`resize`]: PIL's `ImagingResample` (`Image.resize` with `BILINEAR` or `BICUBIC`): a
//!   separable convolution whose filter support is widened by the downscale factor
//!   (antialiasing), fixed-point coefficients with 22 fractional bits, a horizontal pass rounded
//!   to 8 bits, then a vertical pass.
//! - [`shorter_side_size`]: torchvision's `Resize(int)` output size; [`center_crop`]:
//!   torchvision's `center_crop` (Python's round-half-to-even offsets, zero padding when the crop
//!   is larger than the image).
//! - [`ImageTransform::normalize`]: `pil_to_tensor`, `convert_image_dtype(float)` (divide by 255)
//!   and `normalize(mean, std)`, in f32 like torch.

use burn::tensor::{Device, Tensor, TensorData};

use crate::{HubError, Result};

/// An 8-bit RGB image, row-major, 3 bytes per pixel (`H x W x 3`, as `numpy.asarray(pil_image)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes: R, G, B of each pixel, row after row.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// An image from its pixels; fails unless `pixels` holds `width * height * 3` bytes.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        if pixels.len() != width * height * 3 {
            return Err(HubError::Input(format!(
                "RgbImage::new: {} bytes for a {width}x{height} RGB image (expected {})",
                pixels.len(),
                width * height * 3
            )));
        }
        Ok(Self { width, height, pixels })
    }

    /// The pixel at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// Resampling filters of PIL's `Image.resize`, by the names timm's `pretrained_cfg` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// `Image.BILINEAR` (triangle filter, support 1): torchvision's default.
    Bilinear,
    /// `Image.BICUBIC` (Keys cubic with a = -0.5, support 2): timm's usual default.
    Bicubic,
}

impl Interpolation {
    /// The names accepted by [`FromStr`](std::str::FromStr), for messages.
    pub const NAMES: &'static str = "bilinear, bicubic";

    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

impl std::str::FromStr for Interpolation {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bilinear" => Ok(Self::Bilinear),
            "bicubic" => Ok(Self::Bicubic),
            other => Err(format!("interpolation '{other}' is not supported (expected {})", Self::NAMES)),
        }
    }
}

/// PIL's fixed-point precision for 8-bit images (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// One output pixel's taps: the first input index and the weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// PIL's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the box `[0, in_size]`.
/// Only the output indices in `range` are computed.
fn coefficients(in_size: usize, out_size: usize, filter: Interpolation, range: std::ops::Range<usize>) -> Vec<Taps> {
    // `(double)(in1 - in0) / outSize`, with the box edges as C floats.
    let scale = (in_size as f32) as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    range
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let mut k: Vec<f64> =
                (0..xmax.max(0)).map(|x| filter.weight(((x + xmin) as f64 - center + 0.5) * ss)).collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                for w in &mut k {
                    *w /= ww;
                }
            }
            let one = (1u64 << PRECISION_BITS) as f64;
            let weights =
                k.iter().map(|&w| if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 }).collect();
            Taps { first: xmin as usize, weights }
        })
        .collect()
}

/// PIL's `clip8`: a fixed-point sum back to a byte.
fn clip8(v: i64) -> u8 {
    if v >= 1i64 << (PRECISION_BITS + 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes as PIL's `Image.resize((width, height), filter)` resizes an RGB image: horizontal pass
/// first (rounded to 8 bits), then vertical; a pass whose size does not change is skipped.
pub fn resize(image: &RgbImage, width: usize, height: usize, filter: Interpolation) -> RgbImage {
    resize_window(image, width, height, filter, 0..width, 0..height)
}

/// The columns `xs` and rows `ys` of [`resize`]`(image, width, height, filter)`, computed
/// without the rest: the same bytes as resizing whole and cropping, in memory and time
/// proportional to the window. (A 20000 × 2 image resized to a shorter side of 256 would be
/// 2,560,000 × 256 pixels whole; its 224 × 224 center crop is all a model sees.)
pub fn resize_window(
    image: &RgbImage,
    width: usize,
    height: usize,
    filter: Interpolation,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
) -> RgbImage {
    let (out_w, out_h) = (xs.len(), ys.len());
    if width == 0 || height == 0 || image.width == 0 || image.height == 0 || out_w == 0 || out_h == 0 {
        return RgbImage { width: out_w, height: out_h, pixels: vec![0; out_w * out_h * 3] };
    }
    let vertical = (height != image.height).then(|| coefficients(image.height, height, filter, ys.clone()));
    // Only the source rows the vertical pass reads are resampled horizontally.
    let (row_first, row_last) = match &vertical {
        Some(v) => (v.first().map_or(0, |t| t.first), v.last().map_or(0, |t| t.first + t.weights.len())),
        None => (ys.start, ys.end),
    };
    let horizontal = (width != image.width).then(|| coefficients(image.width, width, filter, xs.clone()));
    let rows = row_last.saturating_sub(row_first);
    let mut mid = vec![0u8; rows * out_w * 3];
    for r in 0..rows {
        let src = &image.pixels[(row_first + r) * image.width * 3..(row_first + r + 1) * image.width * 3];
        let dst = &mut mid[r * out_w * 3..(r + 1) * out_w * 3];
        match &horizontal {
            Some(taps) => {
                for (x, taps) in taps.iter().enumerate() {
                    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                    for (i, &k) in taps.weights.iter().enumerate() {
                        let p = &src[(taps.first + i) * 3..(taps.first + i) * 3 + 3];
                        for c in 0..3 {
                            acc[c] += p[c] as i64 * k as i64;
                        }
                    }
                    for c in 0..3 {
                        dst[x * 3 + c] = clip8(acc[c]);
                    }
                }
            }
            None => dst.copy_from_slice(&src[xs.start * 3..xs.end * 3]),
        }
    }
    let Some(vertical) = vertical else {
        return RgbImage { width: out_w, height: out_h, pixels: mid };
    };
    let stride = out_w * 3;
    let mut out = vec![0u8; out_h * stride];
    for (y, taps) in vertical.iter().enumerate() {
        let dst = &mut out[y * stride..(y + 1) * stride];
        for (x, d) in dst.iter_mut().enumerate() {
            let mut acc = 1i64 << (PRECISION_BITS - 1);
            for (i, &k) in taps.weights.iter().enumerate() {
                acc += mid[(taps.first + i - row_first) * stride + x] as i64 * k as i64;
            }
            *d = clip8(acc);
        }
    }
    RgbImage { width: out_w, height: out_h, pixels: out }
}

/// The `(width, height)` torchvision's `Resize(size)` gives an image: the shorter side becomes
/// `size`, the longer `int(size * long / short)` (truncated, as Python's `int`).
pub fn shorter_side_size(width: usize, height: usize, size: usize) -> (usize, usize) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = ((size * long) as f64 / short.max(1) as f64) as usize;
    if width <= height { (size, new_long) } else { (new_long, size) }
}

/// Python's `int(round(diff / 2.0))` (round half to even) for a non-negative `diff`.
fn half_round_even(diff: usize) -> usize {
    let half = diff / 2;
    if diff % 2 == 1 && half % 2 == 1 { half + 1 } else { half }
}

/// torchvision's `center_crop(img, [height, width])`: the offset is `round((size - crop) / 2)`
/// with Python's rounding; a crop larger than the image pads it with zeros first
/// (`(crop - size) // 2` before, the rest after).
pub fn center_crop(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    // Per axis: source index of output index 0 (negative inside the zero padding).
    let offset = |size: usize, crop: usize| -> i64 {
        if crop > size { -(((crop - size) / 2) as i64) } else { half_round_even(size - crop) as i64 }
    };
    let (ox, oy) = (offset(image.width, width), offset(image.height, height));
    let mut pixels = vec![0u8; width * height * 3];
    for y in 0..height {
        let sy = y as i64 + oy;
        if sy < 0 || sy >= image.height as i64 {
            continue;
        }
        for x in 0..width {
            let sx = x as i64 + ox;
            if sx < 0 || sx >= image.width as i64 {
                continue;
            }
            let s = (sy as usize * image.width + sx as usize) * 3;
            pixels[(y * width + x) * 3..(y * width + x) * 3 + 3].copy_from_slice(&image.pixels[s..s + 3]);
        }
    }
    RgbImage { width, height, pixels }
}

/// An evaluation transform: resize the shorter side, center-crop, scale to [0, 1], normalise —
/// torchvision's `ImageClassification` preset and timm's eval transform with
/// `crop_mode="center"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    /// The shorter side after resizing (torchvision's `resize_size`; timm's
    /// `floor(crop / crop_pct)`).
    pub resize: usize,
    /// Crop `[height, width]`.
    pub crop: [usize; 2],
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by.
    pub std: [f32; 3],
}

impl ImageTransform {
    /// `ResNet18_Weights.IMAGENET1K_V1.transforms()`: resize 256 (bilinear), crop 224, ImageNet
    /// mean `[0.485, 0.456, 0.406]` and std `[0.229, 0.224, 0.225]`.
    pub fn imagenet() -> Self {
        Self {
            resize: 256,
            crop: [224, 224],
            interpolation: Interpolation::Bilinear,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Resize and center-crop: the 8-bit image `numpy.asarray` would show after
    /// `CenterCrop(Resize(img))`.
    pub fn resize_and_crop(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = shorter_side_size(image.width, image.height, self.resize);
        // Only the crop window is resampled (an axis shorter than the crop is padded by
        // `center_crop`): bounded work for any aspect ratio.
        let window = |size: usize, crop: usize| {
            if crop <= size {
                let start = half_round_even(size - crop);
                start..start + crop
            } else {
                0..size
            }
        };
        let resized = resize_window(image, w, h, self.interpolation, window(w, self.crop[1]), window(h, self.crop[0]));
        center_crop(&resized, self.crop[1], self.crop[0])
    }

    /// Scales a cropped image to [0, 1] and normalises it, channels first (`pil_to_tensor`,
    /// `convert_image_dtype(float)`, `normalize`).
    ///
    /// # Shapes
    /// - output: `3 * height * width` values, laid out `[3, height, width]`
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let plane = image.width * image.height;
        let mut out = vec![0f32; 3 * plane];
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (px[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    /// The whole transform.
    ///
    /// # Shapes
    /// - output: `[3, crop[0], crop[1]]`, flattened
    pub fn apply(&self, image: &RgbImage) -> Vec<f32> {
        self.normalize(&self.resize_and_crop(image))
    }

    /// Transforms a batch of images into one tensor.
    ///
    /// # Shapes
    /// - output: `[images.len(), 3, crop[0], crop[1]]`
    pub fn batch(&self, images: &[RgbImage], device: &Device) -> Tensor<4> {
        let mut values = Vec::with_capacity(images.len() * 3 * self.crop[0] * self.crop[1]);
        for image in images {
            values.extend(self.apply(image));
        }
        Tensor::from_data(TensorData::new(values, [images.len(), 3, self.crop[0], self.crop[1]]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let mut pixels = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                pixels.extend([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, ((x * 7 + y * 13) % 256) as u8]);
            }
        }
        RgbImage { width: w, height: h, pixels }
    }

    /// The windowed resize gives the bytes of resizing whole and cropping, for every shape
    /// (wider, taller, smaller than the crop, unchanged axes), and an elongated image costs only
    /// its window.
    #[test]
    fn resizing_only_the_crop_window_gives_the_same_pixels() {
        for (w, h) in [(500, 375), (375, 500), (256, 256), (300, 100), (40, 30), (224, 600), (1000, 7), (256, 300)] {
            for interpolation in [Interpolation::Bilinear, Interpolation::Bicubic] {
                let t = ImageTransform { interpolation, ..ImageTransform::imagenet() };
                let image = gradient(w, h);
                let (rw, rh) = shorter_side_size(w, h, t.resize);
                let whole = center_crop(&resize(&image, rw, rh, interpolation), t.crop[1], t.crop[0]);
                assert_eq!(t.resize_and_crop(&image), whole, "{w}x{h} {interpolation:?}");
            }
        }
        let elongated = gradient(20_000, 2);
        let out = ImageTransform::imagenet().resize_and_crop(&elongated);
        assert_eq!((out.width, out.height), (224, 224));
    }

    #[test]
    fn shorter_side_as_torchvision() {
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(256, 256, 256), (256, 256));
        // int(256 * 333 / 100) = int(852.48) = 852
        assert_eq!(shorter_side_size(100, 333, 256), (256, 852));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        // Python: round(0.5) = 0, round(1.5) = 2, round(2.5) = 2, round(3.5) = 4.
        assert_eq!([1, 3, 5, 7, 8].map(half_round_even), [0, 2, 2, 4, 4]);
        let img = gradient(7, 5);
        let c = center_crop(&img, 4, 4);
        // width: diff 3 -> offset 2; height: diff 1 -> offset 0
        assert_eq!(c.pixel(0, 0), img.pixel(2, 0));
        assert_eq!(c.pixel(3, 3), img.pixel(5, 3));
    }

    #[test]
    fn crop_larger_than_image_pads_with_zeros() {
        let img = gradient(2, 3);
        let c = center_crop(&img, 5, 4);
        // left pad (5-2)//2 = 1, top pad (4-3)//2 = 0
        assert_eq!(c.pixel(0, 0), [0, 0, 0]);
        assert_eq!(c.pixel(1, 0), img.pixel(0, 0));
        assert_eq!(c.pixel(2, 2), img.pixel(1, 2));
        assert_eq!(c.pixel(4, 3), [0, 0, 0]);
    }

    #[test]
    fn resize_keeps_constant_images_constant() {
        let img = RgbImage { width: 37, height: 23, pixels: [10u8, 200, 255].repeat(37 * 23) };
        for filter in [Interpolation::Bilinear, Interpolation::Bicubic] {
            for (w, h) in [(100, 61), (5, 3), (37, 50), (12, 23)] {
                let r = resize(&img, w, h, filter);
                assert_eq!((r.width, r.height), (w, h));
                assert!(r.pixels.chunks(3).all(|p| p == [10, 200, 255]), "{filter:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn resize_same_size_is_identity_and_halving_averages_pairs() {
        let img = gradient(8, 6);
        assert_eq!(resize(&img, 8, 6, Interpolation::Bilinear), img);
        // Halving with the antialiased triangle filter: support 2, weights 1/8, 3/8, 3/8, 1/8
        // centred between two pixels; at the left edge the taps are 3/8, 3/8, 1/8 renormalised.
        let row =
            RgbImage { width: 4, height: 1, pixels: [0u8, 80, 160, 240].iter().flat_map(|&v| [v, v, v]).collect() };
        let r = resize(&row, 2, 1, Interpolation::Bilinear);
        // (0*3 + 80*3 + 160*1) / 7 = 57.1 -> 57; (80*1 + 160*3 + 240*3) / 7 = 182.9 -> 183
        assert_eq!(r.pixels, vec![57, 57, 57, 183, 183, 183]);
    }

    #[test]
    fn normalize_is_channels_first() {
        let t = ImageTransform { resize: 2, crop: [1, 2], ..ImageTransform::imagenet() };
        let img = RgbImage { width: 2, height: 1, pixels: vec![255, 0, 0, 0, 255, 0] };
        let v = t.normalize(&img);
        assert_eq!(v.len(), 6);
        assert!((v[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[1] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[3] - (1.0 - 0.456) / 0.224).abs() < 1e-6);
    }

    #[test]
    fn transform_output_shape() {
        let t = ImageTransform::imagenet();
        let img = gradient(300, 200);
        let crop = t.resize_and_crop(&img);
        assert_eq!((crop.width, crop.height), (224, 224));
        assert_eq!(t.apply(&img).len(), 3 * 224 * 224);
    }
}
