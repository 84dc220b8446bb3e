//! §11 evaluation: the metrics of the notebook's three kinds of task, each computed by ft —
//! classification (§4's final evaluation as scikit-learn's `classification_report`, with
//! `ft metrics`), NER (§9's seqeval scores) and generation: ROUGE and BLEU of GPT-2 summaries of
//! ACLSum abstracts, greedy, before and after a LoRA adapter trained on ACLSum's training pairs
//! (`ft train` + `ft generate` + `ft metrics rouge|bleu`), with the forgetting probe's perplexity
//! on generic text before and after that training (§14).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ft_peft::config::{LoraConfig, TargetModules};
use ft_train::args::{IntervalStrategy, TrainingArguments};
use ft_train::run_config::MethodConfig;
use serde_json::{Value, json};

use super::profile::Profile;
use super::report::{fmt_number, read_json};
use super::runner::run_ft;
use super::{Outcome, Section};

/// How much of the data the generation experiment uses.
struct Sizes {
    /// Words of an abstract kept in the prompt (GPT-2's positions are few).
    abstract_words: usize,
    /// Test pairs summarised before and after.
    test_pairs: usize,
    /// Validation pairs evaluated during training.
    eval_pairs: usize,
    new_tokens: usize,
    max_length: usize,
    epochs: f64,
}

fn sizes(p: &Profile) -> Sizes {
    if p.tiny {
        Sizes { abstract_words: 8, test_pairs: 4, eval_pairs: 4, new_tokens: 6, max_length: 32, epochs: 2.0 }
    } else {
        Sizes { abstract_words: 60, test_pairs: 24, eval_pairs: 50, new_tokens: 32, max_length: 160, epochs: 2.0 }
    }
}

/// One ACLSum pair.
#[derive(Debug, Clone)]
struct Pair {
    id: String,
    aspect: String,
    abstract_text: String,
    summary: String,
}

fn read_pairs(file: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value =
                serde_json::from_str(l).with_context(|| format!("{}: line {}: not JSON", file.display(), i + 1))?;
            let field = |k: &str| -> Result<String> {
                v.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .with_context(|| format!("{}: line {}: no string '{k}'", file.display(), i + 1))
            };
            Ok(Pair {
                id: field("id")?,
                aspect: field("aspect")?,
                abstract_text: field("abstract")?,
                summary: field("summary")?,
            })
        })
        .collect()
}

/// The prompt of a pair: its aspect, the first words of the abstract, and GPT-2's own
/// summarisation cue (`TL;DR:`, from the GPT-2 paper).
fn prompt(pair: &Pair, words: usize) -> String {
    let head: Vec<&str> = pair.abstract_text.split_whitespace().take(words).collect();
    format!("{}\n{} TL;DR:", head.join(" "), pair.aspect)
}

/// One sentence on the summaries themselves: how many are empty and how many differ, before and
/// after, so that a ROUGE change between degenerate outputs is not read as summarisation.
fn summary_shape(before: &[String], after: &[String]) -> String {
    let describe = |which: &str, texts: &[String]| {
        let empty = texts.iter().filter(|t| t.trim().is_empty()).count();
        let distinct = texts.iter().filter(|t| !t.trim().is_empty()).collect::<std::collections::HashSet<_>>().len();
        format!("{which}: {empty} of {} empty (whitespace only), {distinct} distinct non-empty", texts.len())
    };
    let degenerate = |texts: &[String]| texts.iter().collect::<std::collections::HashSet<_>>().len() * 2 <= texts.len();
    format!(
        "The summaries — {}; {}.{}",
        describe("base model", before),
        describe("with the adapter", after),
        if degenerate(before) || degenerate(after) {
            " Most abstracts get the same output: the scores measure words shared by chance (\"the\", \"of\"), not summaries."
        } else {
            ""
        }
    )
}

/// A generated continuation as a summary: its first line, trimmed.
fn summary_of(generated: &str) -> String {
    generated.trim_start().lines().next().unwrap_or("").trim().to_string()
}

fn write_jsonl(path: &Path, rows: impl Iterator<Item = Value>) -> Result<()> {
    let body: String = rows.map(|v| v.to_string() + "\n").collect();
    std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))
}

