//! Causal language modelling (§7, §8 of the notebook): transformers'
//! `DataCollatorForLanguageModeling(mlm=False)` (`ft_data::collate::pad_causal_lm`: rows padded
//! on the right with the pad token — GPT-2's is its end-of-text token —, labels = input ids with
//! every pad-token position set to -100, so a real end-of-text token is not learned either, as
//! in transformers) and the loss
//! `GPT2LMHeadModel` computes: the logits at position t predict the label at t + 1, mean
//! cross-entropy over the labels that are not -100. With prompt tuning the model's logits also
//! cover the virtual tokens, whose labels are -100 (PEFT prepends them).
//!
//! Training optimises the loss transformers' `Trainer` computes ([`trainer_causal_lm_loss`]);
//! evaluation reports the model's own mean loss as `eval_loss`, and `eval_perplexity`
//! (`exp(eval_loss)`).

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use ft_data::collate::{TokenLabelBatch, pad_causal_lm};
use ft_data::dataset::{Column, Dataset};
use ft_hub::batch::TextBatch;
use ft_models::auto::CausalLm;
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::{Evaluator, Predictions, Split, TrainTask};
use crate::loss::{IGNORE_INDEX, cross_entropy};
use crate::{Result, TrainError};

/// A model with next-token logits.
pub trait CausalModel: Module {
    /// Logits at every position and how many leading positions are virtual tokens (prompt
    /// tuning) rather than the batch's own.
    ///
    /// # Shapes
    /// - batch tensors `[batch, seq]`; logits `[batch, virtual + seq, vocab]`
    fn lm_logits(&self, batch: &TextBatch) -> Result<(Tensor<3>, usize)>;
}

impl CausalModel for CausalLm {
    fn lm_logits(&self, batch: &TextBatch) -> Result<(Tensor<3>, usize)> {
        let Self::Gpt2(m) = self;
        let input = TextInput::ids(batch.input_ids.clone(), Some(batch.attention_mask.clone()));
        Ok((m.forward_input(&input, None)?, 0))
    }
}

impl CausalModel for PeftModel<CausalLm> {
    fn lm_logits(&self, batch: &TextBatch) -> Result<(Tensor<3>, usize)> {
        let input = TextInput::ids(batch.input_ids.clone(), Some(batch.attention_mask.clone()));
        Ok((self.forward(&input)?, self.output_offset()))
    }
}

/// A padded batch with its language-modelling labels (`labels`: the ids, -100 at padding).
pub type CausalBatch = TokenLabelBatch;

/// Tokenized text rows (`input_ids`) for causal-LM training.
#[derive(Debug, Clone)]
pub struct CausalExamples {
    /// Training rows.
    pub train: Dataset,
    /// Evaluation rows, if any.
    pub eval: Option<Dataset>,
    /// The pad token (GPT-2: its end-of-text token).
    pub pad_id: u32,
    /// `6 · non-embedding parameters` of the base model.
    pub flops_per_token: f64,
}

fn ids_of(ds: &Dataset) -> Result<&[Vec<i64>]> {
    match ds.column("input_ids") {
        Ok(Column::IntList(v)) => Ok(v),
        _ => Err(TrainError::State("causal-LM rows need an input_ids column".into())),
    }
}

/// The shifted language-modelling loss: the logits at position `offset + t - 1` predict label
/// `t` (positions before `offset` are virtual tokens with label -100).
///
/// # Shapes
/// - `logits`: `[batch, offset + seq, vocab]`, `labels`: `[batch, seq]`; output `[1]`
pub fn causal_lm_loss(logits: Tensor<3>, labels: Tensor<2, Int>, offset: usize) -> Tensor<1> {
    let [b, n, v] = logits.dims();
    let [_, l] = labels.dims();
    // As transformers 5 does, the labels move, not the logits (no copy of the [b·n, vocab]
    // logits): position t's target is label t + 1 − offset, -100 where there is none.
    let device = labels.device();
    let ignore = |w: usize| Tensor::<2, Int>::full([b, w], IGNORE_INDEX, &device);
    let targets = match offset {
        0 if l > 1 => Tensor::cat(vec![labels.narrow(1, 1, l - 1), ignore(1)], 1),
        0 => ignore(l),
        o => Tensor::cat(vec![ignore(o - 1), labels, ignore(1)], 1),
    };
    debug_assert_eq!(targets.dims(), [b, n]);
    cross_entropy(logits.reshape([b * n, v]), targets.reshape([b * n]))
}

/// The loss transformers' `Trainer` (5.x) optimises for a causal LM: the summed cross-entropy of
/// the shifted labels divided by `num_items_in_batch`, which it counts on the labels *before*
/// the shift (`labels != -100`, one more token per row than the loss covers) — so a training
/// step's loss is the model's mean loss times `shifted / unshifted` label count, and so are its
/// gradients. ft reproduces it (checked step by step against PEFT + `Trainer`); evaluation
/// reports the model's own mean, as transformers' `evaluate` does. With
/// `gradient_accumulation_steps > 1` transformers counts the items of the whole step: each
/// micro-batch then weighs by its share of them ([`TrainTask::micro_batch_weight`]). (This is
/// GPT-2's `loss_type=None` path in transformers 5.24; model classes that count after the shift
/// would differ.)
///
/// # Shapes
/// - `logits`: `[batch, offset + seq, vocab]`, `labels`: `[batch, seq]`; output `[1]`
pub fn trainer_causal_lm_loss(logits: Tensor<3>, labels: Tensor<2, Int>, offset: usize) -> Tensor<1> {
    let [_, l] = labels.dims();
    // With virtual tokens first (whose labels are -100), every real label is predicted.
    let shifted = if offset > 0 { labels.clone() } else { labels.clone().narrow(1, 1.min(l), l.saturating_sub(1)) };
    let n_shifted = shifted.not_equal_elem(IGNORE_INDEX).int().sum().float();
    let n_items = labels.clone().not_equal_elem(IGNORE_INDEX).int().sum().float().clamp_min(1.0);
    causal_lm_loss(logits, labels, offset) * n_shifted / n_items
}

