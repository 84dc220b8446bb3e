//! BERT's encoder ([`BertModel`]) in Burn.
//!
//! Paper: Devlin et al., *BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding* (2018). Reference implementation: transformers'
//! `models/bert/modeling_bert.py`. Post-LayerNorm blocks; learned absolute positions; segment
//! (token type) embeddings; an optional tanh pooler over the first token.
//!
//! Every struct names its children with the Hub's names in its [`HubModule`] impl
//! (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, ...): loading, saving
//! and adapter matching all read that one list.
//!
//! # Seams for parameter-efficient methods
//! - every linear layer is a [`Projection`] (LoRA deltas attach there);
//! - each sub-layer's output block ([`BertResidualOutput`]) has a bottleneck-adapter slot
//!   around its LayerNorm (`attention.output.adapters`, `output.adapters`);
//! - [`BertModel::forward_input`] takes input embeddings instead of ids (soft prompts) and
//!   past keys/values (a prefix), with an attention mask over prefix and tokens; positions
//!   start after the prefix, as transformers' `past_key_values_length`.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm};
use burn::tensor::{Device, Int, Tensor};
use ft_hub::ops::dropout;
use ft_peft::slot::BottleneckAdapters;

use super::config::BertConfig;
use crate::attention::{PaddingMask, TokenRows, multi_head, on_tokens};
use crate::input::{KvCache, TextInput, Tokens};
use crate::layers::{Activation, Projection, WeightLayout, embedding, layer_norm};
use crate::naming::{HubModule, HubPath, Part};
use crate::{ModelError, Result};

/// Word, position and token-type embeddings, summed, normalised and dropped out.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `word_embeddings` `[vocab, H]`.
    pub word_embeddings: Embedding,
    /// `position_embeddings` `[max_positions, H]`.
    pub position_embeddings: Embedding,
    /// `token_type_embeddings` `[type_vocab, H]`.
    pub token_type_embeddings: Embedding,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout (`hidden_dropout_prob`).
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// # Shapes
    /// - `input_ids`, `token_type_ids`: `[batch, seq]`
    /// - output: `[batch, seq, H]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Option<Tensor<2, Int>>) -> Tensor<3> {
        let input = TextInput::ids(input_ids, None).with_token_type_ids(token_type_ids);
        self.forward_input(&input, 0)
    }

    /// Embeds ids (or takes the given input embeddings), adds positions `past .. past + seq`
    /// (or `input.position_ids`) and token types, normalises and drops out.
    ///
    /// # Shapes
    /// - output: `[batch, seq, H]`
    pub fn forward_input(&self, input: &TextInput, past: usize) -> Tensor<3> {
        let [b, l] = input.tokens.dims();
        let words = match &input.tokens {
            Tokens::Ids(ids) => ft_hub::ops::embedding(&self.word_embeddings, ids.clone()),
            Tokens::Embeds(e) => e.clone(),
        };
        let device = words.device();
        let positions = match &input.position_ids {
            Some(p) => p.clone(),
            None => Tensor::<1, Int>::arange(past as i64..(past + l) as i64, &device).reshape([1, l]),
        };
        let token_type_ids = input.token_type_ids.clone().unwrap_or_else(|| Tensor::zeros([b, l], &device));
        let x = words + self.position_embeddings.forward(positions) + self.token_type_embeddings.forward(token_type_ids);
        dropout(&self.dropout, ft_hub::ops::layer_norm(&self.layer_norm, x))
    }
}

impl HubModule for BertEmbeddings {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("word_embeddings"), Part::Embedding(&mut self.word_embeddings));
        f(&path.pp("position_embeddings"), Part::Embedding(&mut self.position_embeddings));
        f(&path.pp("token_type_embeddings"), Part::Embedding(&mut self.token_type_embeddings));
        f(&path.pp("LayerNorm"), Part::LayerNorm(&mut self.layer_norm));
    }
}

/// The batch's token rows (`TokenRows`) for a block of `projections`, unless one of them has an
/// active adapter: LoRA's dropout draws its mask over the rows it is given, so an adapted
/// projection sees every row, as before, and trains with the same masks.
fn token_rows<'a>(mask: &'a PaddingMask, projections: &[&Projection]) -> Option<&'a TokenRows> {
    mask.rows.as_ref().filter(|_| projections.iter().all(|p| p.adapters.is_inactive()))
}

