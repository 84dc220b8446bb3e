//! Building BERT modules from a Hugging Face checkpoint.
//!
//! The Hub names are the models' own ([`crate::naming::HubModule`] in `model.rs` and
//! `heads.rs`); a checkpoint saved from the bare `BertModel` (`embeddings.…`) loads into a task
//! model (`bert.embeddings.…`) as `from_pretrained` loads it. Linear weights are stored
//! `[out, in]` by PyTorch and transposed to Burn's `[in, out]` once, at load; old checkpoints'
//! LayerNorm `gamma`/`beta` are read as `weight`/`bias`.

use super::config::BertConfig;
use super::heads::{BertForSequenceClassification, BertForTokenClassification};
use super::model::BertModel;
use crate::Result;
use crate::naming::HubModule;
use crate::weights::{Checkpoint, InitScheme, NameMap, load_parts};

/// The tensor every BERT checkpoint has, used to find the base-model prefix.
const PROBE: &str = "embeddings.word_embeddings.weight";

/// Loads `model` (whose base sits under `bert.` unless it is the bare encoder) from `ck`; the
/// task head's `classifier` may be re-initialised when its `num_labels` changed.
fn load<M: HubModule>(mut model: M, ck: &mut Checkpoint, c: &BertConfig, under_prefix: bool) -> Result<M> {
    let names = if under_prefix { NameMap::base_prefix(ck, "bert", PROBE) } else { NameMap::identity() };
    ck.allow_reinit("classifier.weight");
    ck.allow_reinit("classifier.bias");
    load_parts(&mut model, ck, &names, InitScheme::Transformers { std: c.initializer_range })?;
    Ok(model)
}

impl BertModel {
    /// Loads the encoder from `ck`, whose base-model tensors may or may not carry the `bert.`
    /// prefix.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig, with_pooler: bool) -> Result<Self> {
        let names = NameMap { strip: String::new(), add: ck.base_prefix("bert", PROBE) };
        let mut model = Self::new(c, with_pooler, ck.device());
        load_parts(&mut model, ck, &names, InitScheme::Transformers { std: c.initializer_range })?;
        Ok(model)
    }
}

impl BertForSequenceClassification {
    /// Loads the model; a classifier missing from the checkpoint, or stored with another
    /// `num_labels`, is newly initialised (and reported).
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig) -> Result<Self> {
        load(Self::new(c, ck.device()), ck, c, true)
    }
}

impl BertForTokenClassification {
    /// Loads the model (no pooler); the classifier as for sequence classification.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &BertConfig) -> Result<Self> {
        load(Self::new(c, ck.device()), ck, c, true)
    }
}
