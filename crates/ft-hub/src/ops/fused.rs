//! Fused CPU ops with their own backward pass, as a Burn backend extension ([`FusedOps`]).
//!
//! Under autodiff Burn composes softmax from five tensor ops (max, subtract, exp, sum, divide),
//! each allocating a full-size output and each with its own backward node; on flex that made the
//! attention softmax of a MiniLM training step 3–8× slower than PyTorch's fused kernel
//! (BENCHMARKS.md, "Training, op by op"). Here softmax is one autodiff node: its forward is one
//! pass per row (rows in parallel; the row's maximum and sum in 8 lanes; `e^x` by the same
//! polynomial as GELU's erf, relative error ≤ 3e-7 — flex's own fused softmax spends most of its
//! time in a slower `exp`: 7 ms against 2 ms on the `[16, 12, 96, 96]` attention scores of a
//! MiniLM step), its backward one pass per row, `dx = y ⊙ (dy − Σ dy ⊙ y)`, from the saved
//! output `y`.
//!
//! GELU (exact, erf form) is one node too: forward [`gelu_slice`](super::gelu::gelu_slice) over a
//! copy of the input, backward `dy ⊙ gelu'(x)` from the saved input, each one pass across threads;
//! and so is its tanh approximation (`gelu_new`, GPT-2's), [`gelu_tanh`](super::gelu::gelu_tanh).
//!
//! The host loops are compiled for the widest SIMD the CPU offers (AVX2; AVX-512 where the build
//! enables pulp's `x86-v4`, as `ft`'s `x86-v4` feature does through gemm), chosen at run time by
//! `pulp`. The compiler does not contract multiplications and additions into FMAs, so every
//! level gives the same bits as the scalar code.
//!
//! The extension is routed to flex (ft-hub's `flex` feature, which `ft-models/flex` turns on)
//! and to Burn's autodiff wrapper around it; [`softmax_last`], [`gelu`](super::gelu()) and
//! [`gelu_tanh`](super::gelu_tanh()) call it only for f32 tensors on the flex device and run Burn's own ops everywhere else (GPU, ndarray),
//! so other backends never reach an unlisted extension. Built without the `flex` feature, they
//! run Burn's composed ops on flex too, and say so once at `warn` level.
//!
//! Results are those of Burn's composed ops to float rounding, not bit for bit: the fused
//! softmax multiplies by `1/Σ` where Burn divides, and sums in another order.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::tensor::{Tensor, activation};

/// Ops ft fuses on the CPU, each with a hand-written backward pass under autodiff.
///
/// Call them through [`softmax_last`], [`gelu`](super::gelu()), [`gelu_tanh`](super::gelu_tanh())
/// and [`sum_of_squares`], which pick the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait FusedOps: Backend {
    /// Softmax over the last dimension: `[..., n]` → `[..., n]`, each row summing to 1.
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Gradient of [`FusedOps::softmax_last`] with respect to its input, from its output `y` and
    /// the gradient `dy` of its output: `y ⊙ (dy − Σ_last dy ⊙ y)`; `y`, `dy`, result: `[..., n]`.
    fn softmax_last_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax_backward::<Self>(y, dy)
    }

    /// Exact (erf) GELU, elementwise: any shape → the same shape.
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// Gradient of [`FusedOps::gelu_exact`] with respect to its input `x`, given the output
    /// gradient `dy`: `dy ⊙ (Φ(x) + x·φ(x))`; `x`, `dy`, result: the same shape.
    fn gelu_exact_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, dy)
    }

    /// GELU's tanh approximation (`gelu_new`), elementwise: any shape → the same shape.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_tanh::<Self>(x)
    }

    /// Gradient of [`FusedOps::gelu_tanh`] with respect to its input `x`, given the output
    /// gradient `dy`: `dy ⊙ (0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3a·x²))`, `t = tanh(c·(x + a·x³))`;
    /// `x`, `dy`, result: the same shape.
    fn gelu_tanh_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_tanh_backward::<Self>(x, dy)
    }

    /// `Σ x²` over every element: any shape → `[1]`.
    fn sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_sum(Self::float_mul(x.clone(), x))
    }
}

