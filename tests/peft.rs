//! End-to-end PEFT: the issue's LoRA run file as written, prompt and prefix tuning, LoRA with
//! `modules_to_save` on a classifier, resume to the same adapter, `--adapter` on `ft predict`,
//! `ft generate` and `ft info`, `ft peft merge`, and bad adapters and configs as clear errors.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{fails, fixture, json, ok};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}



/// `ft predict --adapter ADAPTER --input INPUT --output OUTPUT` (the base from the adapter).
fn predict_with(adapter: &Path, input: &Path, output: &Path) -> Output {
    ft(&[
        "predict",
        "--adapter",
        adapter.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}


fn texts(dir: &Path) -> PathBuf {
    let lines = [
        "The cat sat on the mat.",
        "A dog ran in the park.",
        "Rust is a systems programming language.",
        "Fine-tuning adapts a model to a task.",
        "The weather is nice today.",
        "LoRA trains small low-rank matrices.",
        "Prompt tuning learns virtual tokens.",
        "GPT-2 predicts the next token.",
    ];
    let path = dir.join("train.jsonl");
    let body: String = lines.iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect();
    std::fs::write(&path, body).unwrap();
    path
}

/// The run file of the issue, word for word but for the paths.
fn contract(dir: &Path, method: &str) -> PathBuf {
    texts(dir);
    let body = format!(
        r#"[model]
name = "{model}"
task = "causal-lm"

[data]
source = "train.jsonl"
train_split = "train"
text_column = "text"
max_length = 64

[method]
{method}

[training]
output_dir = "{out}"
learning_rate = 1e-3
per_device_train_batch_size = 4
num_train_epochs = 1
eval_strategy = "no"
save_strategy = "no"
seed = 0
"#,
        model = fixture("models/tiny-gpt2").display(),
        // (an absolute path: output_dir is relative to the working directory, as in transformers)
        out = dir.join("out").display()
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, body).unwrap();
    path
}

const LORA: &str = r#"kind = "lora"
r = 4
lora_alpha = 8
lora_dropout = 0.0
target_modules = ["c_attn", "c_proj"]"#;

#[test]
fn the_issue_s_lora_run_file_works_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let run = contract(tmp.path(), LORA);
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    let out = tmp.path().join("out");
    let config = json(&out.join("adapter_config.json"));
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["fan_in_fan_out"], true, "PEFT sets it for Conv1D layers");
    let tensors = support::read_safetensors(&out.join("adapter_model.safetensors"));
    // 2 layers × (c_attn, attn.c_proj, mlp.c_proj) × (A, B); the frozen base is not saved.
    assert_eq!(tensors.len(), 12, "{:?}", tensors.keys());
    assert!(tensors.keys().all(|k| k.starts_with("base_model.model.transformer.h.") && k.contains(".lora_")));
    let b = &tensors["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"];
    assert_eq!(b.0, vec![48, 4]);
    assert!(b.1.iter().any(|v| *v != 0.0), "B trained away from its zero init");
    let results = json(&out.join("train_results.json"));
    assert!(results["train_loss"].as_f64().unwrap().is_finite());

    // ft predict / info / generate with the adapter; --model defaults to the adapter's base.
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"The cat sat\"}\n").unwrap();
    let (base, with) = (tmp.path().join("base.jsonl"), tmp.path().join("with.jsonl"));
    let model = fixture("models/tiny-gpt2");
    ok(&ft(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "causal-lm",
        "--input",
        input.to_str().unwrap(),
        "--output",
        base.to_str().unwrap(),
    ]));
    ok(&predict_with(&out, &input, &with));
    let logits = |p: &Path| -> Vec<f64> {
        let v: Value = serde_json::from_str(std::fs::read_to_string(p).unwrap().lines().next().unwrap()).unwrap();
        v["next_token_logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (lb, lw) = (logits(&base), logits(&with));
    assert!(lb.iter().zip(&lw).any(|(a, b)| (a - b).abs() > 1e-4), "the adapter changes the outputs");
    let info = ok(&ft(&["info", "--adapter", out.to_str().unwrap()]));
    assert!(info.contains("trainable params: 1,408 || all params: 812,624 || trainable%: 0.1733"), "{info}");
    assert!(info.contains("adapter 'default' (LORA, active)"), "{info}");
    ok(&ft(&["generate", "--adapter", out.to_str().unwrap(), "--prompt", "The cat", "--max-new-tokens", "3"]));

    // Merged into the base: the same outputs without the adapter.
    let merged = tmp.path().join("merged");
    ok(&ft(&["peft", "merge", "--adapter", out.to_str().unwrap(), "--output", merged.to_str().unwrap()]));
    let m = tmp.path().join("merged.jsonl");
    ok(&ft(&[
        "predict",
        "--model",
        merged.to_str().unwrap(),
        "--task",
        "causal-lm",
        "--input",
        input.to_str().unwrap(),
        "--output",
        m.to_str().unwrap(),
    ]));
    let lm = logits(&m);
    let err = lm.iter().zip(&lw).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "merged vs adapter: {err}");
}

