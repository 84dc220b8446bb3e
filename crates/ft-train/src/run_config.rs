//! The run file of `ft train`: a TOML file with `[model]`, `[data]`, `[method]` and `[training]`
//! (transformers' `TrainingArguments` keys), overridable with `--set section.key=value`.
//!
//! ```toml
//! [model]
//! name = "distilbert-base-uncased"   # a local directory or a Hub id
//! task = "text-classification"       # or "token-classification"
//!
//! [data]
//! source = "ag_news"                 # a recipe, a Hub dataset id, or a local file/directory
//! train_split = "train"
//! eval_split = "validation"
//! train_select = 2000                # the notebook's shuffle(seed=42).select(range(2000))
//! eval_select = 1000
//! shuffle_seed = 42
//! max_length = 256
//!
//! [method]
//! kind = "full"                      # or "frozen": frozen encoder + linear head (§5); each kind
//!                                    # has its own keys (e.g. frozen: head_dropout, cache_features)
//!
//! [training]
//! output_dir = "ft_full_agnews"
//! learning_rate = 2e-5
//! per_device_train_batch_size = 16
//! num_train_epochs = 2
//! eval_strategy = "epoch"
//! save_strategy = "epoch"
//! load_best_model_at_end = true
//! metric_for_best_model = "accuracy"
//! ```
//!
//! Unknown keys are errors that list the valid ones. Paths may use environment variables —
//! `${VAR}`, or `${VAR:-default}` when unset — and a leading `~/` for the home directory.
//! Relative model and data paths are relative to the run file's directory (when they exist
//! there), so a run file works from any working directory; `training.output_dir` is relative to
//! the working directory, as in transformers.

use std::path::{Path, PathBuf};

use ft_models::auto::Task;

use crate::args::TrainingArguments;
use crate::{Result, TrainError};

/// `[model]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A local model directory or a Hub id (`org/name[@revision]`).
    pub name: String,
    /// What the model is trained for: `text-classification` (alias `sentiment-analysis`) or
    /// `token-classification` (alias `ner`).
    pub task: Task,
    /// Number of labels; default: the data's label names, else the checkpoint's head.
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// Start from random weights built from the model's `config.json` (transformers'
    /// `from_config`, torchvision's `weights=None`) instead of its checkpoint: the baseline of a
    /// transfer-learning comparison, or pre-training from scratch (a text model's repository then
    /// needs only `config.json` and the tokenizer files). With `method.kind = "full"` only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub random_init: bool,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A recipe name (`ag_news`, `imdb`, `conll2003`), a Hub dataset id, or a local file or
    /// directory (e.g. one holding `train.parquet` and `validation.parquet`).
    pub source: String,
    /// For a recipe: read these local files instead of the Hub.
    #[serde(default)]
    pub local_data: Option<PathBuf>,
    /// The Hub config (subset) of the dataset.
    #[serde(default)]
    pub config: Option<String>,
    /// Training split.
    #[serde(default = "default_train_split")]
    pub train_split: String,
    /// Evaluation split. When not set: `validation` if the run evaluates
    /// (`training.eval_strategy` is not "no"), else no evaluation data at all.
    #[serde(default)]
    pub eval_split: Option<String>,
    /// Keep this many training rows (after the shuffle).
    #[serde(default)]
    pub train_select: Option<usize>,
    /// Skip this many evaluation rows first (after the shuffle) — to carve a validation set out of
    /// the same split as the training rows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_skip: usize,
    /// Keep this many evaluation rows (after the shuffle and skip).
    #[serde(default)]
    pub eval_select: Option<usize>,
    /// Shuffle each split with `datasets`' `shuffle(seed)` before selecting rows.
    #[serde(default)]
    pub shuffle_seed: Option<u64>,
    /// Text column (default `text`; `tokens` for token classification).
    #[serde(default)]
    pub text_column: Option<String>,
    /// Label column (default `label`; `ner_tags` for token classification).
    #[serde(default)]
    pub label_column: Option<String>,
    /// Truncation length in tokens (default: the tokenizer's `model_max_length`).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Label every sub-token of a word, not only the first.
    #[serde(default, skip_serializing_if = "is_false")]
    pub label_all_tokens: bool,
    /// Skip invalid rows (and report how many) instead of failing. For images: an image that
    /// cannot be decoded is skipped (and counted, naming the file in the log) when its batch is
    /// built; without it the run stops with an error naming the file.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_invalid: bool,
    /// Image column (image classification; default `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_column: Option<String>,
    /// Side of the square network input (the crop), in pixels; default: the model's
    /// `pretrained_cfg.input_size` (224 for ResNet18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// Evaluation: the shorter side is resized to this before the center crop; default
    /// `floor(image_size / crop_pct)` with the model's `crop_pct` (256 for 224).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_size: Option<usize>,
    /// Random training augmentation (`RandomResizedCrop` + `RandomHorizontalFlip`); default
    /// true. With `false`, training images get the evaluation transform, and a frozen
    /// backbone's outputs are computed once per image and cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<bool>,
    /// `RandomResizedCrop`'s `scale` (fraction of the image's area); default `[0.08, 1.0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_scale: Option<[f64; 2]>,
    /// `RandomResizedCrop`'s `ratio` (width / height); default `[0.75, 1.3333333333333333]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_ratio: Option<[f64; 2]>,
    /// `RandomHorizontalFlip`'s `p`; default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_probability: Option<f64>,
    /// Per-channel mean of the normalisation; default the model's `pretrained_cfg.mean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_mean: Option<[f64; 3]>,
    /// Per-channel std of the normalisation; default the model's `pretrained_cfg.std`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_std: Option<[f64; 3]>,
}

