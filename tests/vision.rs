//! End-to-end: `ft predict --task image-classification` and `ft info` on the small ResNet
//! fixtures (`tests/fixtures/models/tiny-resnet*`), against torchvision's logits, and every bad
//! image input — each must fail naming the file and the input line, with no output written.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{fixture, read_safetensors};

fn ft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1").output().expect("running ft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn predict(model: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "image-classification",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ft(&args)
}

fn read_outputs(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn meta() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("parity/tiny-resnet.json")).unwrap()).unwrap()
}

/// Runs the committed `inputs/images.jsonl` (relative paths `../images/...`) through `model`
/// and compares with torchvision's logits: PNG to 1e-4, JPEG within the decoder difference.
fn check_model(model: &str, batch_size: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("out.jsonl");
    let o = predict(&fixture(&format!("models/{model}")), &fixture("inputs/images.jsonl"), &output, &[
        "--batch-size",
        batch_size,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_outputs(&output);
    let meta = meta();
    let names: Vec<String> = meta["images"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(rows.len(), names.len());
    let expected = &read_safetensors(&fixture("parity/tiny-resnet.safetensors"))[&format!(
        "{}_logits",
        model.replace('-', "_")
    )];
    let c = expected.0[1];
    let mut worst = (0.0f64, 0.0f64);
    for (i, (row, name)) in rows.iter().zip(&names).enumerate() {
        let logits: Vec<f64> = row["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(logits.len(), c);
        let err = support::max_abs_diff(&logits, &expected.1[i * c..(i + 1) * c]);
        let top = &meta["models"][model]["top1"][name];
        if name.ends_with(".png") {
            assert!(err <= 1e-4, "{model} {name}: {err}");
            assert_eq!(row["label"], top["label"], "{name}");
            assert!((row["score"].as_f64().unwrap() - top["score"].as_f64().unwrap()).abs() < 1e-4, "{name}");
            worst.0 = worst.0.max(err);
        } else {
            assert!(err <= 0.05, "{model} {name}: {err}");
            worst.1 = worst.1.max(err);
        }
    }
    println!("{model}: ft predict vs torchvision: PNG max abs logit error {:.2e}, JPEG {:.2e}", worst.0, worst.1);
}

#[test]
fn predict_matches_torchvision_resnet18_safetensors() {
    check_model("tiny-resnet", "4");
}

#[test]
fn predict_matches_torchvision_resnet34_pth_bicubic() {
    check_model("tiny-resnet-pth", "32");
}

#[test]
fn info_prints_parameters_and_freezing() {
    let model = fixture("models/tiny-resnet");
    let o = ft(&["info", "--model", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("ResNet (resnet18"), "{out}");
    assert!(out.contains("parameters: 177,037 (trainable: 177,037)"), "{out}");
    assert!(out.contains("labels (5): daisy, dandelion, roses, sunflowers, tulips"), "{out}");
    assert!(out.contains("resize shorter side to 256 (Bilinear), center crop 224x224"), "{out}");
    assert!(out.contains("newly initialized: none") && out.contains("unused checkpoint tensors: none"), "{out}");
    // The notebook's recipe on the small model: a new 3-class head, the rest frozen.
    let o = ft(&["info", "--model", model.to_str().unwrap(), "--num-labels", "3", "--freeze-backbone"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // 64 features: 64 * 3 + 3 trainable; total 177,037 - (64 * 5 + 5) + 195.
    assert!(out.contains("parameters: 176,907 (trainable: 195)"), "{out}");
    assert!(out.contains("re-initialized (shape changed): fc.weight"), "{out}");
    // Exercise 7: layer3 (33,088) and layer4 (131,712) train too.
    let o = ft(&["info", "--model", model.to_str().unwrap(), "--num-labels", "3", "--unfreeze", "layer3,layer4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("parameters: 176,907 (trainable: 164,995)"), "{}", stdout(&o));
    let o = ft(&["info", "--model", model.to_str().unwrap(), "--unfreeze", "layer9"]);
    assert!(!o.status.success() && stderr(&o).contains("no stage 'layer9'"), "{}", stderr(&o));
    let pth = fixture("models/tiny-resnet-pth");
    let o = ft(&["info", "--model", pth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ResNet (resnet34") && stdout(&o).contains("resnet.pth"), "{}", stdout(&o));
    // Options that do not apply.
    let o = ft(&["info", "--model", model.to_str().unwrap(), "--task", "text-classification"]);
    assert!(!o.status.success() && stderr(&o).contains("image model"), "{}", stderr(&o));
    let bert = fixture("models/tiny-bert-seqcls");
    let o = ft(&["info", "--model", bert.to_str().unwrap(), "--freeze-backbone"]);
    assert!(!o.status.success() && stderr(&o).contains("--freeze-backbone"), "{}", stderr(&o));
}

/// Writes `in.jsonl` in `dir` with one line per value (strings become `{"image": ...}`).
fn write_lines(dir: &Path, lines: &[Value]) -> PathBuf {
    let path = dir.join("in.jsonl");
    let text: Vec<String> = lines
        .iter()
        .map(|v| match v {
            Value::String(s) => serde_json::json!({ "image": s }).to_string(),
            other => other.to_string(),
        })
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    path
}

fn expect_failure(input: &Path, output: &Path, needles: &[&str]) {
    let o = predict(&fixture("models/tiny-resnet"), input, output, &[]);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, got success");
    for n in needles {
        assert!(err.contains(n), "missing '{n}' in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!output.exists(), "no output may be written on failure");
}

#[test]
fn bad_images_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let good = fixture("images/rgb.png");
    std::fs::copy(&good, dir.join("good.png")).unwrap();
    let png = std::fs::read(&good).unwrap();
    std::fs::write(dir.join("truncated.png"), &png[..png.len() / 3]).unwrap();
    let jpg = std::fs::read(fixture("images/photo.jpg")).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &jpg[..200]).unwrap();
    std::fs::write(dir.join("text.png"), b"this is not an image\n").unwrap();
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    std::fs::write(dir.join("tiny.gif"), b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    let output = dir.join("out.jsonl");
    let cases: &[(&str, &[&str])] = &[
        ("truncated.png", &["in.jsonl:2", "truncated.png", "truncated"]),
        ("truncated.jpg", &["in.jsonl:2", "truncated.jpg"]),
        ("text.png", &["in.jsonl:2", "text.png", "not a PNG or JPEG"]),
        ("empty.jpg", &["in.jsonl:2", "empty.jpg", "empty file"]),
        ("tiny.gif", &["in.jsonl:2", "tiny.gif", "not supported"]),
        ("missing.png", &["in.jsonl:2", "missing.png"]),
    ];
    for (bad, needles) in cases {
        let input = write_lines(dir, &[Value::from("good.png"), Value::from(*bad)]);
        expect_failure(&input, &output, needles);
    }
    // Lines that are not `{"image": "path"}`.
    let input = write_lines(dir, &[Value::from("good.png"), serde_json::json!({"image": 3})]);
    expect_failure(&input, &output, &["in.jsonl:2", "\"image\" must be a string"]);
    let input = write_lines(dir, &[serde_json::json!({"text": "a photo"})]);
    expect_failure(&input, &output, &["in.jsonl:1", "no \"image\" field"]);
    // A text-only option.
    let input = write_lines(dir, &[Value::from("good.png")]);
    let o = predict(&fixture("models/tiny-resnet"), &input, &output, &["--max-length", "8"]);
    assert!(!o.status.success() && stderr(&o).contains("max length"), "{}", stderr(&o));
    // A text model asked for images, and an image model asked for text.
    let o = predict(&fixture("models/tiny-bert-seqcls"), &input, &output, &[]);
    assert!(!o.status.success() && stderr(&o).contains("architecture"), "{}", stderr(&o));
    assert!(!output.exists());
}

#[test]
fn palette_and_16_bit_images_are_converted_as_pil_does() {
    // Absolute paths work as well as relative ones; 16-bit and palette PNGs are accepted and
    // give torchvision's logits (checked in detail by `predict_matches_torchvision_*`).
    let tmp = tempfile::tempdir().unwrap();
    let names = ["palette.png", "palette_trns.png", "gray16.png", "rgb16.png"];
    let lines: Vec<Value> = names.iter().map(|n| Value::from(fixture(&format!("images/{n}")).to_str().unwrap())).collect();
    let input = write_lines(tmp.path(), &lines);
    let output = tmp.path().join("out.jsonl");
    let o = predict(&fixture("models/tiny-resnet"), &input, &output, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_outputs(&output);
    let meta = meta();
    for (row, n) in rows.iter().zip(names) {
        assert_eq!(row["label"], meta["models"]["tiny-resnet"]["top1"][n]["label"], "{n}");
    }
}
