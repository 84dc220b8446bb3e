//! Cross-entropy's per-row negative log-likelihood as one autodiff node on the flex CPU backend.
//!
//! `-log_softmax(logits)[label]` composed of Burn's ops (max, subtract, exp, sum, log, subtract,
//! gather) writes and keeps several `[rows, classes]` tensors and back-propagates through each:
//! for a causal LM's logits — 2,048 tokens × GPT-2's 50,257-word vocabulary is 412 MB per tensor
//! — that is about a dozen full passes per step. [`nll_rows`] computes each row's maximum and
//! `ln Σ e^(x − max)` in one pass (GELU's vectorised `exp`, relative error ≤ 3e-7) and keeps only
//! those beside the logits; its backward fills the gradient with zeros across threads and writes
//! `dy·(softmax − one-hot)` over it row by row. The loss is `(max − x[label]) + ln Σ` and the
//! softmax `e^(x − max) / Σ`, as the composed form subtracts the maximum first; the values agree
//! with it to float rounding, not bit for bit.
//!
//! Routed like the other ops here: f32 logits on the flex device (ft-hub's `flex` feature); the
//! composed Burn ops everywhere else. The two differ only where the composed form gives NaN or
//! panics: an ignored row contributes 0 loss and 0 gradient here whatever its logits (the
//! composed form's `NaN · 0` is NaN when an ignored row's logits are not finite), and a label
//! past the last class gives a NaN loss and NaN gradient row here (Burn's gather panics on flex
//! and is backend-defined elsewhere; ft's data checks labels before training).

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, TensorMetadata, backend_extension,
    tensor::{FloatTensor, IntTensor},
};
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Shape, Slice, Tensor};

/// PyTorch's `ignore_index`: rows whose label equals it have no loss and no gradient.
pub use crate::batch::IGNORE_INDEX;

/// Each row's negative log-likelihood of its label under the softmax of its logits, as one
/// autodiff node with its own backward pass.
///
/// Call it through [`nll_rows`], which picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait CrossEntropyOps: Backend {
    /// `logsumexp(logits[r]) − logits[r, labels[r]]` per row; 0 where the label is
    /// [`IGNORE_INDEX`], other negative labels read as 0 (as `clamp_min(0)`), NaN for labels past
    /// the last class.
    ///
    /// # Shapes
    /// - `logits`: `[rows, classes]`, `labels`: `[rows]`; output `[rows]`
    fn nll_rows(logits: FloatTensor<Self>, labels: IntTensor<Self>) -> FloatTensor<Self>;

    /// [`CrossEntropyOps::nll_rows`], each row's maximum and each row's `ln Σ e^(x − max)`, as
    /// rows 0, 1 and 2 of one tensor (the last two are what the backward pass keeps).
    ///
    /// # Shapes
    /// - `logits`: `[rows, classes]`, `labels`: `[rows]`; output `[3, rows]`
    fn nll_and_stats(logits: FloatTensor<Self>, labels: IntTensor<Self>) -> FloatTensor<Self>;

    /// The logits' gradient: `dy[r] · (e^(logits[r] − max[r]) / Σ[r] − one_hot(labels[r]))`, zero
    /// rows where the label is [`IGNORE_INDEX`], NaN rows for labels past the last class.
    ///
    /// # Shapes
    /// - `logits`: `[rows, classes]`, `labels`, `dy`: `[rows]`, `stats`: `[3, rows]` (from
    ///   [`CrossEntropyOps::nll_and_stats`]); output `[rows, classes]`
    fn nll_rows_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        stats: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Each row's negative log-likelihood of its label, `-log_softmax(logits)[r, labels[r]]`, 0 where
/// the label is [`IGNORE_INDEX`] (other negative labels read as class 0): on flex (f32) as one
/// node ([`CrossEntropyOps`]); Burn's composed ops elsewhere.
///
/// # Shapes
/// - `logits`: `[rows, classes]`, `labels`: `[rows]`; output `[rows]`
pub fn nll_rows(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [rows, classes] = logits.dims();
    let readable = logits.dtype() == DType::F32
        && matches!(labels.dtype(), DType::I64 | DType::I32)
        && classes > 0
        && labels.dims() == [rows];
    if cfg!(feature = "flex") && readable && super::is_flex(&logits.device()) {
        #[cfg(feature = "flex")]
        return Tensor::from_dispatch(<burn::backend::Dispatch as CrossEntropyOps>::nll_rows(
            logits.into_dispatch(),
            labels.into_dispatch(),
        ));
    }
    composed_nll_rows(logits, labels)
}

/// [`nll_rows`] composed of Burn's tensor ops (see the module docs for where the two differ).
///
/// # Shapes
/// - `logits`: `[rows, classes]`, `labels`: `[rows]`; output `[rows]`
pub fn composed_nll_rows(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let keep = labels.clone().not_equal_elem(IGNORE_INDEX).float();
    let safe = labels.clamp_min(0).reshape([n, 1]);
    let picked = log_softmax(logits, 1).gather(1, safe).reshape([n]);
    -(picked * keep)
}

