//! Metrics by name, on JSON, the way Hugging Face evaluate's `load(name).compute(...)` takes and
//! returns them. This is what `ft metrics NAME --input FILE.json --set key=value` runs.
//!
//! The input is `{"predictions": [...], "references": [...]}` exactly as `compute` takes them:
//! integer or string labels for the classification metrics, lists of tags per sentence for
//! `seqeval`, strings (and, for references, a string or a list of strings per prediction) for
//! `rouge` and `bleu`. Keyword arguments are evaluate's (and scikit-learn's) names; the result has
//! evaluate's key names.
//!
//! | metric | keyword arguments (default) | result keys |
//! |---|---|---|
//! | `accuracy` | `normalize` (true), `sample_weight` | `accuracy` |
//! | `precision`, `recall`, `f1` | `average` (binary), `pos_label` (1), `labels`, `sample_weight`, `zero_division` (warn) | `precision` / `recall` / `f1` (a list for `average=none`) |
//! | `confusion_matrix` | `labels`, `sample_weight`, `normalize` (none; true, pred, all) | `confusion_matrix` |
//! | `classification_report` | `labels`, `target_names`, `zero_division`, `output_dict` (true), `digits` (2) | scikit-learn's `output_dict` keys, or `classification_report` (the text) |
//! | `seqeval` | `mode` (none; strict), `scheme` (IOB1, IOB2, IOE1, IOE2, IOBES, BILOU), `suffix` (false), `zero_division` (warn) | one object per entity type, `overall_precision`, `overall_recall`, `overall_f1`, `overall_accuracy` |
//! | `rouge` | `rouge_types` (rouge1, rouge2, rougeL, rougeLsum), `use_aggregator` (true), `use_stemmer` (false) | one key per type: the mean F-measure, or the per-pair list |
//! | `bleu` | `max_order` (4), `smooth` (false) | `bleu`, `precisions`, `brevity_penalty`, `length_ratio`, `translation_length`, `reference_length` |
//!
//! `classification_report` is scikit-learn's (evaluate has no such metric). `rouge`'s aggregate is
//! the exact mean of the per-pair F-measures, where evaluate's is a random bootstrap median (see
//! [`crate::rouge`]).

use serde_json::{Map, Value};

use crate::bleu;
use crate::classification::{self, Average, Normalize, PrfOptions, ReportOptions, Score, ZeroDivision, float_json};
use crate::error::{MetricsError, Result, check_same_len};
use crate::label::Label;
use crate::rouge::{self, RougeType};
use crate::seqeval::{self, Mode, Scheme, SeqevalOptions};

/// The metric names [`compute`] knows.
pub const METRICS: &[&str] =
    &["accuracy", "precision", "recall", "f1", "confusion_matrix", "classification_report", "seqeval", "rouge", "bleu"];

/// The largest `max_order` of `bleu` (a sanity bound: BLEU is used with 4).
const MAX_ORDER: usize = 1000;
/// The most `digits` of a text classification report.
const MAX_DIGITS: usize = 100;

/// The keyword arguments each metric accepts.
pub fn accepted_kwargs(metric: &str) -> Option<&'static [&'static str]> {
    Some(match metric {
        "accuracy" => &["normalize", "sample_weight"],
        "precision" | "recall" | "f1" => &["average", "pos_label", "labels", "sample_weight", "zero_division"],
        "confusion_matrix" => &["labels", "sample_weight", "normalize"],
        "classification_report" => &["labels", "target_names", "zero_division", "output_dict", "digits"],
        "seqeval" => &["mode", "scheme", "suffix", "zero_division"],
        "rouge" => &["rouge_types", "use_aggregator", "use_stemmer"],
        "bleu" => &["max_order", "smooth"],
        _ => return None,
    })
}

/// Parses the text of an input file as JSON.
pub fn parse_input(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(MetricsError::Json)
}

/// Splits a `--set key=value` argument at its first `=`.
pub fn parse_set(arg: &str) -> Result<(String, String)> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(MetricsError::arg("--set", format!("`{arg}` is not of the form key=value"))),
    }
}

/// A `--set` value as JSON: JSON if it parses as JSON (`true`, `3`, `[1, 2]`, `null`,
/// `"text"`), otherwise the text itself as a string (`macro`, `IOB2`, `rouge1,rougeL`).
pub fn kwarg_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// Computes metric `name` on `input` with `key=value` keyword arguments (the values are read by
/// [`kwarg_value`]). A key given twice is an error.
pub fn compute(name: &str, input: &Value, kwargs: &[(String, String)]) -> Result<Value> {
    let mut map = Map::new();
    for (k, v) in kwargs {
        if map.insert(k.clone(), kwarg_value(v)).is_some() {
            return Err(MetricsError::arg(k, "it is set twice"));
        }
    }
    compute_with(name, input, &map)
}

