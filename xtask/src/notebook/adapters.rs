//! §6 adapters and exercise 4: `agnews_adapter` (a Pfeiffer bottleneck adapter with its own
//! head, the notebook's settings) and `finance_v2` (a second adapter on the same frozen base, on
//! a second task: AG News relabelled Business versus the rest), trained with `ft train`
//! (`[method] kind = "adapter"`); their metrics side by side, their trainable parameters
//! (`ft info --adapter`), each adapter's size on disk beside a full fine-tuned model's, and both
//! loaded on one base by `ft predict`, switching per run.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ft_data::source::{DatasetSource, LoadOptions};
use ft_train::run_config::{MethodConfig, RunConfig};

use super::profile::{Profile, path_str};
use super::report;
use super::run_files;
use super::runner::run_ft;
use super::{Outcome, Section};

/// Texts both adapters label in the switching demo.
const DEMO: [&str; 3] = [
    "Stocks rallied as the central bank held interest rates steady.",
    "The striker scored twice in the second half to win the cup.",
    "A new smartphone chip promises longer battery life.",
];

/// One adapter's run.
struct Run {
    name: &'static str,
    task: &'static str,
    ok: bool,
    tail: String,
    output: PathBuf,
    metrics: serde_json::Value,
    trainable: String,
    markdown: String,
    wall_s: f64,
}

/// Writes `[data]`'s rows relabelled as Business (1) versus the rest (0), in the same order and
/// selection, as `train.jsonl` + `validation.jsonl` in `dir`.
fn finance_data(p: &Profile, dir: &Path) -> Result<PathBuf> {
    let d = &p.ag.data;
    let options = LoadOptions { config: d.config.clone(), local_data: d.local_data.clone(), ..Default::default() };
    let source = DatasetSource::open(&d.source, options).with_context(|| format!("opening {}", d.source))?;
    let take = |split: &str, skip: usize, select: Option<usize>| -> Result<Vec<(String, i64)>> {
        let mut ds = source.load(Some(split)).with_context(|| format!("loading split {split}"))?.dataset;
        if let Some(seed) = d.shuffle_seed {
            ds = ds.shuffle(seed);
        }
        let end = select.map_or(ds.len(), |n| (skip + n).min(ds.len()));
        (skip.min(ds.len())..end)
            .map(|i| {
                let row = ds.row_view(i).context("row")?;
                Ok((row.str("text")?.to_string(), row.int("label")?))
            })
            .collect()
    };
    let out = dir.join("finance-data");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let write = |file: &str, rows: Vec<(String, i64)>| -> Result<()> {
        let body: String = rows
            .into_iter()
            .map(|(text, label)| serde_json::json!({"text": text, "label": i64::from(label == 2)}).to_string() + "\n")
            .collect();
        std::fs::write(out.join(file), body).with_context(|| format!("writing {file}"))
    };
    write("train.jsonl", take(&d.train_split, 0, d.train_select)?)?;
    if let Some(eval) = &d.eval_split {
        write("validation.jsonl", take(eval, d.eval_skip, d.eval_select)?)?;
    }
    Ok(out)
}

