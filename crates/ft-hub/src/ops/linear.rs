//! Linear layers as one GEMM over rows, with their own backward pass on the flex CPU backend.
//!
//! **Folding.** Burn 0.22 runs `linear` on an autodiff device as a batched matmul against the
//! weight broadcast to `[1, in, out]` (its dispatch backend has no linear op of its own, and
//! Burn's matmul policy keeps the batched form when a batch's rows fill its tiles, e.g. 128
//! tokens). The backward pass of that broadcast matmul computes the weight's gradient as `batch`
//! separate products `xᵢᵀ·dyᵢ` and then sums them over the batch. PyTorch's `nn.Linear` backward
//! runs one `[in, rows] @ [rows, out]` product. [`linear`] folds `[..., in]` into `[rows, in]`
//! first (a view), so there is one product forward and one each for the input and weight
//! gradients.
//!
//! **The products on flex** ([`LinearOps`], a Burn backend extension as [`super::fused`]): Burn's
//! flex matmul allocates every output twice (a zeroed byte buffer, then a 16-byte-aligned copy of
//! it: `FlexTensor::empty` → cubecl's `Bytes::from_bytes_vec`), which costs 10–25% per product
//! of a MiniLM training step (BENCHMARKS.md), and adds the bias in a second full pass. Here the
//! forward writes `x·W` into an f32 vector that already holds the bias rows (one pass, no copy),
//! and the backward computes `dy·Wᵀ`, `xᵀ·dy` and `Σ_rows dy` only for the tracked operands, and
//! keeps `x` only when the weight is tracked, as Burn's own linear does (a frozen base weight under
//! LoRA or adapters gets no product and holds no input). The products run on
//! [faer](https://docs.rs/faer)'s GEMM (its safe API; AVX2 or AVX-512 kernels chosen at run
//! time, both cores through rayon), which reads transposed operands through strides instead of
//! copying them. Inference on flex takes the same forward.
//!
//! Routed like the other fused ops: f32 tensors on the flex device (ft-hub's `flex` feature);
//! Burn's `linear` everywhere else (GPUs, ndarray). The products sum in another order than
//! Burn's gemm, so results agree to float rounding, not bit for bit.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, backend_extension, tensor::FloatTensor};
use burn::nn::Linear;
use burn::tensor::{DType, Tensor};

/// A linear layer's products over a `[rows, in]` input, with a hand-written backward pass under
/// autodiff.
///
/// Call them through [`linear`], which folds the rows and picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list. The `*_grad` methods are backward steps for the inner
/// backend: on an autodiff tensor their defaults call Burn's autodiff `linear_*_backward`, which
/// panics.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait LinearOps: Backend {
    /// `x · weight + bias`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`, `weight`: `[in, out]`, `bias`: `[out]`; output `[rows, out]`
    fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear(x, weight, Some(bias))
    }

    /// `x · weight` (a linear layer without bias).
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`, `weight`: `[in, out]`; output `[rows, out]`
    fn matmul_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear(x, weight, None)
    }

    /// `y + x · weight`: a product added to a tensor of the output's shape (LoRA's up-projection
    /// onto the base layer's output), in `y`'s buffer when nothing else holds it.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`, `weight`: `[in, out]`, `y`: `[rows, out]`; output `[rows, out]`
    fn matmul_rows_add(x: FloatTensor<Self>, weight: FloatTensor<Self>, y: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_add(y, Self::linear(x, weight, None))
    }

    /// The input's gradient, `dy · weightᵀ`.
    ///
    /// # Shapes
    /// - `weight`: `[in, out]`, `dy`: `[rows, out]`; output `[rows, in]`
    fn linear_rows_input_grad(weight: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear_x_backward(weight, dy)
    }

    /// The weight's gradient, `xᵀ · dy`.
    ///
    /// # Shapes
    /// - `x`: `[rows, in]`, `dy`: `[rows, out]`; output `[in, out]`
    fn linear_rows_weight_grad(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear_weight_backward(x, dy)
    }

    /// The bias's gradient, `dy` summed over the rows.
    ///
    /// # Shapes
    /// - `dy`: `[rows, out]`; output `[out]`
    fn linear_rows_bias_grad(dy: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::linear_bias_backward(dy)
    }
}