impl DataSection {
    /// The image keys that are set (they apply to image classification only).
    pub fn image_keys_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let keys: [(&'static str, bool); 9] = [
            ("image_column", self.image_column.is_some()),
            ("image_size", self.image_size.is_some()),
            ("resize_size", self.resize_size.is_some()),
            ("augment", self.augment.is_some()),
            ("crop_scale", self.crop_scale.is_some()),
            ("crop_ratio", self.crop_ratio.is_some()),
            ("flip_probability", self.flip_probability.is_some()),
            ("image_mean", self.image_mean.is_some()),
            ("image_std", self.image_std.is_some()),
        ];
        for (k, on) in keys {
            if on {
                set.push(k);
            }
        }
        set
    }

    /// Checks the image keys' values; the error names the key.
    fn validate_images(&self) -> std::result::Result<(), String> {
        let range = |key: &str, r: Option<[f64; 2]>| -> std::result::Result<(), String> {
            match r {
                Some([lo, hi]) if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) => {
                    Err(format!("data.{key} = [{lo}, {hi}]: expected 0 < low <= high"))
                }
                _ => Ok(()),
            }
        };
        range("crop_scale", self.crop_scale)?;
        range("crop_ratio", self.crop_ratio)?;
        if let Some([_, hi]) = self.crop_scale.filter(|s| s[1] > 1.0) {
            return Err(format!("data.crop_scale: the upper bound {hi} is above 1 (the whole image)"));
        }
        if let Some(p) = self.flip_probability.filter(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!("data.flip_probability = {p}: expected a probability in [0, 1]"));
        }
        for (key, v) in [("image_size", self.image_size), ("resize_size", self.resize_size)] {
            if let Some(n) = v.filter(|n| *n == 0 || *n > 4096) {
                return Err(format!("data.{key} = {n}: expected 1 to 4096 pixels"));
            }
        }
        if let Some(std) = self.image_std.filter(|s| s.iter().any(|v| !(v.is_finite() && *v > 0.0))) {
            return Err(format!("data.image_std = {std:?}: every value must be positive"));
        }
        if let Some(mean) = self.image_mean.filter(|s| s.iter().any(|v| !v.is_finite())) {
            return Err(format!("data.image_mean = {mean:?}: every value must be finite"));
        }
        Ok(())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_train_split() -> String {
    "train".into()
}

