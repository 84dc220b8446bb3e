//! Building DistilBERT modules from a Hugging Face checkpoint.
//!
//! | Hub tensor (under `distilbert.` or no prefix) | ft field |
//! |---|---|
//! | `embeddings.{word,position}_embeddings.weight` | `embeddings.*_embeddings.weight` |
//! | `embeddings.LayerNorm.{weight,bias}` | `embeddings.layer_norm.{gamma,beta}` |
//! | `transformer.layer.N.attention.{q,k,v,out}_lin.*` | `layers[N].attention.*_lin` (weight transposed) |
//! | `transformer.layer.N.sa_layer_norm.*` | `layers[N].sa_layer_norm` |
//! | `transformer.layer.N.ffn.{lin1,lin2}.*` | `layers[N].ffn.{lin1,lin2}` |
//! | `transformer.layer.N.output_layer_norm.*` | `layers[N].output_layer_norm` |
//! | `pre_classifier.*`, `classifier.*` (task heads, no prefix) | `pre_classifier`, `classifier` |

use burn::module::Param;
use burn::nn::DropoutConfig;
use burn::tensor::{Tensor, TensorData};

use super::config::{DISTILBERT_LAYER_NORM_EPS, DistilBertConfig};
use super::heads::{DistilBertForSequenceClassification, DistilBertForTokenClassification};
use super::model::{DistilBertAttention, DistilBertEmbeddings, DistilBertFfn, DistilBertLayer, DistilBertModel};
use crate::Result;
use crate::layers::{embedding, layer_norm, linear};
use crate::weights::Checkpoint;

const PROBE: &str = "embeddings.word_embeddings.weight";

/// transformers' `create_sinusoidal_embeddings`: `sin` on even, `cos` on odd dimensions of
/// `pos / 10000^(2·(j/2)/dim)`.
pub fn sinusoidal_table(n_pos: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf(2.0 * (j / 2) as f64 / dim as f64);
            out[pos * dim + j] = if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    out
}

impl DistilBertModel {
    /// Loads the encoder from `ck`, whose tensors may or may not carry the `distilbert.` prefix.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        ck.set_init_std(c.initializer_range);
        let p = ck.base_prefix("distilbert", PROBE);
        let d = c.dim;
        let eps = DISTILBERT_LAYER_NORM_EPS;
        let pos_name = format!("{p}embeddings.position_embeddings");
        let missing_sinusoidal = c.sinusoidal_pos_embds && !ck.contains(&format!("{pos_name}.weight"));
        let mut position_embeddings = embedding(ck, &pos_name, c.max_position_embeddings, d)?;
        if missing_sinusoidal {
            let table = sinusoidal_table(c.max_position_embeddings, d);
            position_embeddings.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(table, [c.max_position_embeddings, d]),
                ck.device(),
            ));
        }
        let embeddings = DistilBertEmbeddings {
            word_embeddings: embedding(ck, &format!("{p}embeddings.word_embeddings"), c.vocab_size, d)?,
            position_embeddings,
            layer_norm: layer_norm(ck, &format!("{p}embeddings.LayerNorm"), d, eps)?,
            dropout: DropoutConfig::new(c.dropout).init(),
        };
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let l = format!("{p}transformer.layer.{i}");
            layers.push(DistilBertLayer {
                attention: DistilBertAttention {
                    q_lin: linear(ck, &format!("{l}.attention.q_lin"), d, d)?,
                    k_lin: linear(ck, &format!("{l}.attention.k_lin"), d, d)?,
                    v_lin: linear(ck, &format!("{l}.attention.v_lin"), d, d)?,
                    out_lin: linear(ck, &format!("{l}.attention.out_lin"), d, d)?,
                    dropout: DropoutConfig::new(c.attention_dropout).init(),
                    n_heads: c.n_heads,
                },
                sa_layer_norm: layer_norm(ck, &format!("{l}.sa_layer_norm"), d, eps)?,
                ffn: DistilBertFfn {
                    lin1: linear(ck, &format!("{l}.ffn.lin1"), d, c.hidden_dim)?,
                    lin2: linear(ck, &format!("{l}.ffn.lin2"), c.hidden_dim, d)?,
                    dropout: DropoutConfig::new(c.dropout).init(),
                    activation: c.activation,
                },
                output_layer_norm: layer_norm(ck, &format!("{l}.output_layer_norm"), d, eps)?,
            });
        }
        Ok(Self { embeddings, layers, config: c.clone() })
    }
}

impl DistilBertForSequenceClassification {
    /// Loads the model; `pre_classifier`/`classifier` missing from the checkpoint are newly
    /// initialised, a `classifier` stored with another `num_labels` is re-initialised.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        let distilbert = DistilBertModel::from_checkpoint(ck, c)?;
        ck.allow_reinit("classifier.weight");
        ck.allow_reinit("classifier.bias");
        Ok(Self {
            distilbert,
            pre_classifier: linear(ck, "pre_classifier", c.dim, c.dim)?,
            dropout: DropoutConfig::new(c.seq_classif_dropout).init(),
            classifier: linear(ck, "classifier", c.dim, c.labels.num_labels())?,
        })
    }
}

impl DistilBertForTokenClassification {
    /// Loads the model; the classifier as for sequence classification.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        let distilbert = DistilBertModel::from_checkpoint(ck, c)?;
        ck.allow_reinit("classifier.weight");
        ck.allow_reinit("classifier.bias");
        Ok(Self {
            distilbert,
            dropout: DropoutConfig::new(c.dropout).init(),
            classifier: linear(ck, "classifier", c.dim, c.labels.num_labels())?,
        })
    }
}