/// `x · weight (+ bias)` as Burn's [`burn::tensor::module::linear`], with `x`'s leading
/// dimensions folded into one row dimension: on flex (f32) as one GEMM with its own backward
/// pass ([`LinearOps`]); elsewhere through Burn's `linear`, folded on autodiff devices
/// (inference there keeps Burn's own batching policy).
///
/// # Shapes
/// - `x`: `[..., in]`, `weight`: `[in, out]`, `bias`: `[out]`; output `[..., out]`
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let device = x.device();
    let fused = cfg!(feature = "flex")
        && super::is_flex(&device)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !fused && (D <= 2 || !device.is_autodiff()) {
        #[cfg(not(feature = "flex"))]
        if super::is_flex(&device) {
            super::fused::warn_unfused(&device);
        }
        return burn::tensor::module::linear(x, weight, bias);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let d_out = weight.dims()[1];
    let x: Tensor<2> = x.reshape([rows, d_in]);
    let y: Tensor<2> =
        if fused { rows_on_flex(x, weight, bias) } else { burn::tensor::module::linear(x, weight, bias) };
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}

/// `y + x · weight`, as `y + linear(x, weight, None)`: on flex (f32) one autodiff node that adds
/// the product into `y`'s buffer ([`LinearOps::matmul_rows_add`]) — LoRA's `h · B` onto the base
/// layer's output, without a separate output and a second pass to add it; the gradient of `y` is
/// the output's gradient itself. Elsewhere (and for a `y` of another shape) the composed form.
///
/// # Shapes
/// - `x`: `[..., in]`, `weight`: `[in, out]`, `y`: `[..., out]`; output `[..., out]`
pub fn linear_add<const D: usize>(x: Tensor<D>, weight: Tensor<2>, y: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let dims = x.dims();
    let mut out = dims;
    out[D - 1] = weight.dims()[1];
    let fused = cfg!(feature = "flex")
        && super::is_flex(&device)
        && [x.dtype(), weight.dtype(), y.dtype()].iter().all(|d| *d == DType::F32)
        && y.dims() == out;
    if !fused {
        return y + linear(x, weight, None);
    }
    let rows: usize = dims[..D - 1].iter().product();
    let x: Tensor<2> = x.reshape([rows, dims[D - 1]]);
    let y: Tensor<2> = y.reshape([rows, out[D - 1]]);
    rows_add_on_flex(x, weight, y).reshape(out)
}

/// [`LinearOps::matmul_rows_add`] through Burn's dispatch.
#[cfg(feature = "flex")]
fn rows_add_on_flex(x: Tensor<2>, weight: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as LinearOps>::matmul_rows_add(
        x.into_dispatch(),
        weight.into_dispatch(),
        y.into_dispatch(),
    ))
}

/// Without ft-hub's `flex` feature nothing routes here ([`linear_add`] checks the feature).
#[cfg(not(feature = "flex"))]
fn rows_add_on_flex(x: Tensor<2>, weight: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
    y + burn::tensor::module::linear(x, weight, None)
}

/// [`LinearOps::linear_rows`] / [`LinearOps::matmul_rows`] through Burn's dispatch.
#[cfg(feature = "flex")]
fn rows_on_flex(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(match bias {
        Some(bias) => {
            <Dispatch as LinearOps>::linear_rows(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch())
        }
        None => <Dispatch as LinearOps>::matmul_rows(x.into_dispatch(), weight.into_dispatch()),
    })
}

