//! The report's parts: what a finished `ft train` output directory holds (metrics, the
//! evaluations of `log_history`, the best checkpoint) as Markdown, the loss curve and confusion
//! matrix drawn with `ft-metrics`, and the summary of `ft data inspect`'s output.
//!
//! Everything reads files a run wrote; a missing or malformed file is an error naming it, except
//! `eval_predictions.json`, which older trainers do not write: its absence is said in the report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ft_metrics::classification::confusion_matrix;
use ft_metrics::curves::{Series, line_chart_png};
use ft_metrics::plot::{Heatmap, save_confusion_matrix};
use serde_json::Value;

use super::{Outcome, Section};

/// The loss curve picture, in the section's directory.
pub const LOSS_CURVE: &str = "loss_curve.png";
/// The confusion matrix picture, in the section's directory.
pub const CONFUSION_MATRIX: &str = "confusion_matrix.png";

/// Keys of `all_results.json` shown first, in this order; the others follow by name.
const PREFERRED: [&str; 14] = [
    "eval_accuracy",
    "eval_f1_macro",
    "eval_overall_f1",
    "eval_overall_precision",
    "eval_overall_recall",
    "eval_overall_accuracy",
    "eval_loss",
    "train_loss",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "feature_extraction_runtime",
    "eval_runtime",
    "epoch",
];

/// Evaluation metrics shown per evaluation (the columns present in `log_history` are kept).
const EVAL_COLUMNS: [&str; 7] = [
    "eval_loss",
    "eval_accuracy",
    "eval_f1_macro",
    "eval_overall_precision",
    "eval_overall_recall",
    "eval_overall_f1",
    "eval_overall_accuracy",
];

/// The headline metrics of the summary table, the first present.
const HEADLINE: [&str; 3] = ["eval_accuracy", "eval_f1_macro", "eval_overall_f1"];

