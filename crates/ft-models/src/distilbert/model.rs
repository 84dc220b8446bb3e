//! DistilBERT's encoder ([`DistilBertModel`]) in Burn.
//!
//! Paper: Sanh et al., *DistilBERT, a distilled version of BERT: smaller, faster, cheaper and
//! lighter* (2019). Reference implementation: transformers'
//! `models/distilbert/modeling_distilbert.py`. Like BERT without token types and pooler; each
//! block is `LN(x + Attn(x))` then `LN(h + FFN(h))`; positions are learned or the fixed
//! sinusoidal table.
//!
//! Hub names: each struct's [`HubModule`] impl. Seams: every linear layer is a [`Projection`];
//! each block has a bottleneck-adapter slot after attention (`attention_adapters`) and after
//! the feed-forward block (`output_adapters`), around `sa_layer_norm` / `output_layer_norm` as
//! the `adapters` library places them; [`DistilBertModel::forward_input`] takes input
//! embeddings and a prefix of past keys/values.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding, LayerNorm};
use burn::tensor::{Device, Int, Tensor};
use ft_hub::ops::dropout;
use ft_peft::slot::BottleneckAdapters;

use super::config::{DISTILBERT_LAYER_NORM_EPS, DistilBertConfig};
use crate::attention::{PaddingMask, multi_head};
use crate::input::{KvCache, TextInput, Tokens};
use crate::layers::{Activation, Projection, WeightLayout, embedding, layer_norm};
use crate::naming::{HubModule, HubPath, Part};
use crate::{ModelError, Result};

/// Word and position embeddings, summed, normalised and dropped out.
#[derive(Module, Debug)]
pub struct DistilBertEmbeddings {
    /// `word_embeddings` `[vocab, dim]`.
    pub word_embeddings: Embedding,
    /// `position_embeddings` `[max_positions, dim]`.
    pub position_embeddings: Embedding,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout (`dropout`).
    pub dropout: Dropout,
}

