//! Named f32 tensors in safetensors files, written atomically: what model checkpoints
//! (`model.safetensors`) and adapters (`adapter_model.safetensors`, `adapter.safetensors`) are
//! made of on disk.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{HubError, Result};

/// Tensors by name: name → (shape, f32 values, row-major).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NamedTensors {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl NamedTensors {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tensor; fails unless `values` has `shape`'s number of elements.
    pub fn insert(&mut self, name: &str, shape: Vec<usize>, values: Vec<f32>) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(HubError::Input(format!("tensor '{name}': {} values for shape {shape:?}", values.len())));
        }
        self.tensors.insert(name.to_string(), (shape, values));
        Ok(())
    }

    /// The tensor `name`: its shape and values.
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors.get(name).map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    /// Removes and returns the tensor `name`.
    pub fn remove(&mut self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        self.tensors.remove(name)
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

    /// Number of values over all tensors.
    pub fn num_values(&self) -> usize {
        self.tensors.values().map(|(_, v)| v.len()).sum()
    }

    /// The safetensors file contents (f32, little-endian), with `{"format": "pt"}` metadata as
    /// transformers and PEFT write it.
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
            .map_err(|e| HubError::Input(format!("building safetensors: {e}")))?;
        let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
        safetensors::tensor::serialize(views, metadata)
            .map_err(|e| HubError::Input(format!("building safetensors: {e}")))
    }

    /// Writes the tensors to `path` as a safetensors file, atomically.
    pub fn write_safetensors(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_safetensors_bytes()?)
    }

    /// Reads every tensor of a safetensors file, converting f16/bf16/f64 to f32. The file is
    /// checked by the `safetensors` crate (header, offsets, sizes); errors name it.
    pub fn read_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| HubError::Io { path: path.to_path_buf(), error })?;
        let bad = |message: String| HubError::Input(format!("{}: {message}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file (truncated or corrupt?): {e}")))?;
        let mut out = Self::new();
        for (name, view) in st.tensors() {
            let values = to_f32(view.data(), view.dtype())
                .ok_or_else(|| bad(format!("tensor '{name}' has dtype {:?}, expected a float type", view.dtype())))?;
            out.insert(&name, view.shape().to_vec(), values)?;
        }
        Ok(out)
    }

    /// The `torch.save` file bytes of the tensors (a flat state dict of f32 tensors, in name
    /// order), with `archive` as the zip's top folder; `torch.load(weights_only=True)` reads it.
    pub fn to_pytorch_bytes(&self, archive: &str) -> Result<Vec<u8>> {
        let bytes: usize = self.num_values() * 4;
        if bytes > u32::MAX as usize / 2 || self.len() > 60_000 {
            return Err(HubError::Input(format!(
                "{} tensors of {bytes} bytes: too large for ft's torch.save writer (no ZIP64); write safetensors",
                self.len()
            )));
        }
        let items = self.tensors.iter().map(|(n, (s, v))| (n.as_str(), s.as_slice(), v.as_slice()));
        Ok(crate::torch_save::torch_save_bytes(items, archive))
    }

    /// Writes the tensors to `path` in `torch.save`'s format (the zip's top folder named after
    /// the file, as PyTorch does), atomically.
    pub fn write_pytorch(&self, path: &Path) -> Result<()> {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "archive".into());
        write_atomic(path, &self.to_pytorch_bytes(&stem)?)
    }

    /// Reads every tensor of a PyTorch `torch.save` file holding a flat state dict
    /// (`pytorch_adapter.bin`, `pytorch_model_head.bin`), converting f16/bf16/f64 to f32. The
    /// pickle is parsed as data by `pytorch-reader` — no code runs — after
    /// [`check_torch_file`](crate::pickle_guard::check_torch_file) has refused any pickle naming
    /// a global other than tensor data; errors name the file.
    pub fn read_pytorch(path: &Path) -> Result<Self> {
        let bad = |message: String| HubError::Input(format!("{}: {message}", path.display()));
        if !path.is_file() {
            return Err(HubError::Io {
                path: path.to_path_buf(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        // Every global the pickle names must be tensor data, before anything is read.
        crate::pickle_guard::check_torch_file(path)?;
        let reader = pytorch_reader::PytorchReader::new(path)
            .map_err(|e| bad(format!("not a readable PyTorch file (truncated or corrupt?): {e}")))?;
        let mut out = Self::new();
        for (name, t) in reader.into_tensors() {
            let raw = t.read().map_err(|e| bad(format!("reading tensor '{name}': {e}")))?;
            // pytorch-reader hands out native-endian bytes; little-endian on every target ft builds for.
            let dtype = match t.dtype() {
                pytorch_reader::DType::F32 => safetensors::Dtype::F32,
                pytorch_reader::DType::F16 => safetensors::Dtype::F16,
                pytorch_reader::DType::BF16 => safetensors::Dtype::BF16,
                pytorch_reader::DType::F64 => safetensors::Dtype::F64,
                other => return Err(bad(format!("tensor '{name}' has dtype {other:?}, expected a float type"))),
            };
            let values = to_f32(&raw, dtype).ok_or_else(|| bad(format!("tensor '{name}' could not be converted")))?;
            out.insert(&name, t.shape().to_vec(), values)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_save_files_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = NamedTensors::new();
        t.insert("a.weight", vec![2, 3], vec![1.0, -2.0, 3.5, 4.0, 5.0, 6.25]).unwrap();
        t.insert("a.bias", vec![3], vec![0.5, 0.0, -1.0]).unwrap();
        t.insert("scalar", vec![], vec![7.0]).unwrap();
        let path = dir.path().join("pytorch_adapter.bin");
        t.write_pytorch(&path).unwrap();
        assert_eq!(NamedTensors::read_pytorch(&path).unwrap(), t);
    }
}

/// Little-endian float bytes of `dtype` as f32 values; `None` for non-float dtypes.
pub fn to_f32(raw: &[u8], dtype: safetensors::Dtype) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    Some(match dtype {
        Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory, then renames it:
/// an interrupted write never leaves a partial file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
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
    result.map_err(|error| HubError::Io { path: path.to_path_buf(), error })
}