/// Computes metric `name` on `input` with keyword arguments already as JSON values.
pub fn compute_with(name: &str, input: &Value, kwargs: &Map<String, Value>) -> Result<Value> {
    let accepted = accepted_kwargs(name)
        .ok_or_else(|| MetricsError::UnknownMetric { name: name.to_string(), known: METRICS.join(", ") })?;
    for key in kwargs.keys() {
        if !accepted.contains(&key.as_str()) {
            return Err(MetricsError::UnknownArgument {
                metric: name.to_string(),
                key: key.clone(),
                accepted: accepted.join(", "),
            });
        }
    }
    let kw = Kwargs { map: kwargs };
    let (predictions, references) = split_input(input)?;
    match name {
        "accuracy" => accuracy(predictions, references, &kw),
        "precision" | "recall" | "f1" => prf(name, predictions, references, &kw),
        "confusion_matrix" => confusion_matrix(predictions, references, &kw),
        "classification_report" => classification_report(predictions, references, &kw),
        "seqeval" => seqeval_metric(predictions, references, &kw),
        "rouge" => rouge_metric(predictions, references, &kw),
        "bleu" => bleu_metric(predictions, references, &kw),
        _ => Err(MetricsError::UnknownMetric { name: name.to_string(), known: METRICS.join(", ") }),
    }
}

/// `(predictions, references)` of an input object, both arrays and nothing else in it.
fn split_input(input: &Value) -> Result<(&[Value], &[Value])> {
    let obj = input.as_object().ok_or_else(|| {
        MetricsError::input("$", "expected an object {\"predictions\": [...], \"references\": [...]}")
    })?;
    for key in obj.keys() {
        if key != "predictions" && key != "references" {
            return Err(MetricsError::input(
                key.as_str(),
                "unknown key: the input has only `predictions` and `references` (keyword arguments go in --set)",
            ));
        }
    }
    let field = |name: &str| -> Result<&[Value]> {
        obj.get(name)
            .ok_or_else(|| MetricsError::input(name, "missing"))?
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| MetricsError::input(name, "expected an array"))
    };
    let (p, r) = (field("predictions")?, field("references")?);
    check_same_len("predictions", p.len(), "references", r.len())?;
    Ok((p, r))
}

/// Keyword arguments with typed access.
struct Kwargs<'a> {
    map: &'a Map<String, Value>,
}

/// Whether a value means Python's `None`.
fn is_none(v: &Value) -> bool {
    matches!(v, Value::Null) || matches!(v, Value::String(s) if s == "none" || s == "None" || s == "null")
}

impl Kwargs<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
            Some(v) => Err(MetricsError::arg(key, format!("expected true or false, got {v}"))),
        }
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Number(n)) if n.as_u64().is_some() => {
                n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| MetricsError::arg(key, "too large"))
            }
            Some(Value::String(s)) if s.trim().parse::<usize>().is_ok() => {
                s.trim().parse::<usize>().map_err(|e| MetricsError::arg(key, e.to_string()))
            }
            Some(v) => Err(MetricsError::arg(key, format!("expected a non-negative integer, got {v}"))),
        }
    }

    /// A string argument; `None` when absent or none/null.
    fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if is_none(v) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(v) => Err(MetricsError::arg(key, format!("expected a string, got {v}"))),
        }
    }

    /// A list argument: a JSON array, or comma-separated text; `None` when absent or none/null.
    fn list(&self, key: &str) -> Option<Vec<Value>> {
        match self.get(key)? {
            v if is_none(v) => None,
            Value::Array(a) => Some(a.clone()),
            Value::String(s) if s.trim().is_empty() => Some(Vec::new()),
            Value::String(s) => Some(s.split(',').map(|x| kwarg_value(x.trim())).collect()),
            v => Some(vec![v.clone()]),
        }
    }

    fn str_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(items) = self.list(key) else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                v => Err(MetricsError::arg(key, format!("item {i} should be a string, got {v}"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn weights(&self, n: usize) -> Result<Option<Vec<f64>>> {
        let Some(items) = self.list("sample_weight") else {
            return Ok(None);
        };
        let w = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| MetricsError::arg("sample_weight", format!("item {i} should be a number, got {v}")))
            })
            .collect::<Result<Vec<f64>>>()?;
        check_same_len("sample_weight", w.len(), "references", n)?;
        Ok(Some(w))
    }

    fn zero_division(&self) -> Result<ZeroDivision> {
        match self.get("zero_division") {
            None => Ok(ZeroDivision::Warn),
            Some(Value::Number(n)) => n.to_string().parse(),
            Some(Value::String(s)) => s.parse(),
            Some(v) => Err(MetricsError::arg("zero_division", format!("expected warn, 0, 1 or nan, got {v}"))),
        }
    }

    /// One label, read as the kind of the data's labels (`"1"` is the string label `1` when the
    /// data's labels are strings, the integer 1 when they are integers).
    fn label(&self, key: &str, v: &Value, strings: bool) -> Result<Label> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) if !strings => Ok(Label::Int(i)),
                _ if strings => Ok(Label::Str(n.to_string())),
                _ => Err(MetricsError::arg(key, format!("{n} is not an integer label"))),
            },
            Value::String(s) => {
                if !strings && let Ok(i) = s.trim().parse::<i64>() {
                    return Ok(Label::Int(i));
                }
                Ok(Label::Str(s.clone()))
            }
            Value::Bool(b) => Ok(if strings { Label::Str(b.to_string()) } else { Label::Int(i64::from(*b)) }),
            v => Err(MetricsError::arg(key, format!("expected a label (integer or string), got {v}"))),
        }
    }

    fn labels(&self, strings: bool) -> Result<Option<Vec<Label>>> {
        let Some(items) = self.list("labels") else {
            return Ok(None);
        };
        items.iter().map(|v| self.label("labels", v, strings)).collect::<Result<Vec<_>>>().map(Some)
    }
}

