//! Dropout with a fast, deterministic mask generator, fused into one autodiff node on flex.
//!
//! Burn's `Dropout` draws its Bernoulli mask element by element from a ChaCha generator on one
//! thread; in training all-MiniLM-L6-v2 on AG News that was ~40% of the forward pass (perf: 10%
//! of all CPU time in `ElementRandom::random`, `chacha20` and `Distribution::sampler`). [`dropout`]
//! has the same semantics — inactive outside training, outside autodiff and at p = 0; kept values
//! scaled by 1/(1−p) — but takes only one 64-bit seed from Burn's device generator (so
//! `device.seed(..)` still makes runs reproducible and resumable) and expands it with SplitMix64
//! in fixed 64 Ki blocks across threads: the mask depends on the seed and the shape only, not on
//! the number of threads.
//!
//! **One node on flex** ([`DropoutOps`], a Burn backend extension as [`super::fused`]): the
//! forward multiplies each block of the input by its mask as the mask is drawn — no mask tensor,
//! no second pass — and the node keeps only the seed: its backward draws the same mask again and
//! multiplies the output gradient by it (the same op on `dy`). A mask tensor built on the host and
//! multiplied by Burn's autodiff `mul` (what ran before) cost a full-size copy into a tensor, the
//! multiply, and the mask held until the backward pass: 20 ms per `[16, 12, 96, 96]` attention
//! dropout against 3–4 ms now (BENCHMARKS.md). The products are the same (`x · (1/keep)` or
//! `x · 0` per element), so the results are bit for bit those of the unfused form.
//!
//! The mask is drawn on the host, which on a GPU would cost a read-back of the seed and an upload
//! of the mask per call: there (any device but Burn's flex CPU backend) [`dropout`] is Burn's
//! own `Dropout::forward`, drawn on the device. Every dropout in ft goes through this function —
//! the models', the PEFT layers' and the frozen-encoder head's — so one RNG path serves them all.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::backend::{Autodiff, Backend, backend_extension, tensor::FloatTensor};
use burn::nn::Dropout;
use burn::tensor::{Distribution, Tensor, TensorData};
use rayon::prelude::*;

use super::is_flex;

const BLOCK: usize = 1 << 16;

/// Applies `layer`'s dropout to `input` (any rank; the mask has `input`'s shape).
pub fn dropout<const D: usize>(layer: &Dropout, input: Tensor<D>) -> Tensor<D> {
    if !layer.training.is_enabled() || !input.device().is_autodiff() || layer.prob == 0.0 {
        return input;
    }
    let device = input.device();
    if !is_flex(&device) {
        return layer.forward(input);
    }
    let keep = 1.0 - layer.prob;
    if keep <= 0.0 {
        return input.zeros_like();
    }
    let shape = input.shape();
    let seed = draw_seed(&device);
    #[cfg(feature = "flex")]
    if input.dtype() == burn::tensor::DType::F32 {
        return Tensor::from_dispatch(<burn::backend::Dispatch as DropoutOps>::dropout_seeded(
            input.into_dispatch(),
            keep,
            seed,
        ));
    }
    let mask = mask_values(shape.num_elements(), keep, seed);
    input * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// Dropout by a seeded mask, as one autodiff node that keeps only the seed.
///
/// Call it through [`dropout`], which draws the seed and picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait DropoutOps: Backend {
    /// `x ⊙ mask_values(n, keep, seed)`, element `i` of `x` in row-major order times mask value
    /// `i`; any shape → the same shape. Its own gradient: the same op on the output gradient.
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn dropout_seeded(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self>;
}

impl<B: Backend + DropoutOps, C: CheckpointStrategy> DropoutOps for Autodiff<B, C> {
    fn dropout_seeded(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        let prep = (DropoutBackward { keep, seed }).prepare::<C>([x.node()]).compute_bound();
        prep.stateless(B::dropout_seeded(x.into_primitive(), keep, seed))
    }
}

/// The backward step of [`DropoutOps::dropout_seeded`]: the output gradient times the same mask.
#[derive(Debug)]
struct DropoutBackward {
    keep: f64,
    seed: u64,
}

impl<B: Backend + DropoutOps> Backward<B, 1> for DropoutBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::dropout_seeded(dy, self.keep, self.seed));
    }
}

