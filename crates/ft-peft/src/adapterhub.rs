//! AdapterHub's `adapters` library: the configuration of bottleneck adapters (`BnConfig` and
//! its presets `SeqBnConfig` = `"pfeiffer"`/`"seq_bn"` and `DoubleSeqBnConfig` =
//! `"houlsby"`/`"double_seq_bn"`), the `adapter_config.json` and `head_config.json` that
//! `save_adapter` writes, and the prediction heads' configuration.
//!
//! Files are read and written as the library does (`json.dump(indent=2, sort_keys=True)`, no
//! trailing newline); keys ft does not use are kept as read. ft computes the options the
//! library's defaults use — `mh_adapter`, `output_adapter`, `reduction_factor` (a number or a
//! per-layer map), `non_linearity`, `original_ln_before`/`original_ln_after`,
//! `residual_before_ln` (`true`, `false`, `"post_add"`), `scaling` (a number), `dropout`,
//! `leave_out`, `init_weights` (`"bert"`, `"mam_adapter"`, `"houlsby"`) — and refuses with a
//! clear error the ones that add modules it does not implement (`ln_before`, `ln_after`,
//! `use_gating`, `is_parallel`, PHM layers, invertible adapters, learned scaling).

use std::collections::BTreeMap;
use std::path::Path;

use ft_hub::ops::{ACTIVATIONS, Activation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PeftError, Result};

/// `adapter_config.json` (AdapterHub's name too).
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights when saved with safetensors.
pub const SAFE_WEIGHTS_FILE: &str = "adapter.safetensors";
/// The adapter's weights as `torch.save` writes them (the library's default).
pub const WEIGHTS_FILE: &str = "pytorch_adapter.bin";
/// The head's configuration.
pub const HEAD_CONFIG_FILE: &str = "head_config.json";
/// The head's weights when saved with safetensors.
pub const SAFE_HEAD_WEIGHTS_FILE: &str = "model_head.safetensors";
/// The head's weights as `torch.save` writes them.
pub const HEAD_WEIGHTS_FILE: &str = "pytorch_model_head.bin";

/// The `version` ft writes (the library version whose files ft's were checked against).
pub const LIBRARY_VERSION: &str = "adapters.1.1.1";

/// The config names ft knows.
pub const PRESETS: &str = "pfeiffer, seq_bn, houlsby, double_seq_bn";

/// `reduction_factor`: one number, or per layer (`{"0": 8, "default": 16}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReductionFactor {
    /// The same factor in every layer.
    Number(serde_json::Number),
    /// Per layer index (as a string), with `"default"` for the others.
    PerLayer(BTreeMap<String, serde_json::Number>),
}

impl ReductionFactor {
    /// The factor for layer `layer`.
    pub fn for_layer(&self, layer: usize) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            Self::PerLayer(m) => m.get(&layer.to_string()).or_else(|| m.get("default")).and_then(|n| n.as_f64()),
        }
    }
}

/// `residual_before_ln`: where the adapter's own residual is taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResidualBeforeLn {
    /// `true`: the sub-layer's output before the residual add and the LayerNorm; `false`: after.
    Bool(bool),
    /// `"post_add"`: after the residual add, before the LayerNorm.
    Named(String),
}

fn yes() -> bool {
    true
}
fn d_rf() -> ReductionFactor {
    ReductionFactor::Number(16.into())
}
fn d_relu() -> String {
    "relu".into()
}
fn d_bert() -> String {
    "bert".into()
}
fn d_scaling() -> Value {
    Value::from(1.0)
}
fn d_residual() -> ResidualBeforeLn {
    ResidualBeforeLn::Bool(true)
}

