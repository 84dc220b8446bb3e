//! §7 prompt tuning and §8 LoRA on GPT-2, with exercise 5 (LoRA r = 16 beside r = 8): the
//! notebook's PEFT configs as `ft train` run files (`[method] kind = "prompt" | "lora"`), the
//! trainable-parameter line (`ft info --adapter`), the training loss, and generations before and
//! after (`ft generate`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ft_models::auto::Task;
use ft_peft::config::{LoraConfig, PromptTuningConfig, PromptTuningInit, TargetModules};
use ft_train::args::{IntervalStrategy, TrainingArguments};
use ft_train::run_config::{DataSection, MethodConfig, ModelSection, RunConfig};

use super::profile::Profile;
use super::runner::run_ft;
use super::{Outcome, Section};

/// §8's toy instruction texts, verbatim.
const TOY: [&str; 3] = [
    "Instruction: Summarize the benefit of automatic savings.\nAnswer: It helps users build funds effortlessly over time.",
    "Instruction: Explain KYC in one line.\nAnswer: KYC is the identity verification required by financial institutions.",
    "Instruction: Write a friendly reminder about overdraft fees.\nAnswer: Remember to maintain your balance to avoid overdraft fees.",
];

/// §7's generation prompt.
const PROMPT_7: &str = "Write a one-sentence product description for a fintech savings app:";
/// §8's generation prompt.
const PROMPT_8: &str = "Instruction: Write a friendly one-line savings tip.\nAnswer:";

/// Sizes that fit the profile's model: GPT-2 has 1,024 positions, the tiny fixture 32.
struct Sizes {
    max_length: usize,
    virtual_tokens: usize,
    new_tokens: usize,
}

fn sizes(p: &Profile) -> Sizes {
    if p.tiny {
        Sizes { max_length: 16, virtual_tokens: 4, new_tokens: 6 }
    } else {
        Sizes { max_length: 128, virtual_tokens: 20, new_tokens: 40 }
    }
}

pub(super) fn run_config(
    p: &Profile,
    data: &Path,
    output_dir: &Path,
    method: MethodConfig,
    training: TrainingArguments,
) -> RunConfig {
    RunConfig {
        model: ModelSection { name: p.model_lm.clone(), task: Task::CausalLm, num_labels: None, random_init: false },
        data: DataSection {
            source: super::profile::path_str(data),
            local_data: None,
            config: None,
            train_split: "train".into(),
            eval_split: None,
            train_select: None,
            eval_skip: 0,
            eval_select: None,
            shuffle_seed: None,
            text_column: Some("text".into()),
            label_column: None,
            max_length: Some(sizes(p).max_length),
            label_all_tokens: false,
            skip_invalid: false,
            image_column: None,
            image_size: None,
            resize_size: None,
            augment: None,
            crop_scale: None,
            crop_ratio: None,
            flip_probability: None,
            image_mean: None,
            image_std: None,
        },
        method,
        training: TrainingArguments { output_dir: output_dir.to_path_buf(), ..training },
    }
}

/// The run file's text, with the transformers defaults left out and a header.
pub(super) fn run_file_text(title: &str, config: &RunConfig, p: &Profile) -> Result<String> {
    let mut value = toml::Value::try_from(config).context("serializing a run file")?;
    let defaults = toml::Value::try_from(TrainingArguments::default()).context("serializing the defaults")?;
    if let (Some(toml::Value::Table(t)), toml::Value::Table(d)) = (value.get_mut("training"), &defaults) {
        t.retain(|k, v| k == "output_dir" || d.get(k) != Some(v));
    }
    // PEFT's keys left at PEFT's defaults are left out too (as the notebook's calls do).
    if let Some(toml::Value::Table(m)) = value.get_mut("method") {
        m.retain(|k, v| {
            let key = k.to_string();
            !matches!(
                (key.as_str(), &*v),
                ("exclude_modules" | "modules_to_save" | "tokenizer_name_or_path" | "prompt_tuning_init_text", _)
                    | ("fan_in_fan_out" | "use_rslora", toml::Value::Boolean(false))
                    | ("bias", toml::Value::String(_))
                    | ("init_lora_weights", toml::Value::Boolean(true))
            ) && !matches!(v, toml::Value::Table(t) if t.is_empty())
        });
    }
    let text = toml::to_string(&value).context("serializing a run file")?;
    Ok(format!(
        "# {title} — written by `cargo xtask reproduce-notebook`{}.\n# Run it again with: ft train --config <this file>\n\n{text}",
        if p.tiny { " --profile tiny" } else { "" }
    ))
}

