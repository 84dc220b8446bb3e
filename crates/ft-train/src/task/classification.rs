//! Evaluation of classifiers: one class per row (accuracy and macro F1, as the notebook's
//! `compute_metrics`) or one class per token (seqeval's entity-level scores).

use std::collections::BTreeMap;

use burn::tensor::{Int, Tensor};
use ft_hub::batch::IGNORE_INDEX;
use ft_metrics::classification::{Average, PrfOptions, Score, accuracy_score, f1_score};
use ft_metrics::seqeval::{SeqevalOptions, seqeval};

use super::{Evaluator, Predictions};
use crate::{Result, TrainError};

/// The loss (mean cross-entropy) and evaluation outputs of row-classification logits.
///
/// # Shapes
/// - `logits`: `[batch, classes]`; `labels`: `[batch]`; loss `[1]`
pub fn row_loss(logits: Tensor<2>, labels: &Tensor<1, Int>) -> (Tensor<1>, RowOutputs) {
    let loss = crate::loss::cross_entropy(logits.clone(), labels.clone());
    (loss, RowOutputs { logits, labels: labels.clone() })
}

/// Logits with one class label per row.
#[derive(Debug, Clone)]
pub struct RowOutputs {
    /// `[batch, classes]`.
    pub logits: Tensor<2>,
    /// `[batch]`.
    pub labels: Tensor<1, Int>,
}

/// Logits with one label per token.
#[derive(Debug, Clone)]
pub struct TokenOutputs {
    /// `[batch, seq, classes]`.
    pub logits: Tensor<3>,
    /// `[batch, seq]` (-100 where ignored).
    pub labels: Tensor<2, Int>,
}

pub(crate) fn to_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    t.into_data().try_into_vec_as::<i64>().map_err(|e| TrainError::State(format!("reading predictions: {e:?}")))
}

/// `eval_accuracy` and `eval_f1_macro` over rows.
#[derive(Debug, Default)]
pub struct RowClassificationEvaluator {
    preds: Predictions,
}

/// The metric names of [`RowClassificationEvaluator`].
pub const ROW_METRICS: [&str; 2] = ["eval_accuracy", "eval_f1_macro"];

impl Evaluator<RowOutputs> for RowClassificationEvaluator {
    fn add(&mut self, outputs: RowOutputs) -> Result<()> {
        let [n, _] = outputs.logits.dims();
        self.preds.predictions.extend(to_i64(outputs.logits.argmax(1).reshape([n]))?);
        self.preds.references.extend(to_i64(outputs.labels)?);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(BTreeMap<String, f64>, Option<Predictions>)> {
        let mut preds = self.preds;
        preds.unit = "example";
        let mut m = BTreeMap::new();
        m.insert("eval_accuracy".into(), accuracy_score(&preds.references, &preds.predictions, true, None)?);
        let options = PrfOptions { average: Average::Macro, ..PrfOptions::default() };
        if let Score::Value(f1) = f1_score(&preds.references, &preds.predictions, &options)? {
            m.insert("eval_f1_macro".into(), f1);
        }
        Ok((m, Some(preds)))
    }
}

/// seqeval's `eval_overall_{precision,recall,f1,accuracy}` over labelled tokens.
#[derive(Debug)]
pub struct TokenClassificationEvaluator {
    label_names: Vec<String>,
    preds: Predictions,
    seq_true: Vec<Vec<String>>,
    seq_pred: Vec<Vec<String>>,
}

/// The metric names of [`TokenClassificationEvaluator`].
pub const TOKEN_METRICS: [&str; 4] =
    ["eval_overall_precision", "eval_overall_recall", "eval_overall_f1", "eval_overall_accuracy"];

impl TokenClassificationEvaluator {
    /// An evaluator naming label ids with `label_names` (IOB2 tags).
    pub fn new(label_names: Vec<String>) -> Self {
        Self { label_names, preds: Predictions::default(), seq_true: Vec::new(), seq_pred: Vec::new() }
    }

    fn name(&self, id: i64) -> String {
        usize::try_from(id).ok().and_then(|i| self.label_names.get(i)).cloned().unwrap_or_else(|| "O".into())
    }
}

impl Evaluator<TokenOutputs> for TokenClassificationEvaluator {
    fn add(&mut self, outputs: TokenOutputs) -> Result<()> {
        let [b, l, _] = outputs.logits.dims();
        let p = to_i64(outputs.logits.argmax(2).reshape([b, l]))?;
        let y = to_i64(outputs.labels)?;
        for r in 0..b {
            let (mut t, mut q) = (Vec::new(), Vec::new());
            for c in 0..l {
                let (yy, pp) = (y[r * l + c], p[r * l + c]);
                if yy == IGNORE_INDEX {
                    continue;
                }
                self.preds.references.push(yy);
                self.preds.predictions.push(pp);
                t.push(self.name(yy));
                q.push(self.name(pp));
            }
            self.preds.per_example.push(t.len());
            self.seq_true.push(t);
            self.seq_pred.push(q);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(BTreeMap<String, f64>, Option<Predictions>)> {
        let report = seqeval(&self.seq_true, &self.seq_pred, &SeqevalOptions::default())?;
        let mut m = BTreeMap::new();
        m.insert("eval_overall_precision".into(), report.overall_precision);
        m.insert("eval_overall_recall".into(), report.overall_recall);
        m.insert("eval_overall_f1".into(), report.overall_f1);
        m.insert("eval_overall_accuracy".into(), report.overall_accuracy);
        let mut preds = self.preds;
        preds.unit = "token";
        Ok((m, Some(preds)))
    }
}