/// The library's `BnConfig` (bottleneck adapters), with its field names and defaults. Keys ft
/// does not use are kept in `extra` and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BnConfig {
    /// An adapter after the attention block (Houlsby).
    #[serde(default)]
    pub mh_adapter: bool,
    /// An adapter after the feed-forward block.
    #[serde(default = "yes")]
    pub output_adapter: bool,
    /// Bottleneck width = `hidden_size // reduction_factor` (at least 1).
    #[serde(default = "d_rf")]
    pub reduction_factor: ReductionFactor,
    /// Activation between the projections (`relu`, `swish`, `gelu`, ...).
    #[serde(default = "d_relu")]
    pub non_linearity: String,
    /// Apply the layer's LayerNorm (with the residual) before the adapter.
    #[serde(default)]
    pub original_ln_before: bool,
    /// Apply the layer's LayerNorm (with the residual) after the adapter.
    #[serde(default = "yes")]
    pub original_ln_after: bool,
    /// A new LayerNorm before the adapter (not supported by ft).
    #[serde(default)]
    pub ln_before: bool,
    /// A new LayerNorm after the adapter (not supported by ft).
    #[serde(default)]
    pub ln_after: bool,
    /// `"bert"` (both projections N(0, 0.02), biases 0), `"mam_adapter"`, `"houlsby"`.
    #[serde(default = "d_bert")]
    pub init_weights: String,
    /// Parallel instead of sequential (not supported by ft).
    #[serde(default)]
    pub is_parallel: bool,
    /// Factor on the up projection's output (a number; `"learned"`/`"channel"` are not supported).
    #[serde(default = "d_scaling")]
    pub scaling: Value,
    /// A learned gate (not supported by ft).
    #[serde(default)]
    pub use_gating: bool,
    /// Where the adapter's residual is taken.
    #[serde(default = "d_residual")]
    pub residual_before_ln: ResidualBeforeLn,
    /// Residual before the adapter's own `ln_after` (only matters with `ln_after`).
    #[serde(default)]
    pub adapter_residual_before_ln: bool,
    /// Layers without the adapter.
    #[serde(default)]
    pub leave_out: Vec<usize>,
    /// Dropout on the adapter's output, in training.
    #[serde(default)]
    pub dropout: f64,
    /// Parameterised hypercomplex layers (not supported by ft).
    #[serde(default)]
    pub phm_layer: bool,
    /// Every other key, as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The library's keys ft does not compute, with the values its `SeqBnConfig().to_dict()` writes
