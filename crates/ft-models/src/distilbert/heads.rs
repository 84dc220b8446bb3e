//! DistilBERT task heads: sequence classification and token classification.

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Int, Tensor};

use super::model::DistilBertModel;

/// DistilBERT with `classifier(dropout(relu(pre_classifier(h[:, 0]))))` (transformers'
/// `DistilBertForSequenceClassification`).
#[derive(Module, Debug)]
pub struct DistilBertForSequenceClassification {
    /// HF `distilbert`.
    pub distilbert: DistilBertModel,
    /// HF `pre_classifier` `[dim, dim]`.
    pub pre_classifier: Linear,
    /// Dropout (`seq_classif_dropout`).
    pub dropout: Dropout,
    /// HF `classifier` `[dim, num_labels]`.
    pub classifier: Linear,
}

impl DistilBertForSequenceClassification {
    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, num_labels]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        let hidden = self.distilbert.forward(input_ids, attention_mask);
        let [b, _, d] = hidden.dims();
        let pooled = relu(self.pre_classifier.forward(hidden.narrow(1, 0, 1).reshape([b, d])));
        self.classifier.forward(crate::dropout::dropout(&self.dropout, pooled))
    }
}

/// DistilBERT with a linear classifier on every token (transformers'
/// `DistilBertForTokenClassification`).
#[derive(Module, Debug)]
pub struct DistilBertForTokenClassification {
    /// HF `distilbert`.
    pub distilbert: DistilBertModel,
    /// Dropout (`dropout`).
    pub dropout: Dropout,
    /// HF `classifier` `[dim, num_labels]`.
    pub classifier: Linear,
}

impl DistilBertForTokenClassification {
    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, seq, num_labels]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let hidden = self.distilbert.forward(input_ids, attention_mask);
        self.classifier.forward(crate::dropout::dropout(&self.dropout, hidden))
    }
}
