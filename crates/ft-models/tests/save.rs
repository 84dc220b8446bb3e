//! GPT-2 and ResNet save in the Hub layout through the one naming path, and what they save is
//! what transformers, torchvision and timm load: `tests/fixtures/saved_check.json`, written by
//! `xtask/python/check_saved.py`, records what those libraries computed on the files this test
//! writes, with each file's FNV-1a hash; the test checks that today's files hash the same.
//!
//! With `FT_UPDATE_FIXTURES=1` the test writes the folders and ft's own outputs into
//! `FT_SAVED_DIR` (default `target/saved-fixtures`) for the Python check instead
//! (`cargo xtask fixtures saved` runs both).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{AnyModel, CausalLm, LoadOptions, Task, load, save_pretrained};
use ft_models::resnet::{ResNet, ResNetConfig};
use serde_json::{Value, json};
use support::{fixture, read_safetensors, workspace};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f32>().map(|v| v as f64).collect()
}

/// FNV-1a 64 of a file's bytes, as hex (check_saved.py computes the same).
fn fnv(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::fs::read(path).unwrap() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The fixed image batch both sides use: `[1, 3, 64, 64]`, value `(i % 97) / 97 - 0.5`.
fn image(device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..3 * 64 * 64).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
    Tensor::from_data(TensorData::new(v, [1, 3, 64, 64]), device)
}

/// Saves the three models into `dir`; returns ft's outputs on the fixed inputs and file hashes.
fn save_all(dir: &Path) -> Value {
    let device = Device::flex();
    device.seed(7);
    let mut report = serde_json::Map::new();

    // GPT-2: GPT2LMHeadModel's names under `transformer.`, Conv1D weights as stored, no lm_head.
    let loaded = load(fixture("models/tiny-gpt2").to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &device)
        .unwrap()
        .into_causal_lm()
        .unwrap();
    let gdir = dir.join("tiny-gpt2");
    save_pretrained(&gdir, &loaded.model.export().unwrap(), &loaded.config, loaded.model.class_name(), &loaded.files)
        .unwrap();
    let names: Vec<String> = read_safetensors(&gdir.join("model.safetensors")).into_keys().collect();
    assert!(names.contains(&"transformer.h.0.attn.c_attn.weight".into()) && !names.iter().any(|n| n.starts_with("lm_head")));
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8, 9, 10], [1, 6]), &device);
    let again = load(gdir.to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &device).unwrap();
    assert!(again.report.is_complete() && again.report.unexpected.is_empty(), "{:?}", again.report);
    let (AnyModel::CausalLm(CausalLm::Gpt2(g)), CausalLm::Gpt2(o)) = (again.model, &loaded.model) else { panic!() };
    let logits = values(g.forward(ids.clone(), None, None, None).unwrap());
    assert_eq!(logits, values(o.forward(ids, None, None, None).unwrap()));
    report.insert("tiny-gpt2".into(), json!({"fnv": fnv(&gdir.join("model.safetensors")), "logits": logits}));

    // ResNet: timm's config.json with the labels, torchvision's key names. The narrow fixture
    // (torchvision only: timm's stem is always 64 wide) and a full-width random resnet18.
    let r = ft_models::resnet::load(fixture("models/tiny-resnet").to_str().unwrap(), &LoadOptions::default(), &device)
        .unwrap();
    let full_config = ResNetConfig::new("resnet18", 10);
    let full = ResNet::init(&full_config, &device).unwrap();
    for (name, model, config) in [("tiny-resnet", &r.model, &r.config), ("resnet18", &full, &full_config)] {
        let rdir = dir.join(name);
        model.save_pretrained(&rdir, config).unwrap();
        let back = ft_models::resnet::load(rdir.to_str().unwrap(), &LoadOptions::default(), &device).unwrap();
        assert!(back.report.is_complete() && back.report.unexpected.is_empty(), "{:?}", back.report);
        assert_eq!(back.config.label_names(), config.label_names());
        let logits = values(back.model.forward(image(&device)));
        assert_eq!(logits, values(model.forward(image(&device))));
        report.insert(name.into(), json!({"fnv": fnv(&rdir.join("model.safetensors")), "logits": logits}));
    }
    Value::Object(report)
}

#[test]
fn gpt2_and_resnet_save_in_the_hub_layout() {
    if std::env::var_os("FT_UPDATE_FIXTURES").is_some() {
        let dir = std::env::var_os("FT_SAVED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/saved-fixtures"));
        let _ = std::fs::remove_dir_all(&dir);
        let outputs = save_all(&dir);
        std::fs::write(dir.join("ft_outputs.json"), serde_json::to_string_pretty(&outputs).unwrap()).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outputs = save_all(tmp.path());
    let check: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("saved_check.json")).expect("tests/fixtures/saved_check.json: run `cargo xtask fixtures saved`"),
    )
    .unwrap();
    for name in ["tiny-gpt2", "tiny-resnet", "resnet18"] {
        let c = &check[name];
        // Today's files are the ones the Python libraries loaded.
        assert_eq!(outputs[name]["fnv"], c["fnv"], "{name}: the saved file changed since `cargo xtask fixtures saved`");
        for k in ["missing_keys", "unexpected_keys"] {
            assert_eq!(c[k], json!([]), "{name}: {k}: {c}");
        }
        for (k, err) in c["max_abs_logits_vs_ft"].as_object().unwrap() {
            assert!(err.as_f64().unwrap() < 1e-4, "{name}: {k} {err}");
        }
    }
}