/// Multi-head self-attention (HF `attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// `query`.
    pub query: Projection,
    /// `key`.
    pub key: Projection,
    /// `value`.
    pub value: Projection,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// Attention over `past` keys/values (a prefix; `None`: none) and the sequence itself.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, H]`; `past`: `[batch, heads, prefix, H / heads]` each
    /// - `mask`: over `prefix + seq` keys; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, past: Option<&(Tensor<4>, Tensor<4>)>) -> Tensor<3> {
        self.forward_queries(x.clone(), x, mask, past)
    }

    /// Attention of the positions in `queries` (e.g. only the first one) over `past` and every
    /// position of `x`.
    ///
    /// # Shapes
    /// - `queries`: `[batch, q, H]`, `x`: `[batch, seq, H]`; output `[batch, q, H]`
    pub fn forward_queries(
        &self,
        queries: Tensor<3>,
        x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        // The projections on the token rows alone when the batch is padded (`TokenRows`).
        let kv_rows = token_rows(mask, &[&self.key, &self.value]);
        let (k, v) = match kv_rows.filter(|r| r.fits(&x)) {
            Some(r) => {
                let tokens = r.gather(x);
                (r.scatter(self.key.forward(tokens.clone())), r.scatter(self.value.forward(tokens)))
            }
            None => (self.key.forward(x.clone()), self.value.forward(x)),
        };
        let q = on_tokens(token_rows(mask, &[&self.query]), queries, |t| self.query.forward(t));
        multi_head(q, k, v, self.num_heads, past, mask, &self.dropout)
    }
}

impl HubModule for BertSelfAttention {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("query"), Part::Projection(&mut self.query));
        f(&path.pp("key"), Part::Projection(&mut self.key));
        f(&path.pp("value"), Part::Projection(&mut self.value));
    }
}

/// Projection, dropout, residual and LayerNorm after a sub-layer (HF `*.output`), with the
/// bottleneck-adapter slot around the LayerNorm.
#[derive(Module, Debug)]
pub struct BertResidualOutput {
    /// `dense`.
    pub dense: Projection,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout (`hidden_dropout_prob`).
    pub dropout: Dropout,
    /// Bottleneck adapters (none: `LayerNorm(h + residual)`).
    pub adapters: BottleneckAdapters,
}

impl BertResidualOutput {
    /// `LayerNorm(dropout(dense(x)) + residual)`, through the active bottleneck adapter if any.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, in]`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.finish(self.dense.forward(x), residual)
    }

    /// [`BertResidualOutput::forward`] after `dense`: `LayerNorm(dropout(h) + residual)`,
    /// through the active bottleneck adapter if any.
    ///
    /// # Shapes
    /// - `h`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn finish(&self, h: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.adapters.forward(dropout(&self.dropout, h), residual, Some(&self.layer_norm))
    }
}

impl HubModule for BertResidualOutput {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("dense"), Part::Projection(&mut self.dense));
        f(&path.pp("LayerNorm"), Part::LayerNorm(&mut self.layer_norm));
        f(&path.pp("adapters"), Part::Bottlenecks(&mut self.adapters));
    }
}

/// Self-attention plus its output block (HF `attention`).
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF `attention.self`.
    pub self_attention: BertSelfAttention,
    /// HF `attention.output`.
    pub output: BertResidualOutput,
}

impl HubModule for BertAttention {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.self_attention.parts(&path.pp("self"), f);
        self.output.parts(&path.pp("output"), f);
    }
}

/// One encoder layer (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// HF `attention`.
    pub attention: BertAttention,
    /// HF `intermediate.dense`.
    pub intermediate: Projection,
    /// HF `output`.
    pub output: BertResidualOutput,
    /// Feed-forward activation.
    #[module(skip)]
    pub activation: Activation,
}

