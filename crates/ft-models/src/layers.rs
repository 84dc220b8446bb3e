//! Building blocks shared by the architectures: the projection layer adapters attach to, lazy
//! skeleton layers for loading, and the activation functions config files name.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use ft_peft::slot::ProjectionAdapters;

pub use ft_hub::ops::{ACTIVATIONS, Activation};

/// How the Hub stores a projection's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightLayout {
    /// torch's `nn.Linear`: `[out, in]` (transposed once at load to Burn's `[in, out]`).
    #[default]
    Linear,
    /// GPT-2's `Conv1D`: `[in, out]`, Burn's own layout.
    Conv1D,
}

impl WeightLayout {
    /// The PyTorch class name.
    pub fn class_name(self) -> &'static str {
        match self {
            Self::Linear => "Linear",
            Self::Conv1D => "Conv1D",
        }
    }
}

/// A projection layer of a transformer (`query`, `q_lin`, `c_attn`, `dense`, ...): the
/// pre-trained layer plus the adapters attached to it (LoRA deltas). With no active adapter it
/// computes exactly its base layer.
#[derive(Module, Debug)]
pub struct Projection {
    /// The pre-trained layer, weight `[in, out]` (Burn's layout whatever the Hub's).
    pub base: Linear,
    /// Attached adapters (`ft-peft`), none by default.
    pub adapters: ProjectionAdapters,
    /// How the Hub stores the weight.
    #[module(skip)]
    pub layout: WeightLayout,
}

impl Projection {
    /// A lazily initialised projection (nothing is drawn until loading replaces its tensors).
    pub fn new(d_in: usize, d_out: usize, layout: WeightLayout, device: &Device) -> Self {
        Self { base: LinearConfig::new(d_in, d_out).init(device), adapters: ProjectionAdapters::default(), layout }
    }

    /// Wraps an existing layer.
    pub fn from_linear(base: Linear, layout: WeightLayout) -> Self {
        Self { base, adapters: ProjectionAdapters::default(), layout }
    }

    /// `base(x)`, plus the active adapters' contributions.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`; output `[..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.adapters.is_inactive() {
            return ft_hub::ops::linear::forward(&self.base, x);
        }
        let y = ft_hub::ops::linear::forward(&self.base, x.clone());
        self.adapters.apply(x, y)
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.base.weight.lazy_shape().dims::<2>()[0]
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.base.weight.lazy_shape().dims::<2>()[1]
    }
}

/// A lazily initialised `nn.LayerNorm` (its tensors come from the checkpoint).
pub fn layer_norm(d: usize, eps: f64, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(eps).init(device)
}

/// A lazily initialised `nn.Embedding` (its table comes from the checkpoint).
pub fn embedding(n: usize, d: usize, device: &Device) -> Embedding {
    EmbeddingConfig::new(n, d).init(device)
}
