//! BatchNorm over NCHW feature maps, optionally followed by ReLU, as one autodiff node with its
//! own backward pass on the flex CPU backend (ResNet's `relu(bn(conv(x)))`).
//!
//! Burn flex has no BatchNorm kernel of its own: its default `batch_norm` is four broadcast
//! passes (subtract, divide, multiply, add), each allocating, and `batch_norm_train` computes the
//! statistics through a channel-first copy of the input; the backward pass is about a dozen more
//! full passes, and a ReLU after it two more nodes. Here, per call:
//!
//! - statistics (training): per channel, the mean and then the biased variance, each channel's
//!   planes summed in f32 lanes and added in f64 ([`channel_stats`]; the channels spread over the
//!   cores, the same bits on every run);
//! - forward: one pass, `y = x·s + t` with `s = γ/√(var + ε)`, `t = β − mean·s`, and `max(y, 0)`
//!   when ReLU follows;
//! - backward, from the saved input (the ReLU mask is recomputed from it, bit for bit the
//!   forward's): `g = dy` where `y > 0` (or everywhere without ReLU), `x̂ = (x − mean)/σ`, then
//!   `dβ = Σ g`, `dγ = Σ g ⊙ x̂` in one pass per channel and, in a second pass,
//!   `dx = s ⊙ (g − Σg/m − x̂ ⊙ Σ(g⊙x̂)/m)` with batch statistics (`m` values per channel), or
//!   `dx = s ⊙ g` with fixed (running) ones.
//!
//! Routed like the other fused ops: f32 tensors on the flex device (ft-hub's `flex` feature);
//! Burn's `batch_norm` / `batch_norm_train` (and `relu`) everywhere else. The sums run in another
//! order than Burn's, so results agree to float rounding, not bit for bit.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::tensor::activation::relu as burn_relu;
use burn::tensor::{DType, Shape, Tensor};

/// `x·s + t` per channel (`s = γ/√(var + ε)`, `t = β − mean·s`), then ReLU if asked, with a
/// hand-written backward pass under autodiff.
///
/// Call it through [`train`] or [`eval`], which pick the device and compute the statistics.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait BatchNormOps: Backend {
    /// The normalised (and rectified) output. `batch_stats` says whether `mean` and `variance`
    /// are the batch's own (their gradient flows back into `x`) or fixed running statistics.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, h, w]`, `gamma`, `beta`, `mean`, `variance`: `[channels]`;
    ///   output `x`'s shape
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
        _batch_stats: bool,
    ) -> FloatTensor<Self> {
        let y = Self::batch_norm(x, gamma, beta, mean, variance, epsilon);
        if relu { Self::relu(y) } else { y }
    }

    /// Gradients of [`BatchNormOps::batch_norm_apply`] with respect to `x`, `gamma` and `beta`.
    ///
    /// # Shapes
    /// - `x`, `dy`: `[batch, channels, h, w]`, the rest `[channels]`; output
    ///   `(dx [batch, channels, h, w], dgamma [channels], dbeta [channels])`
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn batch_norm_apply_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
        batch_stats: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(x, gamma, beta, mean, variance, dy, epsilon, relu, batch_stats)
    }
}

/// The output of [`train`]: the normalised (and rectified) tensor, and the batch's per-channel
/// mean and biased variance (untracked) for the running statistics.
#[derive(Debug)]
pub struct Trained {
    /// `[batch, channels, h, w]`.
    pub output: Tensor<4>,
    /// `[channels]`.
    pub mean: Tensor<1>,
    /// `[channels]`, biased (divided by the values per channel).
    pub variance: Tensor<1>,
}