#[test]
fn prompt_and_prefix_tuning_train_gpt2() {
    for (method, n) in [
        (
            "kind = \"prompt\"\nnum_virtual_tokens = 4\nprompt_tuning_init = \"TEXT\"\nprompt_tuning_init_text = \"Write a sentence\"",
            4,
        ),
        ("kind = \"prefix\"\nnum_virtual_tokens = 3\nprefix_projection = true\nencoder_hidden_size = 8", 3),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let run = contract(tmp.path(), method);
        ok(&ft(&["train", "--config", run.to_str().unwrap(), "--set", "training.num_train_epochs=3"]));
        let out = tmp.path().join("out");
        let tensors = support::read_safetensors(&out.join("adapter_model.safetensors"));
        let shape = &tensors["prompt_embeddings"].0;
        assert_eq!(shape[0], n, "{method}");
        let config = json(&out.join("adapter_config.json"));
        assert_eq!(config["token_dim"], 16);
        assert_eq!(config["num_layers"], 2);
        // ft predict and ft generate run it (virtual tokens before the text).
        let input = tmp.path().join("in.jsonl");
        std::fs::write(&input, "{\"text\": \"The cat sat\"}\n{\"text\": \"Rust\"}\n").unwrap();
        let pred = tmp.path().join("p.jsonl");
        ok(&predict_with(&out, &input, &pred));
        assert_eq!(std::fs::read_to_string(&pred).unwrap().lines().count(), 2);
        let text = ok(&ft(&[
            "generate",
            "--adapter",
            out.to_str().unwrap(),
            "--prompt",
            "The cat",
            "--prompt",
            "A",
            "--max-new-tokens",
            "4",
        ]));
        assert!(!text.trim().is_empty());
        let info = ok(&ft(&["info", "--adapter", out.to_str().unwrap()]));
        assert!(info.contains("trainable params: "), "{info}");
    }
}

/// LoRA on a sequence classifier with PEFT's `modules_to_save`, interrupted after its first
/// checkpoint and resumed: the same adapter file, byte for byte.
#[test]
fn seq_cls_lora_resumes_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("news.jsonl");
    let mut body = String::new();
    for i in 0..24 {
        let text = if i % 2 == 0 { "bank rates market shares" } else { "team match cup season" };
        body += &(serde_json::json!({"text": text, "label": i % 2}).to_string() + "\n");
    }
    std::fs::write(&data, body).unwrap();
    let run = tmp.path().join("run.toml");
    let write = |out: &str| {
        let out = tmp.path().join(out);
        let out = out.display();
        std::fs::write(
            &run,
            format!(
                r#"[model]
name = "{}"
task = "text-classification"
num_labels = 2
[data]
source = "news.jsonl"
train_split = "train"
[method]
kind = "lora"
r = 2
lora_alpha = 4
lora_dropout = 0.1
target_modules = ["q_lin", "v_lin"]
[training]
output_dir = "{out}"
learning_rate = 1e-2
per_device_train_batch_size = 4
num_train_epochs = 2
eval_strategy = "no"
save_strategy = "steps"
save_steps = 3
logging_steps = 1
seed = 3
"#,
                fixture("models/tiny-distilbert-seqcls").display()
            ),
        )
        .unwrap();
    };
    write("a");
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    let a = tmp.path().join("a");
    let names: Vec<String> = support::read_safetensors(&a.join("adapter_model.safetensors")).into_keys().collect();
    assert!(names.contains(&"base_model.model.classifier.weight".to_string()), "{names:?}");
    assert!(names.contains(&"base_model.model.pre_classifier.weight".to_string()), "{names:?}");
    assert!(a.join("checkpoint-3/trainable.safetensors").is_file());
    // Killed after checkpoint-3: resume.
    let b = tmp.path().join("b");
    support::copy_dir(&a.join("checkpoint-3"), &b.join("checkpoint-3"));
    write("b");
    ok(&ft(&["train", "--config", run.to_str().unwrap(), "--resume"]));
    assert!(
        std::fs::read(a.join("adapter_model.safetensors")).unwrap()
            == std::fs::read(b.join("adapter_model.safetensors")).unwrap(),
        "the resumed run's adapter differs from the uninterrupted run's"
    );
}