/// `[method]`: what is trained, a tagged table (`kind = "..."`) with each method's own keys.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MethodConfig {
    /// Every parameter (§4).
    Full(FullMethod),
    /// A frozen encoder with a new linear head on the first token (§5).
    Frozen(FrozenMethod),
    /// LoRA (§8), with PEFT's `LoraConfig` keys (`r`, `lora_alpha`, `lora_dropout`,
    /// `target_modules`, `bias`, `modules_to_save`, `use_rslora`, `init_lora_weights`, ...).
    Lora(ft_peft::config::LoraConfig),
    /// Prompt tuning (§7), with PEFT's `PromptTuningConfig` keys (`num_virtual_tokens`,
    /// `prompt_tuning_init`, `prompt_tuning_init_text`).
    Prompt(ft_peft::config::PromptTuningConfig),
    /// Prefix tuning, with PEFT's `PrefixTuningConfig` keys (`num_virtual_tokens`,
    /// `prefix_projection`, `encoder_hidden_size`).
    Prefix(ft_peft::config::PrefixTuningConfig),
    /// A bottleneck adapter with its own head (§6), with the `adapters` library's names
    /// (`config = "pfeiffer"`, `adapter_name`, `reduction_factor`, `non_linearity`, ...).
    Adapter(AdapterMethod),
}

/// `kind = "adapter"`: a bottleneck adapter of AdapterHub's `adapters` library
/// (`model.add_adapter(adapter_name, config=...)`, `add_classification_head(adapter_name)`,
/// `train_adapter(adapter_name)`): only the adapter and its head train.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterMethod {
    /// The library's config name: `"pfeiffer"`/`"seq_bn"` or `"houlsby"`/`"double_seq_bn"`.
    #[serde(default = "default_adapter_config")]
    pub config: String,
    /// The adapter's (and its head's) name, as saved.
    #[serde(default = "default_adapter_name")]
    pub adapter_name: String,
    /// Overrides of the config's options (the library's `BnConfig` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduction_factor: Option<f64>,
    /// Activation in the bottleneck (`relu`, `swish`, `gelu`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_linearity: Option<String>,
    /// Adapter after the attention block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_adapter: Option<bool>,
    /// Adapter after the feed-forward block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_adapter: Option<bool>,
    /// The layer's LayerNorm before the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ln_before: Option<bool>,
    /// The layer's LayerNorm after the adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_ln_after: Option<bool>,
    /// Where the adapter's residual is taken: `true` (before the LayerNorm), `false`, or
    /// `"post_add"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_before_ln: Option<ft_peft::adapterhub::ResidualBeforeLn>,
    /// `bert`, `mam_adapter` or `houlsby`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_weights: Option<String>,
    /// Dropout on the adapter's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Layers without an adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_out: Option<Vec<usize>>,
    /// The head's linear layers (the library's `layers`: 2 for classification, 1 for tagging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_layers: Option<usize>,
    /// The head's activation between layers (`"tanh"`; `"none"` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_activation: Option<String>,
    /// The head's dropout (default: the model's classifier dropout, as the library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dropout: Option<f64>,
}

fn default_adapter_config() -> String {
    "pfeiffer".into()
}
fn default_adapter_name() -> String {
    "default".into()
}

impl AdapterMethod {
    /// The library's config with this table's overrides.
    pub fn bn_config(&self) -> std::result::Result<ft_peft::adapterhub::BnConfig, String> {
        let mut c = ft_peft::adapterhub::BnConfig::preset(&self.config).ok_or_else(|| {
            format!("config: '{}' is not a config ft knows ({})", self.config, ft_peft::adapterhub::PRESETS)
        })?;
        if let Some(f) = self.reduction_factor {
            let n = if f.fract() == 0.0 && f > 0.0 && f < 9.0e15 {
                serde_json::Number::from(f as u64)
            } else {
                serde_json::Number::from_f64(f).ok_or("reduction_factor: not a number")?
            };
            c.reduction_factor = ft_peft::adapterhub::ReductionFactor::Number(n);
        }
        if let Some(v) = &self.non_linearity {
            c.non_linearity = v.clone();
        }
        for (dst, src) in [
            (&mut c.mh_adapter, self.mh_adapter),
            (&mut c.output_adapter, self.output_adapter),
            (&mut c.original_ln_before, self.original_ln_before),
            (&mut c.original_ln_after, self.original_ln_after),
        ] {
            if let Some(v) = src {
                *dst = v;
            }
        }
        if let Some(v) = &self.residual_before_ln {
            c.residual_before_ln = v.clone();
        }
        if let Some(v) = &self.init_weights {
            c.init_weights = v.clone();
        }
        if let Some(v) = self.dropout {
            c.dropout = v;
        }
        if let Some(v) = &self.leave_out {
            c.leave_out = v.clone();
        }
        c.validate()?;
        Ok(c)
    }

