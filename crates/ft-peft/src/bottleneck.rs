//! Bottleneck adapters as AdapterHub's `adapters` library computes them (`SeqBnConfig`,
//! Pfeiffer et al. 2020; Houlsby et al. 2019): a down projection, a non-linearity and an up
//! projection, placed after a transformer sub-layer's output projection, around the layer's own
//! LayerNorm (`bottleneck_layer_forward(hidden_states, residual_input, layer_norm)`).

use burn::module::{Module, Param, ParamId};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use ft_hub::ops::Activation;

use crate::adapterhub::{BnConfig, ResidualBeforeLn};

/// Where the adapter's own residual is taken (`residual_before_ln`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// `true`: the sub-layer's output `h`, before the residual add and the LayerNorm.
    BeforeLn,
    /// `"post_add"`: `h + r`, before the LayerNorm.
    PostAdd,
    /// `false`: the adapter's input (after the LayerNorm when `original_ln_before`).
    AfterLn,
}

/// Where the bottleneck sits relative to the sub-layer's residual connection and LayerNorm
/// (the `adapters` library's `BnConfig` flags of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Apply the layer's LayerNorm (with the residual) before the adapter.
    pub original_ln_before: bool,
    /// Apply the layer's LayerNorm (with the residual) after the adapter.
    pub original_ln_after: bool,
    /// Where the adapter's own residual is taken.
    pub residual: Residual,
    /// Factor on the up projection's output.
    pub scaling: f64,
}

impl Default for Placement {
    /// Pfeiffer's (`"seq_bn"`) placement.
    fn default() -> Self {
        Self { original_ln_before: true, original_ln_after: true, residual: Residual::BeforeLn, scaling: 1.0 }
    }
}

impl Placement {
    /// The placement a config describes.
    pub fn of(config: &BnConfig) -> Self {
        Self {
            original_ln_before: config.original_ln_before,
            original_ln_after: config.original_ln_after,
            residual: match &config.residual_before_ln {
                ResidualBeforeLn::Bool(true) => Residual::BeforeLn,
                ResidualBeforeLn::Bool(false) => Residual::AfterLn,
                ResidualBeforeLn::Named(_) => Residual::PostAdd,
            },
            scaling: config.scaling_factor().unwrap_or(1.0),
        }
    }
}

/// One bottleneck module: `up(act(down(x)))·scaling` with its residual.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// `adapter_down.0`: `[hidden, hidden / reduction_factor]`.
    pub adapter_down: Linear,
    /// `adapter_up`: `[hidden / reduction_factor, hidden]`.
    pub adapter_up: Linear,
    /// Dropout on the adapter's output (`dropout`), in training.
    pub dropout: Dropout,
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
        Some(ln) => ft_hub::ops::layer_norm(ln, x),
        None => x,
    }
}

/// The ids of one bottleneck's four tensors.
#[derive(Debug, Clone, Copy)]
pub struct BottleneckIds {
    /// `adapter_down.0.weight`, `adapter_down.0.bias`.
    pub down: (ParamId, ParamId),
    /// `adapter_up.weight`, `adapter_up.bias`.
    pub up: (ParamId, ParamId),
}

fn linear(weight: Tensor<2>, bias: Tensor<1>, ids: (ParamId, ParamId)) -> Linear {
    let [i, o] = weight.dims();
    let mut l = LinearConfig::new(i, o).init(&weight.device());
    l.weight = Param::from_tensor(weight);
    l.weight.id = ids.0;
    let mut b = Param::from_tensor(bias);
    b.id = ids.1;
    l.bias = Some(b);
    l
}

