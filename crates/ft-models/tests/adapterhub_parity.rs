//! Bottleneck adapters with their heads saved by AdapterHub's `adapters` library load in ft with
//! the library's logits (`tests/fixtures/adapters`, made by `xtask/python/fixtures_adapters.py`
//! on the tiny random BERT and DistilBERT, every adapter and head weight random): Pfeiffer
//! (`seq_bn`) and Houlsby (`double_seq_bn`), both weight forms (`.bin` pickles and safetensors),
//! per-layer options (`leave_out`, reduction factor, GELU, `residual_before_ln = false`, a
//! one-layer head) and a tagging head; ft counts the library's trainable and total parameters.
//!
//! ft re-saves each one and checks the file is the one the library loaded back with ft's logits
//! (`ft_saved_check.json`, made by `cargo xtask fixtures adapters-check`, which runs this test
//! with `FT_UPDATE_FIXTURES=1` to write them into `target/adapters-saved`).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::input::TextInput;
use ft_models::peft::{PeftBase, PeftModel};

type Fixture = HashMap<String, (Vec<usize>, Vec<f64>)>;

fn fixtures() -> (std::path::PathBuf, Fixture, serde_json::Value) {
    let dir = support::fixture("adapters");
    let expected = support::read_safetensors(&dir.join("expected.safetensors"));
    let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (dir, expected, meta)
}

fn ints(v: &(Vec<usize>, Vec<f64>), device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v.1.iter().map(|x| *x as i64).collect::<Vec<_>>(), [v.0[0], v.0[1]]), device)
}

fn input(expected: &Fixture, device: &Device) -> TextInput {
    TextInput::ids(ints(&expected["input_ids"], device), Some(ints(&expected["attention_mask"], device)))
}

fn base<M>(name: &str, task: Task, into: impl Fn(ft_models::auto::Loaded<ft_models::auto::AnyModel>) -> M) -> M {
    let dir = support::fixture(&format!("models/{name}"));
    into(load(dir.to_str().unwrap(), task, &LoadOptions::default(), &Device::flex()).unwrap())
}

fn seqcls(name: &str) -> ft_models::auto::SequenceClassifier {
    base(name, Task::SequenceClassification, |l| l.into_sequence_classifier().unwrap().model)
}

fn tokcls(name: &str) -> ft_models::auto::TokenClassifier {
    base(name, Task::TokenClassification, |l| l.into_token_classifier().unwrap().model)
}

/// The largest difference over the real tokens (per-token outputs leave padding out).
fn max_err(got: &[f32], shape: &[usize], want: &(Vec<usize>, Vec<f64>), mask: &(Vec<usize>, Vec<f64>)) -> f64 {
    assert_eq!(shape, want.0.as_slice(), "shape");
    got.iter()
        .zip(&want.1)
        .enumerate()
        .filter(|(i, _)| shape.len() != 3 || mask.1[i / shape[2]] != 0.0)
        .map(|(_, (a, b))| (*a as f64 - b).abs())
        .fold(0.0, f64::max)
}

