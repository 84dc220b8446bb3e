//! GPT-2's decoder ([`GPT2Model`]) in Burn, with a key/value cache for generation.
//!
//! Paper: Radford et al., *Language Models are Unsupervised Multitask Learners* (2019).
//! Reference implementation: transformers' `models/gpt2/modeling_gpt2.py`. Pre-LayerNorm blocks
//! (`x + Attn(LN(x))`, then `h + MLP(LN(h))`, a final `ln_f`); learned absolute positions;
//! causal self-attention; `Conv1D` projections, whose weights the Hub stores `[in, out]` — Burn's
//! own layout, so they load without a transpose.
//!
//! Field names follow the Hub's tensor names (`wte`, `wpe`, `h.N.ln_1`, `h.N.attn.c_attn`,
//! `h.N.mlp.c_fc`, `ln_f`, ...); each struct's [`HubModule`] impl lists them once for loading,
//! saving and adapter matching.
//!
//! # Seams for parameter-efficient methods
//! `c_attn`, `c_proj` and `c_fc` are [`Projection`]s (`Conv1D` layout: LoRA deltas attach
//! there); each block has bottleneck-adapter slots after attention and after the MLP
//! (`attention_adapters`, `output_adapters`, pre-LayerNorm: no norm inside the slot);
//! [`GPT2Model::forward_input`] takes input embeddings, and the [`KvCache`] can be built from
//! given keys and values ([`KvCache::from_layers`]: a prefix), after which positions continue.
//!
//! # Padding and positions
//!
//! The attention mask (1 = token, 0 = padding) covers the cached tokens and the new ones. Padding
//! keys are never attended to; a padding *query* (left padding, before the text starts) attends
//! causally to the padding before it, so that no attention row is empty and every position
//! stays finite (its output is meaningless and ignored, as in transformers). Without explicit
//! `position_ids`, positions are `past_length .. past_length + seq` for every row, as
//! transformers' `GPT2Model.forward` does; `generate` passes the positions it derives from the
//! attention mask (`cumsum(mask) - 1`, 0 on padding), so that a left-padded prompt starts at
//! position 0.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor};
use ft_hub::ops::dropout;
use ft_peft::slot::BottleneckAdapters;

use super::config::Gpt2Config;
use crate::attention::{merge_heads, split_heads};
pub use crate::input::KvCache;
use crate::input::{TextInput, Tokens};
use crate::layers::{Activation, Projection, WeightLayout, embedding, layer_norm};
use crate::naming::{HubModule, HubPath, Part};
use crate::{ModelError, Result};

/// The attention mask of one forward pass in the form the attention kernels take.
#[derive(Debug, Clone)]
pub struct CausalMask {
    /// `[batch, 1, seq, cached + seq]`, `true` where a query must not see a key (the future, and
    /// padding keys of non-padding queries); `None` when nothing is padded (causal only).
    pub masked: Option<Tensor<4, Bool>>,
    /// Query length.
    pub seq: usize,
    /// Key length (cached + new).
    pub keys: usize,
}

impl CausalMask {
    /// Builds the mask from an attention mask over the cached and new positions.
    ///
    /// # Shapes
    /// - `attention_mask`: `[batch, cached + seq]` of 1 (token) and 0 (padding)
    pub fn new(attention_mask: Option<&Tensor<2, Int>>, batch: usize, seq: usize, keys: usize) -> Self {
        let Some(mask) = attention_mask else { return Self { masked: None, seq, keys } };
        let device = mask.device();
        let key_pad = mask.clone().equal_elem(0);
        let query_real = key_pad.clone().narrow(1, keys - seq, seq).bool_not();
        let future = Tensor::<2, Bool>::tril_mask([seq, keys], (keys - seq) as i64, &device).reshape([1, 1, seq, keys]);
        let pad = key_pad
            .reshape([batch, 1, 1, keys])
            .expand([batch, 1, seq, keys])
            .bool_and(query_real.reshape([batch, 1, seq, 1]).expand([batch, 1, seq, keys]));
        let masked = future.expand([batch, 1, seq, keys]).bool_or(pad);
        Self { masked: Some(masked), seq, keys }
    }
}

