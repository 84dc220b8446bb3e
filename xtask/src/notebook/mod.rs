//! `cargo xtask reproduce-notebook`: runs sections of the fine-tuning notebook
//! (`../shared/reference/finetuning-notebook.md`) with `ft` and writes `DIR/report.md`.
//!
//! - §3 data: `ft data inspect` of the AG News and CoNLL-2003 splits (rows, label distribution,
//!   token-length percentiles with the section's model).
//! - §4 full fine-tuning on AG News, §5 frozen encoder + first-token linear head on AG News, §9
//!   NER on CoNLL-2003: one `ft train` run file each (`DIR/<section>/run.toml`), the notebook's
//!   settings written out, then the metrics, the evaluations, the loss curve and (§4, §5) the
//!   confusion matrix of the final evaluation in the report.
//!
//! The xtask stays light: it builds `ft` (`cargo build --release -p ft-cli`) and runs the binary;
//! the pictures come from `ft-metrics`. Profiles:
//! - default: the notebook's models (`distilbert/distilbert-base-uncased`,
//!   `google-bert/bert-base-cased`) and recipes (`ag_news`, `conll2003`) from the Hub, with
//!   `--model-cls`, `--model-ner` and `--data DIR` (a folder like `../shared/data`: AG News
//!   `test.parquet` split 2,000 train / 1,000 validation as `benches/runs/*.toml`) to replace them;
//! - `--tiny`: offline, the tiny fixture checkpoints and data the xtask writes itself; minutes on
//!   two cores, and numbers that mean nothing (the report says so at the top).

mod report;
mod tiny;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use report::{Inspect, distribution_cell, parse_inspect};

/// Arguments of `cargo xtask reproduce-notebook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Notebook sections to run, comma-separated (3 data, 4 full fine-tuning, 5 frozen encoder +
    /// head, 9 NER).
    #[arg(long, value_delimiter = ',', default_value = "3,4,5,9")]
    sections: Vec<String>,
    /// Output folder for report.md, the run files and the runs (default: target/notebook-report,
    /// or target/notebook-report-tiny with --tiny).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run ft with HF_HUB_OFFLINE=1 (models and datasets from the Hub cache only).
    #[arg(long)]
    offline: bool,
    /// Tiny fixture checkpoints and generated data, offline, in a few minutes; the numbers mean
    /// nothing.
    #[arg(long, conflicts_with = "data")]
    tiny: bool,
    /// Model for §3-§5 (a directory or Hub id; default distilbert/distilbert-base-uncased, or the
    /// tiny fixture with --tiny).
    #[arg(long, value_name = "M")]
    model_cls: Option<String>,
    /// Model for §9 (a directory or Hub id; default google-bert/bert-base-cased, or the tiny
    /// fixture with --tiny).
    #[arg(long, value_name = "M")]
    model_ner: Option<String>,
    /// A local data folder holding ag_news/test.parquet and conll2003/{train,validation}.parquet
    /// (like ../shared/data) instead of the Hub.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
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
    Ner,
}

impl Section {
    const ALL: [Section; 4] = [Section::Data, Section::Full, Section::Frozen, Section::Ner];

    fn number(self) -> u32 {
        match self {
            Section::Data => 3,
            Section::Full => 4,
            Section::Frozen => 5,
            Section::Ner => 9,
        }
    }

    fn parse(s: &str) -> Result<Self> {
        let n: u32 = s
            .trim()
            .trim_start_matches('§')
            .parse()
            .with_context(|| format!("--sections: '{s}' is not a section number"))?;
        Self::ALL
            .into_iter()
            .find(|x| x.number() == n)
            .with_context(|| format!("--sections: section {n} is not reproduced (yet); available: 3, 4, 5, 9"))
    }