/// (adapters 1.1.1), so that ft's files hold every key the library's do.
fn library_defaults() -> BTreeMap<String, Value> {
    [
        ("cross_adapter", Value::Bool(false)),
        ("factorized_phm_W", Value::Bool(true)),
        ("factorized_phm_rule", Value::Bool(false)),
        ("hypercomplex_nonlinearity", Value::from("glorot-uniform")),
        ("inv_adapter", Value::Null),
        ("inv_adapter_reduction_factor", Value::Null),
        ("learn_phm", Value::Bool(true)),
        ("phm_bias", Value::Bool(true)),
        ("phm_c_init", Value::from("normal")),
        ("phm_dim", Value::from(4)),
        ("phm_init_range", Value::from(0.0001)),
        ("phm_rank", Value::from(1)),
        ("shared_W_phm", Value::Bool(false)),
        ("shared_phm_rule", Value::Bool(true)),
        ("stochastic_depth", Value::from(0.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl BnConfig {
    /// A named config: `"pfeiffer"`/`"seq_bn"` (`SeqBnConfig`: one adapter after the
    /// feed-forward block, the LayerNorm before and after, ReLU) or `"houlsby"`/`"double_seq_bn"`
    /// (`DoubleSeqBnConfig`: also one after attention, no LayerNorm before, swish); both with
    /// reduction factor 16 and the library's other defaults.
    pub fn preset(name: &str) -> Option<Self> {
        let seq = Self {
            mh_adapter: false,
            output_adapter: true,
            reduction_factor: d_rf(),
            non_linearity: "relu".into(),
            original_ln_before: true,
            original_ln_after: true,
            ln_before: false,
            ln_after: false,
            init_weights: d_bert(),
            is_parallel: false,
            scaling: d_scaling(),
            use_gating: false,
            residual_before_ln: d_residual(),
            adapter_residual_before_ln: false,
            leave_out: Vec::new(),
            dropout: 0.0,
            phm_layer: false,
            extra: library_defaults(),
        };
        match name.to_ascii_lowercase().as_str() {
            "pfeiffer" | "seq_bn" => Some(seq),
            "houlsby" | "double_seq_bn" => {
                Some(Self { mh_adapter: true, original_ln_before: false, non_linearity: "swish".into(), ..seq })
            }
            _ => None,
        }
    }

    /// The activation (`non_linearity`, case-insensitive as the library reads it).
    pub fn activation(&self) -> Result<Activation> {
        let name = self.non_linearity.to_ascii_lowercase();
        serde_json::from_value(Value::String(name)).map_err(|_| {
            PeftError::Adapter(format!(
                "non_linearity: '{}' is not supported (one of {ACTIVATIONS})",
                self.non_linearity
            ))
        })
    }

    /// `scaling` as a number.
    pub fn scaling_factor(&self) -> Option<f64> {
        self.scaling.as_f64()
    }

    /// The bottleneck width in layer `layer` of a model of width `hidden`
    /// (`int(hidden_size // reduction_factor)`, at least 1); an error when the per-layer map has
    /// neither the layer nor `"default"`, or when the width would exceed 64 × `hidden`.
    pub fn down_size(&self, hidden: usize, layer: usize) -> std::result::Result<usize, String> {
        let f = self
            .reduction_factor
            .for_layer(layer)
            .ok_or_else(|| format!("reduction_factor has no entry for layer {layer} and no \"default\""))?;
        let width = py_floordiv(hidden as f64, f);
        if !width.is_finite() || width > 64.0 * hidden as f64 {
            return Err(format!(
                "reduction_factor = {f} makes a bottleneck of {width} for hidden size {hidden} (at most 64 × hidden)"
            ));
        }
        Ok((width as usize).max(1))
    }

    /// Checks what ft computes; errors name the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, on) in [
            ("ln_before", self.ln_before),
            ("ln_after", self.ln_after),
            ("is_parallel", self.is_parallel),
            ("use_gating", self.use_gating),
            ("phm_layer", self.phm_layer),
        ] {
            if on {
                return Err(format!("{key} = true is not supported by ft (sequential bottleneck adapters only)"));
            }
        }
        for key in ["inv_adapter", "architecture"] {
            if let Some(v) = self.extra.get(key).filter(|v| !v.is_null() && v.as_str() != Some("bottleneck")) {
                return Err(format!("{key} = {v} is not supported by ft (bottleneck adapters only)"));
            }
        }
        if self.extra.get("cross_adapter").and_then(Value::as_bool) == Some(true) {
            return Err("cross_adapter = true is not supported by ft".into());
        }
        if self.extra.get("stochastic_depth").and_then(Value::as_f64).is_some_and(|p| p != 0.0) {
            return Err("stochastic_depth > 0 is not supported by ft".into());
        }
        if !self.mh_adapter && !self.output_adapter {
            return Err("mh_adapter and output_adapter are both false: the adapter would have no module".into());
        }
        match self.scaling_factor() {
            Some(s) if s.is_finite() => {}
            _ => return Err(format!("scaling = {}: ft supports a number only (not learned scaling)", self.scaling)),
        }
        // At least 1/64: a bottleneck at most 64 times the model's width.
        let sane = |n: &serde_json::Number| n.as_f64().is_some_and(|f| f.is_finite() && f >= 1.0 / 64.0);
        match &self.reduction_factor {
            ReductionFactor::Number(n) if sane(n) => {}
            ReductionFactor::PerLayer(m) if !m.is_empty() && m.values().all(sane) => {
                if let Some(k) = m.keys().find(|k| *k != "default" && k.parse::<usize>().is_err()) {
                    return Err(format!("reduction_factor: key '{k}' is neither a layer index nor \"default\""));
                }
            }
            other => {
                let shown = serde_json::to_string(other).unwrap_or_default();
                return Err(format!("reduction_factor: {shown} is not a number of at least 1/64"));
            }
        }
        if let ResidualBeforeLn::Named(s) = &self.residual_before_ln {
            if s != "post_add" {
                return Err(format!("residual_before_ln: '{s}' (true, false or \"post_add\")"));
            }
            if !self.original_ln_before {
                // The library takes that residual after the add it only does before the norm.
                return Err(
                    "residual_before_ln = \"post_add\" needs original_ln_before = true (the library fails on it \
                            otherwise)"
                        .into(),
                );
            }
        }
        if !["bert", "mam_adapter", "houlsby"].contains(&self.init_weights.as_str()) {
            return Err(format!("init_weights: '{}' (bert, mam_adapter or houlsby)", self.init_weights));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: {} is not in [0, 1)", self.dropout));
        }
        self.activation().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Python's `a // b` for positive floats (CPython's `float_floor_div`): `fmod`, then a
/// correction, so that widths match the library's `int(hidden_size // reduction_factor)` for
/// factors like 3.2 (`32 // 3.2 = 9`, not ⌊32 / 3.2⌋ = 10).
fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let div = (a - m) / b;
    if div == 0.0 {
        return 0.0;
    }
    let floor = div.floor();
    if div - floor > 0.5 { floor + 1.0 } else { floor }
}

/// A prediction head's configuration (the `config` of `head_config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// `"classification"` (one label per text, from the first token) or `"tagging"` (per token).
    pub head_type: String,
    /// Number of labels.
    pub num_labels: usize,
    /// Linear layers: `layers - 1` of `[H, H]` with the activation, then `[H, num_labels]`.
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// Activation after each hidden layer (`"tanh"`; `null`: none).
    #[serde(default)]
    pub activation_function: Option<String>,
    /// Label names → ids (`null`: `LABEL_i`).
    #[serde(default)]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// Use the pooler's output instead of the first token's hidden state (not supported by
    /// ft); absent from tagging heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_pooler: Option<bool>,
    /// Bias on the output layer (`None`: yes; absent from tagging heads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<bool>,
    /// Dropout before each layer (`null`: the model's `classifier_dropout`, else its
    /// `hidden_dropout_prob`, else 0).
    #[serde(default)]
    pub dropout_prob: Option<f64>,
    /// Every other key, as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn d_layers() -> usize {
    2
}

impl HeadConfig {
    /// `add_classification_head(name, num_labels, id2label=...)`'s head: dropout, linear
    /// `[H, H]`, tanh, dropout, linear `[H, num_labels]` on the first token.
    pub fn classification(num_labels: usize, labels: Option<&[String]>) -> Self {
        Self {
            head_type: "classification".into(),
            num_labels,
            layers: 2,
            activation_function: Some("tanh".into()),
            label2id: labels.map(label2id),
            use_pooler: Some(false),
            bias: Some(true),
            dropout_prob: None,
            extra: BTreeMap::new(),
        }
    }

    /// `add_tagging_head(name, num_labels, id2label=...)`'s head: dropout, linear
    /// `[H, num_labels]` on every token.
    pub fn tagging(num_labels: usize, labels: Option<&[String]>) -> Self {
        Self {
            head_type: "tagging".into(),
            layers: 1,
            use_pooler: None,
            bias: None,
            ..Self::classification(num_labels, labels)
        }
    }

    /// Whether the output layer has a bias.
    pub fn output_bias(&self) -> bool {
        self.bias.unwrap_or(true)
    }

    /// Whether the head labels each token (`tagging`) rather than the text.
    pub fn per_token(&self) -> bool {
        self.head_type == "tagging"
    }

    /// The label names by id (`LABEL_i` where the config has none).
    pub fn labels(&self) -> Vec<String> {
        let mut out: Vec<String> = (0..self.num_labels).map(|i| format!("LABEL_{i}")).collect();
        if let Some(m) = &self.label2id {
            for (name, &id) in m {
                if let Some(slot) = out.get_mut(id) {
                    *slot = name.clone();
                }
            }
        }
        out
    }

    /// The activation between layers.
    pub fn activation(&self) -> Result<Option<Activation>> {
        self.activation_function
            .as_deref()
            .map(|name| {
                serde_json::from_value(Value::String(name.to_ascii_lowercase())).map_err(|_| {
                    PeftError::Adapter(format!("activation_function: '{name}' is not supported (one of {ACTIVATIONS})"))
                })
            })
            .transpose()
    }

    /// Checks what ft computes; errors name the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !["classification", "tagging"].contains(&self.head_type.as_str()) {
            return Err(format!("head_type: '{}' is not supported by ft (classification or tagging)", self.head_type));
        }
        if self.num_labels == 0 || self.layers == 0 {
            return Err("num_labels and layers must be at least 1".into());
        }
        // A bound before any label name or head row is allocated (as for a run file's num_labels).
        if self.num_labels > MAX_HEAD_LABELS {
            return Err(format!("num_labels = {}: at most {MAX_HEAD_LABELS} labels", self.num_labels));
        }
        if self.layers > 64 {
            return Err(format!("layers = {}: ft builds heads of at most 64 layers", self.layers));
        }
        if self.use_pooler == Some(true) {
            return Err("use_pooler = true is not supported by ft (heads read the first token's hidden state, the \
                        library's default)"
                .into());
        }
        if let Some(m) = &self.label2id {
            if m.len() != self.num_labels {
                return Err(format!("label2id has {} labels, num_labels is {}", m.len(), self.num_labels));
            }
            if let Some((name, id)) = m.iter().find(|(_, id)| **id >= self.num_labels) {
                return Err(format!("label2id: '{name}' has id {id}, outside 0..{}", self.num_labels));
            }
        }
        if self.dropout_prob.is_some_and(|p| !(0.0..1.0).contains(&p)) {
            return Err("dropout_prob is not in [0, 1)".into());
        }
        self.activation().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The most labels a head may have.
pub const MAX_HEAD_LABELS: usize = 1_000_000;

fn label2id(labels: &[String]) -> BTreeMap<String, usize> {
    labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect()
}

/// An adapter's head as `head_config.json` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadFile {
    /// The head's configuration.
    pub config: HeadConfig,
    /// The head's name in the file (its tensors are `heads.{name}.…`).
    pub name: String,
    /// Every other top-level key (`model_class`, `model_type`, `hidden_size`, `version`, ...).
    pub extra: BTreeMap<String, Value>,
}

