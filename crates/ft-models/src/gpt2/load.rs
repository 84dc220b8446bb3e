//! Building GPT-2 modules from a Hugging Face checkpoint.
//!
//! | Hub tensor (under `transformer.` or no prefix) | ft field |
//! |---|---|
//! | `wte.weight` `[vocab, n_embd]` | `transformer.wte.weight` (also the tied LM head) |
//! | `wpe.weight` `[n_positions, n_embd]` | `transformer.wpe.weight` |
//! | `h.N.ln_1.{weight,bias}`, `h.N.ln_2.*` | `h[N].ln_1.{gamma,beta}`, `h[N].ln_2` |
//! | `h.N.attn.c_attn.{weight,bias}` (`Conv1D`, `[n_embd, 3·n_embd]`) | `h[N].attn.c_attn` (not transposed) |
//! | `h.N.attn.c_proj.*` (`Conv1D`, `[n_embd, n_embd]`) | `h[N].attn.c_proj` |
//! | `h.N.mlp.c_fc.*` (`[n_embd, inner]`), `h.N.mlp.c_proj.*` (`[inner, n_embd]`) | `h[N].mlp.c_fc`, `h[N].mlp.c_proj` |
//! | `ln_f.{weight,bias}` | `transformer.ln_f` |
//! | `lm_head.weight` `[vocab, n_embd]` (no prefix; only read when `tie_word_embeddings` is false) | `lm_head` |
//! | `h.N.attn.bias`, `h.N.attn.masked_bias` (old causal-mask buffers) | not weights: skipped, not reported |
//!
//! GPT-2's `Conv1D` stores its weight `[in, out]` — Burn's `Linear` layout — so, unlike
//! `nn.Linear` weights, nothing is transposed. The Hub's `openai-community/gpt2` is saved from the
//! bare `GPT2Model` (no prefix, no `lm_head`); fine-tuned `GPT2LMHeadModel` checkpoints carry the
//! `transformer.` prefix. Both load.

use burn::module::Param;
use burn::nn::{DropoutConfig, Linear, LinearConfig};

use super::config::Gpt2Config;
use super::heads::GPT2LMHeadModel;
use super::model::{GPT2Attention, GPT2Block, GPT2MLP, GPT2Model};
use crate::Result;
use crate::layers::{embedding, layer_norm};
use crate::weights::{Checkpoint, Init, LoadReport};

/// The tensor every GPT-2 checkpoint has, used to find the base-model prefix.
const PROBE: &str = "wte.weight";

/// Loads a `Conv1D` stored as `{name}.weight` `[in, out]` and `{name}.bias` `[out]`.
pub fn conv1d(ck: &mut Checkpoint, name: &str, d_in: usize, d_out: usize) -> Result<Linear> {
    let weight = ck.tensor(&format!("{name}.weight"), [d_in, d_out], Init::Normal)?;
    let bias = ck.tensor(&format!("{name}.bias"), [d_out], Init::Zeros)?;
    let mut layer = LinearConfig::new(d_in, d_out).init(ck.device());
    layer.weight = Param::from_tensor(weight);
    layer.bias = Some(Param::from_tensor(bias));
    Ok(layer)
}

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
        ck.set_init_std(c.initializer_range);
        let p = ck.base_prefix("transformer", PROBE);
        let e = c.n_embd;
        let mut h = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let b = format!("{p}h.{i}");
            h.push(GPT2Block {
                ln_1: layer_norm(ck, &format!("{b}.ln_1"), e, c.layer_norm_epsilon)?,
                attn: GPT2Attention {
                    c_attn: conv1d(ck, &format!("{b}.attn.c_attn"), e, 3 * e)?,
                    c_proj: conv1d(ck, &format!("{b}.attn.c_proj"), e, e)?,
                    attn_dropout: DropoutConfig::new(c.attn_pdrop).init(),
                    resid_dropout: DropoutConfig::new(c.resid_pdrop).init(),
                    n_head: c.n_head,
                    scale: c.attention_scale(i),
                    layer_idx: i,
                },
                ln_2: layer_norm(ck, &format!("{b}.ln_2"), e, c.layer_norm_epsilon)?,
                mlp: GPT2MLP {
                    c_fc: conv1d(ck, &format!("{b}.mlp.c_fc"), e, c.inner_dim())?,
                    c_proj: conv1d(ck, &format!("{b}.mlp.c_proj"), c.inner_dim(), e)?,
                    dropout: DropoutConfig::new(c.resid_pdrop).init(),
                    act: c.activation_function,
                },
            });
        }
        Ok(Self {
            wte: embedding(ck, &format!("{p}wte"), c.vocab_size, e)?,
            wpe: embedding(ck, &format!("{p}wpe"), c.n_positions, e)?,
            drop: DropoutConfig::new(c.embd_pdrop).init(),
            h,
            ln_f: layer_norm(ck, &format!("{p}ln_f"), e, c.layer_norm_epsilon)?,
            config: c.clone(),
        })
    }
}

impl GPT2LMHeadModel {
    /// Loads the model; the LM head is `wte` unless `tie_word_embeddings` is false, in which case
    /// `lm_head.weight` is read (and newly initialised, and reported, when absent).
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &Gpt2Config) -> Result<Self> {
        let transformer = GPT2Model::from_checkpoint(ck, c)?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(Param::from_tensor(ck.tensor("lm_head.weight", [c.vocab_size, c.n_embd], Init::Normal)?))
        };
        Ok(Self { transformer, lm_head })
    }
}
