//! Loading any supported checkpoint by its `config.json`, as transformers' `AutoModel*` classes
//! do: `model_type` picks the architecture, the caller picks the task head.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ft_data::collate::TextBatch;
use ft_data::hub::{RepoFiles, RepoKind};

use crate::bert::{BertConfig, BertForSequenceClassification, BertForTokenClassification, BertModel};
use crate::config::{LabelConfig, parse_json};
use crate::distilbert::{
    DistilBertConfig, DistilBertForSequenceClassification, DistilBertForTokenClassification, DistilBertModel,
};
use crate::layers::ACTIVATIONS;
use crate::weights::{Checkpoint, LoadReport};
use crate::{ModelError, Result};

/// The `model_type`s ft implements.
pub const SUPPORTED_MODEL_TYPES: &str = "bert, distilbert";

/// An architecture's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchConfig {
    /// `model_type: "bert"`.
    Bert(BertConfig),
    /// `model_type: "distilbert"`.
    DistilBert(DistilBertConfig),
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
        let text =
            std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
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
        }
    }

    /// Labels and problem type.
    pub fn labels(&self) -> &LabelConfig {
        match &self.arch {
            ArchConfig::Bert(c) => &c.labels,
            ArchConfig::DistilBert(c) => &c.labels,
        }
    }

    /// Labels and problem type, to change before building a model (a new `num_labels`).
    pub fn labels_mut(&mut self) -> &mut LabelConfig {
        match &mut self.arch {
            ArchConfig::Bert(c) => &mut c.labels,
            ArchConfig::DistilBert(c) => &mut c.labels,
        }
    }

    /// The longest input the model accepts (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        match &self.arch {
            ArchConfig::Bert(c) => c.max_position_embeddings,
            ArchConfig::DistilBert(c) => c.max_position_embeddings,
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        match &self.arch {
            ArchConfig::Bert(c) => c.vocab_size,
            ArchConfig::DistilBert(c) => c.vocab_size,
        }
    }

    /// The task the checkpoint was saved for, from `architectures[0]`.
    pub fn saved_task(&self) -> Task {
        let arch = self.architectures.first().map(String::as_str).unwrap_or("");
        if arch.ends_with("ForSequenceClassification") {
            Task::SequenceClassification
        } else if arch.ends_with("ForTokenClassification") {
            Task::TokenClassification
        } else {
            Task::FeatureExtraction
        }
    }
}

/// What the model computes: which head sits on the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The bare encoder (`AutoModel`): hidden states.
    FeatureExtraction,
    /// `AutoModelForSequenceClassification`: one set of logits per text.
    SequenceClassification,
    /// `AutoModelForTokenClassification`: logits per token.
    TokenClassification,
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
}

/// A sequence classifier of any supported architecture.
#[derive(Module, Debug)]
pub enum SequenceClassifier {
    /// `BertForSequenceClassification`.
    Bert(BertForSequenceClassification),
    /// `DistilBertForSequenceClassification`.
    DistilBert(DistilBertForSequenceClassification),
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
}

impl AnyModel {
    /// The transformers class name, e.g. `BertForSequenceClassification`.
    pub fn class_name(&self) -> &'static str {
        match self {
            Self::Encoder(Encoder::Bert(_)) => "BertModel",
            Self::Encoder(Encoder::DistilBert(_)) => "DistilBertModel",
            Self::SequenceClassifier(SequenceClassifier::Bert(_)) => "BertForSequenceClassification",
            Self::SequenceClassifier(SequenceClassifier::DistilBert(_)) => "DistilBertForSequenceClassification",
            Self::TokenClassifier(TokenClassifier::Bert(_)) => "BertForTokenClassification",
            Self::TokenClassifier(TokenClassifier::DistilBert(_)) => "DistilBertForTokenClassification",
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
    let mut ck = Checkpoint::open(&files, device)?;
    let model = build(&mut ck, &config, task)?;
    let report = ck.finish()?;
    if !report.newly_initialized.is_empty() || !report.reinitialized_mismatched.is_empty() {
        tracing::warn!(
            model = %files.name(),
            new = ?report.newly_initialized,
            reinitialized = ?report.reinitialized_mismatched,
            "some weights were not in the checkpoint and are newly initialized: train the model before using it"
        );
    }
    Ok(Loaded { model, config, report, files })
}

fn build(ck: &mut Checkpoint, config: &ModelConfig, task: Task) -> Result<AnyModel> {
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
    })
}

impl Loaded<AnyModel> {
    /// The model as a sequence classifier, if it is one.
    pub fn into_sequence_classifier(self) -> Result<Loaded<SequenceClassifier>> {
        match self.model {
            AnyModel::SequenceClassifier(m) => {
                Ok(Loaded { model: m, config: self.config, report: self.report, files: self.files })
            }
            other => Err(ModelError::Unsupported(format!("{} is not a sequence classifier", other.class_name()))),
        }
    }

    /// The model as a token classifier, if it is one.
    pub fn into_token_classifier(self) -> Result<Loaded<TokenClassifier>> {
        match self.model {
            AnyModel::TokenClassifier(m) => {
                Ok(Loaded { model: m, config: self.config, report: self.report, files: self.files })
            }
            other => Err(ModelError::Unsupported(format!("{} is not a token classifier", other.class_name()))),
        }
    }

    /// The model as a bare encoder, if it is one.
    pub fn into_encoder(self) -> Result<Loaded<Encoder>> {
        match self.model {
            AnyModel::Encoder(m) => {
                Ok(Loaded { model: m, config: self.config, report: self.report, files: self.files })
            }
            other => Err(ModelError::Unsupported(format!("{} is not a bare encoder", other.class_name()))),
        }
    }
}
