//! The notebook's exercises that no section holds: 1 (BERT instead of DistilBERT on §4's task,
//! F1 side by side), 2 (max_length 128 against §4's 256: accuracy and time) and 6 (a few-shot
//! NER set of hand-written sentences from one domain, `datasets/fewshot-ner-software`, trained
//! and evaluated). Exercises 3, 4, 5 and 7 live in their sections (§4's confusion matrix, §6's
//! second adapter, §8's r = 16, §10's unfreezing).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ft_train::args::{IntervalStrategy, TrainingArguments};
use ft_train::run_config::RunConfig;
use serde_json::Value;

use super::profile::{Profile, path_str};
use super::report::{self, fmt_number, read_json};
use super::runner::run_ft;
use super::{Outcome, Section, run_files};

/// One `ft train` run of an exercise: writes `dir/run.toml`, runs it, reads the results.
struct Run {
    ok: bool,
    markdown: String,
    results: Value,
    wall_s: f64,
}

fn train(ft: &Path, p: &Profile, dir: &Path, title: &str, config: &RunConfig) -> Result<Run> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let output = config.training.output_dir.clone();
    if output.exists() {
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the earlier run {}", output.display()))?;
    }
    let text = super::peft::run_file_text(title, config, p)?;
    let run_toml = dir.join("run.toml");
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) = run_ft(ft, &args, p.offline, &dir.join("logs.jsonl"), &dir.join("stderr.log"))?;
    let wall_s = started.elapsed().as_secs_f64();
    // Each exercise's folder sits directly in the report's folder.
    let link = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut md = format!("Run file ([`{link}/run.toml`]({link}/run.toml)):\n\n```toml\n{text}```\n\n");
    if !ok {
        let _ = writeln!(md, "**`ft train` failed**; the end of its stderr:\n\n```\n{tail}\n```\n");
        return Ok(Run { ok, markdown: md, results: Value::Null, wall_s });
    }
    let confusion = !config.is_token_classification();
    let mut ok = ok;
    match report::train_section(dir, &output, &link, title, confusion) {
        Ok(r) => md.push_str(&r.markdown),
        Err(e) => {
            ok = false;
            let _ = writeln!(md, "**The run's results could not be read**: {e:#}");
        }
    }
    let results = read_json(&output.join("all_results.json")).unwrap_or(Value::Null);
    Ok(Run { ok, markdown: md, results, wall_s })
}

fn get(v: &Value, k: &str) -> String {
    v.get(k).map(fmt_number).unwrap_or_else(|| "—".into())
}

/// §4's evaluation after its first epoch (the exercises train one epoch), with §4's training time
/// per epoch (`train_runtime / epochs`), if §4 ran in this call.
fn full_results(p: &Profile, out: &Path) -> Option<Value> {
    if !p.ran.contains(&Section::Full) {
        return None;
    }
    let output = out.join(Section::Full.dir()).join("output");
    let all = read_json(&output.join("all_results.json")).ok()?;
    let state = read_json(&output.join("trainer_state.json")).ok()?;
    let first = state["log_history"]
        .as_array()?
        .iter()
        .find(|e| e.get("eval_accuracy").is_some() && e["epoch"].as_f64().is_some_and(|x| (x - 1.0).abs() < 1e-9))?
        .clone();
    let epochs = all["epoch"].as_f64().filter(|e| *e > 0.0)?;
    let mut v = first;
    v["train_runtime"] = serde_json::json!(all["train_runtime"].as_f64()? / epochs);
    v["train_samples_per_second"] = all["train_samples_per_second"].clone();
    Some(v)
}

/// §4's run file, one epoch (the exercises compare with §4's first epoch: half the time).
fn one_epoch(p: &Profile, dir: &Path) -> RunConfig {
    let mut config = run_files::run_config(Section::Full, p, &dir.join("output"));
    config.training.num_train_epochs = 1.0;
    config
}

fn outcome(section: Section, run: &Run, headline: String, markdown: String) -> Outcome {
    let (ok, wall_s) = (run.ok, run.wall_s);
    Outcome {
        section,
        ok,
        headline: if ok { headline } else { "failed".into() },
        runtime: get(&run.results, "train_runtime"),
        wall_s,
        markdown,
    }
}

/// Exercise 1: §4's run with another model — BERT (`bert-base-cased`) in the hub profile; where
/// no second pre-trained checkpoint exists (local, tiny), §4's model from random initialisation.
pub(super) fn exercise_1(ft: &Path, p: &Profile, out: &Path, dir: &Path) -> Result<Outcome> {
    let mut config = one_epoch(p, dir);
    let (label, note) = match &p.exercise_1_model {
        Some(m) => {
            config.model.name = m.clone();
            (
                format!("`{m}`"),
                format!(
                    "§4's run file with `model.name = \"{m}\"` (the notebook's BERT), one epoch, beside §4's first epoch."
                ),
            )
        }
        None => {
            config.model.random_init = true;
            (
                format!("`{}` from random initialisation", p.model_cls),
                "This profile has no second pre-trained checkpoint (without the Hub, the only one available is all-MiniLM-L6-v2, §4's model), so the side-by-side is §4's model against the same architecture from random initialisation (`model.random_init = true`): what pre-training is worth on this task; one epoch, beside §4's first epoch. The hub profile runs the exercise as written (`bert-base-cased`)."
                    .to_string(),
            )
        }
    };
    let run = train(ft, p, dir, "Exercise 1: another model on §4's task", &config)?;
    let mut md = format!(
        "The notebook's exercise 1: fine-tune BERT instead of DistilBERT on §4's task and compare F1. {note}\n\n| model | eval accuracy | macro-F1 | train time (s) |\n|---|---|---|---|\n"
    );
    if let Some(full) = full_results(p, out) {
        let _ = writeln!(
            md,
            "| §4 after its first epoch: `{}` | {} | {} | {} |",
            p.model_cls,
            get(&full, "eval_accuracy"),
            get(&full, "eval_f1_macro"),
            get(&full, "train_runtime")
        );
    }
    let _ = writeln!(
        md,
        "| {label} | {} | {} | {} |\n",
        get(&run.results, "eval_accuracy"),
        get(&run.results, "eval_f1_macro"),
        get(&run.results, "train_runtime")
    );
    md.push_str(&run.markdown);
    let headline = format!("macro-F1 {} ({label})", get(&run.results, "eval_f1_macro"));
    Ok(outcome(Section::Exercise1, &run, headline, md))
}