/// A number as the report prints it: integers whole, others with four decimals (or in scientific
/// notation when tiny).
pub fn fmt_number(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x == x.trunc() && x.abs() < 1e15 {
                format!("{x:.0}")
            } else if x.abs() >= 1e-3 {
                format!("{x:.4}")
            } else {
                format!("{x:.3e}")
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// What the report says about one training section.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Markdown for the section (metrics, evaluations, pictures).
    pub markdown: String,
    /// One line for the summary table (`eval_accuracy 0.9130`).
    pub headline: String,
    /// `train_runtime` in seconds, when reported.
    pub train_runtime: Option<f64>,
    /// `feature_extraction_runtime` (frozen encoder) in seconds, when reported.
    pub feature_runtime: Option<f64>,
}

/// `(step, value)` of one key of `log_history` (entries without it are skipped).
pub fn history_series(log_history: &[Value], key: &str) -> Vec<(f64, f64)> {
    log_history.iter().filter_map(|e| Some((e.get("step")?.as_f64()?, e.get(key)?.as_f64()?))).collect()
}

/// Draws the training `loss` and `eval_loss` of `log_history` against the step into
/// `section_dir/file` and returns the Markdown image line (or, when nothing can be drawn, a line
/// saying why); `link` is `section_dir` relative to the report.
pub fn loss_curve(section_dir: &Path, file: &str, log_history: &[Value], link: &str, title: &str) -> Result<String> {
    let mut series = vec![Series { name: "training loss".into(), points: history_series(log_history, "loss") }];
    let eval_loss = history_series(log_history, "eval_loss");
    if !eval_loss.is_empty() {
        series.push(Series { name: "evaluation loss".into(), points: eval_loss });
    }
    Ok(match line_chart_png(&format!("{title}: loss"), "step", "loss", &series) {
        Ok(png) => {
            let path = section_dir.join(file);
            std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
            format!("![loss curve]({link}/{file})\n")
        }
        Err(e) => format!("No loss curve: {e} (the run logged no finite loss; lower `logging_steps`).\n"),
    })
}

/// [`loss_curve`] of the run whose output directory is `output_dir` (its `trainer_state.json`);
/// a line saying why when that file cannot be read.
pub fn run_loss_curve(section_dir: &Path, file: &str, output_dir: &Path, link: &str, title: &str) -> Result<String> {
    let path = output_dir.join("trainer_state.json");
    let history = read_json(&path).ok().and_then(|s| s.get("log_history").and_then(Value::as_array).cloned());
    match history {
        Some(h) => loss_curve(section_dir, file, &h, link, title),
        None => Ok(format!("No loss curve: `{}` has no `log_history`.\n", path.display())),
    }
}

/// Reads the output directory of a finished `ft train` run, draws `loss_curve.png` (and, with
/// `confusion`, `confusion_matrix.png`) into `section_dir`, and returns the Markdown; `link` is
/// `section_dir` relative to the report (for image links).
pub fn train_section(
    section_dir: &Path,
    output_dir: &Path,
    link: &str,
    title: &str,
    confusion: bool,
) -> Result<TrainReport> {
    let all_path = output_dir.join("all_results.json");
    let all = read_json(&all_path)?;
    let Some(all_map) = all.as_object() else { bail!("{}: expected a JSON object", all_path.display()) };
    let state_path = output_dir.join("trainer_state.json");
    let state = read_json(&state_path)?;
    let Some(log_history) = state.get("log_history").and_then(Value::as_array) else {
        bail!("{}: no log_history list", state_path.display())
    };
    let mut md = String::new();

    // Metrics.
    let _ = writeln!(md, "**Metrics** (`{}`):\n", rel(output_dir, section_dir, "all_results.json"));
    md.push_str("| metric | value |\n|---|---|\n");
    let mut keys: Vec<&String> = all_map.keys().collect();
    keys.sort_by_key(|k| (PREFERRED.iter().position(|p| p == k).unwrap_or(PREFERRED.len()), k.to_string()));
    for k in keys {
        let _ = writeln!(md, "| {k} | {} |", fmt_number(&all_map[k]));
    }
    let headline = HEADLINE
        .iter()
        .filter_map(|k| all_map.get(*k).map(|v| format!("{k} {}", fmt_number(v))))
        .collect::<Vec<_>>()
        .join(", ");
    let params = &state["ft_parameters"];
    if let (Some(t), Some(n)) = (params["trainable"].as_u64(), params["total"].as_u64()) {
        let _ = writeln!(
            md,
            "\n**Parameters** (`ft_parameters` of `trainer_state.json`): trainable {t} of {n} ({:.4}%).",
            100.0 * t as f64 / n.max(1) as f64
        );
    }
    let train_runtime = all_map.get("train_runtime").and_then(Value::as_f64);
    let feature_runtime = all_map.get("feature_extraction_runtime").and_then(Value::as_f64);

    // Evaluations during training.
    let evals: Vec<&Value> = log_history.iter().filter(|e| e.get("eval_loss").is_some()).collect();
    if evals.is_empty() {
        md.push_str("\nNo evaluation was logged during training.\n");
    } else {
        let columns: Vec<&str> =
            EVAL_COLUMNS.iter().copied().filter(|c| evals.iter().any(|e| e.get(*c).is_some())).collect();
        let _ = writeln!(
            md,
            "\n**Evaluations during training** (`log_history` of `{}`):\n",
            rel(output_dir, section_dir, "trainer_state.json")
        );
        let _ = writeln!(md, "| epoch | step | {} |", columns.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(columns.len()));
        for e in &evals {
            let cell = |k: &str| e.get(k).map(fmt_number).unwrap_or_else(|| "—".into());
            let values: Vec<String> = columns.iter().map(|c| cell(c)).collect();
            let _ = writeln!(md, "| {} | {} | {} |", cell("epoch"), cell("step"), values.join(" | "));
        }
    }
    if let Some(best) = state.get("best_model_checkpoint").and_then(Value::as_str) {
        let name =
            Path::new(best).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| best.to_string());
        let metric = state.get("best_metric").map(fmt_number).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            md,
            "\nBest checkpoint: `{name}` (best metric {metric}); the final model and metrics are the best checkpoint's (`load_best_model_at_end`)."
        );
    }

    let _ = writeln!(md, "\n**Loss curve** (training `loss` and `eval_loss` of `log_history` against the step):\n");
    md.push_str(&loss_curve(section_dir, LOSS_CURVE, log_history, link, title)?);

    md.push_str(&pitfalls_markdown(&state));
    if confusion {
        md.push('\n');
        md.push_str(&confusion_section(
            section_dir,
            output_dir,
            link,
            title,
            all_map.get("eval_accuracy").and_then(Value::as_f64),
        )?);
    }
    Ok(TrainReport { markdown: md, headline, train_runtime, feature_runtime })
}