impl DistilBertEmbeddings {
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`; output `[batch, seq, dim]`
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        self.forward_input(&TextInput::ids(input_ids, None), 0)
    }

    /// Embeds ids (or takes the given input embeddings) and adds positions `past .. past + seq`
    /// (or `input.position_ids`).
    ///
    /// # Shapes
    /// - output `[batch, seq, dim]`
    pub fn forward_input(&self, input: &TextInput, past: usize) -> Tensor<3> {
        let [_, l] = input.tokens.dims();
        let words = match &input.tokens {
            Tokens::Ids(ids) => ft_hub::ops::embedding(&self.word_embeddings, ids.clone()),
            Tokens::Embeds(e) => e.clone(),
        };
        let positions = match &input.position_ids {
            Some(p) => p.clone(),
            None => Tensor::<1, Int>::arange(past as i64..(past + l) as i64, &words.device()).reshape([1, l]),
        };
        let x = words + self.position_embeddings.forward(positions);
        dropout(&self.dropout, ft_hub::ops::layer_norm(&self.layer_norm, x))
    }
}

impl HubModule for DistilBertEmbeddings {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("word_embeddings"), Part::Embedding(&mut self.word_embeddings));
        f(&path.pp("position_embeddings"), Part::Embedding(&mut self.position_embeddings));
        f(&path.pp("LayerNorm"), Part::LayerNorm(&mut self.layer_norm));
    }
}

/// Multi-head self-attention with its output projection (HF `attention`).
#[derive(Module, Debug)]
pub struct DistilBertAttention {
    /// `q_lin`.
    pub q_lin: Projection,
    /// `k_lin`.
    pub k_lin: Projection,
    /// `v_lin`.
    pub v_lin: Projection,
    /// `out_lin`.
    pub out_lin: Projection,
    /// Dropout on attention probabilities (`attention_dropout`).
    pub dropout: Dropout,
    /// Number of heads.
    pub n_heads: usize,
}

impl DistilBertAttention {
    /// Attention over `past` keys/values (a prefix) and the sequence itself.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, past: Option<&(Tensor<4>, Tensor<4>)>) -> Tensor<3> {
        self.forward_queries(x.clone(), x, mask, past)
    }

    /// Attention of the positions in `queries` (e.g. only the first one) over `past` and every
    /// position of `x`.
    ///
    /// # Shapes
    /// - `queries`: `[batch, q, dim]`, `x`: `[batch, seq, dim]`; output `[batch, q, dim]`
    pub fn forward_queries(
        &self,
        queries: Tensor<3>,
        x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let (q, k, v) = (self.q_lin.forward(queries), self.k_lin.forward(x.clone()), self.v_lin.forward(x));
        self.out_lin.forward(multi_head(q, k, v, self.n_heads, past, mask, &self.dropout))
    }
}

impl HubModule for DistilBertAttention {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("q_lin"), Part::Projection(&mut self.q_lin));
        f(&path.pp("k_lin"), Part::Projection(&mut self.k_lin));
        f(&path.pp("v_lin"), Part::Projection(&mut self.v_lin));
        f(&path.pp("out_lin"), Part::Projection(&mut self.out_lin));
    }
}

/// The feed-forward block (HF `ffn`): `dropout(lin2(act(lin1(x))))`.
#[derive(Module, Debug)]
pub struct DistilBertFfn {
    /// `lin1` `[dim, hidden_dim]`.
    pub lin1: Projection,
    /// `lin2` `[hidden_dim, dim]`.
    pub lin2: Projection,
    /// Dropout (`dropout`).
    pub dropout: Dropout,
    /// Activation.
    #[module(skip)]
    pub activation: Activation,
}

impl DistilBertFfn {
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dropout(&self.dropout, self.lin2.forward(self.activation.forward(self.lin1.forward(x))))
    }
}

impl HubModule for DistilBertFfn {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("lin1"), Part::Projection(&mut self.lin1));
        f(&path.pp("lin2"), Part::Projection(&mut self.lin2));
    }
}

/// One transformer block (HF `transformer.layer.N`).
#[derive(Module, Debug)]
pub struct DistilBertLayer {
    /// HF `attention`.
    pub attention: DistilBertAttention,
    /// HF `sa_layer_norm`.
    pub sa_layer_norm: LayerNorm,
    /// Bottleneck adapters after attention (the `adapters` library's `attention_adapters`).
    pub attention_adapters: BottleneckAdapters,
    /// HF `ffn`.
    pub ffn: DistilBertFfn,
    /// HF `output_layer_norm`.
    pub output_layer_norm: LayerNorm,
    /// Bottleneck adapters after the feed-forward block (`output_adapters`).
    pub output_adapters: BottleneckAdapters,
}

impl DistilBertLayer {
    /// `h = LN(attn(x) + x)`, then `LN(ffn(h) + h)`, each through its bottleneck slot.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, past: Option<&(Tensor<4>, Tensor<4>)>) -> Tensor<3> {
        self.forward_rows(x, mask, past, false)
    }

    /// [`DistilBertLayer::forward`], or with `first_token_only` the output of position 0 alone
    /// (attending over every position): what a sequence classifier reads from the last layer.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`, or `[batch, 1, dim]`
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&(Tensor<4>, Tensor<4>)>,
        first_token_only: bool,
    ) -> Tensor<3> {
        let queries = if first_token_only { x.clone().narrow(1, 0, 1) } else { x.clone() };
        let attended = self.attention.forward_queries(queries.clone(), x, mask, past);
        let h = self.attention_adapters.forward(attended, queries, Some(&self.sa_layer_norm));
        self.output_adapters.forward(self.ffn.forward(h.clone()), h, Some(&self.output_layer_norm))
    }
}

impl HubModule for DistilBertLayer {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.attention.parts(&path.pp("attention"), f);
        f(&path.pp("sa_layer_norm"), Part::LayerNorm(&mut self.sa_layer_norm));
        f(&path.pp("attention_adapters").pp("adapters"), Part::Bottlenecks(&mut self.attention_adapters));
        self.ffn.parts(&path.pp("ffn"), f);
        f(&path.pp("output_layer_norm"), Part::LayerNorm(&mut self.output_layer_norm));
        f(&path.pp("output_adapters").pp("adapters"), Part::Bottlenecks(&mut self.output_adapters));
    }
}