/// A bottleneck adapter's whole configuration: `adapter_config.json` as the library writes it,
/// and its head's `head_config.json` if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct BottleneckConfig {
    /// The adapter's options (`config`).
    pub config: BnConfig,
    /// The adapter's name in the file (its tensors are `….adapters.{name}.…`).
    pub name: String,
    /// `model_type` of the model it was trained on (`bert`, `distilbert`).
    pub model_type: Option<String>,
    /// `hidden_size` of that model.
    pub hidden_size: Option<usize>,
    /// Its prediction head, if it has one.
    pub head: Option<HeadFile>,
}

impl BottleneckConfig {
    /// A new adapter `name` with options `config` and no head yet.
    pub fn new(name: &str, config: BnConfig) -> Self {
        Self { config, name: name.into(), model_type: None, hidden_size: None, head: None }
    }

    /// The label names of its head (`None`: no head).
    pub fn labels(&self) -> Option<Vec<String>> {
        self.head.as_ref().map(|h| h.config.labels())
    }
}

fn object(text: &str, path: &Path) -> Result<BTreeMap<String, Value>> {
    serde_json::from_str(text)
        .map_err(|e| PeftError::Config { path: path.to_path_buf(), message: format!("not a JSON object: {e}") })
}

fn take_string(map: &mut BTreeMap<String, Value>, key: &str, path: &Path) -> Result<Option<String>> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(PeftError::Config {
            path: path.to_path_buf(),
            message: format!("{key}: expected a string, found {other}"),
        }),
    }
}

