//! LayerNorm in training as one autodiff node with its own backward pass ([`LayerNormOps`]).
//!
//! Burn 0.22's autodiff backend has no LayerNorm of its own: under autodiff `LayerNorm::forward`
//! runs Burn's default decomposition (mean, subtract, square, mean, add ε, square root, divide,
//! multiply by γ, add β), nine nodes each allocating a full-size tensor, and their nine backward
//! steps — 3–6× PyTorch's fused LayerNorm backward per call on a MiniLM training step
//! (BENCHMARKS.md, "Training, op by op"), 13 calls per step. Here LayerNorm is one node: its
//! forward is flex's fused row kernel (the one inference uses), its backward one parallel task per
//! group of rows from the saved input and γ (each row read four times while it sits in L1: mean,
//! variance, the two sums below, `dx`):
//!
//! - `x̂ = (x − μ)/σ`, `g = dy ⊙ γ`
//! - `dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / σ`
//! - `dγ = Σ_rows dy ⊙ x̂`, `dβ = Σ_rows dy` (partial sums per row group, added in row order, so
//!   the result does not depend on thread scheduling).
//!
//! Routed as [`super::fused`]: f32 tensors on the flex device under autodiff, with a β
//! (every LayerNorm of ft's models has one); Burn's `LayerNorm::forward` everywhere else
//! (inference — already flex's fused kernel —, GPUs, ndarray). The sums run in another order
//! than Burn's composed ops, so gradients agree to float rounding, not bit for bit.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension, tensor::FloatTensor};
use burn::nn::LayerNorm;
use burn::tensor::{DType, Shape, Tensor};

/// LayerNorm over the last dimension with a hand-written backward pass under autodiff.
///
/// Call it through [`layer_norm`], which picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait LayerNormOps: Backend {
    /// `(x − mean) / √(var + ε) ⊙ γ + β` over the last dimension (biased variance, as PyTorch).
    ///
    /// # Shapes
    /// - `x`: `[..., n]`, `gamma`, `beta`: `[n]`; output `[..., n]`
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// Gradients of [`LayerNormOps::layer_norm_last`] with respect to `x`, `gamma` and `beta`,
    /// from the forward input `x`, `gamma` and the output gradient `dy`.
    ///
    /// # Shapes
    /// - `x`, `dy`: `[..., n]`, `gamma`: `[n]`; output `(dx [..., n], dgamma [n], dbeta [n])`
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn layer_norm_last_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(x, gamma, dy, epsilon)
    }
}

/// `layer.forward(x)`: on flex under autodiff (f32, with a β) one fused node with its own
/// backward pass ([`LayerNormOps`]); Burn's `LayerNorm::forward` everywhere else.
///
/// # Shapes
/// - `x`: `[..., n]` with `n` the layer's size; output `[..., n]`
pub fn layer_norm<const D: usize>(layer: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if x.dtype() == DType::F32 && device.is_autodiff() && super::is_flex(&device) {
        #[cfg(feature = "flex")]
        if let (Some(beta), Some(epsilon)) = (layer.beta.as_ref(), epsilon(layer)) {
            return Tensor::from_dispatch(<burn::backend::Dispatch as LayerNormOps>::layer_norm_last(
                x.into_dispatch(),
                layer.gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                epsilon,
            ));
        }
        #[cfg(not(feature = "flex"))]
        super::fused::warn_unfused(&device);
    }
    layer.forward(x)
}

/// A LayerNorm's ε. Burn keeps the field private and shows it only in the module's display
/// (`LayerNorm {d_model: 384, epsilon: 0.000000000001, ...}`); `None` if that ever changes, and
/// [`layer_norm`] then runs Burn's own forward (a test pins the format).
pub fn epsilon(layer: &LayerNorm) -> Option<f64> {
    let shown = layer.to_string();
    let rest = shown.split("epsilon: ").nth(1)?;
    let epsilon: f64 = rest.split(|c: char| c == ',' || c == '}' || c.is_whitespace()).next()?.parse().ok()?;
    // A display that rounded (e.g. to 0) would give a wrong ε: only a plausible one is used.
    (epsilon > 0.0 && epsilon < 1.0).then_some(epsilon)
}

