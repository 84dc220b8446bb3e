//! Classification metrics as scikit-learn computes them: accuracy, precision, recall and F1 (with
//! `average` = binary, micro, macro, weighted or none, and `zero_division`), the confusion matrix and
//! the classification report.
//!
//! Each function follows `sklearn.metrics` (1.9): the label set is the sorted union of the labels in
//! the references and predictions unless `labels` is given; a target with at most two distinct
//! labels is "binary", otherwise "multiclass"; empty inputs are refused. F1 is computed from the
//! counts, `2·tp / (2·tp + fp + fn)`, and is `zero_division` when that denominator is zero, as
//! scikit-learn ≥ 1.3 does.

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::{MetricsError, Result, check_same_len};

/// How precision, recall and F1 are averaged over the classes (scikit-learn's `average`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Average {
    /// Only the class `pos_label` of a binary target (scikit-learn's and evaluate's default).
    #[default]
    Binary,
    /// Global counts of true positives, false positives and false negatives.
    Micro,
    /// The unweighted mean of the per-class scores.
    Macro,
    /// The mean of the per-class scores weighted by each class's support.
    Weighted,
    /// No averaging: one score per class (`average=None`).
    PerClass,
}

impl FromStr for Average {
    type Err = MetricsError;

    /// Reads `binary`, `micro`, `macro`, `weighted`, or `none` / `None` / `null` for per-class scores.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "binary" => Ok(Average::Binary),
            "micro" => Ok(Average::Micro),
            "macro" => Ok(Average::Macro),
            "weighted" => Ok(Average::Weighted),
            "none" | "None" | "null" => Ok(Average::PerClass),
            "samples" => Err(MetricsError::arg(
                "average",
                "`samples` applies to multilabel targets, which ft does not support; use binary, micro, macro, weighted or none",
            )),
            other => Err(MetricsError::arg(
                "average",
                format!("`{other}` is not one of binary, micro, macro, weighted, none"),
            )),
        }
    }
}

/// What a score is when its denominator is zero (scikit-learn's `zero_division`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroDivision {
    /// 0, with a warning in Python (the default). ft does not warn.
    #[default]
    Warn,
    /// 0.
    Zero,
    /// 1.
    One,
    /// NaN; NaN scores are left out of averages, as scikit-learn does.
    Nan,
}

impl ZeroDivision {
    /// The value a zero division gives.
    pub fn value(self) -> f64 {
        match self {
            ZeroDivision::Warn | ZeroDivision::Zero => 0.0,
            ZeroDivision::One => 1.0,
            ZeroDivision::Nan => f64::NAN,
        }
    }
}

impl FromStr for ZeroDivision {
    type Err = MetricsError;

    /// Reads `warn`, `0`, `1` or `nan`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "warn" => Ok(ZeroDivision::Warn),
            "0" | "0.0" => Ok(ZeroDivision::Zero),
            "1" | "1.0" => Ok(ZeroDivision::One),
            "nan" | "NaN" => Ok(ZeroDivision::Nan),
            other => Err(MetricsError::arg("zero_division", format!("`{other}` is not one of warn, 0, 1, nan"))),
        }
    }
}

/// Options of [`precision_recall_fscore_support`] and the functions built on it.
#[derive(Debug, Clone)]
pub struct PrfOptions<T> {
    /// How to average over the classes.
    pub average: Average,
    /// The classes to score, in this order (default: every label seen, sorted). With
    /// [`Average::Binary`] it is ignored, as in scikit-learn.
    pub labels: Option<Vec<T>>,
    /// The positive class for [`Average::Binary`] (scikit-learn's default is the integer `1`).
    pub pos_label: Option<T>,
    /// The value of a score whose denominator is zero.
    pub zero_division: ZeroDivision,
    /// One weight per sample (default: all 1).
    pub sample_weight: Option<Vec<f64>>,
}

impl<T> Default for PrfOptions<T> {
    fn default() -> Self {
        Self {
            average: Average::Binary,
            labels: None,
            pos_label: None,
            zero_division: ZeroDivision::Warn,
            sample_weight: None,
        }
    }
}