/// Loads case `name` under the library's name and checks logits and parameter counts; then the
/// file round trip.
fn check<M: PeftBase>(
    name: &str,
    base_name: &str,
    base: impl Fn() -> M,
    logits: impl Fn(M::Output) -> (Vec<usize>, Vec<f32>),
) {
    let (dir, expected, meta) = fixtures();
    let device = Device::flex();
    let mut m = PeftModel::new(base());
    m.load_adapter(&dir.join(name), name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = input(&expected, &device);
    let (shape, got) = logits(m.forward(&x).unwrap());
    let err = max_err(&got, &shape, &expected[&format!("{name}.logits")], &expected["attention_mask"]);
    eprintln!("{name}: adapters library → ft max |Δ logits| = {err:.2e}");
    assert!(err <= 1e-4, "{name}: {err}");
    let (trainable, total) = m.trainable_parameters().unwrap();
    assert_eq!(trainable as u64, meta[name]["trainable"].as_u64().unwrap(), "{name}: trainable");
    // The library's flexible-head BERT always holds a pooler; ft's token classifier, like
    // transformers' BertForTokenClassification, has none (32·32 + 32 on the tiny BERT).
    let pooler = if name == "bert-tagging" { 32 * 32 + 32 } else { 0 };
    assert_eq!(total as u64 + pooler, meta[name]["total"].as_u64().unwrap(), "{name}: total");
    if let Some(want) = meta[name]["label2id"].as_object() {
        let labels = m.head_labels(name).unwrap();
        for (label, id) in want {
            assert_eq!(labels[id.as_u64().unwrap() as usize], *label, "{name}: labels");
        }
    }

    // ft's files: the library's tensor names, and the same logits when loaded again.
    let saved = tempfile::tempdir().unwrap();
    m.save_adapter(name, saved.path()).unwrap();
    for file in ["adapter.safetensors", "model_head.safetensors"] {
        let mine: Vec<String> =
            NamedTensors::read_safetensors(&saved.path().join(file)).unwrap().names().map(String::from).collect();
        let bin = if file.starts_with("adapter") { "pytorch_adapter.bin" } else { "pytorch_model_head.bin" };
        let theirs = NamedTensors::read_safetensors(&dir.join(name).join(file))
            .or_else(|_| NamedTensors::read_pytorch(&dir.join(name).join(bin)))
            .unwrap();
        let theirs: Vec<String> = theirs.names().map(String::from).collect();
        assert_eq!(mine, theirs, "{name}: tensor names of {file}");
    }
    let mut again = PeftModel::new(base());
    again.load_adapter(saved.path(), "reloaded").unwrap();
    let (_, back) = logits(again.forward(&x).unwrap());
    assert_eq!(back, got, "{name}: ft's own file gives other logits");
    save_for_python(name, base_name, &mut m, &expected, &shape, &got);
}

/// Checks that ft's re-saved adapter is the file the library loaded back with ft's outputs
/// (`ft_saved_check.json`); with `FT_UPDATE_FIXTURES=1`, writes it and ft's logits for that
/// check.
fn save_for_python<M: PeftBase>(
    name: &str,
    base: &str,
    m: &mut PeftModel<M>,
    expected: &Fixture,
    shape: &[usize],
    logits: &[f32],
) {
    if std::env::var_os("FT_UPDATE_FIXTURES").is_none() {
        let tmp = tempfile::tempdir().unwrap();
        m.save_adapter(name, tmp.path()).unwrap();
        let check: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(support::fixture("adapters/ft_saved_check.json")).unwrap())
                .unwrap();
        let rec = &check[name];
        let err = rec["max_abs"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: not in ft_saved_check.json: run `cargo xtask fixtures adapters-check`"));
        eprintln!("{name}: ft → adapters library max |Δ logits| = {err:.2e}");
        assert!(
            rec["pass"].as_bool() == Some(true) && err <= 1e-4,
            "{name}: the library computed other outputs: {err}"
        );
        for (file, hash) in rec["hashes"].as_object().unwrap() {
            assert_eq!(
                support::fnv(&tmp.path().join(file)),
                hash.as_str().unwrap(),
                "{name}: ft now writes another {file} than the one the library checked: run `cargo xtask fixtures adapters-check`"
            );
        }
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/adapters-saved").join(name);
    m.save_adapter(name, &dir).unwrap();
    let mut t = NamedTensors::new();
    for key in ["input_ids", "attention_mask"] {
        let (s, v) = &expected[key];
        t.insert(key, s.clone(), v.iter().map(|x| *x as f32).collect()).unwrap();
    }
    t.insert("logits", shape.to_vec(), logits.to_vec()).unwrap();
    t.write_safetensors(&dir.join("ft_logits.safetensors")).unwrap();
    let case = serde_json::json!({"base": base, "name": name});
    std::fs::write(dir.join("ft_case.json"), case.to_string()).unwrap();
}

fn two(t: Tensor<2>) -> (Vec<usize>, Vec<f32>) {
    (t.dims().to_vec(), t.into_data().try_into_vec_as().unwrap())
}

fn three(t: Tensor<3>) -> (Vec<usize>, Vec<f32>) {
    (t.dims().to_vec(), t.into_data().try_into_vec_as().unwrap())
}

#[test]
fn bert_pfeiffer_and_houlsby_from_the_library() {
    for name in ["bert-pfeiffer", "bert-houlsby", "bert-options"] {
        check(name, "tiny-bert", || seqcls("tiny-bert"), two);
    }
}

#[test]
fn distilbert_pfeiffer_and_houlsby_from_the_library() {
    for name in ["distilbert-pfeiffer", "distilbert-houlsby"] {
        check(name, "tiny-distilbert", || seqcls("tiny-distilbert"), two);
    }
}

#[test]
fn tagging_head_from_the_library() {
    check("bert-tagging", "tiny-bert", || tokcls("tiny-bert"), three);
}
