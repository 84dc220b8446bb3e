//! Loading any supported checkpoint by its `config.json`, as transformers' `AutoModel*` classes
//! do: `model_type` picks the architecture, the caller picks the task head.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Tensor};
use ft_hub::batch::TextBatch;
use ft_hub::hub::{RepoFiles, RepoKind};

use crate::bert::{BertConfig, BertForSequenceClassification, BertForTokenClassification, BertModel};
use crate::config::{LabelConfig, parse_json};
use crate::distilbert::{
    DistilBertConfig, DistilBertForSequenceClassification, DistilBertForTokenClassification, DistilBertModel,
};
use crate::export::{HfTensors, write_atomic};
use crate::gpt2::{GPT2LMHeadModel, Gpt2Config};
use crate::input::{KvCache, TextInput};
use crate::layers::{ACTIVATIONS, Projection, WeightLayout};
use crate::naming::{HubModule, HubPath, Part};
use crate::weights::{Checkpoint, InitScheme, LoadReport, NameMap, load_parts};
use crate::{ModelError, Result};

/// The `model_type`s ft implements.
pub const SUPPORTED_MODEL_TYPES: &str = "bert, distilbert, gpt2";

/// An architecture's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchConfig {
    /// `model_type: "bert"`.
    Bert(BertConfig),
    /// `model_type: "distilbert"`.
    DistilBert(DistilBertConfig),
    /// `model_type: "gpt2"`.
    Gpt2(Gpt2Config),
}

