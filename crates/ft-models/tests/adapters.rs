//! PEFT adapters on ft's models, without Python: LoRA attach / merge / unmerge / disable /
//! save-load round trips, several adapters on one base, prompt and prefix tuning shapes, the
//! trainable-parameter line, and PEFT's errors. (Numbers against PEFT itself:
//! `tests/peft_parity.rs`.)

#[path = "../../../tests/support/mod.rs"]
mod support;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{CausalLm, LoadOptions, SequenceClassifier, Task, load};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;
use ft_peft::config::{
    AdapterConfig, InitLoraWeights, LoraConfig, MethodConfig, PrefixTuningConfig, PromptTuningConfig, TargetModules,
};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn gpt2() -> CausalLm {
    let dir = support::fixture("models/tiny-gpt2");
    load(dir.to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &Device::flex())
        .unwrap()
        .into_causal_lm()
        .unwrap()
        .model
}

fn distilbert() -> SequenceClassifier {
    let dir = support::fixture("models/tiny-distilbert-seqcls");
    load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &Device::flex())
        .unwrap()
        .into_sequence_classifier()
        .unwrap()
        .model
}

fn input() -> TextInput {
    let device = Device::flex();
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 17, 45, 99, 3, 8, 2, 8, 9, 10, 11, 3], [2, 6]), &device);
    let mask =
        Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 6]), &device);
    TextInput::ids(ids, Some(mask))
}

fn lora(targets: &[&str], init: InitLoraWeights) -> AdapterConfig {
    AdapterConfig::new(
        MethodConfig::Lora(LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            target_modules: Some(TargetModules::List(targets.iter().map(|s| s.to_string()).collect())),
            init_lora_weights: init,
            ..Default::default()
        }),
        None,
        None,
    )
}

#[test]
fn lora_merge_unmerge_disable_and_files() {
    let device = Device::flex();
    device.seed(1);
    let mut m = PeftModel::new(gpt2());
    let base = values(m.forward(&input()).unwrap());
    // PEFT's default init: B = 0, the adapter starts as a no-op.
    m.add_adapter("zero", lora(&["c_attn", "c_proj"], InitLoraWeights::Default), None, &device).unwrap();
    assert_eq!(values(m.forward(&input()).unwrap()), base);
    // init_lora_weights = false: a real change.
    m.add_adapter("rand", lora(&["c_attn", "c_proj"], InitLoraWeights::Random), None, &device).unwrap();
    m.set_adapter("rand").unwrap();
    let adapted = values(m.forward(&input()).unwrap());
    assert!(max_diff(&adapted, &base) > 1e-3);
    // Disabled: the base model exactly (nothing was merged).
    m.disable_adapters().unwrap();
    assert_eq!(values(m.forward(&input()).unwrap()), base);
    m.enable_adapters().unwrap();
    assert_eq!(values(m.forward(&input()).unwrap()), adapted);
    // Merged: the same outputs without running the adapter path.
    m.merge_adapter().unwrap();
    let merged = values(m.forward(&input()).unwrap());
    // Within 1e-5 relative to the logits' size (float32 sums in another order).
    let scale = adapted.iter().fold(1.0f32, |a, v| a.max(v.abs()));
    assert!(
        max_diff(&merged, &adapted) <= 1e-5 * scale,
        "merged vs unmerged {} (scale {scale})",
        max_diff(&merged, &adapted)
    );
    // (Tolerances relative to the logits' size: the random adapter's values depend on what other
    // tests running in parallel draw from the same device generator.)
    m.unmerge_adapter();
    assert!(max_diff(&values(m.forward(&input()).unwrap()), &adapted) <= 1e-5 * scale);
    // After merge + unmerge: the base to float rounding (W + ΔW − ΔW).
    m.disable_adapters().unwrap();
    let base_scale = base.iter().fold(1.0f32, |a, v| a.max(v.abs()));
    assert!(max_diff(&values(m.forward(&input()).unwrap()), &base) <= 1e-5 * scale.max(base_scale));
    m.enable_adapters().unwrap();
    // Saved and loaded into a fresh base: the same outputs.
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter("rand", dir.path()).unwrap();
    let cfg = std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap();
    assert!(cfg.contains("\"peft_type\": \"LORA\"") && cfg.contains("\"fan_in_fan_out\": true"), "{cfg}");
    let mut fresh = PeftModel::new(gpt2());
    fresh.load_adapter(dir.path(), "default").unwrap();
    let d = max_diff(&values(fresh.forward(&input()).unwrap()), &adapted);
    assert!(d <= 1e-5 * scale, "saved and loaded: {d} (scale {scale})");
    // A name used twice, an unknown name.
    let err = fresh.load_adapter(dir.path(), "default").unwrap_err().to_string();
    assert!(err.contains("already loaded"), "{err}");
    assert!(fresh.set_adapter("nope").unwrap_err().to_string().contains("no adapter named 'nope'"));
    // Deleting the active adapter leaves the base.
    m.delete_adapter("rand").unwrap();
    assert!(max_diff(&values(m.forward(&input()).unwrap()), &base) < 1e-5);
    // merge_and_unload: a plain model with the adapter in its weights.
    let plain = fresh.merge_and_unload().unwrap();
    let out = values(PeftModel::new(plain).forward(&input()).unwrap());
    assert!(max_diff(&out, &adapted) <= 1e-5 * scale, "merge_and_unload: {}", max_diff(&out, &adapted));
}

