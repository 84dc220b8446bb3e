//! Writing models back in Hugging Face layout (`save_pretrained`): `config.json`,
//! `model.safetensors` with the Hub's tensor names, and the tokenizer files.
//!
//! Each architecture lists its tensors with [`HfTensors`], mirroring its `load.rs` key table
//! (Linear weights are transposed back to PyTorch's `[out, in]`). Files are written to a
//! temporary name in the target directory and renamed into place, so an interrupted save never
//! leaves a half-written `model.safetensors`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::Tensor;

use crate::{ModelError, Result};

/// A model's tensors under their Hub names: name → (shape, f32 values).
#[derive(Debug, Default)]
pub struct HfTensors {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
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
        self.tensors.insert(name.to_string(), (shape, values(t)?));
        Ok(())
    }

    /// Adds a `torch.nn.Linear` as `{name}.weight` `[out, in]` and `{name}.bias`.
    pub fn linear(&mut self, name: &str, layer: &Linear) -> Result<()> {
        // Burn stores [in, out]; PyTorch [out, in].
        self.tensor(&format!("{name}.weight"), layer.weight.val().transpose())?;
        if let Some(b) = &layer.bias {
            self.tensor(&format!("{name}.bias"), b.val())?;
        }
        Ok(())
    }

    /// Adds a `torch.nn.LayerNorm` as `{name}.weight` / `{name}.bias`.
    pub fn layer_norm(&mut self, name: &str, layer: &LayerNorm) -> Result<()> {
        self.tensor(&format!("{name}.weight"), layer.gamma.val())?;
        if let Some(b) = &layer.beta {
            self.tensor(&format!("{name}.bias"), b.val())?;
        }
        Ok(())
    }

    /// Adds a `torch.nn.Embedding` as `{name}.weight`.
    pub fn embedding(&mut self, name: &str, layer: &Embedding) -> Result<()> {
        self.tensor(&format!("{name}.weight"), layer.weight.val())
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
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
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, (s, v))| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Unsupported(format!("building safetensors: {e}")))?;
        let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
        safetensors::tensor::serialize(views, metadata).map_err(|e| ModelError::Unsupported(format!("building safetensors: {e}")))
    }

    /// Writes `model.safetensors` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(crate::weights::SAFETENSORS_SINGLE), &self.to_safetensors_bytes()?)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io = |source| ModelError::Io { path: path.to_path_buf(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