    /// The section's folder under the output folder.
    fn dir(self) -> &'static str {
        match self {
            Section::Data => "3-data",
            Section::Full => "4-full-finetuning",
            Section::Frozen => "5-frozen-encoder",
            Section::Ner => "9-ner",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Section::Data => "§3 Data loading & preparation",
            Section::Full => "§4 Full fine-tuning (AG News)",
            Section::Frozen => "§5 Feature extraction: frozen encoder + head (AG News)",
            Section::Ner => "§9 Token classification: NER (CoNLL-2003)",
        }
    }
}

/// Where a dataset comes from and how the runs split it.
#[derive(Debug, Clone)]
struct DataPlan {
    /// The dataset's name in the report.
    name: &'static str,
    /// `[data]` keys of the run files: `(key, TOML value, comment)`.
    keys: Vec<(&'static str, String, &'static str)>,
    /// `ft data inspect` calls of §3: `(split shown, arguments after `inspect`)`.
    inspect: Vec<(String, Vec<String>)>,
    /// The label column whose distribution §3 shows.
    label_column: &'static str,
    /// One sentence on where the data comes from.
    describe: String,
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl DataPlan {
    /// The notebook's own: a recipe (`ag_news`, `conll2003`), `shuffle(seed=42).select(range(n))`
    /// of the recipe's train and validation splits; with `local`, the recipe reads those files.
    fn recipe(
        name: &'static str,
        recipe: &str,
        local: Option<&Path>,
        sizes: (usize, usize),
        label_column: &'static str,
    ) -> Self {
        let mut keys = vec![("source", toml_str(recipe), "the recipe of the notebook's load_dataset")];
        let mut base = vec![recipe.to_string()];
        if let Some(dir) = local {
            keys.push(("local_data", toml_str(&path_str(dir)), "the recipe reads these files instead of the Hub"));
            base.extend(["--data".into(), path_str(dir)]);
        }
        let validation_comment = if recipe == "ag_news" {
            "the recipe maps AG News' validation to its test split, as the notebook"
        } else {
            ""
        };
        keys.extend([
            ("train_split", toml_str("train"), ""),
            ("eval_split", toml_str("validation"), validation_comment),
            ("shuffle_seed", "42".into(), "split.shuffle(seed=42)"),
            ("train_select", sizes.0.to_string(), ".select(range(n))"),
            ("eval_select", sizes.1.to_string(), ""),
        ]);
        let inspect = ["train", "validation"]
            .iter()
            .map(|s| {
                let mut a = base.clone();
                a.extend(["--split".into(), s.to_string()]);
                (s.to_string(), a)
            })
            .collect();
        let describe = match local {
            Some(dir) => format!(
                "recipe `{recipe}` reading `{}`; train/validation shuffled with seed 42, first {} / {} rows",
                dir.display(),
                sizes.0,
                sizes.1
            ),
            None => format!(
                "recipe `{recipe}` from the Hub; train/validation shuffled with seed 42, first {} / {} rows (the notebook's subsample)",
                sizes.0, sizes.1
            ),
        };
        DataPlan { name, keys, inspect, label_column, describe }
    }

    /// AG News from a local `test.parquet` (the train split is not available offline): shuffled
    /// with seed 42, the first 2,000 rows train and the next 1,000 validate (`benches/runs`).
    fn ag_news_test_parquet(file: &Path) -> Self {
        let source = path_str(file);
        DataPlan {
            name: "AG News",
            keys: vec![
                ("source", toml_str(&source), "AG News' test split (the train split is not staged locally)"),
                ("train_split", toml_str("test"), ""),
                ("eval_split", toml_str("test"), ""),
                ("shuffle_seed", "42".into(), "shuffled with seed 42: rows 0..2000 train, 2000..3000 validate"),
                ("train_select", "2000".into(), ""),
                ("eval_skip", "2000".into(), ""),
                ("eval_select", "1000".into(), ""),
            ],
            inspect: vec![("test".into(), vec![source, "--split".into(), "test".into()])],
            label_column: "label",
            describe: format!(
                "`{}` shuffled with seed 42: the first 2,000 rows train, the next 1,000 validate (as `benches/runs/agnews_minilm.toml`; the notebook trains on 2,000 rows of the 120,000-row train split, which is not staged locally)",
                file.display()
            ),
        }
    }

    /// CoNLL-2003 from a local folder with train and validation files.
    fn conll_dir(dir: &Path) -> Self {
        let source = path_str(dir);
        DataPlan {
            name: "CoNLL-2003",
            keys: vec![
                ("source", toml_str(&source), "CoNLL-2003 staged locally (train/validation/test)"),
                ("train_split", toml_str("train"), ""),
                ("eval_split", toml_str("validation"), ""),
                ("shuffle_seed", "42".into(), "split.shuffle(seed=42).select(range(n)), as the notebook"),
                ("train_select", "2000".into(), ""),
                ("eval_select", "1000".into(), ""),
            ],
            inspect: ["train", "validation"]
                .iter()
                .map(|s| (s.to_string(), vec![source.clone(), "--split".into(), s.to_string()]))
                .collect(),
            label_column: "ner_tags",
            describe: format!(
                "`{}` train/validation shuffled with seed 42, first 2,000 / 1,000 sentences (the notebook's subsample)",
                dir.display()
            ),
        }
    }
}

/// Everything that differs between the default and the tiny profile.
#[derive(Debug, Clone)]
struct Profile {
    tiny: bool,
    offline: bool,
    model_cls: String,
    model_ner: String,
    ag: DataPlan,
    conll: DataPlan,
}

/// One training section's run file: the notebook's settings, the profile's model and data.
fn run_file(section: Section, p: &Profile, output_dir: &Path) -> String {
    let mut t = String::new();
    let line = |t: &mut String, key: &str, value: &str, comment: &str| {
        if comment.is_empty() {
            let _ = writeln!(t, "{key} = {value}");
        } else {
            let _ = writeln!(t, "{key} = {value}  # {comment}");
        }
    };
    let _ = writeln!(
        t,
        "# {} — written by `cargo xtask reproduce-notebook`{}.",
        section.title(),
        if p.tiny { " --tiny" } else { "" }
    );
    let _ = writeln!(t, "# Run it again with: ft train --config <this file>\n");
    // (model, task, data plan, number of labels)
    let (model, task, data) = match section {
        Section::Ner => (&p.model_ner, "token-classification", &p.conll),
        _ => (&p.model_cls, "text-classification", &p.ag),
    };
    t.push_str("[model]\n");
    line(
        &mut t,
        "name",
        &toml_str(model),
        if section == Section::Ner { "the notebook: bert-base-cased" } else { "the notebook: distilbert-base-uncased" },
    );
    line(&mut t, "task", &toml_str(task), "");
    if section != Section::Ner {
        line(&mut t, "num_labels", "4", "from_pretrained(model_name, num_labels=4)");
    } else {
        t.push_str("# num_labels, id2label, label2id: from the data's ner_tags names, as the notebook's label_list\n");
    }
    t.push_str("\n[data]\n");
    for (key, value, comment) in &data.keys {
        line(&mut t, key, value, comment);
    }
    if section != Section::Ner {
        line(&mut t, "max_length", "256", "tok(batch['text'], truncation=True, max_length=256)");
    } else {
        t.push_str("# max_length: the tokenizer's model_max_length (truncation=True, is_split_into_words=True)\n");
    }
    t.push_str("\n[method]\n");
    match section {
        Section::Frozen => {
            line(
                &mut t,
                "kind",
                "\"frozen\"",
                "encoder parameters requires_grad = False; a ClsHead on last_hidden_state[:, 0]",
            );
            line(&mut t, "head_dropout", "0.1", "nn.Dropout(0.1) before nn.Linear(hidden, 4)");
            line(
                &mut t,
                "cache_features",
                "true",
                "the frozen encoder's outputs are computed once (same numbers as torch.no_grad() per step)",
            );
        }
        _ => line(&mut t, "kind", "\"full\"", "every parameter is trained"),
    }
    t.push_str("\n[training]\n");
    line(&mut t, "output_dir", &toml_str(&path_str(output_dir)), "");
    match section {
        Section::Full => {
            line(&mut t, "learning_rate", "2e-5", "");
            line(&mut t, "per_device_train_batch_size", "16", "");
            line(&mut t, "per_device_eval_batch_size", "32", "");
            line(&mut t, "num_train_epochs", "2", "");
            line(&mut t, "eval_strategy", "\"epoch\"", "evaluation_strategy=\"epoch\"");
            line(&mut t, "save_strategy", "\"epoch\"", "");
            line(&mut t, "logging_steps", "50", "");
            line(&mut t, "load_best_model_at_end", "true", "");
            line(&mut t, "metric_for_best_model", "\"accuracy\"", "compute_metrics: accuracy and f1_macro");
            line(&mut t, "seed", "42", "TrainingArguments' default");
        }
        Section::Frozen => {
            line(&mut t, "learning_rate", "1e-3", "torch.optim.AdamW(head.parameters(), lr=1e-3)");
            line(&mut t, "weight_decay", "0.01", "torch.optim.AdamW's default");
            line(&mut t, "lr_scheduler_type", "\"constant\"", "the notebook's loop has no scheduler");
            line(&mut t, "max_grad_norm", "0", "and no gradient clipping");
            line(&mut t, "per_device_train_batch_size", "32", "batch_iter(train_set, bs=32)");
            line(&mut t, "per_device_eval_batch_size", "32", "");
            line(
                &mut t,
                "num_train_epochs",
                "1",
                "one pass over the training rows (the loop's `step > 200` break is not reached)",
            );
            line(
                &mut t,
                "eval_strategy",
                "\"epoch\"",
                "the notebook does not evaluate §5; the report needs accuracy and a confusion matrix",
            );
            line(&mut t, "save_strategy", "\"no\"", "");
            line(
                &mut t,
                "logging_steps",
                "10",
                "the loop prints the loss every 50 steps; 10 gives the curve more than one point (logging changes no number)",
            );
            line(&mut t, "seed", "42", "");
        }
        Section::Ner => {
            line(&mut t, "learning_rate", "5e-5", "TrainingArguments' default (the notebook sets none)");
            line(&mut t, "per_device_train_batch_size", "8", "");
            line(&mut t, "per_device_eval_batch_size", "16", "");
            line(&mut t, "num_train_epochs", "1", "");
            line(&mut t, "eval_strategy", "\"epoch\"", "seqeval metrics at each evaluation");
            line(
                &mut t,
                "save_strategy",
                "\"no\"",
                "the default save_steps=500 saves nothing in the notebook's 250 steps",
            );
            line(&mut t, "logging_steps", "50", "");
            line(&mut t, "seed", "42", "TrainingArguments' default");
        }
        Section::Data => {}
    }
    t
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

fn root() -> PathBuf {
    super::root()
}

/// Builds `ft` in release mode and returns the binary's path (from cargo's JSON messages, so that
/// `CARGO_TARGET_DIR` and cargo configuration are honoured).
pub(crate) fn build_ft() -> Result<PathBuf> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root()).args(["build", "--release", "-p", "ft-cli", "--message-format=json-render-diagnostics"]);
    eprintln!("+ {cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("cargo build --release -p ft-cli failed with {}", out.status);
    }
    let mut exe = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (true, Some(p)) =
            (v["reason"] == "compiler-artifact" && v["target"]["name"] == "ft", v["executable"].as_str())
        {
            exe = Some(PathBuf::from(p));
        }
    }
    exe.context("cargo build --release -p ft-cli reported no `ft` executable")
}

