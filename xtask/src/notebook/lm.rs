//! The local profile's GPT-2. No registry ships GPT-2's weights, so `--profile local` pre-trains
//! a small GPT-2 itself — `ft train` from a run file, `model.random_init = true`, causal LM — on
//! the local English corpora (AG News, IMDB reviews, the chatterbot answers, ACLSum's training
//! documents). Its tokenizer is GPT-2's kind — byte-level BPE with `<|endoftext|>` — trained on
//! the same corpus with a vocabulary of [`VOCAB`] (like transformers'
//! `tokenizer.train_new_from_iterator`, with merges seen at least twice): with GPT-2's own 50,257
//! tokens the output projection is 96% of every step on 2 CPU cores and a few minutes of training
//! do not get past token frequencies.
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

/// The model's shape: 4 layers of width 128, 4 heads, 256 positions (1.0 M parameters in the
/// tied 8,192-token embedding, 0.8 M in the layers); [`STEPS`] steps take about six minutes on
/// 2 CPU cores.
const CONFIG: (usize, usize, usize, usize) = (4, 128, 4, 256);

/// Rows taken from each corpus for training (and held out for evaluation).
const TAKE: [(&str, usize); 4] = [("AG News", 6000), ("IMDB", 5000), ("chatterbot", 2200), ("ACLSum", 100)];
/// Optimizer steps of the pre-training (one epoch of [`BLOCKS`] blocks in batches of [`BATCH`]).
const STEPS: usize = 1300;
const BATCH: usize = 8;
/// Training blocks: the shuffled texts, each followed by `<|endoftext|>` (GPT-2's separator),
/// concatenated and cut into rows of [`MAX_LENGTH`] tokens, as transformers' `run_clm.py` groups
/// texts — no step is spent on padding, and a step sees texts from several corpora. (With
/// pad = eos, `DataCollatorForLanguageModeling` — and ft's causal-LM collator — give the
/// separators no loss, so the model does not learn to end a text.)
const BLOCKS: usize = STEPS * BATCH;
const EVAL_ROWS: usize = 200;
/// Tokens per training row (longer texts are cut).
const MAX_LENGTH: usize = 128;
/// Bumped when the recipe changes in a way the constants do not show — what [`corpus`] reads, how
/// [`train_tokenizer`] trains or [`pack`] packs (it is part of the cache key).
const RECIPE_VERSION: u32 = 3;

/// The tokenizer's vocabulary: byte-level BPE merges learnt on the training corpus, with
/// `<|endoftext|>` (GPT-2's bos/eos/pad) as one more token.
pub const VOCAB: usize = 8192;
/// GPT-2's end-of-text token.
const EOS: &str = "<|endoftext|>";

/// Trains GPT-2's kind of tokenizer on `texts` and writes it to `dir/tokenizer.json` (with
/// `tokenizer_config.json` as GPT-2's); returns it as written and `<|endoftext|>`'s id.
///
/// The pipeline is GPT-2's: no normalizer, byte-level pre-tokenizer (GPT-2's regex, no prefix
/// space), byte-level post-processor and decoder, BPE over the 256 byte symbols.
fn train_tokenizer(texts: &[String], dir: &Path) -> Result<(tokenizers::Tokenizer, u32)> {
    use tokenizers::decoders::byte_level::ByteLevel;
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::normalizers::NormalizerWrapper;
    use tokenizers::{AddedToken, TokenizerBuilder};
    let mut tokenizer = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(ByteLevel::new(true, false, true)))
        .with_decoder(Some(ByteLevel::default()))
        .build()
        .map_err(|e| anyhow::anyhow!("building the tokenizer: {e}"))?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(VOCAB)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from(EOS, true)])
        .build();
    tokenizer.train(&mut trainer, texts.iter()).map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
    let file = dir.join("tokenizer.json");
    tokenizer.save(&file, false).map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    let config = json!({
        "add_prefix_space": false, "bos_token": EOS, "eos_token": EOS, "unk_token": EOS, "pad_token": null,
        "errors": "replace", "model_max_length": CONFIG.3, "tokenizer_class": "GPT2Tokenizer",
    });
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("writing tokenizer_config.json in {}", dir.display()))?;
    let eos = tokenizer.token_to_id(EOS).with_context(|| format!("the trained tokenizer has no {EOS}"))?;
    // Read back: the file is what `ft train` will use.
    let written =
        tokenizers::Tokenizer::from_file(&file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    Ok((written, eos))
}