/// A parsed `config.json`: the architecture's typed configuration plus the file as read.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// The typed configuration.
    pub arch: ArchConfig,
    /// `architectures` as listed in the file (e.g. `["BertForSequenceClassification"]`).
    pub architectures: Vec<String>,
    /// The whole JSON object, kept so that a saved config preserves fields ft does not use.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl ModelConfig {
    /// Reads `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
        let raw: serde_json::Map<String, serde_json::Value> = parse_json(path, &text)?;
        let config_err = |message: String| ModelError::Config { path: path.to_path_buf(), message };
        let model_type = match raw.get("model_type") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => return Err(config_err(format!("model_type: expected a string, found {other}"))),
            None => return Err(config_err(format!("no model_type (supported: {SUPPORTED_MODEL_TYPES})"))),
        };
        let parse = |v: &serde_json::Map<String, serde_json::Value>| -> Result<ArchConfig> {
            let value = serde_json::Value::Object(v.clone());
            let fix = |e: serde_json::Error| {
                let mut m = e.to_string();
                if m.contains("unknown variant") {
                    m.push_str(&format!(" (activations: {ACTIVATIONS})"));
                }
                config_err(m)
            };
            Ok(match model_type.as_str() {
                "bert" => {
                    let c: BertConfig = serde_json::from_value(value).map_err(fix)?;
                    c.validate(path)?;
                    ArchConfig::Bert(c)
                }
                "distilbert" => {
                    let c: DistilBertConfig = serde_json::from_value(value).map_err(fix)?;
                    c.validate(path)?;
                    ArchConfig::DistilBert(c)
                }
                "gpt2" => {
                    let c: Gpt2Config = serde_json::from_value(value).map_err(fix)?;
                    c.validate(path)?;
                    ArchConfig::Gpt2(c)
                }
                other => {
                    return Err(ModelError::UnknownModelType {
                        path: path.to_path_buf(),
                        model_type: other.to_string(),
                        supported: SUPPORTED_MODEL_TYPES.to_string(),
                    });
                }
            })
        };
        let arch = parse(&raw)?;
        let architectures = raw
            .get("architectures")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        Ok(Self { path: path.to_path_buf(), arch, architectures, raw })
    }

    /// `bert` or `distilbert`.
    pub fn model_type(&self) -> &'static str {
        match self.arch {
            ArchConfig::Bert(_) => "bert",
            ArchConfig::DistilBert(_) => "distilbert",
            ArchConfig::Gpt2(_) => "gpt2",
        }
    }

    /// transformers' `base_model_prefix`: the attribute the bare model sits under in a task
    /// model (`bert`, `distilbert`, `transformer`).
    pub fn base_model_prefix(&self) -> &'static str {
        match self.arch {
            ArchConfig::Bert(_) => "bert",
            ArchConfig::DistilBert(_) => "distilbert",
            ArchConfig::Gpt2(_) => "transformer",
        }
    }

    /// Labels and problem type.
    pub fn labels(&self) -> &LabelConfig {
        match &self.arch {
            ArchConfig::Bert(c) => &c.labels,
            ArchConfig::DistilBert(c) => &c.labels,
            ArchConfig::Gpt2(c) => &c.labels,
        }
    }

    /// Labels and problem type, to change before building a model (a new `num_labels`).
    pub fn labels_mut(&mut self) -> &mut LabelConfig {
        match &mut self.arch {
            ArchConfig::Bert(c) => &mut c.labels,
            ArchConfig::DistilBert(c) => &mut c.labels,
            ArchConfig::Gpt2(c) => &mut c.labels,
        }
    }

    /// The longest input the model accepts (`max_position_embeddings`; GPT-2's `n_positions`).
    pub fn max_positions(&self) -> usize {
        match &self.arch {
            ArchConfig::Bert(c) => c.max_position_embeddings,
            ArchConfig::DistilBert(c) => c.max_position_embeddings,
            ArchConfig::Gpt2(c) => c.n_positions,
        }
    }

    /// `initializer_range`: the standard deviation new weights are drawn with.
    pub fn initializer_range(&self) -> f64 {
        match &self.arch {
            ArchConfig::Bert(c) => c.initializer_range,
            ArchConfig::DistilBert(c) => c.initializer_range,
            ArchConfig::Gpt2(c) => c.initializer_range,
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match &self.arch {
            ArchConfig::Bert(c) => c.vocab_size,
            ArchConfig::DistilBert(c) => c.vocab_size,
            ArchConfig::Gpt2(c) => c.vocab_size,
        }
    }

    /// The dropout of the notebook's first-token head when the config is marked with
    /// `"ft_head": "first_token_linear"` (`ft_head_dropout`, default 0.1); `None` otherwise.
    pub fn first_token_head(&self) -> Option<f64> {
        (self.raw.get("ft_head").and_then(|v| v.as_str()) == Some(FIRST_TOKEN_HEAD))
            .then(|| self.raw.get("ft_head_dropout").and_then(|v| v.as_f64()).unwrap_or(0.1))
    }

    /// Marks the config as holding the notebook's first-token head with this dropout.
    pub fn set_first_token_head(&mut self, dropout: f64) {
        self.raw.insert("ft_head".into(), serde_json::Value::String(FIRST_TOKEN_HEAD.into()));
        self.raw.insert("ft_head_dropout".into(), serde_json::json!(dropout));
    }

    /// The task the checkpoint was saved for, from `architectures[0]` (and `ft_head`).
    pub fn saved_task(&self) -> Task {
        if self.first_token_head().is_some() {
            return Task::SequenceClassification;
        }
        let arch = self.architectures.first().map(String::as_str).unwrap_or("");
        if arch.ends_with("ForSequenceClassification") {
            Task::SequenceClassification
        } else if arch.ends_with("ForTokenClassification") {
            Task::TokenClassification
        } else if arch.ends_with("LMHeadModel")
            || arch.ends_with("ForCausalLM")
            || (arch.is_empty() && matches!(self.arch, ArchConfig::Gpt2(_)))
        {
            Task::CausalLm
        } else {
            Task::FeatureExtraction
        }
    }
}

/// What the model computes: which head sits on the encoder. Parsed from the names
/// `pipeline()` and the CLI use ([`Task::NAMES`]); the same parser serves every command and run
/// files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// The bare encoder (`AutoModel`): hidden states (`feature-extraction`).
    FeatureExtraction,
    /// `AutoModelForSequenceClassification`: one set of logits per text
    /// (`text-classification`, alias `sentiment-analysis`).
    SequenceClassification,
    /// `AutoModelForTokenClassification`: logits per token (`token-classification`, alias `ner`).
    TokenClassification,
    /// `AutoModelForCausalLM`: next-token logits at every position (`causal-lm`, alias
    /// `text-generation`).
    CausalLm,
    /// An image classifier (`image-classification`; ResNets, see [`crate::resnet`]).
    ImageClassification,
}