/// BatchNorm with the batch's own statistics (training), then ReLU if `relu`: on flex (f32) one
/// node with its own backward pass ([`BatchNormOps`]); elsewhere Burn's `batch_norm_train`.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`, `gamma`, `beta`: `[channels]`
pub fn train(x: Tensor<4>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64, relu: bool) -> Trained {
    if fused(&x, &gamma, &beta) {
        let (mean, variance) = channel_stats(x.clone().inner(), &x.device());
        let output = apply(x, gamma, beta, mean.clone(), variance.clone(), epsilon, relu, true);
        return Trained { output, mean, variance };
    }
    let result = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
    let output = if relu { burn_relu(result.output) } else { result.output };
    Trained { output, mean: result.mean.detach(), variance: result.variance.detach() }
}

/// BatchNorm with fixed statistics (`model.eval()`; a frozen layer), then ReLU if `relu`: on flex
/// (f32) one pass, and under autodiff one node (`dx = dy·γ/σ`); elsewhere Burn's `batch_norm`.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`, the rest `[channels]`; output `x`'s shape
pub fn eval(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> Tensor<4> {
    if fused(&x, &gamma, &beta) && mean.dtype() == DType::F32 && variance.dtype() == DType::F32 {
        return apply(x, gamma, beta, mean, variance, epsilon, relu, false);
    }
    let y = burn::tensor::module::batch_norm(x, gamma, beta, mean, variance, epsilon);
    if relu { burn_relu(y) } else { y }
}

/// Whether the kernels below run: f32 on the flex device, channel counts that match.
fn fused(x: &Tensor<4>, gamma: &Tensor<1>, beta: &Tensor<1>) -> bool {
    let c = x.dims()[1];
    cfg!(feature = "flex")
        && super::is_flex(&x.device())
        && [x.dtype(), gamma.dtype(), beta.dtype()].iter().all(|d| *d == DType::F32)
        && gamma.dims() == [c]
        && beta.dims() == [c]
        && x.dims().iter().all(|&d| d > 0)
}

/// [`BatchNormOps::batch_norm_apply`] through Burn's dispatch.
#[allow(clippy::too_many_arguments)]
fn apply(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f64,
    relu: bool,
    batch_stats: bool,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        Tensor::from_dispatch(<Dispatch as BatchNormOps>::batch_norm_apply(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            mean.into_dispatch(),
            variance.into_dispatch(),
            epsilon,
            relu,
            batch_stats,
        ))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = batch_stats;
        let y = burn::tensor::module::batch_norm(x, gamma, beta, mean, variance, epsilon);
        if relu { burn_relu(y) } else { y }
    }
}

/// Per-channel mean and biased variance of a flex tensor without autodiff (see the module
/// docs), as untracked tensors on `device` (`x`'s own, autodiff included).
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; outputs `[channels]` each
#[cfg(feature = "flex")]
fn channel_stats(x: Tensor<4>, device: &burn::tensor::Device) -> (Tensor<1>, Tensor<1>) {
    let [n, c, h, w] = x.dims();
    let flex = x.try_into_primitive::<burn::backend::Flex>().expect("a flex tensor (checked by `fused`)");
    let (mean, variance) = flex::stats(&flex.to_contiguous(), n, c, h * w);
    (
        Tensor::from_data(burn::tensor::TensorData::new(mean, [c]), device),
        Tensor::from_data(burn::tensor::TensorData::new(variance, [c]), device),
    )
}

/// Without ft-hub's `flex` feature nothing routes here ([`fused`] checks the feature).
#[cfg(not(feature = "flex"))]
fn channel_stats(x: Tensor<4>, device: &burn::tensor::Device) -> (Tensor<1>, Tensor<1>) {
    let c = x.dims()[1];
    let x = x.to_device(device).detach();
    let values: Tensor<2> = x.swap_dims(0, 1).reshape([c as i32, -1]);
    let mean = values.clone().mean_dim(1);
    let variance = (values - mean.clone()).square().mean_dim(1);
    (mean.reshape([c]), variance.reshape([c]))
}

