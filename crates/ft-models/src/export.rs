//! Writing models back in Hugging Face layout (`save_pretrained`): `config.json`,
//! `model.safetensors` with the Hub's tensor names, and the tokenizer files.
//!
//! [`HfTensors::from_module`] names every tensor through the model's one list of Hub names
//! ([`crate::naming::HubModule`]), the same list loading reads (Linear weights are transposed
//! back to PyTorch's `[out, in]`; GPT-2's `Conv1D` keeps `[in, out]`). Files are written to a
//! temporary name in the target directory and renamed into place, so an interrupted save never
//! leaves a half-written `model.safetensors`.

use std::path::Path;

use burn::nn::Linear;
use burn::tensor::Tensor;
use ft_hub::tensors::NamedTensors;

use crate::layers::WeightLayout;
use crate::naming::{HubModule, HubPath, Part};
use crate::{ModelError, Result};

/// A model's tensors under their Hub names: name → (shape, f32 values).
#[derive(Debug, Default)]
pub struct HfTensors {
    /// The tensors.
    pub tensors: NamedTensors,
}

/// A tensor's values read back as f32 (errors named, never a panic).
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| ModelError::Unsupported(format!("reading a weight back: {e:?}")))
}

impl HfTensors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor as it is.
    pub fn tensor<const D: usize>(&mut self, name: &str, t: Tensor<D>) -> Result<()> {
        let shape = t.dims().to_vec();
        Ok(self.tensors.insert(name, shape, values(t)?)?)
    }

    /// All base tensors of `module` under their Hub names (adapters are saved in their own
    /// formats, not here). The module is cloned first (cheap: tensors are shared).
    pub fn from_module<M: HubModule + Clone>(module: &M) -> Result<Self> {
        let mut out = Self::new();
        out.add_module(module, &HubPath::root())?;
        Ok(out)
    }

    /// Adds `module`'s base tensors under `path`.
    pub fn add_module<M: HubModule + Clone>(&mut self, module: &M, path: &HubPath) -> Result<()> {
        let mut module = module.clone();
        let mut error = None;
        module.parts(path, &mut |path, part| {
            if error.is_none()
                && let Err(e) = self.add_part(path, part)
            {
                error = Some(e);
            }
        });
        error.map_or(Ok(()), Err)
    }

    /// Adds the base tensors of the parts of `module` whose path `keep` accepts.
    pub fn add_parts_where<M: HubModule + ?Sized>(&mut self, module: &mut M, keep: &dyn Fn(&str) -> bool) -> Result<()> {
        let mut error = None;
        module.parts(&HubPath::root(), &mut |path, part| {
            if error.is_none()
                && keep(path.as_str())
                && let Err(e) = self.add_part(path, part)
            {
                error = Some(e);
            }
        });
        error.map_or(Ok(()), Err)
    }

    fn add_part(&mut self, path: &HubPath, part: Part<'_>) -> Result<()> {
        match part {
            Part::Projection(p) => self.linear(path, &p.base, p.layout),
            Part::Linear(l) => self.linear(path, l, WeightLayout::Linear),
            Part::LayerNorm(ln) => {
                self.tensor(&path.tensor("weight"), ln.gamma.val())?;
                if let Some(b) = &ln.beta {
                    self.tensor(&path.tensor("bias"), b.val())?;
                }
                Ok(())
            }
            Part::Embedding(e) => self.tensor(&path.tensor("weight"), e.weight.val()),
            Part::Matrix(m) => self.tensor(&path.tensor("weight"), m.val()),
            Part::Conv2d(c) => {
                self.tensor(&path.tensor("weight"), c.weight.val())?;
                if let Some(b) = &c.bias {
                    self.tensor(&path.tensor("bias"), b.val())?;
                }
                Ok(())
            }
            Part::BatchNorm(bn) => {
                self.tensor(&path.tensor("weight"), bn.gamma.val())?;
                self.tensor(&path.tensor("bias"), bn.beta.val())?;
                self.tensor(&path.tensor("running_mean"), bn.running_mean.value())?;
                self.tensor(&path.tensor("running_var"), bn.running_var.value())
            }
            Part::Bottlenecks(_) => Ok(()),
        }
    }

    /// A linear layer as `{path}.weight` (`[out, in]` for `nn.Linear`, `[in, out]` for
    /// `Conv1D`) and `{path}.bias`.
    fn linear(&mut self, path: &HubPath, layer: &Linear, layout: WeightLayout) -> Result<()> {
        let w = layer.weight.val();
        let w = match layout {
            // Burn stores [in, out]; PyTorch's nn.Linear [out, in].
            WeightLayout::Linear => w.transpose(),
            WeightLayout::Conv1D => w,
        };
        self.tensor(&path.tensor("weight"), w)?;
        if let Some(b) = &layer.bias {
            self.tensor(&path.tensor("bias"), b.val())?;
        }
        Ok(())
    }

    /// The tensor `name`: its shape and values.
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors.get(name)
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.names()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The safetensors file contents (f32, little-endian), with `{"format": "pt"}` metadata as
    /// transformers writes it.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.tensors.to_safetensors_bytes()?)
    }

    /// Writes `model.safetensors` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(crate::weights::SAFETENSORS_SINGLE), &self.to_safetensors_bytes()?)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(ft_hub::tensors::write_atomic(path, bytes)?)
}