impl Task {
    /// The accepted names, aliases in parentheses.
    pub const NAMES: &'static str = "text-classification (sentiment-analysis), token-classification (ner), \
                                     causal-lm (text-generation), feature-extraction, image-classification";

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FeatureExtraction => "feature-extraction",
            Self::SequenceClassification => "text-classification",
            Self::TokenClassification => "token-classification",
            Self::CausalLm => "causal-lm",
            Self::ImageClassification => "image-classification",
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "feature-extraction" => Self::FeatureExtraction,
            "text-classification" | "sentiment-analysis" => Self::SequenceClassification,
            "token-classification" | "ner" => Self::TokenClassification,
            "causal-lm" | "text-generation" => Self::CausalLm,
            "image-classification" => Self::ImageClassification,
            other => return Err(ModelError::Input(format!("unknown task '{other}' (expected {})", Self::NAMES))),
        })
    }
}

impl serde::Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: ModelError| serde::de::Error::custom(e.to_string()))
    }
}

/// The task a model was saved for, read from its `config.json` as `pipeline()` infers it:
/// `architectures[0]` (`…ForSequenceClassification`, `…ForTokenClassification`,
/// `…LMHeadModel`), a timm config (image classification), ft's first-token head. A bare
/// encoder (`BertModel`) has no task: an error that asks for one.
pub fn infer_task(model: &str) -> Result<Task> {
    let files = RepoFiles::open(model, RepoKind::Model)?;
    let path = files.get_required("config.json")?;
    let raw: serde_json::Map<String, serde_json::Value> = crate::config::read_json(&path)?;
    if crate::resnet::is_timm_config(&raw) {
        return Ok(Task::ImageClassification);
    }
    let config = ModelConfig::from_file(&path)?;
    match config.saved_task() {
        Task::FeatureExtraction => Err(ModelError::Input(format!(
            "{model}: its config.json names no task head (architectures: {}); give the task ({})",
            if config.architectures.is_empty() { "none".to_string() } else { config.architectures.join(", ") },
            Task::NAMES
        ))),
        task => Ok(task),
    }
}

/// A causal language model of any supported architecture.
#[derive(Module, Debug)]
pub enum CausalLm {
    /// `GPT2LMHeadModel`.
    Gpt2(GPT2LMHeadModel),
}

/// A bare encoder of any supported architecture.
#[derive(Module, Debug)]
pub enum Encoder {
    /// `BertModel`.
    Bert(BertModel),
    /// `DistilBertModel`.
    DistilBert(DistilBertModel),
}

impl Encoder {
    /// The last hidden state.
    ///
    /// # Shapes
    /// - batch tensors: `[batch, seq]`; output `[batch, seq, H]`
    pub fn forward(&self, batch: &TextBatch) -> Tensor<3> {
        match self {
            Self::Bert(m) => {
                m.forward(batch.input_ids.clone(), batch.attention_mask.clone(), Some(batch.token_type_ids.clone()))
                    .last_hidden_state
            }
            Self::DistilBert(m) => m.forward(batch.input_ids.clone(), batch.attention_mask.clone()),
        }
    }

    /// The first token's last hidden state, with the last layer computed for that token only
    /// ([`TextInput::first_token_only`]).
    ///
    /// # Shapes
    /// - batch tensors: `[batch, seq]`; output `[batch, 1, H]`
    pub fn forward_first_token(&self, batch: &TextBatch) -> Tensor<3> {
        match self {
            Self::Bert(m) => {
                m.forward_first_token(
                    batch.input_ids.clone(),
                    batch.attention_mask.clone(),
                    Some(batch.token_type_ids.clone()),
                )
                .last_hidden_state
            }
            Self::DistilBert(m) => m.forward_first_token(batch.input_ids.clone(), batch.attention_mask.clone()),
        }
    }

    /// The last hidden state from ids or input embeddings after an optional prefix of past
    /// keys/values.
    ///
    /// # Shapes
    /// - output `[batch, seq, H]` (`[batch, 1, H]` with `input.first_token_only`)
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<3>> {
        match self {
            Self::Bert(m) => Ok(m.forward_input(input, past)?.last_hidden_state),
            Self::DistilBert(m) => m.forward_input(input, past),
        }
    }

