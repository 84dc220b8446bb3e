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
//! Safetensors files are not read whole: the header is parsed and checked against the file's
//! size (offsets in range, sizes matching dtype and shape), and each tensor's bytes are read
//! from the file when the model takes it — peak memory is the model plus one tensor.
//!
//! [`load_parts`] fills a model's lazily initialised skeleton from a checkpoint through the
//! model's one list of Hub names ([`crate::naming::HubModule`]).
//!
//! A PyTorch `torch.save` file (a torchvision `.pth` state_dict, a `pytorch_model.bin`) is a
//! second source ([`Checkpoint::from_pytorch`]): its pickle is parsed as data by
//! `pytorch-reader` (no code runs), and its tensors go through the same bookkeeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use ft_hub::hub::RepoFiles;
use ft_hub::tensors::to_f32;
use safetensors::Dtype;

use crate::naming::{HubModule, HubPath, Part, param_id};
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

/// One tensor's entry in a safetensors header.
#[derive(Debug, Clone)]
struct TensorInfo {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range within the data section.
    data_offsets: (usize, usize),
}

struct Shard {
    path: PathBuf,
    file: File,
    /// Offset of the data section in the file (8 + header length).
    data_start: u64,
    infos: HashMap<String, TensorInfo>,
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
    /// Tensors held but not to be used (a head saved for another task).
    excluded: BTreeSet<String>,
    mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    device: Device,
    init_std: f64,
    /// Tensors of a PyTorch file (their `names` entries hold [`TORCH`]).
    torch: HashMap<String, pytorch_reader::Tensor>,
    /// Whether the tensors come from a file (not [`Checkpoint::empty`]'s random init): then a
    /// file that gives the model no tensor at all is an error.
    from_file: bool,
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
                .map_err(|source| ModelError::Io { path: index_path.clone(), error: source })?;
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
            excluded: BTreeSet::new(),
            mismatched: Vec::new(),
            device: device.clone(),
            init_std: 0.02,
            torch: HashMap::new(),
            from_file: false,
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
        ft_hub::pickle_guard::torch_file_refusal(path)
            .map_err(|message| ModelError::Weights { path: path.to_path_buf(), message })?;
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
        ck.from_file = true;
        Ok(ck)
    }

    /// Opens safetensors files as one checkpoint; `source` names it in messages. Only the
    /// headers are read here.
    pub fn from_files(source: &Path, paths: &[PathBuf], device: &Device) -> Result<Self> {
        let mut shards = Vec::new();
        let mut names = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let (file, data_start, infos) = read_safetensors_header(path)?;
            for name in infos.keys() {
                if names.insert(name.clone(), i).is_some() {
                    return Err(ModelError::Weights {
                        path: path.clone(),
                        message: format!("tensor '{name}' appears in two shards"),
                    });
                }
            }
            shards.push(Shard { path: path.clone(), file, data_start, infos });
        }
        Ok(Self {
            source: source.to_path_buf(),
            shards,
            names,
            used: BTreeSet::new(),
            report: LoadReport { source: source.to_path_buf(), ..Default::default() },
            allow_reinit: BTreeSet::new(),
            excluded: BTreeSet::new(),
            mismatched: Vec::new(),
            device: device.clone(),
            init_std: 0.02,
            torch: HashMap::new(),
            from_file: true,
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

    /// Treats every checkpoint tensor for which `exclude` holds as absent: the model initialises
    /// it anew and the report lists it as newly initialised (and the stored one as unused) —
    /// for a head saved for another task.
    pub fn exclude(&mut self, exclude: impl Fn(&str) -> bool) {
        let names: Vec<String> = self.names.keys().filter(|n| exclude(n)).cloned().collect();
        self.excluded.extend(names);
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
        let Some(&shard_idx) = self.names.get(name).filter(|_| !self.excluded.contains(name)) else {
            return Ok(Fetched::Missing(Missing::Absent));
        };
        if shard_idx == TORCH {
            return self.fetch_torch(name, shape);
        }
        let shard = &mut self.shards[shard_idx];
        let info = shard.infos[name].clone();
        self.used.insert(name.to_string());
        if info.shape != shape {
            return Ok(Fetched::Missing(Missing::Mismatch(info.shape.clone())));
        }
        let (start, end) = info.data_offsets;
        let mut raw = vec![0u8; end - start];
        let io = |source| ModelError::Io { path: shard.path.clone(), error: source };
        shard.file.seek(SeekFrom::Start(shard.data_start + start as u64)).map_err(io)?;
        shard.file.read_exact(&mut raw).map_err(|source| ModelError::Io { path: shard.path.clone(), error: source })?;
        let values = to_f32(&raw, info.dtype).ok_or_else(|| ModelError::Weights {
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

    /// Takes tensor `name`, stored with shape `stored`, as a tensor of shape `shape`
    /// (`transpose`: a 2-D tensor stored `[out, in]` becomes `[in, out]`, read once here so
    /// that every forward pass reads a contiguous matrix). Returns `None` when the checkpoint
    /// lacks it, or holds it with another shape and it may be re-initialised (a new head) — the
    /// caller initialises it then; both are reported. Any other shape mismatch is recorded and
    /// makes [`finish`](Self::finish) fail.
    pub fn take<const D: usize>(
        &mut self,
        name: &str,
        stored: &[usize],
        shape: [usize; D],
        transpose: bool,
    ) -> Result<Option<Tensor<D>>> {
        match self.fetch(name, stored)? {
            Fetched::Found(values) => {
                let values = if transpose && D == 2 {
                    let (rows, cols) = (stored[0], stored[1]);
                    let mut t = vec![0f32; values.len()];
                    for r in 0..rows {
                        for c in 0..cols {
                            t[c * rows + r] = values[r * cols + c];
                        }
                    }
                    t
                } else {
                    values
                };
                Ok(Some(Tensor::from_data(TensorData::new(values, shape), &self.device)))
            }
            Fetched::Missing(Missing::Absent) => {
                self.report.newly_initialized.push(name.to_string());
                Ok(None)
            }
            Fetched::Missing(Missing::Mismatch(found)) if self.allow_reinit.contains(name) => {
                self.report.reinitialized_mismatched.push((name.to_string(), found, stored.to_vec()));
                Ok(None)
            }
            Fetched::Missing(Missing::Mismatch(found)) => {
                // Reported all at once by `finish`, which then fails.
                self.mismatched.push((name.to_string(), found, stored.to_vec()));
                Ok(Some(Tensor::zeros(shape, &self.device)))
            }
        }
    }

    /// Takes tensor `name` with the given shape; when absent (or re-initialisable with another
    /// shape) it is initialised with `init` and reported as newly initialised.
    pub fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D], init: Init) -> Result<Tensor<D>> {
        Ok(match self.take(name, &shape, shape, false)? {
            Some(t) => t,
            None => self.init(shape, init),
        })
    }

    /// Takes a `torch.nn.Linear` weight stored `[out, in]` and returns it as Burn's `[in, out]`,
    /// transposed once here so that every forward pass reads a contiguous matrix.
    pub fn linear_weight(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>> {
        Ok(match self.take(name, &[d_out, d_in], [d_in, d_out], true)? {
            Some(t) => t,
            None => self.init([d_in, d_out], Init::Normal),
        })
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

    /// A tensor initialised as `init` says (normal with std [`set_init_std`](Self::set_init_std)).
    pub fn init<const D: usize>(&self, shape: [usize; D], init: Init) -> Tensor<D> {
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
        if self.from_file && self.report.loaded.len() < self.report.newly_initialized.len() {
            // Most of the model would be random weights (none at all, or a file of another
            // model that happens to share a few names): an error, never a silent warning. A new
            // task head is a few tensors, far from this.
            let held = match self.names.keys().take(3).cloned().collect::<Vec<_>>() {
                some if !some.is_empty() => {
                    format!("it holds {} tensors, such as {}", self.names.len(), some.join(", "))
                }
                _ => "it holds no tensors".to_string(),
            };
            return Err(ModelError::Weights {
                path: self.source,
                message: format!(
                    "{} of the {} weights the model needs are not in this file ({held}): the wrong file, \
                     or weights of another architecture",
                    self.report.newly_initialized.len(),
                    self.report.newly_initialized.len() + self.report.loaded.len()
                ),
            });
        }
        Ok(self.report)
    }
}

/// Buffers that are never reported as unused checkpoint tensors.
fn is_ignored_buffer(name: &str) -> bool {
    name.ends_with("position_ids") || name.ends_with("num_batches_tracked")
}

/// Largest safetensors header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Opens a safetensors file and reads its header: the tensors' dtypes, shapes and byte ranges,
/// each checked against the file (ranges inside the data section, sizes equal to shape × dtype).
/// The data itself is not read.
fn read_safetensors_header(path: &Path) -> Result<(File, u64, HashMap<String, TensorInfo>)> {
    let bad = |message: String| ModelError::Weights {
        path: path.to_path_buf(),
        message: format!("not a valid safetensors file (truncated or corrupt?): {message}"),
    };
    let io = |source| ModelError::Io { path: path.to_path_buf(), error: source };
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    if file_len < 8 {
        return Err(bad(format!("{file_len} bytes, shorter than the 8-byte header length")));
    }
    file.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(bad(format!("a header of {n} bytes in a file of {file_len} bytes")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let data_len = (file_len - 8 - n) as usize;
    let mut infos = HashMap::new();
    for (name, entry) in json {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| entry.get(key).ok_or_else(|| bad(format!("tensor '{name}' has no '{key}'")));
        let dtype: Dtype =
            serde_json::from_value(field("dtype")?.clone()).map_err(|e| bad(format!("tensor '{name}': dtype: {e}")))?;
        let shape: Vec<usize> =
            serde_json::from_value(field("shape")?.clone()).map_err(|e| bad(format!("tensor '{name}': shape: {e}")))?;
        let offsets: (usize, usize) = serde_json::from_value(field("data_offsets")?.clone())
            .map_err(|e| bad(format!("tensor '{name}': data_offsets: {e}")))?;
        let (start, end) = offsets;
        if start > end || end > data_len {
            return Err(bad(format!("tensor '{name}' lies outside the file (bytes {start}..{end} of {data_len})")));
        }
        let bytes = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|numel| numel.checked_mul(dtype.bitsize()))
            .map(|bits| bits.div_ceil(8));
        if bytes != Some(end - start) {
            return Err(bad(format!(
                "tensor '{name}' of shape {shape:?} and dtype {dtype:?} takes {} bytes, not {}",
                bytes.map_or("too many".to_string(), |b| b.to_string()),
                end - start
            )));
        }
        infos.insert(name, TensorInfo { dtype, shape, data_offsets: offsets });
    }
    // Tensors may not share bytes (the format's rule: one byte range each).
    let mut ranges: Vec<(&String, (usize, usize))> =
        infos.iter().map(|(n, i)| (n, i.data_offsets)).filter(|(_, (s, e))| e > s).collect();
    ranges.sort_by_key(|(_, r)| *r);
    for pair in ranges.windows(2) {
        let ((a, (a_start, a_end)), (b, (b_start, _))) = (pair[0], pair[1]);
        if b_start < a_end {
            return Err(bad(format!(
                "tensors '{a}' (bytes {a_start}..{a_end}) and '{b}' (from byte {b_start}) overlap"
            )));
        }
    }
    Ok((file, 8 + n, infos))
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

/// How tensors a checkpoint lacks are initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitScheme {
    /// transformers' `_init_weights`: linear and embedding weights normal(0, `std` =
    /// `initializer_range`), biases 0, LayerNorm weight 1 and bias 0.
    Transformers {
        /// `initializer_range`.
        std: f64,
    },
    /// torchvision's ResNet: convolutions Kaiming-normal (fan out, ReLU gain), BatchNorm weight 1,
    /// bias 0, fresh running statistics, and `nn.Linear`'s own default for linear layers.
    Torchvision,
}

/// How a model's own tensor names map to a checkpoint's: strip `strip` (a base-model prefix the
/// checkpoint lacks, e.g. `bert.` for a `BertModel` checkpoint under a task head), then prepend
/// `add` (`module.` for a model saved from `nn.DataParallel`).
#[derive(Debug, Clone, Default)]
pub struct NameMap {
    /// Prefix of the model's names that the checkpoint does not have.
    pub strip: String,
    /// Prefix the checkpoint's names have that the model's do not.
    pub add: String,
}

impl NameMap {
    /// The names as they are.
    pub fn identity() -> Self {
        Self::default()
    }

    /// For a model whose base sits under `prefix` (`"bert"`): strips `prefix.` when the
    /// checkpoint was saved from the bare base model (see [`Checkpoint::base_prefix`]; `probe`
    /// is a tensor every such checkpoint has).
    pub fn base_prefix(ck: &Checkpoint, prefix: &str, probe: &str) -> Self {
        let strip = if ck.base_prefix(prefix, probe).is_empty() { format!("{prefix}.") } else { String::new() };
        Self { strip, add: String::new() }
    }

    /// The checkpoint's name of the model's tensor `name`.
    pub fn checkpoint_name(&self, name: &str) -> String {
        let rest = if self.strip.is_empty() { name } else { name.strip_prefix(&self.strip).unwrap_or(name) };
        format!("{}{rest}", self.add)
    }
}

/// A parameter holding `value`, with the stable id of the model's tensor `name`.
pub fn named_param<const D: usize>(name: &str, value: Tensor<D>) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(value);
    p.id = param_id(name);
    p
}

/// Fills every part of `model` — a skeleton built with lazily initialised layers — from `ck`:
/// each tensor under its Hub name (through `names`), transposed where the Hub's layout differs
/// from Burn's, converted to f32; tensors the checkpoint lacks are initialised as `scheme` says,
/// in the model's part order (so that a seeded run draws the same values every time). Every
/// parameter gets the stable id of its name ([`param_id`]). Bottleneck adapters are left as
/// they are. Call [`Checkpoint::finish`] afterwards for the report.
pub fn load_parts<M: HubModule + ?Sized>(
    model: &mut M,
    ck: &mut Checkpoint,
    names: &NameMap,
    scheme: InitScheme,
) -> Result<()> {
    let mut error = None;
    model.parts(&HubPath::root(), &mut |path, part| {
        if error.is_none()
            && let Err(e) = load_part(path, part, ck, names, scheme)
        {
            error = Some(e);
        }
    });
    error.map_or(Ok(()), Err)
}

fn load_part(path: &HubPath, part: Part<'_>, ck: &mut Checkpoint, names: &NameMap, scheme: InitScheme) -> Result<()> {
    let std = match scheme {
        InitScheme::Transformers { std } => std,
        InitScheme::Torchvision => 0.0,
    };
    ck.set_init_std(std);
    match part {
        Part::Projection(p) => {
            let (d_in, d_out) = (p.d_in(), p.d_out());
            let keep_default = scheme == InitScheme::Torchvision;
            load_linear(
                path,
                &mut p.base,
                d_in,
                d_out,
                p.layout == crate::layers::WeightLayout::Linear,
                keep_default,
                ck,
                names,
            )
        }
        Part::Linear(l) => {
            let [d_in, d_out] = l.weight.lazy_shape().dims::<2>();
            let keep_default = scheme == InitScheme::Torchvision;
            load_linear(path, l, d_in, d_out, true, keep_default, ck, names)
        }
        Part::LayerNorm(ln) => {
            let [d] = ln.gamma.lazy_shape().dims::<1>();
            let (w, b) = (path.tensor("weight"), path.tensor("bias"));
            let (cw, cb) = if !ck.contains(&names.checkpoint_name(&w))
                && ck.contains(&names.checkpoint_name(&path.tensor("gamma")))
            {
                (names.checkpoint_name(&path.tensor("gamma")), names.checkpoint_name(&path.tensor("beta")))
            } else {
                (names.checkpoint_name(&w), names.checkpoint_name(&b))
            };
            let gamma = ck.take(&cw, &[d], [d], false)?.unwrap_or_else(|| ck.init([d], Init::Ones));
            ln.gamma = named_param(&w, gamma);
            if ln.beta.is_some() {
                let beta = ck.take(&cb, &[d], [d], false)?.unwrap_or_else(|| ck.init([d], Init::Zeros));
                ln.beta = Some(named_param(&b, beta));
            }
            Ok(())
        }
        Part::Embedding(e) => {
            let shape = e.weight.lazy_shape().dims::<2>();
            let w = path.tensor("weight");
            let t = ck
                .take(&names.checkpoint_name(&w), &shape, shape, false)?
                .unwrap_or_else(|| ck.init(shape, Init::Normal));
            e.weight = named_param(&w, t);
            Ok(())
        }
        Part::Matrix(m) => {
            let shape = m.lazy_shape().dims::<2>();
            let w = path.tensor("weight");
            let t = ck
                .take(&names.checkpoint_name(&w), &shape, shape, false)?
                .unwrap_or_else(|| ck.init(shape, Init::Normal));
            *m = named_param(&w, t);
            Ok(())
        }
        Part::Conv2d(c) => {
            let shape = c.weight.lazy_shape().dims::<4>();
            let [c_out, _, k, _] = shape;
            // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
            ck.set_init_std((2.0 / (c_out * k * k) as f64).sqrt());
            let w = path.tensor("weight");
            let t = ck
                .take(&names.checkpoint_name(&w), &shape, shape, false)?
                .unwrap_or_else(|| ck.init(shape, Init::Normal));
            c.weight = named_param(&w, t);
            if let Some(bias) = &c.bias {
                let shape = bias.lazy_shape().dims::<1>();
                let b = path.tensor("bias");
                let t = ck
                    .take(&names.checkpoint_name(&b), &shape, shape, false)?
                    .unwrap_or_else(|| ck.init(shape, Init::Zeros));
                c.bias = Some(named_param(&b, t));
            }
            Ok(())
        }
        Part::BatchNorm(bn) => {
            let shape = bn.gamma.lazy_shape().dims::<1>();
            let mut get = |tensor: &str, init: Init| -> Result<(String, Tensor<1>)> {
                let name = path.tensor(tensor);
                let t = ck
                    .take(&names.checkpoint_name(&name), &shape, shape, false)?
                    .unwrap_or_else(|| ck.init(shape, init));
                Ok((name, t))
            };
            let (w, gamma) = get("weight", Init::Ones)?;
            let (b, beta) = get("bias", Init::Zeros)?;
            let (m, mean) = get("running_mean", Init::Zeros)?;
            let (v, var) = get("running_var", Init::Ones)?;
            bn.gamma = named_param(&w, gamma);
            bn.beta = named_param(&b, beta);
            bn.running_mean = burn::module::RunningState::with_id(param_id(&m), mean);
            bn.running_var = burn::module::RunningState::with_id(param_id(&v), var);
            Ok(())
        }
        Part::Bottlenecks(_) => Ok(()),
    }
}

/// Loads a linear layer's `weight` (`transpose`: stored `[out, in]`) and `bias`. Missing
/// tensors are normal(0, std)/zeros, or with `keep_default` the layer's own (`nn.Linear`'s
/// default) initialisation.
#[allow(clippy::too_many_arguments)]
fn load_linear(
    path: &HubPath,
    layer: &mut burn::nn::Linear,
    d_in: usize,
    d_out: usize,
    transpose: bool,
    keep_default: bool,
    ck: &mut Checkpoint,
    names: &NameMap,
) -> Result<()> {
    let w = path.tensor("weight");
    let stored = if transpose { [d_out, d_in] } else { [d_in, d_out] };
    let weight = match ck.take(&names.checkpoint_name(&w), &stored, [d_in, d_out], transpose)? {
        Some(t) => t,
        None if keep_default => layer.weight.val(),
        None => ck.init([d_in, d_out], Init::Normal),
    };
    layer.weight = named_param(&w, weight);
    if let Some(bias) = &layer.bias {
        let b = path.tensor("bias");
        let t = match ck.take(&names.checkpoint_name(&b), &[d_out], [d_out], false)? {
            Some(t) => t,
            None if keep_default => bias.val(),
            None => ck.init([d_out], Init::Zeros),
        };
        layer.bias = Some(named_param(&b, t));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(header: &str, data: &[u8]) -> tempfile::NamedTempFile {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        f
    }

    fn open(f: &tempfile::NamedTempFile) -> Result<Checkpoint> {
        Checkpoint::from_files(f.path(), &[f.path().to_path_buf()], &Device::flex())
    }

    #[test]
    fn tensors_are_read_from_the_file_on_demand() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let f = file_with(r#"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}"#, &data);
        let mut ck = open(&f).unwrap();
        let t: Vec<f32> = ck.linear_weight("w", 2, 2).unwrap().into_data().try_into_vec_as().unwrap();
        // Stored [out, in] = [[1, 2], [3, 4]]; Burn's [in, out] is its transpose.
        assert_eq!(t, vec![1.0, 3.0, 2.0, 4.0]);
        assert!(ck.finish().unwrap().unexpected.is_empty());
    }

    #[test]
    fn hostile_headers_are_errors_not_panics() {
        let data = [0u8; 16];
        for (header, needle) in [
            (r#"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 1000]}}"#, "outside the file"),
            (r#"{"w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}"#, "takes 24 bytes"),
            (r#"{"w": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 16]}}"#, "too many"),
            (r#"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 4]}}"#, "outside the file"),
            (r#"{"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}"#, "dtype"),
            (r#"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#, "no 'dtype'"),
            (r#"[1, 2]"#, "not a JSON object"),
        ] {
            let f = file_with(header, &data);
            let e = open(&f).err().unwrap_or_else(|| panic!("{header}: accepted")).to_string();
            assert!(e.contains(needle) && e.contains("safetensors"), "{header}: {e}");
        }
        // A header length beyond the file, and a file shorter than the length field.
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), [255u8, 255, 255, 255, 0, 0, 0, 0, b'{']).unwrap();
        assert!(open(&f).err().unwrap().to_string().contains("header of"));
        std::fs::write(f.path(), [1u8, 2]).unwrap();
        assert!(open(&f).err().unwrap().to_string().contains("shorter than"));
    }
}
