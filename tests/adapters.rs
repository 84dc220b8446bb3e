//! End-to-end bottleneck adapters (AdapterHub's `adapters` library): the issue's run file as
//! written, leaving the adapter and its head in the library's layout in `out/`; `ft predict`
//! and `ft info` with `--adapter` on ft's folder and on folders the library saved (both weight
//! forms); two adapters on one base; resume; bad adapters and run files as clear errors.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{fails, fixture, json, ok};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}



/// `train.jsonl` + `validation.jsonl` with `{"text", "label"}` rows in `dir`.
fn data(dir: &Path) {
    let words = [
        ["the election vote", "the team won the match", "shares rose on the market", "a new chip and software"],
        [
            "leaders meet at the summit",
            "the coach and the players",
            "the bank cut its rates",
            "scientists find a planet",
        ],
    ];
    let mut train = String::new();
    for i in 0..32 {
        let label = i % 4;
        let text = format!("{} {}", words[i % 2][label], i);
        train += &(serde_json::json!({"text": text, "label": label}).to_string() + "\n");
    }
    std::fs::write(dir.join("train.jsonl"), &train).unwrap();
    std::fs::write(dir.join("validation.jsonl"), train.lines().take(8).collect::<Vec<_>>().join("\n") + "\n").unwrap();
}

/// The issue's run file, word for word but for the paths and the extra `[method]` lines.
fn contract(dir: &Path, model: &str, method_extra: &str, training_extra: &str) -> PathBuf {
    // (its own folder: a data folder is read with its subfolders, as `load_dataset(dir)`)
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    data(&data_dir);
    let body = format!(
        r#"[model]
name = "{model}"
task = "text-classification"
num_labels = 4
[data]
source = "{data}"          # train.jsonl + validation.jsonl with {{"text", "label"}}
max_length = 48
[method]
kind = "adapter"
config = "pfeiffer"
adapter_name = "agnews_adapter"
{method_extra}
[training]
output_dir = "{out}"
learning_rate = 5e-3
per_device_train_batch_size = 16
num_train_epochs = 1
eval_strategy = "no"
save_strategy = "no"
{training_extra}
"#,
        model = fixture(&format!("models/{model}")).display(),
        data = data_dir.display(),
        out = dir.join("out").display()
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, body).unwrap();
    path
}


fn inputs(dir: &Path) -> PathBuf {
    let p = dir.join("in.jsonl");
    std::fs::write(&p, "{\"text\": \"the team won the match\"}\n{\"text\": \"shares rose\"}\n").unwrap();
    p
}