/// The token ids of each text (no special tokens added), across threads.
fn encode_all(tokenizer: &tokenizers::Tokenizer, texts: &[String]) -> Result<Vec<Vec<u32>>> {
    let batch: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encodings = tokenizer.encode_batch(batch, false).map_err(|e| anyhow::anyhow!("tokenizing the corpus: {e}"))?;
    Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
}

/// Held-out perplexity of a unigram model of the training texts' tokens (add-one smoothing):
/// what a model that learnt only token frequencies reaches. Rows are cut to `max_length` tokens
/// and each row's first token is not predicted, as in `ft train`'s causal-LM evaluation; the mean
/// is over all held-out tokens (ft's `eval_loss` averages per batch of rows, which weighs the
/// short texts a little more — a baseline, not an exact twin).
fn unigram_perplexity(vocab: usize, train: &[Vec<u32>], eval: &[Vec<u32>], max_length: usize) -> Result<f64> {
    let mut counts = vec![1.0f64; vocab];
    for row in train {
        for &id in row.iter().take(max_length) {
            counts[id as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let (mut nll, mut n) = (0.0f64, 0usize);
    for row in eval {
        for &id in row.iter().take(max_length).skip(1) {
            nll -= (counts[id as usize] / total).ln();
            n += 1;
        }
    }
    if n == 0 {
        bail!("no held-out text to measure the unigram baseline on");
    }
    Ok((nll / n as f64).exp())
}

/// The training texts (`texts`: their token ids) as [`BLOCKS`] rows of [`MAX_LENGTH`] tokens
/// (fewer when the texts run out): shuffled (seeded), each followed by `<|endoftext|>`, concatenated, cut, and each block
/// decoded back to text (which `ft train` tokenizes into nearly the same tokens: a block that
/// starts inside a word or a multi-byte character can come back a token or two longer, and is
/// cut by `max_length`). Returns the blocks and the tokens they hold.
fn pack(texts: &[Vec<u32>], tokenizer: &tokenizers::Tokenizer, eos: u32) -> Result<(Vec<String>, usize)> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    // Fisher–Yates with xorshift64 (seeded: the same corpus gives the same blocks).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let want = BLOCKS * MAX_LENGTH;
    let mut stream: Vec<u32> = Vec::with_capacity(want + MAX_LENGTH);
    for &i in &order {
        if stream.len() >= want {
            break;
        }
        stream.extend_from_slice(&texts[i]);
        stream.push(eos);
    }
    let blocks = stream
        .chunks_exact(MAX_LENGTH)
        .take(BLOCKS)
        .map(|ids| tokenizer.decode(ids, false).map_err(|e| anyhow::anyhow!("decoding a block: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let tokens = blocks.len() * MAX_LENGTH;
    Ok((blocks, tokens))
}

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
    /// A unigram model's perplexity on the same held-out tokens (the word-frequency baseline).
    pub unigram_perplexity: Option<f64>,
}

/// A model counts as knowing some English when its held-out perplexity is below this share of
/// the unigram baseline's: token frequencies alone give the baseline, and the first few minutes
/// of training from random initialisation reach little more.
const WEAK_SHARE: f64 = 0.5;

impl LocalLm {
    fn from_stamp(model: PathBuf, describe: String, stamp: &Value) -> Self {
        let get = |k: &str| stamp.get(k).and_then(Value::as_f64);
        LocalLm {
            model,
            describe,
            eval_perplexity: get("eval_perplexity"),
            unigram_perplexity: get("unigram_perplexity"),
        }
    }

    /// The report's note for the sections that generate with this model: a warning when it is
    /// too weak for its generations to show anything (or when its strength was not measured),
    /// else what a model this small can and cannot show.
    pub fn caveat(&self) -> Option<String> {
        let ppl = self.eval_perplexity?;
        let weak = self.unigram_perplexity.is_none_or(|u| ppl > WEAK_SHARE * u);
        if let (false, Some(u)) = (weak, self.unigram_perplexity) {
            let (layers, width, _, _) = CONFIG;
            return Some(format!(
                "**About these generations**: the local profile's GPT-2 is a small model ({layers} layers, width {width}) that ft pre-trained for a few minutes — held-out perplexity {ppl:.0}, against {u:.0} for token frequencies alone. It writes English-like phrases, often off-topic and repeated under greedy decoding: before/after shows what a method changes, not instruction-following or summarisation quality. The hub profile's `gpt2` is the model these sections are written for."
            ));
        }
        let judgement = match self.unigram_perplexity {
            Some(u) => format!(
                " (token frequencies alone: {u:.0}) — after its few minutes of pre-training it predicts frequent tokens more than English, so greedy decoding tends to repeat them (\"the the the …\")"
            ),
            None => " and no baseline to judge it by (its cache predates the unigram measurement)".to_string(),
        };
        Some(format!(
            "**Read the generations with care**: the local profile's GPT-2 has a held-out perplexity of {ppl:.0}{judgement}. Generations before and after a method, and ROUGE/BLEU computed on them, cannot show what the method changed here; they are reported as measured. The losses and perplexities are the meaningful numbers. The hub profile's `gpt2` is the model these sections are written for."
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
             [model]\nname = \"{init}\"  # config.json ({layers} layers, width {width}, {positions} positions) + a byte-level BPE tokenizer trained on the corpus\n\
             task = \"causal-lm\"\nrandom_init = true\n\n[data]\nsource = \"{corpus}\"\ntrain_split = \"train\"\n\
             eval_split = \"validation\"\ntext_column = \"text\"\nmax_length = {MAX_LENGTH}\n\n[method]\nkind = \"full\"\n\n\
             [training]\noutput_dir = \"{out}\"\nlearning_rate = 2e-3\nper_device_train_batch_size = {BATCH}\n\
             per_device_eval_batch_size = 32\nnum_train_epochs = 1\nwarmup_ratio = 0.05\nweight_decay = 0.01\n\
             eval_strategy = \"epoch\"\nsave_strategy = \"no\"\nlogging_steps = 50\nseed = 42\n",
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
    let key = format!(
        "{}|{}|{TAKE:?}|{EVAL_ROWS}|{VOCAB}|{BLOCKS}|{MAX_LENGTH}|{CONFIG:?}|{RECIPE_VERSION}|{version}",
        run_text(Path::new("/")),
        path_str(data)
    );
    let dir = cache_root().join(format!("gpt2-local-{:016x}", fnv1a(key.as_bytes())));
    let output = dir.join("output");
    let text = run_text(&dir);
    let stamp = dir.join("done.json");
    if output.join("model.safetensors").is_file() && stamp.is_file() {
        let s: Value = serde_json::from_str(&std::fs::read_to_string(&stamp).unwrap_or_default()).unwrap_or_default();
        eprintln!("== the local profile's GPT-2: cached in {}", dir.display());
        return Ok(LocalLm::from_stamp(output, describe(&dir, &s, true), &s));
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
    let (train, eval) = corpus(data)?;
    let (tokenizer, eos) = train_tokenizer(&train, &dir.join("init"))?;
    // The trained size: at most VOCAB, fewer when the corpus has fewer merges to learn.
    let vocab = tokenizer.get_vocab_size(true);
    for (k, v) in [("vocab_size", vocab), ("bos_token_id", eos as usize), ("eos_token_id", eos as usize)] {
        config[k] = json!(v);
    }
    std::fs::write(dir.join("init/config.json"), serde_json::to_vec_pretty(&config)?).context("writing config.json")?;
    let train_ids = encode_all(&tokenizer, &train)?;
    let unigram = unigram_perplexity(vocab, &train_ids, &encode_all(&tokenizer, &eval)?, MAX_LENGTH)?;
    let (blocks, tokens) = pack(&train_ids, &tokenizer, eos)?;
    if blocks.is_empty() {
        bail!("{}: the texts hold fewer than {MAX_LENGTH} tokens, not one training block", data.display());
    }
    std::fs::create_dir_all(dir.join("corpus"))?;
    for (file, rows) in [("train.jsonl", &blocks), ("validation.jsonl", &eval)] {
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
        "vocab_size": vocab,
        "train_texts": train.len(),
        "train_blocks": blocks.len(),
        "train_tokens": tokens,
        "eval_perplexity": results["eval_perplexity"],
        "train_loss": results["train_loss"],
        "generic_perplexity_after": results["generic_perplexity_after"],
        "unigram_perplexity": unigram,
    });
    std::fs::write(&stamp, serde_json::to_vec_pretty(&s)?).context("writing the cache stamp")?;
    Ok(LocalLm::from_stamp(output, describe(&dir, &s, false), &s))
}

fn describe(dir: &Path, s: &Value, cached: bool) -> String {
    let (layers, width, _, positions) = CONFIG;
    let n = |k: &str| s.get(k).and_then(Value::as_f64).map_or("?".into(), |x| format!("{x:.1}"));
    format!(
        "a small GPT-2 ({layers} layers, width {width}, {positions} positions; GPT-2's kind of byte-level BPE tokenizer with {} tokens, trained on the same texts) pre-trained by ft from random initialisation for one epoch of {} tokens ({} blocks of {MAX_LENGTH}) of local English texts (AG News, IMDB, chatterbot, ACLSum train) in {} s{}: held-out perplexity {} (a unigram model of the same tokens: {}), {} on §14's generic probe text (run file `{}`)",
        s.get("vocab_size").and_then(Value::as_u64).unwrap_or(VOCAB as u64),
        s.get("train_tokens").and_then(Value::as_u64).unwrap_or(0),
        s.get("train_blocks").and_then(Value::as_u64).unwrap_or(0),
        n("wall_s"),
        if cached { ", reused from the cache" } else { "" },
        n("eval_perplexity"),
        n("unigram_perplexity"),
        n("generic_perplexity_after"),
        dir.join("run.toml").display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let words = ["the market", "rose", "on Monday", "shares of", "the company", "said", "this film", "was great"];
        (0..400).map(|i| format!("{} {} {}.", words[i % 8], words[(i / 8) % 8], words[(i * 7) % 8])).collect()
    }

    /// GPT-2's kind of tokenizer, trained: `<|endoftext|>` is one token (the id returned), text
    /// round-trips through encode/decode, and frequent words became single tokens.
    #[test]
    fn trained_tokenizer_round_trips_and_knows_its_eos() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, eos) = train_tokenizer(&corpus(), dir.path()).unwrap();
        let text = "the company said<|endoftext|>Zürich rose 3%";
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids.iter().filter(|&&i| i == eos).count(), 1, "{ids:?}");
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(tok.encode(" company", false).unwrap().get_ids().len(), 1);
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(config["eos_token"], EOS);
    }

    /// Blocks hold MAX_LENGTH tokens each, texts separated by `<|endoftext|>`, every text once.
    #[test]
    fn packing_cuts_the_shuffled_stream_into_full_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let texts = corpus();
        let (tok, eos) = train_tokenizer(&texts, dir.path()).unwrap();
        let (blocks, tokens) = pack(&encode_all(&tok, &texts).unwrap(), &tok, eos).unwrap();
        let total: usize = texts.iter().map(|t| tok.encode(t.as_str(), false).unwrap().len() + 1).sum();
        assert_eq!(blocks.len(), total / MAX_LENGTH, "the corpus is smaller than BLOCKS: every full block");
        assert_eq!(tokens, blocks.len() * MAX_LENGTH);
        for b in &blocks {
            let n = tok.encode(b.as_str(), false).unwrap().len();
            assert!((MAX_LENGTH - 2..=MAX_LENGTH + 2).contains(&n), "{n}: {b}");
        }
        let joined = blocks.concat();
        assert!(joined.matches(EOS).count() >= blocks.len() * MAX_LENGTH / 8 - 1);
        // Shuffled: the blocks do not start with the corpus's first texts in order.
        assert!(!joined.starts_with(&format!("{}{EOS}{}", texts[0], texts[1])));
    }

    /// The unigram baseline is below the uniform one (the vocabulary's size) and above 1.
    #[test]
    fn unigram_perplexity_is_between_one_and_uniform() {
        let dir = tempfile::tempdir().unwrap();
        let texts = corpus();
        let (tok, _) = train_tokenizer(&texts, dir.path()).unwrap();
        let ids = encode_all(&tok, &texts).unwrap();
        let p = unigram_perplexity(tok.get_vocab_size(true), &ids[..300], &ids[300..], MAX_LENGTH).unwrap();
        assert!(p > 1.0 && p < tok.get_vocab_size(true) as f64 / 4.0, "{p}");
    }

    /// The warning appears when the model has not halved the unigram perplexity, or when the
    /// baseline is unknown; otherwise the milder note.
    #[test]
    fn caveat_compares_with_the_unigram_baseline() {
        let lm = |eval: f64, unigram: Option<f64>| LocalLm {
            model: PathBuf::new(),
            describe: String::new(),
            eval_perplexity: Some(eval),
            unigram_perplexity: unigram,
        };
        assert!(lm(1400.0, Some(1425.0)).caveat().unwrap().contains("(token frequencies alone: 1425)"));
        let mild = lm(472.0, Some(1425.0)).caveat().unwrap();
        assert!(mild.starts_with("**About these generations**") && mild.contains("472, against 1425"), "{mild}");
        assert!(lm(2123.0, None).caveat().is_some());
    }
}