    /// The head for `num_labels` labels named `labels`: a classification head, or a tagging
    /// head for token classification, with this table's head options.
    pub fn head(
        &self,
        per_token: bool,
        labels: &[String],
    ) -> std::result::Result<ft_peft::adapterhub::HeadConfig, String> {
        use ft_peft::adapterhub::HeadConfig;
        let n = labels.len();
        let mut h =
            if per_token { HeadConfig::tagging(n, Some(labels)) } else { HeadConfig::classification(n, Some(labels)) };
        if let Some(l) = self.head_layers {
            h.layers = l;
        }
        if let Some(a) = &self.head_activation {
            h.activation_function = (a != "none").then(|| a.clone());
        }
        if self.head_dropout.is_some() {
            h.dropout_prob = self.head_dropout;
        }
        // Errors name the run file's keys.
        h.validate().map_err(|m| {
            for (lib, run) in [
                ("activation_function", "head_activation"),
                ("layers", "head_layers"),
                ("dropout_prob", "head_dropout"),
            ] {
                if let Some(rest) = m.strip_prefix(lib) {
                    return format!("{run}{rest}");
                }
            }
            m
        })?;
        Ok(h)
    }
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::Full(FullMethod {})
    }
}

impl MethodConfig {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Full(_) => "full",
            Self::Frozen(_) => "frozen",
            Self::Lora(_) => "lora",
            Self::Prompt(_) => "prompt",
            Self::Prefix(_) => "prefix",
            Self::Adapter(_) => "adapter",
        }
    }

    /// The name the trained adapter gets (`adapter_name` for `adapter`, PEFT's `default`
    /// otherwise).
    pub fn adapter_name(&self) -> &str {
        match self {
            Self::Adapter(a) => &a.adapter_name,
            _ => "default",
        }
    }

    /// The PEFT adapter configuration of a PEFT method (`lora`, `prompt`, `prefix`).
    pub fn peft(&self) -> Option<ft_peft::config::MethodConfig> {
        use ft_peft::config::MethodConfig as P;
        match self {
            Self::Full(_) | Self::Frozen(_) => None,
            Self::Lora(c) => Some(P::Lora(c.clone())),
            Self::Prompt(c) => Some(P::PromptTuning(c.clone())),
            Self::Prefix(c) => Some(P::PrefixTuning(c.clone())),
            Self::Adapter(a) => a
                .bn_config()
                .ok()
                .map(|c| P::Bottleneck(ft_peft::adapterhub::BottleneckConfig::new(&a.adapter_name, c))),
        }
    }
}

/// The keys `[method]` takes for a PEFT `kind` (its config's fields), to reject typos: PEFT's
/// configs keep unknown keys when read from `adapter_config.json`, a run file does not.
fn peft_method_keys(kind: &str) -> Option<Vec<String>> {
    use ft_peft::config::{LoraConfig, PrefixTuningConfig, PromptTuningConfig};
    let value = match kind {
        "lora" => serde_json::to_value(LoraConfig::default()),
        "prompt" => serde_json::to_value(PromptTuningConfig::default()),
        "prefix" => serde_json::to_value(PrefixTuningConfig::default()),
        _ => return None,
    };
    match value {
        Ok(serde_json::Value::Object(o)) => Some(o.keys().cloned().collect()),
        _ => None,
    }
}

/// `kind = "full"`: no keys of its own.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FullMethod {}

/// `kind = "frozen"`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenMethod {
    /// Dropout before the head (text models; default 0.1). A ResNet's `fc` has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dropout: Option<f64>,
    /// Run the frozen part once per example and reuse its outputs in every epoch (for images:
    /// only when `data.augment = false`, as random crops differ every epoch).
    #[serde(default = "default_true")]
    pub cache_features: bool,
    /// Image models: backbone stages trained too (exercise 7: `["layer3", "layer4"]`), with
    /// their BatchNorm layers in training mode; the others stay frozen, BatchNorm statistics
    /// included. Stages: `conv1`, `bn1`, `layer1` ... `layer4`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unfreeze: Vec<String>,
    /// Learning rate of the `unfreeze` stages (`learning_rate` is the head's); default
    /// `learning_rate`. Follows the same schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone_learning_rate: Option<f64>,
}

