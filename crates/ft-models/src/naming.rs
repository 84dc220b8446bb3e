//! One naming path: every architecture names its parameter-holding parts once, with the Hub's
//! tensor names, in [`HubModule::parts`] — as candle's `VarBuilder::pp("attention").pp("self")`,
//! each struct names only its children. That one list serves:
//!
//! - loading a checkpoint ([`crate::weights::load_parts`]),
//! - saving in the Hub's layout ([`crate::export::HfTensors::from_module`]),
//! - matching module names — PEFT's `target_modules` / `modules_to_save` ([`crate::peft`]) and
//!   freezing by name ([`crate::params`]).
//!
//! A [`Part`] tells what kind of layer sits at a path, and so which tensors it stores there
//! (`{path}.weight`, `{path}.bias`, BatchNorm's running statistics, ...) and in which layout
//! (torch's `nn.Linear` `[out, in]` versus GPT-2's `Conv1D` `[in, out]`).

use std::fmt::Display;

use burn::module::{Param, ParamId};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Embedding, LayerNorm, Linear};
use burn::tensor::Tensor;
use ft_peft::slot::BottleneckAdapters;

use crate::layers::Projection;

/// A dotted module path under the Hub's names (`bert.encoder.layer.3.attention.self.query`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HubPath(String);

impl HubPath {
    /// The empty path (the model itself).
    pub fn root() -> Self {
        Self::default()
    }

    /// The path of a child: `self.child`, or `child` at the root.
    pub fn pp(&self, child: impl Display) -> Self {
        if self.0.is_empty() { Self(child.to_string()) } else { Self(format!("{}.{child}", self.0)) }
    }

    /// The name of a tensor of this module: `path.tensor`.
    pub fn tensor(&self, tensor: &str) -> String {
        if self.0.is_empty() { tensor.to_string() } else { format!("{}.{tensor}", self.0) }
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Display for HubPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parameter-holding layer at a Hub path.
#[derive(Debug)]
pub enum Part<'a> {
    /// A projection (`nn.Linear` or GPT-2's `Conv1D`) with the adapters attached to it:
    /// `{path}.weight`, `{path}.bias`.
    Projection(&'a mut Projection),
    /// A plain `nn.Linear` that takes no adapters (ResNet's `fc`): `{path}.weight` `[out, in]`,
    /// `{path}.bias`.
    Linear(&'a mut Linear),
    /// `nn.LayerNorm`: `{path}.weight`, `{path}.bias` (old checkpoints: `gamma`/`beta`).
    LayerNorm(&'a mut LayerNorm),
    /// `nn.Embedding`: `{path}.weight` `[n, dim]`.
    Embedding(&'a mut Embedding),
    /// `nn.Conv2d`: `{path}.weight` `[out, in, k, k]` (and `{path}.bias` when it has one).
    Conv2d(&'a mut Conv2d),
    /// `nn.BatchNorm2d`: `{path}.weight`, `.bias`, `.running_mean`, `.running_var`.
    BatchNorm(&'a mut BatchNorm),
    /// A bare matrix stored as `{path}.weight` (GPT-2's untied `lm_head`).
    Matrix(&'a mut Param<Tensor<2>>),
    /// The bottleneck adapters after a transformer sub-layer (no base weights of their own).
    Bottlenecks(&'a mut BottleneckAdapters),
}

impl Part<'_> {
    /// The kind of layer, as PyTorch names its class (`Linear`, `Conv1D`, `LayerNorm`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Projection(p) => p.layout.class_name(),
            Self::Linear(_) => "Linear",
            Self::LayerNorm(_) => "LayerNorm",
            Self::Embedding(_) => "Embedding",
            Self::Conv2d(_) => "Conv2d",
            Self::BatchNorm(_) => "BatchNorm2d",
            Self::Matrix(_) => "Linear",
            Self::Bottlenecks(_) => "Adapters",
        }
    }

    /// The base parameters of the part with the names of their tensors relative to the part
    /// (`weight`, `bias`, ...), as `(name, id, number of elements)`. BatchNorm's running
    /// statistics are buffers, not parameters: they are not listed. Adapters are not listed.
    pub fn params(&self) -> Vec<(&'static str, ParamId, usize)> {
        fn p<const D: usize>(name: &'static str, param: &Param<Tensor<D>>) -> (&'static str, ParamId, usize) {
            (name, param.id, param.lazy_shape().num_elements())
        }
        let linear = |l: &Linear| {
            let mut v = vec![p("weight", &l.weight)];
            if let Some(b) = &l.bias {
                v.push(p("bias", b));
            }
            v
        };
        match self {
            Self::Projection(proj) => linear(&proj.base),
            Self::Linear(l) => linear(l),
            Self::LayerNorm(ln) => {
                let mut v = vec![p("weight", &ln.gamma)];
                if let Some(b) = &ln.beta {
                    v.push(p("bias", b));
                }
                v
            }
            Self::Embedding(e) => vec![p("weight", &e.weight)],
            Self::Conv2d(c) => {
                let mut v = vec![p("weight", &c.weight)];
                if let Some(b) = &c.bias {
                    v.push(p("bias", b));
                }
                v
            }
            Self::BatchNorm(bn) => vec![p("weight", &bn.gamma), p("bias", &bn.beta)],
            Self::Matrix(m) => vec![p("weight", m)],
            Self::Bottlenecks(_) => Vec::new(),
        }
    }
}

/// A model (or block) whose parameter-holding parts carry the Hub's names.
pub trait HubModule {
    /// Calls `f` with each part of this module, in a fixed order, and its path under `path`.
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>));
}

impl<M: HubModule> HubModule for Vec<M> {
    /// Elements are named by their index (`layer.0`, `layer.1`, ...), as `nn.ModuleList`.
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.parts(&path.pp(i), f);
        }
    }
}

impl<M: HubModule> HubModule for Option<M> {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        if let Some(m) = self {
            m.parts(path, f);
        }
    }
}

/// The stable id of the parameter stored under Hub name `name`: FNV-1a of the name. Loading the
/// same checkpoint layout always gives each parameter the same id, so an optimizer state saved
/// with a checkpoint applies to the model loaded back from that checkpoint's weights.
pub fn param_id(name: &str) -> ParamId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ParamId::from(h)
}