/// Whether a parsed `adapter_config.json` is the `adapters` library's (a `config` object, no
/// `peft_type`).
pub fn is_adapterhub(map: &BTreeMap<String, Value>) -> bool {
    !map.contains_key("peft_type") && map.contains_key("config")
}

/// The parts of an AdapterHub `adapter_config.json`: the config, the model it names
/// (`model_name`), and the other top-level keys.
pub fn parse_adapter_config(
    mut map: BTreeMap<String, Value>,
    path: &Path,
) -> Result<(BottleneckConfig, Option<String>, BTreeMap<String, Value>)> {
    let err = |message: String| PeftError::Config { path: path.to_path_buf(), message };
    // Files of the old adapter-transformers (no `version`) name the activations differently;
    // the library renames them on load (`ACTIVATION_RENAME`): "gelu" was the tanh approximation.
    let legacy = !map.contains_key("version");
    let config = match map.remove("config") {
        Some(v @ Value::Object(_)) => {
            let mut c = serde_json::from_value::<BnConfig>(v).map_err(|e| err(format!("config: {e}")))?;
            if legacy {
                match c.non_linearity.to_ascii_lowercase().as_str() {
                    "gelu" => c.non_linearity = "gelu_new".into(),
                    "gelu_orig" => c.non_linearity = "gelu".into(),
                    _ => {}
                }
            }
            c
        }
        Some(Value::String(s)) => {
            BnConfig::preset(&s).ok_or_else(|| err(format!("config: '{s}' is not a config ft knows ({PRESETS})")))?
        }
        Some(other) => {
            return Err(err(format!(
                "config: {other} is not supported by ft (a bottleneck adapter's options, or one of {PRESETS})"
            )));
        }
        None => return Err(err("no 'config' key".into())),
    };
    config.validate().map_err(|m| err(format!("config.{m}")))?;
    let name = take_string(&mut map, "name", path)?.unwrap_or_else(|| "default".into());
    let model_type = take_string(&mut map, "model_type", path)?;
    let model_name = take_string(&mut map, "model_name", path)?;
    let hidden_size = match map.remove("hidden_size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| err(format!("hidden_size: expected a number, found {v}")))? as usize),
    };
    Ok((BottleneckConfig { config, name, model_type, hidden_size, head: None }, model_name, map))
}