/// Causal multi-head attention: `softmax(q·kᵀ·scale + mask)·v`, with dropout on the
/// probabilities while training.
///
/// # Shapes
/// - `q`: `[batch, heads, seq, head_dim]`; `k`, `v`: `[batch, heads, keys, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
///
/// Without active dropout this is Burn's fused attention (causal mode when nothing is padded).
/// With it, the probabilities are materialised so that dropout can be applied to them, as
/// transformers' eager attention does; masked scores are `f32::MIN` there.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &CausalMask,
    scale: f64,
    dropout: &Dropout,
) -> Tensor<4> {
    let [b, h, l, _] = q.dims();
    let lk = k.dims()[2];
    let dropout_active = dropout.prob > 0.0 && dropout.training.is_enabled() && q.device().is_autodiff();
    if !dropout_active {
        let options =
            AttentionModuleOptions { scale: Some(scale), is_causal: mask.masked.is_none(), ..Default::default() };
        let masked = mask.masked.clone().map(|m| m.expand([b, h, l, lk]));
        return attention(q, k, v, masked, None, options);
    }
    let device = q.device();
    let masked = match &mask.masked {
        Some(m) => m.clone(),
        None => Tensor::<2, Bool>::tril_mask([l, lk], (lk - l) as i64, &device).reshape([1, 1, l, lk]),
    };
    let scores = ft_hub::ops::matmul_scaled(q, k.swap_dims(2, 3), scale);
    let scores = scores.mask_fill(masked.expand([b, h, l, lk]), f32::MIN);
    ft_hub::ops::matmul_scaled(ft_hub::ops::dropout(dropout, ft_hub::ops::softmax_last(scores)), v, 1.0)
}

/// Causal self-attention (HF `h.N.attn`).
#[derive(Module, Debug)]
pub struct GPT2Attention {
    /// `c_attn`: the fused query/key/value projection `[n_embd, 3·n_embd]`.
    pub c_attn: Projection,
    /// `c_proj`: the output projection `[n_embd, n_embd]`.
    pub c_proj: Projection,
    /// Dropout on attention probabilities (`attn_pdrop`).
    pub attn_dropout: Dropout,
    /// Dropout after `c_proj` (`resid_pdrop`).
    pub resid_dropout: Dropout,
    /// Number of heads.
    pub n_head: usize,
    /// Score scale (`1/√head_dim`, divided by the layer number with
    /// `scale_attn_by_inverse_layer_idx`).
    pub scale: f64,
    /// Index of the block (for the cache).
    pub layer_idx: usize,
}

impl GPT2Attention {
    /// # Shapes
    /// - `x`: `[batch, seq, n_embd]`; output `[batch, seq, n_embd]`
    pub fn forward(&self, x: Tensor<3>, mask: &CausalMask, cache: Option<&mut KvCache>) -> Tensor<3> {
        let e = x.dims()[2];
        let qkv = self.c_attn.forward(x);
        let q = split_heads(qkv.clone().narrow(2, 0, e), self.n_head);
        let k = split_heads(qkv.clone().narrow(2, e, e), self.n_head);
        let v = split_heads(qkv.narrow(2, 2 * e, e), self.n_head);
        let (k, v) = match cache {
            Some(cache) => cache.update(self.layer_idx, k, v),
            None => (k, v),
        };
        let out = merge_heads(causal_attention(q, k, v, mask, self.scale, &self.attn_dropout));
        dropout(&self.resid_dropout, self.c_proj.forward(out))
    }
}

impl HubModule for GPT2Attention {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("c_attn"), Part::Projection(&mut self.c_attn));
        f(&path.pp("c_proj"), Part::Projection(&mut self.c_proj));
    }
}

/// The feed-forward block (HF `h.N.mlp`): `dropout(c_proj(act(c_fc(x))))`.
#[derive(Module, Debug)]
pub struct GPT2MLP {
    /// `c_fc` `[n_embd, inner]`.
    pub c_fc: Projection,
    /// `c_proj` `[inner, n_embd]`.
    pub c_proj: Projection,
    /// Dropout (`resid_pdrop`).
    pub dropout: Dropout,
    /// Activation (`activation_function`).
    #[module(skip)]
    pub act: Activation,
}