/// [`BatchNormOps::batch_norm_apply_backward`] from Burn's ops, for backends without kernels.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    dy: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
    batch_stats: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let dy = if relu {
        let y = B::batch_norm(x.clone(), gamma.clone(), beta, mean.clone(), variance.clone(), epsilon);
        B::relu_backward(y, dy)
    } else {
        dy
    };
    let result = B::batch_norm_train_backward(x, gamma.clone(), mean, variance.clone(), epsilon, dy.clone());
    if batch_stats {
        return (result.x_grad, result.gamma_grad, result.beta_grad);
    }
    let c = gamma.shape()[0];
    let shape = Shape::new([1, c, 1, 1]);
    let inv_std = B::float_recip(B::float_sqrt(B::float_add_scalar(variance, epsilon.into())));
    let scale = B::float_reshape(B::float_mul(gamma, inv_std), shape);
    (B::float_mul(dy, scale), result.gamma_grad, result.beta_grad)
}

impl<B: Backend + BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
        batch_stats: bool,
    ) -> FloatTensor<Self> {
        let backward = BatchNormBackward::<B> { epsilon, relu, batch_stats, backend: core::marker::PhantomData };
        match backward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
                let (mean, variance) = (mean.into_primitive(), variance.into_primitive());
                let output = B::batch_norm_apply(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    mean.clone(),
                    variance.clone(),
                    epsilon,
                    relu,
                    batch_stats,
                );
                prep.finish((x, gamma, beta, mean, variance), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::batch_norm_apply(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                mean.into_primitive(),
                variance.into_primitive(),
                epsilon,
                relu,
                batch_stats,
            )),
        }
    }
}

/// The backward step of [`BatchNormOps::batch_norm_apply`]; its state is the forward's `x`, `γ`,
/// `β`, mean and variance.
struct BatchNormBackward<B> {
    epsilon: f64,
    relu: bool,
    batch_stats: bool,
    backend: core::marker::PhantomData<B>,
}

impl<B> core::fmt::Debug for BatchNormBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BatchNormBackward")
            .field("epsilon", &self.epsilon)
            .field("relu", &self.relu)
            .field("batch_stats", &self.batch_stats)
            .finish()
    }
}

