//! BERT's encoder ([`BertModel`]) in Burn.
//!
//! Paper: Devlin et al., *BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding* (2018). Reference implementation: transformers'
//! `models/bert/modeling_bert.py`. Post-LayerNorm blocks; learned absolute positions; segment
//! (token type) embeddings; an optional tanh pooler over the first token.
//!
//! Field names follow the Hub's tensor names (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, ...); where Rust needs another name the mapping is
//! in [`super::load`].

use burn::module::Module;
use burn::nn::{Dropout, Embedding, LayerNorm, Linear};
use burn::tensor::{Int, Tensor};

use super::config::BertConfig;
use crate::attention::{PaddingMask, merge_heads, scaled_dot_product, split_heads};
use crate::layers::Activation;

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
        let [b, l] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device).reshape([1, l]);
        let token_type_ids = token_type_ids.unwrap_or_else(|| Tensor::zeros([b, l], &device));
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(positions)
            + self.token_type_embeddings.forward(token_type_ids);
        crate::dropout::dropout(&self.dropout, self.layer_norm.forward(x))
    }
}

/// Multi-head self-attention (HF `attention.self`).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// `query`.
    pub query: Linear,
    /// `key`.
    pub key: Linear,
    /// `value`.
    pub value: Linear,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Number of heads.
    pub num_heads: usize,
}

impl BertSelfAttention {
    /// # Shapes
    /// - `x`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask) -> Tensor<3> {
        let q = split_heads(self.query.forward(x.clone()), self.num_heads);
        let k = split_heads(self.key.forward(x.clone()), self.num_heads);
        let v = split_heads(self.value.forward(x), self.num_heads);
        merge_heads(scaled_dot_product(q, k, v, mask, &self.dropout))
    }
}

/// Projection, dropout, residual and LayerNorm after a sub-layer (HF `*.output`).
#[derive(Module, Debug)]
pub struct BertResidualOutput {
    /// `dense`.
    pub dense: Linear,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm,
    /// Dropout (`hidden_dropout_prob`).
    pub dropout: Dropout,
}

impl BertResidualOutput {
    /// `LayerNorm(dropout(dense(x)) + residual)`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, in]`, `residual`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(crate::dropout::dropout(&self.dropout, self.dense.forward(x)) + residual)
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

/// One encoder layer (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertLayer {
    /// HF `attention`.
    pub attention: BertAttention,
    /// HF `intermediate.dense`.
    pub intermediate: Linear,
    /// HF `output`.
    pub output: BertResidualOutput,
    /// Feed-forward activation.
    #[module(skip)]
    pub activation: Activation,
}

impl BertLayer {
    /// # Shapes
    /// - `x`: `[batch, seq, H]`; output `[batch, seq, H]`
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask) -> Tensor<3> {
        let attended = self.attention.self_attention.forward(x.clone(), mask);
        let x = self.attention.output.forward(attended, x);
        let inner = self.activation.forward(self.intermediate.forward(x.clone()));
        self.output.forward(inner, x)
    }
}

/// The tanh pooler over the first token (HF `pooler.dense`).
#[derive(Module, Debug)]
pub struct BertPooler {
    /// `dense` `[H, H]`.
    pub dense: Linear,
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

/// The output of [`BertModel::forward`].
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// `[batch, seq, H]`.
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
        let mask = PaddingMask::new(&attention_mask);
        let mut x = self.embeddings.forward(input_ids, token_type_ids);
        for layer in &self.layers {
            x = layer.forward(x, &mask);
        }
        let pooler_output = self.pooler.as_ref().map(|p| p.forward(x.clone()));
        BertOutput { last_hidden_state: x, pooler_output }
    }
}