impl Default for FrozenMethod {
    fn default() -> Self {
        Self { head_dropout: None, cache_features: true, unfreeze: Vec::new(), backbone_learning_rate: None }
    }
}

impl FrozenMethod {
    /// Dropout before a text model's head (default 0.1, the notebook's).
    pub fn text_head_dropout(&self) -> f64 {
        self.head_dropout.unwrap_or(0.1)
    }
}
fn default_true() -> bool {
    true
}

/// The ResNet stages `method.unfreeze` may name (torchvision's top-level children but `fc`,
/// which always trains).
pub use ft_models::resnet::STAGES as UNFREEZE_STAGES;

/// A whole run file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// `[model]`.
    pub model: ModelSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[method]`.
    #[serde(default)]
    pub method: MethodConfig,
    /// `[training]`: `TrainingArguments`.
    #[serde(default)]
    pub training: TrainingArguments,
}

/// The sections of a run file.
pub const SECTIONS: [&str; 4] = ["model", "data", "method", "training"];

impl RunConfig {
    /// Reads a run file and applies `--set section.key=value` overrides; every error names the
    /// file (or the override) and the key. Relative model and data paths are resolved against
    /// the run file's directory.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config(format!("cannot read the run file {}: {e}", path.display())))?;
        let mut config = Self::parse(&text, &path.display().to_string(), overrides)?;
        config.resolve_relative_to(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Parses run-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        let mut table: toml::Table = text.parse().map_err(|e| TrainError::Config(format!("{origin}: {e}")))?;
        for (key, _) in table.iter() {
            if !SECTIONS.contains(&key.as_str()) {
                return Err(TrainError::Config(format!(
                    "{origin}: unknown section [{key}] (sections: {})",
                    SECTIONS.join(", ")
                )));
            }
        }
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        // `[method]` without `kind` is full fine-tuning.
        let mut kind_added = false;
        if let Some(toml::Value::Table(m)) = table.get_mut("method")
            && !m.contains_key("kind")
        {
            m.insert("kind".into(), toml::Value::String("full".into()));
            kind_added = true;
        }
        if let Some(toml::Value::Table(m)) = table.get("method")
            && let Some(kind) = m.get("kind").and_then(|k| k.as_str())
            && let Some(known) = peft_method_keys(kind)
        {
            for key in m.keys().filter(|k| k.as_str() != "kind") {
                if !known.contains(key) {
                    return Err(TrainError::Config(format!(
                        "{origin}: method.{key}: unknown key for kind = \"{kind}\" (keys: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        let mut config: RunConfig = if overrides.is_empty() && !kind_added {
            // From the file's own text, so that errors show the offending line (and, for an
            // unknown key, list the valid ones).
            toml::from_str(text)
                .map_err(|e: toml::de::Error| TrainError::Config(format!("{origin}: {}", e.to_string().trim())))
        } else {
            // From the merged table: errors name the key, not a line of a document the user never
            // wrote.
            serde::Deserialize::deserialize(toml::Value::Table(table)).map_err(|e: toml::de::Error| {
                let with = if overrides.is_empty() {
                    String::new()
                } else {
                    format!(" (with --set {})", overrides.join(", "))
                };
                TrainError::Config(format!("{origin}{with}: {}", e.to_string().trim()))
            })
        }?;
        config.model.name = expand(&config.model.name, "model.name")?;
        config.data.source = expand(&config.data.source, "data.source")?;
        if let Some(p) = &config.data.local_data {
            config.data.local_data = Some(PathBuf::from(expand(&p.to_string_lossy(), "data.local_data")?));
        }
        config.training.output_dir =
            PathBuf::from(expand(&config.training.output_dir.to_string_lossy(), "training.output_dir")?);
        if config.data.eval_split.is_none() && config.training.eval_strategy != crate::args::IntervalStrategy::No {
            config.data.eval_split = Some("validation".into());
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Resolves relative `model.name`, `data.source` and `data.local_data` against `dir` (the
    /// run file's directory) when they exist there; Hub ids and recipe names stay as they are.
    pub fn resolve_relative_to(&mut self, dir: &Path) {
        let resolve = |s: &str| -> String {
            let p = Path::new(s);
            if p.is_relative() && !s.is_empty() && dir.join(p).exists() {
                dir.join(p).to_string_lossy().into_owned()
            } else {
                s.to_string()
            }
        };
        self.model.name = resolve(&self.model.name);
        self.data.source = resolve(&self.data.source);
        if let Some(p) = &self.data.local_data {
            self.data.local_data = Some(PathBuf::from(resolve(&p.to_string_lossy())));
        }
    }

    fn validate(&self, origin: &str) -> Result<()> {
        if !matches!(
            self.model.task,
            Task::SequenceClassification | Task::TokenClassification | Task::CausalLm | Task::ImageClassification
        ) {
            return Err(TrainError::Config(format!(
                "{origin}: model.task: '{}' cannot be trained yet (text-classification, token-classification, causal-lm \
                 or image-classification)",
                self.model.task
            )));
        }
        if self.model.task == Task::ImageClassification {
            self.validate_image(origin)?;
            return self.validate_common(origin);
        }
        if let Some(key) = self.data.image_keys_set().first() {
            return Err(TrainError::Config(format!(
                "{origin}: data.{key} applies to model.task = \"image-classification\""
            )));
        }
        if self.model.random_init && !matches!(self.method, MethodConfig::Full(_)) {
            return Err(TrainError::Config(format!(
                "{origin}: model.random_init (training from scratch) needs method.kind = \"full\": a frozen or \
                 adapter-tuned base with random weights learns nothing"
            )));
        }
        if let MethodConfig::Adapter(a) = &self.method {
            a.bn_config().map_err(|m| TrainError::Config(format!("{origin}: method.{m}")))?;
            if self.model.task == Task::CausalLm {
                return Err(TrainError::Config(format!(
                    "{origin}: method.kind = \"adapter\" trains text-classification and token-classification models \
                     (BERT, DistilBERT)"
                )));
            }
            if a.adapter_name.is_empty() || a.adapter_name.contains('.') {
                return Err(TrainError::Config(format!(
                    "{origin}: method.adapter_name '{}' must be non-empty and hold no '.'",
                    a.adapter_name
                )));
            }
            if a.head_dropout.is_some_and(|p| !(0.0..1.0).contains(&p)) {
                return Err(TrainError::Config(format!("{origin}: method.head_dropout is not in [0, 1)")));
            }
            if a.head_layers == Some(0) {
                return Err(TrainError::Config(format!("{origin}: method.head_layers must be at least 1")));
            }
            // The head's options, checked now (its labels come with the data).
            let per_token = self.model.task == Task::TokenClassification;
            a.head(per_token, &["LABEL_0".into(), "LABEL_1".into()])
                .map_err(|m| TrainError::Config(format!("{origin}: method.{m}")))?;
        }
        if let Some(peft) = self.method.peft() {
            ft_peft::config::AdapterConfig::new(peft, None, None).validate(Path::new(origin)).map_err(|e| {
                TrainError::Config(format!("{}", e).replacen(origin, &format!("{origin}: [method]"), 1))
            })?;
            if self.model.task == Task::TokenClassification && matches!(self.method, MethodConfig::Prefix(_)) {
                return Err(TrainError::Config(format!(
                    "{origin}: method.kind = \"prefix\" trains causal-lm and text-classification models"
                )));
            }
        }
        if let MethodConfig::Frozen(f) = &self.method {
            if self.model.task != Task::SequenceClassification {
                return Err(TrainError::Config(format!(
                    "{origin}: method.kind = \"frozen\" is for text-classification and image-classification"
                )));
            }
            if !f.unfreeze.is_empty() || f.backbone_learning_rate.is_some() {
                return Err(TrainError::Config(format!(
                    "{origin}: method.unfreeze and method.backbone_learning_rate apply to image-classification (ResNet stages)"
                )));
            }
            if let Some(p) = f.head_dropout.filter(|p| !(0.0..1.0).contains(p)) {
                return Err(TrainError::Config(format!("{origin}: method.head_dropout: {p} is not in [0, 1)")));
            }
        }
        self.validate_common(origin)
    }

    /// The checks every task shares: label counts, the best-model metric, `[training]`.
    fn validate_common(&self, origin: &str) -> Result<()> {
        if self.model.num_labels == Some(0) {
            return Err(TrainError::Config(format!("{origin}: model.num_labels must be at least 1")));
        }
        // (a bound before any label name or head row is allocated)
        if let Some(n) = self.model.num_labels.filter(|n| *n > 1_000_000) {
            return Err(TrainError::Config(format!("{origin}: model.num_labels = {n}: at most 1,000,000 labels")));
        }
        // Checked here, before any data is read or model loaded (fit checks again).
        if self.training.load_best_model_at_end || self.training.metric_for_best_model.is_some() {
            let key = self.training.best_metric_key();
            let mut known = vec!["eval_loss".to_string()];
            known.extend(crate::task::eval_metric_names(self.model.task).iter().map(|s| s.to_string()));
            if !known.contains(&key) {
                return Err(TrainError::Config(format!(
                    "{origin}: training.metric_for_best_model: '{key}' is not among this task's evaluation metrics ({})",
                    known.join(", ")
                )));
            }
        }
        self.training.validate().map_err(|e| TrainError::Config(format!("{origin}: {e}")))
    }

    /// The checks of an image-classification run: the methods that apply (`full`, `frozen` with
    /// its `unfreeze` stages) and the image keys.
    fn validate_image(&self, origin: &str) -> Result<()> {
        let err = |m: String| TrainError::Config(format!("{origin}: {m}"));
        self.data.validate_images().map_err(err)?;
        for (key, set) in [
            ("text_column", self.data.text_column.is_some()),
            ("max_length", self.data.max_length.is_some()),
            ("label_all_tokens", self.data.label_all_tokens),
        ] {
            if set {
                return Err(err(format!("data.{key} applies to text tasks, not image-classification")));
            }
        }
        match &self.method {
            MethodConfig::Full(_) => {}
            MethodConfig::Frozen(f) => {
                if f.head_dropout.is_some() {
                    return Err(err("method.head_dropout: a ResNet's fc has no dropout (text models only)".into()));
                }
                for stage in &f.unfreeze {
                    if !UNFREEZE_STAGES.contains(&stage.as_str()) {
                        return Err(err(format!(
                            "method.unfreeze: no stage '{stage}' in a ResNet (stages: {}; fc always trains)",
                            UNFREEZE_STAGES.join(", ")
                        )));
                    }
                }
                if let Some(lr) = f.backbone_learning_rate {
                    if f.unfreeze.is_empty() {
                        return Err(err(
                            "method.backbone_learning_rate is the learning rate of the method.unfreeze stages, \
                                        and none are listed"
                                .into(),
                        ));
                    }
                    if !(lr.is_finite() && lr >= 0.0) {
                        return Err(err(format!(
                            "method.backbone_learning_rate = {lr}: expected a non-negative number"
                        )));
                    }
                }
            }
            other => {
                return Err(err(format!(
                    "method.kind = \"{}\" does not apply to image-classification (full or frozen, with unfreeze)",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    /// The image column, with its default.
    pub fn image_column(&self) -> String {
        self.data.image_column.clone().unwrap_or_else(|| "image".into())
    }

    /// Whether this is a token-classification run.
    pub fn is_token_classification(&self) -> bool {
        self.model.task == Task::TokenClassification
    }

    /// The text column, with the task's default.
    pub fn text_column(&self) -> String {
        self.data
            .text_column
            .clone()
            .unwrap_or_else(|| if self.is_token_classification() { "tokens" } else { "text" }.into())
    }

    /// The label column, with the task's default.
    pub fn label_column(&self) -> String {
        self.data
            .label_column
            .clone()
            .unwrap_or_else(|| if self.is_token_classification() { "ner_tags" } else { "label" }.into())
    }

    /// The run file as TOML text (what `ft train` reads back).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Config(format!("writing a run file: {e}")))
    }
}

/// Expands `${VAR}` / `${VAR:-default}` and a leading `~/` in a path-like value of `key`.
pub fn expand(s: &str, key: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end =
            after.find('}').ok_or_else(|| TrainError::Config(format!("{key}: '{s}' has an unclosed ${{...}}")))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(TrainError::Config(format!(
                    "{key}: '{s}' uses the environment variable {name}, which is not set"
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(expand_home(&out))
}

/// `~/x` → `$HOME/x` (run files are shared between machines; paths under the home directory are
/// common there).
fn expand_home(s: &str) -> String {
    match (s.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).to_string_lossy().into_owned(),
        _ => s.to_string(),
    }
}

/// Applies `section.key=value`; the value is TOML (`2e-5`, `true`, `"epoch"`), or a bare string.
fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let err = |m: &str| TrainError::Config(format!("--set {spec}: {m}"));
    let (path, value) = spec.split_once('=').ok_or_else(|| err("expected section.key=value"))?;
    let (section, key) = path.trim().split_once('.').ok_or_else(|| err("expected section.key=value"))?;
    if !SECTIONS.contains(&section) {
        return Err(err(&format!("unknown section '{section}' (sections: {})", SECTIONS.join(", "))));
    }
    let value = value.trim();
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table.entry(section.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(key.to_string(), parsed);
            Ok(())
        }
        _ => Err(err(&format!("'{section}' is not a section"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"
[model]
name = "m"
task = "text-classification"
[data]
source = "ag_news"
[training]
output_dir = "out"
learning_rate = 2e-5
eval_strategy = "epoch"
"#;

    #[test]
    fn parses_and_overrides() {
        let c =
            RunConfig::parse(RUN, "run.toml", &["training.num_train_epochs=1".into(), "data.max_length=128".into()])
                .unwrap();
        assert_eq!(c.training.learning_rate, 2e-5);
        assert_eq!(c.training.num_train_epochs, 1.0);
        assert_eq!(c.data.max_length, Some(128));
        assert_eq!(c.text_column(), "text");
        assert_eq!(c.method, MethodConfig::default());
    }

    #[test]
    fn absurd_label_counts_are_refused_before_any_allocation() {
        let e = RunConfig::parse(RUN, "run.toml", &["model.num_labels=100000000000".into()]).unwrap_err().to_string();
        assert!(e.contains("model.num_labels") && e.contains("1,000,000"), "{e}");
    }

    #[test]
    fn adapter_methods_are_checked_with_the_run_file() {
        let run = format!("{RUN}[method]\nkind = \"adapter\"\nconfig = \"houlsby\"\n");
        let c = RunConfig::parse(&run, "run.toml", &[]).unwrap();
        assert_eq!(c.method.adapter_name(), "default");
        for (set, needle) in [
            ("method.residual_before_ln=\"post_add\"", "original_ln_before"),
            ("method.adapter_name=\"a.b\"", "adapter_name"),
            ("method.head_activation=\"foo\"", "head_activation"),
            ("method.reduction_factor=0.001", "1/64"),
        ] {
            let e = RunConfig::parse(&run, "run.toml", &[set.into()]).unwrap_err().to_string();
            assert!(e.contains("run.toml") && e.contains(needle), "{set}: {e}");
        }
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let e =
            RunConfig::parse(&RUN.replace("learning_rate", "learning_rat"), "run.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("run.toml") && e.contains("learning_rat") && e.contains("learning_rate"), "{e}");
        let e = RunConfig::parse(RUN, "run.toml", &["data.sorce=x".into()]).unwrap_err().to_string();
        assert!(e.contains("sorce") && e.contains("source"), "{e}");
        let e = RunConfig::parse(RUN, "run.toml", &["trainin.seed=1".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown section 'trainin'"), "{e}");
        let e = RunConfig::parse(&format!("{RUN}\n[extra]\n"), "run.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("unknown section [extra]"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = RunConfig::parse(RUN, "run.toml", &["training.learning_rate=-1".into()]).unwrap_err().to_string();
        assert!(e.contains("training.learning_rate"), "{e}");
        let e = RunConfig::parse(RUN, "run.toml", &["training.per_device_train_batch_size=0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_device_train_batch_size"), "{e}");
        let e = RunConfig::parse(RUN, "run.toml", &["data.eval_split=false".into()]).unwrap_err().to_string();
        assert!(e.contains("eval_split"), "{e}");
    }
}
