//! §10 vision transfer learning and exercise 7: `ft train` with `model.task =
//! "image-classification"` — a frozen backbone with a new head (§10's `requires_grad = False` and
//! `resnet.fc = nn.Linear(512, 5)`), then exercise 7's unfreezing of `layer3`/`layer4` at a
//! lower learning rate — with each run's trainable parameters (`ft info`), metrics, loss curve
//! and confusion matrix.
//!
//! What runs depends on the profile ([`VisionPlan`]):
//! - **hub**: the notebook's ImageNet ResNet18 (`timm/resnet18.tv_in1k`, through the Hub) on the
//!   image folder given with `--images DIR` (`DIR/{train,test}/<class>/*.png|jpg`), else on the
//!   Hub image dataset `AI-Lab-Makerere/beans` (3 classes of bean-leaf photos, the image
//!   classification example of transformers' docs): 160 training and 60 validation images, as
//!   the issue's run file;
//! - **local** (`--data DIR` holding `fashion-mnist/png`, as `../shared/data`): no ImageNet
//!   weights can be obtained there, so transfer learning is shown for real with a model ft trains
//!   itself: a ResNet18 from random initialisation trained on five Fashion-MNIST classes (the
//!   *source* task), transferred to the other five by (a) a frozen backbone + new head, (b)
//!   exercise 7's partial unfreeze, against (c) the same architecture trained from random
//!   initialisation on the target task — the same images, epochs and batch size;
//! - **tiny**: the committed fixture images and the narrow random ResNet; numbers mean nothing.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::profile::path_str;
use super::report;
use super::runner::run_ft;
use super::{Outcome, Section};

/// Fashion-MNIST's source and target halves (folder names of the staged PNG subset).
const SOURCE: [&str; 5] = ["tshirt_top", "trouser", "pullover", "dress", "coat"];
const TARGET: [&str; 5] = ["sandal", "shirt", "sneaker", "bag", "ankle_boot"];

/// Which models and images §10 uses.
#[derive(Debug, Clone)]
pub enum VisionPlan {
    /// The notebook's ImageNet weights on an image folder or a Hub image dataset.
    Hub { model: String, images: HubImages },
    /// The transfer experiment on Fashion-MNIST PNGs (`DIR/{train,test}/<class>`).
    Transfer { images: PathBuf },
    /// The fixture model and images.
    Tiny { model: String, images: PathBuf },
}

impl VisionPlan {
    /// One sentence for the report's header.
    pub fn describe(&self) -> String {
        match self {
            Self::Hub { model, images: HubImages::Folder(i) } => format!("§10: `{model}` on `{}`", i.display()),
            Self::Hub { model, images: HubImages::Dataset { id, .. } } => {
                format!("§10: `{model}` on the Hub dataset `{id}`")
            }
            Self::Transfer { images } => {
                format!("§10: transfer experiment on Fashion-MNIST `{}` (ResNet18 pre-trained by ft)", images.display())
            }
            Self::Tiny { images, .. } => format!("§10: tiny ResNet fixture on `{}`", images.display()),
        }
    }
}

/// The hub profile's images.
#[derive(Debug, Clone)]
pub enum HubImages {
    /// A local image folder (`--images`): `train` and `test` splits.
    Folder(PathBuf),
    /// A Hub dataset id with its splits, label column and class count.
    Dataset { id: &'static str, train: &'static str, eval: &'static str, label_column: &'static str, classes: usize },
}

/// transformers' image-classification example dataset.
pub const BEANS: HubImages = HubImages::Dataset {
    id: "AI-Lab-Makerere/beans",
    train: "train",
    eval: "validation",
    label_column: "labels",
    classes: 3,
};

impl HubImages {
    /// `[data]`'s source and split lines.
    fn data(&self) -> (String, String) {
        match self {
            Self::Folder(dir) => (path_str(dir), "train_split = \"train\"\neval_split = \"test\"".into()),
            Self::Dataset { id, train, eval, label_column, .. } => (
                id.to_string(),
                format!(
                    "train_split = \"{train}\"\neval_split = \"{eval}\"\nlabel_column = \"{label_column}\"\nshuffle_seed = 1\n\
                     train_select = 160\neval_select = 60"
                ),
            ),
        }
    }
}