impl<B: Backend + CrossEntropyOps, C: CheckpointStrategy> CrossEntropyOps for Autodiff<B, C> {
    fn nll_rows(logits: FloatTensor<Self>, labels: IntTensor<Self>) -> FloatTensor<Self> {
        match NllBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let stats = B::nll_and_stats(logits.clone(), labels.clone());
                let n = stats.shape()[1];
                let first = [Slice::new(0, Some(1), 1), Slice::full()];
                let nll = B::float_reshape(B::float_slice(stats.clone(), &first), Shape::new([n]));
                prep.finish((logits, labels, stats), nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::nll_rows(logits.into_primitive(), labels)),
        }
    }

    /// Not differentiable: the inner backend's values, untracked.
    fn nll_and_stats(logits: FloatTensor<Self>, labels: IntTensor<Self>) -> FloatTensor<Self> {
        <Self as AutodiffBackend>::from_inner(B::nll_and_stats(<Self as AutodiffBackend>::inner(logits), labels))
    }

    /// Not differentiable: the inner backend's values, untracked.
    fn nll_rows_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        stats: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inner = <Self as AutodiffBackend>::inner;
        <Self as AutodiffBackend>::from_inner(B::nll_rows_backward(inner(logits), labels, inner(stats), inner(dy)))
    }
}

/// The backward step of [`CrossEntropyOps::nll_rows`]: state, the logits (shared, not copied),
/// the labels and [`CrossEntropyOps::nll_and_stats`]'s rows.
#[derive(Debug)]
struct NllBackward;

