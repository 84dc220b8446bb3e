//! Bottleneck adapters as AdapterHub's `adapters` library computes them (`SeqBnConfig`,
//! Pfeiffer et al. 2020; Houlsby et al. 2019): a down projection, a non-linearity and an up
//! projection, placed after a transformer sub-layer's output projection, around the layer's own
//! LayerNorm (`bottleneck_layer_forward(hidden_states, residual_input, layer_norm)`).

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use ft_hub::ops::Activation;

/// Where the bottleneck sits relative to the sub-layer's residual connection and LayerNorm
/// (the `adapters` library's `SeqBnConfig` flags of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Apply the layer's LayerNorm (with the residual) before the adapter.
    pub original_ln_before: bool,
    /// Apply the layer's LayerNorm (with the residual) after the adapter.
    pub original_ln_after: bool,
    /// The adapter's own residual is taken before the LayerNorm (`true`) or after it.
    pub residual_before_ln: bool,
    /// Factor on the up projection's output.
    pub scaling: f64,
}

impl Default for Placement {
    /// Pfeiffer's (`"seq_bn"`) placement.
    fn default() -> Self {
        Self { original_ln_before: true, original_ln_after: true, residual_before_ln: true, scaling: 1.0 }
    }
}

/// One bottleneck module: `up(act(down(x)))·scaling` with its residual.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// `adapter_down.0`: `[hidden, hidden / reduction_factor]`.
    pub adapter_down: Linear,
    /// `adapter_up`: `[hidden / reduction_factor, hidden]`.
    pub adapter_up: Linear,
    /// `non_linearity` after the down projection.
    #[module(skip)]
    pub non_linearity: Activation,
    /// Placement around the sub-layer's LayerNorm.
    #[module(skip)]
    pub placement: Placement,
}

/// `layer_norm(x)` when there is one (post-LayerNorm encoders), else `x` (GPT-2).
fn norm(layer_norm: Option<&LayerNorm>, x: Tensor<3>) -> Tensor<3> {
    match layer_norm {
        Some(ln) => ln.forward(x),
        None => x,
    }
}

impl Bottleneck {
    /// The sub-layer's output with the adapter: `hidden` is the sub-layer's projected (and
    /// dropped-out) output, `residual` the sub-layer's input, `layer_norm` the layer's own norm.
    ///
    /// # Shapes
    /// - `hidden`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, hidden: Tensor<3>, residual: Tensor<3>, layer_norm: Option<&LayerNorm>) -> Tensor<3> {
        let p = self.placement;
        let mut adapter_residual = p.residual_before_ln.then(|| hidden.clone());
        let x = if p.original_ln_before { norm(layer_norm, hidden + residual.clone()) } else { hidden };
        let adapter_residual = adapter_residual.take().unwrap_or_else(|| x.clone());
        let up = self.adapter_up.forward(self.non_linearity.forward(self.adapter_down.forward(x)));
        let up = if p.scaling == 1.0 { up } else { up * p.scaling };
        let out = up + adapter_residual;
        if p.original_ln_after { norm(layer_norm, out + residual) } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::{LayerNormConfig, LinearConfig};
    use burn::tensor::{Device, Distribution};

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_into_vec_as().unwrap()
    }

    /// Pfeiffer: `LN(h + r + up(relu(down(LN(h + r)))))`; Houlsby's placement (no norm before):
    /// `LN(h + r + up(act(down(h))))` — the `adapters` library's `bottleneck_layer_forward`.
    #[test]
    fn placements_follow_the_adapters_library() {
        let device = Device::flex();
        let h = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let mut ln = LayerNormConfig::new(8).init(&device);
        ln.gamma = Param::from_tensor(Tensor::random([8], Distribution::Normal(1.0, 0.1), &device));
        let down = LinearConfig::new(8, 2).init(&device);
        let up = LinearConfig::new(2, 8).init(&device);
        let adapter = |placement| Bottleneck {
            adapter_down: down.clone(),
            adapter_up: up.clone(),
            non_linearity: Activation::Relu,
            placement,
        };
        let f = |x: Tensor<3>| up.forward(burn::tensor::activation::relu(down.forward(x)));
        let pfeiffer = adapter(Placement::default()).forward(h.clone(), r.clone(), Some(&ln));
        let want = ln.forward(f(ln.forward(h.clone() + r.clone())) + h.clone() + r.clone());
        let diff = values(pfeiffer).iter().zip(values(want)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
        let houlsby = Placement { original_ln_before: false, ..Placement::default() };
        let got = adapter(houlsby).forward(h.clone(), r.clone(), Some(&ln));
        let want = ln.forward(f(h.clone()) + h.clone() + r.clone());
        let diff = values(got).iter().zip(values(want)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
    }
}
