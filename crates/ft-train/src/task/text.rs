//! Fine-tuning a text model on tokenized rows: sequence classification (§4 of the notebook) and
//! token classification (§9), with transformers' collators (`DataCollatorWithPadding`,
//! `DataCollatorForTokenClassification`) and losses.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ft_data::collate::{ClassificationBatch, CollateKind, Collated, TokenLabelBatch, collate_dataset};
use ft_data::dataset::{Column, Dataset};
use ft_hub::batch::TextBatch;
use ft_models::auto::{SequenceClassifier, TokenClassifier};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::classification::{
    ROW_METRICS, RowClassificationEvaluator, RowOutputs, TOKEN_METRICS, TokenClassificationEvaluator, TokenOutputs,
    row_loss,
};
use super::{Evaluator, Split, TrainTask};
use crate::loss::{cross_entropy, token_loss_terms};
use crate::{Result, TrainError};

/// A model with one set of logits per text.
pub trait SequenceModel: Module {
    /// # Shapes
    /// - batch tensors `[batch, seq]`; output `[batch, classes]`
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<2>>;
}

impl SequenceModel for SequenceClassifier {
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<2>> {
        Ok(self.forward(batch))
    }
}

impl SequenceModel for PeftModel<SequenceClassifier> {
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<2>> {
        Ok(self.forward(&TextInput::from_batch(batch))?)
    }
}

/// A model with logits per token.
pub trait TokenModel: Module {
    /// # Shapes
    /// - batch tensors `[batch, seq]`; output `[batch, seq, classes]`
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<3>>;
}

impl TokenModel for TokenClassifier {
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<3>> {
        Ok(self.forward(batch))
    }
}

impl TokenModel for PeftModel<TokenClassifier> {
    fn logits(&self, batch: &TextBatch) -> Result<Tensor<3>> {
        let logits = self.forward(&TextInput::from_batch(batch))?;
        // Prompt tuning's virtual tokens have no labels: their logits are left out.
        let [b, l, c] = logits.dims();
        let off = self.output_offset();
        Ok(if off == 0 { logits } else { logits.narrow(1, off, l - off).reshape([b, l - off, c]) })
    }
}

/// Tokenized training and evaluation rows (columns `input_ids`, `token_type_ids`, `labels`).
#[derive(Debug, Clone)]
pub struct TextExamples {
    /// Training rows.
    pub train: Dataset,
    /// Evaluation rows, if any.
    pub eval: Option<Dataset>,
    /// The tokenizer's pad id.
    pub pad_id: u32,
    /// `6 · non-embedding parameters` of the model (transformers' FLOPs per token).
    pub flops_per_token: f64,
}

impl TextExamples {
    fn split(&self, split: Split) -> Option<&Dataset> {
        match split {
            Split::Train => Some(&self.train),
            Split::Eval => self.eval.as_ref(),
        }
    }

    fn len(&self, split: Split) -> usize {
        self.split(split).map_or(0, Dataset::len)
    }

    fn lengths(&self) -> Vec<usize> {
        match self.train.column("input_ids") {
            Ok(Column::IntList(v)) => v.iter().map(Vec::len).collect(),
            _ => vec![1; self.train.len()],
        }
    }

    /// The evaluation rows, longest first (a stable sort by token count): batches of similar
    /// lengths pad little. `None` without evaluation rows or token ids.
    fn eval_by_length(&self) -> Option<Vec<usize>> {
        let Ok(Column::IntList(v)) = self.eval.as_ref()?.column("input_ids") else { return None };
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(v[i].len()));
        Some(order)
    }

    fn collate(&self, split: Split, indices: &[usize], device: &Device) -> Result<Collated> {
        let ds = self.split(split).ok_or_else(|| TrainError::State("no evaluation data".into()))?;
        Ok(collate_dataset(ds, indices, CollateKind::Auto, self.pad_id, None, device)?)
    }

    fn flops(&self, inputs: &TextBatch) -> f64 {
        let [b, l] = inputs.input_ids.dims();
        self.flops_per_token * (b * l) as f64
    }
}