/// Causal-LM training over tokenized text.
#[derive(Debug)]
pub struct CausalLmTask<M> {
    /// The rows.
    pub examples: CausalExamples,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M> CausalLmTask<M> {
    /// The task over these rows.
    pub fn new(examples: CausalExamples) -> Self {
        Self { examples, _model: std::marker::PhantomData }
    }

    fn split(&self, split: Split) -> Option<&Dataset> {
        match split {
            Split::Train => Some(&self.examples.train),
            Split::Eval => self.examples.eval.as_ref(),
        }
    }
}

/// The loss of one evaluation batch.
#[derive(Debug)]
pub struct LossOutputs {
    /// The batch's mean loss.
    pub loss: f64,
}

#[derive(Default)]
struct PerplexityEvaluator {
    sum: f64,
    n: usize,
}

impl Evaluator<LossOutputs> for PerplexityEvaluator {
    fn add(&mut self, outputs: LossOutputs) -> Result<()> {
        self.sum += outputs.loss;
        self.n += 1;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(BTreeMap<String, f64>, Option<Predictions>)> {
        // transformers' eval_loss is the mean of the batches' losses; perplexity its exp.
        let mean = if self.n == 0 { f64::NAN } else { self.sum / self.n as f64 };
        Ok((BTreeMap::from([("eval_perplexity".to_string(), mean.exp())]), None))
    }
}

impl<M: CausalModel> TrainTask for CausalLmTask<M> {
    type Model = M;
    type Batch = CausalBatch;
    type Outputs = LossOutputs;

    fn len(&self, split: Split) -> usize {
        self.split(split).map_or(0, Dataset::len)
    }

    fn lengths(&self) -> Vec<usize> {
        ids_of(&self.examples.train).map(|v| v.iter().map(Vec::len).collect()).unwrap_or_default()
    }

    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<CausalBatch> {
        let ds = self.split(split).ok_or_else(|| TrainError::State("no evaluation data".into()))?;
        let all = ids_of(ds)?;
        let rows: Vec<&[i64]> = indices.iter().filter_map(|&i| all.get(i).map(Vec::as_slice)).collect();
        Ok(pad_causal_lm(&rows, self.examples.pad_id, None, device))
    }

    fn forward(&self, model: &M, batch: &CausalBatch) -> Result<(Tensor<1>, LossOutputs)> {
        let (logits, offset) = model.lm_logits(&batch.inputs)?;
        let loss = causal_lm_loss(logits, batch.labels.clone(), offset);
        let value =
            loss.clone().into_data().try_to_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(f32::NAN);
        Ok((loss, LossOutputs { loss: value as f64 }))
    }

    /// transformers counts `num_items_in_batch` over the whole optimizer step: a micro-batch's
    /// loss (its sum over its own label tokens) weighs by its share of the step's tokens.
    fn micro_batch_weight(&self, micro: &[usize], step: &[&[usize]]) -> Option<f64> {
        if step.len() <= 1 {
            return None;
        }
        let rows = ids_of(&self.examples.train).ok()?;
        let pad = self.examples.pad_id as i64;
        let items = |idx: &[usize]| -> usize {
            idx.iter().filter_map(|&i| rows.get(i)).map(|r| r.iter().filter(|&&t| t != pad).count()).sum()
        };
        let total: usize = step.iter().map(|c| items(c)).sum();
        (total > 0).then(|| items(micro) as f64 / total as f64)
    }

    fn train_loss(&self, model: &M, batch: &CausalBatch) -> Result<Tensor<1>> {
        let (logits, offset) = model.lm_logits(&batch.inputs)?;
        Ok(trainer_causal_lm_loss(logits, batch.labels.clone(), offset))
    }

    fn evaluator(&self) -> Box<dyn Evaluator<LossOutputs>> {
        Box::new(PerplexityEvaluator::default())
    }

    fn metric_names(&self) -> Vec<String> {
        CAUSAL_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn flops(&self, batch: &CausalBatch) -> f64 {
        let [b, l] = batch.inputs.input_ids.dims();
        self.examples.flops_per_token * (b * l) as f64
    }
}

/// The metrics a causal-LM evaluation reports besides `eval_loss`.
pub const CAUSAL_METRICS: [&str; 1] = ["eval_perplexity"];

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn loss_shifts_by_one_and_skips_virtual_tokens() {
        let device = Device::flex();
        // vocab 3; logits favour token (position + 1) % 3.
        let mut v = Vec::new();
        for p in 0..4 {
            for k in 0..3 {
                v.push(if k == (p + 1) % 3 { 5.0f32 } else { 0.0 });
            }
        }
        let logits = Tensor::<3>::from_data(TensorData::new(v, [1, 4, 3]), &device);
        // Without virtual tokens: positions 0..3 predict labels 1..4.
        let labels = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0], [1, 4]), &device);
        let plain: f32 = causal_lm_loss(logits.clone(), labels, 0).into_scalar();
        let want = -(5.0f64 - (5.0f64.exp() + 2.0).ln());
        assert!((plain as f64 - want).abs() < 1e-5, "{plain} vs {want}");
        // One virtual token: positions 0..3 predict the 3 labels.
        let labels = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 0], [1, 3]), &device);
        let shifted: f32 = causal_lm_loss(logits, labels, 1).into_scalar();
        assert!((shifted as f64 - want).abs() < 1e-5, "{shifted} vs {want}");
    }
}
