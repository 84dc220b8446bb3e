//! §13's heuristics, measured: every method on the same task (AG News with §4's model) — full
//! fine-tuning (§4), a frozen encoder + head (§5), a bottleneck adapter (§6), and, run here, LoRA
//! and prompt tuning — with accuracy, trainable parameters, train time, peak memory and the
//! artifact's size on disk. The table is read from the runs' own files (`all_results.json`,
//! `trainer_state.json`'s `ft_parameters`, the peak memory `run_ft` sampled, the output folder),
//! so it shows whichever of these runs the report holds; it is the report's first table.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ft_peft::config::{LoraConfig, PromptTuningConfig, PromptTuningInit, TargetModules};
use ft_train::args::{IntervalStrategy, TrainingArguments};
use ft_train::run_config::{MethodConfig, RunConfig};
use serde_json::Value;

use super::adapters::size;
use super::profile::Profile;
use super::report::{self, fmt_number, read_json};
use super::runner::{peak_memory_mib, run_ft};
use super::{Outcome, Section, run_files};

/// One method's run on the shared task, as the report folder holds it.
struct Method {
    /// The method as the table names it.
    name: &'static str,
    /// The section that runs it.
    section: Section,
    /// Where its run lives, relative to the report folder: `(run folder, output folder)`.
    run_dir: &'static str,
    output: &'static str,
    /// The files that make the method's artifact (what is stored and shipped per task).
    artifact: &'static [&'static str],
}

const METHODS: [Method; 5] = [
    Method {
        name: "§4 full fine-tuning",
        section: Section::Full,
        run_dir: "4-full-finetuning",
        output: "4-full-finetuning/output",
        artifact: &["model.safetensors", "config.json"],
    },
    Method {
        name: "§5 frozen encoder + linear head",
        section: Section::Frozen,
        run_dir: "5-frozen-encoder",
        output: "5-frozen-encoder/output",
        // The saved folder holds the encoder too (to be loadable alone); the head is what is new.
        artifact: &[],
    },
    Method {
        name: "§6 bottleneck adapter (Pfeiffer) + its head",
        section: Section::Adapters,
        run_dir: "6-adapters/agnews_adapter",
        output: "6-adapters/agnews_adapter/output",
        artifact: &["adapter.safetensors", "model_head.safetensors", "adapter_config.json", "head_config.json"],
    },
    Method {
        name: "§13 LoRA r = 8 (attention query and value) + classifier",
        section: Section::Heuristics,
        run_dir: "13-heuristics/lora",
        output: "13-heuristics/lora/output",
        artifact: &["adapter_model.safetensors", "adapter_config.json"],
    },
    Method {
        name: "§13 prompt tuning (20 virtual tokens) + classifier",
        section: Section::Heuristics,
        run_dir: "13-heuristics/prompt",
        output: "13-heuristics/prompt/output",
        artifact: &["adapter_model.safetensors", "adapter_config.json"],
    },
];

/// The §13 table of the methods whose runs are in `out` and were made by this call (`ran`: its
/// sections); `None` when none is.
pub fn table(out: &Path, ran: &[Section]) -> Option<String> {
    let mut rows = Vec::new();
    for m in METHODS.iter().filter(|m| ran.contains(&m.section)) {
        let output = out.join(m.output);
        let Ok(all) = read_json(&output.join("all_results.json")) else { continue };
        let state = read_json(&output.join("trainer_state.json")).unwrap_or(Value::Null);
        let get = |k: &str| all.get(k).map(fmt_number).unwrap_or_else(|| "—".into());
        let params = &state["ft_parameters"];
        let (trainable, total) = (params["trainable"].as_u64(), params["total"].as_u64());
        let params_cell = match (trainable, total) {
            (Some(t), Some(n)) => {
                format!(
                    "{} of {} ({:.2}%)",
                    ft_peft::thousands(t as usize),
                    ft_peft::thousands(n as usize),
                    100.0 * t as f64 / n.max(1) as f64
                )
            }
            _ => "—".into(),
        };
        let artifact = if m.artifact.is_empty() {
            // The frozen method's new part: the head's float32 weights.
            trainable.map_or("—".into(), |t| {
                format!(
                    "≈ {} (the head: 4 bytes × its parameters; the saved folder holds the encoder too)",
                    size(4 * t)
                )
            })
        } else {
            let bytes: u64 =
                m.artifact.iter().filter_map(|f| std::fs::metadata(output.join(f)).ok()).map(|md| md.len()).sum();
            size(bytes)
        };
        let peak = peak_memory_mib(&out.join(m.run_dir).join("stderr.log"))
            .map_or("—".into(), |mib| format!("{mib:.0} MiB"));
        rows.push(format!(
            "| [{}]({}) | {} | {} | {} | {} | {} | {} | {} |",
            m.name,
            m.run_dir,
            get("eval_accuracy"),
            get("eval_f1_macro"),
            params_cell,
            get("epoch"),
            get("train_runtime"),
            peak,
            artifact
        ));
    }
    if rows.is_empty() {
        return None;
    }
    let mut md = String::from(
        "| method | eval accuracy | macro-F1 | trainable parameters | epochs | train time (s) | peak memory (RSS of `ft train`) | artifact on disk |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&r);
        md.push('\n');
    }
    Some(md)
}

