//! BERT task heads: sequence classification and token classification.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{Device, Int, Tensor};
use ft_hub::ops::dropout;

use super::config::BertConfig;
use super::model::BertModel;
use crate::Result;
use crate::input::{KvCache, TextInput};
use crate::layers::{Projection, WeightLayout};
use crate::naming::{HubModule, HubPath, Part};

/// BERT with a linear classifier over the pooled first token (transformers'
/// `BertForSequenceClassification`).
#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    /// HF `bert` (with pooler).
    pub bert: BertModel,
    /// Dropout (`classifier_dropout`, else `hidden_dropout_prob`).
    pub dropout: Dropout,
    /// HF `classifier` `[H, num_labels]`.
    pub classifier: Projection,
}

impl BertForSequenceClassification {
    /// The model's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &BertConfig, device: &Device) -> Self {
        Self {
            bert: BertModel::new(c, true, device),
            dropout: DropoutConfig::new(c.classifier_dropout()).init(),
            classifier: Projection::new(c.hidden_size, c.labels.num_labels(), WeightLayout::Linear, device),
        }
    }

    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, num_labels]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<2> {
        let out = self.bert.forward_first_token(input_ids, attention_mask, token_type_ids);
        self.head(out.pooler_output, out.last_hidden_state)
    }

    /// Logits from ids or input embeddings after an optional prefix (see
    /// [`BertModel::forward_input`]). The last layer runs for the first token only
    /// ([`TextInput::first_token_only`]), the one row the pooler reads.
    ///
    /// # Shapes
    /// - output logits: `[batch, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<2>> {
        let out = self.bert.forward_input(&input.clone().with_first_token_only(true), past)?;
        Ok(self.head(out.pooler_output, out.last_hidden_state))
    }

    fn head(&self, pooled: Option<Tensor<2>>, hidden: Tensor<3>) -> Tensor<2> {
        let pooled = pooled.unwrap_or_else(|| {
            // Loading always builds the pooler for this head; keep a sane fallback anyway.
            let [b, _, h] = hidden.dims();
            hidden.narrow(1, 0, 1).reshape([b, h])
        });
        self.classifier.forward(dropout(&self.dropout, pooled))
    }
}

impl HubModule for BertForSequenceClassification {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.bert.parts(&path.pp("bert"), f);
        f(&path.pp("classifier"), Part::Projection(&mut self.classifier));
    }
}

/// BERT with a linear classifier on every token (transformers' `BertForTokenClassification`).
#[derive(Module, Debug)]
pub struct BertForTokenClassification {
    /// HF `bert` (no pooler).
    pub bert: BertModel,
    /// Dropout (`classifier_dropout`, else `hidden_dropout_prob`).
    pub dropout: Dropout,
    /// HF `classifier` `[H, num_labels]`.
    pub classifier: Projection,
}

impl BertForTokenClassification {
    /// The model's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &BertConfig, device: &Device) -> Self {
        Self {
            bert: BertModel::new(c, false, device),
            dropout: DropoutConfig::new(c.classifier_dropout()).init(),
            classifier: Projection::new(c.hidden_size, c.labels.num_labels(), WeightLayout::Linear, device),
        }
    }

    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, seq, num_labels]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let out = self.bert.forward(input_ids, attention_mask, token_type_ids);
        self.classifier.forward(dropout(&self.dropout, out.last_hidden_state))
    }

    /// Logits per token from ids or input embeddings after an optional prefix.
    ///
    /// # Shapes
    /// - output logits: `[batch, seq, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<3>> {
        let out = self.bert.forward_input(input, past)?;
        Ok(self.classifier.forward(dropout(&self.dropout, out.last_hidden_state)))
    }
}

impl HubModule for BertForTokenClassification {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.bert.parts(&path.pp("bert"), f);
        f(&path.pp("classifier"), Part::Projection(&mut self.classifier));
    }
}
