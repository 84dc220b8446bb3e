//! Golden tests: every case in `tests/fixtures/metrics/` (computed by scikit-learn, seqeval,
//! rouge_score, NLTK and evaluate's BLEU code through `xtask/python/fixtures_metrics.py`) must come
//! out of ft equal to 1e-9, and every case where the Python reference raises must be an error.
//! Run with `--nocapture` to see the largest difference found per metric.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ft_metrics::evaluate::compute_with;
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/metrics").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Compares `actual` with `expected` (numbers to [`TOLERANCE`], objects with the same keys in the
/// same order), recording the largest numeric difference.
fn compare(expected: &Value, actual: &Value, path: &str, max_diff: &mut f64) -> Result<(), String> {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
            let d = (e - a).abs();
            *max_diff = max_diff.max(d);
            if d <= TOLERANCE { Ok(()) } else { Err(format!("{path}: expected {e}, got {a} (diff {d:e})")) }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: expected {} items, got {}", e.len(), a.len()));
            }
            e.iter().zip(a).enumerate().try_for_each(|(i, (e, a))| compare(e, a, &format!("{path}[{i}]"), max_diff))
        }
        (Value::Object(e), Value::Object(a)) => {
            let ek: Vec<&String> = e.keys().collect();
            let ak: Vec<&String> = a.keys().collect();
            if ek != ak {
                return Err(format!("{path}: expected keys {ek:?}, got {ak:?}"));
            }
            e.iter().try_for_each(|(k, v)| compare(v, &a[k], &format!("{path}.{k}"), max_diff))
        }
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

/// Runs every case of a fixture file; returns per metric (cases, error cases, largest difference).
fn run_cases(file: &str) -> BTreeMap<String, (usize, usize, f64)> {
    let cases = fixture(file);
    let cases = cases.as_array().expect("a fixture file holds a list of cases");
    let mut stats: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let metric = case["metric"].as_str().expect("metric");
        let kwargs = case["kwargs"].as_object().expect("kwargs");
        let result = compute_with(metric, &case["input"], kwargs);
        let entry = stats.entry(metric.to_string()).or_default();
        entry.0 += 1;
        match (case.get("expected"), result) {
            (Some(expected), Ok(actual)) => {
                if let Err(msg) = compare(expected, &actual, "$", &mut entry.2) {
                    failures.push(format!("{file} case {i} ({metric}, kwargs {kwargs:?}): {msg}"));
                }
            }
            (Some(_), Err(e)) => failures.push(format!("{file} case {i} ({metric}): ft failed: {e}")),
            (None, Ok(actual)) => failures
                .push(format!("{file} case {i} ({metric}): Python raised {} but ft returned {actual}", case["error"])),
            (None, Err(_)) => entry.1 += 1,
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
    for (metric, (n, errors, diff)) in &stats {
        println!("{metric:>22}: {n:>4} cases ({errors} expected errors), largest difference {diff:e}");
    }
    stats
}

#[test]
fn classification_matches_scikit_learn() {
    let stats = run_cases("classification.json");
    for m in ["accuracy", "precision", "recall", "f1", "confusion_matrix", "classification_report"] {
        assert!(stats[m].0 >= 100, "{m}: only {} cases", stats[m].0);
    }
}

#[test]
fn seqeval_matches_seqeval() {
    assert!(run_cases("seqeval.json")["seqeval"].0 >= 100);
}

#[test]
fn rouge_matches_rouge_score() {
    assert!(run_cases("rouge.json")["rouge"].0 >= 100);
}

#[test]
fn bleu_matches_evaluate() {
    assert!(run_cases("bleu.json")["bleu"].0 >= 100);
}

#[test]
fn porter_matches_nltk() {
    let f = fixture("porter.json");
    let words = f["words"].as_array().expect("words");
    let stems = f["stems"].as_array().expect("stems");
    let wrong: Vec<String> = words
        .iter()
        .zip(stems)
        .filter_map(|(w, s)| {
            let (w, s) = (w.as_str().expect("word"), s.as_str().expect("stem"));
            let ours = ft_metrics::porter::stem(w);
            (ours != s).then(|| format!("{w}: NLTK {s}, ft {ours}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} stems differ:\n{}", wrong.len(), words.len(), wrong.join("\n"));
    println!("porter: {} words, all equal", words.len());
}

#[test]
fn tokenizers_match() {
    let f = fixture("tokenizers.json");
    let mut wrong = Vec::new();
    for case in f.as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().expect("tokens").iter().map(|t| t.as_str().expect("token").to_string()).collect()
        };
        let checks = [
            ("rouge", ft_metrics::rouge::tokenize(text, false), strings(&case["rouge"])),
            ("rouge_stemmed", ft_metrics::rouge::tokenize(text, true), strings(&case["rouge_stemmed"])),
            ("13a", ft_metrics::bleu::tokenize_13a(text), strings(&case["13a"])),
        ];
        for (name, ours, theirs) in checks {
            if ours != theirs {
                wrong.push(format!("{name} of {text:?}: Python {theirs:?}, ft {ours:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