/// Reads `head_config.json`.
pub fn read_head_config(path: &Path) -> Result<HeadFile> {
    let text = std::fs::read_to_string(path).map_err(|error| PeftError::Io { path: path.to_path_buf(), error })?;
    let mut map = object(&text, path)?;
    let err = |message: String| PeftError::Config { path: path.to_path_buf(), message };
    let config = match map.remove("config") {
        Some(v @ Value::Object(_)) => {
            serde_json::from_value::<HeadConfig>(v).map_err(|e| err(format!("config: {e}")))?
        }
        Some(Value::Null) | None => {
            return Err(err("config is null: a head of a model class with a fixed head (e.g. \
                            BertForSequenceClassification with adapters.init) is not read by ft; save it from \
                            an AutoAdapterModel"
                .into()));
        }
        Some(other) => return Err(err(format!("config: expected an object, found {other}"))),
    };
    config.validate().map_err(|m| err(format!("config.{m}")))?;
    let name = take_string(&mut map, "name", path)?.unwrap_or_else(|| "default".into());
    Ok(HeadFile { config, name, extra: map })
}

/// `adapter_config.json`'s JSON as the library writes it.
pub fn adapter_config_value(c: &BottleneckConfig, model_name: Option<&str>, extra: &BTreeMap<String, Value>) -> Value {
    let mut map = extra.clone();
    map.insert("config".into(), serde_json::to_value(&c.config).unwrap_or(Value::Null));
    map.insert("name".into(), Value::String(c.name.clone()));
    map.insert("model_name".into(), model_name.map_or(Value::Null, |m| Value::String(m.into())));
    map.insert("model_type".into(), c.model_type.clone().map_or(Value::Null, Value::String));
    map.insert("hidden_size".into(), c.hidden_size.map_or(Value::Null, Value::from));
    map.entry("model_class".into()).or_insert_with(|| Value::String(model_class(c.model_type.as_deref())));
    map.insert("version".into(), Value::String(LIBRARY_VERSION.into()));
    Value::Object(map.into_iter().collect())
}

/// `head_config.json`'s JSON as the library writes it.
pub fn head_config_value(c: &BottleneckConfig, head: &HeadFile, model_name: Option<&str>) -> Value {
    let mut map = head.extra.clone();
    map.insert("config".into(), serde_json::to_value(&head.config).unwrap_or(Value::Null));
    map.insert("name".into(), Value::String(head.name.clone()));
    map.insert("model_name".into(), model_name.map_or(Value::Null, |m| Value::String(m.into())));
    map.insert("model_type".into(), c.model_type.clone().map_or(Value::Null, Value::String));
    map.insert("hidden_size".into(), c.hidden_size.map_or(Value::Null, Value::from));
    map.entry("model_class".into()).or_insert_with(|| Value::String(model_class(c.model_type.as_deref())));
    map.insert("version".into(), Value::String(LIBRARY_VERSION.into()));
    Value::Object(map.into_iter().collect())
}

