//! Building DistilBERT modules from a Hugging Face checkpoint.
//!
//! The Hub names are the models' own ([`crate::naming::HubModule`] in `model.rs` and
//! `heads.rs`); a checkpoint saved from the bare `DistilBertModel` loads into a task model
//! (`distilbert.…`). A missing position table of a `sinusoidal_pos_embds` model is filled with
//! transformers' fixed sinusoidal table.

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};

use super::config::DistilBertConfig;
use super::heads::{DistilBertForSequenceClassification, DistilBertForTokenClassification};
use super::model::DistilBertModel;
use crate::Result;
use crate::naming::{HubModule, HubPath};
use crate::weights::{Checkpoint, InitScheme, NameMap, load_parts};

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

/// Loads `model` whose encoder is `encoder(model)` at `base` (`"distilbert"` in a task model,
/// the root for the bare encoder).
fn load<M: HubModule>(
    mut model: M,
    ck: &mut Checkpoint,
    c: &DistilBertConfig,
    base: Option<&str>,
    encoder: impl Fn(&mut M) -> &mut DistilBertModel,
) -> Result<M> {
    let names = match base {
        Some(prefix) => NameMap::base_prefix(ck, prefix, PROBE),
        None => NameMap { strip: String::new(), add: ck.base_prefix("distilbert", PROBE) },
    };
    let position = names.checkpoint_name(&base.map_or_else(HubPath::root, |b| HubPath::root().pp(b)).pp("embeddings").pp("position_embeddings").tensor("weight"));
    let missing_sinusoidal = c.sinusoidal_pos_embds && !ck.contains(&position);
    ck.allow_reinit("classifier.weight");
    ck.allow_reinit("classifier.bias");
    load_parts(&mut model, ck, &names, InitScheme::Transformers { std: c.initializer_range })?;
    if missing_sinusoidal {
        let table = sinusoidal_table(c.max_position_embeddings, c.dim);
        let device = ck.device().clone();
        let e = &mut encoder(&mut model).embeddings.position_embeddings;
        let id = e.weight.id;
        let mut weight = Param::from_tensor(Tensor::from_data(TensorData::new(table, [c.max_position_embeddings, c.dim]), &device));
        weight.id = id;
        e.weight = weight;
    }
    Ok(model)
}

impl DistilBertModel {
    /// Loads the encoder from `ck`, whose tensors may or may not carry the `distilbert.` prefix.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        load(Self::new(c, ck.device()), ck, c, None, |m| m)
    }
}

impl DistilBertForSequenceClassification {
    /// Loads the model; `pre_classifier`/`classifier` missing from the checkpoint are newly
    /// initialised, a `classifier` stored with another `num_labels` is re-initialised.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        load(Self::new(c, ck.device()), ck, c, Some("distilbert"), |m| &mut m.distilbert)
    }
}

impl DistilBertForTokenClassification {
    /// Loads the model; the classifier as for sequence classification.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &DistilBertConfig) -> Result<Self> {
        load(Self::new(c, ck.device()), ck, c, Some("distilbert"), |m| &mut m.distilbert)
    }
}
