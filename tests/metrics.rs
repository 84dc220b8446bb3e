//! End-to-end tests of `ft metrics`: the binary reads a `{"predictions", "references"}` file,
//! takes evaluate's keyword arguments with `--set`, and prints one JSON object; bad input exits
//! non-zero with a clear message and no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).output().unwrap_or_else(|e| panic!("running ft {args:?}: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Runs `ft metrics METRIC --input FILE [--set ...]` on `input` and returns the printed JSON.
fn metrics_ok(metric: &str, input: &Value, sets: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = write(dir.path(), "input.json", &input.to_string());
    let mut args = vec!["metrics", metric, "--input", file.to_str().unwrap_or_default()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = ft(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ft {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line, got {stdout:?}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
}

/// Runs `ft metrics` on a raw input text, expecting failure; returns stderr.
fn metrics_err(metric: &str, input_text: &str, sets: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let file = write(dir.path(), "input.json", input_text);
    let mut args = vec!["metrics", metric, "--input", file.to_str().unwrap_or_default()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = ft(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "ft {args:?} should fail, printed {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "ft {args:?} panicked:\n{stderr}");
    stderr
}

fn approx(v: &Value, expected: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((x - expected).abs() < 1e-12, "{x} != {expected}");
}

#[test]
fn accuracy_and_f1() {
    let input = json!({"predictions": [0, 2, 1, 0, 0, 1], "references": [0, 1, 2, 0, 1, 2]});
    let out = metrics_ok("accuracy", &input, &[]);
    assert_eq!(out.as_object().map(|o| o.len()), Some(1));
    approx(&out["accuracy"], 1.0 / 3.0);
    let out = metrics_ok("f1", &input, &["average=macro"]);
    approx(&out["f1"], 0.26666666666666666);
    let out = metrics_ok("f1", &input, &["average=none"]);
    assert_eq!(out, json!({"f1": [0.8, 0.0, 0.0]}));
    let out = metrics_ok("confusion_matrix", &input, &[]);
    assert_eq!(out, json!({"confusion_matrix": [[2, 0, 0], [1, 0, 1], [0, 2, 0]]}));
}

#[test]
fn seqeval_strict() {
    let input = json!({
        "predictions": [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
        "references": [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    });
    let out = metrics_ok("seqeval", &input, &[]);
    approx(&out["overall_f1"], 0.5);
    approx(&out["overall_accuracy"], 0.8);
    assert_eq!(out["PER"], json!({"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}));
    let strict = metrics_ok("seqeval", &input, &["mode=strict", "scheme=IOB2"]);
    approx(&strict["overall_f1"], 0.5);
}

#[test]
fn rouge_with_stemmer() {
    let input = json!({"predictions": ["the runners were running fast"], "references": ["the runner runs fast"]});
    let plain = metrics_ok("rouge", &input, &[]);
    let stemmed = metrics_ok("rouge", &input, &["use_stemmer=true"]);
    for key in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
        assert!(stemmed[key].as_f64() > plain[key].as_f64(), "{key}: stemming should raise the score");
    }
    // With stems: "the runner were run fast" against "the runner run fast": P = 4/5, R = 4/4.
    approx(&stemmed["rouge1"], 2.0 * 0.8 / 1.8);
    let per_pair = metrics_ok("rouge", &input, &["use_stemmer=true", "use_aggregator=false", "rouge_types=rouge1"]);
    assert_eq!(per_pair.as_object().map(|o| o.len()), Some(1));
    approx(&per_pair["rouge1"][0], 2.0 * 0.8 / 1.8);
}

#[test]
fn bleu_several_references() {
    let input = json!({
        "predictions": ["hello there general kenobi", "foo bar foobar"],
        "references": [["hello there general kenobi", "hello there!"], ["foo bar foobar"]]
    });
    let out = metrics_ok("bleu", &input, &[]);
    approx(&out["bleu"], 1.0);
    assert_eq!(out["translation_length"], json!(7));
    assert_eq!(out["reference_length"], json!(6));
    assert_eq!(out["precisions"].as_array().map(Vec::len), Some(4));
}

#[test]
fn length_mismatch_is_an_error() {
    let err = metrics_err("accuracy", r#"{"predictions": [1, 0], "references": [1]}"#, &[]);
    assert!(err.contains("predictions") && err.contains("references") && err.contains("same length"), "{err}");
}

#[test]
fn unknown_set_key_is_an_error() {
    let err = metrics_err("f1", r#"{"predictions": [1, 0], "references": [1, 1]}"#, &["avrage=macro"]);
    assert!(err.contains("avrage") && err.contains("average"), "{err}");
    let err = metrics_err("f1", r#"{"predictions": [1, 0], "references": [1, 1]}"#, &["average"]);
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn non_json_input_is_an_error() {
    let err = metrics_err("accuracy", "predictions: [1, 2]", &[]);
    assert!(err.contains("JSON"), "{err}");
}

#[test]
fn other_bad_inputs_are_errors() {
    let ok = r#"{"predictions": [["B-PER"]], "references": [["B-PER"]]}"#;
    let err = metrics_err("seqeval", ok, &["mode=strict", "scheme=IOB7"]);
    assert!(err.contains("IOB7") && err.contains("IOB2"), "{err}");
    let err = metrics_err("nope", ok, &[]);
    assert!(err.contains("nope") && err.contains("accuracy"), "{err}");
    let err = metrics_err("f1", r#"{"predictions": [0, 1, 2], "references": [0, 1, 2]}"#, &[]);
    assert!(err.contains("average"), "{err}");
    let err = metrics_err("accuracy", r#"{"predictions": [1, "a"], "references": [1, 0]}"#, &[]);
    assert!(err.contains("predictions[1]"), "{err}");
    let out = ft(&["metrics", "accuracy", "--input", "/nonexistent/ft-metrics-input.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ft-metrics-input.json"));
}