impl<B: Backend + BatchNormOps> Backward<B, 3> for BatchNormBackward<B> {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, variance) = ops.state;
        let (dx, dgamma, dbeta) =
            B::batch_norm_apply_backward(x, gamma, beta, mean, variance, dy, self.epsilon, self.relu, self.batch_stats);
        let [x_node, gamma_node, beta_node] = ops.parents;
        for (node, grad) in [(x_node, dx), (gamma_node, dgamma), (beta_node, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::{ActivationOps, ModuleOps};
    use burn::backend::{Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::{DType, Shape};
    use rayon::prelude::*;

    use super::BatchNormOps;
    use crate::ops::fused::f32_tensor;

    /// Lanes of the plane sums.
    const LANES: usize = 8;

    /// `Σ f(v)` over `values` in [`LANES`] f32 partial sums, returned in f64.
    fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
        let mut acc = [0f32; LANES];
        let chunks = values.chunks_exact(LANES);
        let tail: f64 = chunks.remainder().iter().map(|&v| f(v) as f64).sum();
        for chunk in chunks {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += f(v);
            }
        }
        acc.iter().map(|&a| a as f64).sum::<f64>() + tail
    }

    /// Per-channel mean and biased variance of contiguous `[n, c, plane]` values.
    pub(super) fn stats(x: &FlexTensor, n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
        let values = x.as_slice::<f32>().expect("contiguous f32");
        let m = (n * plane) as f64;
        let per_channel: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = || (0..n).map(move |i| &values[(i * c + ch) * plane..][..plane]);
                let mean = planes().map(|p| lane_sum(p, |v| v)).sum::<f64>() / m;
                let mean32 = mean as f32;
                let var = planes()
                    .map(|p| {
                        lane_sum(p, |v| {
                            let d = v - mean32;
                            d * d
                        })
                    })
                    .sum::<f64>()
                    / m;
                // The mean rounded to f32 shifts the squares' sum by m·(mean − mean32)².
                let shift = mean - mean32 as f64;
                (mean32, (var - shift * shift).max(0.0) as f32)
            })
            .collect();
        per_channel.into_iter().unzip()
    }

    /// A `[c]` tensor's values.
    fn channel_values(t: &FlexTensor, c: usize) -> Option<Vec<f32>> {
        let t = t.to_contiguous();
        let v = t.as_slice::<f32>()?;
        (v.len() == c).then(|| v.to_vec())
    }

    /// The per-channel scale `γ/√(var + ε)`, shift `β − mean·scale`, mean and `1/√(var + ε)`.
    struct Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
    }

    impl Affine {
        fn of(
            c: usize,
            gamma: &FlexTensor,
            beta: &FlexTensor,
            mean: &FlexTensor,
            variance: &FlexTensor,
            epsilon: f64,
        ) -> Option<Self> {
            let (gamma, beta) = (channel_values(gamma, c)?, channel_values(beta, c)?);
            let (mean, variance) = (channel_values(mean, c)?, channel_values(variance, c)?);
            let inv_std: Vec<f32> = variance.iter().map(|&v| (1.0 / ((v as f64) + epsilon).sqrt()) as f32).collect();
            let scale: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
            let shift = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
            Some(Self { scale, shift, mean, inv_std })
        }
    }

    /// `[n, c, h, w]` of an f32 tensor, contiguous.
    fn nchw(x: FlexTensor) -> Option<(FlexTensor, [usize; 4])> {
        let shape = x.shape();
        if shape.num_dims() != 4 || x.dtype() != DType::F32 {
            return None;
        }
        let dims = [shape[0], shape[1], shape[2], shape[3]];
        Some((x.to_contiguous(), dims))
    }

    /// One channel's constants for the backward loops, copied out of [`Affine`] so that the
    /// loops below see plain locals (and vectorise).
    #[derive(Clone, Copy)]
    struct Channel {
        scale: f32,
        shift: f32,
        mean: f32,
        inv_std: f32,
    }

    impl Channel {
        fn of(a: &Affine, ch: usize) -> Self {
            Self { scale: a.scale[ch], shift: a.shift[ch], mean: a.mean[ch], inv_std: a.inv_std[ch] }
        }

        /// The gradient reaching the normalised value: `dy`, or with `RELU` 0 where ReLU cut the
        /// output (`x·scale + shift ≤ 0`, the forward's own test, NaN kept). A bit mask, not an
        /// `if`: as a branch the compiler made the load of `d` conditional and the loop scalar.
        #[inline(always)]
        fn g<const RELU: bool>(self, v: f32, d: f32) -> f32 {
            if !RELU {
                return d;
            }
            // NaN is kept, as the forward's `y <= 0` test lets it through.
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            let keep = !(v * self.scale + self.shift <= 0.0);
            f32::from_bits(d.to_bits() & u32::from(keep).wrapping_neg())
        }

        /// `(Σ g, Σ g·x̂)` over a few values (what is left after the vectors), in f64.
        #[inline(always)]
        fn tail_sums<const RELU: bool>(self, x: &[f32], dy: &[f32]) -> (f64, f64) {
            x.iter().zip(dy).fold((0.0, 0.0), |(sg, sgx), (&v, &d)| {
                let g = self.g::<RELU>(v, d);
                (sg + g as f64, sgx + (g * ((v - self.mean) * self.inv_std)) as f64)
            })
        }
    }

    // The backward loops are `WithSimd` types (as in `ops::gelu`): compiled for the SIMD level
    // `pulp::Arch::dispatch` picks at run time (AVX2, or AVX-512 where the build enables pulp's
    // `x86-v4`, as ft's default build does). Compiled for the baseline (SSE2) as plain loops they
    // ran scalar, branching on the ReLU mask per value: 6.4 ms for a 3.2 MB map (ResNet's layer3
    // at 224 px, batch 16) against 0.19 ms now.

    /// One channel's `(Σ g, Σ g·x̂)` over its `n` planes (`first + i·stride`): each plane in
    /// f32 vector lanes, reduced and added in f64 in plane order (the same bits on every run
    /// of one machine; the lane count, and so the last bits, follow the CPU's SIMD width).
    struct ChannelSums<'a> {
        k: Channel,
        x: &'a [f32],
        dy: &'a [f32],
        first: usize,
        stride: usize,
        n: usize,
        plane: usize,
        relu: bool,
    }

    impl pulp::WithSimd for ChannelSums<'_> {
        type Output = (f64, f64);

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) -> (f64, f64) {
            if self.relu { self.run::<true, S>(simd) } else { self.run::<false, S>(simd) }
        }
    }

    impl ChannelSums<'_> {
        #[inline(always)]
        fn run<const RELU: bool, S: pulp::Simd>(self, simd: S) -> (f64, f64) {
            // Explicit vector operations: written as scalar code, the compiler branched on the
            // ReLU mask even here.
            let k = self.k;
            let zero = simd.splat_f32s(0.0);
            let (scale, shift) = (simd.splat_f32s(k.scale), simd.splat_f32s(k.shift));
            let (mean, inv_std) = (simd.splat_f32s(k.mean), simd.splat_f32s(k.inv_std));
            let (mut sg, mut sgx) = (0f64, 0f64);
            for i in 0..self.n {
                let at = self.first + i * self.stride;
                let (x, dy) = (&self.x[at..][..self.plane], &self.dy[at..][..self.plane]);
                let ((xs, x_tail), (ds, d_tail)) = (S::as_simd_f32s(x), S::as_simd_f32s(dy));
                let (mut acc_g, mut acc_gx) = (zero, zero);
                for (&v, &d) in xs.iter().zip(ds) {
                    let g = if RELU {
                        let y = simd.add_f32s(simd.mul_f32s(v, scale), shift);
                        simd.select_f32s(simd.less_than_or_equal_f32s(y, zero), zero, d)
                    } else {
                        d
                    };
                    acc_g = simd.add_f32s(acc_g, g);
                    acc_gx = simd.add_f32s(acc_gx, simd.mul_f32s(g, simd.mul_f32s(simd.sub_f32s(v, mean), inv_std)));
                }
                let (g, gx) = k.tail_sums::<RELU>(x_tail, d_tail);
                sg += simd.reduce_sum_f32s(acc_g) as f64 + g;
                sgx += simd.reduce_sum_f32s(acc_gx) as f64 + gx;
            }
            (sg, sgx)
        }
    }

    /// One plane's input gradient: `dx = scale·(g − mg − x̂·mgx)` with batch statistics
    /// (`means = (Σg/m, Σ(g·x̂)/m)`), `dx = scale·g` with fixed ones.
    struct InputGrad<'a> {
        k: Channel,
        x: &'a [f32],
        dy: &'a [f32],
        out: &'a mut [f32],
        means: Option<(f32, f32)>,
        relu: bool,
    }

    impl InputGrad<'_> {
        #[inline(always)]
        fn run<const RELU: bool>(self) {
            let k = self.k;
            let values = self.out.iter_mut().zip(self.x).zip(self.dy);
            match self.means {
                Some((mg, mgx)) => values.for_each(|((o, &v), &d)| {
                    *o = k.scale * (k.g::<RELU>(v, d) - mg - (v - k.mean) * k.inv_std * mgx);
                }),
                None => values.for_each(|((o, &v), &d)| *o = k.scale * k.g::<RELU>(v, d)),
            }
        }
    }

    impl pulp::WithSimd for InputGrad<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            if self.relu { self.run::<true>() } else { self.run::<false>() }
        }
    }

    impl BatchNormOps for Flex {
        fn batch_norm_apply(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            epsilon: f64,
            relu: bool,
            _batch_stats: bool,
        ) -> FloatTensor<Self> {
            let kernel = nchw(x.clone())
                .and_then(|(x, dims)| Some((x, dims, Affine::of(dims[1], &gamma, &beta, &mean, &variance, epsilon)?)));
            let Some((x, [n, c, h, w], a)) = kernel else {
                let y = Flex::batch_norm(x, gamma, beta, mean, variance, epsilon);
                return if relu { Flex::relu(y) } else { y };
            };
            let plane = h * w;
            let values = x.as_slice::<f32>().expect("contiguous f32");
            let mut out = vec![0f32; n * c * plane];
            out.par_chunks_mut(plane).zip(values.par_chunks(plane)).enumerate().for_each(|(i, (o, v))| {
                let (s, t) = (a.scale[i % c], a.shift[i % c]);
                if relu {
                    // NaN stays NaN (`NaN <= 0` is false), as in Burn's and PyTorch's ReLU.
                    o.iter_mut().zip(v).for_each(|(o, &v)| {
                        let y = v * s + t;
                        *o = if y <= 0.0 { 0.0 } else { y };
                    });
                } else {
                    o.iter_mut().zip(v).for_each(|(o, &v)| *o = v * s + t);
                }
            });
            f32_tensor(out, Shape::new([n, c, h, w]))
        }

        fn batch_norm_apply_backward(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            epsilon: f64,
            relu: bool,
            batch_stats: bool,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let same = dy.shape() == x.shape() && dy.dtype() == DType::F32;
            let kernel = nchw(x.clone())
                .filter(|_| same)
                .and_then(|(x, dims)| Some((x, dims, Affine::of(dims[1], &gamma, &beta, &mean, &variance, epsilon)?)));
            let Some((x, [n, c, h, w], a)) = kernel else {
                return super::composed_backward::<Flex>(
                    x,
                    gamma,
                    beta,
                    mean,
                    variance,
                    dy,
                    epsilon,
                    relu,
                    batch_stats,
                );
            };
            let dy = dy.to_contiguous();
            let plane = h * w;
            let (xv, dyv) =
                (x.as_slice::<f32>().expect("contiguous f32"), dy.as_slice::<f32>().expect("contiguous f32"));
            // Σ g and Σ g·x̂ per channel, g the gradient reaching the normalised value (dy, or 0
            // where ReLU cut the output).
            let sums: Vec<(f32, f32)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let sums = ChannelSums {
                        k: Channel::of(&a, ch),
                        x: xv,
                        dy: dyv,
                        first: ch * plane,
                        stride: c * plane,
                        n,
                        plane,
                        relu,
                    };
                    let (sg, sgx) = pulp::Arch::new().dispatch(sums);
                    (sg as f32, sgx as f32)
                })
                .collect();
            let count = (n * plane) as f32;
            let mut dx = vec![0f32; n * c * plane];
            dx.par_chunks_mut(plane).enumerate().for_each(|(i, out)| {
                let ch = i % c;
                let (x, dy) = (&xv[i * plane..][..plane], &dyv[i * plane..][..plane]);
                let means = batch_stats.then(|| (sums[ch].0 / count, sums[ch].1 / count));
                pulp::Arch::new().dispatch(InputGrad { k: Channel::of(&a, ch), x, dy, out, means, relu });
            });
            let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
            (
                f32_tensor(dx, Shape::new([n, c, h, w])),
                f32_tensor(dgamma, Shape::new([c])),
                f32_tensor(dbeta, Shape::new([c])),
            )
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData, Tolerance};

    fn params(c: usize, device: &Device) -> (Tensor<1>, Tensor<1>) {
        let gamma = Tensor::random([c], Distribution::Uniform(0.5, 1.5), device).require_grad();
        let beta = Tensor::random([c], Distribution::Normal(0.0, 0.5), device).require_grad();
        (gamma, beta)
    }

    /// Training mode, with and without ReLU: output, batch statistics and the gradients of `x`,
    /// `γ` and `β` equal Burn's `batch_norm_train` (+ `relu`), for a plane smaller than the
    /// lanes and a larger one, with an offset mean (the variance's rounding).
    #[test]
    fn train_matches_burn() {
        let device = Device::flex().autodiff();
        device.seed(21);
        for (shape, relu) in [
            ([3, 4, 5, 7], true),
            ([2, 5, 1, 3], false),
            ([4, 3, 9, 9], true),
            ([2, 3, 4, 8], true),
            ([3, 2, 1, 5], true),
        ] {
            let c = shape[1];
            let x: Tensor<4> = (Tensor::random(shape, Distribution::Normal(0.0, 2.0), &device) + 3.0).require_grad();
            let (gamma, beta) = params(c, &device);
            assert!(fused(&x, &gamma, &beta));
            let ours = train(x.clone(), gamma.clone(), beta.clone(), 1e-5, relu);
            let burns = burn::tensor::module::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
            let burn_out = if relu { burn_relu(burns.output) } else { burns.output };
            let tol = Tolerance::rel_abs(1e-5, 1e-5);
            ours.mean.clone().into_data().assert_approx_eq::<f32>(&burns.mean.into_data(), tol);
            ours.variance.clone().into_data().assert_approx_eq::<f32>(&burns.variance.into_data(), tol);
            ours.output.clone().into_data().assert_approx_eq::<f32>(&burn_out.clone().into_data(), tol);
            let target: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let g_ours = (ours.output * target.clone()).sum().backward();
            let g_burn = (burn_out * target).sum().backward();
            let tol = Tolerance::rel_abs(1e-4, 1e-5);
            x.grad(&g_ours).unwrap().into_data().assert_approx_eq::<f32>(&x.grad(&g_burn).unwrap().into_data(), tol);
            let (dg, dg_burn) = (gamma.grad(&g_ours).unwrap(), gamma.grad(&g_burn).unwrap());
            dg.into_data().assert_approx_eq::<f32>(&dg_burn.into_data(), tol);
            let (db, db_burn) = (beta.grad(&g_ours).unwrap(), beta.grad(&g_burn).unwrap());
            db.into_data().assert_approx_eq::<f32>(&db_burn.into_data(), tol);
        }
    }

    /// Fixed statistics: inference (no autodiff) and the gradients under autodiff equal Burn's
    /// `batch_norm` (+ `relu`).
    #[test]
    fn eval_matches_burn() {
        let device = Device::flex().autodiff();
        device.seed(8);
        let shape = [2, 3, 4, 6];
        let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.5, 1.0), &device).require_grad();
        let (gamma, beta) = params(3, &device);
        let mean = Tensor::<1>::random([3], Distribution::Normal(0.0, 0.5), &device);
        let var = Tensor::<1>::random([3], Distribution::Uniform(0.5, 2.0), &device);
        let tol = Tolerance::rel_abs(1e-5, 1e-5);
        for relu in [false, true] {
            let ours = eval(x.clone(), gamma.clone(), beta.clone(), mean.clone(), var.clone(), 1e-5, relu);
            let y = burn::tensor::module::batch_norm(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                1e-5,
            );
            let burns = if relu { burn_relu(y) } else { y };
            ours.clone().into_data().assert_approx_eq::<f32>(&burns.clone().into_data(), tol);
            let target: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let g_ours = (ours * target.clone()).sum().backward();
            let g_burn = (burns.clone() * target).sum().backward();
            x.grad(&g_ours).unwrap().into_data().assert_approx_eq::<f32>(&x.grad(&g_burn).unwrap().into_data(), tol);
            let (dg, dg_burn) = (gamma.grad(&g_ours).unwrap(), gamma.grad(&g_burn).unwrap());
            dg.into_data().assert_approx_eq::<f32>(&dg_burn.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
            let (db, db_burn) = (beta.grad(&g_ours).unwrap(), beta.grad(&g_burn).unwrap());
            db.into_data().assert_approx_eq::<f32>(&db_burn.into_data(), Tolerance::rel_abs(1e-4, 1e-5));
            let plain = eval(
                x.clone().inner(),
                gamma.clone().inner(),
                beta.clone().inner(),
                mean.clone().inner(),
                var.clone().inner(),
                1e-5,
                relu,
            );
            plain.into_data().assert_approx_eq::<f32>(&burns.into_data(), tol);
        }
    }

    /// The backward pass gates each value as the forward's ReLU did: `dx = γ·dy` where the output
    /// is positive or NaN, 0 where it is ≤ 0 (including exactly 0), in a plane of 35 values (NaN
    /// in the vectors and in the tail); `dβ` stays finite, `dγ` is NaN (NaN·dy).
    #[test]
    fn relu_backward_gates_each_value() {
        let device = Device::flex().autodiff();
        let mut values: Vec<f32> =
            (0..35).map(|i| if i % 3 == 0 { -(i as f32) - 1.0 } else { i as f32 * 0.5 }).collect();
        values[5] = f32::NAN;
        values[33] = f32::NAN;
        values[7] = 0.0;
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 5, 7]), &device).require_grad();
        let gamma = Tensor::<1>::from_data(TensorData::new(vec![2.0f32], [1]), &device).require_grad();
        let beta = Tensor::<1>::zeros([1], &device).require_grad();
        let (mean, var) = (Tensor::<1>::zeros([1], &device), Tensor::<1>::ones([1], &device));
        let dy: Vec<f32> = (0..35).map(|i| 1.0 + i as f32 / 8.0).collect();
        let target = Tensor::<4>::from_data(TensorData::new(dy.clone(), [1, 1, 5, 7]), &device);
        let y = eval(x.clone(), gamma.clone(), beta.clone(), mean, var, 0.0, true);
        let grads = (y * target).sum().backward();
        let dx: Vec<f32> = x.grad(&grads).expect("dx").into_data().try_to_vec::<f32>().expect("f32");
        let mut kept = 0.0;
        for (i, (&v, &d)) in values.iter().zip(&dy).enumerate() {
            let expected = if v.is_nan() || v > 0.0 { 2.0 * d } else { 0.0 };
            assert_eq!(dx[i].to_bits(), expected.to_bits(), "value {i} ({v})");
            kept += if expected != 0.0 { d } else { 0.0 };
        }
        let dbeta: Vec<f32> = beta.grad(&grads).expect("dβ").into_data().try_to_vec::<f32>().expect("f32");
        assert!((dbeta[0] - kept).abs() < 1e-4, "dβ {} vs {kept}", dbeta[0]);
        let dgamma: Vec<f32> = gamma.grad(&grads).expect("dγ").into_data().try_to_vec::<f32>().expect("f32");
        assert!(dgamma[0].is_nan());
    }

    /// A NaN stays NaN through the fused ReLU, as through Burn's.
    #[test]
    fn relu_keeps_nan() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(vec![f32::NAN, 1.0, -1.0, 2.0], [1, 1, 2, 2]), &device);
        let (gamma, beta) = (Tensor::<1>::ones([1], &device), Tensor::<1>::zeros([1], &device));
        let (mean, var) = (Tensor::<1>::zeros([1], &device), Tensor::<1>::ones([1], &device));
        let y: Vec<f32> = eval(x, gamma, beta, mean, var, 0.0, true).into_data().try_to_vec::<f32>().unwrap();
        assert!(y[0].is_nan());
        assert_eq!(&y[1..], &[1.0, 0.0, 2.0]);
    }
}