/// Exercise 2: §4's run with `max_length = 128`.
pub(super) fn exercise_2(ft: &Path, p: &Profile, out: &Path, dir: &Path) -> Result<Outcome> {
    let mut config = one_epoch(p, dir);
    config.data.max_length = Some(128);
    let run = train(ft, p, dir, "Exercise 2: §4 with max_length = 128", &config)?;
    let mut md = String::from(
        "The notebook's exercise 2: train with `max_length` 128 and 256 and compare accuracy and time. §4 is the 256 run (its first epoch: evaluation and time per epoch); this one is §4's run file with `data.max_length = 128`, one epoch.\n\n| max_length | eval accuracy | macro-F1 | train time (s) | train samples/s |\n|---|---|---|---|---|\n",
    );
    if let Some(full) = full_results(p, out) {
        let _ = writeln!(
            md,
            "| 256 (§4, first epoch) | {} | {} | {} | {} |",
            get(&full, "eval_accuracy"),
            get(&full, "eval_f1_macro"),
            get(&full, "train_runtime"),
            get(&full, "train_samples_per_second")
        );
    }
    let _ = writeln!(
        md,
        "| 128 | {} | {} | {} | {} |\n",
        get(&run.results, "eval_accuracy"),
        get(&run.results, "eval_f1_macro"),
        get(&run.results, "train_runtime"),
        get(&run.results, "train_samples_per_second")
    );
    md.push_str(&run.markdown);
    let headline = format!(
        "max_length 128: accuracy {} in {} s",
        get(&run.results, "eval_accuracy"),
        get(&run.results, "train_runtime")
    );
    Ok(outcome(Section::Exercise2, &run, headline, md))
}

/// Exercise 6: few-shot NER on `datasets/fewshot-ner-software` (8 training sentences, 4 test),
/// from §9's CoNLL-trained model when §9 ran in this report (domain adaptation), else from §9's
/// base model.
pub(super) fn exercise_6(ft: &Path, p: &Profile, out: &Path, dir: &Path) -> Result<Outcome> {
    let data = super::root().join("datasets/fewshot-ner-software");
    let mut config = run_files::run_config(Section::Ner, p, &dir.join("output"));
    let ner_output = out.join(Section::Ner.dir()).join("output");
    let from_ner = p.ran.contains(&Section::Ner) && ner_output.join("config.json").is_file();
    if from_ner {
        config.model.name = path_str(&ner_output);
    }
    super::profile::whole_folder(&mut config.data, &data, "test");
    config.training = TrainingArguments {
        output_dir: dir.join("output"),
        learning_rate: 5e-5,
        per_device_train_batch_size: 4,
        per_device_eval_batch_size: 4,
        num_train_epochs: 20.0,
        eval_strategy: IntervalStrategy::Epoch,
        save_strategy: IntervalStrategy::No,
        logging_steps: 2,
        seed: 42,
        ..Default::default()
    };
    let run = train(ft, p, dir, "Exercise 6: few-shot NER on hand-written software-news sentences", &config)?;
    let start = if from_ner {
        "§9's model (fine-tuned on CoNLL-2003 in this report): few-shot adaptation to a new domain"
    } else {
        "§9's base model (§9 did not run in this report)"
    };
    let mut md = format!(
        "The notebook's exercise 6: write a few-shot NER set of 5–10 sentences from one domain and train on it. ft: `datasets/fewshot-ner-software` of the repository (`{}`) — 8 hand-written training sentences of open-source software news and 4 held-out ones, CoNLL-2003's tags (PER, ORG, LOC, MISC for software and languages) — trained for 20 epochs from {start}.\n\n",
        data.display()
    );
    let _ = writeln!(
        md,
        "| | overall precision | overall recall | overall F1 | token accuracy |\n|---|---|---|---|---|\n| 4 held-out sentences | {} | {} | {} | {} |\n",
        get(&run.results, "eval_overall_precision"),
        get(&run.results, "eval_overall_recall"),
        get(&run.results, "eval_overall_f1"),
        get(&run.results, "eval_overall_accuracy")
    );
    md.push_str(&run.markdown);
    let headline = format!("few-shot NER overall F1 {}", get(&run.results, "eval_overall_f1"));
    Ok(outcome(Section::Exercise6, &run, headline, md))
}