    /// The word-embedding table (`[vocab, H]`), where soft prompts live.
    pub fn word_embeddings(&self) -> &burn::nn::Embedding {
        match self {
            Self::Bert(m) => &m.embeddings.word_embeddings,
            Self::DistilBert(m) => &m.embeddings.word_embeddings,
        }
    }
}

impl HubModule for Encoder {
    /// The bare encoder's names (no base-model prefix, as `BertModel.save_pretrained`).
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        match self {
            Self::Bert(m) => m.parts(path, f),
            Self::DistilBert(m) => m.parts(path, f),
        }
    }
}

/// The notebook's §5 classifier: a (frozen) encoder with `classifier(dropout(h[:, 0]))` on the
/// first token's last hidden state. transformers has no class for it: ft saves it as the
/// encoder's own `config.json` and tensors (loadable with `AutoModel`) plus `classifier.weight`
/// / `classifier.bias`, and marks the config with `"ft_head": "first_token_linear"`.
#[derive(Module, Debug)]
pub struct FirstTokenClassifier {
    /// The encoder.
    pub encoder: Encoder,
    /// Dropout before the head (`ft_head_dropout`, 0.1 in the notebook).
    pub dropout: Dropout,
    /// The head `[H, num_labels]`.
    pub classifier: Projection,
}

/// The `config.json` marker of a [`FirstTokenClassifier`].
pub const FIRST_TOKEN_HEAD: &str = "first_token_linear";

impl FirstTokenClassifier {
    /// Logits from the first token.
    ///
    /// # Shapes
    /// - batch tensors: `[batch, seq]`; output `[batch, num_labels]`
    pub fn forward(&self, batch: &TextBatch) -> Tensor<2> {
        self.head(self.encoder.forward_first_token(batch))
    }

    /// Logits from ids or input embeddings after an optional prefix (the last layer for the
    /// first token only, [`TextInput::first_token_only`]).
    ///
    /// # Shapes
    /// - output `[batch, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<2>> {
        Ok(self.head(self.encoder.forward_input(&input.clone().with_first_token_only(true), past)?))
    }

    fn head(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = hidden.dims();
        self.classifier.forward(ft_hub::ops::dropout(&self.dropout, hidden.narrow(1, 0, 1).reshape([b, h])))
    }
}

impl HubModule for FirstTokenClassifier {
    /// The encoder's own names (no prefix) and `classifier`.
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.encoder.parts(path, f);
        f(&path.pp("classifier"), Part::Projection(&mut self.classifier));
    }
}

/// A sequence classifier of any supported architecture.
#[derive(Module, Debug)]
pub enum SequenceClassifier {
    /// `BertForSequenceClassification`.
    Bert(BertForSequenceClassification),
    /// `DistilBertForSequenceClassification`.
    DistilBert(DistilBertForSequenceClassification),
    /// An encoder with the notebook's first-token linear head.
    FirstToken(FirstTokenClassifier),
}

impl SequenceClassifier {
    /// Logits.
    ///
    /// # Shapes
    /// - batch tensors: `[batch, seq]`; output `[batch, num_labels]`
    pub fn forward(&self, batch: &TextBatch) -> Tensor<2> {
        match self {
            Self::Bert(m) => {
                m.forward(batch.input_ids.clone(), batch.attention_mask.clone(), Some(batch.token_type_ids.clone()))
            }
            Self::DistilBert(m) => m.forward(batch.input_ids.clone(), batch.attention_mask.clone()),
            Self::FirstToken(m) => m.forward(batch),
        }
    }

    /// Logits from ids or input embeddings after an optional prefix of past keys/values.
    ///
    /// # Shapes
    /// - output `[batch, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<2>> {
        match self {
            Self::Bert(m) => m.forward_input(input, past),
            Self::DistilBert(m) => m.forward_input(input, past),
            Self::FirstToken(m) => m.forward_input(input, past),
        }
    }
}