#[test]
fn peft_errors_are_peft_s() {
    let device = Device::flex();
    let mut m = PeftModel::new(gpt2());
    let err = m.add_adapter("a", lora(&["q_proj"], InitLoraWeights::Default), None, &device).unwrap_err().to_string();
    assert!(err.contains("Target modules [\"q_proj\"] not found in the base model"), "{err}");
    let err = m.add_adapter("a", lora(&["ln_1"], InitLoraWeights::Default), None, &device).unwrap_err().to_string();
    assert!(err.contains("is not supported"), "{err}");
    let mut bad = lora(&["c_attn"], InitLoraWeights::Default);
    if let MethodConfig::Lora(c) = &mut bad.method {
        c.r = 0;
    }
    let err = m.add_adapter("a", bad, None, &device).unwrap_err().to_string();
    assert!(err.contains("`r` should be a positive integer"), "{err}");
    // DistilBERT has no default targets in PEFT.
    let mut d = PeftModel::new(distilbert());
    let none = AdapterConfig::new(MethodConfig::Lora(LoraConfig::default()), None, None);
    let err = d.add_adapter("a", none, None, &device).unwrap_err().to_string();
    assert!(err.contains("Please specify `target_modules`"), "{err}");
}

#[test]
fn seq_cls_lora_saves_the_classifier_whole_and_switches_it() {
    let device = Device::flex();
    let mut m = PeftModel::new(distilbert());
    let base = values(m.forward(&input()).unwrap());
    m.add_adapter("a", lora(&["q_lin", "v_lin"], InitLoraWeights::Random), None, &device).unwrap();
    let cfg = &m.adapter("a").unwrap().config;
    assert_eq!(cfg.method.modules_to_save(), ["classifier".to_string(), "score".to_string()]);
    // PEFT's endswith also takes pre_classifier.
    assert_eq!(m.adapter("a").unwrap().saved_modules, ["pre_classifier", "classifier"]);
    let a_out = values(m.forward(&input()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter("a", dir.path()).unwrap();
    let st = ft_hub::tensors::NamedTensors::read_safetensors(&dir.path().join("adapter_model.safetensors")).unwrap();
    let names: Vec<&str> = st.names().collect();
    assert!(names.contains(&"base_model.model.classifier.weight"), "{names:?}");
    assert!(
        names.contains(&"base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight"),
        "{names:?}"
    );
    m.disable_adapters().unwrap();
    let d = max_diff(&values(m.forward(&input()).unwrap()), &base);
    assert!(d < 1e-6, "disabled vs base {d}");
    m.set_adapter("a").unwrap();
    assert_eq!(values(m.forward(&input()).unwrap()), a_out);
    let mut fresh = PeftModel::new(distilbert());
    fresh.load_adapter(dir.path(), "x").unwrap();
    assert!(max_diff(&values(fresh.forward(&input()).unwrap()), &a_out) < 1e-5);
}

#[test]
fn prompt_and_prefix_tuning_shapes_and_files() {
    let device = Device::flex();
    let mut m = PeftModel::new(gpt2());
    let prompt = AdapterConfig::new(
        MethodConfig::PromptTuning(PromptTuningConfig { num_virtual_tokens: 3, ..Default::default() }),
        None,
        None,
    );
    m.add_adapter("p", prompt, None, &device).unwrap();
    let out = m.forward(&input()).unwrap();
    let [b, l, v] = out.dims();
    assert_eq!([b, l], [2, 9], "logits cover the virtual tokens, as PEFT's");
    assert_eq!(v, 50257);
    let prefix = AdapterConfig::new(
        MethodConfig::PrefixTuning(PrefixTuningConfig {
            num_virtual_tokens: 4,
            prefix_projection: true,
            ..Default::default()
        }),
        None,
        None,
    );
    m.add_adapter("x", prefix, None, &device).unwrap();
    m.set_adapter("x").unwrap();
    let with_prefix = values(m.forward(&input()).unwrap());
    assert_eq!(with_prefix.len(), 2 * 6 * 50257);
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter("x", dir.path()).unwrap();
    let st = ft_hub::tensors::NamedTensors::read_safetensors(&dir.path().join("adapter_model.safetensors")).unwrap();
    // [virtual, layers · 2 · hidden] = [4, 2·2·16]
    assert_eq!(st.get("prompt_embeddings").unwrap().0, &[4, 64]);
    let mut fresh = PeftModel::new(gpt2());
    fresh.load_adapter(dir.path(), "x").unwrap();
    assert!(max_diff(&values(fresh.forward(&input()).unwrap()), &with_prefix) < 1e-5);
    // Too long for n_positions = 32 with 30 virtual tokens.
    let long = AdapterConfig::new(
        MethodConfig::PromptTuning(PromptTuningConfig { num_virtual_tokens: 30, ..Default::default() }),
        None,
        None,
    );
    m.add_adapter("long", long, None, &device).unwrap();
    m.set_adapter("long").unwrap();
    let err = m.forward(&input()).unwrap_err().to_string();
    assert!(err.contains("truncate the input to 2 tokens"), "{err}");
}

#[test]
fn trainable_line_counts_as_peft() {
    let device = Device::flex();
    let mut m = PeftModel::new(gpt2());
    m.add_adapter("default", lora(&["c_attn", "c_proj"], InitLoraWeights::Default), None, &device).unwrap();
    // tiny GPT-2: 2 layers, n_embd 16, r 4: c_attn 4·16 + 48·4 = 256, attn.c_proj 4·16 + 16·4 = 128,
    // mlp.c_proj 4·64 + 16·4 = 320 → 704 per layer.
    let (t, all) = m.trainable_parameters().unwrap();
    assert_eq!(t, 2 * 704);
    let base = ft_models::params::ParameterCount::of(&gpt2()).total;
    assert_eq!(all, base + 2 * 704);
    assert!(m.trainable_line().unwrap().starts_with("trainable params: 1,408 || all params: "));
}

/// GPT-2 small's shapes (a lazy skeleton: nothing of the 124M base is drawn): PEFT's own
/// `print_trainable_parameters` lines for the notebook's configs (printed by PEFT 0.21.2 on
/// `GPT2LMHeadModel(GPT2Config())`).
#[test]
fn gpt2_small_trainable_lines_are_peft_s() {
    let device = Device::flex();
    let config: ft_models::gpt2::Gpt2Config = serde_json::from_str("{}").unwrap();
    let base = || CausalLm::Gpt2(ft_models::gpt2::GPT2LMHeadModel::new(&config, &device));
    let lora = |r: usize, alpha: f64, targets: &[&str]| {
        AdapterConfig::new(
            MethodConfig::Lora(LoraConfig {
                r,
                lora_alpha: alpha,
                lora_dropout: 0.05,
                target_modules: Some(TargetModules::List(targets.iter().map(|s| s.to_string()).collect())),
                ..Default::default()
            }),
            None,
            None,
        )
    };
    let prompt = AdapterConfig::new(
        MethodConfig::PromptTuning(PromptTuningConfig { num_virtual_tokens: 20, ..Default::default() }),
        None,
        None,
    );
    for (config, want) in [
        (
            lora(8, 16.0, &["c_attn", "c_proj"]),
            "trainable params: 811,008 || all params: 125,250,816 || trainable%: 0.6475",
        ),
        (lora(8, 8.0, &["c_attn"]), "trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364"),
        (
            lora(16, 16.0, &["c_attn", "c_proj"]),
            "trainable params: 1,622,016 || all params: 126,061,824 || trainable%: 1.2867",
        ),
        (prompt, "trainable params: 15,360 || all params: 124,455,168 || trainable%: 0.0123"),
    ] {
        let mut m = PeftModel::new(base());
        m.add_adapter("default", config, None, &device).unwrap();
        assert_eq!(m.trainable_line().unwrap(), want);
    }
}

/// PeftModel's state across operations: switching away from a merged adapter unmerges it (as
/// PEFT's `set_adapter`), merging while disabled is refused, adding a second adapter keeps the
/// active one's whole modules in place, a failed load leaves nothing behind.
#[test]
fn switching_merging_adding_and_failing_keep_the_model_consistent() {
    let device = Device::flex();
    // Seeded: with unseeded random A and B, merging and unmerging one adapter and running the
    // other drifted past 1e-5 once in a while (f32 rounding of W + s·BA − s·BA).
    device.seed(3);
    // Merged a, then b: b's outputs, not a's delta plus b.
    let mut m = PeftModel::new(gpt2());
    m.add_adapter("a", lora(&["c_attn"], InitLoraWeights::Random), None, &device).unwrap();
    m.add_adapter("b", lora(&["c_proj"], InitLoraWeights::Random), None, &device).unwrap();
    m.set_adapter("b").unwrap();
    let b_out = values(m.forward(&input()).unwrap());
    m.set_adapter("a").unwrap();
    m.merge_adapter().unwrap();
    m.set_adapter("b").unwrap();
    let drift = max_diff(&values(m.forward(&input()).unwrap()), &b_out);
    assert!(drift < 1e-4, "{drift}");
    m.disable_adapters().unwrap();
    assert!(m.merge_adapter().unwrap_err().to_string().contains("disabled"));

    // A second classifier adapter added while the first is active: the first still runs with
    // its own classifier.
    let mut d = PeftModel::new(distilbert());
    d.add_adapter("a", lora(&["q_lin", "v_lin"], InitLoraWeights::Random), None, &device).unwrap();
    // Make a's classifier its own (as training would).
    let dir = tempfile::tempdir().unwrap();
    d.save_adapter("a", dir.path()).unwrap();
    let a_out = values(d.forward(&input()).unwrap());
    d.add_adapter("b", lora(&["q_lin"], InitLoraWeights::Random), None, &device).unwrap();
    assert_eq!(d.active_name(), Some("a"));
    assert_eq!(values(d.forward(&input()).unwrap()), a_out);

    // A load that fails half-way (a mis-shaped B on the last layer) leaves nothing; loading the
    // good adapter under the same name then gives the outputs of a fresh load.
    let good = tempfile::tempdir().unwrap();
    let mut src = PeftModel::new(gpt2());
    src.add_adapter("x", lora(&["c_attn", "c_proj"], InitLoraWeights::Random), None, &device).unwrap();
    src.save_adapter("x", good.path()).unwrap();
    let want = values(src.forward(&input()).unwrap());
    let bad = tempfile::tempdir().unwrap();
    std::fs::copy(good.path().join("adapter_config.json"), bad.path().join("adapter_config.json")).unwrap();
    let mut t =
        ft_hub::tensors::NamedTensors::read_safetensors(&good.path().join("adapter_model.safetensors")).unwrap();
    let last = "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight";
    let (shape, _) = t.remove(last).unwrap();
    t.insert(last, vec![shape[0], shape[1] + 1], vec![0.0; shape[0] * (shape[1] + 1)]).unwrap();
    t.write_safetensors(&bad.path().join("adapter_model.safetensors")).unwrap();
    let mut m = PeftModel::new(gpt2());
    let base_out = values(m.forward(&input()).unwrap());
    let err = m.load_adapter(bad.path(), "x").unwrap_err().to_string();
    assert!(err.contains(last) && err.contains("shape"), "{err}");
    assert!(m.adapters().is_empty());
    assert_eq!(values(m.forward(&input()).unwrap()), base_out);
    m.load_adapter(good.path(), "x").unwrap();
    assert!(max_diff(&values(m.forward(&input()).unwrap()), &want) < 1e-5);
}

/// Invalid regular expressions in a LoRA config are errors naming the key, not "no match".
#[test]
fn invalid_target_regex_is_named() {
    let device = Device::flex();
    let mut m = PeftModel::new(gpt2());
    let mut c = lora(&["c_attn"], InitLoraWeights::Default);
    if let MethodConfig::Lora(l) = &mut c.method {
        l.target_modules = Some(TargetModules::Regex("(c_attn".into()));
    }
    let err = m.add_adapter("a", c, None, &device).unwrap_err().to_string();
    assert!(err.contains("target_modules") && err.contains("not a valid regular expression"), "{err}");
}

fn bert() -> SequenceClassifier {
    let dir = support::fixture("models/tiny-bert");
    load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &Device::flex())
        .unwrap()
        .into_sequence_classifier()
        .unwrap()
        .model
}

fn bottleneck(name: &str, preset: &str) -> AdapterConfig {
    let c = ft_peft::adapterhub::BnConfig::preset(preset).unwrap();
    AdapterConfig::new(MethodConfig::Bottleneck(ft_peft::adapterhub::BottleneckConfig::new(name, c)), None, None)
}

/// Parameters that would receive gradients (ft's count, which moves the model to autodiff).
fn trainable_count<M: burn::module::Module>(m: &M) -> usize {
    ft_models::params::ParameterCount::of(m).trainable
}

/// Bottleneck adapters (AdapterHub) as named adapters: several on one base, each run alone
/// gives what it gives loaded alone; disabled gives the base exactly; deleting one leaves the
/// other; a new adapter with its head trains only those (`train_adapter`).
#[test]
fn bottleneck_adapters_switch_and_train_alone() {
    let x = input();
    let alone = |dir: &str| {
        let mut m = PeftModel::new(bert());
        m.load_adapter(&support::fixture(&format!("adapters/{dir}")), dir).unwrap();
        values(m.forward(&x).unwrap())
    };
    let (pf, ho) = (alone("bert-pfeiffer"), alone("bert-houlsby"));
    let mut m = PeftModel::new(bert());
    // (tiny-bert has no classifier: each load draws a new one, which adapters with heads ignore)
    let base_out = values(m.forward(&x).unwrap());
    m.load_adapter(&support::fixture("adapters/bert-pfeiffer"), "pf").unwrap();
    m.load_adapter(&support::fixture("adapters/bert-houlsby"), "ho").unwrap();
    assert_eq!(m.active_name(), Some("pf"));
    assert_eq!(values(m.forward(&x).unwrap()), pf);
    m.set_adapter("ho").unwrap();
    assert_eq!(values(m.forward(&x).unwrap()), ho);
    assert_eq!(m.output_labels().unwrap(), vec!["LABEL_0", "LABEL_1", "LABEL_2"]);
    m.set_adapter("pf").unwrap();
    assert_eq!(m.output_labels().unwrap(), vec!["World", "Sports", "Business"]);
    m.disable_adapters().unwrap();
    assert_eq!(values(m.forward(&x).unwrap()), base_out, "disabled: the base model exactly");
    assert!(m.output_labels().is_none());
    m.enable_adapters().unwrap();
    m.delete_adapter("pf").unwrap();
    assert!(m.active_name().is_none());
    m.set_adapter("ho").unwrap();
    assert_eq!(values(m.forward(&x).unwrap()), ho);
    // A name twice, and a wrong head kind, are errors that leave the model as it was.
    let err = m.load_adapter(&support::fixture("adapters/bert-pfeiffer"), "ho").unwrap_err().to_string();
    assert!(err.contains("already loaded"), "{err}");
    let err = m.load_adapter(&support::fixture("adapters/bert-tagging"), "tag").unwrap_err().to_string();
    assert!(err.contains("tagging") && err.contains("token-classification"), "{err}");
    assert_eq!(values(m.forward(&x).unwrap()), ho);

    // A new Pfeiffer adapter with a 4-label head: 324 + 1,188 trainable (tiny BERT), as the
    // library's train_adapter; the base's own classifier and LayerNorms frozen.
    let mut m = PeftModel::new(bert());
    m.add_adapter("new", bottleneck("new", "pfeiffer"), None, &Device::flex()).unwrap();
    let labels: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    m.add_classification_head("new", 4, Some(&labels), &Device::flex()).unwrap();
    let mut m = m.freeze_base();
    assert_eq!(trainable_count(&m), 324 + 1_188);
    let (t, _) = m.trainable_parameters().unwrap();
    assert_eq!(t, 324 + 1_188);
    assert_eq!(values(m.forward(&x).unwrap()).len(), 2 * 4);
    // A tagging head does not fit a sequence classifier.
    let err = m.add_tagging_head("new", 3, None, &Device::flex()).unwrap_err().to_string();
    assert!(err.contains("tagging"), "{err}");
    // Saved and loaded again: the same outputs.
    let dir = tempfile::tempdir().unwrap();
    m.save_adapter("new", dir.path()).unwrap();
    let mut again = PeftModel::new(bert());
    again.load_adapter(dir.path(), "new").unwrap();
    assert_eq!(values(again.forward(&x).unwrap()), values(m.forward(&x).unwrap()));
    assert_eq!(again.output_labels().unwrap(), labels);
    // Not on GPT-2.
    let err = PeftModel::new(gpt2())
        .add_adapter("x", bottleneck("x", "pfeiffer"), None, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("GPT-2"), "{err}");
}