/// The scores of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore<T> {
    /// The class.
    pub label: T,
    /// Its precision.
    pub precision: f64,
    /// Its recall.
    pub recall: f64,
    /// Its F1 score.
    pub f1: f64,
    /// How many references (or how much sample weight) have this class.
    pub support: f64,
}

/// The result of [`precision_recall_fscore_support`].
#[derive(Debug, Clone, PartialEq)]
pub enum PrfScores<T> {
    /// Averaged scores (every [`Average`] but [`Average::PerClass`]).
    Averaged {
        /// Precision.
        precision: f64,
        /// Recall.
        recall: f64,
        /// F1 score.
        f1: f64,
    },
    /// One entry per class, in label order.
    PerClass(Vec<ClassScore<T>>),
}

/// The sorted, de-duplicated union of the labels of both inputs (`sklearn.utils.multiclass.unique_labels`).
pub fn unique_labels<T: Ord + Clone>(y_true: &[T], y_pred: &[T]) -> Vec<T> {
    let mut all: Vec<T> = y_true.iter().chain(y_pred).cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// Checks the lengths of references, predictions and weights, and that there is a sample.
fn check_inputs<T>(y_true: &[T], y_pred: &[T], sample_weight: Option<&[f64]>) -> Result<()> {
    check_same_len("predictions", y_pred.len(), "references", y_true.len())?;
    if y_true.is_empty() {
        return Err(MetricsError::Empty { field: "predictions and references".into() });
    }
    if let Some(w) = sample_weight {
        check_same_len("sample_weight", w.len(), "references", y_true.len())?;
        if let Some(i) = w.iter().position(|x| !x.is_finite()) {
            return Err(MetricsError::arg("sample_weight", format!("item {i} is not a finite number")));
        }
    }
    Ok(())
}

fn check_no_duplicates<T: Ord + Display>(key: &str, labels: &[T]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(MetricsError::arg(key, format!("label {l} is listed twice")));
        }
    }
    Ok(())
}

/// Accuracy: the fraction (or, with `normalize = false`, the number or total weight) of samples
/// whose prediction equals the reference (`sklearn.metrics.accuracy_score`).
pub fn accuracy_score<T: PartialEq>(
    y_true: &[T],
    y_pred: &[T],
    normalize: bool,
    sample_weight: Option<&[f64]>,
) -> Result<f64> {
    check_inputs(y_true, y_pred, sample_weight)?;
    let hits = y_true.iter().zip(y_pred).map(|(t, p)| t == p);
    match sample_weight {
        None => {
            let correct = hits.filter(|&h| h).count() as f64;
            Ok(if normalize { correct / y_true.len() as f64 } else { correct })
        }
        Some(w) => {
            let correct: f64 = hits.zip(w).map(|(h, &w)| if h { w } else { 0.0 }).sum();
            if !normalize {
                return Ok(correct);
            }
            let total: f64 = w.iter().sum();
            if total == 0.0 {
                return Err(MetricsError::arg("sample_weight", "the weights sum to zero"));
            }
            Ok(correct / total)
        }
    }
}

/// Per-class true-positive, predicted and true counts (weighted), for the selected labels.
struct Counts<T> {
    labels: Vec<T>,
    tp: Vec<f64>,
    pred: Vec<f64>,
    truth: Vec<f64>,
}

fn count<T: Ord + Clone>(y_true: &[T], y_pred: &[T], labels: &[T], sample_weight: Option<&[f64]>) -> Counts<T> {
    let index: BTreeMap<&T, usize> = labels.iter().enumerate().map(|(i, l)| (l, i)).collect();
    let n = labels.len();
    let (mut tp, mut pred, mut truth) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for (i, (t, p)) in y_true.iter().zip(y_pred).enumerate() {
        let w = sample_weight.map_or(1.0, |w| w[i]);
        let ti = index.get(t).copied();
        let pi = index.get(p).copied();
        if let Some(ti) = ti {
            truth[ti] += w;
            if t == p {
                tp[ti] += w;
            }
        }
        if let Some(pi) = pi {
            pred[pi] += w;
        }
    }
    Counts { labels: labels.to_vec(), tp, pred, truth }
}