impl HubModule for SequenceClassifier {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        match self {
            Self::Bert(m) => m.parts(path, f),
            Self::DistilBert(m) => m.parts(path, f),
            Self::FirstToken(m) => m.parts(path, f),
        }
    }
}

/// A token classifier of any supported architecture.
#[derive(Module, Debug)]
pub enum TokenClassifier {
    /// `BertForTokenClassification`.
    Bert(BertForTokenClassification),
    /// `DistilBertForTokenClassification`.
    DistilBert(DistilBertForTokenClassification),
}

impl TokenClassifier {
    /// Logits per token.
    ///
    /// # Shapes
    /// - batch tensors: `[batch, seq]`; output `[batch, seq, num_labels]`
    pub fn forward(&self, batch: &TextBatch) -> Tensor<3> {
        match self {
            Self::Bert(m) => {
                m.forward(batch.input_ids.clone(), batch.attention_mask.clone(), Some(batch.token_type_ids.clone()))
            }
            Self::DistilBert(m) => m.forward(batch.input_ids.clone(), batch.attention_mask.clone()),
        }
    }

    /// Logits per token from ids or input embeddings after an optional prefix.
    ///
    /// # Shapes
    /// - output `[batch, seq, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<3>> {
        match self {
            Self::Bert(m) => m.forward_input(input, past),
            Self::DistilBert(m) => m.forward_input(input, past),
        }
    }
}

impl HubModule for TokenClassifier {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        match self {
            Self::Bert(m) => m.parts(path, f),
            Self::DistilBert(m) => m.parts(path, f),
        }
    }
}

impl CausalLm {
    /// All tensors under the Hub's names (`transformer.…`; `lm_head.weight` only when untied).
    pub fn export(&self) -> Result<HfTensors> {
        HfTensors::from_module(self)
    }

    /// The transformers class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Gpt2(_) => "GPT2LMHeadModel",
        }
    }
}

impl HubModule for CausalLm {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        match self {
            Self::Gpt2(m) => m.parts(path, f),
        }
    }
}

impl HubModule for AnyModel {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        match self {
            Self::Encoder(m) => m.parts(path, f),
            Self::SequenceClassifier(m) => m.parts(path, f),
            Self::TokenClassifier(m) => m.parts(path, f),
            Self::CausalLm(m) => m.parts(path, f),
        }
    }
}

/// A model of any supported architecture and task.
#[derive(Module, Debug)]
pub enum AnyModel {
    /// A bare encoder.
    Encoder(Encoder),
    /// A sequence classifier.
    SequenceClassifier(SequenceClassifier),
    /// A token classifier.
    TokenClassifier(TokenClassifier),
    /// A causal language model.
    CausalLm(CausalLm),
}

impl AnyModel {
    /// The transformers class name, e.g. `BertForSequenceClassification`.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Encoder(Encoder::Bert(_)) => "BertModel",
            Self::Encoder(Encoder::DistilBert(_)) => "DistilBertModel",
            Self::SequenceClassifier(SequenceClassifier::Bert(_)) => "BertForSequenceClassification",
            Self::SequenceClassifier(SequenceClassifier::DistilBert(_)) => "DistilBertForSequenceClassification",
            Self::SequenceClassifier(SequenceClassifier::FirstToken(m)) => m.encoder.class_name(),
            Self::TokenClassifier(TokenClassifier::Bert(_)) => "BertForTokenClassification",
            Self::TokenClassifier(TokenClassifier::DistilBert(_)) => "DistilBertForTokenClassification",
            Self::CausalLm(CausalLm::Gpt2(_)) => "GPT2LMHeadModel",
        }
    }
}

/// A loaded model with its configuration and what loading did.
#[derive(Debug)]
pub struct Loaded<M> {
    /// The model.
    pub model: M,
    /// Its configuration (with any `num_labels` override applied).
    pub config: ModelConfig,
    /// Loaded, newly initialised and unused tensors.
    pub report: LoadReport,
    /// The repository the model came from.
    pub files: RepoFiles,
}