/// One `ft train` run of the section.
struct Run {
    label: String,
    ok: bool,
    metrics: serde_json::Value,
    trainable: String,
    wall_s: f64,
    markdown: String,
}

/// A run file's text: `[model]`, `[data]` (the image folder and its keys), `[method]`,
/// `[training]`.
#[allow(clippy::too_many_arguments)]
fn run_text(
    comment: &str,
    model: &str,
    model_extra: &str,
    images: &Path,
    data: &str,
    method: &str,
    training: &str,
    out: &Path,
) -> String {
    run_text_source(
        comment,
        model,
        model_extra,
        &path_str(images),
        &format!("train_split = \"train\"\neval_split = \"test\"\n{data}"),
        method,
        training,
        out,
    )
}

/// [`run_text`] for any `[data]` source (a folder or a Hub dataset id) with its split lines.
#[allow(clippy::too_many_arguments)]
fn run_text_source(
    comment: &str,
    model: &str,
    model_extra: &str,
    source: &str,
    data: &str,
    method: &str,
    training: &str,
    out: &Path,
) -> String {
    format!(
        "# {comment}\n[model]\nname = {model:?}\ntask = \"image-classification\"\n{model_extra}\n[data]\nsource = {source:?}\n\
         {data}\n\n[method]\n{method}\n\n[training]\noutput_dir = {:?}\n\
         {training}\neval_strategy = \"epoch\"\nsave_strategy = \"no\"\nlogging_steps = 10\nseed = 42\n",
        path_str(out)
    )
}

