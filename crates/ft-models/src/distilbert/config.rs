//! `DistilBertConfig`, read straight from the Hub's `config.json` with transformers' field names
//! and defaults.

use std::path::Path;

use crate::Result;
use crate::config::{LabelConfig, check};
use crate::layers::Activation;

fn d_vocab() -> usize {
    30522
}
fn d_positions() -> usize {
    512
}
fn d_layers() -> usize {
    6
}
fn d_heads() -> usize {
    12
}
fn d_dim() -> usize {
    768
}
fn d_hidden_dim() -> usize {
    3072
}
fn d_dropout() -> f64 {
    0.1
}
fn d_seq_dropout() -> f64 {
    0.2
}
fn d_act() -> Activation {
    Activation::Gelu
}
fn d_init_range() -> f64 {
    0.02
}

/// DistilBERT's configuration (transformers' `DistilBertConfig`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct DistilBertConfig {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Number of positions (the longest input).
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    /// Whether position embeddings are the fixed sinusoidal table.
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    /// Number of layers.
    #[serde(default = "d_layers")]
    pub n_layers: usize,
    /// Attention heads; must divide `dim`.
    #[serde(default = "d_heads")]
    pub n_heads: usize,
    /// Hidden size.
    #[serde(default = "d_dim")]
    pub dim: usize,
    /// Feed-forward inner size.
    #[serde(default = "d_hidden_dim")]
    pub hidden_dim: usize,
    /// Dropout on embeddings, feed-forward output and before the token classifier.
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "d_dropout")]
    pub attention_dropout: f64,
    /// Feed-forward activation (`gelu` or `relu` in transformers; any of [`Activation`] here).
    #[serde(default = "d_act")]
    pub activation: Activation,
    /// Std of the normal init of new weights.
    #[serde(default = "d_init_range")]
    pub initializer_range: f64,
    /// Dropout before the sequence classifier.
    #[serde(default = "d_seq_dropout")]
    pub seq_classif_dropout: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Labels and problem type.
    #[serde(flatten)]
    pub labels: LabelConfig,
}

/// DistilBERT's LayerNorm epsilon, fixed in transformers' code rather than configured.
pub const DISTILBERT_LAYER_NORM_EPS: f64 = 1e-12;

impl DistilBertConfig {
    /// Checks the fields that must agree, naming the offending one.
    pub fn validate(&self, path: &Path) -> Result<()> {
        check(path, self.n_heads > 0, "n_heads", "must be positive")?;
        check(
            path,
            self.dim % self.n_heads == 0,
            "dim",
            format!("{} is not a multiple of n_heads {}", self.dim, self.n_heads),
        )?;
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("dim", self.dim),
            ("hidden_dim", self.hidden_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            check(path, v > 0, field, "must be positive")?;
        }
        for (field, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
            ("seq_classif_dropout", self.seq_classif_dropout),
        ] {
            check(path, (0.0..1.0).contains(&p), field, format!("{p} is not in [0, 1)"))?;
        }
        self.labels.validate(path)
    }
}
