//! The local profile's GPT-2. No registry ships GPT-2's weights, so `--profile local` pre-trains
//! a small GPT-2 itself — `ft train` from a run file, `model.random_init = true`, causal LM — on
//! the local English corpora (AG News, IMDB reviews, the chatterbot answers, ACLSum's training
//! documents), with GPT-2's own tokenizer (the one bundled with `tests/fixtures/models/tiny-gpt2`).
//! §7/§8's adapters and §11's summaries then start from a model that knows some English.
//!
//! The result is cached (`$FT_NOTEBOOK_CACHE`, default `~/.cache/ft-notebook`) under a hash of
//! its run file, and reused while the run file (corpus, size, settings) stays the same.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ft_data::source::{DatasetSource, LoadOptions};
use serde_json::{Value, json};

use super::profile::path_str;
use super::runner::run_ft;

/// The model's shape: 4 layers of width 128, 4 heads, 256 positions (6.4 M parameters in the
/// tied embedding, 0.8 M in the layers). On 2 CPU cores the 50,257-token output projection is
/// most of the time; this size trains on ~240 k tokens in about five minutes.
const CONFIG: (usize, usize, usize, usize) = (4, 128, 4, 256);

/// Rows taken from each corpus for training (and held out for evaluation).
const TAKE: [(&str, usize); 4] = [("AG News", 1500), ("IMDB", 800), ("chatterbot", 1200), ("ACLSum", 100)];
const EVAL_ROWS: usize = 200;
/// Bumped when [`corpus`] changes what it reads (it is part of the cache key).
const CORPUS_VERSION: u32 = 2;

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What [`pretrained`] gives.
pub struct LocalLm {
    /// The trained model's folder (`ft train`'s output).
    pub model: PathBuf,
    /// One sentence for the report.
    pub describe: String,
    /// Its perplexity on the held-out texts.
    pub eval_perplexity: Option<f64>,
}

/// Held-out perplexity above which greedy generations of the local GPT-2 are word-frequency
/// noise (a unigram model of GPT-2's tokens on this corpus is in the low thousands).
const WEAK_PERPLEXITY: f64 = 300.0;

impl LocalLm {
    /// The report's warning for the sections that generate with this model, when it is too weak
    /// for their generations to show anything.
    pub fn caveat(&self) -> Option<String> {
        let ppl = self.eval_perplexity.filter(|p| *p > WEAK_PERPLEXITY)?;
        Some(format!(
            "**Read the generations with care**: the local profile's GPT-2 has a held-out perplexity of {ppl:.0} — after its few minutes of pre-training it predicts frequent tokens, not English, so greedy decoding repeats them (\"the the the …\"). Generations before and after a method, and ROUGE/BLEU computed on them, cannot show what the method changed here; they are reported as measured. The losses and perplexities are the meaningful numbers. The hub profile's `gpt2` is the model these sections are written for."
        ))
    }
}

fn cache_root() -> PathBuf {
    std::env::var_os("FT_NOTEBOOK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::super::home().join(".cache/ft-notebook"))
}

fn texts(file: &Path, column: &str, split: Option<&str>) -> Result<Vec<String>> {
    let source = DatasetSource::open(&path_str(file), LoadOptions::default())
        .with_context(|| format!("opening {}", file.display()))?;
    let ds = source.load(split).with_context(|| format!("reading {}", file.display()))?.dataset;
    (0..ds.len())
        .map(|i| Ok(ds.row_view(i).context("row")?.str(column)?.to_string()))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{}: column '{column}'", file.display()))
}

/// The corpus as `(train, eval)` text rows.
fn corpus(data: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let ag = texts(&data.join("ag_news/test.parquet"), "text", None)?;
    let imdb = texts(&data.join("imdb/train.parquet"), "text", None)?;
    let chat = {
        let file = data.join("chatterbot/pairs.jsonl");
        let body = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        body.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| Some(format!("{} {}", v["prompt"].as_str()?, v["response"].as_str()?)))
            .collect::<Vec<_>>()
    };
    let acl = {
        let mut seen = std::collections::HashSet::new();
        let file = data.join("aclsum/train.jsonl");
        let body = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        body.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            // Three aspects per paper share one document: each document once.
            .filter(|v| seen.insert(v["id"].as_str().unwrap_or_default().to_string()))
            .filter_map(|v| {
                v["document"].as_str().map(|d| d.split_whitespace().take(200).collect::<Vec<_>>().join(" "))
            })
            .collect::<Vec<_>>()
    };
    let mut train = Vec::new();
    let mut eval = Vec::new();
    for ((_, n), rows) in TAKE.iter().zip([ag, imdb, chat, acl]) {
        train.extend(rows.iter().take(*n).cloned());
        // Held out: the rows after the training ones (IMDB's and AG News').
        eval.extend(rows.iter().skip(*n).take(EVAL_ROWS / 2).cloned());
    }
    if train.is_empty() {
        bail!("{}: no text to pre-train GPT-2 on", data.display());
    }
    Ok((train, eval.into_iter().take(EVAL_ROWS).collect()))
}