/// `numerator / denominator`, or `zero_division` where the denominator is 0 (`_prf_divide`).
fn prf_divide(numerator: f64, denominator: f64, zero_division: ZeroDivision) -> f64 {
    if denominator == 0.0 { zero_division.value() } else { numerator / denominator }
}

/// The mean of the non-NaN values, weighted if weights are given (`sklearn.utils.extmath._nanaverage`).
fn nan_average(values: &[f64], weights: Option<&[f64]>) -> f64 {
    let kept: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| (v, weights.map_or(1.0, |w| w[i])))
        .collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let mean = || kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64;
    if weights.is_none() {
        return mean();
    }
    let scale: f64 = kept.iter().map(|(_, w)| w).sum();
    if scale == 0.0 {
        // All weights zero: scikit-learn falls back to the unweighted mean.
        return mean();
    }
    kept.iter().map(|(v, w)| v * w).sum::<f64>() / scale
}

/// Precision, recall, F1 and support (`sklearn.metrics.precision_recall_fscore_support` with
/// `beta = 1`), averaged as `options.average` says.
pub fn precision_recall_fscore_support<T: Ord + Clone + Display>(
    y_true: &[T],
    y_pred: &[T],
    options: &PrfOptions<T>,
) -> Result<PrfScores<T>> {
    let weights = options.sample_weight.as_deref();
    check_inputs(y_true, y_pred, weights)?;
    let present = unique_labels(y_true, y_pred);
    let labels: Vec<T> = if options.average == Average::Binary {
        if present.len() > 2 {
            return Err(MetricsError::arg(
                "average",
                format!(
                    "the target is multiclass ({} labels) but average is binary; choose one of micro, macro, weighted, none",
                    present.len()
                ),
            ));
        }
        let pos = options
            .pos_label
            .clone()
            .ok_or_else(|| MetricsError::arg("pos_label", "average=binary needs a positive label"))?;
        if !present.contains(&pos) && present.len() >= 2 {
            let listed: Vec<String> = present.iter().map(ToString::to_string).collect();
            return Err(MetricsError::UnknownLabel {
                key: "pos_label".into(),
                label: pos.to_string(),
                message: format!("it should be one of [{}]", listed.join(", ")),
            });
        }
        vec![pos]
    } else if let Some(labels) = &options.labels {
        if labels.is_empty() {
            return Err(MetricsError::arg("labels", "the list is empty"));
        }
        check_no_duplicates("labels", labels)?;
        labels.clone()
    } else {
        present
    };

    let mut c = count(y_true, y_pred, &labels, weights);
    if options.average == Average::Micro {
        c.tp = vec![c.tp.iter().sum()];
        c.pred = vec![c.pred.iter().sum()];
        c.truth = vec![c.truth.iter().sum()];
    }
    let zd = options.zero_division;
    let n = c.tp.len();
    let precision: Vec<f64> = (0..n).map(|i| prf_divide(c.tp[i], c.pred[i], zd)).collect();
    let recall: Vec<f64> = (0..n).map(|i| prf_divide(c.tp[i], c.truth[i], zd)).collect();
    let f1: Vec<f64> = (0..n).map(|i| prf_divide(2.0 * c.tp[i], 1.0 * c.truth[i] + c.pred[i], zd)).collect();

    if options.average == Average::PerClass {
        let scores = (0..n)
            .map(|i| ClassScore {
                label: c.labels[i].clone(),
                precision: precision[i],
                recall: recall[i],
                f1: f1[i],
                support: c.truth[i],
            })
            .collect();
        return Ok(PrfScores::PerClass(scores));
    }
    let w = (options.average == Average::Weighted).then_some(c.truth.as_slice());
    Ok(PrfScores::Averaged {
        precision: nan_average(&precision, w),
        recall: nan_average(&recall, w),
        f1: nan_average(&f1, w),
    })
}

