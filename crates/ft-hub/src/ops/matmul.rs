//! Batched matrix products with a scale, `alpha · a · b` per batch entry, with their own backward
//! pass on the flex CPU backend: attention's `q·kᵀ/√d` and `p·v` in training.
//!
//! Under autodiff Burn runs `(q.matmul(k.swap_dims(2, 3))) * scale` as two nodes: a batched
//! matmul whose output flex allocates twice (see [`super::linear`]) and a full pass over the
//! `[batch, heads, q, k]` scores for the scale, each with its backward. Here it is one node: every
//! batch entry (one head of one sequence) is one small product on [faer](https://docs.rs/faer)'s
//! GEMM with the scale as its `alpha`, the entries spread over the cores; the operands are read
//! through their strides (the heads split out of `[batch, seq, heads·d]` and `kᵀ` are views, not
//! copies), and the output is written once. The backward computes `alpha · dy·bᵀ` and
//! `alpha · aᵀ·dy` the same way, only for the tracked operands, and the node keeps `a` only when
//! `b` is tracked and `b` only when `a` is.
//!
//! Routed like the other fused ops: f32 tensors on the flex device (ft-hub's `flex` feature);
//! Burn's `matmul` and a scalar multiply everywhere else (GPUs, ndarray). Sums run in another
//! order than Burn's gemm, so results agree to float rounding, not bit for bit.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Tensor};

/// `alpha · a · b` over matching leading (batch) dimensions, with a hand-written backward pass
/// under autodiff.
///
/// Call it through [`matmul_scaled`], which picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait MatmulOps: Backend {
    /// `alpha · a · b` per batch entry.
    ///
    /// # Shapes
    /// - `a`: `[..., m, k]`, `b`: `[..., k, n]` (the same leading dimensions); output `[..., m, n]`
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn matmul_scaled(a: FloatTensor<Self>, b: FloatTensor<Self>, alpha: f32) -> FloatTensor<Self> {
        Self::float_mul_scalar(Self::float_matmul(a, b), alpha.into())
    }
}

/// `alpha · a · b` as Burn's `a.matmul(b) * alpha`: on flex (f32, the same leading dimensions)
/// as one autodiff node whose batch entries run on faer's GEMM ([`MatmulOps`]); elsewhere, and
/// for broadcast batches, Burn's matmul and, unless `alpha` is 1, a multiply.
///
/// # Shapes
/// - `a`: `[..., m, k]`, `b`: `[..., k, n]`; output `[..., m, n]`
pub fn matmul_scaled<const D: usize>(a: Tensor<D>, b: Tensor<D>, alpha: f64) -> Tensor<D> {
    let device = a.device();
    let (da, db) = (a.dims(), b.dims());
    let same_batch = da[..D.saturating_sub(2)] == db[..D.saturating_sub(2)];
    if cfg!(feature = "flex")
        && same_batch
        && super::is_flex(&device)
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
    {
        #[cfg(feature = "flex")]
        return Tensor::from_dispatch(<burn::backend::Dispatch as MatmulOps>::matmul_scaled(
            a.into_dispatch(),
            b.into_dispatch(),
            alpha as f32,
        ));
    }
    #[cfg(not(feature = "flex"))]
    if super::is_flex(&device) {
        super::fused::warn_unfused(&device);
    }
    let product = a.matmul(b);
    if alpha == 1.0 { product } else { product * alpha }
}

impl<B: Backend + MatmulOps, C: CheckpointStrategy> MatmulOps for Autodiff<B, C> {
    fn matmul_scaled(a: FloatTensor<Self>, b: FloatTensor<Self>, alpha: f32) -> FloatTensor<Self> {
        let (sa, sb) = (a.shape(), b.shape());
        let d = sa.num_dims();
        if d < 2 || sb.num_dims() != d || (0..d - 2).any(|i| sa[i] != sb[i]) {
            // Broadcast batches: Burn's autodiff matmul, whose backward sums the broadcast out.
            use burn::backend::ops::FloatTensorOps;
            return Self::float_mul_scalar(Self::float_matmul(a, b), alpha.into());
        }
        let (a_tracked, b_tracked) = (a.is_tracked(), b.is_tracked());
        match MatmulBackward::<B>(core::marker::PhantomData)
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (a, b) = (a.into_primitive(), b.into_primitive());
                let state = (b_tracked.then(|| a.clone()), a_tracked.then(|| b.clone()), alpha);
                prep.finish(state, B::matmul_scaled(a, b, alpha))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matmul_scaled(a.into_primitive(), b.into_primitive(), alpha)),
        }
    }
}

