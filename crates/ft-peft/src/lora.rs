//! LoRA's low-rank path (Hu et al., 2021; PEFT's `lora.Linear`), computed in activation space:
//! `delta(x) = B(A(dropout(x))) · scaling`, added to the base layer's output. ft multiplies the
//! rank-`r` activations by the scaling, `B(A(dropout(x))·s)`: the same in exact arithmetic as
//! PEFT's order, bit for bit when `s` is a power of two (`lora_alpha = 2r`, the usual choice),
//! within float rounding otherwise (rsLoRA) — and one pass over `[rows, r]` instead of
//! `[rows, out]`.
//!
//! Burn 0.22's own `apply_lora` folds `W + s·A·B` into a dense weight on every forward pass:
//! dropout cannot act on the adapter path alone, it cannot be unmerged, it holds one adapter per
//! weight and initialises A with a Gaussian only. ft keeps the two small matrices on their own
//! path instead, as PEFT does; [`LoraLayer::delta_weight`] gives the dense delta for merging.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Distribution, Tensor};

use crate::config::InitLoraWeights;

/// One LoRA adapter on one projection.
#[derive(Module, Debug)]
pub struct LoraLayer {
    /// A, `[in, r]` (Burn's layout; PEFT's `lora_A.weight` is `[r, in]`).
    pub lora_a: Param<Tensor<2>>,
    /// B, `[r, out]` (PEFT's `lora_B.weight` is `[out, r]`).
    pub lora_b: Param<Tensor<2>>,
    /// Dropout on the adapter's input only (`lora_dropout`), active in training.
    pub dropout: Dropout,
    /// `lora_alpha / r` (or `lora_alpha / √r` with rsLoRA).
    #[module(skip)]
    pub scaling: f64,
}

/// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
pub fn scaling(lora_alpha: f64, r: usize, use_rslora: bool) -> f64 {
    if use_rslora { lora_alpha / (r as f64).sqrt() } else { lora_alpha / r as f64 }
}

/// Ids for a new adapter's two matrices (stable ones come from their saved names).
#[derive(Debug, Clone, Copy)]
pub struct LoraIds {
    /// A's id.
    pub a: ParamId,
    /// B's id.
    pub b: ParamId,
}

