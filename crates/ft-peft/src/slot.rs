//! The seams' contents: the named adapters attached at one place of a model.
//!
//! A model holds one [`ProjectionAdapters`] per projection layer and one
//! [`BottleneckAdapters`] after each transformer sub-layer; prompt-learning adapters, which
//! change the inputs, sit beside the model ([`PromptAdapters`]). Adapters are named, so that one base
//! model can carry several and switch between them without copying or reloading the base
//! weights; each entry says whether it is active.

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::Tensor;

use crate::bottleneck::Bottleneck;
use crate::lora::LoraLayer;
use crate::prefix::PrefixEncoder;
use crate::prompt::PromptEmbedding;

/// An adapter layer that changes a projection's output.
#[derive(Module, Debug)]
pub enum Delta {
    /// LoRA: adds `B(A(dropout(x)))·s`.
    Lora(LoraLayer),
}

impl Delta {
    /// The layer's output with this adapter, from the input `x` and the output `y` so far.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`, `y`: `[..., out]`; output `[..., out]`
    pub fn apply<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Lora(l) => l.apply(x, y),
        }
    }
}

/// A named [`Delta`].
#[derive(Module, Debug)]
pub struct NamedDelta {
    /// The adapter's layer.
    pub layer: Delta,
    /// The adapter's name (PEFT's `adapter_name`, `"default"` unless given).
    #[module(skip)]
    pub name: String,
    /// Whether it takes part in the forward pass.
    #[module(skip)]
    pub active: bool,
    /// Whether its delta has been added into the base weight (then it is not applied again).
    #[module(skip)]
    pub merged: bool,
}

/// The adapters of one projection layer; empty means the plain layer.
#[derive(Module, Debug, Default)]
pub struct ProjectionAdapters {
    /// Attached adapters, in the order they were added.
    pub adapters: Vec<NamedDelta>,
}

impl ProjectionAdapters {
    /// Whether no adapter is active (the layer computes its base output alone).
    pub fn is_inactive(&self) -> bool {
        !self.adapters.iter().any(|a| a.active && !a.merged)
    }

    /// Applies the active adapters to the base output `y` of input `x`.
    ///
    /// # Shapes
    /// - `x`: `[..., in]`, `y`: `[..., out]`; output `[..., out]`
    pub fn apply<const D: usize>(&self, x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
        self.adapters.iter().filter(|a| a.active && !a.merged).fold(y, |y, a| a.layer.apply(x.clone(), y))
    }
}

/// A named [`Bottleneck`].
#[derive(Module, Debug)]
pub struct NamedBottleneck {
    /// The adapter's module.
    pub layer: Bottleneck,
    /// The adapter's name.
    #[module(skip)]
    pub name: String,
    /// Whether it is the active one.
    #[module(skip)]
    pub active: bool,
}

/// The bottleneck adapters after one transformer sub-layer; at most one is active.
#[derive(Module, Debug, Default)]
pub struct BottleneckAdapters {
    /// Attached adapters.
    pub adapters: Vec<NamedBottleneck>,
}

impl BottleneckAdapters {
    /// The sub-layer's output: `layer_norm(hidden + residual)` (or `hidden + residual` without a
    /// norm) when no adapter is active, as the `adapters` library's `bottleneck_layer_forward`.
    ///
    /// # Shapes
    /// - `hidden`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, hidden: Tensor<3>, residual: Tensor<3>, layer_norm: Option<&LayerNorm>) -> Tensor<3> {
        match self.adapters.iter().find(|a| a.active) {
            Some(a) => a.layer.forward(hidden, residual, layer_norm),
            None => match layer_norm {
                Some(ln) => ft_hub::ops::layer_norm(ln, hidden + residual),
                None => hidden + residual,
            },
        }
    }
}

/// A prompt-learning adapter: it changes a model's inputs, not its layers.
#[derive(Module, Debug)]
pub enum PromptAdapter {
    /// Prompt tuning: vectors prepended to the input embeddings.
    Prompt(PromptEmbedding),
    /// Prefix tuning: keys and values every layer's attention sees first.
    Prefix(PrefixEncoder),
}

impl PromptAdapter {
    /// Number of virtual tokens.
    pub fn num_virtual_tokens(&self) -> usize {
        match self {
            Self::Prompt(p) => p.num_virtual_tokens(),
            Self::Prefix(p) => p.num_virtual_tokens(),
        }
    }

    /// The tensor PEFT saves as `prompt_embeddings`.
    ///
    /// # Shapes
    /// - output `[virtual, hidden]` (prompt) or `[virtual, layers·2·hidden]` (prefix)
    pub fn saved_tensor(&self) -> Tensor<2> {
        match self {
            Self::Prompt(p) => p.embedding.val(),
            Self::Prefix(p) => p.prefix(),
        }
    }
}

/// A named [`PromptAdapter`].
#[derive(Module, Debug)]
pub struct NamedPrompt {
    /// The adapter.
    pub layer: PromptAdapter,
    /// Its name.
    #[module(skip)]
    pub name: String,
}

/// The prompt-learning adapters of a model, by name.
#[derive(Module, Debug, Default)]
pub struct PromptAdapters {
    /// Attached adapters.
    pub adapters: Vec<NamedPrompt>,
}

impl PromptAdapters {
    /// The adapter named `name`.
    pub fn get(&self, name: &str) -> Option<&PromptAdapter> {
        self.adapters.iter().find(|a| a.name == name).map(|a| &a.layer)
    }
}

/// A named [`PredictionHead`](crate::head::PredictionHead): the head an AdapterHub adapter
/// brings, under the adapter's name.
#[derive(Module, Debug)]
pub struct NamedHead {
    /// The head.
    pub head: crate::head::PredictionHead,
    /// Its name (the adapter's).
    #[module(skip)]
    pub name: String,
}

/// The adapters' own prediction heads, by name.
#[derive(Module, Debug, Default)]
pub struct PredictionHeads {
    /// Attached heads.
    pub heads: Vec<NamedHead>,
}

impl PredictionHeads {
    /// The head named `name`.
    pub fn get(&self, name: &str) -> Option<&crate::head::PredictionHead> {
        self.heads.iter().find(|h| h.name == name).map(|h| &h.head)
    }
}
