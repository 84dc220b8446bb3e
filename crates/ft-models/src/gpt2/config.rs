//! `GPT2Config`, read straight from the Hub's `config.json` with transformers' field names and
//! defaults.

use std::path::Path;

use crate::Result;
use crate::config::{LabelConfig, check};
use crate::layers::Activation;

fn d_vocab() -> usize {
    50257
}
fn d_positions() -> usize {
    1024
}
fn d_embd() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_act() -> Activation {
    Activation::GeluNew
}
fn d_dropout() -> f64 {
    0.1
}
fn d_eps() -> f64 {
    1e-5
}
fn d_init_range() -> f64 {
    0.02
}
fn d_true() -> bool {
    true
}
fn d_special() -> Option<u32> {
    Some(50256)
}

/// GPT-2's configuration (transformers' `GPT2Config`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Gpt2Config {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Number of learned positions: the longest sequence (prompt + generated tokens).
    #[serde(default = "d_positions")]
    pub n_positions: usize,
    /// Hidden size.
    #[serde(default = "d_embd")]
    pub n_embd: usize,
    /// Number of blocks.
    #[serde(default = "d_layers")]
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    #[serde(default = "d_heads")]
    pub n_head: usize,
    /// Feed-forward inner size; `4 · n_embd` when null.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Feed-forward activation (`gelu_new` for GPT-2).
    #[serde(default = "d_act")]
    pub activation_function: Activation,
    /// Dropout after the attention and feed-forward sub-layers.
    #[serde(default = "d_dropout")]
    pub resid_pdrop: f64,
    /// Dropout on the summed embeddings.
    #[serde(default = "d_dropout")]
    pub embd_pdrop: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "d_dropout")]
    pub attn_pdrop: f64,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_epsilon: f64,
    /// Std of the normal init of new weights.
    #[serde(default = "d_init_range")]
    pub initializer_range: f64,
    /// Scale attention scores by `1/√head_dim`.
    #[serde(default = "d_true")]
    pub scale_attn_weights: bool,
    /// Also divide attention scores by `layer_index + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// transformers' mixed-precision trick (upcast and reorder the score product); in f32 it
    /// computes the same thing, so it is accepted and has no effect here.
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    /// Cross-attention blocks (GPT-2 as a decoder of an encoder-decoder); not supported.
    #[serde(default)]
    pub add_cross_attention: bool,
    /// Whether the LM head shares the token embedding matrix `wte` (GPT-2: yes).
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token (`<|endoftext|>`, 50256).
    #[serde(default = "d_special")]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token (`<|endoftext|>`, 50256).
    #[serde(default = "d_special")]
    pub eos_token_id: Option<u32>,
    /// Padding token; GPT-2 has none (generation pads with `eos_token_id`).
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Labels (for heads ft does not implement yet) and problem type.
    #[serde(flatten)]
    pub labels: LabelConfig,
}

impl Gpt2Config {
    /// Checks the fields that must agree, naming the offending one.
    pub fn validate(&self, path: &Path) -> Result<()> {
        check(path, self.n_head > 0, "n_head", "must be positive")?;
        check(
            path,
            self.n_embd % self.n_head == 0,
            "n_embd",
            format!("{} is not a multiple of n_head {}", self.n_embd, self.n_head),
        )?;
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("n_embd", self.n_embd),
            ("n_positions", self.n_positions),
            ("n_inner", self.n_inner.unwrap_or(1)),
        ] {
            check(path, v > 0, field, "must be positive")?;
        }
        for (field, p) in
            [("resid_pdrop", self.resid_pdrop), ("embd_pdrop", self.embd_pdrop), ("attn_pdrop", self.attn_pdrop)]
        {
            check(path, (0.0..1.0).contains(&p), field, format!("{p} is not in [0, 1)"))?;
        }
        check(path, self.layer_norm_epsilon > 0.0, "layer_norm_epsilon", "must be positive")?;
        check(
            path,
            !self.add_cross_attention,
            "add_cross_attention",
            "cross-attention (GPT-2 as the decoder of an encoder-decoder model) is not supported",
        )?;
        for (field, id) in
            [("bos_token_id", self.bos_token_id), ("eos_token_id", self.eos_token_id), ("pad_token_id", self.pad_token_id)]
        {
            if let Some(id) = id {
                check(
                    path,
                    (id as usize) < self.vocab_size,
                    field,
                    format!("{id} is outside the vocabulary of {}", self.vocab_size),
                )?;
            }
        }
        self.labels.validate(path)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Feed-forward inner size (`n_inner`, else `4 · n_embd`).
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// The factor attention scores of block `layer` are multiplied by.
    pub fn attention_scale(&self, layer: usize) -> f64 {
        let mut scale = if self.scale_attn_weights { 1.0 / (self.head_dim() as f64).sqrt() } else { 1.0 };
        if self.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Gpt2Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_gpt2_small() {
        let c = parse(r#"{"model_type": "gpt2"}"#);
        assert_eq!((c.vocab_size, c.n_positions, c.n_embd, c.n_layer, c.n_head), (50257, 1024, 768, 12, 12));
        assert_eq!(c.inner_dim(), 3072);
        assert_eq!(c.activation_function, Activation::GeluNew);
        assert_eq!((c.bos_token_id, c.eos_token_id, c.pad_token_id), (Some(50256), Some(50256), None));
        assert!(c.tie_word_embeddings && c.scale_attn_weights && !c.scale_attn_by_inverse_layer_idx);
        assert!((c.attention_scale(3) - 0.125).abs() < 1e-12);
        c.validate(Path::new("config.json")).unwrap();
    }

    #[test]
    fn the_hub_config_parses() {
        // openai-community/gpt2's config.json (abridged: task_specific_params dropped).
        let c = parse(
            r#"{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
            "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
            "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
            "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
            "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
            "summary_use_proj": true, "vocab_size": 50257}"#,
        );
        assert_eq!(c.n_inner, None);
        c.validate(Path::new("config.json")).unwrap();
    }

    #[test]
    fn explicit_fields_and_layer_scaling() {
        let c = parse(r#"{"n_embd": 16, "n_head": 4, "n_inner": 40, "scale_attn_by_inverse_layer_idx": true}"#);
        assert_eq!(c.inner_dim(), 40);
        assert!((c.attention_scale(1) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |json: &str, field: &str| {
            let msg = parse(json).validate(Path::new("cfg.json")).unwrap_err().to_string();
            assert!(msg.contains(field) && msg.contains("cfg.json"), "{msg}");
        };
        bad(r#"{"n_embd": 10, "n_head": 4}"#, "n_embd");
        bad(r#"{"n_head": 0}"#, "n_head");
        bad(r#"{"attn_pdrop": 1.5}"#, "attn_pdrop");
        bad(r#"{"add_cross_attention": true}"#, "add_cross_attention");
        bad(r#"{"vocab_size": 100, "bos_token_id": 1, "eos_token_id": 50256}"#, "eos_token_id");
        bad(r#"{"n_positions": 0}"#, "n_positions");
    }
}