/// Class labels of one field: integers (or integral floats) or strings, one kind only.
fn read_labels(values: &[Value], field: &str) -> Result<Vec<Label>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
                .map(Label::Int)
                .ok_or_else(|| MetricsError::input(format!("{field}[{i}]"), format!("{n} is not an integer label"))),
            Value::String(s) => Ok(Label::Str(s.clone())),
            v => Err(MetricsError::input(
                format!("{field}[{i}]"),
                format!("expected a class label (an integer or a string), got {v}"),
            )),
        })
        .collect()
}

/// Both fields' labels, checked to be of one kind. Returns whether they are strings.
fn class_inputs(predictions: &[Value], references: &[Value]) -> Result<(Vec<Label>, Vec<Label>, bool)> {
    let p = read_labels(predictions, "predictions")?;
    let r = read_labels(references, "references")?;
    let first = r.first().or(p.first()).map(Label::kind);
    for (field, labels) in [("references", &r), ("predictions", &p)] {
        if let Some(i) = labels.iter().position(|l| Some(l.kind()) != first) {
            return Err(MetricsError::input(
                format!("{field}[{i}]"),
                "mix of string and integer labels: all labels must be of one kind",
            ));
        }
    }
    Ok((p, r, first == Some("string")))
}

fn accuracy(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r, _) = class_inputs(predictions, references)?;
    let w = kw.weights(r.len())?;
    let a = classification::accuracy_score(&r, &p, kw.bool("normalize", true)?, w.as_deref())?;
    Ok(object([("accuracy", float_json(a))]))
}

fn prf(name: &str, predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r, strings) = class_inputs(predictions, references)?;
    let average = match kw.get("average") {
        None => Average::Binary,
        Some(v) if is_none(v) => Average::PerClass,
        Some(Value::String(s)) => s.parse()?,
        Some(v) => {
            return Err(MetricsError::arg("average", format!("expected a string, got {v}")));
        }
    };
    let pos_label = match kw.get("pos_label") {
        None => Label::Int(1),
        Some(v) => kw.label("pos_label", v, strings)?,
    };
    let options = PrfOptions {
        average,
        labels: kw.labels(strings)?,
        pos_label: Some(pos_label),
        zero_division: kw.zero_division()?,
        sample_weight: kw.weights(r.len())?,
    };
    let score = match name {
        "precision" => classification::precision_score(&r, &p, &options)?,
        "recall" => classification::recall_score(&r, &p, &options)?,
        _ => classification::f1_score(&r, &p, &options)?,
    };
    // evaluate returns a float whenever the score has one element, a list otherwise.
    let value = match score {
        Score::Value(v) => float_json(v),
        Score::PerClass(v) if v.len() == 1 => float_json(v[0]),
        Score::PerClass(v) => Value::Array(v.into_iter().map(float_json).collect()),
    };
    Ok(object([(name, value)]))
}

