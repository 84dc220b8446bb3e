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
//! kind = "full"                      # or "frozen": frozen encoder + linear head (§5)
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
//! Unknown keys are errors that list the valid ones. Relative paths are relative to the current
//! directory, as in transformers; a leading `~/` is the home directory.

use std::path::{Path, PathBuf};

use crate::args::TrainingArguments;
use crate::{Result, TrainError};

/// `[model]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A local model directory or a Hub id (`org/name[@revision]`).
    pub name: String,
    /// `text-classification` or `token-classification`.
    pub task: String,
    /// Number of labels; default: the data's label names.
    #[serde(default)]
    pub num_labels: Option<usize>,
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
    /// Evaluation split; none disables evaluation data.
    #[serde(default = "default_eval_split")]
    pub eval_split: Option<String>,
    /// Keep this many training rows (after the shuffle).
    #[serde(default)]
    pub train_select: Option<usize>,
    /// Skip this many evaluation rows first (after the shuffle) — to carve a validation set out of
    /// the same split as the training rows.
    #[serde(default)]
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
    #[serde(default)]
    pub label_all_tokens: bool,
    /// Skip invalid rows (and report how many) instead of failing.
    #[serde(default)]
    pub skip_invalid: bool,
}

fn default_train_split() -> String {
    "train".into()
}
fn default_eval_split() -> Option<String> {
    Some("validation".into())
}

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// Every parameter (§4).
    Full,
    /// A frozen encoder with a new linear head on the first token (§5).
    Frozen,
}

/// `[method]`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSection {
    /// `full` or `frozen`.
    #[serde(default = "default_kind")]
    pub kind: MethodKind,
    /// Dropout before the frozen method's head.
    #[serde(default = "default_head_dropout")]
    pub head_dropout: f64,
    /// Frozen method: run the encoder once per example and reuse its outputs in every epoch.
    #[serde(default = "default_true")]
    pub cache_features: bool,
}

fn default_kind() -> MethodKind {
    MethodKind::Full
}
fn default_head_dropout() -> f64 {
    0.1
}
fn default_true() -> bool {
    true
}

impl Default for MethodSection {
    fn default() -> Self {
        Self { kind: MethodKind::Full, head_dropout: 0.1, cache_features: true }
    }
}

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
    pub method: MethodSection,
    /// `[training]`: `TrainingArguments`.
    #[serde(default)]
    pub training: TrainingArguments,
}

/// The sections of a run file.
pub const SECTIONS: [&str; 4] = ["model", "data", "method", "training"];

impl RunConfig {
    /// Reads a run file and applies `--set section.key=value` overrides; every error names the
    /// file (or the override) and the key.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        Self::parse(&text, &path.display().to_string(), overrides)
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
        // Deserialized from TOML text so that errors show the offending line (and, for an
        // unknown key, list the valid ones): the file's own text, or the merged text when
        // `--set` changed it.
        let (source, what) = if overrides.is_empty() {
            (text.to_string(), origin.to_string())
        } else {
            let merged = toml::to_string(&table).map_err(|e| TrainError::Config(format!("{origin}: {e}")))?;
            (merged, format!("{origin} (with --set overrides)"))
        };
        let mut config: RunConfig =
            toml::from_str(&source).map_err(|e: toml::de::Error| TrainError::Config(format!("{what}: {}", e.to_string().trim())))?;
        config.model.name = expand_home(&config.model.name);
        config.data.source = expand_home(&config.data.source);
        config.data.local_data = config.data.local_data.map(|p| PathBuf::from(expand_home(&p.to_string_lossy())));
        config.training.output_dir = PathBuf::from(expand_home(&config.training.output_dir.to_string_lossy()));
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        if !["text-classification", "token-classification"].contains(&self.model.task.as_str()) {
            return Err(TrainError::Config(format!(
                "{origin}: model.task: '{}' (expected text-classification or token-classification)",
                self.model.task
            )));
        }
        if self.method.kind == MethodKind::Frozen && self.model.task != "text-classification" {
            return Err(TrainError::Config(format!("{origin}: method.kind = \"frozen\" is for text-classification")));
        }
        if !(0.0..1.0).contains(&self.method.head_dropout) {
            return Err(TrainError::Config(format!("{origin}: method.head_dropout: {} is not in [0, 1)", self.method.head_dropout)));
        }
        if self.model.num_labels == Some(0) {
            return Err(TrainError::Config(format!("{origin}: model.num_labels must be at least 1")));
        }
        if self.training.eval_strategy != crate::args::IntervalStrategy::No && self.data.eval_split.is_none() {
            return Err(TrainError::Config(format!(
                "{origin}: training.eval_strategy is {:?} but data.eval_split is not set",
                self.training.eval_strategy
            )));
        }
        self.training.validate().map_err(|e| TrainError::Config(format!("{origin}: {e}")))
    }

    /// Whether this is a token-classification run.
    pub fn is_token_classification(&self) -> bool {
        self.model.task == "token-classification"
    }

    /// The text column, with the task's default.
    pub fn text_column(&self) -> String {
        self.data.text_column.clone().unwrap_or_else(|| if self.is_token_classification() { "tokens" } else { "text" }.into())
    }

    /// The label column, with the task's default.
    pub fn label_column(&self) -> String {
        self.data.label_column.clone().unwrap_or_else(|| if self.is_token_classification() { "ner_tags" } else { "label" }.into())
    }
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
        let c = RunConfig::parse(RUN, "run.toml", &["training.num_train_epochs=1".into(), "data.max_length=128".into()]).unwrap();
        assert_eq!(c.training.learning_rate, 2e-5);
        assert_eq!(c.training.num_train_epochs, 1.0);
        assert_eq!(c.data.max_length, Some(128));
        assert_eq!(c.text_column(), "text");
        assert_eq!(c.method.kind, MethodKind::Full);
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let e = RunConfig::parse(&RUN.replace("learning_rate", "learning_rat"), "run.toml", &[]).unwrap_err().to_string();
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
        let e = RunConfig::parse(RUN, "run.toml", &["training.per_device_train_batch_size=0".into()]).unwrap_err().to_string();
        assert!(e.contains("per_device_train_batch_size"), "{e}");
        let e = RunConfig::parse(RUN, "run.toml", &["data.eval_split=false".into()]).unwrap_err().to_string();
        assert!(e.contains("eval_split"), "{e}");
    }
}