/// One number per call, or one per class: what [`precision_score`], [`recall_score`] and
/// [`f1_score`] return.
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    /// An averaged score.
    Value(f64),
    /// One score per class, in label order.
    PerClass(Vec<f64>),
}

fn pick<T>(scores: PrfScores<T>, which: fn(f64, f64, f64) -> f64) -> Score {
    match scores {
        PrfScores::Averaged { precision, recall, f1 } => Score::Value(which(precision, recall, f1)),
        PrfScores::PerClass(v) => Score::PerClass(v.iter().map(|c| which(c.precision, c.recall, c.f1)).collect()),
    }
}

/// Precision (`sklearn.metrics.precision_score`).
pub fn precision_score<T: Ord + Clone + Display>(y_true: &[T], y_pred: &[T], options: &PrfOptions<T>) -> Result<Score> {
    Ok(pick(precision_recall_fscore_support(y_true, y_pred, options)?, |p, _, _| p))
}

/// Recall (`sklearn.metrics.recall_score`).
pub fn recall_score<T: Ord + Clone + Display>(y_true: &[T], y_pred: &[T], options: &PrfOptions<T>) -> Result<Score> {
    Ok(pick(precision_recall_fscore_support(y_true, y_pred, options)?, |_, r, _| r))
}

/// F1 score (`sklearn.metrics.f1_score`).
pub fn f1_score<T: Ord + Clone + Display>(y_true: &[T], y_pred: &[T], options: &PrfOptions<T>) -> Result<Score> {
    Ok(pick(precision_recall_fscore_support(y_true, y_pred, options)?, |_, _, f| f))
}

/// How [`confusion_matrix`] normalises its counts (scikit-learn's `normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Each row (true class) sums to 1.
    True,
    /// Each column (predicted class) sums to 1.
    Pred,
    /// The whole matrix sums to 1.
    All,
}

impl FromStr for Normalize {
    type Err = MetricsError;

    /// Reads `true`, `pred` or `all`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "true" => Ok(Normalize::True),
            "pred" => Ok(Normalize::Pred),
            "all" => Ok(Normalize::All),
            other => Err(MetricsError::arg("normalize", format!("`{other}` is not one of true, pred, all, none"))),
        }
    }
}

/// The confusion matrix (`sklearn.metrics.confusion_matrix`): entry `[i][j]` counts (or weighs) the
/// samples whose reference is `labels[i]` and whose prediction is `labels[j]`. `labels` defaults to
/// every label seen, sorted; samples whose reference or prediction is not in `labels` are left out.
/// With `normalize`, rows, columns or the whole matrix are divided by their sum (0 where that is 0).
pub fn confusion_matrix<T: Ord + Clone + Display>(
    y_true: &[T],
    y_pred: &[T],
    labels: Option<&[T]>,
    sample_weight: Option<&[f64]>,
    normalize: Option<Normalize>,
) -> Result<Vec<Vec<f64>>> {
    check_inputs(y_true, y_pred, sample_weight)?;
    let labels: Vec<T> = match labels {
        None => unique_labels(y_true, y_pred),
        Some(l) => {
            if l.is_empty() {
                return Err(MetricsError::arg("labels", "it should contain at least one label"));
            }
            check_no_duplicates("labels", l)?;
            if !y_true.iter().any(|t| l.contains(t)) {
                return Err(MetricsError::arg("labels", "at least one label specified must be in the references"));
            }
            l.to_vec()
        }
    };
    let index: BTreeMap<&T, usize> = labels.iter().enumerate().map(|(i, l)| (l, i)).collect();
    let n = labels.len();
    let mut cm = vec![vec![0.0; n]; n];
    for (k, (t, p)) in y_true.iter().zip(y_pred).enumerate() {
        if let (Some(&i), Some(&j)) = (index.get(t), index.get(p)) {
            cm[i][j] += sample_weight.map_or(1.0, |w| w[k]);
        }
    }
    let nan_to_zero = |x: f64| if x.is_nan() { 0.0 } else { x };
    match normalize {
        None => {}
        Some(Normalize::True) => {
            for row in &mut cm {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|x| *x = nan_to_zero(*x / s));
            }
        }
        Some(Normalize::Pred) => {
            for j in 0..n {
                let s: f64 = cm.iter().map(|r| r[j]).sum();
                cm.iter_mut().for_each(|r| r[j] = nan_to_zero(r[j] / s));
            }
        }
        Some(Normalize::All) => {
            let s: f64 = cm.iter().flatten().sum();
            cm.iter_mut().flatten().for_each(|x| *x = nan_to_zero(*x / s));
        }
    }
    Ok(cm)
}