fn confusion_matrix(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r, strings) = class_inputs(predictions, references)?;
    let labels = kw.labels(strings)?;
    let weights = kw.weights(r.len())?;
    let normalize = kw.opt_str("normalize")?.map(|s| s.parse::<Normalize>()).transpose()?;
    let cm = classification::confusion_matrix(&r, &p, labels.as_deref(), weights.as_deref(), normalize)?;
    let as_counts = weights.is_none() && normalize.is_none();
    let rows = cm
        .into_iter()
        .map(|row| {
            Value::Array(
                row.into_iter().map(|x| if as_counts { Value::from(x as u64) } else { float_json(x) }).collect(),
            )
        })
        .collect();
    Ok(object([("confusion_matrix", Value::Array(rows))]))
}

fn classification_report(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r, strings) = class_inputs(predictions, references)?;
    let options = ReportOptions {
        labels: kw.labels(strings)?,
        target_names: kw.str_list("target_names")?,
        zero_division: kw.zero_division()?,
    };
    let report = classification::classification_report(&r, &p, &options)?;
    if kw.bool("output_dict", true)? {
        Ok(report.to_json())
    } else {
        let digits = kw.usize("digits", 2)?;
        if digits > MAX_DIGITS {
            return Err(MetricsError::arg("digits", format!("{digits} is more than {MAX_DIGITS}")));
        }
        Ok(object([("classification_report", Value::String(report.to_text(digits)))]))
    }
}

fn string_list(v: &Value, path: &str) -> Result<Vec<String>> {
    let items =
        v.as_array().ok_or_else(|| MetricsError::input(path, format!("expected a list of strings, got {v}")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| MetricsError::input(format!("{path}[{i}]"), format!("expected a string, got {x}")))
        })
        .collect()
}

fn seqeval_metric(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let read = |values: &[Value], field: &str| -> Result<Vec<Vec<String>>> {
        values.iter().enumerate().map(|(i, v)| string_list(v, &format!("{field}[{i}]"))).collect()
    };
    let p = read(predictions, "predictions")?;
    let r = read(references, "references")?;
    let mode = match kw.opt_str("mode")?.as_deref() {
        None | Some("default") => Mode::Default,
        Some("strict") => Mode::Strict,
        Some(other) => {
            return Err(MetricsError::arg("mode", format!("`{other}` is not one of strict, none")));
        }
    };
    let scheme = kw.opt_str("scheme")?.map(|s| s.parse::<Scheme>()).transpose()?;
    let zero_division = kw.zero_division()?;
    if zero_division == ZeroDivision::Nan {
        return Err(MetricsError::arg("zero_division", "seqeval accepts warn, 0 or 1"));
    }
    let options = SeqevalOptions { mode, scheme, suffix: kw.bool("suffix", false)?, zero_division };
    Ok(seqeval::seqeval(&r, &p, &options)?.to_json())
}

