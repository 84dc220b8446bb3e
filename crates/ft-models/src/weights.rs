//! Reading Hugging Face checkpoints: `model.safetensors`, or a sharded checkpoint described by
//! `model.safetensors.index.json`.
//!
//! [`Checkpoint`] hands out tensors by name, converting f16/bf16/f64 to f32, checks shapes, and
//! keeps the bookkeeping transformers reports after `from_pretrained`: which tensors were loaded,
//! which the model needed but the checkpoint lacked (newly initialised), which the checkpoint
//! held but the model did not use, and which had the wrong shape ([`LoadReport`]).
//!
//! Checkpoints saved from a base model (`embeddings.…`) and from a task model
//! (`bert.embeddings.…`) are both accepted, as `from_pretrained` accepts both
//! ([`Checkpoint::base_prefix`]).
//!
//! A PyTorch `torch.save` file (a torchvision `.pth` state_dict, a `pytorch_model.bin`) is a
//! second source ([`Checkpoint::from_pytorch`]): its pickle is parsed as data by
//! `pytorch-reader` (no code runs), and its tensors go through the same bookkeeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use ft_data::hub::RepoFiles;
use safetensors::{Dtype, SafeTensors};

use crate::{ModelError, Result};

/// What loading a checkpoint did, as transformers reports it after `from_pretrained`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// The checkpoint's file (or index) path.
    pub source: PathBuf,
    /// Tensors taken from the checkpoint (checkpoint names).
    pub loaded: Vec<String>,
    /// Tensors the model needed that the checkpoint lacks: randomly initialised.
    pub newly_initialized: Vec<String>,
    /// Tensors re-initialised because their checkpoint shape differs (a new `num_labels`):
    /// `(name, checkpoint shape, model shape)`.
    pub reinitialized_mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Checkpoint tensors the model did not use.
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// Whether every tensor the model needed came from the checkpoint.
    pub fn is_complete(&self) -> bool {
        self.newly_initialized.is_empty() && self.reinitialized_mismatched.is_empty()
    }
}

struct Shard {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Offset of the data section in `bytes`.
    data_start: usize,
    infos: HashMap<String, safetensors::tensor::TensorInfo>,
}

/// An opened checkpoint: every tensor's metadata, data read lazily by name.
pub struct Checkpoint {
    source: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name → shard index.
    names: BTreeMap<String, usize>,
    used: BTreeSet<String>,
    report: LoadReport,
    /// Whether tensors whose shape differs may be re-initialised instead of failing.
    allow_reinit: BTreeSet<String>,
    mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    device: Device,
    init_std: f64,
    /// Tensors of a PyTorch file (their `names` entries hold [`TORCH`]).
    torch: HashMap<String, pytorch_reader::Tensor>,
}

/// The `names` entry of a tensor that lives in [`Checkpoint::torch`] rather than in a shard.
const TORCH: usize = usize::MAX;

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("source", &self.source).field("tensors", &self.names.len()).finish()
    }
}