/// Runs `ft train` on `text` in `dir/name`, then `ft info` with `info` for the trainable count.
fn train(ft: &Path, offline: bool, dir: &Path, name: &str, label: &str, text: &str, info: &[String]) -> Result<Run> {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let output = sub.join("output");
    if output.exists() {
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the earlier run {}", output.display()))?;
    }
    let run_toml = sub.join("run.toml");
    std::fs::write(&run_toml, text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) = run_ft(ft, &args, offline, &sub.join("logs.jsonl"), &sub.join("stderr.log"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let link = format!("{}/{name}", Section::Vision.dir());
    let mut run = Run {
        label: label.to_string(),
        ok,
        metrics: serde_json::Value::Null,
        trainable: String::new(),
        wall_s,
        markdown: format!(
            "#### {label}\n\nRun file ([`{link}/run.toml`]({link}/run.toml)):\n\n```toml\n{text}```\n\nWall time of `ft train`: {wall_s:.1} s.\n\n"
        ),
    };
    if !ok {
        let _ = writeln!(run.markdown, "**`ft train` failed**; the end of its stderr:\n\n```\n{tail}\n```\n");
        return Ok(run);
    }
    match report::train_section(&sub, &output, &link, label, true) {
        Ok(r) => run.markdown.push_str(&r.markdown),
        Err(e) => {
            run.ok = false;
            let _ = writeln!(run.markdown, "**The run's results could not be read**: {e:#}");
        }
    }
    run.metrics = serde_json::from_str(&std::fs::read_to_string(output.join("all_results.json")).unwrap_or_default())
        .unwrap_or_default();
    if !info.is_empty() {
        let info_out = sub.join("info.txt");
        let args: Vec<OsString> =
            std::iter::once(OsString::from("info")).chain(info.iter().map(OsString::from)).collect();
        let (info_ok, _) = run_ft(ft, &args, offline, &info_out, &sub.join("info.stderr.log"))?;
        if info_ok {
            run.trainable = std::fs::read_to_string(&info_out)
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with("parameters:"))
                .unwrap_or("")
                .to_string();
            let _ = writeln!(run.markdown, "\n`ft {}`: {}\n", info.join(" "), run.trainable);
        }
    }
    Ok(run)
}

/// `ft info` arguments for `model` with a new head of `classes` and `extra` flags (the
/// method's freezing).
fn info_args(model: &str, classes: usize, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--model".to_string(), model.to_string(), "--num-labels".into(), classes.to_string()];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// An image folder holding only `classes` of `images` (symbolic links to the class folders).
fn half(images: &Path, out: &Path, classes: &[&str]) -> Result<PathBuf> {
    for split in ["train", "test"] {
        std::fs::create_dir_all(out.join(split)).with_context(|| format!("creating {}", out.display()))?;
        for c in classes {
            let link = out.join(split).join(c);
            let target = images.join(split).join(c);
            if !target.is_dir() {
                anyhow::bail!(
                    "{}: no class folder {c} (expected Fashion-MNIST's PNG folders)",
                    images.join(split).display()
                );
            }
            if std::fs::symlink_metadata(&link).is_err() {
                symlink_dir(&target, &link)?;
            }
        }
    }
    Ok(out.to_path_buf())
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).with_context(|| format!("linking {}", link.display()))
}

#[cfg(not(unix))]
fn symlink_dir(target: &Path, link: &Path) -> Result<()> {
    std::os::windows::fs::symlink_dir(target, link).with_context(|| format!("linking {}", link.display()))
}

fn number(m: &serde_json::Value, key: &str) -> String {
    m.get(key).and_then(|v| v.as_f64()).map_or("—".into(), |v| format!("{v:.3}"))
}

/// The section.
pub fn section_vision(ft: &Path, plan: &VisionPlan, offline: bool, dir: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Vision));
    let frozen = "kind = \"frozen\"";
    let unfreeze = "kind = \"frozen\"\nunfreeze = [\"layer3\", \"layer4\"]\nbackbone_learning_rate = 1e-4";
    let runs: Vec<Run> = match plan {
        VisionPlan::Hub { model, images } => {
            let classes = match images {
                HubImages::Folder(dir) => class_count(dir)?,
                HubImages::Dataset { classes, .. } => *classes,
            };
            let (source, data) = images.data();
            let training = "learning_rate = 1e-3\nper_device_train_batch_size = 16\nper_device_eval_batch_size = 32\nnum_train_epochs = 1";
            let info = |extra: &[&str]| info_args(model, classes, extra);
            vec![
                train(
                    ft,
                    offline,
                    dir,
                    "frozen",
                    "§10: frozen ImageNet backbone + new head",
                    &run_text_source(
                        "§10: freeze everything, a new fc",
                        model,
                        "",
                        &source,
                        &data,
                        frozen,
                        training,
                        &dir.join("frozen/output"),
                    ),
                    &info(&["--freeze-backbone"]),
                )?,
                train(
                    ft,
                    offline,
                    dir,
                    "unfreeze",
                    "Exercise 7: unfreeze layer3 and layer4 (lr 1e-4; head 1e-3)",
                    &run_text_source(
                        "Exercise 7",
                        model,
                        "",
                        &source,
                        &data,
                        unfreeze,
                        training,
                        &dir.join("unfreeze/output"),
                    ),
                    &info(&["--unfreeze", "layer3,layer4"]),
                )?,
            ]
        }
        VisionPlan::Tiny { model, images } => {
            let training = "learning_rate = 1e-3\nper_device_train_batch_size = 16\nnum_train_epochs = 1";
            let info = |extra: &[&str]| info_args(model, 3, extra);
            vec![
                train(
                    ft,
                    offline,
                    dir,
                    "frozen",
                    "§10: frozen backbone + new head (tiny)",
                    &run_text(
                        "§10 (tiny)",
                        model,
                        "",
                        images,
                        "image_size = 32",
                        frozen,
                        training,
                        &dir.join("frozen/output"),
                    ),
                    &info(&["--freeze-backbone"]),
                )?,
                train(
                    ft,
                    offline,
                    dir,
                    "unfreeze",
                    "Exercise 7: unfreeze layer3 and layer4 (tiny)",
                    &run_text(
                        "Exercise 7 (tiny)",
                        model,
                        "",
                        images,
                        "image_size = 32\naugment = false",
                        unfreeze,
                        training,
                        &dir.join("unfreeze/output"),
                    ),
                    &info(&["--unfreeze", "layer3,layer4"]),
                )?,
                train(
                    ft,
                    offline,
                    dir,
                    "random-init",
                    "The same network from random initialisation (tiny)",
                    &run_text(
                        "baseline (tiny)",
                        model,
                        "random_init = true",
                        images,
                        "image_size = 32\naugment = false",
                        "kind = \"full\"",
                        training,
                        &dir.join("random-init/output"),
                    ),
                    &info(&[]),
                )?,
            ]
        }
        VisionPlan::Transfer { images } => transfer(ft, offline, images, dir)?,
    };
    // The side-by-side table.
    let _ = writeln!(
        md,
        "| run | eval accuracy | macro-F1 | train s | train images/s | parameters (trainable) | wall s |\n|---|---|---|---|---|---|---|"
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            r.label,
            number(&r.metrics, "eval_accuracy"),
            number(&r.metrics, "eval_f1_macro"),
            number(&r.metrics, "train_runtime"),
            number(&r.metrics, "train_samples_per_second"),
            r.trainable.trim_start_matches("parameters: "),
            r.wall_s
        );
    }
    md.push('\n');
    if let Some(note) = transfer_note(&runs) {
        let _ = writeln!(md, "{note}\n");
    }
    for r in &runs {
        md.push_str(&r.markdown);
        md.push('\n');
    }
    let ok = runs.iter().all(|r| r.ok);
    let headline = runs
        .iter()
        .filter(|r| !r.label.starts_with("Source"))
        .map(|r| format!("{} acc {}", r.label.split(':').next().unwrap_or(""), number(&r.metrics, "eval_accuracy")))
        .collect::<Vec<_>>()
        .join("; ");
    let runtime: f64 = runs.iter().filter_map(|r| r.metrics.get("train_runtime").and_then(|v| v.as_f64())).sum();
    Ok(Outcome {
        section: Section::Vision,
        ok,
        headline: if ok { headline } else { "a run failed".into() },
        runtime: format!("{runtime:.1}"),
        wall_s: started.elapsed().as_secs_f64(),
        markdown: md,
    })
}