impl GPT2MLP {
    /// # Shapes
    /// - `x`: `[batch, seq, n_embd]`; output `[batch, seq, n_embd]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dropout(&self.dropout, self.c_proj.forward(self.act.forward(self.c_fc.forward(x))))
    }
}

impl HubModule for GPT2MLP {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("c_fc"), Part::Projection(&mut self.c_fc));
        f(&path.pp("c_proj"), Part::Projection(&mut self.c_proj));
    }
}

/// One pre-LayerNorm block (HF `h.N`).
#[derive(Module, Debug)]
pub struct GPT2Block {
    /// `ln_1`, before attention.
    pub ln_1: LayerNorm,
    /// `attn`.
    pub attn: GPT2Attention,
    /// `ln_2`, before the MLP.
    pub ln_2: LayerNorm,
    /// `mlp`.
    pub mlp: GPT2MLP,
    /// Bottleneck adapters after attention (the `adapters` library's `attention_adapters`).
    pub attention_adapters: BottleneckAdapters,
    /// Bottleneck adapters after the MLP (`output_adapters`).
    pub output_adapters: BottleneckAdapters,
}

impl GPT2Block {
    /// `h = x + attn(ln_1(x))`, then `h + mlp(ln_2(h))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, n_embd]`; output `[batch, seq, n_embd]`
    pub fn forward(&self, x: Tensor<3>, mask: &CausalMask, cache: Option<&mut KvCache>) -> Tensor<3> {
        let attended = self.attn.forward(ft_hub::ops::layer_norm(&self.ln_1, x.clone()), mask, cache);
        let h = self.attention_adapters.forward(attended, x, None);
        self.output_adapters.forward(self.mlp.forward(ft_hub::ops::layer_norm(&self.ln_2, h.clone())), h, None)
    }
}

impl HubModule for GPT2Block {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("ln_1"), Part::LayerNorm(&mut self.ln_1));
        self.attn.parts(&path.pp("attn"), f);
        f(&path.pp("attention_adapters").pp("adapters"), Part::Bottlenecks(&mut self.attention_adapters));
        f(&path.pp("ln_2"), Part::LayerNorm(&mut self.ln_2));
        self.mlp.parts(&path.pp("mlp"), f);
        f(&path.pp("output_adapters").pp("adapters"), Part::Bottlenecks(&mut self.output_adapters));
    }
}

/// GPT-2's decoder (transformers' `GPT2Model`): hidden states after `ln_f`.
#[derive(Module, Debug)]
pub struct GPT2Model {
    /// `wte`: token embeddings `[vocab, n_embd]` (also the tied LM head).
    pub wte: Embedding,
    /// `wpe`: position embeddings `[n_positions, n_embd]`.
    pub wpe: Embedding,
    /// Dropout on the summed embeddings (`embd_pdrop`).
    pub drop: Dropout,
    /// `h`: the blocks.
    pub h: Vec<GPT2Block>,
    /// `ln_f`: the final LayerNorm.
    pub ln_f: LayerNorm,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: Gpt2Config,
}