/// `ft --version`, and the git commit of the working tree (with a note when it has changes).
fn provenance(ft: &Path) -> (String, String) {
    let version = Command::new(ft)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown (ft --version failed)".into());
    let git = |args: &[&str]| -> Option<String> {
        let o = Command::new("git").current_dir(root()).args(args).output().ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c} (with uncommitted changes)") } else { c }
        }
        None => "unknown (not a git checkout)".into(),
    };
    (version, commit)
}

/// UTC date and time, `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

fn machine() -> String {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    match cpu {
        Some(c) => format!("{threads} CPU threads, {c}"),
        None => format!("{threads} CPU threads"),
    }
}

/// Runs `ft` with `args`: stdout (the JSON-lines log of `ft train`) into `stdout_file`, stderr
/// shown and kept in `stderr_file`. Returns whether it succeeded and stderr's last lines.
fn run_ft(
    ft: &Path,
    args: &[OsString],
    offline: bool,
    stdout_file: &Path,
    stderr_file: &Path,
) -> Result<(bool, String)> {
    let stdout = std::fs::File::create(stdout_file).with_context(|| format!("creating {}", stdout_file.display()))?;
    let mut log = std::fs::File::create(stderr_file).with_context(|| format!("creating {}", stderr_file.display()))?;
    let mut cmd = Command::new(ft);
    // Plain text logs (tracing colours them otherwise; escapes are stripped below as well).
    cmd.current_dir(root()).args(args).stdout(stdout).stderr(Stdio::piped()).env("NO_COLOR", "1");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    }
    eprintln!("+ {}{}", if offline { "HF_HUB_OFFLINE=1 " } else { "" }, shell_words(ft, args));
    let mut child = cmd.spawn().with_context(|| format!("starting {}", ft.display()))?;
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    if let Some(err) = child.stderr.take() {
        let mut reader = BufReader::new(err);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).with_context(|| format!("reading {}'s stderr", ft.display()))?;
            if n == 0 {
                break;
            }
            let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
            eprintln!("    {line}");
            writeln!(log, "{line}").with_context(|| format!("writing {}", stderr_file.display()))?;
            tail.push_back(line);
            if tail.len() > 15 {
                tail.pop_front();
            }
        }
    }
    let status = child.wait().with_context(|| format!("waiting for {}", ft.display()))?;
    Ok((status.success(), tail.into_iter().collect::<Vec<_>>().join("\n")))
}

