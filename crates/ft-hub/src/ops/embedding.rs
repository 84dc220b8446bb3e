//! Embedding lookups whose dense gradient is written once, on the flex CPU backend.
//!
//! Burn's embedding backward on flex builds the `[vocabulary, hidden]` gradient as a zeroed
//! tensor (`FlexTensor::zeros`: a zeroed byte buffer, then a 16-byte-aligned copy of it) and adds
//! the output gradient's rows into it. For all-MiniLM-L6-v2's 30,522 × 384 word embeddings that
//! is two 47 MB passes and an allocation on one thread, every step (12–15 ms; BENCHMARKS.md), for
//! a gradient that is mostly zeros. [`embedding`] is the same lookup as one autodiff node
//! ([`EmbeddingOps`]) whose backward fills the zeros across threads straight into the vector the
//! tensor keeps (no copy), then adds the rows of the output gradient in token order — the same
//! additions in the same order as Burn's, so the gradient is the same bit for bit. PyTorch's
//! `nn.Embedding` (without `sparse=True`) also returns a dense gradient; it is what AdamW reads.
//!
//! Routed like the other ops here: f32 weights on the flex device under autodiff (ft-hub's
//! `flex` feature); Burn's `Embedding::forward` everywhere else.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::{
    Autodiff, Backend, backend_extension,
    tensor::{FloatTensor, IntTensor},
};
use burn::nn::Embedding;
use burn::tensor::{DType, Int, Tensor};

/// An embedding lookup with a hand-written backward pass under autodiff.
///
/// Call it through [`embedding`], which picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait EmbeddingOps: Backend {
    /// The rows of `weights` that `indices` name.
    ///
    /// # Shapes
    /// - `weights`: `[n, d]`, `indices`: `[batch, len]`; output `[batch, len, d]`
    fn embedding_rows(weights: FloatTensor<Self>, indices: IntTensor<Self>) -> FloatTensor<Self> {
        Self::embedding(weights, indices)
    }

    /// The weights' gradient: zeros, plus row `t` of `dy` added to row `indices[t]`, in token
    /// order; `weights` gives the shape.
    ///
    /// # Shapes
    /// - `weights`: `[n, d]`, `dy`: `[batch, len, d]`, `indices`: `[batch, len]`; output `[n, d]`
    fn embedding_rows_grad(
        weights: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::embedding_backward(weights, dy, indices)
    }
}

/// `layer.forward(ids)`: on flex (f32, under autodiff) as one node whose backward writes the
/// dense gradient once ([`EmbeddingOps`]); Burn's `Embedding::forward` elsewhere.
///
/// # Shapes
/// - `ids`: `[batch, len]`; output `[batch, len, d]`
pub fn embedding(layer: &Embedding, ids: Tensor<2, Int>) -> Tensor<3> {
    let weight = layer.weight.val();
    let device = weight.device();
    if cfg!(feature = "flex") && device.is_autodiff() && super::is_flex(&device) && weight.dtype() == DType::F32 {
        #[cfg(feature = "flex")]
        return Tensor::from_dispatch(<burn::backend::Dispatch as EmbeddingOps>::embedding_rows(
            weight.into_dispatch(),
            ids.into_dispatch(),
        ));
    }
    layer.forward(ids)
}

impl<B: Backend + EmbeddingOps, C: CheckpointStrategy> EmbeddingOps for Autodiff<B, C> {
    fn embedding_rows(weights: FloatTensor<Self>, indices: IntTensor<Self>) -> FloatTensor<Self> {
        match EmbeddingBackward.prepare::<C>([weights.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let weights = weights.into_primitive();
                prep.finish((weights.clone(), indices.clone()), B::embedding_rows(weights, indices))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::embedding_rows(weights.into_primitive(), indices)),
        }
    }
}

/// The backward step of [`EmbeddingOps::embedding_rows`]: state, the weights (for their shape;
/// shared, not copied) and the indices.
#[derive(Debug)]
struct EmbeddingBackward;