/// Without ft-hub's `flex` feature nothing routes here ([`linear`] checks the feature).
#[cfg(not(feature = "flex"))]
fn rows_on_flex(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    burn::tensor::module::linear(x, weight, bias)
}

/// `layer.forward(x)` through [`linear`].
///
/// # Shapes
/// - `x`: `[..., in]`; output `[..., out]`
pub fn forward<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

impl<B: Backend + LinearOps, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        with_third::<B, C>(x, weight, bias, Third::Bias, B::linear_rows)
    }

    fn matmul_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let tracked = (x.is_tracked(), weight.is_tracked());
        let backward = LinearBackward::<B, 2>::new(Third::Bias);
        match backward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let state = saved::<B>(&x, &weight, tracked);
                prep.finish(state, B::matmul_rows(x, weight))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matmul_rows(x.into_primitive(), weight.into_primitive())),
        }
    }

    fn matmul_rows_add(x: FloatTensor<Self>, weight: FloatTensor<Self>, y: FloatTensor<Self>) -> FloatTensor<Self> {
        with_third::<B, C>(x, weight, y, Third::Addend, B::matmul_rows_add)
    }
}

/// A linear node with a third parent (a bias or an addend, as `third` says) whose inner result
/// `run` computes: the backward state as [`saved`], only tracked parents get a gradient.
fn with_third<B: Backend + LinearOps, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    extra: FloatTensor<Autodiff<B, C>>,
    third: Third,
    run: fn(FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let tracked = (x.is_tracked(), weight.is_tracked());
    let backward = LinearBackward::<B, 3>::new(third);
    match backward.prepare::<C>([x.node(), weight.node(), extra.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            let state = saved::<B>(&x, &weight, tracked);
            prep.finish(state, run(x, weight, extra.into_primitive()))
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(run(x.into_primitive(), weight.into_primitive(), extra.into_primitive()))
        }
    }
}

/// What a linear node's backward pass reads: the input `x` (for the weight's gradient) and the
/// weight (for the input's gradient).
type Saved<B> = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

/// The backward pass's state, as Burn's own linear keeps it: `x` only when the weight is tracked,
/// the weight only when `x` is — so a frozen base weight (LoRA, adapters, prompt tuning) does not
/// keep every layer's input alive until the backward pass.
fn saved<B: Backend>(
    x: &FloatTensor<B>,
    weight: &FloatTensor<B>,
    (x_tracked, weight_tracked): (bool, bool),
) -> Saved<B> {
    (weight_tracked.then(|| x.clone()), x_tracked.then(|| weight.clone()))
}

/// What a linear node's third parent is.
#[derive(Debug, Clone, Copy)]
enum Third {
    /// A bias `[out]` added to every row: its gradient is the output's summed over the rows.
    Bias,
    /// A tensor `[rows, out]` the product is added to: its gradient is the output's.
    Addend,
}

/// The backward step of a linear layer over rows: parents `[x, weight]`, `[x, weight, bias]` or
/// `[x, weight, y]`, state [`saved`]. Only the tracked parents get a gradient.
struct LinearBackward<B, const N: usize> {
    third: Third,
    backend: core::marker::PhantomData<B>,
}

impl<B, const N: usize> LinearBackward<B, N> {
    fn new(third: Third) -> Self {
        Self { third, backend: core::marker::PhantomData }
    }
}

impl<B, const N: usize> core::fmt::Debug for LinearBackward<B, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LinearBackward<{N}, {:?}>", self.third)
    }
}

