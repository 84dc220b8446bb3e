//! Adapters saved by Hugging Face PEFT load in ft with PEFT's outputs (`tests/fixtures/peft`,
//! made by `xtask/python/fixtures_peft.py`: LoRA with non-zero B on GPT-2's Conv1D and on
//! DistilBERT/BERT Linear layers with `modules_to_save`, rsLoRA with `"all-linear"`, `bias =
//! "all"`, prompt tuning, prefix tuning with and without projection), merged LoRA computes the
//! same, and ft prints PEFT's trainable-parameter line.
//!
//! With `FT_UPDATE_FIXTURES=1`, ft also saves each adapter it loaded (re-saved from its own
//! tensors) into `target/peft-saved` with its logits (`NAME.ft.json`), for `cargo xtask fixtures peft-check` to
//! load back in PEFT (`tests/fixtures/peft/ft_saved_check.json`).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::input::TextInput;
use ft_models::peft::{PeftBase, PeftModel};

const VOCAB_SLICE: usize = 256;

fn input(expected: &BTreeMap<String, (Vec<usize>, Vec<f64>)>, device: &Device) -> TextInput {
    let ids = &expected["input_ids"];
    let mask = &expected["attention_mask"];
    let t = |v: &(Vec<usize>, Vec<f64>)| {
        Tensor::<2, Int>::from_data(
            TensorData::new(v.1.iter().map(|x| *x as i64).collect::<Vec<_>>(), [v.0[0], v.0[1]]),
            device,
        )
    };
    TextInput::ids(t(ids), Some(t(mask)))
}

fn sliced(t: Tensor<3>) -> Vec<f32> {
    let [b, l, v] = t.dims();
    t.narrow(2, 0, VOCAB_SLICE.min(v)).reshape([b * l * VOCAB_SLICE.min(v)]).into_data().try_into_vec_as().unwrap()
}

fn flat(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as().unwrap()
}

/// The largest difference over the real tokens' outputs: for per-token outputs
/// (`[batch, seq(+virtual), vocab]`) the padded positions are left out — what a model computes
/// there is arbitrary (transformers' own eager and SDPA attention disagree on them).
fn max_err(got: &[f32], want: &(Vec<usize>, Vec<f64>), mask: &(Vec<usize>, Vec<f64>)) -> f64 {
    assert_eq!(got.len(), want.1.len(), "shape {:?}", want.0);
    let keep = |i: usize| -> bool {
        if want.0.len() != 3 {
            return true;
        }
        let (l, v) = (want.0[1], want.0[2]);
        let (b, pos) = (i / (l * v), (i / v) % l);
        let seq = mask.0[1];
        let virt = l - seq;
        pos < virt || mask.1[b * seq + pos - virt] != 0.0
    };
    got.iter()
        .zip(&want.1)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, (a, b))| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

fn fixtures() -> (std::path::PathBuf, BTreeMap<String, (Vec<usize>, Vec<f64>)>, serde_json::Value) {
    let dir = support::fixture("peft");
    let expected: BTreeMap<_, _> = support::read_safetensors(&dir.join("expected.safetensors")).into_iter().collect();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (dir, expected, meta)
}

/// Loads case `name` and checks it; returns ft's logits (flattened as PEFT's fixture).
fn check<M: PeftBase>(
    name: &str,
    base: M,
    logits: impl Fn(M::Output) -> Vec<f32>,
    tol: f64,
) -> (PeftModel<M>, Vec<f32>) {
    let (dir, expected, meta) = fixtures();
    let device = Device::flex();
    let mut m = PeftModel::new(base);
    m.load_adapter(&dir.join(name), "default").unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = logits(m.forward(&input(&expected, &device)).unwrap());
    let err = max_err(&got, &expected[&format!("{name}.logits")], &expected["attention_mask"]);
    eprintln!("{name}: PEFT → ft max |Δ logits| = {err:.2e}");
    assert!(err <= tol, "{name}: {err}");
    let line = m.trainable_line().unwrap();
    if !name.ends_with("projection") {
        // (PEFT's line there is the training-time MLP's; a saved prefix loads as a plain matrix.)
        assert_eq!(line, meta[name]["trainable_line"].as_str().unwrap(), "{name}");
    }
    (m, got)
}