/// Name of the index file of a sharded safetensors checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// Name of a single-file safetensors checkpoint.
pub const SAFETENSORS_SINGLE: &str = "model.safetensors";

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Opens the checkpoint of a model repository: `model.safetensors`, else the sharded
    /// `model.safetensors.index.json` and its shards.
    pub fn open(files: &RepoFiles, device: &Device) -> Result<Self> {
        if let Some(single) = files.get_optional(SAFETENSORS_SINGLE)? {
            return Self::from_files(&single, &[single.clone()], device);
        }
        if let Some(index_path) = files.get_optional(SAFETENSORS_INDEX)? {
            let text = std::fs::read_to_string(&index_path)
                .map_err(|source| ModelError::Io { path: index_path.clone(), source })?;
            let index: ShardIndex = serde_json::from_str(&text).map_err(|e| ModelError::Weights {
                path: index_path.clone(),
                message: format!("invalid index: {e}"),
            })?;
            let shard_names: BTreeSet<&String> = index.weight_map.values().collect();
            let mut paths = Vec::new();
            for name in shard_names {
                paths.push(files.get_required(name)?);
            }
            return Self::from_files(&index_path, &paths, device);
        }
        Err(ModelError::Weights {
            path: PathBuf::from(files.name()),
            message: format!(
                "no {SAFETENSORS_SINGLE} or {SAFETENSORS_INDEX} (only safetensors checkpoints are \
                 read; convert a pytorch_model.bin with transformers' save_pretrained)"
            ),
        })
    }

    /// A checkpoint with no tensors: a model built from it is randomly initialised as
    /// transformers initialises a model from its config (`from_config`).
    pub fn empty(device: &Device) -> Self {
        Self {
            source: PathBuf::from("<random init>"),
            shards: Vec::new(),
            names: BTreeMap::new(),
            used: BTreeSet::new(),
            report: LoadReport { source: PathBuf::from("<random init>"), ..Default::default() },
            allow_reinit: BTreeSet::new(),
            mismatched: Vec::new(),
            device: device.clone(),
            init_std: 0.02,
            torch: HashMap::new(),
        }
    }

    /// Opens a PyTorch `torch.save` file (`.pth`, `.pt`, `pytorch_model.bin`) holding a
    /// state_dict, or a dict with one under `state_dict` or `model`. The pickle is read as
    /// data, never executed; tensors are read when taken.
    pub fn from_pytorch(path: &Path, device: &Device) -> Result<Self> {
        let open_err = |e: pytorch_reader::PytorchError| ModelError::Weights {
            path: path.to_path_buf(),
            message: format!("not a readable PyTorch checkpoint (truncated or corrupt?): {e}"),
        };
        let mut reader = pytorch_reader::PytorchReader::new(path).map_err(open_err)?;
        for key in ["state_dict", "model"] {
            let prefix = format!("{key}.");
            if !reader.is_empty() && reader.keys().iter().all(|k| k.starts_with(&prefix)) {
                reader = pytorch_reader::PytorchReader::with_top_level_key(path, key).map_err(open_err)?;
                break;
            }
        }
        let torch = reader.into_tensors();
        let mut ck = Self::empty(device);
        ck.source = path.to_path_buf();
        ck.report.source = path.to_path_buf();
        ck.names = torch.keys().map(|k| (k.clone(), TORCH)).collect();
        ck.torch = torch;
        Ok(ck)
    }

    /// Opens safetensors files as one checkpoint; `source` names it in messages.
    pub fn from_files(source: &Path, paths: &[PathBuf], device: &Device) -> Result<Self> {
        let mut shards = Vec::new();
        let mut names = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.clone(), source })?;
            let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Weights {
                path: path.clone(),
                message: format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            })?;
            let infos: HashMap<String, safetensors::tensor::TensorInfo> =
                metadata.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
            for name in infos.keys() {
                if names.insert(name.clone(), i).is_some() {
                    return Err(ModelError::Weights {
                        path: path.clone(),
                        message: format!("tensor '{name}' appears in two shards"),
                    });
                }
            }
            shards.push(Shard { path: path.clone(), bytes, data_start: 8 + header_len, infos });
        }
        Ok(Self {
            source: source.to_path_buf(),
            shards,
            names,
            used: BTreeSet::new(),
            report: LoadReport { source: source.to_path_buf(), ..Default::default() },
            allow_reinit: BTreeSet::new(),
            mismatched: Vec::new(),
            device: device.clone(),
            init_std: 0.02,
            torch: HashMap::new(),
        })
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Standard deviation of the normal init of missing weights (`initializer_range`).
    pub fn set_init_std(&mut self, std: f64) {
        self.init_std = std;
    }

    /// Lets tensor `name` be re-initialised when its checkpoint shape differs (transformers'
    /// `ignore_mismatched_sizes` for a task head whose `num_labels` changed).
    pub fn allow_reinit(&mut self, name: &str) {
        self.allow_reinit.insert(name.to_string());
    }

    /// All tensor names in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(|s| s.as_str())
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// The checkpoint shape of `name`.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(t) = self.torch.get(name) {
            return Some(t.shape().to_vec());
        }
        let shard = &self.shards[*self.names.get(name)?];
        shard.infos.get(name).map(|i| i.shape.clone())
    }

    /// Reads tensor `name` as f32 data if its checkpoint shape is `shape`.
    fn fetch(&mut self, name: &str, shape: &[usize]) -> Result<Fetched> {
        let Some(&shard_idx) = self.names.get(name) else { return Ok(Fetched::Missing(Missing::Absent)) };
        if shard_idx == TORCH {
            return self.fetch_torch(name, shape);
        }
        let shard = &self.shards[shard_idx];
        let info = &shard.infos[name];
        self.used.insert(name.to_string());
        if info.shape != shape {
            return Ok(Fetched::Missing(Missing::Mismatch(info.shape.clone())));
        }
        let (start, end) = info.data_offsets;
        let raw = shard.bytes.get(shard.data_start + start..shard.data_start + end).ok_or_else(|| {
            ModelError::Weights { path: shard.path.clone(), message: format!("tensor '{name}' lies outside the file") }
        })?;
        let values = to_f32(raw, info.dtype).ok_or_else(|| ModelError::Weights {
            path: shard.path.clone(),
            message: format!("tensor '{name}' has dtype {:?}, expected a float type", info.dtype),
        })?;
        self.report.loaded.push(name.to_string());
        Ok(Fetched::Found(values))
    }

    /// [`fetch`](Self::fetch) for a tensor of a PyTorch file.
    fn fetch_torch(&mut self, name: &str, shape: &[usize]) -> Result<Fetched> {
        let t = &self.torch[name];
        self.used.insert(name.to_string());
        if t.shape() != shape {
            return Ok(Fetched::Missing(Missing::Mismatch(t.shape().to_vec())));
        }
        let err = |message: String| ModelError::Weights { path: self.source.clone(), message };
        let raw = t.read().map_err(|e| err(format!("reading tensor '{name}': {e}")))?;
        // pytorch-reader hands out native-endian bytes; safetensors' are little-endian, which is
        // native on every platform ft builds for.
        let dtype = match t.dtype() {
            pytorch_reader::DType::F32 => Dtype::F32,
            pytorch_reader::DType::F16 => Dtype::F16,
            pytorch_reader::DType::BF16 => Dtype::BF16,
            pytorch_reader::DType::F64 => Dtype::F64,
            other => return Err(err(format!("tensor '{name}' has dtype {other:?}, expected a float type"))),
        };
        let values = to_f32(&raw, dtype).ok_or_else(|| err(format!("tensor '{name}' could not be converted")))?;
        self.report.loaded.push(name.to_string());
        Ok(Fetched::Found(values))
    }

    /// Handles a tensor the checkpoint could not provide: initialise it (absent, or
    /// re-initialisable head) or record the mismatch for [`finish`](Self::finish).
    fn fallback<const D: usize>(
        &mut self,
        name: &str,
        missing: Missing,
        stored_shape: &[usize],
        shape: [usize; D],
        init: Init,
    ) -> Tensor<D> {
        match missing {
            Missing::Absent => self.report.newly_initialized.push(name.to_string()),
            Missing::Mismatch(found) if self.allow_reinit.contains(name) => {
                self.report.reinitialized_mismatched.push((name.to_string(), found, stored_shape.to_vec()))
            }
            Missing::Mismatch(found) => {
                // Reported all at once by `finish`, which then fails.
                self.mismatched.push((name.to_string(), found, stored_shape.to_vec()));
                return Tensor::zeros(shape, &self.device);
            }
        }
        self.init(shape, init)
    }

    /// Takes tensor `name` with the given shape; when absent (or re-initialisable with another
    /// shape) it is initialised with `init` and reported as newly initialised.
    pub fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D], init: Init) -> Result<Tensor<D>> {
        match self.fetch(name, &shape)? {
            Fetched::Found(values) => Ok(Tensor::from_data(TensorData::new(values, shape), &self.device)),
            Fetched::Missing(m) => Ok(self.fallback(name, m, &shape, shape, init)),
        }
    }

    /// Takes a `torch.nn.Linear` weight stored `[out, in]` and returns it as Burn's `[in, out]`,
    /// transposed once here so that every forward pass reads a contiguous matrix.
    pub fn linear_weight(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>> {
        match self.fetch(name, &[d_out, d_in])? {
            Fetched::Found(values) => {
                let mut t = vec![0f32; values.len()];
                for o in 0..d_out {
                    for i in 0..d_in {
                        t[i * d_out + o] = values[o * d_in + i];
                    }
                }
                Ok(Tensor::from_data(TensorData::new(t, [d_in, d_out]), &self.device))
            }
            Fetched::Missing(m) => Ok(self.fallback(name, m, &[d_out, d_in], [d_in, d_out], Init::Normal)),
        }
    }

    /// The name prefix of base-model tensors: `"bert."` for a checkpoint saved from a task model
    /// (`bert.embeddings.…`), `""` for one saved from the bare base model (`embeddings.…`).
    /// `probe` is a tensor every such checkpoint has, e.g. `embeddings.word_embeddings.weight`.
    pub fn base_prefix(&self, prefix: &str, probe: &str) -> String {
        if self.contains(&format!("{prefix}.{probe}")) || !self.contains(probe) {
            format!("{prefix}.")
        } else {
            String::new()
        }
    }

    fn init<const D: usize>(&self, shape: [usize; D], init: Init) -> Tensor<D> {
        match init {
            Init::Normal => Tensor::random(shape, Distribution::Normal(0.0, self.init_std), &self.device),
            Init::Zeros => Tensor::zeros(shape, &self.device),
            Init::Ones => Tensor::ones(shape, &self.device),
        }
    }

    /// Ends loading: fails if tensors had the wrong shape (naming each), otherwise returns the
    /// report with the unused checkpoint tensors. Buffers transformers ignores
    /// (`position_ids`) and BatchNorm's step counters (`num_batches_tracked`, not a weight) are
    /// not reported.
    pub fn finish(mut self) -> Result<LoadReport> {
        if !self.mismatched.is_empty() {
            let details = self
                .mismatched
                .iter()
                .map(|(n, from, to)| format!("{n}: checkpoint {from:?} vs model {to:?}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ModelError::ShapeMismatch { path: self.source, details });
        }
        self.report.unexpected =
            self.names.keys().filter(|n| !self.used.contains(*n) && !is_ignored_buffer(n)).cloned().collect();
        Ok(self.report)
    }
}

/// Buffers that are never reported as unused checkpoint tensors.
fn is_ignored_buffer(name: &str) -> bool {
    name.ends_with("position_ids") || name.ends_with("num_batches_tracked")
}

enum Fetched {
    Found(Vec<f32>),
    Missing(Missing),
}

enum Missing {
    Absent,
    Mismatch(Vec<usize>),
}

/// How a tensor missing from the checkpoint is initialised (transformers' `_init_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Normal with mean 0 and std `initializer_range` (weights, embeddings).
    Normal,
    /// Zeros (biases, LayerNorm bias).
    Zeros,
    /// Ones (LayerNorm weight).
    Ones,
}

fn to_f32(raw: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
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