/// Predictions (strings) and references (a string or a list of strings per prediction).
fn text_inputs(predictions: &[Value], references: &[Value]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let p = predictions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| MetricsError::input(format!("predictions[{i}]"), format!("expected a string, got {v}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let multi = references.first().is_some_and(Value::is_array);
    let r = references
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("references[{i}]");
            match (multi, v) {
                (false, Value::String(s)) => Ok(vec![s.clone()]),
                (true, Value::Array(_)) => string_list(v, &path),
                _ => Err(MetricsError::input(path, "every reference must be a string, or every one a list of strings")),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((p, r))
}

fn rouge_metric(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r) = text_inputs(predictions, references)?;
    let types = match kw.str_list("rouge_types")? {
        None => RougeType::defaults(),
        Some(names) if names.is_empty() => {
            return Err(MetricsError::arg("rouge_types", "the list is empty"));
        }
        Some(names) => names.iter().map(|n| RougeType::parse(n)).collect::<Result<Vec<_>>>()?,
    };
    let use_stemmer = kw.bool("use_stemmer", false)?;
    let mut out = Map::new();
    if kw.bool("use_aggregator", true)? {
        let means = rouge::rouge_mean(&p, &r, &types, use_stemmer)?;
        for (t, m) in types.iter().zip(means) {
            out.insert(t.name(), float_json(m));
        }
    } else {
        if p.is_empty() {
            return Err(MetricsError::empty("predictions"));
        }
        let per_pair = rouge::rouge_per_pair(&p, &r, &types, use_stemmer)?;
        for (t, v) in types.iter().zip(per_pair) {
            out.insert(t.name(), Value::Array(v.into_iter().map(float_json).collect()));
        }
    }
    Ok(Value::Object(out))
}

fn bleu_metric(predictions: &[Value], references: &[Value], kw: &Kwargs<'_>) -> Result<Value> {
    let (p, r) = text_inputs(predictions, references)?;
    let max_order = kw.usize("max_order", 4)?;
    if max_order > MAX_ORDER {
        return Err(MetricsError::arg("max_order", format!("{max_order} is more than {MAX_ORDER}")));
    }
    let s = bleu::bleu(&p, &r, max_order, kw.bool("smooth", false)?)?;
    Ok(object([
        ("bleu", float_json(s.bleu)),
        ("precisions", Value::Array(s.precisions.into_iter().map(float_json).collect())),
        ("brevity_penalty", float_json(s.brevity_penalty)),
        ("length_ratio", float_json(s.length_ratio)),
        ("translation_length", Value::from(s.translation_length)),
        ("reference_length", Value::from(s.reference_length)),
    ]))
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn classification_by_name() {
        let input = json!({"predictions": [0, 2, 1, 0, 0, 1], "references": [0, 1, 2, 0, 1, 2]});
        assert_eq!(compute("accuracy", &input, &[]).unwrap(), json!({"accuracy": 2.0 / 6.0}));
        let f1 = compute("f1", &input, &set(&[("average", "macro")])).unwrap();
        assert_eq!(f1, json!({"f1": 0.26666666666666666}));
        let f1 = compute("f1", &input, &set(&[("average", "none")])).unwrap();
        assert_eq!(f1, json!({"f1": [0.8, 0.0, 0.0]}));
        let cm = compute("confusion_matrix", &input, &set(&[("labels", "[2,1,0]")])).unwrap();
        assert_eq!(cm, json!({"confusion_matrix": [[0, 2, 0], [1, 0, 1], [0, 0, 2]]}));
        // Binary is the default average, as in evaluate: a multiclass target is an error.
        let err = compute("f1", &input, &[]).unwrap_err().to_string();
        assert!(err.contains("average"), "{err}");
    }

    #[test]
    fn string_labels_and_coercion() {
        let input = json!({"predictions": ["1", "0", "1"], "references": ["1", "1", "0"]});
        let p = compute("precision", &input, &set(&[("pos_label", "1")])).unwrap();
        assert_eq!(p, json!({"precision": 0.5}));
        let mixed = json!({"predictions": [1, "0"], "references": [1, 0]});
        let err = compute("accuracy", &mixed, &[]).unwrap_err().to_string();
        assert!(err.contains("predictions[1]"), "{err}");
    }

    #[test]
    fn text_metrics_by_name() {
        let input = json!({"predictions": ["hello there general kenobi", "foo bar foobar"],
                           "references": [["hello there general kenobi", "hello there!"], ["foo bar foobar"]]});
        assert_eq!(compute("bleu", &input, &[]).unwrap()["bleu"], json!(1.0));
        let r =
            compute("rouge", &input, &set(&[("rouge_types", "rouge1,rougeL"), ("use_aggregator", "false")])).unwrap();
        assert_eq!(r, json!({"rouge1": [1.0, 1.0], "rougeL": [1.0, 1.0]}));
    }

    #[test]
    fn seqeval_by_name() {
        let input = json!({"predictions": [["B-PER", "I-PER", "O"]], "references": [["B-PER", "I-PER", "O"]]});
        let out = compute("seqeval", &input, &set(&[("mode", "strict"), ("scheme", "IOB2")])).unwrap();
        assert_eq!(out["PER"], json!({"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}));
        assert_eq!(out["overall_accuracy"], json!(1.0));
        let err = compute("seqeval", &input, &set(&[("scheme", "IOB9")])).unwrap_err().to_string();
        assert!(err.contains("IOB9"), "{err}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let input = json!({"predictions": [1, 2], "references": [1]});
        let err = compute("accuracy", &input, &[]).unwrap_err().to_string();
        assert!(err.contains("predictions") && err.contains("references"), "{err}");
        let ok = json!({"predictions": [1], "references": [1]});
        let err = compute("accuracy", &ok, &set(&[("bogus", "1")])).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("normalize"), "{err}");
        let err = compute("accuracy", &ok, &set(&[("normalize", "true"), ("normalize", "false")])).unwrap_err();
        assert!(err.to_string().contains("twice"));
        assert!(compute("nope", &ok, &[]).unwrap_err().to_string().contains("known metrics"));
        assert!(matches!(parse_input("{not json"), Err(MetricsError::Json(_))));
        assert!(parse_set("novalue").is_err());
        assert_eq!(parse_set("a=b=c").unwrap(), ("a".to_string(), "b=c".to_string()));
        let extra = json!({"predictions": [1], "references": [1], "average": "macro"});
        assert!(compute("accuracy", &extra, &[]).unwrap_err().to_string().contains("average"));
    }
}