/// Options of [`classification_report`].
#[derive(Debug, Clone)]
pub struct ReportOptions<T> {
    /// The classes to report, in this order (default: every label seen, sorted).
    pub labels: Option<Vec<T>>,
    /// Display names of the classes, parallel to the labels (default: the labels as text).
    pub target_names: Option<Vec<String>>,
    /// The value of a score whose denominator is zero.
    pub zero_division: ZeroDivision,
}

impl<T> Default for ReportOptions<T> {
    fn default() -> Self {
        Self { labels: None, target_names: None, zero_division: ZeroDivision::Warn }
    }
}

/// One row of a classification report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportRow {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score.
    pub f1: f64,
    /// Support: the number of references of the class (or in total, for the average rows).
    pub support: f64,
}

/// `sklearn.metrics.classification_report`: per-class rows, then the micro average (reported as
/// `accuracy` when every label seen is reported), the macro and the weighted average.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationReport {
    /// `(target name, row)` per class, in label order.
    pub classes: Vec<(String, ReportRow)>,
    /// The micro-averaged row.
    pub micro_avg: ReportRow,
    /// Whether the micro average is the accuracy (and is shown as `accuracy`).
    pub micro_is_accuracy: bool,
    /// The macro-averaged row.
    pub macro_avg: ReportRow,
    /// The support-weighted row.
    pub weighted_avg: ReportRow,
    /// The longest target name, in characters (the text report's first column is at least this wide).
    name_width: usize,
    /// Whether scikit-learn's supports are floats (printed `3.0`): it counts in floats when no
    /// sample at all is predicted correctly.
    float_support: bool,
}

/// Builds the classification report of references and predictions.
pub fn classification_report<T: Ord + Clone + Display>(
    y_true: &[T],
    y_pred: &[T],
    options: &ReportOptions<T>,
) -> Result<ClassificationReport> {
    check_inputs(y_true, y_pred, None)?;
    let present = unique_labels(y_true, y_pred);
    let (labels, labels_given) = match &options.labels {
        Some(l) => (l.clone(), true),
        None => (present.clone(), false),
    };
    let micro_is_accuracy = !labels_given || present.iter().all(|p| labels.contains(p));
    let target_names: Vec<String> = match &options.target_names {
        Some(names) => {
            if names.len() != labels.len() && !labels_given {
                return Err(MetricsError::arg(
                    "target_names",
                    format!(
                        "the number of classes, {}, does not match the size of target_names, {}; try specifying labels",
                        labels.len(),
                        names.len()
                    ),
                ));
            }
            names.clone()
        }
        None => labels.iter().map(ToString::to_string).collect(),
    };
    let opts = |average| PrfOptions {
        average,
        labels: Some(labels.clone()),
        pos_label: None,
        zero_division: options.zero_division,
        sample_weight: None,
    };
    let PrfScores::PerClass(per_class) = precision_recall_fscore_support(y_true, y_pred, &opts(Average::PerClass))?
    else {
        unreachable!("average=None gives per-class scores")
    };
    let total_support: f64 = per_class.iter().map(|c| c.support).sum();
    // Like Python's zip, the rows stop at the shorter of target_names and labels.
    let classes: Vec<(String, ReportRow)> = target_names
        .iter()
        .zip(&per_class)
        .map(|(name, c)| {
            (name.clone(), ReportRow { precision: c.precision, recall: c.recall, f1: c.f1, support: c.support })
        })
        .collect();
    let avg_row = |average| -> Result<ReportRow> {
        match precision_recall_fscore_support(y_true, y_pred, &opts(average))? {
            PrfScores::Averaged { precision, recall, f1 } => {
                Ok(ReportRow { precision, recall, f1, support: total_support })
            }
            PrfScores::PerClass(_) => unreachable!("an average gives averaged scores"),
        }
    };
    Ok(ClassificationReport {
        micro_avg: avg_row(Average::Micro)?,
        macro_avg: avg_row(Average::Macro)?,
        weighted_avg: avg_row(Average::Weighted)?,
        micro_is_accuracy,
        name_width: target_names.iter().map(|n| n.chars().count()).max().unwrap_or(0),
        float_support: !y_true.iter().zip(y_pred).any(|(t, p)| t == p),
        classes,
    })
}

