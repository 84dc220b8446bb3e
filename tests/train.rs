//! End-to-end: `ft train` on the tiny fixture models and small generated data — the output
//! directory transformers writes, resume to the same weights bit for bit, NER with seqeval, the
//! frozen encoder + head, and every bad input of the issue.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{copy_dir, fixture};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A separable two-class text dataset: finance words vs sport words, with shared filler
/// (validation rows of 6, 8 or 10 words, so that evaluating longest first reorders them).
fn write_news(dir: &Path, n_train: usize, n_eval: usize) -> PathBuf {
    let data = dir.join("news");
    std::fs::create_dir_all(&data).unwrap();
    let finance = ["bank", "rates", "market", "shares", "profit", "oil", "prices", "company"];
    let sport = ["team", "match", "cup", "season", "players", "coach", "win", "league"];
    let filler = ["the", "on", "in", "said", "new", "week", "after", "for"];
    let mut seed = 7u64;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    for (split, n) in [("train", n_train), ("validation", n_eval)] {
        let mut lines = Vec::new();
        for i in 0..n {
            let label = i % 2;
            let words = if label == 0 { &finance } else { &sport };
            let n_words = if split == "validation" { 6 + 2 * (i % 3) } else { 6 };
            let text: Vec<&str> =
                (0..n_words).map(|k| if k % 2 == 0 { words[next(8)] } else { filler[next(8)] }).collect();
            lines.push(serde_json::json!({"text": text.join(" "), "label": label}).to_string());
        }
        std::fs::write(data.join(format!("{split}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    data
}

fn run_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn news_run(dir: &Path, out: &Path, extra_training: &str) -> PathBuf {
    news_run_with(dir, out, &fixture("models/tiny-bert-seqcls"), "1e-3", extra_training)
}

fn news_run_with(dir: &Path, out: &Path, model: &Path, lr: &str, extra_training: &str) -> PathBuf {
    let data = write_news(dir, 64, 32);
    run_file(
        dir,
        "run.toml",
        &format!(
            r#"
[model]
name = "{model}"
task = "text-classification"
num_labels = 2

[data]
source = "{data}"
eval_split = "validation"

[training]
output_dir = "{out}"
learning_rate = {lr}
per_device_train_batch_size = 8
per_device_eval_batch_size = 16
num_train_epochs = 3
eval_strategy = "epoch"
save_strategy = "epoch"
logging_steps = 4
load_best_model_at_end = true
metric_for_best_model = "accuracy"
weight_decay = 0.01
warmup_ratio = 0.1
seed = 3
{extra_training}
"#,
            model = model.display(),
            data = data.display(),
            out = out.display(),
        ),
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Full fine-tuning of the real all-MiniLM-L6-v2 (a pre-trained model that learns) on a small
/// separable task.
#[test]
fn full_finetuning_writes_transformers_output_layout() {
    let Some(minilm) = support::minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = news_run_with(tmp.path(), &out, &minilm, "1e-4", "");
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Logs are JSON lines with transformers' keys.
    let logs: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        logs.iter()
            .any(|l| l.get("loss").is_some() && l.get("learning_rate").is_some() && l.get("grad_norm").is_some())
    );
    assert_eq!(logs.iter().filter(|l| l.get("eval_accuracy").is_some()).count(), 3);
    assert!(logs.last().unwrap().get("train_runtime").is_some());
    // 64 rows / 8 = 8 steps per epoch; a checkpoint per epoch.
    for step in [8, 16, 24] {
        let c = out.join(format!("checkpoint-{step}"));
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "trainer_state.json",
            "optimizer.bpk",
            "rng_state.json",
        ] {
            assert!(c.join(f).is_file(), "{}/{f}", c.display());
        }
        // The weights are written once per checkpoint (no second copy as a Burn record).
        assert!(!c.join("model.bpk").exists(), "{}", c.display());
    }
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "trainer_state.json",
        "eval_results.json",
        "all_results.json",
        "train_results.json",
        "loss_curve.png",
        "confusion_matrix.png",
        "confusion_matrix.svg",
        "eval_predictions.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let config = json(&out.join("config.json"));
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["1"], "LABEL_1");
    let state = json(&out.join("trainer_state.json"));
    assert_eq!(state["global_step"], 24);
    assert!(state["best_model_checkpoint"].as_str().unwrap().contains("checkpoint-"));
    assert!(state["log_history"].as_array().unwrap().len() >= 6);
    let all = json(&out.join("all_results.json"));
    for k in ["eval_accuracy", "eval_f1_macro", "eval_loss", "train_runtime", "train_samples_per_second"] {
        assert!(all.get(k).is_some(), "all_results.json lacks {k}");
    }
    // It learned the separable task.
    assert!(all["eval_accuracy"].as_f64().unwrap() >= 0.9, "{all}");
    // Evaluation runs longest rows first; the predictions are back in the rows' order (the
    // validation labels alternate 0, 1, 0, ...).
    let preds = json(&out.join("eval_predictions.json"));
    let references: Vec<i64> = preds["references"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(references, (0..32).map(|i| i % 2).collect::<Vec<i64>>());
    // The final model is what the best checkpoint holds, and ft predict loads it.
    let best = PathBuf::from(state["best_model_checkpoint"].as_str().unwrap());
    assert_eq!(
        std::fs::read(best.join("model.safetensors")).unwrap(),
        std::fs::read(out.join("model.safetensors")).unwrap()
    );
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"bank rates market shares\"}\n{\"text\": \"team match cup season\"}\n")
        .unwrap();
    let pred = tmp.path().join("pred.jsonl");
    let o = ft(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--task",
        "text-classification",
        "--input",
        input.to_str().unwrap(),
        "--output",
        pred.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let labels: Vec<String> = std::fs::read_to_string(&pred)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, ["LABEL_0", "LABEL_1"]);
}

#[test]
fn resume_reaches_the_same_weights_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let run = news_run(tmp.path(), &a, "gradient_accumulation_steps = 2\nmax_grad_norm = 0.5");
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "training.load_best_model_at_end=false"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A run killed after its first checkpoint leaves exactly that checkpoint behind.
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    copy_dir(&a.join("checkpoint-4"), &b.join("checkpoint-4"));
    let o = ft(&[
        "train",
        "--config",
        run.to_str().unwrap(),
        "--set",
        "training.load_best_model_at_end=false",
        "--set",
        &format!("training.output_dir=\"{}\"", b.display()),
        "--resume",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&b.join("trainer_state.json"))["global_step"], 12);
    assert!(
        std::fs::read(a.join("model.safetensors")).unwrap() == std::fs::read(b.join("model.safetensors")).unwrap(),
        "resumed weights differ from the uninterrupted run's"
    );
}

#[test]
fn token_classification_reports_seqeval() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ner");
    let run = run_file(
        tmp.path(),
        "ner.toml",
        &format!(
            r#"
[model]
name = "{model}"
task = "token-classification"
[data]
source = "{data}"
train_split = "validation"
eval_split = "validation"
[training]
output_dir = "{out}"
learning_rate = 5e-3
per_device_train_batch_size = 4
num_train_epochs = 2
eval_strategy = "epoch"
save_strategy = "no"
logging_steps = 2
"#,
            model = fixture("models/tiny-bert-tokcls").display(),
            data = fixture("data/mini/ner_parquet").display(),
            out = out.display()
        ),
    );
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = json(&out.join("eval_results.json"));
    for k in ["eval_overall_precision", "eval_overall_recall", "eval_overall_f1", "eval_overall_accuracy", "eval_loss"]
    {
        assert!(eval.get(k).is_some(), "eval_results.json lacks {k}: {eval}");
    }
    assert_eq!(json(&out.join("config.json"))["architectures"][0], "BertForTokenClassification");
    assert!(!out.join("checkpoint-2").exists(), "save_strategy = no wrote a checkpoint");
    // Evaluation ran the rows longest first (row 5, the longest, before the others); the labelled
    // tokens' references come back in the rows' own order: each word's tag, row after row.
    let tags: [&[i64]; 8] = [
        &[3, 0, 7, 0, 0, 0, 7, 0, 0],
        &[1, 2],
        &[5, 0, 1, 0, 5, 6, 0, 5, 0],
        &[1, 2, 0, 1, 2, 0, 5, 0, 0, 0],
        &[5, 0, 0, 0, 0],
        // 41 words, truncated to the tiny model's 40 tokens: its first 15 words.
        &[0, 3, 4, 4, 4, 0, 3, 0, 0, 0, 0, 0, 0, 5, 6],
        &[0, 7, 0, 0],
        &[5, 6, 0, 5, 0, 0, 5],
    ];
    let preds = json(&out.join("eval_predictions.json"));
    assert_eq!(preds["unit"], "token");
    let references: Vec<i64> = preds["references"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(references, tags.concat(), "references not in the rows' order");
}

#[test]
fn frozen_encoder_with_a_linear_head() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("frozen");
    let data = write_news(tmp.path(), 64, 32);
    let run = run_file(
        tmp.path(),
        "frozen.toml",
        &format!(
            r#"
[model]
name = "{model}"
task = "text-classification"
num_labels = 2
[data]
source = "{data}"
[method]
kind = "frozen"
[training]
output_dir = "{out}"
learning_rate = 1e-2
per_device_train_batch_size = 32
num_train_epochs = 5
lr_scheduler_type = "constant"
max_grad_norm = 0
weight_decay = 0.01
eval_strategy = "epoch"
save_strategy = "no"
logging_steps = 2
"#,
            model = fixture("models/tiny-bert").display(),
            data = data.display(),
            out = out.display()
        ),
    );
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = json(&out.join("config.json"));
    assert_eq!(config["ft_head"], "first_token_linear");
    assert_eq!(config["architectures"][0], "BertModel");
    // The encoder's weights are unchanged: the saved encoder equals the base checkpoint's.
    let results = json(&out.join("all_results.json"));
    assert!(results.get("feature_extraction_runtime").is_some(), "{results}");
    let o = ft(&["info", "--model", out.to_str().unwrap()]);
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && info.contains("labels (2)") && info.contains("newly initialized: none"),
        "{info}{}",
        stderr(&o)
    );
}