impl<B: Backend + LayerNormOps, C: CheckpointStrategy> LayerNormOps for Autodiff<B, C> {
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let backward = LayerNormBackward::<B> { epsilon, backend: core::marker::PhantomData };
        match backward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
                let output = B::layer_norm_last(x.clone(), gamma.clone(), beta.into_primitive(), epsilon);
                prep.finish((x, gamma), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }
}

/// The backward step of [`LayerNormOps::layer_norm_last`]; its state is the forward's `x` and `γ`.
struct LayerNormBackward<B> {
    epsilon: f64,
    backend: core::marker::PhantomData<B>,
}

impl<B> core::fmt::Debug for LayerNormBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LayerNormBackward").field("epsilon", &self.epsilon).finish()
    }
}

impl<B: Backend + LayerNormOps> Backward<B, 3> for LayerNormBackward<B> {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma) = ops.state;
        let (dx, dgamma, dbeta) = B::layer_norm_last_backward(x, gamma, dy, self.epsilon);
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The gradients of [`LayerNormOps::layer_norm_last_backward`] composed of Burn's tensor ops.
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    dy: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let rank = shape.num_dims();
    let last = rank - 1;
    let n = shape[last];
    let rows = shape.num_elements() / n.max(1);
    let mean = B::float_mean_dim(x.clone(), last);
    let centered = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), last);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let xhat = B::float_mul(centered, rstd.clone());
    let flat = |t: FloatTensor<B>| B::float_reshape(t, Shape::new([rows, n]));
    let column_sum = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dim(t, 0), Shape::new([n]));
    let dgamma = column_sum(B::float_mul(flat(dy.clone()), flat(xhat.clone())));
    let dbeta = column_sum(flat(dy.clone()));
    let broadcast: Vec<usize> = (0..rank).map(|i| if i == last { n } else { 1 }).collect();
    let g = B::float_mul(dy, B::float_reshape(gamma, Shape::from(broadcast)));
    let mean_g = B::float_mean_dim(g.clone(), last);
    let mean_gx = B::float_mean_dim(B::float_mul(g.clone(), xhat.clone()), last);
    let dx = B::float_mul(B::float_sub(B::float_sub(g, mean_g), B::float_mul(xhat, mean_gx)), rstd);
    (dx, dgamma, dbeta)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::{Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::Shape;
    use rayon::prelude::*;

    use super::{LayerNormOps, composed_backward};
    use crate::ops::fused::f32_tensor;

    /// Rows per parallel task.
    const ROWS_PER_TASK: usize = 64;
    /// Accumulator lanes of the row sums (independent, so that the compiler vectorises them).
    const LANES: usize = 16;

    impl LayerNormOps for Flex {
        fn layer_norm_last_backward(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            epsilon: f64,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
            let shape = x.shape();
            let n = if shape.num_dims() == 0 { 0 } else { shape[shape.num_dims() - 1] };
            let (x, gamma, dy) = (x.to_contiguous(), gamma.to_contiguous(), dy.to_contiguous());
            let (Some(xs), Some(gs), Some(dys)) = (x.as_slice::<f32>(), gamma.as_slice::<f32>(), dy.as_slice::<f32>())
            else {
                return composed_backward::<Flex>(x.clone(), gamma.clone(), dy.clone(), epsilon);
            };
            if n == 0 || xs.len() != dys.len() || gs.len() != n {
                // Nothing to compute, or shapes only broadcasting could reconcile.
                return composed_backward::<Flex>(x.clone(), gamma.clone(), dy.clone(), epsilon);
            }
            let mut dx = vec![0f32; xs.len()];
            let chunk = ROWS_PER_TASK * n;
            let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
                .par_chunks_mut(chunk)
                .zip(xs.par_chunks(chunk).zip(dys.par_chunks(chunk)))
                .map(|(dx, (x, dy))| {
                    let mut sums = (vec![0f32; n], vec![0f32; n]);
                    pulp::Arch::new().dispatch(Rows {
                        x,
                        dy,
                        gamma: gs,
                        epsilon: epsilon as f32,
                        dx,
                        dgamma: &mut sums.0,
                        dbeta: &mut sums.1,
                    });
                    sums
                })
                .collect();
            let (mut dgamma, mut dbeta) = (vec![0f32; n], vec![0f32; n]);
            for (g, b) in &partials {
                dgamma.iter_mut().zip(g).for_each(|(t, v)| *t += v);
                dbeta.iter_mut().zip(b).for_each(|(t, v)| *t += v);
            }
            (f32_tensor(dx, shape), f32_tensor(dgamma, Shape::new([n])), f32_tensor(dbeta, Shape::new([n])))
        }
    }

    /// One group of rows of the backward pass: `dx` for each row, `dγ`/`dβ` accumulated.
    struct Rows<'a> {
        x: &'a [f32],
        dy: &'a [f32],
        gamma: &'a [f32],
        epsilon: f32,
        dx: &'a mut [f32],
        dgamma: &'a mut [f32],
        dbeta: &'a mut [f32],
    }

    impl pulp::WithSimd for Rows<'_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let n = self.gamma.len();
            let inv_n = 1.0 / n as f32;
            let rows = self.x.chunks_exact(n).zip(self.dy.chunks_exact(n)).zip(self.dx.chunks_exact_mut(n));
            for ((x, dy), dx) in rows {
                let mean = lane_sum(x, |x| x) * inv_n;
                let var = lane_sum(x, |x| (x - mean) * (x - mean)) * inv_n;
                let rstd = 1.0 / (var + self.epsilon).sqrt();
                // Σ g and Σ g ⊙ x̂ (g = dy ⊙ γ), and the parameter gradients, in one pass: whole
                // groups of LANES columns in independent accumulators, then the tail.
                let (mut sum_g, mut sum_gx) = ([0f32; LANES], [0f32; LANES]);
                let (xc, xt) = x.as_chunks::<LANES>();
                let (dyc, dyt) = dy.as_chunks::<LANES>();
                let (gc, gt) = self.gamma.as_chunks::<LANES>();
                let (dgc, dgt) = self.dgamma.as_chunks_mut::<LANES>();
                let (dbc, dbt) = self.dbeta.as_chunks_mut::<LANES>();
                for ((((x, dy), gamma), dgamma), dbeta) in xc.iter().zip(dyc).zip(gc).zip(dgc).zip(dbc) {
                    for l in 0..LANES {
                        let xhat = (x[l] - mean) * rstd;
                        let g = dy[l] * gamma[l];
                        dgamma[l] += dy[l] * xhat;
                        dbeta[l] += dy[l];
                        sum_g[l] += g;
                        sum_gx[l] += g * xhat;
                    }
                }
                let mut tail = (0f32, 0f32);
                for ((((&x, &dy), &gamma), dgamma), dbeta) in xt.iter().zip(dyt).zip(gt).zip(dgt).zip(dbt) {
                    let xhat = (x - mean) * rstd;
                    let g = dy * gamma;
                    *dgamma += dy * xhat;
                    *dbeta += dy;
                    tail.0 += g;
                    tail.1 += g * xhat;
                }
                let mean_g = (sum_g.iter().sum::<f32>() + tail.0) * inv_n;
                let mean_gx = (sum_gx.iter().sum::<f32>() + tail.1) * inv_n;
                for (((dx, &x), &dy), &gamma) in dx.iter_mut().zip(x).zip(dy).zip(self.gamma) {
                    let xhat = (x - mean) * rstd;
                    *dx = (dy * gamma - mean_g - xhat * mean_gx) * rstd;
                }
            }
        }
    }

    /// `Σ f(v)` over `values` in [`LANES`] independent accumulators (then added), so that the loop
    /// vectorises.
    #[inline(always)]
    fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
        let (chunks, tail) = values.as_chunks::<LANES>();
        let mut acc = [0f32; LANES];
        for chunk in chunks {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += f(v);
            }
        }
        acc.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Module;
    use burn::nn::{LayerNorm, LayerNormConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor, TensorData};

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Fixed pseudo-random values in [offset − scale, offset + scale) (a 64-bit LCG).
    fn values<const D: usize>(shape: [usize; D], seed: u64, offset: f32, scale: f32, device: &Device) -> Tensor<D> {
        let mut state = seed;
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                offset + ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    fn layer(n: usize, epsilon: f64, device: &Device) -> LayerNorm {
        let mut ln = LayerNormConfig::new(n).with_epsilon(epsilon).init(device);
        ln.gamma = ln.gamma.map(|_| values([n], 5, 1.0, 0.5, device).require_grad());
        ln.beta = ln.beta.map(|b| b.map(|_| values([n], 6, 0.0, 0.5, device).require_grad()));
        ln
    }

    /// The fused LayerNorm equals Burn's `LayerNorm::forward` in value and in the gradients of
    /// `x`, `γ` and `β` (a weighted sum as the loss, so every output's gradient differs), with
    /// rows whose length is and is not a multiple of the accumulator lanes, ε of BERT (1e-12) and
    /// of GPT-2 (1e-5), and on a transposed input.
    #[test]
    fn fused_layer_norm_matches_burn_in_value_and_gradients() {
        let device = Device::flex().autodiff();
        for (n, transpose, epsilon) in [(48, false, 1e-5), (37, false, 1e-12), (40, true, 1e-5)] {
            let ln = layer(n, epsilon, &device);
            let x = if transpose {
                values([70, 3, n], 7, 2.0, 3.0, &device).swap_dims(0, 1).require_grad()
            } else {
                values([3, 70, n], 7, 2.0, 3.0, &device).require_grad()
            };
            let weights = values([3, 70, n], 11, 0.0, 2.0, &device);
            let fused = super::layer_norm(&ln, x.clone());
            let fused_grads = (fused.clone() * weights.clone()).sum().backward();
            let reference = ln.forward(x.clone());
            let reference_grads = (reference.clone() * weights).sum().backward();
            assert!(max_abs_diff(fused, reference) < 2e-6, "forward, n={n}");
            let dx = max_abs_diff(x.grad(&fused_grads).unwrap(), x.grad(&reference_grads).unwrap());
            assert!(dx < 2e-5, "dx, n={n}: {dx}");
            let (ours, burns) =
                (GradientsParams::from_grads(fused_grads, &ln), GradientsParams::from_grads(reference_grads, &ln));
            for (name, id) in [("gamma", ln.gamma.id), ("beta", ln.beta.as_ref().unwrap().id)] {
                let (a, b): (Tensor<1>, Tensor<1>) = (ours.get(id).unwrap(), burns.get(id).unwrap());
                let err = max_abs_diff(a, b);
                assert!(err < 1e-4, "{name}, n={n}: {err}");
            }
        }
    }

    /// Only the input tracked (a frozen LayerNorm, as under bottleneck adapters): `dx` still right.
    #[test]
    fn frozen_parameters_still_give_the_input_gradient() {
        let device = Device::flex().autodiff();
        let ln = LayerNormConfig::new(24).init(&device).no_grad();
        let x = values([5, 24], 3, -1.0, 4.0, &device).require_grad();
        let grads = (super::layer_norm(&ln, x.clone()) * values([5, 24], 4, 0.0, 1.0, &device)).sum().backward();
        let reference = (ln.forward(x.clone()) * values([5, 24], 4, 0.0, 1.0, &device)).sum().backward();
        assert!(max_abs_diff(x.grad(&grads).unwrap(), x.grad(&reference).unwrap()) < 2e-5);
    }

    /// ε is read back from Burn's module display (a private field): this pins the format.
    #[test]
    fn epsilon_is_read_from_the_module() {
        let device = Device::flex();
        for eps in [1e-12, 1e-5, 0.1] {
            let ln = LayerNormConfig::new(8).with_epsilon(eps).init(&device);
            assert_eq!(super::epsilon(&ln), Some(eps), "{ln}");
        }
    }
}