fn row_json(row: &ReportRow) -> Value {
    let mut m = Map::new();
    m.insert("precision".into(), float_json(row.precision));
    m.insert("recall".into(), float_json(row.recall));
    m.insert("f1-score".into(), float_json(row.f1));
    m.insert("support".into(), float_json(row.support));
    Value::Object(m)
}

/// A float as JSON; NaN and infinities (which JSON lacks) become `null`.
pub(crate) fn float_json(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Python's `format(x, '.{digits}f')`, with `nan` for NaN.
fn py_fixed(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".to_string() } else { "-inf".to_string() }
    } else {
        format!("{x:.digits$}")
    }
}

/// A support as Python prints it: `5` for an integer count, `5.0` for a float one.
fn py_count(x: f64, float: bool) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        if float { format!("{}.0", x as i64) } else { format!("{}", x as i64) }
    } else {
        format!("{x}")
    }
}

impl ClassificationReport {
    /// The report as `classification_report(..., output_dict=True)` returns it: one object per
    /// class name with `precision`, `recall`, `f1-score`, `support`, then `accuracy` (a number) or
    /// `micro avg`, then `macro avg` and `weighted avg`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (name, row) in &self.classes {
            m.insert(name.clone(), row_json(row));
        }
        if self.micro_is_accuracy {
            m.insert("accuracy".into(), float_json(self.micro_avg.precision));
        } else {
            m.insert("micro avg".into(), row_json(&self.micro_avg));
        }
        m.insert("macro avg".into(), row_json(&self.macro_avg));
        m.insert("weighted avg".into(), row_json(&self.weighted_avg));
        Value::Object(m)
    }

    /// The report as text, exactly as `classification_report(..., digits=digits)` prints it.
    pub fn to_text(&self, digits: usize) -> String {
        let width = self.name_width.max("weighted avg".len()).max(digits);
        let mut out = format!("{:>width$} ", "");
        for h in ["precision", "recall", "f1-score", "support"] {
            out.push_str(&format!(" {h:>9}"));
        }
        out.push_str("\n\n");
        let row = |out: &mut String, name: &str, r: &ReportRow| {
            out.push_str(&format!("{name:>width$} "));
            for v in [r.precision, r.recall, r.f1] {
                out.push_str(&format!(" {:>9}", py_fixed(v, digits)));
            }
            out.push_str(&format!(" {:>9}\n", py_count(r.support, self.float_support)));
        };
        for (name, r) in &self.classes {
            row(&mut out, name, r);
        }
        out.push('\n');
        if self.micro_is_accuracy {
            out.push_str(&format!("{:>width$} ", "accuracy"));
            out.push_str(&format!(" {:>9} {:>9}", "", ""));
            out.push_str(&format!(" {:>9}", py_fixed(self.micro_avg.f1, digits)));
            out.push_str(&format!(" {:>9}\n", py_count(self.micro_avg.support, self.float_support)));
        } else {
            row(&mut out, "micro avg", &self.micro_avg);
        }
        row(&mut out, "macro avg", &self.macro_avg);
        row(&mut out, "weighted avg", &self.weighted_avg);
        out
    }
}