/// What `ft train` found of §14's pitfalls in this run (`trainer_state.json`'s `ft_pitfalls`).
fn pitfalls_markdown(state: &Value) -> String {
    let found = state.get("ft_pitfalls").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut md = String::from(
        "\n**§14 pitfalls** (checked by `ft train`: label leakage, overfitting, forgetting for causal LMs; `ft_pitfalls` of `trainer_state.json`): ",
    );
    if found.is_empty() {
        md.push_str("none found.\n");
        return md;
    }
    md.push('\n');
    for p in found {
        let warning = p.get("warning").and_then(Value::as_bool).unwrap_or(true);
        let message = p.get("message").and_then(Value::as_str).unwrap_or("?");
        let _ = writeln!(md, "- {}{message}", if warning { "⚠️ **warning**: " } else { "" });
    }
    md
}

/// Every warning of §14's checks in the runs of sections `ran` under `out`: `(run folder relative
/// to out, message)`.
pub fn pitfall_warnings(out: &Path, ran: &[Section]) -> Vec<(String, String)> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() && depth > 0 && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("checkpoint-"))
            {
                walk(&p, depth - 1, found);
            } else if p.file_name().is_some_and(|n| n == "trainer_state.json") {
                found.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for s in ran {
        walk(&out.join(s.dir()), 3, &mut files);
    }
    let mut warnings = Vec::new();
    for f in files {
        let Ok(state) = read_json(&f) else { continue };
        let run =
            f.parent().and_then(|d| d.strip_prefix(out).ok()).map(|d| d.display().to_string()).unwrap_or_default();
        for p in state.get("ft_pitfalls").and_then(Value::as_array).into_iter().flatten() {
            if p.get("warning").and_then(Value::as_bool) == Some(true) {
                warnings.push((run.clone(), p.get("message").and_then(Value::as_str).unwrap_or("?").to_string()));
            }
        }
    }
    warnings
}

/// `dir/file` shown relative to the section directory when it is inside it.
fn rel(dir: &Path, section_dir: &Path, file: &str) -> String {
    let p = dir.join(file);
    p.strip_prefix(section_dir).unwrap_or(&p).display().to_string()
}

