//! Training-time image augmentation as torchvision's `RandomResizedCrop` +
//! `RandomHorizontalFlip` compute it on a PIL image, seeded per image and epoch.
//!
//! [`RandomResizedCrop::params`] is torchvision's `get_params` (ten tries at a random area in
//! `scale` of the image and a log-uniform aspect ratio in `ratio`, then the central crop clamped
//! to `ratio`); the crop is then resized to `size x size` with PIL's filter
//! ([`ft_hub::image::resize`], as `F.resized_crop` on a PIL image crops, then resizes). The
//! random numbers come from ft's own generator ([`ft_hub::rng::Pcg64`]), not torch's: the same
//! seed gives the same crops in every ft run, but not the crops a Python run draws.
//!
//! [`Augmentation`] chains the two and normalises. Each image's draws depend only on
//! `(seed, epoch, image index)` ([`Augmentation::rng`]), so decoding on several threads, in any
//! order, gives the same batches, and a resumed run draws what an uninterrupted one does.
//! Images smaller than the crop are upscaled (the crop is always resized to `size`).

use ft_hub::image::{ImageTransform, Interpolation, RgbImage, resize};
use ft_hub::rng::Pcg64;

/// `transforms.RandomResizedCrop(size, scale, ratio)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomResizedCrop {
    /// Output side (square output).
    pub size: usize,
    /// Range of the crop's area as a fraction of the image's (torchvision: `(0.08, 1.0)`).
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio w/h (torchvision: `(3/4, 4/3)`).
    pub ratio: [f64; 2],
    /// Filter of the resize.
    pub interpolation: Interpolation,
}

/// A crop box: `left`, `top`, `width`, `height` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First column.
    pub left: usize,
    /// First row.
    pub top: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// A uniform draw in `[lo, hi)`.
fn uniform(rng: &mut Pcg64, lo: f64, hi: f64) -> f64 {
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    lo + (hi - lo) * u
}

/// Python's `round` (half to even) of a non-negative value, as an integer.
fn round_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc() - 0.5).abs() < f64::EPSILON && (r as i64) % 2 != 0 { r - 1.0 } else { r };
    r.max(0.0) as usize
}

impl RandomResizedCrop {
    /// torchvision's defaults for `size`: scale `(0.08, 1.0)`, ratio `(3/4, 4/3)`, bilinear.
    pub fn new(size: usize) -> Self {
        Self { size, scale: [0.08, 1.0], ratio: [3.0 / 4.0, 4.0 / 3.0], interpolation: Interpolation::Bilinear }
    }

    /// torchvision's `RandomResizedCrop.get_params` for an image of `width x height`.
    pub fn params(&self, width: usize, height: usize, rng: &mut Pcg64) -> CropBox {
        let area = (width * height) as f64;
        let (log_lo, log_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale[0], self.scale[1]);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let w = round_even((target_area * aspect).sqrt());
            let h = round_even((target_area / aspect).sqrt());
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.interval((height - h) as u64) as usize;
                let left = rng.interval((width - w) as u64) as usize;
                return CropBox { left, top, width: w, height: h };
            }
        }
        // Fallback: the central crop, its aspect ratio clamped to `ratio`.
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio[0] {
            (width, round_even(width as f64 / self.ratio[0]).clamp(1, height))
        } else if in_ratio > self.ratio[1] {
            (round_even(height as f64 * self.ratio[1]).clamp(1, width), height)
        } else {
            (width, height)
        };
        CropBox { left: (width - w) / 2, top: (height - h) / 2, width: w, height: h }
    }

    /// Crops `image` to a random box and resizes the crop to `size x size`.
    pub fn apply(&self, image: &RgbImage, rng: &mut Pcg64) -> RgbImage {
        let b = self.params(image.width, image.height, rng);
        resize(&crop(image, b), self.size, self.size, self.interpolation)
    }
}