impl Display for ClassificationReport {
    /// The text report with 2 digits, scikit-learn's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text(2))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(average: Average) -> PrfOptions<i64> {
        PrfOptions { average, pos_label: Some(1), ..PrfOptions::default() }
    }

    #[test]
    fn sklearn_docstring_examples() {
        let y_true = [0, 1, 2, 0, 1, 2];
        let y_pred = [0, 2, 1, 0, 0, 1];
        assert_eq!(accuracy_score(&y_true, &y_pred, true, None).unwrap(), 2.0 / 6.0);
        assert_eq!(f1_score(&y_true, &y_pred, &opts(Average::Macro)).unwrap(), Score::Value(0.26666666666666666));
        assert_eq!(f1_score(&y_true, &y_pred, &opts(Average::Micro)).unwrap(), Score::Value(0.3333333333333333));
        assert_eq!(f1_score(&y_true, &y_pred, &opts(Average::Weighted)).unwrap(), Score::Value(0.26666666666666666));
        assert_eq!(f1_score(&y_true, &y_pred, &opts(Average::PerClass)).unwrap(), Score::PerClass(vec![0.8, 0.0, 0.0]));
        let cm = confusion_matrix(&[2, 0, 2, 2, 0, 1], &[0, 0, 2, 2, 0, 2], None, None, None).unwrap();
        assert_eq!(cm, vec![vec![2.0, 0.0, 0.0], vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 2.0]]);
    }

    #[test]
    fn binary_needs_binary_targets_and_a_known_pos_label() {
        let err = f1_score(&[0, 1, 2], &[0, 1, 2], &opts(Average::Binary)).unwrap_err();
        assert!(err.to_string().contains("multiclass"), "{err}");
        let o = PrfOptions { pos_label: Some(5), ..opts(Average::Binary) };
        let err = f1_score(&[0, 1], &[0, 1], &o).unwrap_err();
        assert!(err.to_string().contains("pos_label"), "{err}");
        // A single class present: pos_label absent is allowed and scores zero_division.
        assert_eq!(precision_score(&[0, 0], &[0, 0], &opts(Average::Binary)).unwrap(), Score::Value(0.0));
    }

    #[test]
    fn zero_division_values() {
        let o = PrfOptions { zero_division: ZeroDivision::One, ..opts(Average::PerClass) };
        // Class 2 is never predicted: its precision is zero_division.
        let s = precision_score(&[0, 1, 2], &[0, 1, 1], &o).unwrap();
        assert_eq!(s, Score::PerClass(vec![1.0, 0.5, 1.0]));
        let o = PrfOptions { zero_division: ZeroDivision::Nan, ..opts(Average::Macro) };
        let Score::Value(v) = precision_score(&[0, 1, 2], &[0, 1, 1], &o).unwrap() else { panic!() };
        assert_eq!(v, 0.75);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(accuracy_score(&[1, 2], &[1], true, None), Err(MetricsError::LengthMismatch { .. })));
        assert!(matches!(accuracy_score::<i64>(&[], &[], true, None), Err(MetricsError::Empty { .. })));
        assert!(confusion_matrix(&[1, 2], &[1, 2], Some(&[7]), None, None).is_err());
        assert!("bogus".parse::<Average>().is_err());
    }

    #[test]
    fn text_report_layout() {
        let y_true = [0, 1, 2, 2, 2];
        let y_pred = [0, 0, 2, 2, 1];
        let names = vec!["class 0".to_string(), "class 1".into(), "class 2".into()];
        let r = classification_report(
            &y_true,
            &y_pred,
            &ReportOptions { target_names: Some(names), ..ReportOptions::default() },
        )
        .unwrap();
        let expected = "              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5
";
        assert_eq!(r.to_text(2), expected);
        assert_eq!(r.to_json()["accuracy"], serde_json::json!(0.6));
    }
}
