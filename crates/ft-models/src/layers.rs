//! Building blocks shared by the architectures: Burn layers loaded from checkpoint tensors, and
//! the activation functions config files name.

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::Result;
use crate::weights::{Checkpoint, Init};

/// Loads a `torch.nn.Linear` stored as `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
pub fn linear(ck: &mut Checkpoint, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
    let weight = ck.linear_weight(&format!("{name}.weight"), d_in, d_out)?;
    let bias = ck.tensor(&format!("{name}.bias"), [d_out], Init::Zeros)?;
    let mut layer = LinearConfig::new(d_in, d_out).init(ck.device());
    layer.weight = Param::from_tensor(weight);
    layer.bias = Some(Param::from_tensor(bias));
    Ok(layer)
}

/// Loads a `torch.nn.LayerNorm` stored as `{name}.weight`/`{name}.bias` (or the old
/// `{name}.gamma`/`{name}.beta`).
pub fn layer_norm(ck: &mut Checkpoint, name: &str, d: usize, eps: f64) -> Result<LayerNorm> {
    let (w, b) = if !ck.contains(&format!("{name}.weight")) && ck.contains(&format!("{name}.gamma")) {
        (format!("{name}.gamma"), format!("{name}.beta"))
    } else {
        (format!("{name}.weight"), format!("{name}.bias"))
    };
    let gamma = ck.tensor(&w, [d], Init::Ones)?;
    let beta = ck.tensor(&b, [d], Init::Zeros)?;
    let mut layer = LayerNormConfig::new(d).with_epsilon(eps).init(ck.device());
    layer.gamma = Param::from_tensor(gamma);
    layer.beta = Some(Param::from_tensor(beta));
    Ok(layer)
}

/// Loads a `torch.nn.Embedding` stored as `{name}.weight` `[n, d]`.
pub fn embedding(ck: &mut Checkpoint, name: &str, n: usize, d: usize) -> Result<Embedding> {
    let weight = ck.tensor(&format!("{name}.weight"), [n, d], Init::Normal)?;
    let mut layer = EmbeddingConfig::new(n, d).init(ck.device());
    layer.weight = Param::from_tensor(weight);
    Ok(layer)
}

/// The activation functions of transformers' `ACT2FN`, by their config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` with the error function (`"gelu"`).
    #[serde(rename = "gelu")]
    Gelu,
    /// Tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// `x·σ(1.702x)` (`"quick_gelu"`).
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// `max(0, x)` (`"relu"`).
    #[serde(rename = "relu")]
    Relu,
    /// `x·σ(x)` (`"silu"`, `"swish"`).
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// `tanh(x)` (`"tanh"`).
    #[serde(rename = "tanh")]
    Tanh,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => crate::fast_gelu::gelu(x),
            Self::GeluNew => activation::gelu_approximate(x),
            Self::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
            Self::Relu => activation::relu(x),
            Self::Silu => activation::silu(x),
            Self::Tanh => x.tanh(),
        }
    }

    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluNew => "gelu_new",
            Self::QuickGelu => "quick_gelu",
            Self::Relu => "relu",
            Self::Silu => "silu",
            Self::Tanh => "tanh",
        }
    }
}

/// The names [`Activation`] accepts, for error messages.
pub const ACTIVATIONS: &str = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, silu, swish, tanh";