#[test]
fn bad_configs_and_adapters_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = contract(tmp.path(), LORA);
    let r = run.to_str().unwrap();
    fails(&ft(&["train", "--config", r, "--set", "method.r=0"]), &["[method]", "`r` should be a positive integer"]);
    fails(&ft(&["train", "--config", r, "--set", "method.lora_alpa=3"]), &["method.lora_alpa", "lora_alpha"]);
    fails(
        &ft(&["train", "--config", r, "--set", "method.target_modules=[\"q_proj\"]"]),
        &["Target modules", "q_proj", "not found"],
    );
    let long = tempfile::tempdir().unwrap();
    let prompt = contract(long.path(), "kind = \"prompt\"\nnum_virtual_tokens = 40");
    fails(&ft(&["train", "--config", prompt.to_str().unwrap()]), &["num_virtual_tokens = 40", "32 positions"]);
    // A trained adapter, then broken copies of it.
    ok(&ft(&["train", "--config", r]));
    let out = tmp.path().join("out");
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"The cat sat\"}\n").unwrap();
    let pred = |adapter: &str| {
        ft(&[
            "predict",
            "--adapter",
            adapter,
            "--input",
            input.to_str().unwrap(),
            "--output",
            tmp.path().join("p.jsonl").to_str().unwrap(),
        ])
    };
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(out.join("adapter_config.json"), broken.join("adapter_config.json")).unwrap();
    fails(&pred(broken.to_str().unwrap()), &["adapter_model.safetensors", "not found"]);
    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    std::fs::write(broken.join("adapter_model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails(&pred(broken.to_str().unwrap()), &["adapter_model.safetensors", "truncated"]);
    let cfg = std::fs::read_to_string(out.join("adapter_config.json")).unwrap().replace("\"LORA\"", "\"IA3\"");
    std::fs::write(broken.join("adapter_config.json"), cfg).unwrap();
    fails(&pred(broken.to_str().unwrap()), &["adapter_config.json", "peft_type", "IA3"]);
    // Shapes that do not fit what the config says (r = 5 for matrices of rank 4): named.
    let cfg = std::fs::read_to_string(out.join("adapter_config.json")).unwrap().replace("\"r\": 4", "\"r\": 5");
    std::fs::write(broken.join("adapter_config.json"), cfg).unwrap();
    std::fs::copy(out.join("adapter_model.safetensors"), broken.join("adapter_model.safetensors")).unwrap();
    fails(
        &pred(broken.to_str().unwrap()),
        &["adapter_model.safetensors", "lora_A.weight", "has shape [4, 16]", "[5, 16]"],
    );
    // One name twice.
    let twice = format!("x={}", out.display());
    fails(&ft(&["info", "--adapter", &twice, "--adapter", &twice]), &["already given"]);
    fails(&ft(&["info", "--adapter", out.to_str().unwrap(), "--active", "nope"]), &["--active nope"]);
}

/// Token classification with LoRA: PEFT's TOKEN_CLS trains and saves the classifier whole; the
/// adapter then runs in `ft predict --adapter` on its base.
#[test]
fn token_classification_lora_trains_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ner");
    let run = tmp.path().join("ner.toml");
    std::fs::write(
        &run,
        format!(
            r#"[model]
name = "{model}"
task = "token-classification"
[data]
source = "{data}"
train_split = "validation"
eval_split = "validation"
[method]
kind = "lora"
r = 2
lora_alpha = 4
target_modules = ["query", "value"]
[training]
output_dir = "{out}"
learning_rate = 5e-3
per_device_train_batch_size = 4
num_train_epochs = 1
eval_strategy = "epoch"
save_strategy = "no"
"#,
            model = fixture("models/tiny-bert-tokcls").display(),
            data = fixture("data/mini/ner_parquet").display(),
            out = out.display()
        ),
    )
    .unwrap();
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    assert!(json(&out.join("eval_results.json")).get("eval_overall_f1").is_some());
    let config = json(&out.join("adapter_config.json"));
    assert_eq!(config["task_type"], "TOKEN_CLS");
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier", "score"]));
    let names: Vec<String> = support::read_safetensors(&out.join("adapter_model.safetensors")).into_keys().collect();
    assert!(names.contains(&"base_model.model.classifier.weight".to_string()), "{names:?}");
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"Angela Merkel visited Paris\"}\n").unwrap();
    ok(&predict_with(&out, &input, &tmp.path().join("p.jsonl")));
}