/// The pixels of `b` (which must lie inside `image`).
pub fn crop(image: &RgbImage, b: CropBox) -> RgbImage {
    let mut pixels = Vec::with_capacity(b.width * b.height * 3);
    for y in b.top..b.top + b.height {
        let row = (y * image.width + b.left) * 3;
        pixels.extend_from_slice(&image.pixels[row..row + b.width * 3]);
    }
    RgbImage { width: b.width, height: b.height, pixels }
}

/// The image mirrored left to right (`F.hflip`).
pub fn hflip(image: &RgbImage) -> RgbImage {
    let mut pixels = Vec::with_capacity(image.pixels.len());
    for row in image.pixels.chunks_exact(image.width * 3) {
        for px in row.chunks_exact(3).rev() {
            pixels.extend_from_slice(px);
        }
    }
    RgbImage { width: image.width, height: image.height, pixels }
}

/// The training transform: `RandomResizedCrop`, `RandomHorizontalFlip(flip_probability)`,
/// then scaling and normalising with `normalize`'s mean and std.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    /// The random crop.
    pub crop: RandomResizedCrop,
    /// Probability of mirroring an image (torchvision: 0.5).
    pub flip_probability: f64,
    /// Mean and std (its resize and crop are not used).
    pub normalize: ImageTransform,
    /// The run's seed.
    pub seed: u64,
}

impl Augmentation {
    /// The generator of image `index`'s draws in `epoch`.
    pub fn rng(&self, epoch: usize, index: usize) -> Pcg64 {
        Pcg64::from_seed(((self.seed as u128) << 64) | ((epoch as u128) << 40) | index as u128)
    }

    /// The transformed image, channels first.
    ///
    /// # Shapes
    /// - output: `3 * size * size` values, laid out `[3, size, size]`
    pub fn apply(&self, image: &RgbImage, epoch: usize, index: usize) -> Vec<f32> {
        let mut rng = self.rng(epoch, index);
        let mut out = self.crop.apply(image, &mut rng);
        if uniform(&mut rng, 0.0, 1.0) < self.flip_probability {
            out = hflip(&out);
        }
        self.normalize.normalize(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> RgbImage {
        let pixels = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]))
            .collect();
        RgbImage { width: w, height: h, pixels }
    }

    #[test]
    fn crops_stay_inside_and_follow_scale_and_ratio() {
        let c = RandomResizedCrop::new(32);
        let mut rng = Pcg64::from_seed(7);
        for _ in 0..500 {
            let b = c.params(40, 30, &mut rng);
            assert!(b.width >= 1 && b.height >= 1 && b.left + b.width <= 40 && b.top + b.height <= 30, "{b:?}");
            let area = (b.width * b.height) as f64 / 1200.0;
            assert!(area <= 1.0 + 1e-9, "{b:?}");
        }
        // A very wide image always falls back to the central crop clamped to 4/3.
        let b = c.params(100, 2, &mut rng);
        assert_eq!((b.width, b.height), (3, 2));
        assert_eq!(b.left, 48);
    }

    #[test]
    fn same_seed_epoch_and_index_give_the_same_pixels() {
        let a = Augmentation {
            crop: RandomResizedCrop::new(16),
            flip_probability: 0.5,
            normalize: ImageTransform::imagenet(),
            seed: 3,
        };
        let img = gradient(40, 30);
        assert_eq!(a.apply(&img, 0, 5), a.apply(&img, 0, 5));
        assert_ne!(a.apply(&img, 0, 5), a.apply(&img, 1, 5));
        assert_eq!(a.apply(&img, 0, 5).len(), 3 * 16 * 16);
        // Small images are upscaled to the crop size.
        assert_eq!(a.apply(&gradient(4, 3), 0, 0).len(), 3 * 16 * 16);
    }

    #[test]
    fn hflip_mirrors_rows() {
        let img = gradient(3, 2);
        let f = hflip(&img);
        assert_eq!(f.pixel(0, 1), img.pixel(2, 1));
        assert_eq!(hflip(&f), img);
        let b = crop(&img, CropBox { left: 1, top: 1, width: 2, height: 1 });
        assert_eq!(b.pixels, [img.pixel(1, 1), img.pixel(2, 1)].concat());
    }
}
