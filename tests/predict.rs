//! End-to-end: `ft predict` and `ft info` on the fixture models, and every bad input the issue
//! lists — each must fail with a clear message, a non-zero exit, and no (half-)written output.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::fixture;

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_inputs(dir: &Path, texts: &[&str]) -> PathBuf {
    let path = dir.join("in.jsonl");
    let lines: Vec<String> = texts.iter().map(|t| serde_json::json!({"text": t, "id": 7}).to_string()).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn read_outputs(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn parity_json(model: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("parity/{model}.json"))).unwrap()).unwrap()
}

fn predict(model: &Path, task: &str, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--task",
        task,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ft(&args)
}

/// A copy of a fixture model that a test may damage.
fn model_copy(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(&format!("models/{name}"))).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

#[test]
fn text_classification_matches_transformers_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let json = parity_json("tiny-bert-seqcls");
    let texts: Vec<&str> = json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let input = write_inputs(tmp.path(), &texts);
    let output = tmp.path().join("out.jsonl");
    let o =
        predict(&fixture("models/tiny-bert-seqcls"), "text-classification", &input, &output, &["--batch-size", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_outputs(&output);
    assert_eq!(rows.len(), texts.len());
    for (row, want) in rows.iter().zip(json["pipeline"].as_array().unwrap()) {
        assert_eq!(row["label"], want["label"]);
        assert!((row["score"].as_f64().unwrap() - want["score"].as_f64().unwrap()).abs() < 1e-4);
        assert_eq!(row["logits"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn token_classification_writes_tokens_words_logits_entities() {
    let tmp = tempfile::tempdir().unwrap();
    let json = parity_json("tiny-distilbert-tokcls");
    let texts: Vec<&str> = json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let input = write_inputs(tmp.path(), &texts);
    let output = tmp.path().join("out.jsonl");
    let o = predict(&fixture("models/tiny-distilbert-tokcls"), "token-classification", &input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_outputs(&output);
    assert_eq!(rows.len(), texts.len());
    for (i, row) in rows.iter().enumerate() {
        let enc = &json["encodings"][i];
        assert_eq!(row["input_ids"], enc["input_ids"]);
        assert_eq!(row["word_ids"], enc["word_ids"]);
        let logits = row["logits"].as_array().unwrap();
        assert_eq!(logits.len(), enc["input_ids"].as_array().unwrap().len());
        assert!(logits.iter().all(|r| r.as_array().unwrap().len() == 9));
        let want = json["pipeline"][i].as_array().unwrap();
        let got = row["entities"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "text {i}");
        for (g, w) in got.iter().zip(want) {
            for key in ["entity_group", "word", "start", "end"] {
                assert_eq!(g[key], w[key], "text {i} {key}");
            }
        }
    }
}

#[test]
fn info_lists_architecture_parameters_and_new_weights() {
    let o = ft(&["info", "--model", fixture("models/tiny-bert-seqcls").to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("architecture: BertForSequenceClassification (model_type bert)"), "{out}");
    assert!(out.contains("labels (3): World, Sports, Business"), "{out}");
    assert!(out.contains("newly initialized: none"), "{out}");
    let o = ft(&[
        "info",
        "--model",
        fixture("models/tiny-distilbert").to_str().unwrap(),
        "--task",
        "text-classification",
        "--num-labels",
        "5",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("DistilBertForSequenceClassification"), "{out}");
    assert!(
        out.contains(
            "newly initialized: pre_classifier.weight, pre_classifier.bias, classifier.weight, classifier.bias"
        ),
        "{out}"
    );
}

/// Runs a predict that must fail; checks the message and that the output was not touched.
fn expect_failure(model: &Path, input: &Path, output: &Path, needles: &[&str]) {
    std::fs::write(output, "previous results\n").unwrap();
    let o = predict(model, "text-classification", input, output, &[]);
    let err = stderr(&o);
    assert!(!o.status.success(), "succeeded unexpectedly");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks '{needle}': {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_to_string(output).unwrap(), "previous results\n", "output was modified");
    let leftovers: Vec<_> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ft-partial-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary file left behind");
}

#[test]
fn bad_input_lines_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("models/tiny-bert-seqcls");
    let output = tmp.path().join("out.jsonl");
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"fine\"}\n{\"txt\": \"oops\"}\n").unwrap();
    expect_failure(&model, &input, &output, &["in.jsonl:2", "no \"text\" field"]);
    std::fs::write(&input, "{\"text\": \"fine\"}\n{\"text\": 3}\n").unwrap();
    expect_failure(&model, &input, &output, &["in.jsonl:2", "must be a string"]);
    std::fs::write(&input, "{\"text\": \"fine\"}\nnot json\n").unwrap();
    expect_failure(&model, &input, &output, &["in.jsonl:2", "not valid JSON"]);
    std::fs::write(&input, b"{\"text\": \"fine\"}\n{\"text\": \"\xff\xfe\"}\n").unwrap();
    expect_failure(&model, &input, &output, &["in.jsonl:2", "invalid UTF-8"]);
    expect_failure(&model, &tmp.path().join("missing.jsonl"), &output, &["missing.jsonl"]);
}

#[test]
fn bad_models_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path(), &["hello world"]);
    let output = tmp.path().join("out.jsonl");

    let m = model_copy("tiny-bert-seqcls", &tmp.path().join("a"));
    std::fs::write(m.join("config.json"), "{\"model_type\": \"bert\", \"hidden_size\": ").unwrap();
    expect_failure(&m, &input, &output, &["config.json", "line 1"]);

    std::fs::remove_file(m.join("config.json")).unwrap();
    expect_failure(&m, &input, &output, &["no file 'config.json'"]);

    let m = model_copy("tiny-bert-seqcls", &tmp.path().join("b"));
    std::fs::write(m.join("config.json"), "{\"model_type\": \"t5\"}").unwrap();
    expect_failure(&m, &input, &output, &["unknown model_type 't5'", "bert, distilbert"]);

    let m = model_copy("tiny-bert-seqcls", &tmp.path().join("c"));
    let cfg = std::fs::read_to_string(m.join("config.json"))
        .unwrap()
        .replace("\"hidden_act\": \"gelu_new\"", "\"hidden_act\": \"swoosh\"");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    expect_failure(&m, &input, &output, &["config.json", "swoosh"]);

    let m = model_copy("tiny-bert-seqcls", &tmp.path().join("d"));
    let bytes = std::fs::read(m.join("model.safetensors")).unwrap();
    std::fs::write(m.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    expect_failure(&m, &input, &output, &["model.safetensors", "truncated"]);

    let m = model_copy("tiny-bert-seqcls", &tmp.path().join("e"));
    let cfg = std::fs::read_to_string(m.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 37", "\"intermediate_size\": 38");
    std::fs::write(m.join("config.json"), cfg).unwrap();
    expect_failure(
        &m,
        &input,
        &output,
        &["wrong shape", "bert.encoder.layer.0.intermediate.dense.weight: checkpoint [37, 32] vs model [38, 32]"],
    );

    expect_failure(&tmp.path().join("nope"), &input, &output, &["neither an existing local path nor a Hub id"]);
}

#[test]
fn unwritable_output_fails_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path(), &["hello"]);
    let o = predict(
        &fixture("models/tiny-bert-seqcls"),
        "text-classification",
        &input,
        &tmp.path().join("no/such/dir/out.jsonl"),
        &[],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    let o = predict(&fixture("models/tiny-bert-seqcls"), "text-classification", &input, tmp.path(), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
}

#[test]
fn bad_options_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_inputs(tmp.path(), &["hello"]);
    let output = tmp.path().join("out.jsonl");
    let model = fixture("models/tiny-bert-seqcls");
    let o = predict(&model, "summarization", &input, &output, &[]);
    assert!(stderr(&o).contains("unknown task 'summarization'"));
    let o = predict(&model, "text-classification", &input, &output, &["--batch-size", "0"]);
    assert!(stderr(&o).contains("batch size must be at least 1"), "{}", stderr(&o));
    let o = predict(&model, "text-classification", &input, &output, &["--device", "cuda:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cuda"), "{}", stderr(&o));
    assert!(!output.exists());
}

#[test]
fn max_length_truncates() {
    let tmp = tempfile::tempdir().unwrap();
    let long = "the central bank raised interest rates again ".repeat(20);
    let input = write_inputs(tmp.path(), &[&long]);
    let output = tmp.path().join("out.jsonl");
    let o = ft(&[
        "predict",
        "--model",
        fixture("models/tiny-bert-tokcls").to_str().unwrap(),
        "--task",
        "token-classification",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--max-length",
        "12",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_outputs(&output)[0]["input_ids"].as_array().unwrap().len(), 12);
    let o = ft(&[
        "predict",
        "--model",
        fixture("models/tiny-bert-tokcls").to_str().unwrap(),
        "--task",
        "token-classification",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_outputs(&output)[0]["input_ids"].as_array().unwrap().len(), 40);
}

#[test]
fn a_tokenizer_from_another_model_is_caught_at_the_line() {
    let Some(minilm) = support::minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let m = model_copy("tiny-bert-seqcls", tmp.path());
    // all-MiniLM's vocabulary (30522) is larger than the tiny model's (800).
    std::fs::copy(minilm.join("tokenizer.json"), m.join("tokenizer.json")).unwrap();
    let input = write_inputs(tmp.path(), &["a", "the central bank raised interest rates"]);
    let output = tmp.path().join("out.jsonl");
    expect_failure(&m, &input, &output, &["in.jsonl:", "outside the model's vocabulary of 800"]);
}