/// A classifier adapter trained on a bare encoder (no head in the checkpoint): `ft predict`
/// builds the base's head with the adapter's number of labels, as
/// `from_pretrained(base, num_labels=N)` before `PeftModel.from_pretrained`.
#[test]
fn a_classifier_adapter_on_a_bare_encoder_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("news.jsonl");
    let texts = ["bank rates", "team match", "oil prices", "cup final"];
    let body: String =
        (0..16).map(|i| serde_json::json!({"text": texts[i % 4], "label": i % 4}).to_string() + "\n").collect();
    std::fs::write(&data, body).unwrap();
    let out = tmp.path().join("out");
    let run = tmp.path().join("run.toml");
    std::fs::write(
        &run,
        format!(
            "[model]\nname = \"{}\"\ntask = \"text-classification\"\nnum_labels = 4\n[data]\nsource = \"news.jsonl\"\ntrain_split = \"train\"\n\
             [method]\nkind = \"lora\"\nr = 2\n[training]\noutput_dir = \"{}\"\nlearning_rate = 1e-2\nper_device_train_batch_size = 4\n\
             num_train_epochs = 1\neval_strategy = \"no\"\nsave_strategy = \"no\"\n",
            fixture("models/tiny-bert").display(),
            out.display()
        ),
    )
    .unwrap();
    ok(&ft(&["train", "--config", run.to_str().unwrap()]));
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"bank rates\"}\n").unwrap();
    let pred = tmp.path().join("p.jsonl");
    ok(&predict_with(&out, &input, &pred));
    let line: Value = serde_json::from_str(std::fs::read_to_string(&pred).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["logits"].as_array().unwrap().len(), 4, "{line}");
}

/// Prefix tuning with its projection MLP resumes exactly: the MLP's parameters have stable ids,
/// and checkpoints keep them (PEFT's file keeps only the MLP's output).
#[test]
fn prefix_projection_resumes_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let run = contract(
        tmp.path(),
        "kind = \"prefix\"\nnum_virtual_tokens = 3\nprefix_projection = true\nencoder_hidden_size = 8",
    );
    let r = run.to_str().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let common = [
        "--set",
        "training.num_train_epochs=3",
        "--set",
        "training.save_strategy=\"steps\"",
        "--set",
        "training.save_steps=2",
    ];
    let with_out = |dir: &Path| format!("training.output_dir=\"{}\"", dir.display());
    let mut args = vec!["train", "--config", r];
    args.extend(common);
    let oa = with_out(&a);
    args.extend(["--set", &oa]);
    ok(&ft(&args));
    assert!(a.join("checkpoint-2/trainable.safetensors").is_file());
    support::copy_dir(&a.join("checkpoint-2"), &b.join("checkpoint-2"));
    let mut args = vec!["train", "--config", r];
    args.extend(common);
    let ob = with_out(&b);
    args.extend(["--set", &ob, "--resume"]);
    ok(&ft(&args));
    assert!(
        std::fs::read(a.join("adapter_model.safetensors")).unwrap()
            == std::fs::read(b.join("adapter_model.safetensors")).unwrap(),
        "the resumed prefix differs from the uninterrupted run's"
    );
}