impl<B: Backend + EmbeddingOps> Backward<B, 1> for EmbeddingBackward {
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (weights, indices) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |dy| B::embedding_rows_grad(weights, dy, indices));
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::backend::{
        Flex, TensorMetadata,
        tensor::{FloatTensor, IntTensor},
    };
    use burn::tensor::{DType, Shape};
    use rayon::prelude::*;

    use super::EmbeddingOps;
    use crate::ops::fused::f32_tensor;

    /// The indices as `usize`, if they are 32- or 64-bit integers, all in `0..n`.
    fn rows(indices: &FlexTensor, n: usize) -> Option<Vec<usize>> {
        let indices = indices.to_contiguous();
        let rows: Vec<usize> = match indices.dtype() {
            DType::I64 => indices.as_slice::<i64>()?.iter().map(|&i| usize::try_from(i).ok()).collect::<Option<_>>()?,
            DType::I32 => indices.as_slice::<i32>()?.iter().map(|&i| usize::try_from(i).ok()).collect::<Option<_>>()?,
            _ => return None,
        };
        rows.iter().all(|&r| r < n).then_some(rows)
    }

    impl EmbeddingOps for Flex {
        fn embedding_rows_grad(
            weights: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            indices: IntTensor<Self>,
        ) -> FloatTensor<Self> {
            let shape = weights.shape();
            if shape.num_dims() != 2 || weights.dtype() != DType::F32 {
                return Flex::embedding_backward(weights, dy, indices);
            }
            let [n, d] = [shape[0], shape[1]];
            let dy = dy.to_contiguous();
            let (Some(dys), Some(rows)) = (dy.as_slice::<f32>(), rows(&indices, n)) else {
                return Flex::embedding_backward(weights, dy.clone(), indices);
            };
            if d == 0 || dys.len() != rows.len() * d {
                return Flex::embedding_backward(weights, dy.clone(), indices);
            }
            // Zeros written across threads into the vector the tensor keeps (no copy), then each
            // token's gradient row added to its embedding's row, in token order (as Burn's
            // `select_add`: the same sums, bit for bit).
            let mut grad = Vec::with_capacity(n * d);
            (0..n * d).into_par_iter().map(|_| 0f32).collect_into_vec(&mut grad);
            for (&row, dy_row) in rows.iter().zip(dys.chunks_exact(d)) {
                grad[row * d..(row + 1) * d].iter_mut().zip(dy_row).for_each(|(g, v)| *g += v);
            }
            f32_tensor(grad, Shape::new([n, d]))
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::nn::EmbeddingConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, TensorData};

    /// The same rows and the same gradient, bit for bit, as Burn's `Embedding` under autodiff —
    /// with repeated ids (rows that sum several tokens' gradients) and unused rows (zeros).
    #[test]
    fn matches_burns_embedding_bit_for_bit() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let layer = EmbeddingConfig::new(37, 24).init(&device);
        let ids = Tensor::<2, Int>::from_data(TensorData::from([[3, 5, 3, 0, 36], [5, 5, 1, 3, 2]]), &device);
        let g: Tensor<3> = Tensor::random([2, 5, 24], Distribution::Normal(0.0, 1.0), &device);
        let ours = embedding(&layer, ids.clone());
        let burns = layer.forward(ids);
        assert_eq!(ours.clone().into_data(), burns.clone().into_data());
        let grad = |y: Tensor<3>| -> Tensor<2> {
            GradientsParams::from_grads((y * g.clone()).sum().backward(), &layer).get(layer.weight.id).unwrap()
        };
        let (ours, burns) = (grad(ours), grad(burns));
        assert_eq!(ours.clone().into_data(), burns.into_data());
        let rows: Vec<f32> = ours.into_data().try_to_vec().unwrap();
        assert!(rows[3 * 24..4 * 24].iter().all(|&v| v != 0.0), "row 3 sums two tokens' gradients");
        assert!(rows[4 * 24..5 * 24].iter().all(|&v| v == 0.0), "row 4 is not looked up");
    }

    /// The kernel itself (not the routing): the same gradient as Burn's flex
    /// `embedding_backward`, bit for bit, for 64- and 32-bit ids.
    #[test]
    fn kernel_matches_flex_embedding_backward() {
        use burn::backend::Flex;
        use burn::backend::ops::ModuleOps;
        let device = Device::flex();
        let weights: Tensor<2> = Tensor::random([11, 6], Distribution::Default, &device);
        let dy: Tensor<3> = Tensor::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let ids = TensorData::from([[10i64, 2, 2], [0, 10, 7]]);
        for ids in [ids.clone(), ids.convert::<i32>()] {
            let ids = Tensor::<2, Int>::from_data(ids, &device);
            let flex = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("flex");
            let (w, g) = (flex(weights.clone()), dy.clone().try_into_primitive::<Flex>().expect("flex"));
            let i = ids.try_into_primitive::<Flex>().expect("flex");
            let ours = <Flex as EmbeddingOps>::embedding_rows_grad(w.clone(), g.clone(), i.clone());
            let burns = Flex::embedding_backward(w, g, i);
            assert_eq!(ours.as_slice::<f32>().unwrap(), burns.as_slice::<f32>().unwrap());
        }
    }

    /// A frozen table gets no gradient and its lookup no node; outside autodiff it is Burn's op.
    #[test]
    fn frozen_and_inference_lookups() {
        let device = Device::flex().autodiff();
        let layer = burn::module::Module::no_grad(EmbeddingConfig::new(10, 4).init(&device));
        let ids = Tensor::<2, Int>::from_data(TensorData::from([[1, 2]]), &device);
        let x: Tensor<3> = Tensor::random([1, 2, 4], Distribution::Default, &device).require_grad();
        let y = embedding(&layer, ids.clone()) * x.clone();
        let grads = y.sum().backward();
        assert!(x.grad(&grads).is_some());
        assert!(layer.weight.val().grad(&grads).is_none());
        let plain = EmbeddingConfig::new(10, 4).init(&Device::flex());
        let ids = Tensor::<2, Int>::from_data(TensorData::from([[9, 0]]), &Device::flex());
        assert_eq!(embedding(&plain, ids.clone()).into_data(), plain.forward(ids).into_data());
    }
}
