//! DistilBERT's encoder ([`DistilBertModel`]) in Burn.
//!
//! Paper: Sanh et al., *DistilBERT, a distilled version of BERT: smaller, faster, cheaper and
//! lighter* (2019). Reference implementation: transformers'
//! `models/distilbert/modeling_distilbert.py`. Like BERT without token types and pooler; each
//! block is `LN(x + Attn(x))` then `LN(h + FFN(h))`; positions are learned or the fixed
//! sinusoidal table.

use burn::module::Module;
use burn::nn::{Dropout, Embedding, LayerNorm, Linear};
use burn::tensor::{Int, Tensor};

use super::config::DistilBertConfig;
use crate::attention::{PaddingMask, merge_heads, scaled_dot_product, split_heads};
use crate::layers::Activation;

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
        let [_, l] = input_ids.dims();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &input_ids.device()).reshape([1, l]);
        let x = self.word_embeddings.forward(input_ids) + self.position_embeddings.forward(positions);
        crate::dropout::dropout(&self.dropout, self.layer_norm.forward(x))
    }
}

/// Multi-head self-attention with its output projection (HF `attention`).
#[derive(Module, Debug)]
pub struct DistilBertAttention {
    /// `q_lin`.
    pub q_lin: Linear,
    /// `k_lin`.
    pub k_lin: Linear,
    /// `v_lin`.
    pub v_lin: Linear,
    /// `out_lin`.
    pub out_lin: Linear,
    /// Dropout on attention probabilities (`attention_dropout`).
    pub dropout: Dropout,
    /// Number of heads.
    pub n_heads: usize,
}

impl DistilBertAttention {
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask) -> Tensor<3> {
        let q = split_heads(self.q_lin.forward(x.clone()), self.n_heads);
        let k = split_heads(self.k_lin.forward(x.clone()), self.n_heads);
        let v = split_heads(self.v_lin.forward(x), self.n_heads);
        self.out_lin.forward(merge_heads(scaled_dot_product(q, k, v, mask, &self.dropout)))
    }
}

/// The feed-forward block (HF `ffn`): `dropout(lin2(act(lin1(x))))`.
#[derive(Module, Debug)]
pub struct DistilBertFfn {
    /// `lin1` `[dim, hidden_dim]`.
    pub lin1: Linear,
    /// `lin2` `[hidden_dim, dim]`.
    pub lin2: Linear,
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
        crate::dropout::dropout(&self.dropout, self.lin2.forward(self.activation.forward(self.lin1.forward(x))))
    }
}

/// One transformer block (HF `transformer.layer.N`).
#[derive(Module, Debug)]
pub struct DistilBertLayer {
    /// HF `attention`.
    pub attention: DistilBertAttention,
    /// HF `sa_layer_norm`.
    pub sa_layer_norm: LayerNorm,
    /// HF `ffn`.
    pub ffn: DistilBertFfn,
    /// HF `output_layer_norm`.
    pub output_layer_norm: LayerNorm,
}

impl DistilBertLayer {
    /// # Shapes
    /// - `x`: `[batch, seq, dim]`; output `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask) -> Tensor<3> {
        let h = self.sa_layer_norm.forward(self.attention.forward(x.clone(), mask) + x);
        self.output_layer_norm.forward(self.ffn.forward(h.clone()) + h)
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
    /// Runs the encoder and returns `last_hidden_state`.
    ///
    /// # Shapes
    /// - `input_ids`, `attention_mask` (1 = token, 0 = padding): `[batch, seq]`
    /// - output: `[batch, seq, dim]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let _span = tracing::trace_span!("distilbert", dims = ?input_ids.dims()).entered();
        let mask = PaddingMask::new(&attention_mask);
        let mut x = self.embeddings.forward(input_ids);
        for layer in &self.layers {
            x = layer.forward(x, &mask);
        }
        x
    }
}