fn train(
    ft: &Path,
    p: &Profile,
    dir: &Path,
    name: &'static str,
    task: &'static str,
    config: &RunConfig,
    notebook_comments: bool,
) -> Result<Run> {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    let output = config.training.output_dir.clone();
    if output.exists() {
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the earlier run {}", output.display()))?;
    }
    // §6's run file carries the notebook's comments; exercise 4's is plain (its data and labels
    // are the task's own).
    let text = if notebook_comments {
        run_files::run_file_text(Section::Adapters, config, p)?
    } else {
        super::peft::run_file_text("Exercise 4: a second adapter, finance_v2", config, p)?
    };
    let run_toml = sub.join("run.toml");
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) = run_ft(ft, &args, p.offline, &sub.join("logs.jsonl"), &sub.join("stderr.log"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let link = format!("{}/{name}", Section::Adapters.dir());
    let mut run = Run {
        name,
        task,
        ok,
        tail,
        output: output.clone(),
        metrics: serde_json::Value::Null,
        trainable: String::new(),
        markdown: format!("Run file ([`{link}/run.toml`]({link}/run.toml)):\n\n```toml\n{text}```\n"),
        wall_s,
    };
    if !ok {
        return Ok(run);
    }
    match report::train_section(&sub, &output, &link, name, true) {
        Ok(r) => run.markdown.push_str(&r.markdown),
        Err(e) => {
            run.ok = false;
            let _ = writeln!(run.markdown, "**The run's results could not be read**: {e:#}");
        }
    }
    run.metrics = serde_json::from_str(&std::fs::read_to_string(output.join("all_results.json")).unwrap_or_default())
        .unwrap_or_default();
    let info_out = sub.join("info.txt");
    let args: Vec<OsString> =
        vec!["info".into(), "--model".into(), p.model_cls.clone().into(), "--adapter".into(), output.into_os_string()];
    let (info_ok, info_tail) = run_ft(ft, &args, p.offline, &info_out, &sub.join("info.stderr.log"))?;
    run.trainable = if info_ok {
        std::fs::read_to_string(&info_out)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("trainable params:"))
            .unwrap_or("")
            .to_string()
    } else {
        run.ok = false;
        format!("ft info failed: {info_tail}")
    };
    Ok(run)
}

/// Bytes of the files of folder `dir` (not its subfolders).
fn files_size(dir: &Path, only: &[&str]) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter(|e| e.path().is_file())
                .filter(|e| only.is_empty() || only.iter().any(|n| e.file_name() == *n))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

pub(super) fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The base model's parameters from PEFT's line: all minus trainable (the adapter and its head).
fn base_params(line: &str) -> Option<u64> {
    let number = |label: &str| -> Option<u64> {
        let rest = line.split(label).nth(1)?;
        rest.trim().split_whitespace().next()?.replace(',', "").parse().ok()
    };
    Some(number("all params:")? - number("trainable params:")?)
}

fn metric(m: &serde_json::Value, key: &str) -> String {
    m.get(key).map_or("—".into(), report::fmt_number)
}

