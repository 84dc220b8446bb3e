//! PEFT's `adapter_config.json`: `LoraConfig`, `PromptTuningConfig` and `PrefixTuningConfig` with
//! PEFT's field names and defaults, read and written as PEFT reads and writes them (keys sorted,
//! two-space indent, no trailing newline; keys ft does not use are kept as read).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PeftError, Result};

/// `target_modules` / `exclude_modules`: a list (exact names or `.`-suffixes) or a regular
/// expression that must match a whole module name; `"all-linear"` is every linear layer but the
/// output layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Names matched exactly or as a `.`-suffix (`"query"` matches `bert.encoder.layer.0.attention.self.query`).
    List(Vec<String>),
    /// A regular expression matched against the whole module name; `"all-linear"` is special.
    Regex(String),
}

/// Which biases train with LoRA (`bias`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bias {
    /// None.
    #[default]
    None,
    /// Every bias of the model.
    All,
    /// The biases of the layers LoRA is attached to.
    LoraOnly,
}

/// How LoRA's matrices start (`init_lora_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitLoraWeights {
    /// `true`: A Kaiming-uniform (a = √5, as `nn.Linear`), B zero — the adapter starts as a no-op.
    #[default]
    Default,
    /// `"gaussian"`: A normal with std 1/r, B zero.
    Gaussian,
    /// `false`: both as `nn.Linear`'s default — not a no-op (for tests).
    Random,
}

impl Serialize for InitLoraWeights {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Default => s.serialize_bool(true),
            Self::Random => s.serialize_bool(false),
            Self::Gaussian => s.serialize_str("gaussian"),
        }
    }
}

impl<'de> Deserialize<'de> for InitLoraWeights {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Self::Default),
            Value::Bool(false) => Ok(Self::Random),
            Value::String(s) if s.eq_ignore_ascii_case("gaussian") => Ok(Self::Gaussian),
            other => Err(serde::de::Error::custom(format!(
                "init_lora_weights: {other} is not supported (true, false or \"gaussian\")"
            ))),
        }
    }
}

fn d_r() -> usize {
    8
}
fn d_alpha() -> f64 {
    8.0
}

/// PEFT's `LoraConfig` (the keys ft implements; others are kept in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// The rank.
    #[serde(default = "d_r")]
    pub r: usize,
    /// The scaling numerator: `lora_alpha / r` (or `/ √r`).
    #[serde(default = "d_alpha")]
    pub lora_alpha: f64,
    /// Dropout on the adapter's input, in training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Which modules get LoRA; `None`: the architecture's default (bert: query, value; gpt2:
    /// c_attn).
    #[serde(default)]
    pub target_modules: Option<TargetModules>,
    /// Modules never targeted.
    #[serde(default)]
    pub exclude_modules: Option<TargetModules>,
    /// Weights stored `[in, out]` (GPT-2's `Conv1D`; set by PEFT itself for those layers).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Which biases train.
    #[serde(default)]
    pub bias: Bias,
    /// Modules trained and saved whole (a new classifier head).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Scale by `lora_alpha / √r` instead of `lora_alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Initialisation.
    #[serde(default)]
    pub init_lora_weights: InitLoraWeights,
    /// Per-module ranks (`{pattern: r}`).
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alphas (`{pattern: alpha}`).
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: None,
            exclude_modules: None,
            fan_in_fan_out: false,
            bias: Bias::None,
            modules_to_save: None,
            use_rslora: false,
            init_lora_weights: InitLoraWeights::Default,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
        }
    }
}

/// How prompt tuning's soft prompt starts (`prompt_tuning_init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PromptTuningInit {
    /// Normal(0, 1), `nn.Embedding`'s default.
    #[default]
    Random,
    /// The word embeddings of `prompt_tuning_init_text`'s tokens, repeated or cut to the number
    /// of virtual tokens.
    Text,
    /// Embeddings of random vocabulary entries (read from files; ft does not create it).
    SampleVocab,
}