impl<B: Backend + LinearOps, const N: usize> Backward<B, N> for LinearBackward<B, N> {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        for (parent, node) in ops.parents.into_iter().enumerate() {
            let Some(node) = node else { continue };
            let grad = match (parent, &x, &weight) {
                (0, _, Some(weight)) => B::linear_rows_input_grad(weight.clone(), dy.clone()),
                (1, Some(x), _) => B::linear_rows_weight_grad(x.clone(), dy.clone()),
                (2, _, _) => match self.third {
                    Third::Bias => B::linear_rows_bias_grad(dy.clone()),
                    Third::Addend => dy.clone(),
                },
                // A tracked parent always has its operand saved (`saved` uses the same flags).
                _ => continue,
            };
            grads.register::<B>(node.id, grad);
        }
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::{FloatTensorOps, ModuleOps};
    use burn::backend::{Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::Shape;
    use faer::{Accum, MatMut, MatRef, Par};
    use rayon::prelude::*;

    use super::LinearOps;
    use crate::ops::fused::f32_tensor;
    use crate::ops::strided::view;

    /// Rows per parallel task of the bias rows and the bias gradient.
    const ROWS_PER_TASK: usize = 256;

    /// `t` itself if [`view`] can read it, else a contiguous copy.
    fn viewable(t: FlexTensor) -> FlexTensor {
        if view(&t).is_some() { t } else { t.to_contiguous() }
    }

    /// Output columns above which a product of at least [`BLOCKED_ROWS`] rows runs as column
    /// blocks of about [`BLOCK_COLUMNS`].
    const WIDE: usize = 4096;
    /// Rows from which wide products run in blocks: measured at 1,024 (a training batch of
    /// 8 × 128 tokens); a few rows (generation's next-token step) stream the weight once either
    /// way, so they keep one call.
    const BLOCKED_ROWS: usize = 256;
    /// Target width of those blocks.
    const BLOCK_COLUMNS: usize = 1024;

    /// `dst ← lhs · rhs` (`Accum::Replace`) or `dst ← dst + lhs · rhs` (`Accum::Add`), over all
    /// threads, on faer's GEMM — on blocks of about 1,024 output columns when there are more than
    /// 4,096 and at least 256 rows (a language model's head over its vocabulary: faer ran GPT-2's
    /// `[1024, 768] · wteᵀ` at 96–107 GFLOP/s whole and 121–131 by blocks, allocation included,
    /// on an AMD EPYC with 2 threads: `gemm_probe --wide`).
    fn gemm(dst: &mut [f32], accum: Accum, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) {
        let (rows, cols) = (lhs.nrows(), rhs.ncols());
        let mut dst = MatMut::from_row_major_slice_mut(dst, rows, cols);
        if cols <= WIDE || rows < BLOCKED_ROWS {
            faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0f32, Par::rayon(0));
            return;
        }
        let blocks = cols.div_ceil(BLOCK_COLUMNS);
        let width = cols.div_ceil(blocks).next_multiple_of(8);
        let mut j = 0;
        while j < cols {
            let w = width.min(cols - j);
            let block = dst.as_mut().submatrix_mut(0, j, rows, w);
            faer::linalg::matmul::matmul(block, accum, lhs, rhs.submatrix(0, j, rhs.nrows(), w), 1.0f32, Par::rayon(0));
            j += w;
        }
    }

    /// `lhs · rhs` into a new row-major `[lhs rows, rhs columns]` tensor.
    fn product(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) -> FlexTensor {
        let (rows, cols) = (lhs.nrows(), rhs.ncols());
        let mut out = vec![0f32; rows * cols];
        gemm(&mut out, Accum::Replace, lhs, rhs);
        f32_tensor(out, Shape::new([rows, cols]))
    }