/// `Σ x²` over every element of `x` (gradient clipping's squared norm): on flex (f32) one pass
/// over the values across threads, summed in f64 per block and the blocks in order, without the
/// full-size `x²` tensor Burn's `x.square().sum()` writes first; that elsewhere. No backward
/// pass (it reads gradients). The f64 sum differs from Burn's f32 one in its last bits, and so
/// may the clipping factor.
///
/// # Shapes
/// - `x`: any; output `[1]`
pub fn sum_of_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    if x.dtype() == burn::tensor::DType::F32 && super::is_flex(&x.device()) {
        #[cfg(feature = "flex")]
        return Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::sum_of_squares(x.into_dispatch()));
    }
    x.square().sum()
}

/// Softmax over the last dimension, as one fused op with its own backward pass on the flex CPU
/// backend; Burn's `softmax` elsewhere.
///
/// # Shapes
/// - `x`: `[..., n]`; output: `[..., n]`, each row summing to 1
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if x.dtype() == burn::tensor::DType::F32 && super::is_flex(&device) {
        #[cfg(feature = "flex")]
        return Tensor::from_dispatch(<burn::backend::Dispatch as FusedOps>::softmax_last(x.into_dispatch()));
        #[cfg(not(feature = "flex"))]
        warn_unfused(&device);
    }
    activation::softmax(x, D - 1)
}

/// Once per process: training on flex without ft-hub's `flex` feature runs Burn's composed ops.
#[cfg(not(feature = "flex"))]
pub(crate) fn warn_unfused(device: &burn::tensor::Device) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if device.is_autodiff() {
        WARNED.call_once(|| {
            tracing::warn!(
                "ft-hub was built without its `flex` feature: training on the flex CPU backend runs Burn's composed \
                 softmax, GELU, LayerNorm, dropout and log-softmax, its embedding backward and Burn's matmul for \
                 linear layers and attention (slower). \
                 Enable `ft-models/flex` or `ft-hub/flex`."
            )
        });
    }
}

impl<B: Backend + FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_node::<B, C>(x, B::softmax_last, B::softmax_last_backward, Saved::Output)
    }

    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_node::<B, C>(x, B::gelu_exact, B::gelu_exact_backward, Saved::Input)
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_node::<B, C>(x, B::gelu_tanh, B::gelu_tanh_backward, Saved::Input)
    }
}

/// √(2/π) and the cubic coefficient of GELU's tanh approximation.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// `y ⊙ (dy − Σ_last dy ⊙ y)` composed of Burn's tensor ops (see [`FusedOps::softmax_last_backward`]).
fn composed_softmax_backward<B: Backend>(y: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let last = y.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(dy.clone(), y.clone()), last);
    B::float_mul(y, B::float_sub(dy, dot))
}

/// `tanh(c·(x + a·x³))` composed of Burn's tensor ops.
fn composed_tanh_term<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let x3 = B::float_mul(B::float_mul(x.clone(), x.clone()), x.clone());
    let inner = B::float_add(x, B::float_mul_scalar(x3, GELU_CUBIC.into()));
    B::float_tanh(B::float_mul_scalar(inner, SQRT_2_OVER_PI.into()))
}

/// `0.5·x·(1 + tanh(c·(x + a·x³)))` composed of Burn's tensor ops (see [`FusedOps::gelu_tanh`]).
fn composed_gelu_tanh<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let t = composed_tanh_term::<B>(x.clone());
    B::float_mul_scalar(B::float_mul(x, B::float_add_scalar(t, 1.0.into())), 0.5.into())
}