/// One `ft train` + `ft info --adapter` + `ft generate` before/after.
struct Run {
    ok: bool,
    tail: String,
    trainable: String,
    train_loss: Option<f64>,
    /// §14's forgetting probe: perplexity on generic text before and after training.
    forgetting: Option<(f64, f64)>,
    before: String,
    after: String,
    text: String,
    wall_s: f64,
}

fn train_and_generate(
    ft: &Path,
    p: &Profile,
    dir: &Path,
    name: &str,
    title: &str,
    config: &RunConfig,
    prompt: &str,
) -> Result<Run> {
    let out = &config.training.output_dir;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing the earlier run {}", out.display()))?;
    }
    let text = run_file_text(title, config, p)?;
    let run_toml = dir.join(format!("{name}.toml"));
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) =
        run_ft(ft, &args, p.offline, &dir.join(format!("{name}.logs.jsonl")), &dir.join(format!("{name}.stderr.log")))?;
    let wall_s = started.elapsed().as_secs_f64();
    let mut run = Run {
        ok,
        tail,
        trainable: String::new(),
        train_loss: None,
        forgetting: None,
        before: String::new(),
        after: String::new(),
        text,
        wall_s,
    };
    if !ok {
        return Ok(run);
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train_results.json")).unwrap_or_default())
            .unwrap_or_default();
    run.train_loss = results.get("train_loss").and_then(serde_json::Value::as_f64);
    run.forgetting = results
        .get("generic_perplexity_before")
        .and_then(serde_json::Value::as_f64)
        .zip(results.get("generic_perplexity_after").and_then(serde_json::Value::as_f64));
    let info_out = dir.join(format!("{name}.info.txt"));
    let (info_ok, info_tail) = run_ft(
        ft,
        &["info".into(), "--adapter".into(), out.clone().into_os_string()],
        p.offline,
        &info_out,
        &dir.join(format!("{name}.info.stderr.log")),
    )?;
    run.trainable = if info_ok {
        std::fs::read_to_string(&info_out)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("trainable params:"))
            .unwrap_or("")
            .to_string()
    } else {
        format!("ft info failed: {info_tail}")
    };
    let n = sizes(p).new_tokens.to_string();
    for (adapter, slot) in [(false, &mut run.before), (true, &mut run.after)] {
        let mut a: Vec<OsString> = vec!["generate".into()];
        if adapter {
            a.extend(["--adapter".into(), out.clone().into_os_string()]);
        } else {
            a.extend(["--model".into(), p.model_lm.clone().into()]);
        }
        a.extend(["--prompt".into(), prompt.into(), "--max-new-tokens".into(), n.clone().into()]);
        let file = dir.join(format!("{name}.generate-{}.txt", if adapter { "after" } else { "before" }));
        let (g_ok, g_tail) = run_ft(ft, &a, p.offline, &file, &dir.join(format!("{name}.generate.stderr.log")))?;
        *slot = if g_ok {
            let raw = std::fs::read_to_string(&file).unwrap_or_default();
            let text = raw.trim().to_string();
            if text == prompt.trim() {
                let why = if raw.trim_end().len() < raw.len().saturating_sub(1) {
                    "the model wrote only whitespace (line breaks)"
                } else {
                    "the model ended the sequence at once"
                };
                format!("{text} *(no new text: {why})*")
            } else {
                text
            }
        } else {
            format!("(failed: {g_tail})")
        };
        run.ok &= g_ok;
    }
    run.ok &= info_ok;
    Ok(run)
}