    /// `x · weight (+ bias)` into a new row-major tensor; Burn's `linear` for what faer cannot
    /// view (empty or non-f32 operands, inner dimensions that differ — Burn then panics with its
    /// own message).
    fn forward(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
        let (x, weight) = (viewable(x), viewable(weight));
        let bias = bias.map(|b| b.to_contiguous());
        let bias_values = bias.as_ref().map(|b| b.as_slice::<f32>());
        let (Some(lhs), Some(rhs)) = (view(&x), view(&weight)) else {
            return Flex::linear(x, weight, bias);
        };
        let (rows, cols) = (lhs.nrows(), rhs.ncols());
        if lhs.ncols() != rhs.nrows() || bias_values.is_some_and(|b| b.is_none_or(|b| b.len() != cols)) {
            return Flex::linear(x.clone(), weight.clone(), bias.clone());
        }
        let (mut out, accum) = match bias_values.flatten() {
            Some(b) => {
                let mut out = vec![0f32; rows * cols];
                out.par_chunks_mut(ROWS_PER_TASK * cols)
                    .for_each(|block| block.chunks_exact_mut(cols).for_each(|row| row.copy_from_slice(b)));
                (out, Accum::Add)
            }
            None => (vec![0f32; rows * cols], Accum::Replace),
        };
        gemm(&mut out, accum, lhs, rhs);
        f32_tensor(out, Shape::new([rows, cols]))
    }

    impl LinearOps for Flex {
        fn linear_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
            forward(x, weight, Some(bias))
        }

        fn matmul_rows(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
            forward(x, weight, None)
        }

        fn matmul_rows_add(x: FloatTensor<Self>, weight: FloatTensor<Self>, y: FloatTensor<Self>) -> FloatTensor<Self> {
            let (x, weight) = (viewable(x), viewable(weight));
            let fits = |lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>| {
                let shape = y.shape();
                lhs.ncols() == rhs.nrows()
                    && shape.num_dims() == 2
                    && (shape[0], shape[1]) == (lhs.nrows(), rhs.ncols())
                    && y.dtype() == burn::tensor::DType::F32
            };
            match (view(&x), view(&weight)) {
                (Some(lhs), Some(rhs)) if fits(lhs, rhs) => {
                    let (rows, cols) = (lhs.nrows(), rhs.ncols());
                    // `y` itself when it is its whole buffer (copied on write if shared), else a
                    // contiguous copy of it.
                    let whole =
                        y.is_contiguous() && y.layout().start_offset() == 0 && y.storage::<f32>().len() == rows * cols;
                    let mut out = if whole { y } else { y.to_contiguous() };
                    gemm(out.storage_mut::<f32>(), Accum::Add, lhs, rhs);
                    out
                }
                _ => Flex::float_add(y, Flex::linear(x, weight, None)),
            }
        }

        fn linear_rows_input_grad(weight: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
            let (weight, dy) = (viewable(weight), viewable(dy));
            match (view(&dy), view(&weight)) {
                (Some(dy_m), Some(w)) if dy_m.ncols() == w.ncols() => product(dy_m, w.transpose()),
                _ => Flex::linear_x_backward(weight, dy),
            }
        }

        fn linear_rows_weight_grad(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
            let (x, dy) = (viewable(x), viewable(dy));
            match (view(&x), view(&dy)) {
                (Some(x_m), Some(dy_m)) if x_m.nrows() == dy_m.nrows() => product(x_m.transpose(), dy_m),
                _ => Flex::linear_weight_backward(x, dy),
            }
        }