impl LoraLayer {
    /// A new adapter for a layer of `d_in` → `d_out`, as PEFT's `update_layer`: A `[in, r]`
    /// Kaiming-uniform with a = √5 (`U(±1/√in)`, `nn.Linear`'s default) and B zero for
    /// `init = true`; A normal with std 1/r and B zero for `"gaussian"`; both as `nn.Linear`'s
    /// default for `false`. Values are drawn from `device`'s generator.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        d_in: usize,
        d_out: usize,
        r: usize,
        lora_alpha: f64,
        use_rslora: bool,
        lora_dropout: f64,
        init: InitLoraWeights,
        ids: LoraIds,
        device: &Device,
    ) -> Self {
        let bound_in = 1.0 / (d_in as f64).sqrt();
        let a = match init {
            InitLoraWeights::Gaussian => Tensor::random([d_in, r], Distribution::Normal(0.0, 1.0 / r as f64), device),
            _ => Tensor::random([d_in, r], Distribution::Uniform(-bound_in, bound_in), device),
        };
        let b = match init {
            InitLoraWeights::Random => {
                let bound_r = 1.0 / (r as f64).sqrt();
                Tensor::random([r, d_out], Distribution::Uniform(-bound_r, bound_r), device)
            }
            _ => Tensor::zeros([r, d_out], device),
        };
        Self::from_tensors(a, b, scaling(lora_alpha, r, use_rslora), lora_dropout, ids)
    }

    /// An adapter from its matrices in Burn's layout (A `[in, r]`, B `[r, out]`).
    pub fn from_tensors(a: Tensor<2>, b: Tensor<2>, scaling: f64, lora_dropout: f64, ids: LoraIds) -> Self {
        let mut lora_a = Param::from_tensor(a);
        lora_a.id = ids.a;
        let mut lora_b = Param::from_tensor(b);
        lora_b.id = ids.b;
        Self { lora_a, lora_b, dropout: DropoutConfig::new(lora_dropout).init(), scaling }
    }

    /// The adapter's contribution to the layer's output, `B(A(dropout(x)))·s`.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., out]`
    pub fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        ft_hub::ops::linear(self.down(x), self.lora_b.val(), None)
    }

    /// The layer's output with the adapter: `y + B(A(dropout(x)))·s` for the base output `y`.
    /// The scaling multiplies the rank-`r` activations (not the `[..., out]` product), and on the
    /// CPU the up-projection is added into `y`'s buffer by one node
    /// ([`ft_hub::ops::linear_add`]): no output-sized tensor of the adapter's own, forward or
    /// backward.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`, `y`: `[..., out]`; output `[..., out]`
    pub fn apply<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        ft_hub::ops::linear_add(self.down(x), self.lora_b.val(), y)
    }

    /// `A(dropout(x))·s`, the scaled rank-`r` activations.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., r]`
    fn down<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = ft_hub::ops::dropout(&self.dropout, x);
        ft_hub::ops::linear(x, self.lora_a.val(), None) * self.scaling
    }

    /// The dense change of the base weight, in Burn's `[in, out]` layout: `A·B·s` (PEFT's
    /// `get_delta_weight`, `(B@A)·s`, transposed for `nn.Linear`; as is for `Conv1D`, whose
    /// `fan_in_fan_out` transpose lands on the same layout).
    ///
    /// # Shapes
    /// - output `[in, out]`
    pub fn delta_weight(&self) -> Tensor<2> {
        self.lora_a.val().matmul(self.lora_b.val()) * self.scaling
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape().dims::<2>()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn ids() -> LoraIds {
        LoraIds { a: ParamId::new(), b: ParamId::new() }
    }

    #[test]
    fn delta_is_x_a_b_times_scaling() {
        let device = Device::flex();
        // x [1, 2], A [2, 1], B [1, 3]: x·A = 1·0.5 + 2·(-1) = -1.5; ·B = [-1.5, -3, 1.5]; ·s
        let a = Tensor::from_data(TensorData::new(vec![0.5f32, -1.0], [2, 1]), &device);
        let b = Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, -1.0], [1, 3]), &device);
        let layer = LoraLayer::from_tensors(a, b, 2.0, 0.0, ids());
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
        let got: Vec<f32> = layer.delta(x.clone()).into_data().try_into_vec_as().unwrap();
        assert_eq!(got, vec![-3.0, -6.0, 3.0]);
        assert_eq!(layer.rank(), 1);
        // The merged delta gives the same change: x · ΔW.
        let merged: Vec<f32> = x.matmul(layer.delta_weight()).into_data().try_into_vec_as().unwrap();
        assert_eq!(merged, got);
    }

    /// `apply(x, y)` against PEFT's order of operations written with Burn's own matmul,
    /// `y + ((x·A)·B)·s`, forward and backward (gradients of x, y, A and B), with rsLoRA's
    /// scaling 16/√8 (not a power of two: the two orders round differently) on the CPU's fused
    /// path.
    #[test]
    fn apply_matches_peft_order() {
        use burn::tensor::Distribution;
        let device = Device::flex().autodiff();
        device.seed(11);
        let l = LoraLayer::new(24, 40, 8, 16.0, true, 0.0, InitLoraWeights::Random, ids(), &device);
        assert!((l.scaling - 16.0 / 8f64.sqrt()).abs() < 1e-12);
        let normal = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let (x, y, weights) =
            (normal([2, 30, 24]).require_grad(), normal([2, 30, 40]).require_grad(), normal([2, 30, 40]));
        let fused = l.apply(x.clone(), y.clone());
        let rows = x.clone().reshape([60, 24]).matmul(l.lora_a.val()).matmul(l.lora_b.val()) * l.scaling;
        let peft = y.clone() + rows.reshape([2, 30, 40]);
        let diff = |a: Tensor<3>, b: Tensor<3>| (a - b).abs().max().into_scalar::<f32>();
        assert!(diff(fused.clone(), peft.clone()) < 1e-5);
        let g_fused = (fused * weights.clone()).sum().backward();
        let g_peft = (peft * weights).sum().backward();
        assert!(diff(x.grad(&g_fused).unwrap(), x.grad(&g_peft).unwrap()) < 1e-5);
        assert!(diff(y.grad(&g_fused).unwrap(), y.grad(&g_peft).unwrap()) < 1e-6);
        for p in [&l.lora_a, &l.lora_b] {
            let (a, b): (Tensor<2>, Tensor<2>) = (p.val().grad(&g_fused).unwrap(), p.val().grad(&g_peft).unwrap());
            assert!((a - b).abs().max().into_scalar::<f32>() < 1e-4);
        }
    }

    #[test]
    fn initialisations_follow_peft() {
        let device = Device::flex();
        let l = LoraLayer::new(64, 10, 4, 8.0, false, 0.0, InitLoraWeights::Default, ids(), &device);
        let a: Vec<f32> = l.lora_a.val().into_data().try_into_vec_as().unwrap();
        let b: Vec<f32> = l.lora_b.val().into_data().try_into_vec_as().unwrap();
        assert!(a.iter().all(|v| v.abs() <= 1.0 / 8.0) && a.iter().any(|v| *v != 0.0));
        assert!(b.iter().all(|v| *v == 0.0));
        assert_eq!(l.scaling, 2.0);
        assert_eq!(scaling(16.0, 4, true), 8.0);
        let r = LoraLayer::new(64, 10, 4, 8.0, false, 0.0, InitLoraWeights::Random, ids(), &device);
        let b: Vec<f32> = r.lora_b.val().into_data().try_into_vec_as().unwrap();
        assert!(b.iter().any(|v| *v != 0.0) && b.iter().all(|v| v.abs() <= 0.5));
    }
}