/// The pre-trained small GPT-2 (trained now, or the cached one).
pub fn pretrained(ft: &Path, data: &Path, root: &Path) -> Result<LocalLm> {
    let (layers, width, heads, positions) = CONFIG;
    let run_text = |dir: &Path| {
        format!(
            "# The local profile's GPT-2, pre-trained by ft from random initialisation — written by `cargo xtask \
             reproduce-notebook --profile local`.\n# Run it again with: ft train --config <this file>\n\n\
             [model]\nname = \"{init}\"  # config.json ({layers} layers, width {width}, {positions} positions) + GPT-2's tokenizer\n\
             task = \"causal-lm\"\nrandom_init = true\n\n[data]\nsource = \"{corpus}\"\ntrain_split = \"train\"\n\
             eval_split = \"validation\"\ntext_column = \"text\"\nmax_length = 128\n\n[method]\nkind = \"full\"\n\n\
             [training]\noutput_dir = \"{out}\"\nlearning_rate = 2e-3\nper_device_train_batch_size = 16\n\
             per_device_eval_batch_size = 32\nnum_train_epochs = 1\nwarmup_ratio = 0.05\nweight_decay = 0.01\n\
             eval_strategy = \"epoch\"\nsave_strategy = \"no\"\nlogging_steps = 25\ngroup_by_length = true\nseed = 42\n",
            init = path_str(&dir.join("init")),
            corpus = path_str(&dir.join("corpus")),
            out = path_str(&dir.join("output")),
        )
    };
    // The cache key: the run file, the data folder, the corpus recipe and ft's version (FNV-1a:
    // stable across Rust releases, unlike std's hasher).
    let version = std::process::Command::new(ft)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let key =
        format!("{}|{}|{TAKE:?}|{EVAL_ROWS}|{CORPUS_VERSION}|{version}", run_text(Path::new("/")), path_str(data));
    let dir = cache_root().join(format!("gpt2-local-{:016x}", fnv1a(key.as_bytes())));
    let output = dir.join("output");
    let text = run_text(&dir);
    let stamp = dir.join("done.json");
    if output.join("model.safetensors").is_file() && stamp.is_file() {
        let s: Value = serde_json::from_str(&std::fs::read_to_string(&stamp).unwrap_or_default()).unwrap_or_default();
        eprintln!("== the local profile's GPT-2: cached in {}", dir.display());
        let eval_perplexity = s.get("eval_perplexity").and_then(Value::as_f64);
        return Ok(LocalLm { model: output, describe: describe(&dir, &s, true), eval_perplexity });
    }
    eprintln!(
        "== the local profile's GPT-2: pre-training it from random initialisation (cached afterwards in {})",
        dir.display()
    );
    std::fs::create_dir_all(dir.join("init")).with_context(|| format!("creating {}", dir.display()))?;
    let fixture = root.join("tests/fixtures/models/tiny-gpt2");
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("config.json")).context("reading the GPT-2 fixture's config.json")?,
    )?;
    for (k, v) in [("n_layer", layers), ("n_embd", width), ("n_head", heads), ("n_positions", positions)] {
        config[k] = json!(v);
    }
    config["dtype"] = json!("float32");
    std::fs::write(dir.join("init/config.json"), serde_json::to_vec_pretty(&config)?).context("writing config.json")?;
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), dir.join("init").join(f)).with_context(|| format!("copying {f}"))?;
    }
    let (train, eval) = corpus(data)?;
    std::fs::create_dir_all(dir.join("corpus"))?;
    for (file, rows) in [("train.jsonl", &train), ("validation.jsonl", &eval)] {
        let body: String = rows.iter().map(|t| json!({ "text": t }).to_string() + "\n").collect();
        std::fs::write(dir.join("corpus").join(file), body).with_context(|| format!("writing {file}"))?;
    }
    let run_toml = dir.join("run.toml");
    std::fs::write(&run_toml, &text).with_context(|| format!("writing {}", run_toml.display()))?;
    let started = Instant::now();
    let args: Vec<OsString> = vec!["train".into(), "--config".into(), run_toml.into_os_string()];
    let (ok, tail) = run_ft(ft, &args, true, &dir.join("logs.jsonl"), &dir.join("stderr.log"))?;
    if !ok {
        bail!("pre-training the local GPT-2 failed ({}): {tail}", dir.join("stderr.log").display());
    }
    let results: Value = serde_json::from_str(&std::fs::read_to_string(output.join("all_results.json"))?)?;
    let s = json!({
        "wall_s": started.elapsed().as_secs_f64(),
        "train_rows": train.len(),
        "eval_perplexity": results["eval_perplexity"],
        "train_loss": results["train_loss"],
        "generic_perplexity_after": results["generic_perplexity_after"],
    });
    std::fs::write(&stamp, serde_json::to_vec_pretty(&s)?).context("writing the cache stamp")?;
    let eval_perplexity = s.get("eval_perplexity").and_then(Value::as_f64);
    Ok(LocalLm { model: output, describe: describe(&dir, &s, false), eval_perplexity })
}

fn describe(dir: &Path, s: &Value, cached: bool) -> String {
    let (layers, width, _, positions) = CONFIG;
    let n = |k: &str| s.get(k).and_then(Value::as_f64).map_or("?".into(), |x| format!("{x:.1}"));
    format!(
        "a small GPT-2 ({layers} layers, width {width}, {positions} positions, GPT-2's tokenizer) pre-trained by ft from random initialisation on {} local English texts (AG News, IMDB, chatterbot, ACLSum train) in {} s{}: held-out perplexity {}, {} on §14's generic probe text (run file `{}`)",
        s.get("train_rows").and_then(Value::as_u64).unwrap_or(0),
        n("wall_s"),
        if cached { ", reused from the cache" } else { "" },
        n("eval_perplexity"),
        n("generic_perplexity_after"),
        dir.join("run.toml").display()
    )
}