/// PEFT's `PromptTuningConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTuningConfig {
    /// Number of virtual tokens prepended to the input.
    pub num_virtual_tokens: usize,
    /// Initialisation.
    #[serde(default)]
    pub prompt_tuning_init: PromptTuningInit,
    /// The text whose tokens initialise the prompt (`TEXT`).
    #[serde(default)]
    pub prompt_tuning_init_text: Option<String>,
    /// The tokenizer of the init text (PEFT needs it; ft uses the base model's).
    #[serde(default)]
    pub tokenizer_name_or_path: Option<String>,
    /// Width of the embeddings (the model's hidden size); filled in when the adapter is built.
    #[serde(default)]
    pub token_dim: Option<usize>,
    /// 1 for decoder-only and encoder models.
    #[serde(default)]
    pub num_transformer_submodules: Option<usize>,
    /// The model's number of heads.
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    /// The model's number of layers.
    #[serde(default)]
    pub num_layers: Option<usize>,
    /// Modules trained and saved whole.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

/// PEFT's `PrefixTuningConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PrefixTuningConfig {
    /// Number of virtual tokens whose keys and values every layer sees first.
    pub num_virtual_tokens: usize,
    /// Reparameterise the prefix through a two-layer tanh MLP while training.
    #[serde(default)]
    pub prefix_projection: bool,
    /// The MLP's hidden width (default: the model's hidden size).
    #[serde(default)]
    pub encoder_hidden_size: Option<usize>,
    /// Width of the embeddings; filled in when the adapter is built.
    #[serde(default)]
    pub token_dim: Option<usize>,
    /// 1 for decoder-only and encoder models.
    #[serde(default)]
    pub num_transformer_submodules: Option<usize>,
    /// The model's number of heads.
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    /// The model's number of layers.
    #[serde(default)]
    pub num_layers: Option<usize>,
    /// Modules trained and saved whole.
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

/// A method's own configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum MethodConfig {
    /// `peft_type: "LORA"`.
    Lora(LoraConfig),
    /// `peft_type: "PROMPT_TUNING"`.
    PromptTuning(PromptTuningConfig),
    /// `peft_type: "PREFIX_TUNING"`.
    PrefixTuning(PrefixTuningConfig),
    /// A bottleneck adapter of AdapterHub's `adapters` library (its own `adapter_config.json`
    /// layout, no `peft_type`).
    Bottleneck(crate::adapterhub::BottleneckConfig),
}

impl MethodConfig {
    /// PEFT's `peft_type`.
    pub fn peft_type(&self) -> &'static str {
        match self {
            Self::Lora(_) => "LORA",
            Self::PromptTuning(_) => "PROMPT_TUNING",
            Self::PrefixTuning(_) => "PREFIX_TUNING",
            Self::Bottleneck(_) => "BOTTLENECK",
        }
    }

    /// `modules_to_save`.
    pub fn modules_to_save(&self) -> &[String] {
        let m = match self {
            Self::Lora(c) => &c.modules_to_save,
            Self::PromptTuning(c) => &c.modules_to_save,
            Self::PrefixTuning(c) => &c.modules_to_save,
            Self::Bottleneck(_) => return &[],
        };
        m.as_deref().unwrap_or(&[])
    }

    /// Mutable `modules_to_save` (`None`: the method has none — a bottleneck adapter brings its
    /// own head instead).
    pub fn modules_to_save_mut(&mut self) -> Option<&mut Option<Vec<String>>> {
        match self {
            Self::Lora(c) => Some(&mut c.modules_to_save),
            Self::PromptTuning(c) => Some(&mut c.modules_to_save),
            Self::PrefixTuning(c) => Some(&mut c.modules_to_save),
            Self::Bottleneck(_) => None,
        }
    }
}

/// The peft types ft reads.
pub const PEFT_TYPES: &str =
    "LORA, PROMPT_TUNING, PREFIX_TUNING, and AdapterHub bottleneck adapters (pfeiffer/seq_bn, houlsby/double_seq_bn)";