/// Number of class folders of `images/train`.
fn class_count(images: &Path) -> Result<usize> {
    let train = images.join("train");
    let n = std::fs::read_dir(&train)
        .with_context(|| format!("--images: reading {}", train.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    anyhow::ensure!(n > 0, "--images: {} has no class folders", train.display());
    Ok(n)
}

/// The transfer experiment (see the module docs). Input size 32: the PNGs are 28x28 (upscaled
/// to 36 by the evaluation resize, center-cropped to 32), and 32 is the smallest side for which
/// ResNet18's 32x downsampling still leaves `layer4` a 1x1 map; at 224 a step costs ~50x more,
/// which two cores cannot afford for a multi-epoch experiment.
fn transfer(ft: &Path, offline: bool, images: &Path, dir: &Path) -> Result<Vec<Run>> {
    let source = half(images, &dir.join("source-images"), &SOURCE)?;
    let target = half(images, &dir.join("target-images"), &TARGET)?;
    let init = dir.join("resnet18-random");
    std::fs::create_dir_all(&init).with_context(|| format!("creating {}", init.display()))?;
    // torchvision's resnet18 (no weights file: `random_init`), Fashion-MNIST's mean and std.
    let config = serde_json::json!({
        "architecture": "resnet18", "num_classes": 5, "num_features": 512, "global_pool": "avg",
        "pretrained_cfg": {"input_size": [3, 32, 32], "interpolation": "bilinear", "crop_pct": 0.875,
                           "crop_mode": "center", "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353]}
    });
    std::fs::write(init.join("config.json"), serde_json::to_vec_pretty(&config)?).context("writing the config")?;
    let init_s = path_str(&init);
    let augment = "image_size = 32\ncrop_scale = [0.5, 1.0]";
    let plain = "image_size = 32\naugment = false";
    let training = |epochs: usize| {
        format!(
            "learning_rate = 1e-3\nper_device_train_batch_size = 32\nper_device_eval_batch_size = 64\nnum_train_epochs = {epochs}"
        )
    };
    let pre_out = dir.join("source-pretrain/output");
    let pre = path_str(&pre_out);
    let info = |extra: &[&str]| info_args(&pre, 5, extra);
    let mut runs = vec![train(
        ft,
        offline,
        dir,
        "source-pretrain",
        "Source task: ResNet18 from random initialisation on T-shirt/top, Trouser, Pullover, Dress, Coat",
        &run_text(
            "the source model (full training from random init, RandomResizedCrop + flip)",
            &init_s,
            "random_init = true",
            &source,
            augment,
            "kind = \"full\"",
            &training(8),
            &pre_out,
        ),
        &info(&[]),
    )?];
    if !runs[0].ok {
        return Ok(runs);
    }
    let frozen = "kind = \"frozen\"";
    let unfreeze = "kind = \"frozen\"\nunfreeze = [\"layer3\", \"layer4\"]\nbackbone_learning_rate = 1e-4";
    runs.push(train(
        ft,
        offline,
        dir,
        "a-frozen",
        "(a) §10: frozen source backbone + new head",
        &run_text(
            "(a) §10 on the target classes",
            &pre,
            "",
            &target,
            plain,
            frozen,
            &training(5),
            &dir.join("a-frozen/output"),
        ),
        &info(&["--freeze-backbone"]),
    )?);
    runs.push(train(
        ft,
        offline,
        dir,
        "b-unfreeze",
        "(b) exercise 7: unfreeze layer3 + layer4 (lr 1e-4, head 1e-3)",
        &run_text(
            "(b) exercise 7 on the target classes",
            &pre,
            "",
            &target,
            plain,
            unfreeze,
            &training(5),
            &dir.join("b-unfreeze/output"),
        ),
        &info(&["--unfreeze", "layer3,layer4"]),
    )?);
    runs.push(train(
        ft,
        offline,
        dir,
        "c-random-init",
        "(c) the same ResNet18 from random initialisation",
        &run_text(
            "(c) baseline: no transfer",
            &init_s,
            "random_init = true",
            &target,
            plain,
            "kind = \"full\"",
            &training(5),
            &dir.join("c-random-init/output"),
        ),
        &info(&[]),
    )?);
    Ok(runs)
}

/// A sentence on how the transfer runs compare with the run from random initialisation (the
/// run labelled `(c)`), when both have an accuracy: transfer learning does not always win, and
/// the report says so when it loses.
fn transfer_note(runs: &[Run]) -> Option<String> {
    let acc = |r: &Run| r.metrics.get("eval_accuracy").and_then(|v| v.as_f64());
    let scratch = runs.iter().find(|r| r.label.starts_with("(c)"))?;
    let scratch_acc = acc(scratch)?;
    let best = runs
        .iter()
        .filter(|r| r.label.starts_with("(a)") || r.label.starts_with("(b)"))
        .filter_map(|r| Some((r, acc(r)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let name = best.0.label.split(':').next().unwrap_or("").trim();
    Some(if best.1 > scratch_acc {
        format!(
            "Transfer pays here: {name} reaches {:.3}, the same network from random initialisation {scratch_acc:.3} with the same epochs.",
            best.1
        )
    } else {
        format!(
            "**Transfer does not pay here**: the network from random initialisation reaches {scratch_acc:.3}, the best transfer run, {name} {:.3}. \
             The source and target classes are halves of one small grey-scale dataset, and the target split has enough images for a ResNet18 to learn them from scratch in these epochs; \
             the notebook's case for transfer — ImageNet features and a few hundred target images — is not what this profile can stage without the Hub.",
            best.1
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(label: &str, acc: f64) -> Run {
        Run {
            label: label.into(),
            ok: true,
            metrics: serde_json::json!({ "eval_accuracy": acc }),
            trainable: String::new(),
            wall_s: 0.0,
            markdown: String::new(),
        }
    }

    /// The report says which side won, with the numbers; no sentence without a random-init run.
    #[test]
    fn transfer_note_names_the_winner() {
        let lost = transfer_note(&[
            run("Source task", 0.9),
            run("(a) §10: x", 0.85),
            run("(b) exercise 7: y", 0.94),
            run("(c) z", 0.954),
        ])
        .unwrap();
        assert!(
            lost.contains("does not pay") && lost.contains("0.954") && lost.contains("(b) exercise 7 0.940"),
            "{lost}"
        );
        let won = transfer_note(&[run("(a) §10: x", 0.97), run("(c) z", 0.9)]).unwrap();
        assert!(won.starts_with("Transfer pays here: (a) §10 reaches 0.970"), "{won}");
        assert!(transfer_note(&[run("(a) §10: x", 0.97), run("The same network (tiny)", 0.9)]).is_none());
    }
}
