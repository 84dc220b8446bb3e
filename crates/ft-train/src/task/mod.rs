//! Training tasks: what a run's examples are, how the model turns a batch into a loss, and how
//! an evaluation accumulates its metrics — transformers' `compute_loss` and `compute_metrics`,
//! shaped as `burn-train`'s `TrainStep`/`ValidStep` with associated types.
//!
//! The loop ([`crate::fit`]) knows nothing else about a task: a new task (causal LM, image
//! classification) is a new implementation of [`TrainTask`], not a new arm in the loop.

pub mod causal;
pub mod classification;
pub mod head;
pub mod text;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::Result;

/// Which examples a batch is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training examples.
    Train,
    /// The evaluation examples.
    Eval,
}

/// A training task (see the module docs).
pub trait TrainTask {
    /// What is trained: a Burn module whose trainable parameters the optimizer updates.
    type Model: Module;
    /// One batch, on a device.
    type Batch;
    /// What evaluation reads from one batch's forward pass (logits and labels).
    type Outputs;

    /// Number of examples of `split` (0 when the run has no evaluation data).
    fn len(&self, split: Split) -> usize;

    /// Token counts of the training examples (for `group_by_length`).
    fn lengths(&self) -> Vec<usize>;

    /// Called at the start of every training epoch (0-based), before its first batch: tasks
    /// whose examples change per epoch (random image augmentation) key their draws on it, as
    /// `datasets`' `set_epoch` does.
    fn set_epoch(&self, _epoch: usize) {}

    /// A hint that batch `indices` of `split` comes next: a task may start preparing it on
    /// another thread while the model works on the current one.
    fn prefetch(&self, _split: Split, _indices: &[usize]) {}

    /// The batch of examples `indices` of `split`, on `device`.
    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<Self::Batch>;

    /// The model's forward pass and loss (transformers' `outputs.loss`).
    ///
    /// # Shapes
    /// - loss: `[1]`
    fn forward(&self, model: &Self::Model, batch: &Self::Batch) -> Result<(Tensor<1>, Self::Outputs)>;

    /// The loss a training step optimises (transformers' `compute_loss` in training): the
    /// forward pass's loss unless the task normalises differently in training.
    ///
    /// # Shapes
    /// - output `[1]`
    fn train_loss(&self, model: &Self::Model, batch: &Self::Batch) -> Result<Tensor<1>> {
        Ok(self.forward(model, batch)?.0)
    }

    /// The weight of micro-batch `micro` (training rows) in an optimizer step made of the
    /// micro-batches `step` (gradient accumulation): `None` for `1 / step.len()` (a mean over
    /// micro-batches, transformers' default), or the task's own (the causal LM's share of the
    /// step's label tokens).
    fn micro_batch_weight(&self, _micro: &[usize], _step: &[&[usize]]) -> Option<f64> {
        None
    }

    /// The order evaluation runs the evaluation examples in, when another order than theirs is
    /// faster (text and token classification: longest first, so that each batch pads little;
    /// transformers pads every batch of the examples' own order to its longest row). The loop
    /// puts the predictions back in the examples' order ([`Predictions::per_example`] says how
    /// many each example made), and computes `eval_loss` over the batches of the examples' order
    /// (see [`TrainTask::eval_loss_terms`]), so the reported evaluation does not depend on the
    /// order beyond float rounding (batches pad differently). `None`: the examples' own order.
    fn eval_order(&self) -> Option<Vec<usize>> {
        None
    }

    /// Each row's loss terms in an evaluation batch, `(sum, count)` in the batch's row order,
    /// for tasks whose loss is a mean over terms that rows hold in different numbers (token
    /// classification: its labelled tokens). With them the loop reports transformers' `eval_loss`
    /// — the mean over the batches of the examples' own order of each batch's mean term,
    /// weighted by the batch's rows — whatever order it evaluated in (a batch without terms
    /// counts 0, as [`crate::loss::cross_entropy`], where PyTorch's mean gives NaN). `None` (the
    /// default): the forward's loss is a mean over rows, which any batching averages alike —
    /// a task that reorders and whose loss is not must give terms; one that gives them for some
    /// batches and not others is an error.
    fn eval_loss_terms(&self, _outputs: &Self::Outputs) -> Result<Option<Vec<(f64, usize)>>> {
        Ok(None)
    }

    /// A fresh accumulator for one evaluation.
    fn evaluator(&self) -> Box<dyn Evaluator<Self::Outputs>>;

    /// The metrics an evaluation reports besides `eval_loss` and the timings, with their `eval_`
    /// prefix (checked against `metric_for_best_model` before training starts).
    fn metric_names(&self) -> Vec<String>;

    /// Seconds spent once, outside the loop, preparing the evaluation examples (the frozen
    /// encoder's cached features). Added to every evaluation's `eval_runtime`, so that
    /// `eval_samples_per_second` measures the whole model, not only what runs per evaluation.
    fn eval_setup_seconds(&self) -> f64 {
        0.0
    }

    /// transformers' `floating_point_ops` for one batch (`6 · tokens · non-embedding
    /// parameters`); 0 where transformers counts none (a model that is not a
    /// `PreTrainedModel`, such as the frozen method's head on features).
    fn flops(&self, _batch: &Self::Batch) -> f64 {
        0.0
    }
}

/// Accumulates the outputs of one evaluation's batches into metrics.
pub trait Evaluator<O> {
    /// Adds one batch's outputs.
    fn add(&mut self, outputs: O) -> Result<()>;

    /// The metrics (`eval_`-prefixed names) and the predictions behind them.
    fn finish(self: Box<Self>) -> Result<(BTreeMap<String, f64>, Option<Predictions>)>;
}

/// Predictions of an evaluation, for reports (confusion matrix, per-class scores).
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Predicted class per row, or per labelled token (flattened).
    pub predictions: Vec<i64>,
    /// Reference class, aligned with `predictions`.
    pub references: Vec<i64>,
    /// `"example"`, or `"token"` when the lists hold every labelled token in order.
    pub unit: &'static str,
    /// How many entries of the lists each example made, in the lists' order (token
    /// classification: its labelled tokens); empty when every example made one.
    pub per_example: Vec<usize>,
}

/// The evaluation metrics (`eval_` names, besides `eval_loss`) a task's evaluation reports.
pub fn eval_metric_names(task: ft_models::auto::Task) -> &'static [&'static str] {
    use ft_models::auto::Task;
    match task {
        Task::TokenClassification => &classification::TOKEN_METRICS,
        Task::SequenceClassification | Task::ImageClassification => &classification::ROW_METRICS,
        Task::CausalLm => &causal::CAUSAL_METRICS,
        _ => &[],
    }
}
