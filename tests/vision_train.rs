//! End-to-end: `ft train` with `model.task = "image-classification"` (§10, exercise 7) on the
//! committed image folder `tests/fixtures/vision-train/images` (3 classes, 80 / 24 images):
//! PyTorch's losses over the first 20 steps (`xtask/python/fixtures_vision_train.py`), what a
//! frozen backbone and a partial unfreeze leave untouched, the saved timm layout read back by
//! `ft predict`, and every bad input of the issue — each a clear error or a documented
//! behaviour, never a panic.

#[path = "support/hub_server.rs"]
mod hub_server;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hub_server::HubServer;

use support::{fails, fixture, json, ok, read_safetensors};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}

/// A run file for `model` on `images`: `method` and extra `[data]` lines as given.
fn run_file(dir: &Path, model: &Path, images: &Path, data: &str, method: &str, training: &str) -> PathBuf {
    let out = dir.join("out");
    let text = format!(
        "[model]\nname = {model:?}\ntask = \"image-classification\"\n\n[data]\nsource = {images:?}\ntrain_split = \"train\"\n\
         eval_split = \"test\"\n{data}\n\n[method]\n{method}\n\n[training]\noutput_dir = {out:?}\nlearning_rate = 1e-3\n\
         per_device_train_batch_size = 8\nnum_train_epochs = 2\nlogging_steps = 1\neval_strategy = \"epoch\"\n\
         save_strategy = \"no\"\n{training}\n"
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(run: &Path) -> Output {
    ft(&["train", "--config", run.to_str().unwrap()])
}

fn images() -> PathBuf {
    fixture("vision-train/images")
}

/// The logged training losses of a finished run.
fn losses(out: &Path) -> Vec<f64> {
    let state = json(&out.join("trainer_state.json"));
    state["log_history"].as_array().unwrap().iter().filter_map(|e| e.get("loss").and_then(|l| l.as_f64())).collect()
}

#[test]
fn losses_of_the_first_20_steps_match_pytorch() {
    let expected = json(&fixture("vision-train/expected.json"));
    for (name, method) in [
        ("frozen", "kind = \"frozen\""),
        ("unfreeze", "kind = \"frozen\"\nunfreeze = [\"layer3\", \"layer4\"]\nbackbone_learning_rate = 1e-4"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let run = run_file(tmp.path(), &fixture("vision-train/model"), &images(), "augment = false", method, "");
        ok(&train(&run));
        let got = losses(&tmp.path().join("out"));
        let want: Vec<f64> = expected[name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(got.len(), 20, "{name}: {got:?}");
        // ft logs losses rounded to 4 decimals, as transformers does: 5e-5 of the 1e-4 budget.
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-4, "{name}: max |ft - PyTorch| = {worst:e}\nft {got:?}\ntorch {want:?}");
    }
}

/// Tensors of `a` and `b` with the same name and the same values (bit for bit).
fn same(a: &(Vec<usize>, Vec<f64>), b: &(Vec<usize>, Vec<f64>)) -> bool {
    a.0 == b.0 && a.1.iter().zip(&b.1).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn frozen_backbone_is_untouched_and_unfreeze_changes_only_its_stages() {
    let initial = read_safetensors(&fixture("models/tiny-resnet/model.safetensors"));
    // §10: a frozen backbone (BatchNorm statistics included) and a new 3-class head, with
    // random augmentation (the backbone runs in every step).
    let tmp = tempfile::tempdir().unwrap();
    let run =
        run_file(tmp.path(), &fixture("models/tiny-resnet"), &images(), "image_size = 32", "kind = \"frozen\"", "");
    let stdout = ok(&train(&run));
    assert!(stdout.contains("eval_accuracy"), "{stdout}");
    let out = tmp.path().join("out");
    let saved = read_safetensors(&out.join("model.safetensors"));
    let mut compared = 0;
    for (name, t) in &saved {
        if name.starts_with("fc.") {
            assert_eq!(t.0[0], 3, "{name}: {:?}", t.0);
            continue;
        }
        let before = initial.get(name).unwrap_or_else(|| panic!("{name} not in the initial checkpoint"));
        assert!(same(t, before), "{name} changed with a frozen backbone");
        compared += 1;
    }
    assert!(compared > 60, "{compared}");
    let config = json(&out.join("config.json"));
    assert_eq!(config["label_names"], serde_json::json!(["circles", "noise", "stripes"]));
    assert_eq!(config["num_classes"], 3);
    assert_eq!(config["pretrained_cfg"]["input_size"], serde_json::json!([3, 32, 32]));
    for f in ["eval_results.json", "trainer_state.json", "confusion_matrix.png", "loss_curve.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let all = json(&out.join("all_results.json"));
    assert!(all["data_wait_runtime"].as_f64().is_some(), "{all}");

    // `ft predict` reads the trained model back with its class names.
    let input = tmp.path().join("in.jsonl");
    let img = images().join("test/noise/0.png");
    std::fs::write(&input, format!("{{\"image\": {:?}}}\n", img.to_str().unwrap())).unwrap();
    let pred = tmp.path().join("pred.jsonl");
    ok(&ft(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--task",
        "image-classification",
        "--input",
        input.to_str().unwrap(),
        "--output",
        pred.to_str().unwrap(),
    ]));
    let line = std::fs::read_to_string(&pred).unwrap();
    assert!(["circles", "noise", "stripes"].iter().any(|c| line.contains(c)), "{line}");

    // Exercise 7: layer3, layer4 (their BatchNorm statistics too) and fc change; the rest not.
    let tmp = tempfile::tempdir().unwrap();
    let method = "kind = \"frozen\"\nunfreeze = [\"layer3\", \"layer4\"]\nbackbone_learning_rate = 1e-4";
    let run = run_file(tmp.path(), &fixture("models/tiny-resnet"), &images(), "image_size = 32", method, "");
    ok(&train(&run));
    let saved = read_safetensors(&tmp.path().join("out/model.safetensors"));
    let mut changed_stats = 0;
    for (name, t) in &saved {
        if name.starts_with("fc.") {
            continue;
        }
        let unchanged = same(t, &initial[name]);
        if name.starts_with("layer3.") || name.starts_with("layer4.") {
            assert!(!unchanged || name.ends_with("num_batches_tracked"), "{name} did not train");
            changed_stats += usize::from(name.contains("running_"));
        } else {
            assert!(unchanged, "{name} changed but its stage is frozen");
        }
    }
    assert!(changed_stats >= 8, "{changed_stats}");
}

#[test]
fn full_fine_tuning_and_random_init_train_every_stage() {
    let initial = read_safetensors(&fixture("models/tiny-resnet/model.safetensors"));
    let tmp = tempfile::tempdir().unwrap();
    let run = run_file(
        tmp.path(),
        &fixture("models/tiny-resnet"),
        &images(),
        "image_size = 32",
        "kind = \"full\"",
        "max_steps = 3",
    );
    ok(&train(&run));
    let saved = read_safetensors(&tmp.path().join("out/model.safetensors"));
    for name in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.1.bn2.weight"] {
        assert!(!same(&saved[name], &initial[name]), "{name} did not train");
    }
    // model.random_init: the checkpoint is not read (the weights are torchvision's init).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config-only");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("models/tiny-resnet/config.json"), dir.join("config.json")).unwrap();
    let run = run_file(tmp.path(), &dir, &images(), "image_size = 32", "kind = \"full\"", "max_steps = 2");
    let text = std::fs::read_to_string(&run)
        .unwrap()
        .replace("task = \"image-classification\"", "task = \"image-classification\"\nrandom_init = true");
    std::fs::write(&run, text).unwrap();
    ok(&train(&run));
    assert!(tmp.path().join("out/model.safetensors").exists());
}

/// A copy of the fixture image folder to break.
fn folder_copy(dir: &Path) -> PathBuf {
    let root = dir.join("images");
    for split in ["train", "test"] {
        for class in ["circles", "noise", "stripes"] {
            support::copy_dir(&images().join(split).join(class), &root.join(split).join(class));
        }
    }
    root
}

#[test]
fn bad_image_inputs_are_clear_errors() {
    let model = fixture("models/tiny-resnet");
    // An empty class folder.
    let tmp = tempfile::tempdir().unwrap();
    let root = folder_copy(tmp.path());
    std::fs::create_dir_all(root.join("train/zebra")).unwrap();
    let run = run_file(tmp.path(), &model, &root, "image_size = 32", "kind = \"frozen\"", "");
    fails(&train(&run), &["class folder", "zebra", "has no images"]);
    assert!(!tmp.path().join("out/model.safetensors").exists());

    // A class of the evaluation split that the training split lacks.
    std::fs::remove_dir_all(root.join("train/zebra")).unwrap();
    support::copy_dir(&root.join("test/noise"), &root.join("test/zebra"));
    fails(&train(&run), &["evaluation split 'test'", "'zebra'", "training split 'train'"]);
    std::fs::remove_dir_all(root.join("test/zebra")).unwrap();

    // A truncated image in the middle of an epoch: an error naming it, or skipped and counted.
    let broken = root.join("train/noise/5.png");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    fails(&train(&run), &["noise/5.png", "skip_invalid"]);
    let text =
        std::fs::read_to_string(&run).unwrap().replace("image_size = 32", "image_size = 32\nskip_invalid = true");
    std::fs::write(&run, text).unwrap();
    let o = train(&run);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("5.png"), "{}", String::from_utf8_lossy(&o.stderr));

    // `unfreeze` naming a stage that does not exist; method keys that do not apply.
    for (method, needles) in [
        ("kind = \"frozen\"\nunfreeze = [\"layer5\"]", &["method.unfreeze", "layer5", "layer4"][..]),
        ("kind = \"frozen\"\nbackbone_learning_rate = 1e-4", &["backbone_learning_rate", "unfreeze"][..]),
        ("kind = \"frozen\"\nhead_dropout = 0.1", &["head_dropout"][..]),
        ("kind = \"lora\"", &["lora", "image-classification"][..]),
    ] {
        let run = run_file(tmp.path(), &model, &root, "", method, "");
        fails(&train(&run), needles);
    }
    for (data, needles) in [
        ("crop_scale = [0.5, 0.1]", &["data.crop_scale"][..]),
        ("flip_probability = 2.0", &["data.flip_probability"][..]),
        ("image_size = 0", &["data.image_size"][..]),
        ("max_length = 12", &["data.max_length", "image-classification"][..]),
    ] {
        let run = run_file(tmp.path(), &model, &root, data, "kind = \"frozen\"", "");
        fails(&train(&run), needles);
    }
    // A text model for an image task.
    let run = run_file(tmp.path(), &fixture("models/tiny-bert-seqcls"), &root, "", "kind = \"frozen\"", "");
    fails(&train(&run), &["image model"]);
}

#[test]
fn images_smaller_than_the_crop_are_upscaled() {
    // 32x32 images with a 48-pixel crop: the evaluation resize (shorter side to 54) and the
    // random crop's resize both upscale, as torchvision's do.
    let tmp = tempfile::tempdir().unwrap();
    let run = run_file(
        tmp.path(),
        &fixture("models/tiny-resnet"),
        &images(),
        "image_size = 48",
        "kind = \"full\"",
        "max_steps = 2",
    );
    ok(&train(&run));
    let config = json(&tmp.path().join("out/config.json"));
    assert_eq!(config["pretrained_cfg"]["input_size"], serde_json::json!([3, 48, 48]));
}

/// A run file's text with `from` replaced by `to`.
fn edit(run: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(run).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    std::fs::write(run, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn parquet_image_datasets_locally_and_through_the_stand_in_hub() {
    // The fixture images as `datasets` stores an image dataset (inline bytes, a ClassLabel
    // column `labels`), read from a local folder and then as a Hub dataset id.
    let parquet = fixture("vision-train/parquet");
    let tmp = tempfile::tempdir().unwrap();
    let data = "image_size = 32\nlabel_column = \"labels\"\naugment = false";
    let run = run_file(tmp.path(), &fixture("vision-train/model"), &parquet, data, "kind = \"frozen\"", "");
    ok(&train(&run));
    // The same images in the same order as the image folder: the same losses.
    let from_parquet = losses(&tmp.path().join("out"));
    let tmp2 = tempfile::tempdir().unwrap();
    let run2 = run_file(
        tmp2.path(),
        &fixture("vision-train/model"),
        &images(),
        "image_size = 32\naugment = false",
        "kind = \"frozen\"",
        "",
    );
    ok(&train(&run2));
    assert_eq!(from_parquet, losses(&tmp2.path().join("out")));

    let server =
        HubServer::start_with_datasets(HashMap::new(), HashMap::from([("ft-fixtures/shapes".to_string(), parquet)]));
    edit(&run, &format!("source = {:?}", fixture("vision-train/parquet")), "source = \"ft-fixtures/shapes\"");
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    let hf_home = tmp.path().join("hf-home");
    let o = Command::new(env!("CARGO_BIN_EXE_ft"))
        .args(["train", "--config", run.to_str().unwrap()])
        .env("HF_HOME", &hf_home)
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_HUB_OFFLINE", "0")
        .output()
        .unwrap();
    ok(&o);
    assert!(server.requests() > 0);
    assert_eq!(losses(&tmp.path().join("out")), from_parquet);
}

#[test]
fn resuming_gives_the_uninterrupted_model_bit_for_bit() {
    // Augmentation on (draws keyed by seed, epoch and image), BatchNorm training in layer3/4,
    // checkpoints every 7 steps with no evaluation before them.
    let method = "kind = \"frozen\"\nunfreeze = [\"layer3\", \"layer4\"]\nbackbone_learning_rate = 1e-4";
    let tmp = tempfile::tempdir().unwrap();
    let run = run_file(tmp.path(), &fixture("vision-train/model"), &images(), "image_size = 24", method, "");
    edit(
        &run,
        "eval_strategy = \"epoch\"\nsave_strategy = \"no\"",
        "eval_strategy = \"no\"\nsave_strategy = \"steps\"\nsave_steps = 7",
    );
    ok(&train(&run));
    let full = read_safetensors(&tmp.path().join("out/model.safetensors"));

    // A run killed after checkpoint-7, resumed.
    let tmp2 = tempfile::tempdir().unwrap();
    support::copy_dir(&tmp.path().join("out/checkpoint-7"), &tmp2.path().join("out/checkpoint-7"));
    let text =
        std::fs::read_to_string(&run).unwrap().replace(tmp.path().to_str().unwrap(), tmp2.path().to_str().unwrap());
    let run2 = tmp2.path().join("run.toml");
    std::fs::write(&run2, text).unwrap();
    ok(&ft(&["train", "--config", run2.to_str().unwrap(), "--resume"]));
    let resumed = read_safetensors(&tmp2.path().join("out/model.safetensors"));
    for (name, t) in &full {
        assert!(same(t, &resumed[name]), "{name} differs after resuming");
    }

    // Resuming into a run whose classes differ: a clear error, not a panic.
    let tmp3 = tempfile::tempdir().unwrap();
    let root = folder_copy(tmp3.path());
    std::fs::remove_dir_all(root.join("train/stripes")).unwrap();
    std::fs::remove_dir_all(root.join("test/stripes")).unwrap();
    support::copy_dir(&tmp.path().join("out/checkpoint-7"), &tmp3.path().join("out/checkpoint-7"));
    let run3 = run_file(tmp3.path(), &fixture("vision-train/model"), &root, "image_size = 24", method, "");
    fails(
        &ft(&["train", "--config", run3.to_str().unwrap(), "--resume"]),
        &["checkpoint-7", "not of this run", "classes"],
    );
}

#[test]
fn classes_come_from_the_training_folder() {
    // A class folder only in a split the run does not read would be an untrained head row.
    let tmp = tempfile::tempdir().unwrap();
    let root = folder_copy(tmp.path());
    support::copy_dir(&root.join("test/noise"), &root.join("val/aardvark"));
    let run = run_file(tmp.path(), &fixture("models/tiny-resnet"), &root, "image_size = 32", "kind = \"frozen\"", "");
    fails(&train(&run), &["'aardvark'", "training folder"]);
}

#[test]
fn image_paths_in_a_jsonl_column_are_relative_to_the_data_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    for split in ["train", "test"] {
        let mut lines = String::new();
        for (label, class) in ["circles", "noise", "stripes"].iter().enumerate() {
            for i in 0..4 {
                let rel = format!("{split}/{class}/{i}.png");
                lines += &format!("{{\"image\": {:?}, \"label\": {label}}}\n", format!("../imgs/{rel}"));
            }
        }
        std::fs::write(dir.join(format!("{split}.jsonl")), lines).unwrap();
    }
    let imgs = tmp.path().join("imgs");
    for split in ["train", "test"] {
        for class in ["circles", "noise", "stripes"] {
            support::copy_dir(&images().join(split).join(class), &imgs.join(split).join(class));
        }
    }
    // Run from another working directory: the paths resolve against the data's folder.
    let run = run_file(
        tmp.path(),
        &fixture("models/tiny-resnet"),
        &dir,
        "image_size = 32",
        "kind = \"frozen\"",
        "max_steps = 1",
    );
    let text = std::fs::read_to_string(&run)
        .unwrap()
        .replace("[model]", "[model]")
        .replace("task = \"image-classification\"", "task = \"image-classification\"\nnum_labels = 3");
    std::fs::write(&run, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ft"))
        .args(["train", "--config", run.to_str().unwrap()])
        .current_dir("/")
        .output()
        .unwrap();
    ok(&o);
}
