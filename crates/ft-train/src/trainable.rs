//! What the trainer trains, and the batches it feeds it.

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Int, Tensor};
use ft_data::collate::Collated;
use ft_models::auto::{SequenceClassifier, TokenClassifier};

use crate::loss::cross_entropy;
use crate::{Result, TrainError};

/// The notebook's §5 head trained on cached encoder features: `classifier(dropout(x))`.
#[derive(Module, Debug)]
pub struct LinearHead {
    /// Dropout on the features.
    pub dropout: Dropout,
    /// `[H, num_labels]`.
    pub classifier: Linear,
}

/// A model the trainer can train.
#[derive(Module, Debug)]
pub enum Trainable {
    /// Sequence classification (full fine-tuning).
    Sequence(SequenceClassifier),
    /// Token classification (full fine-tuning).
    Token(TokenClassifier),
    /// A head on precomputed features (frozen encoder).
    Head(LinearHead),
}

/// A batch for [`Trainable::forward`].
#[derive(Debug, Clone)]
pub enum Batch {
    /// Tokenized texts with labels.
    Text(Collated),
    /// Encoder features `[batch, H]` with class labels `[batch]`.
    Features {
        /// `[batch, H]`.
        x: Tensor<2>,
        /// `[batch]`.
        labels: Tensor<1, Int>,
    },
}

/// Logits with the labels they are scored against.
#[derive(Debug, Clone)]
pub enum Outputs {
    /// One prediction per row: logits `[batch, classes]`, labels `[batch]`.
    Rows {
        /// `[batch, classes]`.
        logits: Tensor<2>,
        /// `[batch]`.
        labels: Tensor<1, Int>,
    },
    /// One prediction per token: logits `[batch, seq, classes]`, labels `[batch, seq]`.
    Tokens {
        /// `[batch, seq, classes]`.
        logits: Tensor<3>,
        /// `[batch, seq]` (-100 where ignored).
        labels: Tensor<2, Int>,
    },
}

fn mismatch(model: &str, batch: &str) -> TrainError {
    TrainError::State(format!("a {model} model was given a {batch} batch"))
}

impl Trainable {
    /// Runs the model and its loss (transformers' `outputs.loss`).
    ///
    /// # Shapes
    /// - loss: `[1]`
    pub fn forward(&self, batch: &Batch) -> Result<(Tensor<1>, Outputs)> {
        match (self, batch) {
            (Self::Sequence(m), Batch::Text(Collated::Classification(b))) => {
                let logits = m.forward(&b.inputs);
                let loss = cross_entropy(logits.clone(), b.labels.clone());
                Ok((loss, Outputs::Rows { logits, labels: b.labels.clone() }))
            }
            (Self::Token(m), Batch::Text(Collated::TokenLabels(b))) => {
                let logits = m.forward(&b.inputs);
                let [n, l, c] = logits.dims();
                let loss = cross_entropy(logits.clone().reshape([n * l, c]), b.labels.clone().reshape([n * l]));
                Ok((loss, Outputs::Tokens { logits, labels: b.labels.clone() }))
            }
            (Self::Head(h), Batch::Features { x, labels }) => {
                let logits = h.classifier.forward(h.dropout.forward(x.clone()));
                let loss = cross_entropy(logits.clone(), labels.clone());
                Ok((loss, Outputs::Rows { logits, labels: labels.clone() }))
            }
            (Self::Sequence(_), _) => Err(mismatch("sequence-classification", "non-classification")),
            (Self::Token(_), _) => Err(mismatch("token-classification", "non-token-label")),
            (Self::Head(_), _) => Err(mismatch("head", "text")),
        }
    }
}