/// `before → after (×ratio)` of the forgetting probe.
fn forgetting_cell(f: Option<(f64, f64)>) -> String {
    match f {
        Some((b, a)) => format!("{b:.1} → {a:.1} (×{:.2})", a / b),
        None => "—".into(),
    }
}

fn toy_data(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("toy.jsonl");
    let body: String = TOY.iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect();
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// PEFT's line without its `||` (which a Markdown table would split): "2,816 / 814,032 trainable (0.3459%)".
fn short(line: &str) -> String {
    let parts: Vec<&str> = line.split("||").map(|p| p.rsplit(':').next().unwrap_or("").trim()).collect();
    match parts.as_slice() {
        [t, a, pct] => format!("{t} / {a} params trainable ({pct}%)"),
        _ => line.to_string(),
    }
}

fn quote(text: &str) -> String {
    text.lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n")
}

/// §7: prompt tuning, 20 virtual tokens (4 on the tiny model), before/after generation.
pub(super) fn section_prompt(ft: &Path, p: &Profile, dir: &Path) -> Result<Outcome> {
    let data = toy_data(dir)?;
    let s = sizes(p);
    let method = MethodConfig::Prompt(PromptTuningConfig {
        num_virtual_tokens: s.virtual_tokens,
        prompt_tuning_init: PromptTuningInit::Random,
        ..Default::default()
    });
    let training = TrainingArguments {
        learning_rate: 3e-2,
        per_device_train_batch_size: 1,
        num_train_epochs: 10.0,
        logging_steps: 5,
        eval_strategy: IntervalStrategy::No,
        save_strategy: IntervalStrategy::No,
        seed: 42,
        ..Default::default()
    };
    let config = run_config(p, &data, &dir.join("output"), method, training);
    let run = train_and_generate(ft, p, dir, "prompt", Section::Prompt.title(), &config, PROMPT_7)?;
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Prompt));
    let _ = writeln!(
        md,
        "Run file ([`{0}/prompt.toml`]({0}/prompt.toml)):\n\n```toml\n{1}```\n",
        Section::Prompt.dir(),
        run.text
    );
    if !run.ok {
        let _ = writeln!(md, "**failed**; the end of its stderr:\n\n```\n{}\n```", run.tail);
    }
    let _ = writeln!(md, "`print_trainable_parameters()` (`ft info --adapter`): `{}`\n", run.trainable);
    let _ = writeln!(md, "train_loss: {}\n", run.train_loss.map_or("—".into(), |l| format!("{l:.4}")));
    let _ = writeln!(
        md,
        "§14's forgetting probe (perplexity on a held-out generic English text): {}\n",
        forgetting_cell(run.forgetting)
    );
    if run.ok {
        let link = Section::Prompt.dir();
        let _ = writeln!(md, "**Loss curve** of the prompt-tuning run:\n");
        md.push_str(&super::report::run_loss_curve(
            dir,
            "loss_curve.png",
            &config.training.output_dir,
            link,
            "§7 prompt tuning",
        )?);
        let lm_state = Path::new(&p.model_lm).join("trainer_state.json");
        if !p.tiny && lm_state.is_file() {
            let _ = writeln!(
                md,
                "\n**Loss curve** of the base model's own pre-training (the local profile's GPT-2, trained by ft):\n"
            );
            md.push_str(&super::report::run_loss_curve(
                dir,
                "base_pretraining_loss_curve.png",
                Path::new(&p.model_lm),
                link,
                "the local GPT-2's pre-training",
            )?);
        }
        md.push('\n');
    }
    let _ =
        writeln!(md, "Generation, {} new tokens, greedy — the base model:\n\n{}\n", s.new_tokens, quote(&run.before));
    let _ = writeln!(md, "With the trained soft prompt:\n\n{}\n", quote(&run.after));
    if run.ok && run.before == run.after {
        md.push_str("The generation with the soft prompt is **the same as the base model's**: the trained prompt did not change greedy decoding on this prompt.\n\n");
    }
    if let Some(c) = &p.lm_caveat {
        let _ = writeln!(md, "{c}\n");
    }
    Ok(Outcome {
        section: Section::Prompt,
        ok: run.ok,
        headline: if run.ok { short(&run.trainable) } else { "failed".into() },
        runtime: format!("{:.1}", run.wall_s),
        wall_s: run.wall_s,
        markdown: md,
    })
}