impl<B: Backend + CrossEntropyOps> Backward<B, 1> for NllBackward {
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (logits, labels, stats) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::nll_rows_backward(logits, labels, stats, dy));
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{
        Flex, TensorMetadata,
        tensor::{FloatTensor, IntTensor},
    };
    use burn::tensor::{DType, Shape};
    use rayon::prelude::*;

    use super::{CrossEntropyOps, IGNORE_INDEX};
    use crate::ops::fused::{exp_shifted, f32_tensor, lane_reduce};

    /// Values per parallel task (whole rows, at least one).
    const ELEMS_PER_TASK: usize = 1 << 15;

    /// Rows per parallel task for rows of `classes` values.
    fn rows_per_task(classes: usize) -> usize {
        (ELEMS_PER_TASK / classes).max(1)
    }

    /// A row's label as `nll_rows` reads it: `None` for [`IGNORE_INDEX`], 0 for other negative
    /// labels (as `clamp_min(0)`), `Some(classes)` (past the last class: NaN) for those too large.
    fn label(l: i64, classes: usize) -> Option<usize> {
        if l == IGNORE_INDEX {
            return None;
        }
        Some(usize::try_from(l.max(0)).map_or(classes, |l| l.min(classes)))
    }

    /// The labels as [`label`] reads them, if they are 32- or 64-bit integers.
    fn labels(labels: &FlexTensor, classes: usize) -> Option<Vec<Option<usize>>> {
        let labels = labels.to_contiguous();
        Some(match labels.dtype() {
            DType::I64 => labels.as_slice::<i64>()?.iter().map(|&l| label(l, classes)).collect(),
            DType::I32 => labels.as_slice::<i32>()?.iter().map(|&l| label(l as i64, classes)).collect(),
            _ => return None,
        })
    }

    /// The logits (contiguous f32, `[rows, classes]`) and their labels, if this kernel reads them.
    fn operands(logits: &FlexTensor, labels_t: &FlexTensor) -> Option<(FlexTensor, usize, Vec<Option<usize>>)> {
        let shape = logits.shape();
        if shape.num_dims() != 2 || shape[1] == 0 || logits.dtype() != DType::F32 {
            return None;
        }
        let classes = shape[1];
        let labels = labels(labels_t, classes)?;
        (labels.len() == shape[0]).then(|| (logits.to_contiguous(), classes, labels))
    }

    /// A row's maximum and `ln Σ e^(x − max)`.
    #[inline(always)]
    fn max_and_ln_sum(row: &[f32]) -> (f32, f32) {
        let max = lane_reduce(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        let mut lanes = [0f32; 8];
        let chunks = row.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| exp_shifted(v - max)).sum();
        for c in chunks {
            for k in 0..8 {
                lanes[k] += exp_shifted(c[k] - max);
            }
        }
        (max, (lanes.iter().sum::<f32>() + tail).ln())
    }

    /// A row's negative log-likelihood of `label`, `(max − x[label]) + ln Σ`: 0 for an ignored row,
    /// NaN for a label past the last class.
    fn nll(row: &[f32], label: Option<usize>, (max, ln_sum): (f32, f32)) -> f32 {
        match label {
            None => 0.0,
            Some(l) => row.get(l).map_or(f32::NAN, |&x| (max - x) + ln_sum),
        }
    }

    /// `(nll, max, ln Σ)` of each row of `rows` (`classes` values each), in the dispatched CPU
    /// features. (A `WithSimd` type, not a closure: a closure's body is a function of its own,
    /// compiled for the baseline CPU — the row loops ran as scalar SSE code, 12% of a small
    /// GPT-2's training step.)
    struct ForwardRows<'a> {
        rows: &'a [f32],
        labels: &'a [Option<usize>],
        classes: usize,
    }

    impl pulp::WithSimd for ForwardRows<'_> {
        type Output = Vec<(f32, f32, f32)>;

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> Self::Output {
            let mut per_row = Vec::with_capacity(self.labels.len());
            for (row, &label) in self.rows.chunks_exact(self.classes).zip(self.labels) {
                let stats = max_and_ln_sum(row);
                per_row.push((nll(row, label, stats), stats.0, stats.1));
            }
            per_row
        }
    }

    /// The logits' gradient for the rows of one task: `dy·softmax(x)` minus `dy` at the label,
    /// zero for ignored rows (left as they are in `out`), NaN for a label past the last class.
    struct BackwardRows<'a> {
        out: &'a mut [f32],
        rows: &'a [f32],
        /// The index of this task's first row in `labels`, `max`, `ln_sum` and `dy`.
        first: usize,
        classes: usize,
        labels: &'a [Option<usize>],
        max: &'a [f32],
        ln_sum: &'a [f32],
        dy: &'a [f32],
    }

    impl pulp::WithSimd for BackwardRows<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let classes = self.classes;
            for (i, (o, x)) in self.out.chunks_exact_mut(classes).zip(self.rows.chunks_exact(classes)).enumerate() {
                let r = self.first + i;
                let Some(label) = self.labels[r] else { continue };
                let (max, g) = (self.max[r], self.dy[r]);
                let scale = g / self.ln_sum[r].exp();
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = scale * exp_shifted(x - max);
                }
                match o.get_mut(label) {
                    Some(o) => *o -= g,
                    // A label past the last class: its loss was NaN, so is its gradient.
                    None => o.iter_mut().for_each(|o| *o = f32::NAN),
                }
            }
        }
    }

    /// `(nll, max, ln Σ)` per row, across threads.
    fn forward(values: &[f32], classes: usize, labels: &[Option<usize>]) -> Vec<(f32, f32, f32)> {
        let rows_per_task = rows_per_task(classes);
        values
            .par_chunks(rows_per_task * classes)
            .zip(labels.par_chunks(rows_per_task))
            .flat_map_iter(|(rows, labels)| {
                let per_row: Vec<(f32, f32, f32)> = pulp::Arch::new().dispatch(ForwardRows { rows, labels, classes });
                per_row
            })
            .collect()
    }

    impl CrossEntropyOps for Flex {
        fn nll_rows(logits: FloatTensor<Self>, labels_t: IntTensor<Self>) -> FloatTensor<Self> {
            let stats = Self::nll_and_stats(logits, labels_t);
            let n = stats.shape()[1];
            let values = stats.as_slice::<f32>().map_or_else(|| vec![f32::NAN; n], |v| v[..n].to_vec());
            f32_tensor(values, Shape::new([n]))
        }

        fn nll_and_stats(logits: FloatTensor<Self>, labels_t: IntTensor<Self>) -> FloatTensor<Self> {
            let Some((contiguous, classes, labels)) = operands(&logits, &labels_t) else {
                return not_read(&logits);
            };
            let Some(values) = contiguous.as_slice::<f32>() else { return not_read(&logits) };
            let rows = forward(values, classes, &labels);
            let n = rows.len();
            let values: Vec<f32> =
                rows.iter().map(|r| r.0).chain(rows.iter().map(|r| r.1)).chain(rows.iter().map(|r| r.2)).collect();
            f32_tensor(values, Shape::new([3, n]))
        }

        fn nll_rows_backward(
            logits: FloatTensor<Self>,
            labels_t: IntTensor<Self>,
            stats: FloatTensor<Self>,
            dy: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            let shape = logits.shape();
            let nan = || f32_tensor(vec![f32::NAN; shape.num_elements()], shape.clone());
            // (The forward pass read these operands; NaN rather than a panic if not.)
            let Some((logits, classes, labels)) = operands(&logits, &labels_t) else { return nan() };
            let (stats, dy) = (stats.to_contiguous(), dy.to_contiguous());
            let n = labels.len();
            let (Some(values), Some(stats), Some(dy)) =
                (logits.as_slice::<f32>(), stats.as_slice::<f32>(), dy.as_slice::<f32>())
            else {
                return nan();
            };
            if stats.len() != 3 * n || dy.len() != n {
                return nan();
            }
            let (max, ln_sum) = (&stats[n..2 * n], &stats[2 * n..]);
            // Zeros across threads (what ignored rows keep), then each other row written over.
            let mut out = Vec::with_capacity(values.len());
            (0..values.len()).into_par_iter().map(|_| 0f32).collect_into_vec(&mut out);
            let rows_per_task = rows_per_task(classes);
            let per_task = rows_per_task * classes;
            out.par_chunks_mut(per_task).zip(values.par_chunks(per_task)).enumerate().for_each(
                |(task, (out, rows))| {
                    pulp::Arch::new().dispatch(BackwardRows {
                        out,
                        rows,
                        first: task * rows_per_task,
                        classes,
                        labels: &labels,
                        max,
                        ln_sum,
                        dy,
                    })
                },
            );
            f32_tensor(out, shape)
        }
    }

    /// What [`CrossEntropyOps::nll_and_stats`] gives for operands the kernel does not read (never
    /// reached through [`super::nll_rows`], which checks them first): NaN, so that a loss built on
    /// it is reported as not finite rather than wrong.
    fn not_read(logits: &FlexTensor) -> FlexTensor {
        let n = logits.shape().first().copied().unwrap_or(0);
        f32_tensor(vec![f32::NAN; 3 * n], Shape::new([3, n]))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    /// Whether every value is within `tol·(1 + |reference|)` of the reference (false for NaN).
    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= tol * (1.0 + b.abs()))
    }

    /// The same losses and logits' gradients as the composed form, to float rounding — with an
    /// ignored row, a negative label read as class 0, wide rows (a vocabulary) and narrow ones
    /// (a classifier), and a row of large logits.
    #[test]
    fn matches_the_composed_form() {
        let device = Device::flex().autodiff();
        device.seed(5);
        for classes in [3, 50_257 / 7, 9] {
            let logits: Tensor<2> = Tensor::random([6, classes], Distribution::Normal(0.0, 3.0), &device);
            let logits =
                logits.clone().slice_assign([5..6, 0..classes], logits.clone().slice([5..6, 0..classes]) * 40.0);
            let labels = Tensor::<1, Int>::from_data(
                TensorData::from([0, (classes - 1) as i64, IGNORE_INDEX, -3, 1, 2 % classes as i64]),
                &device,
            );
            let g: Tensor<1> = Tensor::random([6], Distribution::Normal(0.0, 1.0), &device);
            let run = |f: fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1>| {
                let x = logits.clone().detach().require_grad();
                let y = f(x.clone(), labels.clone());
                let grads = (y.clone() * g.clone()).sum().backward();
                let dx: Tensor<2> = x.grad(&grads).expect("a gradient");
                (y.into_data().try_to_vec::<f32>().unwrap(), dx.into_data().try_to_vec::<f32>().unwrap())
            };
            let ((y, dx), (y_ref, dx_ref)) = (run(nll_rows), run(composed_nll_rows));
            assert_eq!(y[2], 0.0, "an ignored row has no loss");
            assert!(close(y, y_ref, 2e-6), "{classes} classes: loss");
            assert!(close(dx.clone(), dx_ref, 2e-6), "{classes} classes: gradient");
            assert!(dx[2 * classes..3 * classes].iter().all(|&v| v == 0.0), "an ignored row has no gradient");
        }
    }

    /// Without autodiff, and with untracked logits under autodiff, the same values; a label past
    /// the last class gives NaN (reported as a non-finite loss), not a panic.
    #[test]
    fn untracked_and_out_of_range() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let logits: Tensor<2> = Tensor::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
            let labels = Tensor::<1, Int>::from_data(TensorData::from([3, 0, IGNORE_INDEX]), &device);
            let (y, y_ref) = (nll_rows(logits.clone(), labels.clone()), composed_nll_rows(logits.clone(), labels));
            assert!(close(y.into_data().try_to_vec().unwrap(), y_ref.into_data().try_to_vec().unwrap(), 1e-6));
            let bad = Tensor::<1, Int>::from_data(TensorData::from([4, 0, 1]), &device);
            let x = if device.is_autodiff() { logits.detach().require_grad() } else { logits };
            let y = nll_rows(x.clone(), bad);
            let values: Vec<f32> = y.clone().into_data().try_to_vec().unwrap();
            assert!(values[0].is_nan() && values[1].is_finite());
            if device.is_autodiff() {
                let dx: Tensor<2> = x.grad(&y.sum().backward()).expect("a gradient");
                let dx: Vec<f32> = dx.into_data().try_to_vec().unwrap();
                assert!(dx[..4].iter().all(|v| v.is_nan()) && dx[4..].iter().all(|v| v.is_finite()));
            }
        }
    }
}