impl BertLayer {
    /// # Shapes
    /// - `x`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, past: Option<&(Tensor<4>, Tensor<4>)>) -> Tensor<3> {
        self.forward_rows(x, mask, past, false)
    }

    /// [`BertLayer::forward`], or with `first_token_only` the output of position 0 alone
    /// (attending over every position): what a sequence classifier reads from the last layer.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, H]`; output `[batch, seq, H]`, or `[batch, 1, H]`
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&(Tensor<4>, Tensor<4>)>,
        first_token_only: bool,
    ) -> Tensor<3> {
        let queries = if first_token_only { x.clone().narrow(1, 0, 1) } else { x.clone() };
        let attended = self.attention.self_attention.forward_queries(queries.clone(), x, mask, past);
        // The projections and the feed-forward block on the token rows alone when the batch is
        // padded (`TokenRows`); dropout, residual and LayerNorm on the padded layout.
        let output = &self.attention.output;
        let x = output.finish(on_tokens(token_rows(mask, &[&output.dense]), attended, |t| output.dense.forward(t)), queries);
        let ffn = |t: Tensor<3>| self.output.dense.forward(self.activation.forward(self.intermediate.forward(t)));
        self.output.finish(on_tokens(token_rows(mask, &[&self.intermediate, &self.output.dense]), x.clone(), ffn), x)
    }
}

impl HubModule for BertLayer {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.attention.parts(&path.pp("attention"), f);
        f(&path.pp("intermediate").pp("dense"), Part::Projection(&mut self.intermediate));
        self.output.parts(&path.pp("output"), f);
    }
}

/// The tanh pooler over the first token (HF `pooler.dense`).
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `dense` `[H, H]`.
    pub dense: Projection,
}

impl BertPooler {
    /// # Shapes
    /// - `hidden`: `[batch, seq, H]`; output `[batch, H]`
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, _, h] = hidden.dims();
        let first = hidden.narrow(1, 0, 1).reshape([b, h]);
        self.dense.forward(first).tanh()
    }
}

impl HubModule for BertPooler {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("dense"), Part::Projection(&mut self.dense));
    }
}

/// The output of [`BertModel::forward`].
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `[batch, seq, H]`; `[batch, 1, H]` when only the first token's last layer was computed
    /// ([`TextInput::first_token_only`], [`BertModel::forward_first_token`]).
    pub last_hidden_state: Tensor<3>,
    /// `[batch, H]`, when the model has a pooler.
    pub pooler_output: Option<Tensor<2>>,
}

/// BERT's encoder (transformers' `BertModel`).
#[derive(Module, Debug)]
pub struct BertModel {
    /// HF `embeddings`.
    pub embeddings: BertEmbeddings,
    /// HF `encoder.layer`.
    pub layers: Vec<BertLayer>,
    /// HF `pooler`; absent in token-classification models (`add_pooling_layer=False`).
    pub pooler: Option<BertPooler>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: BertConfig,
}