/// §8 and exercise 5: LoRA r = 8 (the notebook's) and r = 16 on `c_attn`, `c_proj`.
pub(super) fn section_lora(ft: &Path, p: &Profile, dir: &Path) -> Result<Outcome> {
    let data = toy_data(dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "{}\n", super::notes(Section::Lora));
    md.push_str("| run | r | trainable params (PEFT's line) | train_loss | generic-text perplexity before → after (§14) | generation after training |\n|---|---|---|---|---|---|\n");
    let mut ok = true;
    let mut wall = 0.0;
    let mut headline = String::new();
    let mut before = String::new();
    let mut files = String::new();
    let mut details = String::new();
    let mut all_unchanged = true;
    for (name, r, label) in [("lora-r8", 8usize, "§8"), ("lora-r16", 16, "exercise 5")] {
        let method = MethodConfig::Lora(LoraConfig {
            r,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: Some(TargetModules::List(vec!["c_attn".into(), "c_proj".into()])),
            ..Default::default()
        });
        let training = TrainingArguments {
            learning_rate: 5e-4,
            per_device_train_batch_size: 1,
            gradient_accumulation_steps: 8,
            num_train_epochs: 1.0,
            logging_steps: 5,
            eval_strategy: IntervalStrategy::No,
            save_strategy: IntervalStrategy::No,
            ..Default::default()
        };
        let config = run_config(p, &data, &dir.join(format!("output-{name}")), method, training);
        let run = train_and_generate(ft, p, dir, name, Section::Lora.title(), &config, PROMPT_8)?;
        ok &= run.ok;
        wall += run.wall_s;
        if r == 8 {
            headline = short(&run.trainable);
            before = run.before.clone();
        }
        all_unchanged &= run.ok && run.after == run.before;
        let _ = writeln!(
            md,
            "| {label} | {r} | `{}` | {} | {} | {} |",
            run.trainable.replace('|', "\\|"),
            run.train_loss.map_or("—".into(), |l| format!("{l:.4}")),
            forgetting_cell(run.forgetting),
            run.after.replace('\n', " ⏎ ").replace('|', "\\|")
        );
        let _ = writeln!(files, "- {label}: [`{0}/{name}.toml`]({0}/{name}.toml)", Section::Lora.dir());
        if !run.ok {
            let _ = writeln!(files, "  **failed**: `{}`", run.tail.replace('\n', " "));
        }
        let _ = writeln!(details, "\n#### The r = {r} run file\n\n```toml\n{}```\n", run.text);
    }
    md.push_str(&details);
    let _ = writeln!(
        md,
        "\nThree texts at batch 1 with gradient accumulation 8 make one optimizer step (the notebook's settings): the step's loss is measured before it, while LoRA's B is still zero, so both ranks report the base model's loss; {} The base model on the same prompt: {}\n",
        if all_unchanged {
            "after the one step, greedy generation is **the same as the base model's** for every rank — one step of LoRA at this learning rate does not change it."
        } else {
            "the generations show what the one step changed."
        },
        before.replace('\n', " ⏎ ")
    );
    if let Some(c) = &p.lm_caveat {
        let _ = writeln!(md, "{c}\n");
    }
    let _ = writeln!(md, "Run files:\n\n{files}");
    Ok(Outcome { section: Section::Lora, ok, headline, runtime: format!("{wall:.1}"), wall_s: wall, markdown: md })
}