fn merged_check<M: PeftBase>(name: &str, m: PeftModel<M>, logits: impl Fn(M::Output) -> Vec<f32>) {
    let (_, expected, _) = fixtures();
    let device = Device::flex();
    let plain = m.merge_and_unload().unwrap();
    let got = logits(PeftModel::new(plain).forward(&input(&expected, &device)).unwrap());
    let err = max_err(&got, &expected[&format!("{name}.merged_logits")], &expected["attention_mask"]);
    eprintln!("{name}: merged max |Δ logits| vs PEFT's merge_and_unload = {err:.2e}");
    assert!(err <= 1e-4, "{name} merged: {err}");
}

fn gpt2() -> ft_models::auto::CausalLm {
    let dir = support::fixture("models/tiny-gpt2");
    load(dir.to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &Device::flex())
        .unwrap()
        .into_causal_lm()
        .unwrap()
        .model
}

fn seqcls(name: &str) -> ft_models::auto::SequenceClassifier {
    let dir = support::fixture(&format!("models/{name}"));
    load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &Device::flex())
        .unwrap()
        .into_sequence_classifier()
        .unwrap()
        .model
}

/// Re-saves an adapter ft loaded: checks that the weights file is the one PEFT loaded back
/// with ft's outputs (`ft_saved_check.json`, made by `cargo xtask fixtures peft-check`); with
/// `FT_UPDATE_FIXTURES=1`, writes it and ft's logits for that check.
fn save_for_python<M: PeftBase>(name: &str, m: &mut PeftModel<M>, base: &str, task_type: &str, logits: &[f32]) {
    if std::env::var_os("FT_UPDATE_FIXTURES").is_none() {
        let tmp = tempfile::tempdir().unwrap();
        m.save_adapter("default", tmp.path()).unwrap();
        let check: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(support::fixture("peft/ft_saved_check.json")).unwrap())
                .unwrap();
        let rec = &check[name];
        let err = rec["max_abs_logits_vs_ft"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: not in ft_saved_check.json: run `cargo xtask fixtures peft-check`"));
        eprintln!("{name}: ft → PEFT max |Δ logits| = {err:.2e}");
        assert!(err <= 1e-4, "{name}: PEFT computed other outputs from ft's adapter: {err}");
        let want = rec["files"]["adapter_model.safetensors"].as_str().unwrap();
        assert_eq!(
            support::fnv(&tmp.path().join("adapter_model.safetensors")),
            want,
            "{name}: ft now writes another adapter_model.safetensors than the one PEFT checked: run `cargo xtask fixtures peft-check`"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peft-saved");
    m.save_adapter("default", &root.join(name)).unwrap();
    // One file per case: the tests run in parallel.
    let record = serde_json::json!({"base": base, "task_type": task_type, "logits": logits});
    std::fs::write(root.join(format!("{name}.ft.json")), serde_json::to_string(&record).unwrap()).unwrap();
}

#[test]
fn gpt2_lora_from_peft() {
    for name in ["gpt2-lora", "gpt2-lora-rslora"] {
        let (mut m, got) = check(name, gpt2(), sliced, 1e-4);
        save_for_python(name, &mut m, "tiny-gpt2", "CAUSAL_LM", &got);
        merged_check(name, m, sliced);
    }
}

#[test]
fn gpt2_prompt_and_prefix_from_peft() {
    for name in ["gpt2-prompt", "gpt2-prefix", "gpt2-prefix-projection"] {
        let (mut m, got) = check(name, gpt2(), sliced, 1e-4);
        save_for_python(name, &mut m, "tiny-gpt2", "CAUSAL_LM", &got);
    }
}

#[test]
fn seq_cls_lora_with_modules_to_save_and_biases_from_peft() {
    let (mut m, got) = check("distilbert-lora", seqcls("tiny-distilbert-seqcls"), flat, 1e-4);
    save_for_python("distilbert-lora", &mut m, "tiny-distilbert-seqcls", "SEQ_CLS", &got);
    merged_check("distilbert-lora", m, flat);
    let (mut m, got) = check("bert-lora-bias", seqcls("tiny-bert-seqcls"), flat, 1e-4);
    save_for_python("bert-lora-bias", &mut m, "tiny-bert-seqcls", "SEQ_CLS", &got);
    merged_check("bert-lora-bias", m, flat);
}

#[test]
fn seq_cls_prompt_from_peft() {
    let (mut m, got) = check("bert-prompt", seqcls("tiny-bert-seqcls"), flat, 1e-4);
    save_for_python("bert-prompt", &mut m, "tiny-bert-seqcls", "SEQ_CLS", &got);
}

/// Greedy continuations with each causal adapter match PEFT's (its forward pass, greedily; see
/// the fixture script for why not its `generate`), one prompt and a left-padded batch, with and
/// without the key/value cache.
#[test]
fn gpt2_adapters_generate_as_peft() {
    use ft_models::generation::{GenerationConfig, generate_with};
    let (dir, _, meta) = fixtures();
    let device = Device::flex();
    for name in ["gpt2-lora", "gpt2-lora-rslora", "gpt2-prompt", "gpt2-prefix", "gpt2-prefix-projection"] {
        let mut m = PeftModel::new(gpt2());
        m.load_adapter(&dir.join(name), "default").unwrap();
        let ft_models::auto::CausalLm::Gpt2(g) = &m.base;
        let cases = meta[name]["generate"].as_array().unwrap();
        assert_eq!(cases.len(), 2, "{name}");
        for case in cases {
            let prompts: Vec<Vec<u32>> = serde_json::from_value(case["prompts"].clone()).unwrap();
            let want: Vec<Vec<u32>> = serde_json::from_value(case["new_tokens"].clone()).unwrap();
            for use_cache in [true, false] {
                // No end-of-sequence stop: PEFT's reference ran six steps regardless.
                let config = GenerationConfig {
                    max_new_tokens: Some(6),
                    do_sample: Some(false),
                    pad_token_id: Some(50256),
                    eos_token_id: Some(ft_models::generation::TokenIds::Many(vec![])),
                    use_cache: Some(use_cache),
                    ..Default::default()
                };
                let settings = config.resolve(&g.transformer.config).unwrap();
                let got = generate_with(g, &prompts, &settings, Some(0), &device, m.virtual_tokens().as_ref()).unwrap();
                let got: Vec<Vec<u32>> = got.into_iter().map(|x| x.token_ids).collect();
                assert_eq!(got, want, "{name} {prompts:?} use_cache={use_cache}");
            }
        }
    }
}

/// Adapters *created* by ft (not re-saves of PEFT's): LoRA on GPT-2, prompt tuning with TEXT
/// init, prefix tuning with projection, LoRA on a DistilBERT classifier. `cargo xtask fixtures
/// peft-check` loads each with `PeftModel.from_pretrained` (its config must be one PEFT accepts)
/// and records PEFT's outputs against ft's; here: the files are the ones checked.
#[test]
fn adapters_made_by_ft_load_in_peft() {
    use ft_peft::config::{
        AdapterConfig, InitLoraWeights, LoraConfig, MethodConfig, PrefixTuningConfig, PromptTuningConfig,
        PromptTuningInit, TargetModules,
    };
    let (_, expected, _) = fixtures();
    let device = Device::flex();
    let lora = |targets: &[&str]| {
        MethodConfig::Lora(LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            target_modules: Some(TargetModules::List(targets.iter().map(|s| s.to_string()).collect())),
            init_lora_weights: InitLoraWeights::Random,
            ..Default::default()
        })
    };
    let cases: Vec<(&str, &str, MethodConfig)> = vec![
        ("ft-gpt2-lora", "tiny-gpt2", lora(&["c_attn", "c_proj"])),
        (
            "ft-gpt2-prompt-text",
            "tiny-gpt2",
            MethodConfig::PromptTuning(PromptTuningConfig {
                num_virtual_tokens: 5,
                prompt_tuning_init: PromptTuningInit::Text,
                prompt_tuning_init_text: Some("Write a sentence".into()),
                ..Default::default()
            }),
        ),
        (
            "ft-gpt2-prefix-projection",
            "tiny-gpt2",
            MethodConfig::PrefixTuning(PrefixTuningConfig {
                num_virtual_tokens: 3,
                prefix_projection: true,
                encoder_hidden_size: Some(8),
                ..Default::default()
            }),
        ),
        ("ft-distilbert-lora", "tiny-distilbert-seqcls", lora(&["q_lin", "v_lin"])),
    ];
    for (name, base, method) in cases {
        device.seed(7);
        let config = AdapterConfig::new(method, None, Some(&format!("tests/fixtures/models/{base}")));
        let text_ids: &[u32] = &[16594, 257, 6827];
        let logits = if base == "tiny-gpt2" {
            let mut m = PeftModel::new(gpt2());
            m.add_adapter("default", config, Some(text_ids), &device).unwrap();
            let got = sliced(m.forward(&input(&expected, &device)).unwrap());
            save_for_python(name, &mut m, base, "CAUSAL_LM", &got);
            got
        } else {
            let mut m = PeftModel::new(seqcls(base));
            m.add_adapter("default", config, None, &device).unwrap();
            let got = flat(m.forward(&input(&expected, &device)).unwrap());
            save_for_python(name, &mut m, base, "SEQ_CLS", &got);
            got
        };
        assert!(!logits.is_empty());
    }
}

/// `merge_and_unload` + `save_pretrained`: a plain model in the Hub layout that transformers
/// loads (`AutoModelFor….from_pretrained`, checked by `cargo xtask fixtures peft-check`) and
/// that computes PEFT's merged outputs.
#[test]
fn merged_models_save_in_the_hub_layout() {
    let (dir, expected, _) = fixtures();
    let device = Device::flex();
    for (name, base, task) in [
        ("gpt2-lora", "tiny-gpt2", Task::CausalLm),
        ("distilbert-lora", "tiny-distilbert-seqcls", Task::SequenceClassification),
    ] {
        let loaded =
            load(support::fixture(&format!("models/{base}")).to_str().unwrap(), task, &LoadOptions::default(), &device)
                .unwrap();
        let out = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/peft-saved");
        let update = std::env::var_os("FT_UPDATE_FIXTURES").is_some();
        let target = if update { root.join(format!("merged-{name}")) } else { out.path().to_path_buf() };
        let logits = match loaded.model {
            ft_models::auto::AnyModel::CausalLm(m) => {
                let mut p = PeftModel::new(m);
                p.load_adapter(&dir.join(name), "default").unwrap();
                let plain = p.merge_and_unload().unwrap();
                ft_models::auto::save_pretrained(
                    &target,
                    &plain.export().unwrap(),
                    &loaded.config,
                    plain.class_name(),
                    &loaded.files,
                )
                .unwrap();
                sliced(PeftModel::new(plain).forward(&input(&expected, &device)).unwrap())
            }
            ft_models::auto::AnyModel::SequenceClassifier(m) => {
                let mut p = PeftModel::new(m);
                p.load_adapter(&dir.join(name), "default").unwrap();
                let plain = p.merge_and_unload().unwrap();
                ft_models::auto::save_pretrained(
                    &target,
                    &plain.export().unwrap(),
                    &loaded.config,
                    plain.class_name(),
                    &loaded.files,
                )
                .unwrap();
                flat(PeftModel::new(plain).forward(&input(&expected, &device)).unwrap())
            }
            _ => unreachable!("the cases are a causal LM and a sequence classifier"),
        };
        let err = max_err(&logits, &expected[&format!("{name}.merged_logits")], &expected["attention_mask"]);
        assert!(err <= 1e-4, "{name}: {err}");
        let key = format!("merged-{name}");
        if update {
            let task_type = if task == Task::CausalLm { "CAUSAL_LM" } else { "SEQ_CLS" };
            let record = serde_json::json!({"base": base, "task_type": task_type, "merged": true, "logits": logits});
            std::fs::write(root.join(format!("{key}.ft.json")), serde_json::to_string(&record).unwrap()).unwrap();
            continue;
        }
        let check: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(support::fixture("peft/ft_saved_check.json")).unwrap())
                .unwrap();
        let rec = &check[&key];
        let py = rec["max_abs_logits_vs_ft"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: run `cargo xtask fixtures peft-check`"));
        eprintln!("{key}: transformers' from_pretrained vs ft max |Δ logits| = {py:.2e}");
        assert!(py <= 1e-4, "{key}: {py}");
        assert_eq!(
            support::fnv(&target.join("model.safetensors")),
            rec["files"]["model.safetensors"].as_str().unwrap(),
            "{key}"
        );
    }
}
