//! The activation functions `config.json` files name (transformers' `ACT2FN`), shared by the
//! models and the PEFT layers (a bottleneck adapter's `non_linearity`).

use burn::tensor::Tensor;
use burn::tensor::activation;

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
            Self::Gelu => super::gelu(x),
            Self::GeluNew => super::gelu_tanh(x),
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