        fn linear_rows_bias_grad(dy: FloatTensor<Self>) -> FloatTensor<Self> {
            let shape = dy.shape();
            let dy = dy.to_contiguous();
            let cols = if shape.num_dims() == 2 { shape[1] } else { 0 };
            let Some(values) = dy.as_slice::<f32>().filter(|_| cols > 0) else {
                return Flex::linear_bias_backward(dy);
            };
            // Partial sums per block of rows, added in row order (the same bits on every run).
            let partials: Vec<Vec<f32>> = values
                .par_chunks(ROWS_PER_TASK * cols)
                .map(|block| {
                    let mut sum = vec![0f32; cols];
                    for row in block.chunks_exact(cols) {
                        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                    }
                    sum
                })
                .collect();
            let mut sum = vec![0f32; cols];
            for partial in &partials {
                sum.iter_mut().zip(partial).for_each(|(s, v)| *s += v);
            }
            f32_tensor(sum, Shape::new([cols]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution};

    /// Same output and gradients (weight, bias, input) as Burn's layer on an autodiff device, to
    /// float rounding. 32 rows per batch keep Burn's own call on its batched, broadcast path (its
    /// row tile is 32), so the two computations really differ.
    #[test]
    fn folded_linear_matches_burn() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let layer = LinearConfig::new(48, 40).init(&device);
        let x: Tensor<3> = Tensor::random([4, 32, 48], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let ours = forward(&layer, x.clone());
        let burns = layer.forward(x.clone());
        assert_eq!(ours.dims(), [4, 32, 40]);
        ours.clone()
            .into_data()
            .assert_approx_eq::<f32>(&burns.clone().into_data(), burn::tensor::Tolerance::absolute(1e-6));
        let g_ours_raw = (ours.clone() * ours).sum().backward();
        let g_burn_raw = (burns.clone() * burns).sum().backward();
        let (x_ours, x_burn): (Tensor<3>, Tensor<3>) = (x.grad(&g_ours_raw).unwrap(), x.grad(&g_burn_raw).unwrap());
        x_ours.into_data().assert_approx_eq::<f32>(&x_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
        let g_ours = GradientsParams::from_grads(g_ours_raw, &layer);
        let g_burn = GradientsParams::from_grads(g_burn_raw, &layer);
        let (w_ours, w_burn): (Tensor<2>, Tensor<2>) =
            (g_ours.get(layer.weight.id).unwrap(), g_burn.get(layer.weight.id).unwrap());
        w_ours.into_data().assert_approx_eq::<f32>(&w_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
        let (b_ours, b_burn): (Tensor<1>, Tensor<1>) = (
            g_ours.get(layer.bias.as_ref().unwrap().id).unwrap(),
            g_burn.get(layer.bias.as_ref().unwrap().id).unwrap(),
        );
        b_ours.into_data().assert_approx_eq::<f32>(&b_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
    }

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// `require_grad` where the device has autodiff.
    trait Track {
        fn track(self) -> Self;
    }

    impl<const D: usize> Track for Tensor<D> {
        fn track(self) -> Self {
            if self.device().is_autodiff() { self.require_grad() } else { self }
        }
    }

    /// ft's linear and Burn's `module::linear` on the same operands: output and the gradients of
    /// every tracked operand (a weighted sum as the loss, so every output's gradient differs).
    fn check<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>, what: &str) {
        let device = x.device();
        let dims = x.dims();
        let mut out_dims = dims;
        out_dims[D - 1] = weight.dims()[1];
        let loss_weights: Tensor<D> = Tensor::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
        let ours = linear(x.clone(), weight.clone(), bias.clone());
        let burns = burn::tensor::module::linear(x.clone(), weight.clone(), bias.clone());
        let err = max_abs_diff(ours.clone(), burns.clone());
        assert!(err < 1e-4, "{what}: forward {err}");
        if !device.is_autodiff() {
            return;
        }
        let g_ours = (ours * loss_weights.clone()).sum().backward();
        let g_burn = (burns * loss_weights).sum().backward();
        match (x.grad(&g_ours), x.grad(&g_burn)) {
            (Some(a), Some(b)) => assert!(max_abs_diff(a, b) < 1e-4, "{what}: input gradient"),
            (None, None) => {}
            _ => panic!("{what}: the input gradient is tracked on one side only"),
        }
        match (weight.grad(&g_ours), weight.grad(&g_burn)) {
            (Some(a), Some(b)) => assert!(max_abs_diff(a, b) < 1e-3, "{what}: weight gradient"),
            (None, None) => {}
            _ => panic!("{what}: the weight gradient is tracked on one side only"),
        }
        if let Some(bias) = bias {
            match (bias.grad(&g_ours), bias.grad(&g_burn)) {
                (Some(a), Some(b)) => assert!(max_abs_diff(a, b) < 1e-3, "{what}: bias gradient"),
                (None, None) => {}
                _ => panic!("{what}: the bias gradient is tracked on one side only"),
            }
        }
    }

    /// [`linear_add`] against `y + linear(x, w)`: output and every gradient, for a rank-8 and a
    /// 40-wide inner dimension, and `y` in every layout the node can get: its whole buffer but
    /// still held by the caller (written to a copy: `y` must not change), a column slice (the
    /// fold's reshape copies it), and contiguous rows of a larger buffer, at an offset and at its
    /// start (copied by the node). Flex only: elsewhere both sides are the composed form.
    #[cfg(feature = "flex")]
    #[test]
    fn linear_add_matches_composed() {
        for device in [Device::flex().autodiff(), Device::flex()] {
            device.seed(5);
            let normal = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            for d_in in [8, 40] {
                let x = normal([3, 50, d_in]).track();
                let w = Tensor::<2>::random([d_in, 40], Distribution::Normal(0.0, 1.0), &device).track();
                for (y, what) in [
                    (normal([3, 50, 40]), "whole, shared"),
                    (normal([3, 50, 60]).narrow(2, 10, 40), "column slice"),
                    (normal([4, 50, 40]).narrow(0, 1, 3), "rows at an offset"),
                    (normal([4, 50, 40]).narrow(0, 0, 3), "rows at the start of a larger buffer"),
                ] {
                    let y = y.detach().track();
                    let before = y.clone().into_data();
                    let loss_weights = normal([3, 50, 40]);
                    let ours = linear_add(x.clone(), w.clone(), y.clone());
                    let want = y.clone() + linear(x.clone(), w.clone(), None);
                    assert!(max_abs_diff(ours.clone(), want.clone()) < 1e-4, "{d_in} {what}: forward");
                    y.clone().into_data().assert_eq(&before, true);
                    if !device.is_autodiff() {
                        continue;
                    }
                    let g_ours = (ours * loss_weights.clone()).sum().backward();
                    let g_want = (want * loss_weights).sum().backward();
                    for (a, b, grad) in [(&x, &x, "x"), (&y, &y, "y")] {
                        let (a, b) = (a.grad(&g_ours).unwrap(), b.grad(&g_want).unwrap());
                        assert!(max_abs_diff(a, b) < 1e-4, "{d_in} {what}: {grad} gradient");
                    }
                    let (a, b) = (w.grad(&g_ours).unwrap(), w.grad(&g_want).unwrap());
                    assert!(max_abs_diff(a, b) < 1e-3, "{d_in} {what}: weight gradient");
                }
            }
        }
    }

    /// An output nothing else holds gets the product added in its own buffer (no new output),
    /// and the values are `y + x·w`.
    #[cfg(feature = "flex")]
    #[test]
    fn linear_add_writes_into_an_unshared_output() {
        use burn::backend::Flex;
        let device = Device::flex();
        device.seed(6);
        let normal = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (x, w, y) = (normal([20, 8]), normal([8, 30]), normal([20, 30]));
        let want = y.clone() + x.clone().matmul(w.clone());
        let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a flex tensor");
        // A copy of y's values in a buffer of its own.
        let y = flex(Tensor::from_data(y.into_data(), &device));
        let buffer = y.bytes().as_ptr();
        let out = <Flex as LinearOps>::matmul_rows_add(flex(x), flex(w), y);
        assert_eq!(out.bytes().as_ptr(), buffer, "the sum is written into y's buffer");
        let want = want.into_data().try_to_vec::<f32>().expect("f32");
        let got = out.as_slice::<f32>().expect("contiguous f32");
        let err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
        assert!(got.len() == want.len() && err < 1e-4, "{err}");
    }

    /// `y.sum().backward()` hands the node a broadcast (stride-0) output gradient.
    #[test]
    fn broadcast_output_gradient() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let x = Tensor::<3>::random([2, 30, 16], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let w = Tensor::<2>::random([16, 8], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let b = Tensor::<1>::random([8], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let ours = linear(x.clone(), w.clone(), Some(b.clone())).sum().backward();
        let burns = burn::tensor::module::linear(x.clone(), w.clone(), Some(b.clone())).sum().backward();
        assert!(max_abs_diff(x.grad(&ours).unwrap(), x.grad(&burns).unwrap()) < 1e-4);
        assert!(max_abs_diff(w.grad(&ours).unwrap(), w.grad(&burns).unwrap()) < 1e-3);
        assert!(max_abs_diff(b.grad(&ours).unwrap(), b.grad(&burns).unwrap()) < 1e-4);
    }

    /// The flex GEMM path against Burn: with and without bias, a weight stored transposed (as a
    /// PyTorch `[out, in]` tensor viewed as `[in, out]`), a transposed input, a wide output (run
    /// in column blocks), a frozen weight
    /// (only the input tracked), an untracked input, 1-D and 4-D inputs, more rows than one bias
    /// block, views with a start offset (one position, a column slice), and inference.
    #[test]
    fn flex_gemm_path_matches_burn() {
        for device in [Device::flex().autodiff(), Device::flex()] {
            device.seed(9);
            let normal = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let w = normal([48, 40]).track();
            let b = Tensor::<1>::random([40], Distribution::Normal(0.0, 1.0), &device).track();
            let x3 = || Tensor::<3>::random([3, 100, 48], Distribution::Normal(0.0, 1.0), &device).track();
            check(x3(), w.clone(), Some(b.clone()), "bias");
            check(x3(), w.clone(), None, "no bias");
            check(x3(), normal([40, 48]).transpose().track(), Some(b.clone()), "transposed weight");
            let xt = Tensor::<3>::random([3, 48, 100], Distribution::Normal(0.0, 1.0), &device).swap_dims(1, 2);
            check(xt.track(), w.clone(), Some(b.clone()), "transposed input");
            check(x3(), normal([48, 40]), Some(Tensor::<1>::zeros([40], &device)), "frozen weight and bias");
            check(Tensor::<1>::random([48], Distribution::Normal(0.0, 1.0), &device).track(), w.clone(), None, "1-D");
            let x4 = Tensor::<4>::random([2, 3, 5, 48], Distribution::Normal(0.0, 1.0), &device).track();
            check(x4, w.clone(), Some(b.clone()), "4-D");
            let long = Tensor::<2>::random([700, 48], Distribution::Normal(0.0, 1.0), &device).track();
            check(long, w.clone(), Some(b.clone()), "700 rows");
            // Views with a start offset: one position of each sequence (as the first-token heads
            // read), and a slice of the columns (row stride 48, 32 columns).
            // (Leaves holding the view's layout: `check` runs two backward passes.)
            let token = x3().narrow(1, 5, 1).reshape([3, 48]).detach().track();
            check(token, w.clone(), Some(b.clone()), "one position");
            let columns = x3().narrow(2, 8, 32).detach().track();
            check(columns, normal([48, 40]).narrow(0, 8, 32).track(), None, "column slice");
            // More than 4,096 output columns: column blocks of 824 and a last one of 803 (forward
            // and the weight gradient), with a PyTorch-layout weight as a language model's head.
            // (Small weights: the input gradient sums 4,099 products, within the tolerance.)
            let small = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.02), &device);
            let wide_bias = Tensor::<1>::random([4099], Distribution::Normal(0.0, 1.0), &device).track();
            check(x3(), small([48, 4099]).track(), Some(wide_bias), "wide output");
            check(x3(), small([4099, 48]).transpose().track(), None, "wide transposed weight");
            let frozen_input = Tensor::<3>::random([3, 100, 48], Distribution::Normal(0.0, 1.0), &device);
            check(frozen_input, w.clone(), Some(b.clone()), "input not tracked");
        }
    }
}