/// The confusion matrix of the final evaluation from `eval_predictions.json`: a picture and a
/// table, and the accuracy recomputed from it against the reported `eval_accuracy`.
fn confusion_section(
    section_dir: &Path,
    output_dir: &Path,
    link: &str,
    title: &str,
    eval_accuracy: Option<f64>,
) -> Result<String> {
    let path = output_dir.join("eval_predictions.json");
    let mut md = String::from("**Confusion matrix** (final evaluation, from `eval_predictions.json`):\n\n");
    if !path.exists() {
        let _ = writeln!(
            md,
            "_No confusion matrix: `{}` is absent — this build of `ft train` does not write the final evaluation's predictions._",
            rel(output_dir, section_dir, "eval_predictions.json")
        );
        return Ok(md);
    }
    let v = read_json(&path)?;
    let field =
        |k: &str| v.get(k).and_then(Value::as_array).with_context(|| format!("{}: no '{k}' list", path.display()));
    let names: Vec<String> = field("label_names")?
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_string)
                .with_context(|| format!("{}: label_names holds {n}, not a string", path.display()))
        })
        .collect::<Result<_>>()?;
    let ids = |k: &str| -> Result<Vec<i64>> {
        field(k)?
            .iter()
            .map(|x| x.as_i64().with_context(|| format!("{}: '{k}' holds {x}, not a class id", path.display())))
            .collect()
    };
    let (predictions, references) = (ids("predictions")?, ids("references")?);
    if predictions.len() != references.len() {
        bail!("{}: {} predictions but {} references", path.display(), predictions.len(), references.len());
    }
    if names.is_empty() || references.is_empty() {
        bail!("{}: no labels or no predictions", path.display());
    }
    if let Some(bad) = predictions.iter().chain(&references).find(|&&i| i < 0 || i as usize >= names.len()) {
        bail!("{}: class id {bad} is outside the {} label names", path.display(), names.len());
    }
    if v.get("unit").and_then(Value::as_str) == Some("token") {
        let _ = writeln!(md, "(per labelled token)\n");
    }
    let labels: Vec<i64> = (0..names.len() as i64).collect();
    let matrix = confusion_matrix(&references, &predictions, Some(&labels), None, None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let png = section_dir.join(CONFUSION_MATRIX);
    let heading = format!("{title}: confusion matrix");
    save_confusion_matrix(&png, &Heatmap { matrix: &matrix, class_names: &names, title: Some(&heading) })
        .map_err(|e| anyhow::anyhow!("drawing {}: {e}", png.display()))?;
    let _ = writeln!(md, "![confusion matrix]({link}/{CONFUSION_MATRIX})\n");
    let _ = writeln!(md, "| true \\ predicted | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
    for (name, row) in names.iter().zip(&matrix) {
        let cells: Vec<String> = row.iter().map(|c| format!("{c:.0}")).collect();
        let _ = writeln!(md, "| **{name}** | {} |", cells.join(" | "));
    }
    let correct: f64 = (0..names.len()).map(|i| matrix[i][i]).sum();
    let accuracy = correct / references.len() as f64;
    let _ = write!(md, "\nAccuracy from these predictions: {accuracy:.4} ({correct:.0} / {})", references.len());
    match eval_accuracy {
        Some(a) if (a - accuracy).abs() < 1e-6 => md.push_str(", equal to the reported `eval_accuracy`.\n"),
        Some(a) => {
            let _ = writeln!(
                md,
                "; **the reported `eval_accuracy` is {a:.4}** — the predictions are not the final evaluation's."
            );
        }
        None => md.push_str(".\n"),
    }
    if let Some(note) = collapse_note(&names, &predictions, &references) {
        let _ = writeln!(md, "\n{note}");
    }
    Ok(md)
}

/// A warning when the predictions are (nearly) all one class while the references are not: the
/// model has collapsed to a constant answer, and its accuracy only measures that class's share.
fn collapse_note(names: &[String], predictions: &[i64], references: &[i64]) -> Option<String> {
    let mut counts = vec![0usize; names.len()];
    for &p in predictions {
        counts[p as usize] += 1;
    }
    let (class, &top) = counts.iter().enumerate().max_by_key(|(_, c)| **c)?;
    let reference_share = references.iter().filter(|&&r| r as usize == class).count() as f64 / references.len() as f64;
    let share = top as f64 / predictions.len().max(1) as f64;
    (share >= 0.95 && reference_share < 0.9).then(|| {
        format!(
            "**The model predicts `{}` for {:.1}% of the examples** (that class is {:.1}% of the references): it has collapsed to one answer, and its accuracy is that class's share, not what the method can do.",
            names[class],
            100.0 * share,
            100.0 * reference_share
        )
    })
}

/// What `ft data inspect` printed about one split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inspect {
    /// Rows of the split.
    pub rows: Option<usize>,
    /// The split as printed (`validation (source split 'test')`).
    pub split: Option<String>,
    /// `(column, [(label, count)])` for every ClassLabel column.
    pub distributions: Vec<(String, Vec<(String, u64)>)>,
    /// The token-length line (`min 3  p50 29 ...`), with a model.
    pub lengths: Option<String>,
    /// Rows longer than the model's maximum (the line as printed).
    pub over_max: Option<String>,
    /// The notebook's subsample of this split (`shuffle(seed=42).select(range(2000))`).
    pub subsample: Option<String>,
}

