//! DistilBERT task heads: sequence classification and token classification.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use ft_hub::ops::dropout;

use super::config::DistilBertConfig;
use super::model::DistilBertModel;
use crate::Result;
use crate::input::{KvCache, TextInput};
use crate::layers::{Projection, WeightLayout};
use crate::naming::{HubModule, HubPath, Part};

/// DistilBERT with `classifier(dropout(relu(pre_classifier(h[:, 0]))))` (transformers'
/// `DistilBertForSequenceClassification`).
#[derive(Module, Debug)]
pub struct DistilBertForSequenceClassification {
    /// HF `distilbert`.
    pub distilbert: DistilBertModel,
    /// HF `pre_classifier` `[dim, dim]`.
    pub pre_classifier: Projection,
    /// Dropout (`seq_classif_dropout`).
    pub dropout: Dropout,
    /// HF `classifier` `[dim, num_labels]`.
    pub classifier: Projection,
}

impl DistilBertForSequenceClassification {
    /// The model's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &DistilBertConfig, device: &Device) -> Self {
        Self {
            distilbert: DistilBertModel::new(c, device),
            pre_classifier: Projection::new(c.dim, c.dim, WeightLayout::Linear, device),
            dropout: DropoutConfig::new(c.seq_classif_dropout).init(),
            classifier: Projection::new(c.dim, c.labels.num_labels(), WeightLayout::Linear, device),
        }
    }

    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, num_labels]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        self.head(self.distilbert.forward_first_token(input_ids, attention_mask))
    }

    /// Logits from ids or input embeddings after an optional prefix. The last layer runs for the
    /// first token only ([`TextInput::first_token_only`]), the one row the head reads.
    ///
    /// # Shapes
    /// - output logits: `[batch, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<2>> {
        Ok(self.head(self.distilbert.forward_input(&input.clone().with_first_token_only(true), past)?))
    }

    fn head(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [b, _, d] = hidden.dims();
        let pooled = relu(self.pre_classifier.forward(hidden.narrow(1, 0, 1).reshape([b, d])));
        self.classifier.forward(dropout(&self.dropout, pooled))
    }
}

impl HubModule for DistilBertForSequenceClassification {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.distilbert.parts(&path.pp("distilbert"), f);
        f(&path.pp("pre_classifier"), Part::Projection(&mut self.pre_classifier));
        f(&path.pp("classifier"), Part::Projection(&mut self.classifier));
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
    pub classifier: Projection,
}

impl DistilBertForTokenClassification {
    /// The model's skeleton (lazily initialised; see [`crate::weights::load_parts`]).
    pub fn new(c: &DistilBertConfig, device: &Device) -> Self {
        Self {
            distilbert: DistilBertModel::new(c, device),
            dropout: DropoutConfig::new(c.dropout).init(),
            classifier: Projection::new(c.dim, c.labels.num_labels(), WeightLayout::Linear, device),
        }
    }

    /// # Shapes
    /// - inputs: `[batch, seq]`; output logits: `[batch, seq, num_labels]`
    pub fn forward(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let hidden = self.distilbert.forward(input_ids, attention_mask);
        self.classifier.forward(dropout(&self.dropout, hidden))
    }

    /// Logits per token from ids or input embeddings after an optional prefix.
    ///
    /// # Shapes
    /// - output logits: `[batch, seq, num_labels]`
    pub fn forward_input(&self, input: &TextInput, past: Option<&KvCache>) -> Result<Tensor<3>> {
        let hidden = self.distilbert.forward_input(input, past)?;
        Ok(self.classifier.forward(dropout(&self.dropout, hidden)))
    }
}

impl HubModule for DistilBertForTokenClassification {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.distilbert.parts(&path.pp("distilbert"), f);
        f(&path.pp("classifier"), Part::Projection(&mut self.classifier));
    }
}