/// The LoRA and prompt-tuning runs: §4's model, data and evaluation, the method and its usual
/// learning rate, one epoch as §5 and §6.
fn run_config(p: &Profile, method: MethodConfig, lr: f64, output: &Path) -> RunConfig {
    let mut c = run_files::run_config(Section::Full, p, output);
    c.method = method;
    c.training = TrainingArguments {
        output_dir: output.to_path_buf(),
        learning_rate: lr,
        per_device_train_batch_size: 16,
        per_device_eval_batch_size: 32,
        num_train_epochs: 1.0,
        eval_strategy: IntervalStrategy::Epoch,
        save_strategy: IntervalStrategy::No,
        logging_steps: 50,
        seed: 42,
        ..Default::default()
    };
    c
}

/// §13: LoRA and prompt tuning on AG News, then the table of every method.
pub(super) fn section_heuristics(ft: &Path, p: &Profile, out: &Path, dir: &Path) -> Result<Outcome> {
    // The attention's query and value projections under BERT's names and DistilBERT's (PEFT has
    // a default for BERT only; a list entry that matches nothing is allowed, as in PEFT).
    let targets = ["query", "value", "q_lin", "v_lin"].map(String::from).to_vec();
    let lora = MethodConfig::Lora(LoraConfig {
        r: 8,
        lora_alpha: 16.0,
        lora_dropout: 0.1,
        target_modules: Some(TargetModules::List(targets)),
        ..Default::default()
    });
    let virtual_tokens = if p.tiny { 4 } else { 20 };
    let prompt = MethodConfig::Prompt(PromptTuningConfig {
        num_virtual_tokens: virtual_tokens,
        prompt_tuning_init: PromptTuningInit::Random,
        ..Default::default()
    });
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Heuristics));
    let mut ok = true;
    let started = Instant::now();
    let mut details = String::new();
    for (name, title, method, lr) in
        [("lora", "§13: LoRA on AG News", lora, 5e-4), ("prompt", "§13: prompt tuning on AG News", prompt, 3e-2)]
    {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let output: PathBuf = sub.join("output");
        if output.exists() {
            std::fs::remove_dir_all(&output)
                .with_context(|| format!("removing the earlier run {}", output.display()))?;
        }
        let config = run_config(p, method, lr, &output);
        let text = super::peft::run_file_text(title, &config, p)?;
        let run_toml = sub.join("run.toml");
        std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
        let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
        let (success, tail) = run_ft(ft, &args, p.offline, &sub.join("logs.jsonl"), &sub.join("stderr.log"))?;
        let link = format!("{}/{name}", Section::Heuristics.dir());
        let _ = writeln!(
            details,
            "### {title}\n\nRun file ([`{link}/run.toml`]({link}/run.toml)):\n\n```toml\n{text}```\n"
        );
        if !success {
            ok = false;
            let _ = writeln!(details, "**`ft train` failed**; the end of its stderr:\n\n```\n{tail}\n```\n");
            continue;
        }
        match report::train_section(&sub, &output, &link, title, true) {
            Ok(r) => details.push_str(&r.markdown),
            Err(e) => {
                ok = false;
                let _ = writeln!(details, "**The run's results could not be read**: {e:#}");
            }
        }
        details.push('\n');
    }
    match table(out, &p.ran) {
        Some(t) => {
            md.push_str(&t);
            md.push_str(
                "\nTrain time is `train_runtime` (the frozen method's includes its one-off feature extraction); peak memory is the largest resident set of the `ft train` process (sampled every 100 ms); the artifact is what must be stored per task: the full model, or the adapter's files (the base model is shared).\n\n",
            );
        }
        None => md.push_str("No run of the table is in this report.\n\n"),
    }
    md.push_str(&details);
    let wall_s = started.elapsed().as_secs_f64();
    Ok(Outcome {
        section: Section::Heuristics,
        ok,
        headline: if ok {
            "LoRA and prompt tuning on AG News; every method side by side".into()
        } else {
            "failed".into()
        },
        runtime: "—".into(),
        wall_s,
        markdown: md,
    })
}