/// Text without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn shell_words(ft: &Path, args: &[OsString]) -> String {
    std::iter::once(ft.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars().any(|c| c.is_whitespace() || "'\"$\\".contains(c)) {
                format!("'{}'", s.replace('\'', "'\\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
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
    let text = run_file(section, p, &output);
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

/// Header facts of the report.
struct Header {
    profile: String,
    version: String,
    commit: String,
    command: String,
    machine: String,
    date: String,
}

fn write_report(
    out: &Path,
    h: &Header,
    tiny: bool,
    outcomes: &[Outcome],
    total_s: f64,
    pending: &[Section],
) -> Result<()> {
    let mut md = String::new();
    let numbers: Vec<String> = outcomes
        .iter()
        .map(|o| o.section.number().to_string())
        .chain(pending.iter().map(|s| s.number().to_string()))
        .collect();
    let _ = writeln!(md, "# Reproducing the fine-tuning notebook with ft: §{}\n", numbers.join(", §"));
    if tiny {
        md.push_str(
            "> **TINY PROFILE — THESE NUMBERS MEAN NOTHING.** The runs use tiny random-weight fixture checkpoints \
(`tests/fixtures/models/tiny-bert-*`, 2 layers, hidden size 32) and small synthetic data written by this task. \
They show that every step of the sections runs end to end and what the report looks like — not how well \
fine-tuning works. Run without `--tiny` for the notebook's models and data.\n\n",
        );
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| profile | {} |", h.profile);
    let _ = writeln!(md, "| ft | {} |", h.version);
    let _ = writeln!(md, "| commit | `{}` |", h.commit);
    let _ = writeln!(md, "| command | `{}` |", h.command);
    let _ = writeln!(md, "| machine | {} |", h.machine);
    let _ = writeln!(md, "| date | {} |", h.date);
    let _ = writeln!(md, "| total wall time | {total_s:.1} s (build excluded) |\n");
    md.push_str("| section | status | result | train_runtime (s) | wall time (s) |\n|---|---|---|---|---|\n");
    for o in outcomes {
        let _ = writeln!(
            md,
            "| [{}](#{}) | {} | {} | {} | {:.1} |",
            o.section.title(),
            anchor(o.section.title()),
            if o.ok { "ok" } else { "**failed**" },
            o.headline,
            o.runtime,
            o.wall_s
        );
    }
    for s in pending {
        let _ = writeln!(md, "| {} | not run yet | | | |", s.title());
    }
    for o in outcomes {
        let _ = writeln!(md, "\n## {}\n\n{}", o.section.title(), o.markdown.trim_end());
    }
    let path = out.join("report.md");
    let tmp = out.join("report.md.tmp");
    std::fs::write(&tmp, md).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// GitHub's heading anchor: lowercase, spaces to `-`, other punctuation dropped.
fn anchor(title: &str) -> String {
    title
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c == ' ' {
                Some('-')
            } else if c == '-' || c == '_' {
                Some(c)
            } else {
                None
            }
        })
        .collect()
}

/// Runs the task.
pub fn run(args: Args) -> Result<()> {
    let mut sections: Vec<Section> =
        args.sections.iter().filter(|s| !s.trim().is_empty()).map(|s| Section::parse(s)).collect::<Result<_>>()?;
    sections.sort();
    sections.dedup();
    if sections.is_empty() {
        bail!("--sections: no section given (available: 3, 4, 5, 9)");
    }
    let root = root();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join(if args.tiny { "target/notebook-report-tiny" } else { "target/notebook-report" }));
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
    let (model_cls, model_ner) = (model_arg(&args.model_cls), model_arg(&args.model_ner));
    let uses_ag = sections.iter().any(|s| matches!(s, Section::Data | Section::Full | Section::Frozen));
    let uses_conll = sections.iter().any(|s| matches!(s, Section::Data | Section::Ner));
    let profile = if args.tiny {
        let (ag_dir, conll_dir) = tiny::write(&out.join("tiny-data"))?;
        Profile {
            tiny: true,
            offline: true,
            model_cls: model_cls.unwrap_or_else(|| fixture("tiny-bert-seqcls")),
            model_ner: model_ner.unwrap_or_else(|| fixture("tiny-bert-tokcls")),
            ag: DataPlan::recipe("AG News", "ag_news", Some(&ag_dir), (2000, 1000), "label"),
            conll: DataPlan::recipe("CoNLL-2003", "conll2003", Some(&conll_dir), (2000, 1000), "ner_tags"),
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
        Profile {
            tiny: false,
            offline: args.offline,
            model_cls: model_cls.unwrap_or_else(|| "distilbert/distilbert-base-uncased".into()),
            model_ner: model_ner.unwrap_or_else(|| "google-bert/bert-base-cased".into()),
            ag,
            conll,
        }
    };
    let ft = match &args.ft {
        Some(p) => p.canonicalize().with_context(|| format!("--ft {}", p.display()))?,
        None => build_ft()?,
    };
    let (version, commit) = provenance(&ft);
    let command = {
        let rest: Vec<OsString> = std::env::args_os().skip(2).collect();
        let line = shell_words(Path::new("reproduce-notebook"), &rest);
        format!("cargo xtask {line}")
    };
    let header = Header {
        profile: if profile.tiny {
            format!("**tiny** — `{}` / `{}`, generated data in `tiny-data/`", profile.model_cls, profile.model_ner)
        } else {
            format!(
                "notebook settings — §4/§5 model `{}`, §9 model `{}`; data: {}{}",
                profile.model_cls,
                profile.model_ner,
                if args.data.is_some() { "local (`--data`)" } else { "the Hub" },
                if profile.offline { ", HF_HUB_OFFLINE=1" } else { "" }
            )
        },
        version,
        commit,
        command,
        machine: machine(),
        date: now_utc(),
    };
    let started = Instant::now();
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
            _ => section_train(&ft, section, &profile, &dir)?,
        };
        eprintln!("== {}: {} ({:.1} s)", section.title(), outcome.headline, outcome.wall_s);
        outcomes.push(outcome);
    }
    let total = started.elapsed().as_secs_f64();
    write_report(&out, &header, profile.tiny, &outcomes, total, &[])?;
    let report = out.join("report.md");
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.ok).map(|o| format!("§{}", o.section.number())).collect();
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

    fn profile(tiny: bool) -> Profile {
        let dir = Path::new("/data");
        Profile {
            tiny,
            offline: true,
            model_cls: "m-cls".into(),
            model_ner: "m-ner".into(),
            ag: DataPlan::ag_news_test_parquet(&dir.join("ag_news/test.parquet")),
            conll: DataPlan::conll_dir(&dir.join("conll2003")),
        }
    }

    /// The run files carry the notebook's settings, section by section.
    #[test]
    fn run_files_have_the_notebooks_settings() {
        let p = profile(false);
        let full = run_file(Section::Full, &p, Path::new("/o"));
        for l in [
            "learning_rate = 2e-5",
            "per_device_train_batch_size = 16",
            "per_device_eval_batch_size = 32",
            "num_train_epochs = 2",
            "max_length = 256",
            "eval_strategy = \"epoch\"",
            "save_strategy = \"epoch\"",
            "load_best_model_at_end = true",
            "metric_for_best_model = \"accuracy\"",
            "logging_steps = 50",
            "kind = \"full\"",
            "eval_skip = 2000",
            "source = \"/data/ag_news/test.parquet\"",
            "output_dir = \"/o\"",
        ] {
            assert!(full.lines().any(|x| x.starts_with(l)), "§4 lacks {l}:\n{full}");
        }
        let frozen = run_file(Section::Frozen, &p, Path::new("/o"));
        for l in [
            "kind = \"frozen\"",
            "head_dropout = 0.1",
            "learning_rate = 1e-3",
            "per_device_train_batch_size = 32",
            "lr_scheduler_type = \"constant\"",
        ] {
            assert!(frozen.lines().any(|x| x.starts_with(l)), "§5 lacks {l}:\n{frozen}");
        }
        let ner = run_file(Section::Ner, &p, Path::new("/o"));
        for l in [
            "task = \"token-classification\"",
            "name = \"m-ner\"",
            "per_device_train_batch_size = 8",
            "per_device_eval_batch_size = 16",
            "num_train_epochs = 1",
            "learning_rate = 5e-5",
            "source = \"/data/conll2003\"",
            "train_select = 2000",
        ] {
            assert!(ner.lines().any(|x| x.starts_with(l)), "§9 lacks {l}:\n{ner}");
        }
        assert!(!ner.contains("max_length ="), "{ner}");
        // The tiny profile changes the model and the data, not the settings.
        let strip = |s: &str| s.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        assert_eq!(strip(&run_file(Section::Frozen, &profile(true), Path::new("/o"))), strip(&frozen));
    }

    #[test]
    fn sections_parse_and_refuse_unknown_ones() {
        assert_eq!(Section::parse("4").unwrap(), Section::Full);
        assert_eq!(Section::parse(" §9").unwrap(), Section::Ner);
        let e = Section::parse("6").unwrap_err().to_string();
        assert!(e.contains("section 6") && e.contains("3, 4, 5, 9"), "{e}");
        assert!(Section::parse("x").is_err());
    }

    #[test]
    fn anchors_match_githubs() {
        assert_eq!(anchor("§4 Full fine-tuning (AG News)"), "4-full-fine-tuning-ag-news");
        assert_eq!(anchor("§3 Data loading & preparation"), "3-data-loading--preparation");
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x"), "2026  WARN x");
    }

    #[test]
    fn dates_are_civil() {
        let d = now_utc();
        assert!(d.len() == "2025-01-01 00:00 UTC".len() && d.ends_with(" UTC") && d.starts_with("20"), "{d}");
    }
}