/// Options for [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Label names for a new head (as `from_pretrained(..., id2label=...)`); a head stored with
    /// another number of labels is re-initialised.
    pub labels: Option<Vec<String>>,
    /// A new number of labels (as `from_pretrained(..., num_labels=N)`), names `LABEL_i`.
    pub num_labels: Option<usize>,
    /// The model's own task head will not be used (an adapter brings its own, AdapterHub's
    /// way): a head missing from the checkpoint is reported at debug level instead of warned.
    pub own_head_unused: bool,
    /// Read no weights: every tensor is initialised as transformers initialises a new model
    /// (`from_config`): normal(0, `initializer_range`) weights, zero biases, LayerNorm 1 and 0.
    /// The repository needs only `config.json` (and the tokenizer files).
    pub random_init: bool,
}

/// Loads a model for `task` from a local directory or Hub id (`org/name[@revision]`).
///
/// Reads `config.json` and the safetensors checkpoint; tensors the checkpoint lacks are
/// initialised as transformers initialises them, and listed in the report.
pub fn load(model: &str, task: Task, options: &LoadOptions, device: &Device) -> Result<Loaded<AnyModel>> {
    let files = RepoFiles::open(model, RepoKind::Model)?;
    let config_path = files.get_required("config.json")?;
    let mut config = ModelConfig::from_file(&config_path)?;
    if let Some(names) = &options.labels {
        config.labels_mut().set_labels(names);
    } else if let Some(n) = options.num_labels {
        config.labels_mut().set_num_labels(n);
    }
    let mut ck = if options.random_init { Checkpoint::empty(device) } else { Checkpoint::open(&files, device)? };
    let saved = config.saved_task();
    let heads = [Task::SequenceClassification, Task::TokenClassification];
    if heads.contains(&saved) && heads.contains(&task) && saved != task && config.first_token_head().is_none() {
        // A head trained for another task is not this task's head, even where the shapes agree
        // (transformers would load it silently): it is new, and said so.
        let base = format!("{}.", config.base_model_prefix());
        ck.exclude(|name| !name.starts_with(&base));
        tracing::warn!(
            model = %files.name(),
            "the checkpoint's head was trained for {saved}; the {task} head is newly initialized"
        );
    }
    let model = build(&mut ck, &config, task)?;
    let mut report = ck.finish()?;
    if let ArchConfig::Gpt2(c) = &config.arch {
        crate::gpt2::drop_ignored_tensors(&mut report, c);
    }
    let only_head = |n: &String| !n.starts_with(&format!("{}.", config.base_model_prefix()));
    let head_only = report.newly_initialized.iter().all(only_head)
        && report.reinitialized_mismatched.iter().all(|(n, _, _)| only_head(n));
    if options.random_init {
        tracing::info!(model = %files.name(), tensors = report.newly_initialized.len(), "random initialisation: no weights read");
    } else if options.own_head_unused && head_only {
        tracing::debug!(
            model = %files.name(),
            new = ?report.newly_initialized,
            "the task head is newly initialized and unused: the adapter brings its own"
        );
    } else if !report.newly_initialized.is_empty() || !report.reinitialized_mismatched.is_empty() {
        tracing::warn!(
            model = %files.name(),
            new = ?report.newly_initialized,
            reinitialized = ?report.reinitialized_mismatched,
            "some weights were not in the checkpoint and are newly initialized: train the model before using it"
        );
    }
    Ok(Loaded { model, config, report, files })
}

/// A lone `classifier` projection (the first-token head, loaded after its encoder).
struct ClassifierOnly(Projection);

impl HubModule for ClassifierOnly {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("classifier"), Part::Projection(&mut self.0));
    }
}