/// Parses the text of `ft data inspect` (see `crates/ft-cli/src/data_cmd.rs`).
pub fn parse_inspect(text: &str) -> Inspect {
    let mut out = Inspect::default();
    let mut in_distribution: Option<usize> = None;
    let mut lengths_next = false;
    for line in text.lines() {
        if lengths_next {
            lengths_next = false;
            out.lengths = Some(line.trim().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("split: ") {
            if let Some((split, rows)) = rest.rsplit_once(": ") {
                out.split = Some(split.to_string());
                out.rows = rows.trim().strip_suffix(" rows").and_then(|n| n.trim().parse().ok());
            }
            in_distribution = None;
        } else if let Some(rest) = line.strip_prefix("label distribution (") {
            let column = rest.trim_end_matches("):").to_string();
            out.distributions.push((column, Vec::new()));
            in_distribution = Some(out.distributions.len() - 1);
        } else if line.starts_with("token lengths of ") {
            in_distribution = None;
            lengths_next = true;
        } else if line.contains("longer than model_max_length") {
            out.over_max = Some(line.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("notebook subsample: ") {
            out.subsample = Some(rest.trim().to_string());
        } else if let (Some(i), Some(body)) = (in_distribution, line.strip_prefix("  ")) {
            // `  NAME  COUNT  PCT%`: the name may hold spaces; the last two fields are numbers.
            let fields: Vec<&str> = body.split_whitespace().collect();
            let parsed = match fields.as_slice() {
                [name @ .., count, pct] if !name.is_empty() && pct.ends_with('%') => {
                    count.parse::<u64>().ok().map(|c| (name.join(" "), c))
                }
                _ => None,
            };
            match parsed {
                Some(entry) => out.distributions[i].1.push(entry),
                None => in_distribution = None,
            }
        } else {
            in_distribution = None;
        }
    }
    out
}

/// One label distribution in a table cell: `World 1900 (25.0%), ...`.
pub fn distribution_cell(counts: &[(String, u64)]) -> String {
    let total: u64 = counts.iter().map(|(_, c)| c).sum();
    counts
        .iter()
        .map(|(n, c)| format!("{n} {c} ({:.1}%)", 100.0 * *c as f64 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Header facts of the report.
pub struct Header {
    pub profile: String,
    pub version: String,
    pub commit: String,
    pub command: String,
    pub machine: String,
    pub date: String,
}

pub fn write_report(
    out: &Path,
    h: &Header,
    tiny: bool,
    outcomes: &[Outcome],
    total_s: f64,
    pending: &[Section],
) -> Result<()> {
    let mut md = String::new();
    let numbers: Vec<String> =
        outcomes.iter().map(|o| o.section.label()).chain(pending.iter().map(|s| s.label())).collect();
    let _ = writeln!(md, "# Reproducing the fine-tuning notebook with ft: {}\n", numbers.join(", "));
    if tiny {
        md.push_str(
            "> **TINY PROFILE — THESE NUMBERS MEAN NOTHING.** The runs use tiny random-weight fixture checkpoints \
(`tests/fixtures/models/tiny-bert-*`, 2 layers, hidden size 32) and small synthetic data written by this task. \
They show that every step of the sections runs end to end and what the report looks like — not how well \
fine-tuning works. Run with `--profile hub` (the default) or `--profile local` for real models and data.\n\n",
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
    md.push_str(
        "| section | status | result | train time (s; `train_runtime`) | wall time (s) |\n|---|---|---|---|---|\n",
    );
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
    let ran: Vec<Section> = outcomes.iter().map(|o| o.section).chain(pending.iter().copied()).collect();
    if let Some(table) = super::heuristics::table(out, &ran) {
        let _ = writeln!(
            md,
            "\n### §13 in numbers: every method on the same task (AG News)\n\n{table}\nDetails: [§13]({}).",
            format_args!("#{}", anchor(Section::Heuristics.title()))
        );
    }
    let warnings = pitfall_warnings(out, &ran);
    md.push_str("\n### §14 pitfalls caught by ft\n\n");
    if warnings.is_empty() {
        md.push_str(
            "`ft train` checked every run for label leakage between its splits, for overfitting (evaluation loss rising while the training loss falls) and, in causal-LM runs, for forgetting (perplexity on generic text before and after); tokenizers are checked against the model before training. Nothing was found in these runs.\n",
        );
    } else {
        for (run, message) in &warnings {
            let _ = writeln!(md, "- `{run}`: {message}");
        }
    }
    for o in outcomes {
        let _ = writeln!(md, "\n## {}\n\n{}", o.section.title(), o.markdown.trim_end());
    }
    let path = out.join("report.md");
    let tmp = out.join("report.md.tmp");
    std::fs::write(&tmp, &md).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    super::html::write(out, &md, "Reproducing the fine-tuning notebook with ft")
}

/// GitHub's heading anchor: lowercase, spaces to `-`, other punctuation dropped.
pub fn anchor(title: &str) -> String {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A constant predictor is named; a model right on a one-class split or spread over classes is not.
    #[test]
    fn collapse_note_names_a_constant_predictor() {
        let names: Vec<String> = ["World", "Sports"].iter().map(|s| s.to_string()).collect();
        let refs: Vec<i64> = (0..100).map(|i| i % 2).collect();
        let note = collapse_note(&names, &[0; 100], &refs).unwrap();
        assert!(note.contains("`World` for 100.0%") && note.contains("50.0% of the references"), "{note}");
        assert!(collapse_note(&names, &refs, &refs).is_none());
        assert!(collapse_note(&names, &[1; 100], &[1; 100]).is_none(), "all right on a one-class split");
    }

    fn write(path: &Path, v: &Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    }

    fn synthetic_run(dir: &Path) {
        write(
            &dir.join("output/all_results.json"),
            &json!({"epoch": 2.0, "eval_accuracy": 0.75, "eval_f1_macro": 0.7333333333, "eval_loss": 0.61234,
                    "train_runtime": 12.5, "train_samples_per_second": 320.123, "train_loss": 0.9}),
        );
        write(
            &dir.join("output/trainer_state.json"),
            &json!({"global_step": 8, "best_metric": 0.75, "best_model_checkpoint": dir.join("output/checkpoint-8"),
            "log_history": [
                {"step": 2, "epoch": 0.5, "loss": 1.3, "learning_rate": 1e-3},
                {"step": 4, "epoch": 1.0, "loss": 1.1},
                {"step": 4, "epoch": 1.0, "eval_loss": 0.9, "eval_accuracy": 0.5, "eval_f1_macro": 0.4},
                {"step": 6, "epoch": 1.5, "loss": 0.8},
                {"step": 8, "epoch": 2.0, "loss": 0.7},
                {"step": 8, "epoch": 2.0, "eval_loss": 0.61234, "eval_accuracy": 0.75, "eval_f1_macro": 0.7333333333},
                {"step": 8, "epoch": 2.0, "train_runtime": 12.5}
            ]}),
        );
    }

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).map(|b| b.starts_with(b"\x89PNG\r\n\x1a\n") && b.len() > 1000).unwrap_or(false)
    }

    #[test]
    fn anchors_match_githubs() {
        assert_eq!(anchor("§4 Full fine-tuning (AG News)"), "4-full-fine-tuning-ag-news");
        assert_eq!(anchor("§3 Data loading & preparation"), "3-data-loading--preparation");
    }

    #[test]
    fn a_classification_run_becomes_tables_and_pictures() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        synthetic_run(dir);
        // References 0 0 1 1, predictions 0 1 1 1: accuracy 0.75, as reported.
        write(
            &dir.join("output/eval_predictions.json"),
            &json!({"label_names": ["World", "Sports"], "unit": "example", "predictions": [0, 1, 1, 1], "references": [0, 0, 1, 1]}),
        );
        let r = train_section(dir, &dir.join("output"), "4-full", "§4", true).unwrap();
        let md = &r.markdown;
        // Metrics in the preferred order, numbers formatted.
        let acc = md.find("| eval_accuracy | 0.7500 |").expect(md);
        let f1 = md.find("| eval_f1_macro | 0.7333 |").expect(md);
        let rt = md.find("| train_runtime | 12.5000 |").expect(md);
        assert!(acc < f1 && f1 < rt, "{md}");
        assert!(md.contains("| train_samples_per_second | 320.1230 |"), "{md}");
        assert!(md.contains("| epoch | 2 |"), "{md}");
        // One row per evaluation.
        assert!(
            md.contains("| 1.0000 | 4 | 0.9000 | 0.5000 | 0.4000 |")
                || md.contains("| 1 | 4 | 0.9000 | 0.5000 | 0.4000 |"),
            "{md}"
        );
        assert!(md.contains("| 2 | 8 | 0.6123 | 0.7500 | 0.7333 |"), "{md}");
        assert!(md.contains("`checkpoint-8`"), "{md}");
        // Pictures.
        assert!(is_png(&dir.join(LOSS_CURVE)));
        assert!(md.contains("![loss curve](4-full/loss_curve.png)"), "{md}");
        assert!(is_png(&dir.join(CONFUSION_MATRIX)));
        assert!(md.contains("| **World** | 1 | 1 |") && md.contains("| **Sports** | 0 | 2 |"), "{md}");
        assert!(md.contains("0.7500 (3 / 4), equal to the reported `eval_accuracy`"), "{md}");
        assert_eq!(r.headline, "eval_accuracy 0.7500, eval_f1_macro 0.7333");
        assert_eq!(r.train_runtime, Some(12.5));
    }

    #[test]
    fn absent_predictions_are_said_not_fatal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        synthetic_run(dir);
        let r = train_section(dir, &dir.join("output"), "5-frozen", "§5", true).unwrap();
        assert!(r.markdown.contains("No confusion matrix: `output/eval_predictions.json` is absent"), "{}", r.markdown);
        assert!(!dir.join(CONFUSION_MATRIX).exists());
        assert!(is_png(&dir.join(LOSS_CURVE)));
    }

    #[test]
    fn bad_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let e = train_section(dir, &dir.join("output"), "x", "§4", true).unwrap_err();
        assert!(format!("{e:#}").contains("all_results.json"), "{e:#}");
        synthetic_run(dir);
        write(
            &dir.join("output/eval_predictions.json"),
            &json!({"label_names": ["a", "b"], "predictions": [0, 2], "references": [0, 1]}),
        );
        let e = train_section(dir, &dir.join("output"), "x", "§4", true).unwrap_err();
        assert!(format!("{e:#}").contains("eval_predictions.json: class id 2"), "{e:#}");
        std::fs::write(dir.join("output/trainer_state.json"), "{").unwrap();
        let e = train_section(dir, &dir.join("output"), "x", "§4", true).unwrap_err();
        assert!(format!("{e:#}").contains("trainer_state.json: not valid JSON"), "{e:#}");
    }

    #[test]
    fn a_run_without_loss_points_still_reports() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write(&dir.join("output/all_results.json"), &json!({"eval_overall_f1": 0.5, "train_runtime": 1.0}));
        write(&dir.join("output/trainer_state.json"), &json!({"log_history": [{"step": 3, "train_runtime": 1.0}]}));
        let r = train_section(dir, &dir.join("output"), "9-ner", "§9", false).unwrap();
        assert!(
            r.markdown.contains("No loss curve") && r.markdown.contains("No evaluation was logged"),
            "{}",
            r.markdown
        );
        assert_eq!(r.headline, "eval_overall_f1 0.5000");
    }

    #[test]
    fn inspect_output_is_summarised() {
        let text = "dataset: ag_news (recipe: AG's news; text-classification)\n\
from: x (parquet)\n\
splits: train, validation, test\n\
split: validation (source split 'test'): 7600 rows\n\
notebook subsample: shuffle(seed=42).select(range(1000))\n\
columns:\n  text   string\n  label  ClassLabel(4): World, Sports, Business, Sci/Tech\n\
label distribution (label):\n  World         1900   25.0%\n  Sports        1900   25.0%\n  Sci/Tech      1900   25.0%\n  Big Money     1900   25.0%\n\
first rows:\n  {\"text\": \"a\", \"label\": 0}\n\
token lengths of 'text' with m (special tokens included, not truncated):\n  min 43  p50 110  p90 146  p95 165  p99 223  max 436  mean 113.6\n  12 rows longer than model_max_length 40 (truncated by truncation=True)\n";
        let i = parse_inspect(text);
        assert_eq!(i.rows, Some(7600));
        assert_eq!(i.split.as_deref(), Some("validation (source split 'test')"));
        assert_eq!(i.subsample.as_deref(), Some("shuffle(seed=42).select(range(1000))"));
        assert_eq!(i.distributions.len(), 1);
        assert_eq!(i.distributions[0].0, "label");
        assert_eq!(i.distributions[0].1[3], ("Big Money".to_string(), 1900));
        assert_eq!(i.distributions[0].1.len(), 4);
        assert_eq!(i.lengths.as_deref(), Some("min 43  p50 110  p90 146  p95 165  p99 223  max 436  mean 113.6"));
        assert!(i.over_max.unwrap().starts_with("12 rows longer"));
        assert_eq!(distribution_cell(&i.distributions[0].1[..2]), "World 1900 (50.0%), Sports 1900 (50.0%)");
    }
}