/// The flexible-head class the library saves from (`BertAdapterModel`, `DistilBertAdapterModel`).
fn model_class(model_type: Option<&str>) -> String {
    match model_type {
        Some("bert") => "BertAdapterModel".into(),
        Some("distilbert") => "DistilBertAdapterModel".into(),
        _ => "AutoAdapterModel".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_the_library_classes() {
        let p = BnConfig::preset("pfeiffer").unwrap();
        assert!(p.original_ln_before && p.output_adapter && !p.mh_adapter);
        assert_eq!(p.non_linearity, "relu");
        assert_eq!(p.down_size(768, 0), Ok(48));
        let h = BnConfig::preset("double_seq_bn").unwrap();
        assert!(h.mh_adapter && !h.original_ln_before);
        assert_eq!(h.activation().unwrap(), Activation::Silu);
        assert!(BnConfig::preset("lora").is_none());
        // The library's 32 keys of adapters 1.1.1.
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 32, "{v}");
        assert_eq!(v["scaling"], serde_json::json!(1.0));
        assert_eq!(v["reduction_factor"], serde_json::json!(16));
    }

    #[test]
    fn per_layer_factors_and_bad_options() {
        let mut c = BnConfig::preset("seq_bn").unwrap();
        c.reduction_factor = serde_json::from_str(r#"{"1": 4, "default": 16}"#).unwrap();
        assert_eq!(c.down_size(32, 1), Ok(8));
        assert_eq!(c.down_size(32, 0), Ok(2));
        assert_eq!(c.down_size(8, 0), Ok(1));
        // Python's float floor division, as the library: 32 // 3.2 = 9, 768 // 3.2 = 239.
        let mut odd = c.clone();
        odd.reduction_factor = ReductionFactor::Number(serde_json::Number::from_f64(3.2).unwrap());
        assert_eq!(odd.down_size(32, 0), Ok(9));
        assert_eq!(odd.down_size(768, 0), Ok(239));
        let mut post = BnConfig::preset("houlsby").unwrap();
        post.residual_before_ln = ResidualBeforeLn::Named("post_add".into());
        assert!(post.validate().unwrap_err().contains("original_ln_before"));
        c.validate().unwrap();
        let mut tiny = c.clone();
        tiny.reduction_factor = ReductionFactor::Number(serde_json::Number::from_f64(1e-30).unwrap());
        assert!(tiny.validate().unwrap_err().contains("1/64"));
        assert!(tiny.down_size(32, 0).is_err());
        let mut missing = c.clone();
        missing.reduction_factor = serde_json::from_str(r#"{"1": 4}"#).unwrap();
        assert!(missing.down_size(32, 0).unwrap_err().contains("layer 0"));
        c.ln_after = true;
        assert!(c.validate().unwrap_err().contains("ln_after"));
        let mut c = BnConfig::preset("seq_bn").unwrap();
        c.scaling = Value::from("learned");
        assert!(c.validate().unwrap_err().contains("scaling"));
        let mut c = BnConfig::preset("seq_bn").unwrap();
        c.non_linearity = "leakyrelu".into();
        assert!(c.validate().unwrap_err().contains("non_linearity"));
    }

    #[test]
    fn legacy_files_name_gelu_as_the_library_reads_them() {
        let text = r#"{"config": {"non_linearity": "gelu", "original_ln_before": true}, "name": "x"}"#;
        let (c, _, _) = parse_adapter_config(serde_json::from_str(text).unwrap(), Path::new("a")).unwrap();
        assert_eq!(c.config.non_linearity, "gelu_new");
        let text = r#"{"config": {"non_linearity": "gelu"}, "name": "x", "version": "adapters.1.1.1"}"#;
        let (c, _, _) = parse_adapter_config(serde_json::from_str(text).unwrap(), Path::new("a")).unwrap();
        assert_eq!(c.config.non_linearity, "gelu");
    }

    #[test]
    fn head_labels_and_checks() {
        let h = HeadConfig::classification(3, Some(&["a".into(), "b".into(), "c".into()]));
        assert_eq!(h.labels(), vec!["a", "b", "c"]);
        assert_eq!(HeadConfig::tagging(2, None).labels(), vec!["LABEL_0", "LABEL_1"]);
        // Bounded before labels are named (a fuzzed head_config.json asked for 2^31 - 1).
        assert!(HeadConfig::tagging(i32::MAX as usize, None).validate().unwrap_err().contains("at most"));
        let mut bad = h.clone();
        bad.num_labels = 2;
        assert!(bad.validate().unwrap_err().contains("label2id"));
        let mut bad = h;
        bad.head_type = "multilabel_classification".into();
        assert!(bad.validate().unwrap_err().contains("head_type"));
    }
}