fn build(ck: &mut Checkpoint, config: &ModelConfig, task: Task) -> Result<AnyModel> {
    if task == Task::SequenceClassification && config.first_token_head().is_some() {
        let dropout = config.first_token_head().unwrap_or(0.1);
        let encoder = match build(ck, config, Task::FeatureExtraction)? {
            AnyModel::Encoder(e) => e,
            _ => return Err(ModelError::Unsupported("expected an encoder".into())),
        };
        let hidden = encoder.hidden_size();
        ck.allow_reinit("classifier.weight");
        ck.allow_reinit("classifier.bias");
        let mut head =
            ClassifierOnly(Projection::new(hidden, config.labels().num_labels(), WeightLayout::Linear, ck.device()));
        load_parts(&mut head, ck, &NameMap::identity(), InitScheme::Transformers { std: config.initializer_range() })?;
        let dropout = DropoutConfig::new(dropout).init();
        let classifier = head.0;
        return Ok(AnyModel::SequenceClassifier(SequenceClassifier::FirstToken(FirstTokenClassifier {
            encoder,
            dropout,
            classifier,
        })));
    }
    Ok(match (&config.arch, task) {
        (ArchConfig::Bert(c), Task::FeatureExtraction) => {
            AnyModel::Encoder(Encoder::Bert(BertModel::from_checkpoint(ck, c, true)?))
        }
        (ArchConfig::DistilBert(c), Task::FeatureExtraction) => {
            AnyModel::Encoder(Encoder::DistilBert(DistilBertModel::from_checkpoint(ck, c)?))
        }
        (ArchConfig::Bert(c), Task::SequenceClassification) => AnyModel::SequenceClassifier(SequenceClassifier::Bert(
            BertForSequenceClassification::from_checkpoint(ck, c)?,
        )),
        (ArchConfig::DistilBert(c), Task::SequenceClassification) => AnyModel::SequenceClassifier(
            SequenceClassifier::DistilBert(DistilBertForSequenceClassification::from_checkpoint(ck, c)?),
        ),
        (ArchConfig::Bert(c), Task::TokenClassification) => {
            AnyModel::TokenClassifier(TokenClassifier::Bert(BertForTokenClassification::from_checkpoint(ck, c)?))
        }
        (ArchConfig::DistilBert(c), Task::TokenClassification) => AnyModel::TokenClassifier(
            TokenClassifier::DistilBert(DistilBertForTokenClassification::from_checkpoint(ck, c)?),
        ),
        (ArchConfig::Gpt2(c), Task::CausalLm) => {
            AnyModel::CausalLm(CausalLm::Gpt2(GPT2LMHeadModel::from_checkpoint(ck, c)?))
        }
        (ArchConfig::Gpt2(_), other) => {
            return Err(ModelError::Unsupported(format!(
                "GPT-2 is implemented as a causal language model (GPT2LMHeadModel, task causal-lm); \
                 {other:?} is not (GPT2Model alone: ft_models::gpt2::GPT2Model::from_checkpoint)"
            )));
        }
        (_, Task::ImageClassification) => {
            return Err(ModelError::Unsupported(format!(
                "{} is a text model; image classification is for image models (ft_models::resnet)",
                config.model_type()
            )));
        }
        (ArchConfig::Bert(_) | ArchConfig::DistilBert(_), Task::CausalLm) => {
            return Err(ModelError::Unsupported(format!(
                "{} is an encoder: it has no causal language-model head (supported: gpt2)",
                config.model_type()
            )));
        }
    })
}

impl<M> Loaded<M> {
    /// The same loaded model, converted (the configuration, report and files carried along).
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> Loaded<N> {
        Loaded { model: f(self.model), config: self.config, report: self.report, files: self.files }
    }

    /// [`map`](Self::map) with a conversion that may fail.
    pub fn try_map<N>(self, f: impl FnOnce(M) -> Result<N>) -> Result<Loaded<N>> {
        Ok(Loaded { model: f(self.model)?, config: self.config, report: self.report, files: self.files })
    }
}

fn not_a(model: &AnyModel, what: &str) -> ModelError {
    ModelError::Unsupported(format!("{} is not {what}", model.class_name()))
}

impl Loaded<AnyModel> {
    /// The model as a sequence classifier, if it is one.
    pub fn into_sequence_classifier(self) -> Result<Loaded<SequenceClassifier>> {
        self.try_map(|m| match m {
            AnyModel::SequenceClassifier(m) => Ok(m),
            other => Err(not_a(&other, "a sequence classifier")),
        })
    }

    /// The model as a token classifier, if it is one.
    pub fn into_token_classifier(self) -> Result<Loaded<TokenClassifier>> {
        self.try_map(|m| match m {
            AnyModel::TokenClassifier(m) => Ok(m),
            other => Err(not_a(&other, "a token classifier")),
        })
    }