/// Sequence classification: cross-entropy over one class per row.
#[derive(Debug)]
pub struct SequenceClassificationTask<M> {
    /// The rows.
    pub examples: TextExamples,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M> SequenceClassificationTask<M> {
    /// The task over these rows.
    pub fn new(examples: TextExamples) -> Self {
        Self { examples, _model: std::marker::PhantomData }
    }
}

impl<M: SequenceModel> TrainTask for SequenceClassificationTask<M> {
    type Model = M;
    type Batch = ClassificationBatch;
    type Outputs = RowOutputs;

    fn len(&self, split: Split) -> usize {
        self.examples.len(split)
    }

    fn lengths(&self) -> Vec<usize> {
        self.examples.lengths()
    }

    fn eval_order(&self) -> Option<Vec<usize>> {
        self.examples.eval_by_length()
    }

    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<ClassificationBatch> {
        match self.examples.collate(split, indices, device)? {
            Collated::Classification(b) => Ok(b),
            _ => Err(TrainError::State("sequence classification needs one class label per row".into())),
        }
    }

    fn forward(&self, model: &M, batch: &ClassificationBatch) -> Result<(Tensor<1>, RowOutputs)> {
        let logits = model.logits(&batch.inputs)?;
        Ok(row_loss(logits, &batch.labels))
    }

    fn evaluator(&self) -> Box<dyn Evaluator<RowOutputs>> {
        Box::new(RowClassificationEvaluator::default())
    }

    fn metric_names(&self) -> Vec<String> {
        ROW_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn flops(&self, batch: &ClassificationBatch) -> f64 {
        self.examples.flops(&batch.inputs)
    }
}

/// Token classification: cross-entropy over the labelled tokens (-100 ignored).
#[derive(Debug)]
pub struct TokenClassificationTask<M> {
    /// The rows.
    pub examples: TextExamples,
    /// Label names by id (for seqeval).
    pub label_names: Vec<String>,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M> TokenClassificationTask<M> {
    /// The task over these rows, naming labels with `label_names`.
    pub fn new(examples: TextExamples, label_names: Vec<String>) -> Self {
        Self { examples, label_names, _model: std::marker::PhantomData }
    }
}

impl<M: TokenModel> TrainTask for TokenClassificationTask<M> {
    type Model = M;
    type Batch = TokenLabelBatch;
    type Outputs = TokenOutputs;

    fn len(&self, split: Split) -> usize {
        self.examples.len(split)
    }

    fn lengths(&self) -> Vec<usize> {
        self.examples.lengths()
    }

    fn eval_order(&self) -> Option<Vec<usize>> {
        self.examples.eval_by_length()
    }

    fn eval_loss_terms(&self, outputs: &TokenOutputs) -> Result<Option<Vec<(f64, usize)>>> {
        token_loss_terms(outputs.logits.clone(), outputs.labels.clone()).map(Some)
    }

    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<TokenLabelBatch> {
        match self.examples.collate(split, indices, device)? {
            Collated::TokenLabels(b) => Ok(b),
            _ => Err(TrainError::State("token classification needs one label per token".into())),
        }
    }

    fn forward(&self, model: &M, batch: &TokenLabelBatch) -> Result<(Tensor<1>, TokenOutputs)> {
        let logits = model.logits(&batch.inputs)?;
        let [n, l, c] = logits.dims();
        let loss = cross_entropy(logits.clone().reshape([n * l, c]), batch.labels.clone().reshape([n * l]));
        Ok((loss, TokenOutputs { logits, labels: batch.labels.clone() }))
    }

    fn evaluator(&self) -> Box<dyn Evaluator<TokenOutputs>> {
        Box::new(TokenClassificationEvaluator::new(self.label_names.clone()))
    }

    fn metric_names(&self) -> Vec<String> {
        TOKEN_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn flops(&self, batch: &TokenLabelBatch) -> f64 {
        self.examples.flops(&batch.inputs)
    }
}
