//! Building GPT-2 modules from a Hugging Face checkpoint.
//!
//! The Hub names are the models' own ([`crate::naming::HubModule`] in `model.rs` and
//! `heads.rs`). GPT-2's `Conv1D` stores its weight `[in, out]` — Burn's `Linear` layout — so,
//! unlike `nn.Linear` weights, nothing is transposed. The Hub's `openai-community/gpt2` is saved
//! from the bare `GPT2Model` (no prefix, no `lm_head`); fine-tuned `GPT2LMHeadModel`
//! checkpoints carry the `transformer.` prefix. Both load. `h.N.attn.bias` /
//! `h.N.attn.masked_bias` (old causal-mask buffers) are not weights: skipped, not reported; a
//! saved `lm_head.weight` of a tied model is the head itself (`wte`) and is skipped too.

use super::config::Gpt2Config;
use super::heads::GPT2LMHeadModel;
use super::model::GPT2Model;
use crate::Result;
use crate::weights::{Checkpoint, InitScheme, LoadReport, NameMap, load_parts};

/// The tensor every GPT-2 checkpoint has, used to find the base-model prefix.
const PROBE: &str = "wte.weight";

/// Whether a checkpoint tensor is one transformers skips silently when loading GPT-2: the old
/// causal-mask buffers `attn.bias` / `attn.masked_bias`, and a saved `lm_head.weight` of a tied
/// model (the head *is* `wte`).
pub fn is_ignored_tensor(name: &str, config: &Gpt2Config) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || (config.tie_word_embeddings && name == "lm_head.weight")
}

/// Drops the tensors of [`is_ignored_tensor`] from a report's unused list, as transformers
/// does not warn about them.
pub fn drop_ignored_tensors(report: &mut LoadReport, config: &Gpt2Config) {
    report.unexpected.retain(|n| !is_ignored_tensor(n, config));
}

impl GPT2Model {
    /// Loads the decoder from `ck`, whose tensors may or may not carry the `transformer.` prefix.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &Gpt2Config) -> Result<Self> {
        let names = NameMap { strip: String::new(), add: ck.base_prefix("transformer", PROBE) };
        let mut model = Self::new(c, ck.device());
        load_parts(&mut model, ck, &names, InitScheme::Transformers { std: c.initializer_range })?;
        Ok(model)
    }
}

impl GPT2LMHeadModel {
    /// Loads the model; the LM head is `wte` unless `tie_word_embeddings` is false, in which case
    /// `lm_head.weight` is read (and newly initialised, and reported, when absent).
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &Gpt2Config) -> Result<Self> {
        let names = NameMap::base_prefix(ck, "transformer", PROBE);
        let mut model = Self::new(c, ck.device());
        load_parts(&mut model, ck, &names, InitScheme::Transformers { std: c.initializer_range })?;
        Ok(model)
    }
}