    /// The model as a causal language model, if it is one.
    pub fn into_causal_lm(self) -> Result<Loaded<CausalLm>> {
        self.try_map(|m| match m {
            AnyModel::CausalLm(m) => Ok(m),
            other => Err(not_a(&other, "a causal language model")),
        })
    }

    /// The model as a bare encoder, if it is one.
    pub fn into_encoder(self) -> Result<Loaded<Encoder>> {
        self.try_map(|m| match m {
            AnyModel::Encoder(m) => Ok(m),
            other => Err(not_a(&other, "a bare encoder")),
        })
    }
}

impl Encoder {
    /// The transformers class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Bert(_) => "BertModel",
            Self::DistilBert(_) => "DistilBertModel",
        }
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bert(m) => m.config.hidden_size,
            Self::DistilBert(m) => m.config.dim,
        }
    }

    /// The encoder's tensors under the Hub's names (no prefix, as `BertModel.save_pretrained`).
    pub fn export(&self) -> Result<HfTensors> {
        HfTensors::from_module(self)
    }
}

impl SequenceClassifier {
    /// All tensors under the Hub's names.
    pub fn export(&self) -> Result<HfTensors> {
        HfTensors::from_module(self)
    }

    /// The transformers class name (the encoder's for a [`FirstTokenClassifier`]).
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Bert(_) => "BertForSequenceClassification",
            Self::DistilBert(_) => "DistilBertForSequenceClassification",
            Self::FirstToken(m) => m.encoder.class_name(),
        }
    }
}

impl TokenClassifier {
    /// All tensors under the Hub's names.
    pub fn export(&self) -> Result<HfTensors> {
        HfTensors::from_module(self)
    }

    /// The transformers class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Bert(_) => "BertForTokenClassification",
            Self::DistilBert(_) => "DistilBertForTokenClassification",
        }
    }
}

/// The tokenizer files `save_pretrained` copies along with a model, when the source has them.
pub const TOKENIZER_FILES: [&str; 4] =
    ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

impl ModelConfig {
    /// `config.json` as `save_pretrained` writes it for `class_name`: the original fields, with
    /// `architectures`, `id2label`, `label2id` (and `problem_type`) brought up to date.
    pub fn to_json(&self, class_name: &str) -> serde_json::Value {
        let mut map = self.raw.clone();
        map.insert("architectures".into(), serde_json::json!([class_name]));
        let labels = self.labels();
        let names = labels.label_names();
        let id2label: serde_json::Map<String, serde_json::Value> =
            names.iter().enumerate().map(|(i, n)| (i.to_string(), serde_json::Value::String(n.clone()))).collect();
        let label2id: serde_json::Map<String, serde_json::Value> =
            names.iter().enumerate().map(|(i, n)| (n.clone(), serde_json::json!(i))).collect();
        map.insert("id2label".into(), serde_json::Value::Object(id2label));
        map.insert("label2id".into(), serde_json::Value::Object(label2id));
        map.remove("num_labels");
        if let Some(p) = &labels.problem_type {
            map.insert("problem_type".into(), serde_json::Value::String(p.clone()));
        }
        serde_json::Value::Object(map)
    }
}

/// Writes a model directory in the Hub's layout: `config.json`, `model.safetensors`, and the
/// tokenizer files of `tokenizer_source` — what `from_pretrained` (and `ft predict`) read.
/// Each file is written atomically.
pub fn save_pretrained(
    dir: &Path,
    tensors: &HfTensors,
    config: &ModelConfig,
    class_name: &str,
    tokenizer_source: &RepoFiles,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io { path: dir.to_path_buf(), error: source })?;
    tensors.write(dir)?;
    let json = serde_json::to_vec_pretty(&config.to_json(class_name))
        .map_err(|e| ModelError::Config { path: dir.join("config.json"), message: e.to_string() })?;
    write_atomic(&dir.join("config.json"), &json)?;
    for file in TOKENIZER_FILES {
        if let Some(src) = tokenizer_source.get_optional(file)? {
            let bytes = std::fs::read(&src).map_err(|source| ModelError::Io { path: src.clone(), error: source })?;
            write_atomic(&dir.join(file), &bytes)?;
        }
    }
    Ok(())
}