/// The backward step of [`MatmulOps::matmul_scaled`]: parents `[a, b]`; state `(a if b is
/// tracked, b if a is tracked, alpha)`. `da = alpha · dy·bᵀ`, `db = alpha · aᵀ·dy`, the
/// transposes being views.
struct MatmulBackward<B>(core::marker::PhantomData<B>);

impl<B> core::fmt::Debug for MatmulBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MatmulBackward")
    }
}

impl<B: Backend + MatmulOps> Backward<B, 2> for MatmulBackward<B> {
    type State = (Option<FloatTensor<B>>, Option<FloatTensor<B>>, f32);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (a, b, alpha) = ops.state;
        let last = dy.shape().num_dims() - 1;
        let [a_node, b_node] = ops.parents;
        if let (Some(node), Some(b)) = (a_node, b) {
            let bt = B::float_swap_dims(b, last - 1, last);
            grads.register::<B>(node.id, B::matmul_scaled(dy.clone(), bt, alpha));
        }
        if let (Some(node), Some(a)) = (b_node, a) {
            let at = B::float_swap_dims(a, last - 1, last);
            grads.register::<B>(node.id, B::matmul_scaled(at, dy, alpha));
        }
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Flex, TensorMetadata, ops::FloatTensorOps, tensor::FloatTensor};
    use burn::tensor::Shape;
    use faer::{Accum, MatMut, MatRef, Par};
    use rayon::prelude::*;

    use super::MatmulOps;
    use crate::ops::fused::f32_tensor;
    use crate::ops::strided::Batched;

    /// `t` and its layout, copied to a contiguous tensor first if faer cannot read it as it is.
    fn readable(t: FlexTensor) -> Option<(FlexTensor, Batched)> {
        if let Some(layout) = Batched::of(&t) {
            return Some((t, layout));
        }
        let t = t.to_contiguous();
        let layout = Batched::of(&t)?;
        Some((t, layout))
    }

    /// Entries per batch below which each product uses every thread instead of one entry per
    /// thread.
    const PARALLEL_ENTRIES: usize = 4;

    fn fallback(a: FlexTensor, b: FlexTensor, alpha: f32) -> FlexTensor {
        Flex::float_mul_scalar(Flex::float_matmul(a, b), alpha.into())
    }

    impl MatmulOps for Flex {
        fn matmul_scaled(a: FloatTensor<Self>, b: FloatTensor<Self>, alpha: f32) -> FloatTensor<Self> {
            let (sa, sb) = (a.shape(), b.shape());
            let d = sa.num_dims();
            // Broadcast or mismatched batches, mismatched inner dimensions, empty tensors:
            // Burn's matmul (which broadcasts, or panics with its own message).
            if d < 2 || sb.num_dims() != d || (0..d - 2).any(|i| sa[i] != sb[i]) || sa[d - 1] != sb[d - 2] {
                return fallback(a, b, alpha);
            }
            let (Some((a, la)), Some((b, lb))) = (readable(a.clone()), readable(b.clone())) else {
                return fallback(a, b, alpha);
            };
            let (m, n) = (la.rows, lb.cols);
            let entries = la.offsets.len();
            let (da, db) = (a.storage::<f32>(), b.storage::<f32>());
            let views: Option<Vec<(MatRef<'_, f32>, MatRef<'_, f32>)>> =
                (0..entries).map(|i| Some((la.entry(da, i)?, lb.entry(db, i)?))).collect();
            let Some(views) = views else {
                return fallback(a.clone(), b.clone(), alpha);
            };
            let mut out = vec![0f32; entries * m * n];
            let product = |dst: &mut [f32], (lhs, rhs): &(MatRef<'_, f32>, MatRef<'_, f32>), par: Par| {
                let dst = MatMut::from_row_major_slice_mut(dst, m, n);
                faer::linalg::matmul::matmul(dst, Accum::Replace, *lhs, *rhs, alpha, par);
            };
            if entries >= PARALLEL_ENTRIES {
                out.par_chunks_mut(m * n).zip(views.par_iter()).for_each(|(dst, ops)| product(dst, ops, Par::Seq));
            } else {
                out.chunks_mut(m * n).zip(&views).for_each(|(dst, ops)| product(dst, ops, Par::rayon(0)));
            }
            let mut dims = sa.to_vec();
            dims[d - 1] = n;
            f32_tensor(out, Shape::from(dims))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// ft's product and Burn's `a.matmul(b) * alpha` on the same operands: the output and the
    /// gradients of the tracked operands (a weighted sum as the loss).
    fn check<const D: usize>(a: Tensor<D>, b: Tensor<D>, alpha: f64, what: &str) {
        let device = a.device();
        let ours = matmul_scaled(a.clone(), b.clone(), alpha);
        let burns = a.clone().matmul(b.clone()) * alpha;
        assert_eq!(ours.dims(), burns.dims(), "{what}");
        let err = max_abs_diff(ours.clone(), burns.clone());
        assert!(err < 1e-4, "{what}: forward {err}");
        if !device.is_autodiff() {
            return;
        }
        let weights: Tensor<D> = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours * weights.clone()).sum().backward();
        let g_burn = (burns * weights).sum().backward();
        for (name, t) in [("a", &a), ("b", &b)] {
            match (t.grad(&g_ours), t.grad(&g_burn)) {
                (Some(x), Some(y)) => {
                    let err = max_abs_diff(x, y);
                    assert!(err < 1e-4, "{what}: gradient of {name} {err}")
                }
                (None, None) => {}
                _ => panic!("{what}: the gradient of {name} is tracked on one side only"),
            }
        }
    }

    /// Attention's layouts (heads split out of `[batch, seq, heads·d]`, `kᵀ` as a view), many
    /// entries (one per thread) and few (every thread per entry), 3-D, one operand frozen, a
    /// broadcast batch (Burn's path), and inference.
    #[test]
    fn flex_batched_product_matches_burn() {
        for device in [Device::flex().autodiff(), Device::flex()] {
            device.seed(11);
            let track = |t: Tensor<4>| if device.is_autodiff() { t.require_grad() } else { t };
            let heads = |seq: usize| {
                Tensor::<3>::random([3, seq, 4 * 8], Distribution::Normal(0.0, 1.0), &device)
                    .reshape([3, seq, 4, 8])
                    .swap_dims(1, 2)
            };
            // Leaves holding the views' layouts (`check` runs two backward passes).
            let (q, kt, v) = (track(heads(10)), track(heads(12).swap_dims(2, 3)), track(heads(12)));
            check(q.clone(), kt.clone(), 0.125, "q·kᵀ/√d");
            let p = track(Tensor::<4>::random([3, 4, 10, 12], Distribution::Normal(0.0, 1.0), &device));
            check(p.clone(), v.clone(), 1.0, "p·v");
            let few = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (a, b) = (few([2, 70, 30]), few([2, 30, 50]));
            let (a, b) = if device.is_autodiff() { (a.require_grad(), b.require_grad()) } else { (a, b) };
            check(a.clone(), b, -2.0, "two entries");
            check(a, few([2, 30, 50]), 0.5, "b frozen");
            // Views starting past the storage's start (heads 1 and 2 of every sequence).
            let (q1, kt1) = (track(heads(10).narrow(1, 1, 2)), track(heads(12).swap_dims(2, 3).narrow(1, 1, 2)));
            check(q1, kt1, 0.2, "start offset");
            check(heads(10), kt, 1.0, "a frozen");
            // A broadcast batch (Burn's matmul), and the same operand expanded (stride-0 batch
            // dimensions, read through faer; its gradient summed by expand's backward).
            let b1 = track(Tensor::<4>::random([1, 4, 8, 12], Distribution::Normal(0.0, 1.0), &device));
            let a = track(Tensor::<4>::random([3, 4, 10, 8], Distribution::Normal(0.0, 1.0), &device));
            check(a.clone(), b1.clone(), 0.3, "broadcast batch");
            let ours = matmul_scaled(a.clone(), b1.clone().expand([3, 4, 8, 12]), 0.3);
            let burns = a.clone().matmul(b1.clone()) * 0.3;
            assert!(max_abs_diff(ours.clone(), burns.clone()) < 1e-4, "expanded b: forward");
            if device.is_autodiff() {
                let (g_ours, g_burn) = (ours.sum().backward(), burns.sum().backward());
                assert!(
                    max_abs_diff(b1.grad(&g_ours).unwrap(), b1.grad(&g_burn).unwrap()) < 1e-4,
                    "expanded b: gradient"
                );
                assert!(
                    max_abs_diff(a.grad(&g_ours).unwrap(), a.grad(&g_burn).unwrap()) < 1e-4,
                    "expanded b: a's gradient"
                );
            }
        }
    }
}