/// `ft metrics NAME --input FILE` → its JSON.
fn metric(ft: &Path, p: &Profile, dir: &Path, name: &str, input: &Path, set: &[&str]) -> Result<Value> {
    let mut a: Vec<OsString> = vec!["metrics".into(), name.into(), "--input".into(), input.into()];
    for s in set {
        a.extend(["--set".into(), (*s).into()]);
    }
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let out = dir.join(format!("{stem}.{name}.json"));
    let (ok, tail) = run_ft(ft, &a, p.offline, &out, &dir.join(format!("{stem}.{name}.stderr.log")))?;
    if !ok {
        bail!("ft metrics {name} failed: {tail}");
    }
    read_json(&out)
}

/// `ft generate` of every prompt (one batch, greedy), with or without the adapter.
fn generate(
    ft: &Path,
    p: &Profile,
    dir: &Path,
    adapter: Option<&Path>,
    prompts: &[String],
    n: usize,
) -> Result<Vec<String>> {
    let mut a: Vec<OsString> = vec!["generate".into()];
    match adapter {
        Some(d) => a.extend(["--adapter".into(), d.into()]),
        None => a.extend(["--model".into(), p.model_lm.clone().into()]),
    }
    for t in prompts {
        a.extend(["--prompt".into(), t.into()]);
    }
    a.extend(["--max-new-tokens".into(), n.to_string().into(), "--json".into()]);
    let which = if adapter.is_some() { "after" } else { "before" };
    let out = dir.join(format!("generations-{which}.jsonl"));
    let (ok, tail) = run_ft(ft, &a, p.offline, &out, &dir.join(format!("generate-{which}.stderr.log")))?;
    if !ok {
        bail!("ft generate ({which}) failed: {tail}");
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let texts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).ok().and_then(|v| v["text"].as_str().map(summary_of)).unwrap_or_default()
        })
        .collect();
    if texts.len() != prompts.len() {
        bail!("{}: {} generations for {} prompts", out.display(), texts.len(), prompts.len());
    }
    Ok(texts)
}

/// §11.
pub(super) fn section_evaluation(ft: &Path, p: &Profile, out: &Path, dir: &Path) -> Result<Outcome> {
    let started = Instant::now();
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Evaluation));
    let mut ok = true;
    let mut headline = Vec::new();

    // Classification: §4's final evaluation as a classification report.
    md.push_str("### Classification (§4's final evaluation)\n\n");
    let preds = out.join(Section::Full.dir()).join("output/eval_predictions.json");
    match read_json(&preds).ok().filter(|_| p.ran.contains(&Section::Full)).context("§4 not run") {
        Ok(v) => {
            let input = dir.join("classification.json");
            std::fs::write(&input, json!({"predictions": v["predictions"], "references": v["references"]}).to_string())
                .with_context(|| format!("writing {}", input.display()))?;
            match metric(ft, p, dir, "classification_report", &input, &["output_dict=true"]) {
                Ok(report) => {
                    let names: Vec<String> = v["label_names"]
                        .as_array()
                        .map(|a| a.iter().map(|n| n.as_str().unwrap_or("?").to_string()).collect())
                        .unwrap_or_default();
                    md.push_str(&report_table(&report, &names));
                    let _ = writeln!(
                        md,
                        "\n(`ft metrics classification_report --input {0}/classification.json --set output_dict=true`: scikit-learn's report on §4's `eval_predictions.json`.)\n",
                        Section::Evaluation.dir()
                    );
                }
                Err(e) => {
                    ok = false;
                    let _ = writeln!(md, "**failed**: {e:#}\n");
                }
            }
        }
        Err(_) => md.push_str("§4 did not run in this report (run `--sections 4,11`).\n\n"),
    }

    // NER: §9's seqeval scores.
    md.push_str("### Token classification (§9's seqeval scores)\n\n");
    match read_json(&out.join(Section::Ner.dir()).join("output/all_results.json"))
        .ok()
        .filter(|_| p.ran.contains(&Section::Ner))
        .context("§9 not run")
    {
        Ok(all) => {
            md.push_str("| metric | value |\n|---|---|\n");
            for k in ["eval_overall_precision", "eval_overall_recall", "eval_overall_f1", "eval_overall_accuracy"] {
                let _ = writeln!(md, "| {k} | {} |", all.get(k).map(fmt_number).unwrap_or_else(|| "—".into()));
            }
            md.push_str("\n(entity-level, seqeval's IOB2 defaults, computed by `ft train` at each evaluation.)\n\n");
        }
        Err(_) => md.push_str("§9 did not run in this report (run `--sections 9,11`).\n\n"),
    }

    // Generation: ROUGE and BLEU before and after LoRA.
    md.push_str("### Generation: ROUGE and BLEU of summaries, before and after LoRA\n\n");
    match generation(ft, p, dir) {
        Ok(Some((table, h))) => {
            md.push_str(&table);
            headline.push(h);
        }
        Ok(None) => md.push_str(
            "Skipped: no ACLSum folder (`aclsum/{train,val,test}.jsonl` under `--data`, or `../shared/data/aclsum` beside the repository). ACLSum is not on the Hub under the notebook's names; the experiment needs that folder.\n\n",
        ),
        Err(e) => {
            ok = false;
            let _ = writeln!(md, "**failed**: {e:#}\n");
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    Ok(Outcome {
        section: Section::Evaluation,
        ok,
        headline: if ok { headline.join("; ") } else { "failed".into() },
        runtime: "—".into(),
        wall_s,
        markdown: md,
    })
}

/// scikit-learn's report (`output_dict=True`) as a table, classes named.
fn report_table(report: &Value, names: &[String]) -> String {
    let mut md = String::from("| class | precision | recall | f1-score | support |\n|---|---|---|---|---|\n");
    let Some(map) = report.as_object() else { return format!("`{report}`\n") };
    for (k, v) in map {
        let name = k.parse::<usize>().ok().and_then(|i| names.get(i)).cloned().unwrap_or_else(|| k.clone());
        match v {
            Value::Object(_) => {
                let cell = |f: &str| v.get(f).map(fmt_number).unwrap_or_else(|| "—".into());
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {} |",
                    cell("precision"),
                    cell("recall"),
                    cell("f1-score"),
                    cell("support")
                );
            }
            other => {
                let _ = writeln!(md, "| {name} | | | {} | |", fmt_number(other));
            }
        }
    }
    md
}