fn expect_config_error(tmp: &Path, overrides: &[&str], needles: &[&str]) {
    let out = tmp.join("bad-out");
    let run = news_run(tmp, &out, "");
    let mut args = vec!["train", "--config", run.to_str().unwrap()];
    for o in overrides {
        args.push("--set");
        args.push(o);
    }
    let o = ft(&args);
    let err = stderr(&o);
    assert!(!o.status.success(), "succeeded with {overrides:?}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

#[test]
fn bad_run_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    expect_config_error(t, &["training.learning_rat=1e-5"], &["learning_rat", "learning_rate"]);
    expect_config_error(t, &["training.learning_rate=0"], &["training.learning_rate"]);
    expect_config_error(t, &["training.per_device_train_batch_size=0"], &["per_device_train_batch_size"]);
    expect_config_error(t, &["data.eval_split=false"], &["eval_split"]);
    expect_config_error(t, &["data.label_column=\"category\""], &["category"]);
    expect_config_error(t, &["model.task=\"summarization\""], &["model.task"]);
    expect_config_error(t, &["training.output_dir=\"/proc/ft-cannot-write\""], &["/proc/ft-cannot-write"]);
    // A metric the task does not produce is found before any training step.
    expect_config_error(
        t,
        &["training.metric_for_best_model=\"bleu\""],
        &["metric_for_best_model", "eval_bleu", "eval_accuracy"],
    );
    assert!(
        !std::fs::read_dir(t.join("bad-out"))
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("checkpoint-")))
            .unwrap_or(false)
    );
    // Each method has its own keys; a key of another method is an error listing the valid ones.
    expect_config_error(t, &["method.kind=\"frozen\"", "method.head_dropot=0.2"], &["head_dropot", "head_dropout"]);
    expect_config_error(t, &["method.kind=\"full\"", "method.head_dropout=0.2"], &["head_dropout"]);
    // --set errors name the key, not a line of a document the user never wrote.
    expect_config_error(t, &["training.num_train_epochs=\"many\""], &["num_train_epochs", "--set"]);
    let o = ft(&["train", "--config", t.join("missing.toml").to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("missing.toml"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// With `eval_strategy = "no"` no evaluation split is needed (a single training file works);
/// a checkpoint that has a head keeps its labels when the data names none; relative paths in a
/// run file are relative to the run file; `train_loss` is the mean step loss and `total_flos`
/// is counted.
#[test]
fn a_single_training_file_with_the_checkpoints_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("experiment");
    std::fs::create_dir_all(exp.join("data")).unwrap();
    let lines: Vec<String> = (0..12)
        .map(|i| serde_json::json!({"text": format!("market report number {i} on rates"), "label": i % 3}).to_string())
        .collect();
    std::fs::write(exp.join("data/train.jsonl"), lines.join("\n") + "\n").unwrap();
    let model = tmp.path().join("model");
    copy_dir(&fixture("models/tiny-bert-seqcls"), &model);
    let out = tmp.path().join("out");
    let run = run_file(
        &exp,
        "run.toml",
        &format!(
            r#"
[model]
name = "../model"
task = "sentiment-analysis"

[data]
source = "data/train.jsonl"
train_split = "train"

[training]
output_dir = "{out}"
learning_rate = 1e-3
per_device_train_batch_size = 4
num_train_epochs = 1
eval_strategy = "no"
save_strategy = "no"
logging_steps = 2
seed = 0
"#,
            out = out.display()
        ),
    );
    // Run from another directory: the run file's relative paths still resolve.
    let o = Command::new(env!("CARGO_BIN_EXE_ft"))
        .args(["train", "--config", run.to_str().unwrap()])
        .current_dir(tmp.path().join("model"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let config = json(&out.join("config.json"));
    assert_eq!(config["id2label"], json(&fixture("models/tiny-bert-seqcls/config.json"))["id2label"]);
    assert!(!out.join("eval_results.json").exists());
    let state = json(&out.join("trainer_state.json"));
    assert_eq!(state["global_step"], 3);
    assert!(state["total_flos"].as_f64().unwrap() > 0.0, "{state}");
    // train_loss is the mean over the 3 steps — the last one is in no logged window (2 steps).
    let logs: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let windows: Vec<f64> = logs.iter().filter_map(|l| l.get("loss").and_then(Value::as_f64)).collect();
    assert_eq!(windows.len(), 1, "{logs:?}");
    let train_loss = json(&out.join("train_results.json"))["train_loss"].as_f64().unwrap();
    let again = tmp.path().join("out-log-every-step");
    let o = ft(&[
        "train",
        "--config",
        run.to_str().unwrap(),
        "--set",
        &format!("training.output_dir=\"{}\"", again.display()),
        "--set",
        "training.logging_steps=1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let steps: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).unwrap().get("loss").and_then(Value::as_f64))
        .collect();
    assert_eq!(steps.len(), 3);
    let mean = steps.iter().sum::<f64>() / 3.0;
    assert!((train_loss - mean).abs() < 1e-4, "train_loss {train_loss} vs mean step loss {mean} ({steps:?})");
    // Without logging the mean is the same (it used to be the sum of the step losses).
    let quiet = tmp.path().join("out-no-logging");
    let o = ft(&[
        "train",
        "--config",
        run.to_str().unwrap(),
        "--set",
        &format!("training.output_dir=\"{}\"", quiet.display()),
        "--set",
        "training.logging_strategy=\"no\"",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let quiet_loss = json(&quiet.join("train_results.json"))["train_loss"].as_f64().unwrap();
    assert!((quiet_loss - mean).abs() < 1e-4, "logging_strategy = no: train_loss {quiet_loss} vs mean {mean}");
}

#[test]
fn a_diverging_loss_stops_and_names_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nan");
    let run = news_run(tmp.path(), &out, "");
    let o = ft(&[
        "train",
        "--config",
        run.to_str().unwrap(),
        "--set",
        "training.learning_rate=1e30",
        "--set",
        "training.max_grad_norm=0",
        "--set",
        "training.load_best_model_at_end=false",
        "--set",
        "training.save_strategy=\"steps\"",
        "--set",
        "training.save_steps=1",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "a diverging run succeeded");
    assert!(err.contains("loss is") && err.contains("at step"), "{err}");
    let named = err.split("is kept: ").nth(1).map(|s| s.trim().to_string()).unwrap_or_default();
    assert!(named.contains("checkpoint-"), "the last good checkpoint is not named: {err}");
    assert!(Path::new(&named).join("model.safetensors").is_file(), "{named}");
    assert!(!out.join("model.safetensors").exists(), "a final model was written after divergence");
}

/// transformers loads what `ft train` writes: `tests/fixtures/trained/*` are final models of
/// `ft train` runs that `xtask/python/check_from_pretrained.py` loaded with `from_pretrained`
/// (no missing or unexpected weights) and ran; `ft predict` on the same files gives the same
/// logits (`cargo xtask fixtures trained` regenerates them).
#[test]
fn transformers_loads_ft_output() {
    for name in ["bert-seqcls", "distilbert-tokcls"] {
        let dir = fixture(&format!("trained/{name}"));
        let expected = json(&dir.join("expected.json"));
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in.jsonl");
        let texts = expected["texts"].as_array().unwrap();
        let lines: Vec<String> = texts.iter().map(|t| serde_json::json!({"text": t}).to_string()).collect();
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let pred = tmp.path().join("pred.jsonl");
        let task = expected["task"].as_str().unwrap();
        let o = ft(&[
            "predict",
            "--model",
            dir.to_str().unwrap(),
            "--task",
            task,
            "--input",
            input.to_str().unwrap(),
            "--output",
            pred.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let got: Vec<Value> =
            std::fs::read_to_string(&pred).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(got.len(), texts.len());
        let flat = |v: &Value| -> Vec<f64> {
            match v.as_array().unwrap().first() {
                Some(Value::Array(_)) => v
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                    .collect(),
                _ => v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
            }
        };
        let mut worst = 0.0f64;
        for (g, e) in got.iter().zip(expected["logits"].as_array().unwrap()) {
            let (g, e) = (flat(&g["logits"]), flat(e));
            assert_eq!(g.len(), e.len(), "{name}: logits shape");
            worst = g.iter().zip(&e).map(|(a, b)| (a - b).abs()).fold(worst, f64::max);
        }
        assert!(worst < 1e-4, "{name}: ft vs transformers logits differ by {worst}");
        assert!(expected["class"].as_str().unwrap().contains("For"), "{name}");
    }
}

/// `model.random_init`: a GPT-2 pre-trained from scratch from a folder holding only its
/// `config.json` and tokenizer — the weights are written, and the loss falls.
#[test]
fn a_causal_lm_pretrains_from_random_init() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2-config");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("models/tiny-gpt2").join(f), model.join(f)).unwrap();
    }
    let text: String = (0..32)
        .map(|i| {
            serde_json::json!({"text": format!("the cat sat on the mat number {} today", i % 4)}).to_string() + "\n"
        })
        .collect();
    std::fs::write(tmp.path().join("train.jsonl"), text).unwrap();
    let out = tmp.path().join("out");
    let run = run_file(
        tmp.path(),
        "lm.toml",
        &format!(
            "[model]\nname = \"{}\"\ntask = \"causal-lm\"\nrandom_init = true\n[data]\nsource = \"{}\"\ntrain_split = \"train\"\n\
             [training]\noutput_dir = \"{}\"\nlearning_rate = 3e-3\nper_device_train_batch_size = 8\nnum_train_epochs = 6\n\
             logging_steps = 4\nsave_strategy = \"no\"\n",
            model.display(),
            tmp.path().join("train.jsonl").display(),
            out.display()
        ),
    );
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("model.safetensors").is_file());
    let state = json(&out.join("trainer_state.json"));
    let losses: Vec<f64> =
        state["log_history"].as_array().unwrap().iter().filter_map(|e| e.get("loss").and_then(Value::as_f64)).collect();
    assert!(losses.len() >= 3 && losses[losses.len() - 1] < losses[0] - 0.5, "{losses:?}");
    // A frozen base with random weights is refused.
    let bad = std::fs::read_to_string(&run).unwrap().replace("[training]", "[method]\nkind = \"lora\"\n[training]");
    std::fs::write(&run, bad).unwrap();
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("model.random_init"), "{}", stderr(&o));
}
