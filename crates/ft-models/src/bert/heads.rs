//! BERT task heads: sequence classification and token classification.

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Int, Tensor};

use super::model::BertModel;

/// BERT with a linear classifier over the pooled first token (transformers'
/// `BertForSequenceClassification`).
#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    /// HF `bert` (with pooler).
    pub bert: BertModel,
    /// Dropout (`classifier_dropout`, else `hidden_dropout_prob`).
    pub dropout: Dropout,
    /// HF `classifier` `[H, num_labels]`.
    pub classifier: Linear,
}

impl BertForSequenceClassification {
    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, num_labels]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<2> {
        let out = self.bert.forward(input_ids, attention_mask, token_type_ids);
        let pooled = match out.pooler_output {
            Some(p) => p,
            // Loading always builds the pooler for this head; keep a sane fallback anyway.
            None => {
                let [b, _, h] = out.last_hidden_state.dims();
                out.last_hidden_state.narrow(1, 0, 1).reshape([b, h])
            }
        };
        self.classifier.forward(crate::dropout::dropout(&self.dropout, pooled))
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
    pub classifier: Linear,
}

impl BertForTokenClassification {
    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, seq, num_labels]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        token_type_ids: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let out = self.bert.forward(input_ids, attention_mask, token_type_ids);
        self.classifier.forward(crate::dropout::dropout(&self.dropout, out.last_hidden_state))
    }
}