/// DistilBERT's encoder (transformers' `DistilBertModel`).
#[derive(Module, Debug)]
pub struct DistilBertModel {
    /// HF `embeddings`.
    pub embeddings: DistilBertEmbeddings,
    /// HF `transformer.layer`.
    pub layers: Vec<DistilBertLayer>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: DistilBertConfig,
}

impl DistilBertModel {
    /// The encoder's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &DistilBertConfig, device: &Device) -> Self {
        let d = c.dim;
        let eps = DISTILBERT_LAYER_NORM_EPS;
        let proj = |i, o| Projection::new(i, o, WeightLayout::Linear, device);
        let layers = (0..c.n_layers)
            .map(|_| DistilBertLayer {
                attention: DistilBertAttention {
                    q_lin: proj(d, d),
                    k_lin: proj(d, d),
                    v_lin: proj(d, d),
                    out_lin: proj(d, d),
                    dropout: DropoutConfig::new(c.attention_dropout).init(),
                    n_heads: c.n_heads,
                },
                sa_layer_norm: layer_norm(d, eps, device),
                attention_adapters: BottleneckAdapters::default(),
                ffn: DistilBertFfn {
                    lin1: proj(d, c.hidden_dim),
                    lin2: proj(c.hidden_dim, d),
                    dropout: DropoutConfig::new(c.dropout).init(),
                    activation: c.activation,
                },
                output_layer_norm: layer_norm(d, eps, device),
                output_adapters: BottleneckAdapters::default(),
            })
            .collect();
        Self {
            embeddings: DistilBertEmbeddings {
                word_embeddings: embedding(c.vocab_size, d, device),
                position_embeddings: embedding(c.max_position_embeddings, d, device),
                layer_norm: layer_norm(d, eps, device),
                dropout: DropoutConfig::new(c.dropout).init(),
            },
            layers,
            config: c.clone(),
        }
    }

    /// Runs the encoder and returns `last_hidden_state`.
    ///
    /// # Shapes
    /// - `input_ids`, `attention_mask` (1 = token, 0 = padding): `[batch, seq]`
    /// - output: `[batch, seq, dim]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let _span = tracing::trace_span!("distilbert", dims = ?input_ids.dims()).entered();
        let mask = PaddingMask::new(&attention_mask);
        self.encode(self.embeddings.forward(input_ids), &mask, None, false)
    }

    /// [`DistilBertModel::forward`] with the last layer computed for the first token only
    /// ([`TextInput::first_token_only`]): what sequence classifiers read.
    ///
    /// # Shapes
    /// - inputs: `[batch, seq]`; output `[batch, 1, dim]`
    pub fn forward_first_token(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let _span = tracing::trace_span!("distilbert", dims = ?input_ids.dims()).entered();
        let mask = PaddingMask::new(&attention_mask);
        self.encode(self.embeddings.forward(input_ids), &mask, None, true)
    }

    /// The layers over embedded inputs `x` (`[batch, seq, dim]`).
    fn encode(
        &self,
        mut x: Tensor<3>,
        mask: &PaddingMask,
        past: Option<&KvCache>,
        first_token_only: bool,
    ) -> Tensor<3> {
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_rows(x, mask, past.and_then(|c| c.layer(i)), first_token_only && i == last);
        }
        x
    }

    /// Runs the encoder on ids or input embeddings after the keys/values of `past` (a prefix it
    /// reads and does not extend); positions start after the prefix.
    ///
    /// # Shapes
    /// - `input.attention_mask`: `[batch, prefix + seq]` (`None`: all tokens); output
    ///   `[batch, seq, dim]` (`[batch, 1, dim]` with `input.first_token_only`)
    ///
    /// # Errors
    /// [`ModelError::Input`] when the mask or the prefix does not fit, or positions run past
    /// `max_position_embeddings`.
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<3>> {
        let [b, l] = input.tokens.dims();
        let prefix = past.map_or(0, KvCache::len);
        input.check(self.config.dim, self.config.n_heads, self.layers.len(), past)?;
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
        let mask = PaddingMask::new(&attention_mask);
        Ok(self.encode(self.embeddings.forward_input(input, prefix), &mask, past, input.first_token_only))
    }
}

impl HubModule for DistilBertModel {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.embeddings.parts(&path.pp("embeddings"), f);
        self.layers.parts(&path.pp("transformer").pp("layer"), f);
    }
}