impl GPT2Model {
    /// The decoder's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &Gpt2Config, device: &Device) -> Self {
        let e = c.n_embd;
        let conv1d = |i, o| Projection::new(i, o, WeightLayout::Conv1D, device);
        let h = (0..c.n_layer)
            .map(|i| GPT2Block {
                ln_1: layer_norm(e, c.layer_norm_epsilon, device),
                attn: GPT2Attention {
                    c_attn: conv1d(e, 3 * e),
                    c_proj: conv1d(e, e),
                    attn_dropout: DropoutConfig::new(c.attn_pdrop).init(),
                    resid_dropout: DropoutConfig::new(c.resid_pdrop).init(),
                    n_head: c.n_head,
                    scale: c.attention_scale(i),
                    layer_idx: i,
                },
                ln_2: layer_norm(e, c.layer_norm_epsilon, device),
                mlp: GPT2MLP {
                    c_fc: conv1d(e, c.inner_dim()),
                    c_proj: conv1d(c.inner_dim(), e),
                    dropout: DropoutConfig::new(c.resid_pdrop).init(),
                    act: c.activation_function,
                },
                attention_adapters: BottleneckAdapters::default(),
                output_adapters: BottleneckAdapters::default(),
            })
            .collect();
        Self {
            wte: embedding(c.vocab_size, e, device),
            wpe: embedding(c.n_positions, e, device),
            drop: DropoutConfig::new(c.embd_pdrop).init(),
            h,
            ln_f: layer_norm(e, c.layer_norm_epsilon, device),
            config: c.clone(),
        }
    }

    /// Runs the decoder over `input_ids`, after the positions already in `cache` (if any), and
    /// appends this pass's keys and values to the cache.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`
    /// - `attention_mask`: `[batch, cached + seq]`, 1 = token, 0 = padding; `None` = no padding
    /// - `position_ids`: `[batch, seq]`; `None` = `cached .. cached + seq` for every row. Each must
    ///   be below `n_positions` (the caller's responsibility: `generate` derives them from the
    ///   mask)
    /// - output: `[batch, seq, n_embd]`
    ///
    /// # Errors
    /// [`ModelError::Input`] when `cached + seq` exceeds `n_positions`, or when the mask's shape
    /// does not fit (transformers fails with an index error in the first case).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        position_ids: Option<Tensor<2, Int>>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        self.forward_input(&TextInput::ids(input_ids, attention_mask).with_position_ids(position_ids), cache)
    }

    /// [`forward`](Self::forward) on ids or input embeddings (`inputs_embeds`, e.g. with a soft
    /// prompt prepended). A cache built from outside ([`KvCache::from_layers`], a prefix) counts
    /// as cached positions.
    ///
    /// # Shapes
    /// - `input.tokens`: `[batch, seq]` ids or `[batch, seq, n_embd]` embeddings; the rest as
    ///   [`forward`](Self::forward)
    pub fn forward_input(&self, input: &TextInput, mut cache: Option<&mut KvCache>) -> Result<Tensor<3>> {
        let [b, l] = input.tokens.dims();
        let _span = tracing::trace_span!("gpt2", batch = b, seq = l).entered();
        let past = cache.as_ref().map_or(0, |c| c.len());
        let n_pos = self.config.n_positions;
        if past + l > n_pos {
            return Err(ModelError::Input(format!(
                "{} positions ({past} cached + {l} new) exceed GPT-2's n_positions = {n_pos}: it has no \
                 position embedding beyond that (transformers fails with an index error here)",
                past + l
            )));
        }
        if l == 0 {
            return Err(ModelError::Input("an empty sequence (0 tokens)".into()));
        }
        input.check(self.config.n_embd, self.config.n_head, self.h.len(), cache.as_deref())?;
        if let Some(m) = &input.attention_mask
            && m.dims() != [b, past + l]
        {
            return Err(ModelError::Input(format!(
                "attention mask of shape {:?}, expected [{b}, {}] (cached + new positions)",
                m.dims(),
                past + l
            )));
        }
        let words = match &input.tokens {
            Tokens::Ids(ids) => ft_hub::ops::embedding(&self.wte, ids.clone()),
            Tokens::Embeds(e) => e.clone(),
        };
        let device = words.device();
        let positions = match &input.position_ids {
            Some(p) => p.clone(),
            None => Tensor::<1, Int>::arange(past as i64..(past + l) as i64, &device).reshape([1, l]),
        };
        let x = words + self.wpe.forward(positions);
        let mut x = dropout(&self.drop, x);
        let mask = CausalMask::new(input.attention_mask.as_ref(), b, l, past + l);
        for block in &self.h {
            x = block.forward(x, &mask, cache.as_deref_mut());
        }
        if let Some(c) = cache {
            c.advance(l);
        }
        Ok(ft_hub::ops::layer_norm(&self.ln_f, x))
    }
}

impl HubModule for GPT2Model {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.h.parts(&path.pp("h"), f);
        f(&path.pp("wte"), Part::Embedding(&mut self.wte));
        f(&path.pp("wpe"), Part::Embedding(&mut self.wpe));
        f(&path.pp("ln_f"), Part::LayerNorm(&mut self.ln_f));
    }
}