/// One 64-bit seed from Burn's generator for `device` (two uniform draws of 32 bits each).
fn draw_seed(device: &burn::tensor::Device) -> u64 {
    let draws = Tensor::<1>::random([2], Distribution::Uniform(0.0, 1.0), device).into_data();
    let v = draws.iter::<f64>().collect::<Vec<_>>();
    let hi = (v[0] * 4_294_967_296.0) as u64;
    let lo = (v[1] * 4_294_967_296.0) as u64;
    (hi << 32) ^ lo
}

/// The scale of kept values and the 32-bit threshold below which a draw keeps its value.
fn scale_and_threshold(keep: f64) -> (f32, u64) {
    ((1.0 / keep) as f32, (keep * 4_294_967_296.0).min(4_294_967_295.0) as u64)
}

/// The mask values of block `block` (elements `block · BLOCK ..`), into `out` (at most `BLOCK`
/// long): `scale` where a uniform 32-bit draw is below `threshold`, else 0. Pair `j` of the
/// block takes the two halves of draw `j` of a SplitMix64 stream started at
/// `seed ^ block · 0xD1B5_4A32_D192_ED03`; SplitMix64's state after `j + 1` steps is the start
/// plus `(j + 1)·γ`, so each draw is computed from its index (no chain between draws).
fn mask_block(seed: u64, block: usize, threshold: u64, scale: f32, out: &mut [f32]) {
    let start = seed ^ (block as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let draw = |j: usize| mix64(start.wrapping_add((j as u64 + 1).wrapping_mul(GAMMA)));
    let value = |u: u64| if u < threshold { scale } else { 0.0 };
    let last = out.len() / 2;
    let mut pairs = out.chunks_exact_mut(2);
    for (j, pair) in pairs.by_ref().enumerate() {
        let r = draw(j);
        pair[0] = value(r & 0xFFFF_FFFF);
        pair[1] = value(r >> 32);
    }
    if let [v] = pairs.into_remainder() {
        *v = value(draw(last) & 0xFFFF_FFFF);
    }
}

/// `n` mask values: `1/keep` with probability `keep`, else 0.
pub fn mask_values(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    let (scale, threshold) = scale_and_threshold(keep);
    let mut out = vec![0f32; n];
    out.par_chunks_mut(BLOCK).enumerate().for_each(|(block, chunk)| mask_block(seed, block, threshold, scale, chunk));
    out
}

/// `x[i] · mask_values(x.len(), keep, seed)[i]` for every `i`, block by block across threads.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
fn apply_mask(x: &[f32], keep: f64, seed: u64) -> Vec<f32> {
    let (scale, threshold) = scale_and_threshold(keep);
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK)).enumerate().for_each(|(block, (out, x))| {
        mask_block(seed, block, threshold, scale, out);
        out.iter_mut().zip(x).for_each(|(m, &x)| *m *= x);
    });
    out
}

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function of a state.
#[inline(always)]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::{Flex, TensorMetadata, ops::FloatTensorOps, tensor::FloatTensor};
    use burn::tensor::TensorData;

    use super::{DropoutOps, apply_mask, mask_values};
    use crate::ops::fused::f32_tensor;

    impl DropoutOps for Flex {
        fn dropout_seeded(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
            let shape = x.shape();
            let x = x.to_contiguous();
            match x.as_slice::<f32>() {
                Some(values) => f32_tensor(apply_mask(values, keep, seed), shape),
                // Not f32 (`dropout` routes only f32 here): Burn's multiply by the mask.
                None => {
                    let mask = mask_values(shape.num_elements(), keep, seed);
                    let mask = Flex::float_from_data(TensorData::new(mask, shape), &Default::default());
                    Flex::float_mul(x, mask)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;
    use burn::tensor::Device;

    /// The mask as the sequential SplitMix64 loop drew it before the counter form: the same
    /// values, bit for bit.
    #[test]
    fn counter_form_equals_the_sequential_stream() {
        fn sequential(n: usize, keep: f64, seed: u64) -> Vec<f32> {
            let (scale, threshold) = scale_and_threshold(keep);
            let mut out = vec![0f32; n];
            for (block, chunk) in out.chunks_mut(BLOCK).enumerate() {
                let mut state = seed ^ (block as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
                for pair in chunk.chunks_mut(2) {
                    state = state.wrapping_add(GAMMA);
                    let r = mix64(state);
                    for (k, v) in pair.iter_mut().enumerate() {
                        let u = (r >> (32 * k)) & 0xFFFF_FFFF;
                        *v = if u < threshold { scale } else { 0.0 };
                    }
                }
            }
            out
        }
        for (n, keep, seed) in [(3 * BLOCK + 7, 0.9, 5u64), (11, 0.5, u64::MAX), (BLOCK, 0.3, 0)] {
            assert_eq!(mask_values(n, keep, seed), sequential(n, keep, seed));
            let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 100.0).collect();
            let want: Vec<f32> = x.iter().zip(sequential(n, keep, seed)).map(|(x, m)| x * m).collect();
            assert_eq!(apply_mask(&x, keep, seed), want);
        }
    }

    /// Mask values pinned from an independent SplitMix64 (Python, arbitrary-precision integers)
    /// over the same blocks: the first 12 of block 0 and the 12 of block 1 (n = 2^16 + 12,
    /// keep 0.5, seed 12345), so that a change of constant or order fails here.
    #[test]
    fn mask_values_are_pinned() {
        let m = mask_values(BLOCK + 12, 0.5, 12345);
        let bits = |v: &[f32]| v.iter().map(|&x| if x == 0.0 { '0' } else { '1' }).collect::<String>();
        assert_eq!(bits(&m[..12]), "010101110001");
        assert_eq!(bits(&m[BLOCK..]), "111100111111");
        assert!(m.iter().all(|&v| v == 0.0 || v == 2.0));
    }

    #[test]
    fn mask_has_the_right_rate_and_scale_and_is_deterministic() {
        let m = mask_values(1_000_003, 0.9, 7);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / m.len() as f64;
        assert!((kept - 0.9).abs() < 0.002, "{kept}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        assert_eq!(m, mask_values(1_000_003, 0.9, 7));
        assert_ne!(m, mask_values(1_000_003, 0.9, 8));
        // Blocks differ from each other (no repeated stream).
        assert_ne!(m[..BLOCK], m[BLOCK..2 * BLOCK]);
    }

    #[test]
    fn inactive_outside_training_and_a_mask_inside() {
        let layer = DropoutConfig::new(0.5).init();
        let plain = Device::flex();
        let x = Tensor::<2>::ones([64, 64], &plain);
        assert_eq!(dropout(&layer, x.clone()).into_data(), x.into_data());
        let ad = plain.autodiff();
        let run = |seed| {
            ad.seed(seed);
            dropout(&layer, Tensor::<2>::ones([64, 64], &ad)).into_data().try_to_vec::<f32>().unwrap()
        };
        // (Same seed → same mask is checked on `mask_values` and end to end by the trainer's
        // bit-for-bit resume test: Burn's device generator is shared with tests running in
        // parallel, so two seeded draws here may be interleaved with theirs.)
        let a = run(3);
        let kept = a.iter().filter(|&&v| v == 2.0).count();
        assert!(kept > 1800 && kept < 2300, "{kept}");
        assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
    }

    #[test]
    fn gradient_flows_through_kept_values_only() {
        let layer = DropoutConfig::new(0.25).init();
        let ad = Device::flex().autodiff();
        ad.seed(1);
        let x = Tensor::<1>::ones([1000], &ad).require_grad();
        let y = dropout(&layer, x.clone());
        let grads = y.clone().sum().backward();
        let g = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(g, y.into_data().try_to_vec::<f32>().unwrap());
    }

    /// A transposed (non-contiguous) input and an output gradient that differs per element: each
    /// output is the input times 1/keep or 0, and the input's gradient is the output gradient
    /// times the same factor.
    #[test]
    fn transposed_input_and_a_weighted_gradient() {
        let layer = DropoutConfig::new(0.4).init();
        let ad = Device::flex().autodiff();
        ad.seed(2);
        let values: Vec<f32> = (0..63).map(|i| 1.0 + i as f32).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values, [7, 9]), &ad).transpose().require_grad();
        let w = Tensor::<2>::from_data(TensorData::new((0..63).map(|i| i as f32 - 30.5).collect(), [9, 7]), &ad);
        let y = dropout(&layer, x.clone());
        let grads = (y.clone() * w.clone()).sum().backward();
        let read = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let (x, y, w, g) = (read(x.clone()), read(y), read(w), read(x.grad(&grads).unwrap()));
        let scale = 1.0f32 / 0.6;
        let mut kept = 0;
        for i in 0..63 {
            let factor = if y[i] == 0.0 { 0.0 } else { scale };
            assert_eq!(y[i], x[i] * factor, "element {i}");
            assert_eq!(g[i], w[i] * factor, "gradient {i}");
            kept += (factor != 0.0) as usize;
        }
        assert!(kept > 20 && kept < 60, "{kept}");
    }
}
