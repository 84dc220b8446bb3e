//! `BertConfig`, read straight from the Hub's `config.json` with transformers' field names and
//! defaults.

use std::path::Path;

use crate::Result;
use crate::config::{LabelConfig, check};
use crate::layers::Activation;

fn d_vocab() -> usize {
    30522
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_act() -> Activation {
    Activation::Gelu
}
fn d_dropout() -> f64 {
    0.1
}
fn d_positions() -> usize {
    512
}
fn d_type_vocab() -> usize {
    2
}
fn d_init_range() -> f64 {
    0.02
}
fn d_eps() -> f64 {
    1e-12
}
fn d_position_type() -> String {
    "absolute".into()
}

/// BERT's configuration (transformers' `BertConfig`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct BertConfig {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Hidden size H.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads per layer; must divide `hidden_size`.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Feed-forward inner size.
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    /// Feed-forward activation (`gelu`, `gelu_new`, `relu`, ...).
    #[serde(default = "d_act")]
    pub hidden_act: Activation,
    /// Dropout on embeddings and sub-layer outputs.
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Number of learned positions (the longest input).
    #[serde(default = "d_positions")]
    pub max_position_embeddings: usize,
    /// Number of segment (token type) embeddings.
    #[serde(default = "d_type_vocab")]
    pub type_vocab_size: usize,
    /// Std of the normal init of new weights.
    #[serde(default = "d_init_range")]
    pub initializer_range: f64,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// Only `absolute` is implemented.
    #[serde(default = "d_position_type")]
    pub position_embedding_type: String,
    /// Dropout before the classification head; `hidden_dropout_prob` when null.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Labels and problem type.
    #[serde(flatten)]
    pub labels: LabelConfig,
}

impl BertConfig {
    /// Checks the fields that must agree, naming the offending one.
    pub fn validate(&self, path: &Path) -> Result<()> {
        check(path, self.num_attention_heads > 0, "num_attention_heads", "must be positive")?;
        check(
            path,
            self.hidden_size % self.num_attention_heads == 0,
            "hidden_size",
            format!("{} is not a multiple of num_attention_heads {}", self.hidden_size, self.num_attention_heads),
        )?;
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            check(path, v > 0, field, "must be positive")?;
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
            ("classifier_dropout", self.classifier_dropout.unwrap_or(0.0)),
        ] {
            check(path, (0.0..1.0).contains(&p), field, format!("{p} is not in [0, 1)"))?;
        }
        check(
            path,
            self.position_embedding_type == "absolute",
            "position_embedding_type",
            format!("'{}' is not supported (only 'absolute')", self.position_embedding_type),
        )?;
        check(path, self.layer_norm_eps > 0.0, "layer_norm_eps", "must be positive")?;
        self.labels.validate(path)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Dropout before the classification head.
    pub fn classifier_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }
}
