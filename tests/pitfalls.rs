//! End-to-end: the notebook's §14 pitfalls caught by `ft train` on the tiny fixtures — label
//! leakage (a warning, `--strict` an error), overfitting (a warning naming early stopping),
//! a tokenizer that does not fit the model (an error before training), and the forgetting probe
//! of causal-LM runs (perplexity on generic text before and after).

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

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn write_jsonl(path: &Path, rows: &[(String, usize)]) {
    let body: String =
        rows.iter().map(|(t, l)| serde_json::json!({"text": t, "label": l}).to_string() + "\n").collect();
    std::fs::write(path, body).unwrap();
}

/// Distinct two-class rows: finance (0) and sport (1) words with a row number.
fn rows(prefix: &str, n: usize) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| {
            let label = i % 2;
            let words = if label == 0 { "bank rates market shares" } else { "team match cup season" };
            (format!("{prefix} {i} {words}"), label)
        })
        .collect()
}

fn classification_run(dir: &Path, model: &Path, training: &str) -> PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            r#"[model]
name = "{model}"
task = "text-classification"
num_labels = 2

[data]
source = "{data}"
eval_split = "validation"

[training]
output_dir = "{out}"
per_device_train_batch_size = 8
per_device_eval_batch_size = 16
save_strategy = "no"
seed = 1
{training}
"#,
            model = model.display(),
            data = dir.join("data").display(),
            out = dir.join("out").display(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn label_leakage_is_a_warning_and_strict_makes_it_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let train = rows("train", 32);
    // Three training texts reach the evaluation split, one with other spacing and case.
    let mut eval = rows("eval", 13);
    eval.push(train[3].clone());
    eval.push(train[10].clone());
    eval.push((train[21].0.to_uppercase().replace(' ', "  "), train[21].1));
    write_jsonl(&data.join("train.jsonl"), &train);
    write_jsonl(&data.join("validation.jsonl"), &eval);
    let run = classification_run(
        tmp.path(),
        &fixture("models/tiny-bert-seqcls"),
        "num_train_epochs = 1\neval_strategy = \"epoch\"",
    );
    let run = run.to_str().unwrap();

    let o = ft(&["train", "--config", run, "--strict"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "--strict trained despite the leakage");
    assert!(err.contains("leakage") && err.contains("3 of the 16"), "{err}");
    assert!(err.contains("\"train 3 team match cup season\"") && err.contains("--strict: label leakage"), "{err}");
    assert!(!tmp.path().join("out/model.safetensors").exists(), "--strict wrote a model");

    let o = ft(&["train", "--config", run]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: label leakage: 3 of the 16 evaluation texts"), "{err}");
    let state = json(&tmp.path().join("out/trainer_state.json"));
    let found = state["ft_pitfalls"].as_array().unwrap();
    let leak = found.iter().find(|p| p["kind"] == "leakage").unwrap_or_else(|| panic!("{state}"));
    assert_eq!(leak["details"]["eval_rows_in_train"], 3);
    assert_eq!(leak["details"]["examples"].as_array().unwrap().len(), 3);
    // Full fine-tuning: every parameter trains.
    let params = &state["ft_parameters"];
    assert!(params["trainable"].as_u64().unwrap() > 0 && params["trainable"] == params["total"], "{params}");
}

#[test]
fn overfitting_is_a_warning_that_names_early_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The evaluation split's labels contradict the training split's: the better the model fits
    // the training rows, the worse its evaluation loss.
    let train = rows("train", 32);
    let eval: Vec<(String, usize)> = rows("eval", 16).into_iter().map(|(t, l)| (t, 1 - l)).collect();
    write_jsonl(&data.join("train.jsonl"), &train);
    write_jsonl(&data.join("validation.jsonl"), &eval);
    let run = classification_run(
        tmp.path(),
        &fixture("models/tiny-bert-seqcls"),
        "learning_rate = 3e-3\nnum_train_epochs = 6\neval_strategy = \"epoch\"\nlogging_steps = 4",
    );
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: overfitting: eval_loss rose"), "{err}");
    assert!(err.contains("early_stopping_patience"), "{err}");
    let state = json(&tmp.path().join("out/trainer_state.json"));
    let p = state["ft_pitfalls"].as_array().unwrap().iter().find(|p| p["kind"] == "overfitting").cloned();
    let p = p.unwrap_or_else(|| panic!("{state}"));
    let eval_loss: Vec<f64> =
        p["details"]["eval_loss"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(eval_loss.windows(2).all(|w| w[1] > w[0]), "{eval_loss:?}");

    // Turned off with overfitting_patience = 0.
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "training.overfitting_patience=0"]);
    assert!(o.status.success() && !stderr(&o).contains("overfitting"), "{}", stderr(&o));
}