fn predict(model: &str, adapters: &[&str], extra: &[&str], dir: &Path, out: &str) -> Output {
    let input = inputs(dir);
    let output = dir.join(out);
    let base = fixture(&format!("models/{model}"));
    let mut args = vec!["predict", "--model", base.to_str().unwrap()];
    for a in adapters {
        args.extend(["--adapter", a]);
    }
    args.extend(extra);
    args.extend(["--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()]);
    ft(&args)
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_issue_s_adapter_run_file_works_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let run = contract(tmp.path(), "tiny-bert", "", "seed = 0");
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    let out = tmp.path().join("out");
    for f in [
        "adapter_config.json",
        "head_config.json",
        "adapter.safetensors",
        "model_head.safetensors",
        "pytorch_adapter.bin",
        "pytorch_model_head.bin",
    ] {
        assert!(out.join(f).is_file(), "{f} missing in {:?}", std::fs::read_dir(&out).unwrap().collect::<Vec<_>>());
    }
    let config = json(&out.join("adapter_config.json"));
    assert_eq!(config["name"], "agnews_adapter");
    assert_eq!(config["model_type"], "bert");
    assert_eq!(config["config"]["original_ln_before"], true);
    assert_eq!(config["config"]["reduction_factor"], 16);
    let head = json(&out.join("head_config.json"));
    assert_eq!(head["config"]["head_type"], "classification");
    assert_eq!(head["config"]["label2id"]["LABEL_1"], 1, "{head}");
    let text = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
    assert!(!text.ends_with('\n'), "the library writes no trailing newline");

    // ft predict: the adapter's head and its labels.
    let adapter = out.to_str().unwrap();
    ok(&predict("tiny-bert", &[adapter], &["--task", "text-classification"], tmp.path(), "pred.jsonl"));
    let got = rows(&tmp.path().join("pred.jsonl"));
    assert_eq!(got.len(), 2);
    for r in &got {
        assert!(r["label"].as_str().unwrap().starts_with("LABEL_"), "{r}");
    }
    // Without --task: the head says it.
    ok(&predict("tiny-bert", &[adapter], &[], tmp.path(), "pred2.jsonl"));
    assert_eq!(rows(&tmp.path().join("pred2.jsonl")), got);

    // ft info: adapter + head are the trainable parameters (tiny BERT: hidden 32, 2 layers,
    // bottleneck 2: 2 · (32·2 + 2 + 2·32 + 32) = 324; head 32·32 + 32 + 32·4 + 4 = 1,188).
    let base = fixture("models/tiny-bert");
    let info = ok(&ft(&["info", "--model", base.to_str().unwrap(), "--adapter", adapter]));
    assert!(info.contains("trainable params: 1,512 ||"), "{info}");
    assert!(info.contains("BOTTLENECK") && info.contains("LABEL_3"), "{info}");
}

#[test]
fn adapters_saved_by_the_library_predict_with_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    // bert-pfeiffer: safetensors, labels World/Sports/Business; bert-houlsby: .bin pickles.
    let pf = fixture("adapters/bert-pfeiffer");
    let ho = fixture("adapters/bert-houlsby");
    ok(&predict("tiny-bert", &[pf.to_str().unwrap()], &[], tmp.path(), "a.jsonl"));
    for r in rows(&tmp.path().join("a.jsonl")) {
        assert!(["World", "Sports", "Business"].contains(&r["label"].as_str().unwrap()), "{r}");
    }
    ok(&predict("tiny-bert", &[ho.to_str().unwrap()], &[], tmp.path(), "b.jsonl"));
    for r in rows(&tmp.path().join("b.jsonl")) {
        assert!(r["label"].as_str().unwrap().starts_with("LABEL_"), "{r}");
    }
    // Both on one base, under their saved names; --active picks one.
    let both = [pf.to_str().unwrap(), ho.to_str().unwrap()];
    ok(&predict("tiny-bert", &both, &["--active", "bert-houlsby"], tmp.path(), "c.jsonl"));
    assert_eq!(rows(&tmp.path().join("c.jsonl")), rows(&tmp.path().join("b.jsonl")));
    // The tagging head on token classification.
    let tag = fixture("adapters/bert-tagging");
    let o = predict("tiny-bert", &[tag.to_str().unwrap()], &[], tmp.path(), "d.jsonl");
    ok(&o);
    // ft info counts what the library's train_adapter trains (adapter + head).
    let base = fixture("models/tiny-bert");
    let info = ok(&ft(&["info", "--model", base.to_str().unwrap(), "--adapter", ho.to_str().unwrap()]));
    assert!(info.contains("trainable params: 1,803 ||"), "{info}");
}

#[test]
fn bad_adapters_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = fixture("models/tiny-bert");
    let bert = bert.to_str().unwrap();
    // An adapter for DistilBERT on BERT.
    let d = fixture("adapters/distilbert-pfeiffer");
    fails(&ft(&["info", "--model", bert, "--adapter", d.to_str().unwrap()]), &["model_type", "distilbert"]);
    // A truncated .bin.
    let broken = tmp.path().join("broken");
    support::copy_dir(&fixture("adapters/bert-houlsby"), &broken);
    let bin = broken.join("pytorch_adapter.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() / 2]).unwrap();
    fails(&ft(&["info", "--model", bert, "--adapter", broken.to_str().unwrap()]), &["pytorch_adapter.bin"]);
    // A head whose labels do not fit its size.
    let labels = tmp.path().join("labels");
    support::copy_dir(&fixture("adapters/bert-pfeiffer"), &labels);
    let mut head = json(&labels.join("head_config.json"));
    head["config"]["num_labels"] = 5.into();
    std::fs::write(labels.join("head_config.json"), head.to_string()).unwrap();
    fails(&ft(&["info", "--model", bert, "--adapter", labels.to_str().unwrap()]), &["head_config.json", "label2id"]);
    // An unknown config name in the file, and in a run file.
    let unknown = tmp.path().join("unknown");
    support::copy_dir(&fixture("adapters/bert-pfeiffer"), &unknown);
    let mut c = json(&unknown.join("adapter_config.json"));
    c["config"] = "compacter".into();
    std::fs::write(unknown.join("adapter_config.json"), c.to_string()).unwrap();
    fails(
        &ft(&["info", "--model", bert, "--adapter", unknown.to_str().unwrap()]),
        &["adapter_config.json", "compacter"],
    );
    let run = contract(tmp.path(), "tiny-bert", "", "");
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "method.config=\"lora\""]);
    fails(&o, &["method.config", "lora"]);
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "method.reduction=4"]);
    fails(&o, &["reduction"]);
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "method.reduction_factor=1e-30"]);
    fails(&o, &["method.reduction_factor", "1/64"]);
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "method.head_activation=\"foo\""]);
    fails(&o, &["run.toml", "method.head_activation", "foo"]);
    let o = ft(&["train", "--config", run.to_str().unwrap(), "--set", "method.residual_before_ln=\"after\""]);
    fails(&o, &["method.residual_before_ln"]);
    // A head of absurd size in a file: an error before anything is allocated.
    let big = tmp.path().join("big");
    support::copy_dir(&fixture("adapters/bert-pfeiffer"), &big);
    let mut head = json(&big.join("head_config.json"));
    head["config"]["layers"] = 1_000_000_000_000u64.into();
    std::fs::write(big.join("head_config.json"), head.to_string()).unwrap();
    fails(&ft(&["info", "--model", bert, "--adapter", big.to_str().unwrap()]), &["head_config.json", "layers"]);
    // Two adapters with one name.
    let pf = fixture("adapters/bert-pfeiffer");
    let spec = format!("x={}", pf.display());
    fails(&ft(&["info", "--model", bert, "--adapter", &spec, "--adapter", &spec]), &["'x'"]);
}

