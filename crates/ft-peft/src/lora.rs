//! LoRA's low-rank path (Hu et al., 2021; PEFT's `lora.Linear`), computed in activation space:
//! `delta(x) = B(A(dropout(x))) · scaling`, added to the base layer's output.
//!
//! Burn 0.22's own `apply_lora` folds `W + s·A·B` into a dense weight on every forward pass:
//! dropout cannot act on the adapter path alone, it cannot be unmerged, it holds one adapter per
//! weight and initialises A with a Gaussian only. ft keeps the two small matrices on their own
//! path instead, as PEFT does.

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::module::linear;

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

impl LoraLayer {
    /// The adapter's contribution to the layer's output.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., out]`
    pub fn delta<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = ft_hub::ops::dropout(&self.dropout, x);
        linear(linear(x, self.lora_a.val(), None), self.lora_b.val(), None) * self.scaling
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.lora_a.lazy_shape().dims::<2>()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn delta_is_x_a_b_times_scaling() {
        let device = Device::flex();
        // x [1, 2], A [2, 1], B [1, 3]: x·A = 1·0.5 + 2·(-1) = -1.5; ·B = [-1.5, -3, 1.5]; ·s
        let layer = LoraLayer {
            lora_a: Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32, -1.0], [2, 1]), &device)),
            lora_b: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, -1.0], [1, 3]), &device)),
            dropout: DropoutConfig::new(0.0).init(),
            scaling: 2.0,
        };
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
        let got: Vec<f32> = layer.delta(x).into_data().try_into_vec_as().unwrap();
        assert_eq!(got, vec![-3.0, -6.0, 3.0]);
        assert_eq!(layer.rank(), 1);
    }
}