/// `trunc_normal_(std, a=-2·std, b=2·std)`: normal values redrawn until inside the bounds.
fn truncated_normal(shape: [usize; 2], std: f64, device: &Device) -> Tensor<2> {
    let n = shape[0] * shape[1];
    let mut out: Vec<f32> = Vec::with_capacity(n);
    while out.len() < n {
        let draw: Vec<f32> = Tensor::<1>::random([n], Distribution::Normal(0.0, std), device)
            .into_data()
            .try_into_vec_as()
            .unwrap_or_default();
        if draw.is_empty() {
            break;
        }
        out.extend(draw.into_iter().filter(|v| f64::from(v.abs()) <= 2.0 * std).take(n - out.len()));
    }
    out.resize(n, 0.0);
    Tensor::from_data(TensorData::new(out, shape), device)
}

impl Bottleneck {
    /// A new adapter of width `hidden` → `down` → `hidden`, initialised as the library's
    /// `init_weights` says: `"bert"` both projections N(0, 0.02²) and biases 0 (not the
    /// identity); `"mam_adapter"` down Kaiming-uniform (`U(±1/√hidden)`), up and biases 0 (the
    /// identity); `"houlsby"` both truncated N(0, 0.01²) within ±0.02, biases 0. Values come
    /// from `device`'s generator.
    pub fn new(config: &BnConfig, hidden: usize, down: usize, ids: BottleneckIds, device: &Device) -> crate::Result<Self> {
        let (wd, wu) = match config.init_weights.as_str() {
            "mam_adapter" => {
                let bound = 1.0 / (hidden as f64).sqrt();
                (
                    Tensor::random([hidden, down], Distribution::Uniform(-bound, bound), device),
                    Tensor::zeros([down, hidden], device),
                )
            }
            "houlsby" => (truncated_normal([hidden, down], 0.01, device), truncated_normal([down, hidden], 0.01, device)),
            _ => (
                Tensor::random([hidden, down], Distribution::Normal(0.0, 0.02), device),
                Tensor::random([down, hidden], Distribution::Normal(0.0, 0.02), device),
            ),
        };
        Self::from_tensors(config, wd, Tensor::zeros([down], device), wu, Tensor::zeros([hidden], device), ids)
    }

    /// An adapter from its tensors in Burn's layout (down `[hidden, down]`, up `[down, hidden]`).
    pub fn from_tensors(
        config: &BnConfig,
        down_weight: Tensor<2>,
        down_bias: Tensor<1>,
        up_weight: Tensor<2>,
        up_bias: Tensor<1>,
        ids: BottleneckIds,
    ) -> crate::Result<Self> {
        Ok(Self {
            adapter_down: linear(down_weight, down_bias, ids.down),
            adapter_up: linear(up_weight, up_bias, ids.up),
            dropout: DropoutConfig::new(config.dropout).init(),
            non_linearity: config.activation()?,
            placement: Placement::of(config),
        })
    }

    /// The sub-layer's output with the adapter (the library's `pre_forward`, `forward`,
    /// `post_forward`): `hidden` is the sub-layer's projected (and dropped-out) output,
    /// `residual` the sub-layer's input, `layer_norm` the layer's own norm.
    ///
    /// # Shapes
    /// - `hidden`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, hidden: Tensor<3>, residual: Tensor<3>, layer_norm: Option<&LayerNorm>) -> Tensor<3> {
        let p = self.placement;
        let mut adapter_residual = (p.residual == Residual::BeforeLn).then(|| hidden.clone());
        let x = if p.original_ln_before {
            let added = hidden + residual.clone();
            if p.residual == Residual::PostAdd {
                adapter_residual = Some(added.clone());
            }
            norm(layer_norm, added)
        } else {
            hidden
        };
        let adapter_residual = adapter_residual.unwrap_or_else(|| x.clone());
        let down = ft_hub::ops::linear::forward(&self.adapter_down, x);
        let up = ft_hub::ops::linear::forward(&self.adapter_up, self.non_linearity.forward(down));
        let up = if p.scaling == 1.0 { up } else { up * p.scaling };
        let out = ft_hub::ops::dropout(&self.dropout, up) + adapter_residual;
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
            dropout: DropoutConfig::new(0.0).init(),
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