/// The generation experiment; returns its Markdown and a headline (`None`: no ACLSum folder).
fn generation(ft: &Path, p: &Profile, dir: &Path) -> Result<Option<(String, String)>> {
    let Some(aclsum) = &p.aclsum else {
        return Ok(None);
    };
    let s = sizes(p);
    let train = read_pairs(&aclsum.join("train.jsonl"))?;
    let val = read_pairs(&aclsum.join("val.jsonl"))?;
    let test = read_pairs(&aclsum.join("test.jsonl"))?;
    let data = dir.join("aclsum-lm");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let text_row = |x: &Pair| json!({"text": format!("{} {}", prompt(x, s.abstract_words), x.summary)});
    write_jsonl(&data.join("train.jsonl"), train.iter().map(text_row))?;
    write_jsonl(&data.join("validation.jsonl"), val.iter().take(s.eval_pairs).map(text_row))?;
    let test: Vec<Pair> = test.into_iter().take(s.test_pairs).collect();
    let prompts: Vec<String> = test.iter().map(|x| prompt(x, s.abstract_words)).collect();
    let references: Vec<String> = test.iter().map(|x| x.summary.clone()).collect();

    // LoRA as §8 (r 8, alpha 16, dropout 0.05 on c_attn and c_proj), on the summary pairs.
    let output = dir.join("lora-output");
    if output.exists() {
        std::fs::remove_dir_all(&output).with_context(|| format!("removing the earlier run {}", output.display()))?;
    }
    let method = MethodConfig::Lora(LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.05,
        target_modules: Some(TargetModules::List(vec!["c_attn".into(), "c_proj".into()])),
        ..Default::default()
    });
    let training = TrainingArguments {
        learning_rate: 1e-3,
        per_device_train_batch_size: 8,
        per_device_eval_batch_size: 8,
        num_train_epochs: s.epochs,
        logging_steps: 10,
        eval_strategy: IntervalStrategy::Epoch,
        save_strategy: IntervalStrategy::No,
        seed: 42,
        ..Default::default()
    };
    let mut config = super::peft::run_config(p, &data, &output, method, training);
    config.data.eval_split = Some("validation".into());
    config.data.max_length = Some(s.max_length);
    let text = super::peft::run_file_text("§11: LoRA on ACLSum summaries", &config, p)?;
    let run_toml = dir.join("lora.toml");
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) = run_ft(ft, &args, p.offline, &dir.join("lora.logs.jsonl"), &dir.join("stderr.log"))?;
    if !ok {
        bail!("ft train failed: {tail}");
    }
    let results = read_json(&output.join("all_results.json"))?;

    let before = generate(ft, p, dir, None, &prompts, s.new_tokens)?;
    let after = generate(ft, p, dir, Some(&output), &prompts, s.new_tokens)?;
    let mut scores = Vec::new();
    for (which, predictions) in [("before", &before), ("after", &after)] {
        let input = dir.join(format!("summaries-{which}.json"));
        std::fs::write(&input, json!({"predictions": predictions, "references": references}).to_string())
            .with_context(|| format!("writing {}", input.display()))?;
        let rouge = metric(ft, p, dir, "rouge", &input, &[])?;
        let bleu = metric(ft, p, dir, "bleu", &input, &[])?;
        scores.push((which, rouge, bleu));
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "The profile's GPT-2 (`{}`) summarises {} ACLSum test abstracts (prompt: the abstract's first {} words, the aspect and `TL;DR:`; greedy, {} new tokens, the first line kept), first as it is, then with a LoRA adapter trained on the {} training pairs ({} epochs). References: the human summaries.\n",
        p.model_lm,
        test.len(),
        s.abstract_words,
        s.new_tokens,
        train.len(),
        s.epochs
    );
    md.push_str("| model | rouge1 | rouge2 | rougeL | rougeLsum | bleu |\n|---|---|---|---|---|---|\n");
    for (which, rouge, bleu) in &scores {
        let r = |k: &str| rouge.get(k).map(fmt_number).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            if *which == "before" { "base model" } else { "with the LoRA adapter" },
            r("rouge1"),
            r("rouge2"),
            r("rougeL"),
            r("rougeLsum"),
            bleu.get("bleu").map(fmt_number).unwrap_or_else(|| "—".into())
        );
    }
    // What the numbers rest on: empty summaries score 0, and a model that writes the same text
    // for every abstract scores only the words it shares with the references.
    let _ = writeln!(md, "\n{}\n", summary_shape(&before, &after));
    let link = Section::Evaluation.dir();
    let _ = writeln!(
        md,
        "\n(`ft metrics rouge` / `ft metrics bleu` on [`summaries-before.json`]({link}/summaries-before.json) and [`summaries-after.json`]({link}/summaries-after.json); evaluate's defaults.)\n"
    );
    let get = |k: &str| results.get(k).map(fmt_number).unwrap_or_else(|| "—".into());
    let _ = writeln!(
        md,
        "LoRA run ([`{link}/lora.toml`]({link}/lora.toml)): train_loss {}, eval_loss {}, eval_perplexity {} on {} validation pairs; §14's forgetting probe — perplexity on a generic English text {} before training, {} after.\n",
        get("train_loss"),
        get("eval_loss"),
        get("eval_perplexity"),
        s.eval_pairs.min(val.len()),
        get("generic_perplexity_before"),
        get("generic_perplexity_after"),
    );
    md.push_str("| reference | before | after |\n|---|---|---|\n");
    for i in 0..test.len().min(4) {
        let cell = |t: &str| t.replace('|', "\\|");
        let _ = writeln!(
            md,
            "| `{}` ({}): {} | {} | {} |",
            test[i].id,
            test[i].aspect,
            cell(&references[i]),
            cell(&before[i]),
            cell(&after[i])
        );
    }
    md.push('\n');
    let _ = writeln!(md, "**Loss curve** of the LoRA run:\n");
    md.push_str(&super::report::run_loss_curve(dir, "loss_curve.png", &output, link, "§11 LoRA on ACLSum")?);
    md.push('\n');
    if before == after {
        md.push_str("Every summary with the adapter is **the same as the base model's**, so the two rows of scores are equal.\n\n");
    }
    if let Some(c) = &p.lm_caveat {
        let _ = writeln!(md, "{c}\n");
    }
    let r1 = |i: usize| scores[i].1.get("rouge1").map(fmt_number).unwrap_or_else(|| "—".into());
    let headline = format!("summaries rouge1 {} → {} with LoRA", r1(0), r1(1));
    Ok(Some((md, headline)))
}

/// Tiny ACLSum-like pairs for `--profile tiny` (the numbers mean nothing).
pub fn write_tiny(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("aclsum");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let topics = ["parsing", "translation", "tagging", "summaries"];
    for (split, n) in [("train", 12usize), ("val", 4), ("test", 4)] {
        let rows = (0..n).map(|i| {
            let t = topics[i % topics.len()];
            json!({
                "id": format!("T{split}-{i}"),
                "title": format!("On {t}"),
                "aspect": "outcome",
                "abstract": format!("We study {t} and show it works well on data {i} ."),
                "document": "",
                "summary": format!("{t} works well ."),
            })
        });
        write_jsonl(&out.join(format!("{split}.jsonl")), rows)?;
    }
    Ok(out)
}
