//! Building BERT modules from a Hugging Face checkpoint.
//!
//! | Hub tensor (under `bert.` or no prefix) | ft field |
//! |---|---|
//! | `embeddings.{word,position,token_type}_embeddings.weight` | `embeddings.*_embeddings.weight` |
//! | `embeddings.LayerNorm.{weight,bias}` (or `gamma`/`beta`) | `embeddings.layer_norm.{gamma,beta}` |
//! | `encoder.layer.N.attention.self.{query,key,value}.{weight,bias}` | `layers[N].attention.self_attention.*` (weight transposed) |
//! | `encoder.layer.N.attention.output.dense.*` / `.LayerNorm.*` | `layers[N].attention.output.dense` / `.layer_norm` |
//! | `encoder.layer.N.intermediate.dense.*` | `layers[N].intermediate` |
//! | `encoder.layer.N.output.dense.*` / `.LayerNorm.*` | `layers[N].output.dense` / `.layer_norm` |
//! | `pooler.dense.*` | `pooler.dense` |
//! | `classifier.*` (task heads, no prefix) | `classifier` |
//!
//! Linear weights are stored `[out, in]` by PyTorch and transposed to Burn's `[in, out]` once,
//! at load.

use burn::nn::DropoutConfig;

use super::config::BertConfig;
use super::heads::{BertForSequenceClassification, BertForTokenClassification};
use super::model::{
    BertAttention, BertEmbeddings, BertLayer, BertModel, BertPooler, BertResidualOutput, BertSelfAttention,
};
use crate::Result;
use crate::layers::{embedding, layer_norm, linear};
use crate::weights::Checkpoint;

/// The tensor every BERT checkpoint has, used to find the base-model prefix.
const PROBE: &str = "embeddings.word_embeddings.weight";

fn residual_output(ck: &mut Checkpoint, name: &str, d_in: usize, c: &BertConfig) -> Result<BertResidualOutput> {
    Ok(BertResidualOutput {
        dense: linear(ck, &format!("{name}.dense"), d_in, c.hidden_size)?,
        layer_norm: layer_norm(ck, &format!("{name}.LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
        dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
    })
}

impl BertModel {
    /// Loads the encoder from `ck`, whose base-model tensors may or may not carry the `bert.`
    /// prefix.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig, with_pooler: bool) -> Result<Self> {
        ck.set_init_std(c.initializer_range);
        let p = ck.base_prefix("bert", PROBE);
        let h = c.hidden_size;
        let embeddings = BertEmbeddings {
            word_embeddings: embedding(ck, &format!("{p}embeddings.word_embeddings"), c.vocab_size, h)?,
            position_embeddings: embedding(
                ck,
                &format!("{p}embeddings.position_embeddings"),
                c.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: embedding(
                ck,
                &format!("{p}embeddings.token_type_embeddings"),
                c.type_vocab_size,
                h,
            )?,
            layer_norm: layer_norm(ck, &format!("{p}embeddings.LayerNorm"), h, c.layer_norm_eps)?,
            dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = format!("{p}encoder.layer.{i}");
            layers.push(BertLayer {
                attention: BertAttention {
                    self_attention: BertSelfAttention {
                        query: linear(ck, &format!("{l}.attention.self.query"), h, h)?,
                        key: linear(ck, &format!("{l}.attention.self.key"), h, h)?,
                        value: linear(ck, &format!("{l}.attention.self.value"), h, h)?,
                        dropout: DropoutConfig::new(c.attention_probs_dropout_prob).init(),
                        num_heads: c.num_attention_heads,
                    },
                    output: residual_output(ck, &format!("{l}.attention.output"), h, c)?,
                },
                intermediate: linear(ck, &format!("{l}.intermediate.dense"), h, c.intermediate_size)?,
                output: residual_output(ck, &format!("{l}.output"), c.intermediate_size, c)?,
                activation: c.hidden_act,
            });
        }
        let pooler =
            if with_pooler { Some(BertPooler { dense: linear(ck, &format!("{p}pooler.dense"), h, h)? }) } else { None };
        Ok(Self { embeddings, layers, pooler, config: c.clone() })
    }
}

impl BertForSequenceClassification {
    /// Loads the model; a classifier missing from the checkpoint, or stored with another
    /// `num_labels`, is newly initialised (and reported).
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig) -> Result<Self> {
        let bert = BertModel::from_checkpoint(ck, c, true)?;
        ck.allow_reinit("classifier.weight");
        ck.allow_reinit("classifier.bias");
        Ok(Self {
            bert,
            dropout: DropoutConfig::new(c.classifier_dropout()).init(),
            classifier: linear(ck, "classifier", c.hidden_size, c.labels.num_labels())?,
        })
    }
}

impl BertForTokenClassification {
    /// Loads the model (no pooler); the classifier as for sequence classification.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig) -> Result<Self> {
        let bert = BertModel::from_checkpoint(ck, c, false)?;
        ck.allow_reinit("classifier.weight");
        ck.allow_reinit("classifier.bias");
        Ok(Self {
            bert,
            dropout: DropoutConfig::new(c.classifier_dropout()).init(),
            classifier: linear(ck, "classifier", c.hidden_size, c.labels.num_labels())?,
        })
    }
}