/// [`FusedOps::gelu_tanh_backward`] composed of Burn's tensor ops.
fn composed_gelu_tanh_backward<B: Backend>(x: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let t = composed_tanh_term::<B>(x.clone());
    let left = B::float_mul_scalar(B::float_add_scalar(t.clone(), 1.0.into()), 0.5.into());
    // 1 − t²
    let sech2 = B::float_neg(B::float_add_scalar(B::float_mul(t.clone(), t), (-1.0).into()));
    let x2 = B::float_mul(x.clone(), x.clone());
    let slope = B::float_mul_scalar(
        B::float_add_scalar(B::float_mul_scalar(x2, (3.0 * GELU_CUBIC).into()), 1.0.into()),
        (0.5 * SQRT_2_OVER_PI).into(),
    );
    let right = B::float_mul(B::float_mul(x, sech2), slope);
    B::float_mul(dy, B::float_add(left, right))
}

/// What an elementwise-shaped fused op's backward pass reads besides the output gradient.
enum Saved {
    /// The forward input (GELU).
    Input,
    /// The forward output (softmax).
    Output,
}

/// The backward step of a one-input fused op: `backward(saved, dy)` gives the input gradient.
struct UnaryBackward<B: Backend> {
    backward: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
}

impl<B: Backend> core::fmt::Debug for UnaryBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("UnaryBackward")
    }
}

impl<B: Backend> Backward<B, 1> for UnaryBackward<B> {
    /// The saved input or output.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let saved = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| (self.backward)(saved, dy));
    }
}