/// §6 and exercise 4.
pub(super) fn section_adapters(ft: &Path, p: &Profile, dir: &Path) -> Result<Outcome> {
    let agnews = run_files::run_config(Section::Adapters, p, &dir.join("agnews_adapter/output"));
    let mut finance = run_files::run_config(Section::Adapters, p, &dir.join("finance_v2/output"));
    finance.method = MethodConfig::Adapter(run_files::adapter_method("finance_v2"));
    finance.model.num_labels = Some(2);
    let data = finance_data(p, dir)?;
    super::profile::whole_folder(&mut finance.data, &data, "validation");

    let runs = [
        train(ft, p, dir, "agnews_adapter", "AG News, 4 topics", &agnews, true)?,
        train(ft, p, dir, "finance_v2", "Business vs rest (AG News relabelled)", &finance, false)?,
    ];
    let ok = runs.iter().all(|r| r.ok);
    let wall: f64 = runs.iter().map(|r| r.wall_s).sum();

    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Adapters));
    // A full fine-tuned model's size: §4's, when it ran in this report.
    let full_model = dir.parent().map(|d| d.join(Section::Full.dir()).join("output/model.safetensors"));
    let full_size = full_model.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len());
    md.push_str(
        "| adapter | task | eval_accuracy | eval_f1_macro | trainable params (PEFT-style line) | adapter + head on disk (safetensors + configs) | train_runtime (s) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &runs {
        // One weight form (safetensors) and the configs: what one adapter needs (ft also writes the
        // same weights as `.bin` pickles, for the library's default loader).
        let disk = files_size(
            &r.output,
            &["adapter.safetensors", "model_head.safetensors", "adapter_config.json", "head_config.json"],
        );
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | `{}` | {} | {} |",
            r.name,
            r.task,
            metric(&r.metrics, "eval_accuracy"),
            metric(&r.metrics, "eval_f1_macro"),
            r.trainable.replace('|', "\\|"),
            size(disk),
            metric(&r.metrics, "train_runtime"),
        );
    }
    match full_size {
        Some(b) => {
            let _ = writeln!(
                md,
                "\nA full fine-tuned model (§4's `model.safetensors`): {} — each adapter is what must be stored and shipped per domain instead.\n",
                size(b)
            );
        }
        None => match runs.first().and_then(|r| base_params(&r.trainable)) {
            Some(n) => {
                let _ = writeln!(
                    md,
                    "\nA full fine-tuned model of this base: {n} parameters, {} in float32 (§4 did not run in this report) — each adapter is what must be stored and shipped per domain instead.\n",
                    size(4 * n)
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "\n(Run §4 in the same report to see a full fine-tuned model's size beside the adapters'.)\n"
                );
            }
        },
    }

    // Both adapters on one base, switched per run (§13: one base + per-domain adapters).
    let input = dir.join("demo.jsonl");
    let body: String = DEMO.iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect();
    std::fs::write(&input, body).with_context(|| format!("writing {}", input.display()))?;
    if ok {
        md.push_str("Both adapters loaded on one base (`ft predict --model BASE --adapter agnews_adapter=… --adapter finance_v2=… --active NAME`):\n\n| text | agnews_adapter | finance_v2 |\n|---|---|---|\n");
        let mut columns: Vec<Vec<String>> = Vec::new();
        for active in ["agnews_adapter", "finance_v2"] {
            let out = dir.join(format!("demo-{active}.jsonl"));
            let mut a: Vec<OsString> = vec!["predict".into(), "--model".into(), p.model_cls.clone().into()];
            for r in &runs {
                a.extend(["--adapter".into(), format!("{}={}", r.name, path_str(&r.output)).into()]);
            }
            a.extend([
                "--active".into(),
                active.into(),
                "--input".into(),
                input.clone().into_os_string(),
                "--output".into(),
                out.clone().into_os_string(),
            ]);
            let (p_ok, tail) = run_ft(ft, &a, p.offline, &dir.join("demo.stdout.txt"), &dir.join("demo.stderr.log"))?;
            let labels: Vec<String> = if p_ok {
                std::fs::read_to_string(&out)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .map(|v| format!("{} ({})", v["label"].as_str().unwrap_or("?"), metric(&v, "score")))
                    .collect()
            } else {
                vec![format!("failed: {}", tail.replace('\n', " "))]
            };
            columns.push(labels);
        }
        for (i, t) in DEMO.iter().enumerate() {
            let cell = |c: &Vec<String>| c.get(i).cloned().unwrap_or_default();
            let _ = writeln!(md, "| {t} | {} | {} |", cell(&columns[0]), cell(&columns[1]));
        }
        md.push_str(
            "\n(finance_v2's labels are `LABEL_1` = Business, `LABEL_0` = the rest: JSONL labels carry no names.)\n\n",
        );
    }
    for r in &runs {
        let _ = writeln!(md, "### `{}`\n", r.name);
        if !r.ok {
            let _ = writeln!(md, "**failed**; the end of its stderr:\n\n```\n{}\n```\n", r.tail);
        }
        md.push_str(&r.markdown);
        md.push('\n');
    }
    let headline = if ok {
        format!(
            "agnews_adapter accuracy {}, finance_v2 accuracy {}",
            metric(&runs[0].metrics, "eval_accuracy"),
            metric(&runs[1].metrics, "eval_accuracy")
        )
    } else {
        "failed".into()
    };
    Ok(Outcome { section: Section::Adapters, ok, headline, runtime: format!("{wall:.1}"), wall_s: wall, markdown: md })
}
