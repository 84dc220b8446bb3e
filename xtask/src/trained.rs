//! `cargo xtask fixtures trained`: models written by `ft train` and read back by transformers.
//!
//! Trains the tiny fixture checkpoints for a few steps with the release `ft` binary (a sequence
//! classifier on generated text, a token classifier on 64 CoNLL-2003 sentences of
//! `../shared/data`), then `xtask/python/check_from_pretrained.py` loads each output with
//! transformers' `from_pretrained` (failing on any missing or unexpected weight), copies the
//! model files to `tests/fixtures/trained/NAME/` and writes transformers' logits beside them,
//! which `tests/train.rs` compares with `ft predict`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Builds ft, trains both tiny models, and runs the Python check with `python`.
pub fn fixtures_trained(root: &Path, python: &Path, run: impl Fn(&mut Command) -> Result<()>) -> Result<()> {
    let ft = crate::notebook::build_ft()?;
    let work = std::env::temp_dir().join("ft-fixtures-trained");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(work.join("news"))?;
    let rows: Vec<String> = (0..48)
        .map(|i| {
            let text = if i % 2 == 0 { "bank rates market shares profit" } else { "team match cup season coach" };
            serde_json::json!({"text": format!("{text} {i}"), "label": i % 2}).to_string()
        })
        .collect();
    write(&work.join("news/train.jsonl"), &(rows.join("\n") + "\n"))?;
    write(&work.join("news/validation.jsonl"), &(rows[..16].join("\n") + "\n"))?;
    let shared = std::env::var_os("FT_SHARED").map(PathBuf::from).unwrap_or_else(|| root.join("../shared"));
    let runs = [
        (
            "bert-seqcls",
            "text-classification",
            format!(
                "[model]\nname = \"{m}\"\ntask = \"text-classification\"\nnum_labels = 2\n\n[data]\nsource = \"{d}\"\n\n\
                 [training]\noutput_dir = \"{o}\"\nlearning_rate = 1e-3\nper_device_train_batch_size = 8\nmax_steps = 6\nsave_strategy = \"no\"\nseed = 1\n",
                m = root.join("tests/fixtures/models/tiny-bert-seqcls").display(),
                d = work.join("news").display(),
                o = work.join("out-bert-seqcls").display(),
            ),
        ),
        (
            "distilbert-tokcls",
            "token-classification",
            format!(
                "[model]\nname = \"{m}\"\ntask = \"token-classification\"\n\n[data]\nsource = \"{d}\"\ntrain_split = \"train\"\ntrain_select = 64\neval_select = 16\nshuffle_seed = 42\n\n\
                 [training]\noutput_dir = \"{o}\"\nlearning_rate = 1e-3\nper_device_train_batch_size = 8\nmax_steps = 6\nsave_strategy = \"no\"\nseed = 1\n",
                m = root.join("tests/fixtures/models/tiny-distilbert-tokcls").display(),
                d = shared.join("data/conll2003").display(),
                o = work.join("out-distilbert-tokcls").display(),
            ),
        ),
    ];
    let mut specs = Vec::new();
    for (name, task, toml) in &runs {
        let file = work.join(format!("{name}.toml"));
        write(&file, toml)?;
        run(Command::new(&ft).arg("train").arg("--config").arg(&file).env("HF_HUB_OFFLINE", "1"))?;
        specs.push(format!("{name}={}:{task}", work.join(format!("out-{name}")).display()));
    }
    run(Command::new(python)
        .arg(root.join("xtask/python/check_from_pretrained.py"))
        .arg("--out")
        .arg(root.join("tests/fixtures/trained"))
        .args(&specs))
}