/// One autodiff node for a one-input op: `forward` on the inner backend, and when `x` is
/// tracked, `backward(saved, dy)` with the input or output saved as `saved` says.
fn unary_node<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
    saved: Saved,
) -> FloatTensor<Autodiff<B, C>> {
    match (UnaryBackward { backward }).prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let input = x.primitive().clone();
            let output = forward(input.clone());
            let state = match saved {
                Saved::Input => input,
                Saved::Output => output.clone(),
            };
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

#[cfg(feature = "flex")]
pub(crate) use flex::{exp_shifted, f32_tensor, lane_reduce};

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::{FlexTensor, Layout};
    use burn::backend::ops::{ActivationOps, FloatTensorOps};
    use burn::backend::{Bytes, Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::{DType, Shape};
    use rayon::prelude::*;

    use super::{FusedOps, composed_gelu_tanh, composed_gelu_tanh_backward, composed_softmax_backward};
    use crate::ops::gelu::{
        exp_nonpositive, gelu_backward_slice, gelu_slice, gelu_tanh_backward_slice, gelu_tanh_slice,
    };

    /// Rows per parallel task (as flex's own softmax).
    const ROWS_PER_TASK: usize = 64;
    /// Elements per parallel task of the elementwise ops.
    const ELEMS_PER_TASK: usize = 1 << 15;

    /// A contiguous f32 flex tensor of `shape` over `values` (no copy).
    pub(crate) fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
        FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
    }

    /// Lanes of the row reductions (one AVX2 register; two halves of an AVX-512 one).
    const LANES: usize = 8;

    /// Softmax of each row of `n` values of `x` into `out`: the row's largest value, `e^(x − max)`
    /// by [`exp_nonpositive`] (relative error ≤ 3e-7; differences below −87 give exactly 0, as
    /// their `e^` is below f32's normal range), their sum, and each value times `1/sum`. NaN
    /// anywhere in a row makes the row NaN.
    struct SoftmaxRows<'a> {
        x: &'a [f32],
        out: &'a mut [f32],
        n: usize,
    }

    impl pulp::WithSimd for SoftmaxRows<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let n = self.n;
            for (x, o) in self.x.chunks_exact(n).zip(self.out.chunks_exact_mut(n)) {
                // Separate simple loops (a reduction in lanes, a map, a reduction, a map), each of
                // which the compiler vectorises; a row is small enough to stay in L1.
                let max = lane_reduce(x, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = exp_shifted(v - max);
                }
                let inv = 1.0 / lane_reduce(o, 0.0, |s, v| s + v);
                o.iter_mut().for_each(|v| *v *= inv);
            }
        }
    }

    /// Softmax's backward pass over rows of `n`: `out = y ⊙ (dy − Σ dy ⊙ y)` per row.
    struct SoftmaxBackwardRows<'a> {
        y: &'a [f32],
        dy: &'a [f32],
        out: &'a mut [f32],
        n: usize,
    }

    impl pulp::WithSimd for SoftmaxBackwardRows<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let n = self.n;
            for ((o, y), dy) in self.out.chunks_exact_mut(n).zip(self.y.chunks_exact(n)).zip(self.dy.chunks_exact(n)) {
                let mut dot = 0f32;
                for (&a, &b) in y.iter().zip(dy) {
                    dot += a * b;
                }
                for ((o, &y), &dy) in o.iter_mut().zip(y).zip(dy) {
                    *o = y * (dy - dot);
                }
            }
        }
    }

    /// `values` folded by `f` in [`LANES`] independent lanes (so the compiler can keep them in
    /// one vector register), then the lanes and the remainder folded in order.
    #[inline(always)]
    pub(crate) fn lane_reduce(values: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
        let mut lanes = [init; LANES];
        let chunks = values.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            let c: &[f32; LANES] = c.try_into().expect("chunks_exact gives LANES values");
            for k in 0..LANES {
                lanes[k] = f(lanes[k], c[k]);
            }
        }
        lanes.iter().chain(tail).fold(init, |a, &v| f(a, v))
    }

    /// `e^d` for a score minus its row's maximum (`d ≤ 0`): 0 below −87, NaN for NaN.
    #[inline(always)]
    pub(crate) fn exp_shifted(d: f32) -> f32 {
        let e = exp_nonpositive(d);
        if d < -87.0 {
            0.0
        } else if d.is_nan() {
            d
        } else {
            e
        }
    }

    impl FusedOps for Flex {
        fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
            let shape = x.shape();
            let last = shape.num_dims() - 1;
            let n = shape[last];
            let x = x.to_contiguous();
            let Some(xs) = x.as_slice::<f32>().filter(|_| n > 0) else {
                return <Flex as ActivationOps<Flex>>::softmax(x, last);
            };
            let mut out = vec![0f32; xs.len()];
            let chunk = ROWS_PER_TASK * n;
            out.par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk))
                .for_each(|(o, x)| pulp::Arch::new().dispatch(SoftmaxRows { x, out: o, n }));
            f32_tensor(out, shape)
        }

        fn softmax_last_backward(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
            let shape = y.shape();
            let n = if shape.num_dims() == 0 { 0 } else { shape[shape.num_dims() - 1] };
            let (y, dy) = (y.to_contiguous(), dy.to_contiguous());
            let (Some(ys), Some(dys)) = (y.as_slice::<f32>(), dy.as_slice::<f32>()) else {
                // Not f32 (softmax_last only routes f32 here): Burn's ops.
                return composed_softmax_backward::<Flex>(y.clone(), dy.clone());
            };
            if n == 0 || ys.len() != dys.len() {
                // Nothing to compute, or shapes that only broadcasting could reconcile.
                return composed_softmax_backward::<Flex>(y.clone(), dy.clone());
            }
            let mut out = vec![0f32; ys.len()];
            let chunk = ROWS_PER_TASK * n;
            out.par_chunks_mut(chunk)
                .zip(ys.par_chunks(chunk).zip(dys.par_chunks(chunk)))
                .for_each(|(o, (y, dy))| pulp::Arch::new().dispatch(SoftmaxBackwardRows { y, dy, out: o, n }));
            f32_tensor(out, shape)
        }

        fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
            elementwise(x, gelu_slice, Flex::gelu)
        }

        fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
            elementwise(x, gelu_tanh_slice, composed_gelu_tanh::<Flex>)
        }

        fn gelu_tanh_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
            elementwise_backward(x, dy, gelu_tanh_backward_slice, composed_gelu_tanh_backward::<Flex>)
        }

        fn sum_of_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
            let x = x.to_contiguous();
            let Some(xs) = x.as_slice::<f32>() else {
                return Flex::float_sum(Flex::float_mul(x.clone(), x));
            };
            let partials: Vec<f64> = xs
                .par_chunks(ELEMS_PER_TASK)
                .map(|chunk| {
                    let mut lanes = [0f64; LANES];
                    let blocks = chunk.chunks_exact(LANES);
                    let tail: f64 = blocks.remainder().iter().map(|&v| v as f64 * v as f64).sum();
                    for c in blocks {
                        for (l, &v) in lanes.iter_mut().zip(c) {
                            *l += v as f64 * v as f64;
                        }
                    }
                    lanes.iter().sum::<f64>() + tail
                })
                .collect();
            f32_tensor(vec![partials.iter().sum::<f64>() as f32], Shape::new([1]))
        }

        fn gelu_exact_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
            elementwise_backward(x, dy, gelu_backward_slice, Flex::gelu_backward)
        }
    }

    /// An elementwise op as one pass over a copy of `x`'s values across threads (`host` over
    /// blocks in place); `fallback` when `x` is not f32.
    fn elementwise(x: FlexTensor, host: fn(&mut [f32]), fallback: fn(FlexTensor) -> FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = x.to_contiguous();
        let Some(xs) = x.as_slice::<f32>() else {
            return fallback(x);
        };
        let mut out = xs.to_vec();
        out.par_chunks_mut(ELEMS_PER_TASK).for_each(host);
        f32_tensor(out, shape)
    }

    /// An elementwise op's backward pass, `host(x, dy, out)` over blocks across threads;
    /// `fallback` when the tensors are not f32 or differ in length (shapes that only broadcasting
    /// could reconcile).
    fn elementwise_backward(
        x: FlexTensor,
        dy: FlexTensor,
        host: fn(&[f32], &[f32], &mut [f32]),
        fallback: fn(FlexTensor, FlexTensor) -> FlexTensor,
    ) -> FlexTensor {
        let shape = x.shape();
        let (x, dy) = (x.to_contiguous(), dy.to_contiguous());
        let (Some(xs), Some(dys)) = (x.as_slice::<f32>(), dy.as_slice::<f32>()) else {
            return fallback(x, dy);
        };
        if xs.len() != dys.len() {
            return fallback(x.clone(), dy.clone());
        }
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(ELEMS_PER_TASK)
            .zip(xs.par_chunks(ELEMS_PER_TASK).zip(dys.par_chunks(ELEMS_PER_TASK)))
            .for_each(|(o, (x, dy))| host(x, dy, o));
        f32_tensor(out, shape)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData, activation};

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Fixed pseudo-random values in [−scale, scale) (a 64-bit LCG), so that runs are repeatable.
    fn values(shape: [usize; 4], seed: u64, scale: f32, device: &Device) -> Tensor<4> {
        let mut state = seed;
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    /// The fused softmax equals Burn's composed one, forward and backward (a weighted sum as the
    /// loss, so that every output's gradient differs), on a contiguous and a transposed input.
    #[test]
    fn softmax_last_matches_burns_softmax_and_its_gradient() {
        let device = Device::flex().autodiff();
        for transpose in [false, true] {
            let base = values([2, 3, 7, 9], 7, 6.0, &device);
            let weights = values([2, 3, 7, 9], 11, 2.0, &device);
            let (base, weights) =
                if transpose { (base.swap_dims(2, 3), weights.swap_dims(2, 3)) } else { (base, weights) };
            let x = base.clone().require_grad();
            let fused = super::softmax_last(x.clone());
            let grads = (fused.clone() * weights.clone()).sum().backward();
            let fused_grad = x.grad(&grads).expect("gradient of the fused softmax");

            let x_ref = base.require_grad();
            let composed = activation::softmax(x_ref.clone(), 3);
            let grads = (composed.clone() * weights).sum().backward();
            let composed_grad = x_ref.grad(&grads).expect("gradient of Burn's softmax");

            assert!(max_abs_diff(fused, composed) < 1e-6, "forward, transpose={transpose}");
            let err = max_abs_diff(fused_grad, composed_grad);
            assert!(err < 2e-6, "backward, transpose={transpose}: {err}");
        }
    }

    /// ft's softmax kernel against softmax in f64, for row lengths below, at and above the
    /// 8-lane reductions' width and scores spread over ±30; a NaN makes its row NaN only.
    #[test]
    fn softmax_kernel_matches_f64_and_propagates_nan() {
        let device = Device::flex();
        for n in [1, 7, 8, 20, 96] {
            let x = values([2, 3, 5, n], n as u64, 30.0, &device);
            let xs = x.clone().into_data().try_to_vec::<f32>().expect("f32");
            let ys = super::softmax_last(x).into_data().try_to_vec::<f32>().expect("f32");
            for (x, y) in xs.chunks(n).zip(ys.chunks(n)) {
                let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (&y, e) in y.iter().zip(&e) {
                    assert!((y as f64 - e / sum).abs() <= 1e-6, "n = {n}: {y} vs {}", e / sum);
                }
            }
        }
        let x = Tensor::<2>::from_floats([[1.0, f32::NAN, 3.0], [1.0, 2.0, 3.0]], &device);
        let y = super::softmax_last(x).into_data().try_to_vec::<f32>().expect("f32");
        assert!(y[..3].iter().all(|v| v.is_nan()), "{y:?}");
        assert!(y[3..].iter().all(|v| v.is_finite()), "{y:?}");
    }

    /// The one-pass sum of squares equals `x.square().sum()` in f64, on a contiguous and a
    /// transposed tensor whose length is not a multiple of the lanes or of a task's block.
    #[test]
    fn sum_of_squares_matches_a_f64_sum() {
        let device = Device::flex();
        let x = values([3, 5, 77, 101], 5, 3.0, &device);
        let want: f64 = x.clone().into_data().iter::<f32>().map(|v| v as f64 * v as f64).sum();
        for t in [x.clone(), x.swap_dims(1, 3)] {
            let got: f32 = super::sum_of_squares(t).into_scalar();
            assert!((got as f64 - want).abs() <= 1e-6 * want, "{got} vs {want}");
        }
    }

    /// The composed gelu_new fallbacks (what a backend without the kernel runs) equal the kernel
    /// to rounding, value and gradient.
    #[test]
    fn composed_gelu_tanh_matches_the_kernel() {
        use crate::ops::gelu::{gelu_tanh_derivative, gelu_tanh_value};
        use burn::backend::Flex;
        use burn::tensor::Shape;
        let xs: Vec<f32> = (-300..300).map(|i| i as f32 / 37.0).collect();
        let dys: Vec<f32> = xs.iter().map(|x| (x * 1.3).sin()).collect();
        let n = xs.len();
        let t = |v: &[f32]| super::f32_tensor(v.to_vec(), Shape::new([n]));
        let y = super::composed_gelu_tanh::<Flex>(t(&xs)).to_contiguous();
        let g = super::composed_gelu_tanh_backward::<Flex>(t(&xs), t(&dys)).to_contiguous();
        let (y, g) = (y.as_slice::<f32>().expect("f32"), g.as_slice::<f32>().expect("f32"));
        for i in 0..n {
            assert!((y[i] - gelu_tanh_value(xs[i])).abs() < 1e-5, "value at {}", xs[i]);
            assert!((g[i] - dys[i] * gelu_tanh_derivative(xs[i])).abs() < 1e-5, "gradient at {}", xs[i]);
        }
    }

    /// Outside autodiff too, the fused op equals Burn's softmax, and rows of −∞ but one are one-hot.
    #[test]
    fn softmax_last_inference_and_masked_rows() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [f32::MIN, 0.0, f32::MIN]], &device);
        let y = super::softmax_last(x.clone());
        assert!(max_abs_diff(y.clone(), activation::softmax(x, 1)) < 1e-7);
        let row = y.slice([1..2, 0..3]).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(row, vec![0.0, 1.0, 0.0]);
    }
}