impl BertModel {
    /// The encoder's skeleton: every layer lazily initialised (nothing is drawn until loading
    /// replaces the tensors; see [`crate::weights::load_parts`]).
    pub fn new(c: &BertConfig, with_pooler: bool, device: &Device) -> Self {
        let h = c.hidden_size;
        let proj = |i, o| Projection::new(i, o, WeightLayout::Linear, device);
        let residual = |d_in| BertResidualOutput {
            dense: proj(d_in, h),
            layer_norm: layer_norm(h, c.layer_norm_eps, device),
            dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
            adapters: BottleneckAdapters::default(),
        };
        let layers = (0..c.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: proj(h, h),
                        key: proj(h, h),
                        value: proj(h, h),
                        dropout: DropoutConfig::new(c.attention_probs_dropout_prob).init(),
                        num_heads: c.num_attention_heads,
                    },
                    output: residual(h),
                },
                intermediate: proj(h, c.intermediate_size),
                output: residual(c.intermediate_size),
                activation: c.hidden_act,
            })
            .collect();
        Self {
            embeddings: BertEmbeddings {
                word_embeddings: embedding(c.vocab_size, h, device),
                position_embeddings: embedding(c.max_position_embeddings, h, device),
                token_type_embeddings: embedding(c.type_vocab_size, h, device),
                layer_norm: layer_norm(h, c.layer_norm_eps, device),
                dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
            },
            layers,
            pooler: with_pooler.then(|| BertPooler { dense: proj(h, h) }),
            config: c.clone(),
        }
    }

    /// Runs the encoder.
    ///
    /// # Shapes
    /// - `input_ids`, `attention_mask` (1 = token, 0 = padding), `token_type_ids`: `[batch, seq]`
    /// - `last_hidden_state`: `[batch, seq, H]`; `pooler_output`: `[batch, H]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> BertOutput {
        let _span = tracing::trace_span!("bert", dims = ?input_ids.dims()).entered();
        let mask = PaddingMask::with_token_rows(&attention_mask);
        self.encode(self.embeddings.forward(input_ids, token_type_ids), &mask, None, false)
    }

    /// [`BertModel::forward`] with the last layer computed for the first token only
    /// ([`TextInput::first_token_only`]): what the pooler and sequence classifiers read.
    ///
    /// # Shapes
    /// - inputs: `[batch, seq]`; `last_hidden_state`: `[batch, 1, H]`; `pooler_output`: `[batch, H]`
    pub fn forward_first_token(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> BertOutput {
        let _span = tracing::trace_span!("bert", dims = ?input_ids.dims()).entered();
        let mask = PaddingMask::with_token_rows(&attention_mask);
        self.encode(self.embeddings.forward(input_ids, token_type_ids), &mask, None, true)
    }

    /// The layers and the pooler over embedded inputs `x` (`[batch, seq, H]`).
    fn encode(
        &self,
        mut x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&KvCache>,
        first_token_only: bool,
    ) -> BertOutput {
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_rows(x, mask, past.and_then(|c| c.layer(i)), first_token_only && i == last);
        }
        let pooler_output = self.pooler.as_ref().map(|p| p.forward(x.clone()));
        BertOutput { last_hidden_state: x, pooler_output }
    }

    /// Runs the encoder on ids or input embeddings, after the keys/values of `past` (a prefix
    /// of every layer, e.g. prefix tuning's virtual tokens), which it reads and does not extend.
    ///
    /// # Shapes
    /// - `input.attention_mask`: `[batch, prefix + seq]` (`None`: all tokens)
    /// - `past`: per layer `[batch, heads, prefix, H / heads]`
    /// - `last_hidden_state`: `[batch, seq, H]` (`[batch, 1, H]` with `input.first_token_only`);
    ///   `pooler_output`: `[batch, H]`
    ///
    /// # Errors
    /// [`ModelError::Input`] when the mask or the prefix does not fit, or positions run past
    /// `max_position_embeddings`.
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<BertOutput> {
        let [b, l] = input.tokens.dims();
        let _span = tracing::trace_span!("bert", batch = b, seq = l).entered();
        let prefix = past.map_or(0, KvCache::len);
        input.check(self.config.hidden_size, self.config.num_attention_heads, self.layers.len(), past)?;
        if input.position_ids.is_none() && prefix + l > self.config.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "{} positions ({prefix} prefix + {l} tokens) exceed max_position_embeddings = {}",
                prefix + l,
                self.config.max_position_embeddings
            )));
        }
        let device = match &input.tokens {
            Tokens::Ids(t) => t.device(),
            Tokens::Embeds(t) => t.device(),
        };
        let attention_mask = match &input.attention_mask {
            Some(m) if m.dims() != [b, prefix + l] => {
                return Err(ModelError::Input(format!(
                    "attention mask of shape {:?}, expected [{b}, {}] (prefix + tokens)",
                    m.dims(),
                    prefix + l
                )));
            }
            Some(m) => m.clone(),
            None => Tensor::ones([b, prefix + l], &device),
        };
        let mask = PaddingMask::with_token_rows(&attention_mask);
        Ok(self.encode(self.embeddings.forward_input(input, prefix), &mask, past, input.first_token_only))
    }
}

impl HubModule for BertModel {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.embeddings.parts(&path.pp("embeddings"), f);
        self.layers.parts(&path.pp("encoder").pp("layer"), f);
        self.pooler.parts(&path.pp("pooler"), f);
    }
}