#[test]
fn distilbert_adapter_trains_and_resumes_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    // Houlsby on DistilBERT, a checkpoint every step (32 rows, batch 16: 2 steps per epoch).
    let run = contract(
        tmp.path(),
        "tiny-distilbert",
        "",
        "seed = 1\nnum_train_epochs = 2\nsave_steps = 1\nlogging_steps = 1",
    );
    let text = std::fs::read_to_string(&run)
        .unwrap()
        .replace("config = \"pfeiffer\"", "config = \"houlsby\"")
        .replace("num_train_epochs = 1\n", "")
        .replace("save_strategy = \"no\"", "save_strategy = \"steps\"");
    std::fs::write(&run, &text).unwrap();
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    let a = tmp.path().join("out");
    assert!(a.join("checkpoint-2/adapter.safetensors").is_file());
    assert!(a.join("checkpoint-2/head_config.json").is_file());
    let config = json(&a.join("adapter_config.json"));
    assert_eq!(config["config"]["mh_adapter"], true);
    assert_eq!(config["model_type"], "distilbert");
    // Killed after checkpoint-2 (of 4): resume.
    let b = tmp.path().join("out-b");
    support::copy_dir(&a.join("checkpoint-2"), &b.join("checkpoint-2"));
    std::fs::write(&run, text.replace(&a.display().to_string(), &b.display().to_string())).unwrap();
    ok(&ft(&["train", "--config", run.to_str().unwrap(), "--resume"]));
    for f in ["adapter.safetensors", "model_head.safetensors"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "resumed {f} differs");
    }
}