/// A whole `adapter_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// The method and its keys.
    pub method: MethodConfig,
    /// `task_type`: `CAUSAL_LM`, `SEQ_CLS`, `TOKEN_CLS`, `FEATURE_EXTRACTION`, or none.
    pub task_type: Option<String>,
    /// `base_model_name_or_path`: the model the adapter was trained on.
    pub base_model_name_or_path: Option<String>,
    /// `revision` of the base model.
    pub revision: Option<String>,
    /// Every other key, as read (`peft_version`, `inference_mode`, `layers_pattern`, ...).
    pub extra: BTreeMap<String, Value>,
}

impl AdapterConfig {
    /// A new config for `method`.
    pub fn new(method: MethodConfig, task_type: Option<&str>, base_model: Option<&str>) -> Self {
        Self {
            method,
            task_type: task_type.map(String::from),
            base_model_name_or_path: base_model.map(String::from),
            revision: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses `adapter_config.json`'s text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| PeftError::Config { path: path.to_path_buf(), message };
        let mut map: BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| err(format!("not a JSON object: {e}")))?;
        if crate::adapterhub::is_adapterhub(&map) {
            let (c, model_name, extra) = crate::adapterhub::parse_adapter_config(map, path)?;
            let config = Self {
                method: MethodConfig::Bottleneck(c),
                task_type: None,
                base_model_name_or_path: model_name,
                revision: None,
                extra,
            };
            config.validate(path)?;
            return Ok(config);
        }
        let peft_type = match map.remove("peft_type") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(err(format!("peft_type: expected a string, found {other}"))),
            None => return Err(err(format!("no peft_type (ft reads {PEFT_TYPES})"))),
        };
        let string = |map: &mut BTreeMap<String, Value>, key: &str| -> Result<Option<String>> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(err(format!("{key}: expected a string, found {other}"))),
            }
        };
        let task_type = string(&mut map, "task_type")?;
        let base_model_name_or_path = string(&mut map, "base_model_name_or_path")?;
        let revision = string(&mut map, "revision")?;
        let object = Value::Object(map.clone().into_iter().collect());
        // Keys the typed config does not take stay in `extra`.
        fn take<T: serde::de::DeserializeOwned + Serialize>(
            object: Value,
            map: &mut BTreeMap<String, Value>,
            err: impl Fn(String) -> PeftError,
        ) -> Result<T> {
            let typed: T = serde_json::from_value(object).map_err(|e| err(e.to_string()))?;
            if let Ok(Value::Object(known)) = serde_json::to_value(&typed) {
                for k in known.keys() {
                    map.remove(k);
                }
            }
            Ok(typed)
        }
        let method = match peft_type.as_str() {
            "LORA" => MethodConfig::Lora(take(object, &mut map, err)?),
            "PROMPT_TUNING" => MethodConfig::PromptTuning(take(object, &mut map, err)?),
            "PREFIX_TUNING" => MethodConfig::PrefixTuning(take(object, &mut map, err)?),
            other => return Err(err(format!("peft_type: '{other}' is not supported (ft reads {PEFT_TYPES})"))),
        };
        let config = Self { method, task_type, base_model_name_or_path, revision, extra: map };
        config.validate(path)?;
        Ok(config)
    }

    /// Reads `adapter_config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| PeftError::Io { path: path.to_path_buf(), error })?;
        Self::parse(&text, path)
    }

    /// Checks the values PEFT rejects (when it builds the adapter).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |message: String| Err(PeftError::Config { path: path.to_path_buf(), message });
        match &self.method {
            MethodConfig::Lora(c) => {
                let regex = |key: &str, pattern: &str| -> Result<()> {
                    regex::Regex::new(&format!("^(?:{pattern})$")).map(|_| ()).map_err(|e| PeftError::Config {
                        path: path.to_path_buf(),
                        message: format!("{key}: '{pattern}' is not a valid regular expression: {e}"),
                    })
                };
                for (key, t) in [("target_modules", &c.target_modules), ("exclude_modules", &c.exclude_modules)] {
                    if let Some(TargetModules::Regex(p)) = t
                        && !p.eq_ignore_ascii_case("all-linear")
                    {
                        regex(key, p)?;
                    }
                }
                for k in c.rank_pattern.keys() {
                    regex("rank_pattern", k)?;
                }
                for k in c.alpha_pattern.keys() {
                    regex("alpha_pattern", k)?;
                }
                if c.r == 0 {
                    return err("r: `r` should be a positive integer value but the value passed is 0".into());
                }
                if !(0.0..1.0).contains(&c.lora_dropout) {
                    return err(format!("lora_dropout: {} is not in [0, 1)", c.lora_dropout));
                }
                if let Some((k, _)) = c.rank_pattern.iter().find(|(_, r)| **r == 0) {
                    return err(format!("rank_pattern: '{k}' has rank 0"));
                }
                for key in [
                    "layers_to_transform",
                    "layers_pattern",
                    "layer_replication",
                    // LoRA variants and targets that change the forward pass.
                    "alora_invocation_tokens",
                    "target_parameters",
                    "trainable_token_indices",
                    "arrow_config",
                    "monteclora_config",
                    "kasa_config",
                    "velora_config",
                ] {
                    if self.extra.get(key).is_some_and(|v| !v.is_null()) {
                        return err(format!("{key} is not supported by ft"));
                    }
                }
                for key in ["use_dora", "lora_bias", "use_bdlora", "use_qalora"] {
                    if self.extra.get(key).is_some_and(|v| v.as_bool() == Some(true)) {
                        return err(format!("{key} = true is not supported by ft"));
                    }
                }
            }
            MethodConfig::PromptTuning(c) => {
                if c.num_virtual_tokens == 0 {
                    return err("num_virtual_tokens must be at least 1".into());
                }
                if c.prompt_tuning_init == PromptTuningInit::Text && c.prompt_tuning_init_text.is_none() {
                    return err("When prompt_tuning_init='TEXT', prompt_tuning_init_text can't be None.".into());
                }
            }
            MethodConfig::PrefixTuning(c) => {
                if c.num_virtual_tokens == 0 {
                    return err("num_virtual_tokens must be at least 1".into());
                }
            }
            MethodConfig::Bottleneck(c) => {
                if let Err(m) = c.config.validate() {
                    return err(format!("config.{m}"));
                }
                if let Some(h) = &c.head
                    && let Err(m) = h.config.validate()
                {
                    return err(format!("head config.{m}"));
                }
            }
        }
        Ok(())
    }

    /// The JSON PEFT writes: every key (known and kept), sorted, nested objects too.
    pub fn to_value(&self) -> Value {
        if let MethodConfig::Bottleneck(c) = &self.method {
            return sorted(crate::adapterhub::adapter_config_value(
                c,
                self.base_model_name_or_path.as_deref(),
                &self.extra,
            ));
        }
        let mut map: BTreeMap<String, Value> = self.extra.clone();
        let typed = match &self.method {
            MethodConfig::Lora(c) => serde_json::to_value(c),
            MethodConfig::PromptTuning(c) => serde_json::to_value(c),
            MethodConfig::PrefixTuning(c) => serde_json::to_value(c),
            MethodConfig::Bottleneck(_) => Ok(Value::Null),
        };
        if let Ok(Value::Object(o)) = typed {
            map.extend(o);
        }
        map.insert("peft_type".into(), Value::String(self.method.peft_type().into()));
        map.insert("task_type".into(), self.task_type.clone().map_or(Value::Null, Value::String));
        map.insert(
            "base_model_name_or_path".into(),
            self.base_model_name_or_path.clone().map_or(Value::Null, Value::String),
        );
        map.insert("revision".into(), self.revision.clone().map_or(Value::Null, Value::String));
        // A saved adapter is for inference unless loaded as trainable, as PEFT writes it.
        map.insert("inference_mode".into(), Value::Bool(true));
        map.entry("peft_version".to_string())
            .or_insert_with(|| Value::String(format!("ft {}", env!("CARGO_PKG_VERSION"))));
        sorted(Value::Object(map.into_iter().collect()))
    }

    /// The file's text: sorted keys, two-space indent, no trailing newline (as PEFT's
    /// `json.dumps(..., indent=2, sort_keys=True)`).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_else(|_| "{}".into())
    }
}

/// A JSON value with every object's keys sorted.
pub(crate) fn sorted(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let b: BTreeMap<String, Value> = o.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}