#[test]
fn a_tokenizer_that_does_not_fit_the_model_is_an_error_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_jsonl(&data.join("train.jsonl"), &rows("train", 8));
    write_jsonl(&data.join("validation.jsonl"), &rows("eval", 4));
    // The BERT fixture's tokenizer on a model whose embeddings have fewer rows.
    let model = tmp.path().join("model");
    copy_dir(&fixture("models/tiny-bert-seqcls"), &model);
    let config_path = model.join("config.json");
    let mut config = json(&config_path);
    config["vocab_size"] = Value::from(50);
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let run = classification_run(tmp.path(), &model, "num_train_epochs = 1");
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("tokenizer mismatch") && err.contains("50 embedding rows"), "{err}");
    assert!(err.contains("tokenizer.json"), "{err}");
    assert!(!tmp.path().join("out/trainer_state.json").exists(), "training started");
}

/// A tokenizer that has none of the model's special tokens: GPT-2's config (end of text = 50256)
/// with a BERT tokenizer whose ids all fit the embeddings.
#[test]
fn a_tokenizer_without_the_models_special_tokens_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    copy_dir(&fixture("models/tiny-gpt2"), &model);
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("models/tiny-bert-seqcls").join(f), model.join(f)).unwrap();
    }
    let body: String = (0..8).map(|i| serde_json::json!({"text": format!("a line {i}")}).to_string() + "\n").collect();
    std::fs::write(tmp.path().join("train.jsonl"), body).unwrap();
    let run = tmp.path().join("run.toml");
    std::fs::write(
        &run,
        format!(
            "[model]\nname = \"{}\"\ntask = \"causal-lm\"\n[data]\nsource = \"{}\"\ntrain_split = \"train\"\n[training]\n\
             output_dir = \"{}\"\nnum_train_epochs = 1\nsave_strategy = \"no\"\n",
            model.display(),
            tmp.path().join("train.jsonl").display(),
            tmp.path().join("out").display()
        ),
    )
    .unwrap();
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("tokenizer mismatch") && err.contains("bos_token_id = 50256"), "{err}");
}

fn causal_run(dir: &Path, lr: &str, epochs: usize) -> PathBuf {
    // One sentence, over and over: the surest way to make a language model forget the rest.
    let body: String =
        (0..16).map(|_| serde_json::json!({"text": "zebra zebra quantum zebra"}).to_string() + "\n").collect();
    std::fs::write(dir.join("train.jsonl"), body).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            r#"[model]
name = "{model}"
task = "causal-lm"

[data]
source = "{data}"
train_split = "train"

[method]
kind = "full"

[training]
output_dir = "{out}"
learning_rate = {lr}
per_device_train_batch_size = 4
num_train_epochs = {epochs}
save_strategy = "no"
seed = 0
"#,
            model = fixture("models/tiny-gpt2").display(),
            data = dir.join("train.jsonl").display(),
            out = dir.join("out").display(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn causal_lm_runs_report_perplexity_on_generic_text_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let run = causal_run(tmp.path(), "1e-2", 8);
    let o = ft(&["train", "--config", run.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let results = json(&tmp.path().join("out/all_results.json"));
    let before = results["generic_perplexity_before"].as_f64().unwrap_or_else(|| panic!("{results}"));
    let after = results["generic_perplexity_after"].as_f64().unwrap();
    println!("generic perplexity: {before:.1} before, {after:.1} after");
    assert!(before.is_finite() && before > 1.0, "{results}");
    assert!(after > 1.2 * before, "training on one sentence did not hurt generic text: {before} → {after}");
    assert!(err.contains("warning: catastrophic forgetting"), "{err}");
    let state = json(&tmp.path().join("out/trainer_state.json"));
    let p = state["ft_pitfalls"].as_array().unwrap().iter().find(|p| p["kind"] == "forgetting").cloned().unwrap();
    assert_eq!(p["warning"], true);
    assert_eq!(p["details"]["generic_perplexity_after"].as_f64().unwrap(), after);
}

#[test]
fn an_image_in_both_splits_is_leakage() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    for split in ["train", "test"] {
        for class in std::fs::read_dir(fixture("vision-train/images").join(split)).unwrap().flatten() {
            copy_dir(&class.path(), &images.join(split).join(class.file_name()));
        }
    }
    let class_dir = std::fs::read_dir(images.join("train")).unwrap().next().unwrap().unwrap().path();
    let class = class_dir.file_name().unwrap().to_owned();
    let first = std::fs::read_dir(&class_dir).unwrap().next().unwrap().unwrap().path();
    // The same file under another name in the test split.
    std::fs::copy(&first, images.join("test").join(&class).join("renamed-copy.png")).unwrap();
    let run = tmp.path().join("run.toml");
    std::fs::write(
        &run,
        format!(
            "[model]\nname = \"{}\"\ntask = \"image-classification\"\n[data]\nsource = \"{}\"\ntrain_split = \"train\"\n\
             eval_split = \"test\"\nimage_size = 32\n[method]\nkind = \"frozen\"\n[training]\noutput_dir = \"{}\"\n\
             num_train_epochs = 1\nsave_strategy = \"no\"\n",
            fixture("models/tiny-resnet").display(),
            images.display(),
            tmp.path().join("out").display()
        ),
    )
    .unwrap();
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--strict"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("--strict: label leakage: 1 of the") && err.contains("evaluation images"), "{err}");
    assert!(err.contains("renamed-copy.png"), "{err}");
}
