//! The fuzz targets: each calls ft's real public parser of one kind of outside input, and what
//! ft does with the result right after (accessors, a round trip, tensors taken, an image
//! transformed). Errors are the expected answer to bad input and are returned (they steer the
//! corpus); only panics and hangs are findings.
//!
//! Path-taking readers get the input written to a scratch file named as ft would find it
//! (`model.safetensors`, `config.json`, `data.tsv`, ...).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::{Value, json};

use super::formats::{self, PART_SEPARATOR};
use super::mutate::Format;

/// One fuzz target.
pub struct Target {
    /// The name `--target` takes.
    pub name: &'static str,
    /// What it exercises (for `--list`).
    pub about: &'static str,
    /// The formats of its inputs (of each part, for multi-part inputs).
    pub formats: &'static [Format],
    /// Whether inputs are parts joined by [`PART_SEPARATOR`].
    pub parts: bool,
    /// Tokens worth inserting, besides those harvested from the seeds.
    pub dict: &'static [&'static str],
    /// The seed inputs.
    pub seeds: fn(&SeedSource) -> Vec<Seed>,
    /// Runs one input: `Err` is the parser's (expected) answer to bad input.
    pub run: fn(&[u8], &Ctx) -> Result<(), String>,
}

/// A seed input and where it came from.
pub struct Seed {
    /// The file (or generator) it came from.
    pub origin: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Where seeds are read from.
pub struct SeedSource {
    /// The repository root.
    pub root: PathBuf,
    /// `../shared/data` when present.
    pub shared: Option<PathBuf>,
    /// The longest input.
    pub max_len: usize,
}

/// The longest text seed taken from a data file (cut at a line end).
const TEXT_SEED_BYTES: usize = 64 * 1024;

impl SeedSource {
    /// Files under `dirs` (relative to the repository root; `shared/...` for the shared data)
    /// whose name satisfies `keep`, sorted, at most `limit` per directory given.
    fn files(&self, dirs: &[&str], keep: impl Fn(&str) -> bool, limit: usize) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in dirs {
            let base = match dir.strip_prefix("shared/") {
                Some(rest) => match &self.shared {
                    Some(s) => s.join(rest),
                    None => continue,
                },
                None => self.root.join(dir),
            };
            let mut found = Vec::new();
            walk(&base, &mut found);
            found.sort();
            out.extend(
                found.into_iter().filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep)).take(limit),
            );
        }
        out
    }

    /// The files' bytes as seeds: binary files up to the length bound, text files cut to
    /// [`TEXT_SEED_BYTES`] at a line end.
    fn read(&self, paths: &[PathBuf], text: bool) -> Vec<Seed> {
        let mut seeds = Vec::new();
        for p in paths {
            let Ok(mut bytes) = std::fs::read(p) else { continue };
            if text && bytes.len() > TEXT_SEED_BYTES {
                bytes.truncate(TEXT_SEED_BYTES);
                if let Some(end) = bytes.iter().rposition(|&b| b == b'\n') {
                    bytes.truncate(end + 1);
                }
            }
            if bytes.len() <= self.max_len {
                seeds.push(Seed { origin: self.relative(p), bytes });
            }
        }
        seeds
    }

    fn relative(&self, p: &Path) -> String {
        p.strip_prefix(&self.root).unwrap_or(p).display().to_string()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn generated(origin: &str, bytes: impl Into<Vec<u8>>) -> Seed {
    Seed { origin: format!("<{origin}>"), bytes: bytes.into() }
}

/// What targets share: a scratch directory for path-taking readers, the CPU device, reference
/// configurations.
pub struct Ctx {
    dir: PathBuf,
    device: Device,
    gpt2: Option<ft_models::gpt2::Gpt2Config>,
}

impl Ctx {
    /// A context writing its scratch files under `dir` (created).
    pub fn new(dir: &Path, root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let device = ft_models::device::parse_device("cpu")?;
        let gpt2 =
            match ft_models::auto::ModelConfig::from_file(&root.join("tests/fixtures/models/tiny-gpt2/config.json")) {
                Ok(ft_models::auto::ModelConfig { arch: ft_models::auto::ArchConfig::Gpt2(c), .. }) => Some(c),
                _ => None,
            };
        Ok(Self { dir: dir.to_path_buf(), device, gpt2 })
    }

    /// Writes `bytes` to the scratch file `name` and returns its path.
    fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        let p = self.dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("scratch file {}: {e}", p.display()))?;
        Ok(p)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Every target, in `--list` order.
pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "safetensors",
            about: "safetensors header + tensor table: ft-hub's NamedTensors::read_safetensors and ft-models' \
                    Checkpoint::from_files, every tensor taken",
            formats: &[Format::Safetensors],
            parts: false,
            dict: &[
                "F32",
                "F16",
                "BF16",
                "F64",
                "I64",
                "U8",
                "BOOL",
                "dtype",
                "shape",
                "data_offsets",
                "__metadata__",
                "format",
                "pt",
            ],
            seeds: safetensors_seeds,
            run: run_safetensors,
        },
        Target {
            name: "pytorch",
            about: "PyTorch torch.save files (.pth/.bin, zip + pickle, legacy): NamedTensors::read_pytorch and \
                    Checkpoint::from_pytorch, every tensor taken",
            formats: &[Format::Zip, Format::Pickle],
            parts: false,
            dict: &[
                "data.pkl",
                "archive/data/0",
                "FloatStorage",
                "HalfStorage",
                "_rebuild_tensor_v2",
                "state_dict",
                "model",
                "cpu",
            ],
            seeds: pytorch_seeds,
            run: run_pytorch,
        },
        Target {
            name: "config",
            about: "config.json of BERT, DistilBERT, GPT-2 (ModelConfig::from_file) and ResNet (ResNetConfig::from_file), \
                    generation_config.json; labels, head sizes and the image transform derived",
            formats: &[Format::Json],
            parts: false,
            dict: &[
                "model_type",
                "bert",
                "distilbert",
                "gpt2",
                "architecture",
                "resnet18",
                "resnet34",
                "hidden_size",
                "num_attention_heads",
                "num_hidden_layers",
                "vocab_size",
                "n_embd",
                "n_head",
                "n_layer",
                "n_positions",
                "id2label",
                "label2id",
                "num_labels",
                "problem_type",
                "pretrained_cfg",
                "input_size",
                "crop_pct",
                "num_classes",
                "label_names",
                "max_new_tokens",
                "max_length",
                "top_k",
                "top_p",
                "eos_token_id",
            ],
            seeds: config_seeds,
            run: run_config,
        },
        Target {
            name: "tokenizer",
            about: "tokenizer.json + tokenizer_config.json (TextTokenizer::from_files), then texts and words encoded, \
                    truncated and decoded (parts: tokenizer.json, tokenizer_config.json, max_length=N, texts)",
            formats: &[Format::Json, Format::Lines],
            parts: true,
            dict: &[
                "BPE",
                "WordPiece",
                "WordLevel",
                "Unigram",
                "ByteLevel",
                "BertPreTokenizer",
                "Split",
                "Regex",
                "pattern",
                "merges",
                "vocab",
                "added_tokens",
                "normalizer",
                "pre_tokenizer",
                "post_processor",
                "decoder",
                "[UNK]",
                "[PAD]",
                "<unk>",
                "model_max_length",
                "continuing_subword_prefix",
                "##",
                "(?=a)",
                "(a*)*b",
            ],
            seeds: tokenizer_seeds,
            run: run_tokenizer,
        },
        Target {
            name: "conll",
            about: "CoNLL / plain-text files (ft_data::source::conll, load_split on a .txt file)",
            formats: &[Format::Lines],
            parts: false,
            dict: &["-DOCSTART-", "B-PER", "I-PER", "O", "B-MISC", "NN", "NNP", "B-NP", "I-XYZ", " ", "\t"],
            seeds: conll_seeds,
            run: run_conll,
        },
        Target {
            name: "csv",
            about: "CSV / TSV files (ft_data::source::csv, load_split), with and without a header row",
            formats: &[Format::Lines],
            parts: false,
            dict: &["\"", "\"\"", ",", "\t", "label", "text", "class", "title", "description", "\r\n"],
            seeds: csv_seeds,
            run: run_csv,
        },
        Target {
            name: "jsonl",
            about: "JSON Lines and JSON-array files (ft_data::source::jsonl, load_split)",
            formats: &[Format::Lines, Format::Json],
            parts: false,
            dict: &["text", "label", "tokens", "ner_tags", "image", "null", "{", "}", "[", "]", "\\u0000", "\\ud800"],
            seeds: jsonl_seeds,
            run: run_jsonl,
        },
        Target {
            name: "parquet",
            about: "Parquet files (ft_data::source::parquet, load_split)",
            formats: &[Format::Parquet],
            parts: false,
            dict: &["PAR1", "text", "label", "tokens", "ner_tags", "image", "bytes", "path"],
            seeds: parquet_seeds,
            run: run_parquet,
        },
        Target {
            name: "image",
            about: "PNG / JPEG decoding (ft_data::vision::decode_rgb) + the evaluation transform and training \
                    augmentation",
            formats: &[Format::Png, Format::Jpeg],
            parts: false,
            dict: &["IHDR", "IDAT", "IEND", "PLTE", "tRNS", "\u{ff}\u{d8}", "\u{ff}\u{d9}"],
            seeds: image_seeds,
            run: run_image,
        },
        Target {
            name: "run-config",
            about: "run files (RunConfig::parse, as `ft train` reads them) with --set overrides (parts: the TOML \
                    file, override lines), re-serialised and the LR schedule computed",
            formats: &[Format::Toml, Format::Lines],
            parts: true,
            dict: &[
                "model",
                "data",
                "method",
                "training",
                "name",
                "task",
                "kind",
                "lora",
                "prompt",
                "prefix",
                "adapter",
                "frozen",
                "full",
                "num_labels",
                "max_length",
                "learning_rate",
                "num_train_epochs",
                "max_steps",
                "warmup_ratio",
                "warmup_steps",
                "eval_strategy",
                "steps",
                "epoch",
                "no",
                "metric_for_best_model",
                "image-classification",
                "text-classification",
                "token-classification",
                "causal-lm",
                "image_size",
                "crop_scale",
                "training.max_steps=-1",
                "method.kind=lora",
                "model.num_labels=0",
                "${HOME}",
                "~/",
            ],
            seeds: run_config_seeds,
            run: run_run_config,
        },
        Target {
            name: "recipe",
            about: "dataset recipes (Recipe::from_toml, datasets/*.toml), applied to a small dataset",
            formats: &[Format::Toml, Format::Lines],
            parts: false,
            dict: &[
                "name",
                "hub_id",
                "task",
                "derive",
                "concat",
                "from",
                "add",
                "splits",
                "subsample",
                "csv",
                "label_names",
            ],
            seeds: recipe_seeds,
            run: run_recipe,
        },
        Target {
            name: "metrics",
            about: "`ft metrics` input JSON (ft_metrics::evaluate::parse_input + compute_with): a case \
                    {metric, input, kwargs}, or a bare input run through every metric",
            formats: &[Format::Json],
            parts: false,
            dict: &[
                "predictions",
                "references",
                "average",
                "macro",
                "micro",
                "weighted",
                "binary",
                "none",
                "labels",
                "pos_label",
                "sample_weight",
                "zero_division",
                "normalize",
                "mode",
                "strict",
                "scheme",
                "IOB2",
                "BILOU",
                "rouge_types",
                "use_stemmer",
                "max_order",
                "smooth",
                "target_names",
                "digits",
                "B-PER",
                "I-PER",
            ],
            seeds: metrics_seeds,
            run: run_metrics,
        },
        Target {
            name: "adapter-config",
            about: "adapter_config.json (PEFT LoRA / prompt / prefix, AdapterHub bottleneck) and head_config.json: \
                    parsed, validated, re-serialised, target regexes matched",
            formats: &[Format::Json],
            parts: false,
            dict: &[
                "peft_type",
                "LORA",
                "PROMPT_TUNING",
                "PREFIX_TUNING",
                "r",
                "lora_alpha",
                "target_modules",
                "modules_to_save",
                "layers_to_transform",
                "rank_pattern",
                "alpha_pattern",
                "use_rslora",
                "config",
                "reduction_factor",
                "non_linearity",
                "leave_out",
                "head_type",
                "num_labels",
                "layers",
                "label2id",
                "num_virtual_tokens",
                ".*",
                "(a+)+$",
                "query|value",
            ],
            seeds: adapter_seeds,
            run: run_adapter,
        },
        Target {
            name: "serve-request",
            about: "`ft serve` /predict bodies (ft_serve::server::request::parse) for each task, image inputs decoded",
            formats: &[Format::Json],
            parts: false,
            dict: &[
                "text",
                "inputs",
                "image",
                "adapter",
                "top_k",
                "max_new_tokens",
                "do_sample",
                "temperature",
                "top_p",
                "repetition_penalty",
                "num_return_sequences",
                "seed",
                "stream",
                "return_full_text",
                "data:image/png;base64,",
            ],
            seeds: serve_seeds,
            run: run_serve,
        },
    ]
}

// ---- safetensors ----

fn safetensors_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = s.read(&s.files(&["tests/fixtures"], |n| n.ends_with(".safetensors"), 1000), false);
    let mut t = ft_hub::tensors::NamedTensors::new();
    if t.insert("w", vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, f32::MAX, f32::MIN_POSITIVE]).is_ok()
        && t.insert("b", vec![], vec![7.0]).is_ok()
        && let Ok(bytes) = t.to_safetensors_bytes()
    {
        seeds.push(generated("two f32 tensors", bytes));
    }
    for (dtype, size) in [("F16", 2), ("BF16", 2), ("F64", 8), ("I64", 8), ("U8", 1)] {
        let header = format!(
            r#"{{"__metadata__":{{"format":"pt"}},"t":{{"dtype":"{dtype}","shape":[2,2],"data_offsets":[0,{}]}}}}"#,
            4 * size
        );
        seeds.push(generated(
            &format!("{dtype} tensor"),
            formats::join_safetensors(header.as_bytes(), &vec![0x3c; 4 * size], None),
        ));
    }
    seeds
}

/// Takes every tensor of a checkpoint, as a model loading it does.
fn take_all(mut ck: ft_models::weights::Checkpoint) -> Result<(), String> {
    let names: Vec<String> = ck.names().map(String::from).take(256).collect();
    for name in &names {
        let shape = ck.shape_of(name).unwrap_or_default();
        if shape.len() == 2 {
            ck.linear_weight(name, shape[1], shape[0]).map_err(err)?;
        } else {
            let numel = shape.iter().product::<usize>();
            ck.take::<1>(name, &shape, [numel], false).map_err(err)?;
        }
    }
    // One absent, one present under the wrong shape (re-initialised or reported).
    ck.tensor::<2>("missing.weight", [2, 3], ft_models::weights::Init::Zeros).map_err(err)?;
    if let Some(first) = names.first() {
        ck.allow_reinit(first);
        ck.tensor::<1>(first, [3], ft_models::weights::Init::Ones).map_err(err)?;
    }
    let _ = ck.base_prefix("bert", "embeddings.word_embeddings.weight");
    ck.finish().map(|_| ()).map_err(err)
}

fn run_safetensors(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    let path = ctx.file("model.safetensors", input)?;
    let hub = ft_hub::tensors::NamedTensors::read_safetensors(&path);
    if let Ok(t) = &hub {
        let _ = t.num_values();
        for name in t.names() {
            let _ = t.get(name);
        }
    }
    let ck = ft_models::weights::Checkpoint::from_files(&path, std::slice::from_ref(&path), &ctx.device);
    let models = ck.map_err(err).and_then(take_all);
    hub.map_err(err).and(models)
}

// ---- PyTorch ----

fn pytorch_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = s.read(&s.files(&["tests/fixtures"], |n| n.ends_with(".bin") || n.ends_with(".pth"), 1000), false);
    let mut t = ft_hub::tensors::NamedTensors::new();
    if t.insert("layer.weight", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).is_ok()
        && t.insert("layer.bias", vec![2], vec![0.5, -0.5]).is_ok()
        && let Ok(bytes) = t.to_pytorch_bytes("archive")
    {
        seeds.push(generated("torch.save of two tensors", bytes));
    }
    seeds
}

fn run_pytorch(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    let path = ctx.file("pytorch_model.bin", input)?;
    let hub = ft_hub::tensors::NamedTensors::read_pytorch(&path);
    let ck = ft_models::weights::Checkpoint::from_pytorch(&path, &ctx.device);
    let models = ck.map_err(err).and_then(take_all);
    hub.map(|_| ()).map_err(err).and(models)
}

// ---- config.json ----

fn config_seeds(s: &SeedSource) -> Vec<Seed> {
    let keep = |n: &str| n == "config.json" || n == "generation_config.json";
    let mut seeds = s.read(&s.files(&["tests/fixtures"], keep, 1000), false);
    seeds.push(generated("minimal bert", r#"{"model_type": "bert", "num_labels": 3}"#));
    seeds.push(generated("minimal resnet", r#"{"architecture": "resnet18", "num_classes": 10}"#));
    seeds
}

fn run_config(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    let path = ctx.file("config.json", input)?;
    let mut first_err = None;
    let mut note = |r: Result<(), String>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    // BERT, DistilBERT, GPT-2.
    note(ft_models::auto::ModelConfig::from_file(&path).map_err(err).map(|mut c| {
        let _ = (c.model_type(), c.base_model_prefix());
        let labels = c.labels().clone();
        let _ = labels.label_names();
        let n = labels.num_labels();
        c.labels_mut().set_num_labels(n);
        match &c.arch {
            ft_models::auto::ArchConfig::Bert(b) => {
                let _ = (b.head_dim(), b.classifier_dropout());
            }
            ft_models::auto::ArchConfig::DistilBert(_) => {}
            ft_models::auto::ArchConfig::Gpt2(g) => {
                let _ = (g.head_dim(), g.inner_dim());
                for layer in 0..g.n_layer.min(64) {
                    let _ = g.attention_scale(layer);
                }
            }
        }
    }));
    // ResNet (timm's config.json).
    note(ft_models::resnet::ResNetConfig::from_file(&path).map_err(err).map(|mut c| {
        let _ = (c.blocks(), c.channels(), c.stem_width(), c.feature_dim(), c.label_names());
        let t = c.transform();
        if let Ok(img) = ft_hub::image::RgbImage::new(3, 2, vec![128; 18]) {
            let _ = t.apply(&img);
        }
        let n = c.num_classes;
        c.set_num_labels(n.min(1 << 20) + 1);
    }));
    // generation_config.json, resolved against the tiny GPT-2.
    note(ft_models::generation::GenerationConfig::from_file(&path).map_err(err).and_then(|g| {
        let Some(gpt2) = &ctx.gpt2 else { return Ok(()) };
        let merged = ft_models::generation::GenerationConfig::default().overridden_by(&g);
        let settings = merged.resolve(gpt2).map_err(err)?;
        for width in [0, 1, 7, 1 << 20] {
            let _ = settings.new_tokens_for(width);
        }
        Ok(())
    }));
    first_err.map_or(Ok(()), Err)
}

// ---- tokenizer.json ----

/// Texts every tokenizer input encodes (a multi-part input adds its own).
const TEXTS: &[&str] = &[
    "Hello, world! Fine-tuning BERT on AG News.",
    "Ünïcödé ǅ ﬁne — 日本語のテキスト 🤗\u{200d}\u{0}",
    "",
    "   \t\r\n  ",
    "a",
];

fn tokenizer_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut dirs = Vec::new();
    for p in s.files(&["tests/fixtures/models", "tests/fixtures/trained"], |n| n == "tokenizer.json", 100) {
        if let Some(d) = p.parent() {
            dirs.push(d.to_path_buf());
        }
    }
    for d in dirs {
        let Ok(json) = std::fs::read(d.join("tokenizer.json")) else { continue };
        let json = if json.len() > s.max_len / 2 { shrink_tokenizer(&json) } else { Some(json) };
        let Some(json) = json else { continue };
        let config = std::fs::read(d.join("tokenizer_config.json")).unwrap_or_default();
        let bytes =
            formats::join_parts(&[json, config, b"max_length=16".to_vec(), b"The quick brown fox jumps.".to_vec()]);
        seeds.push(Seed { origin: s.relative(&d), bytes });
    }
    seeds
}

/// A BPE/WordPiece tokenizer.json cut to its first 600 vocabulary entries (and the merges
/// between them), so that a large real tokenizer (GPT-2's) becomes a quick seed.
fn shrink_tokenizer(json: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(json).ok()?;
    let model = v.get_mut("model")?.as_object_mut()?;
    let vocab = model.get_mut("vocab")?.as_object_mut()?;
    vocab.retain(|_, id| id.as_u64().is_some_and(|i| i < 600));
    let kept: std::collections::BTreeSet<String> = vocab.keys().cloned().collect();
    if let Some(Value::Array(merges)) = model.get_mut("merges") {
        merges.retain(|m| {
            let (a, b) = match m {
                Value::String(s) => match s.split_once(' ') {
                    Some((a, b)) => (a.to_string(), b.to_string()),
                    None => return false,
                },
                Value::Array(p) if p.len() == 2 => {
                    (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string())
                }
                _ => return false,
            };
            kept.contains(&a) && kept.contains(&b) && kept.contains(&format!("{a}{b}"))
        });
    }
    if let Some(Value::Array(added)) = v.get_mut("added_tokens") {
        added.retain(|t| t.get("id").and_then(Value::as_u64).is_some_and(|i| i < 600));
    }
    serde_json::to_vec(&v).ok()
}

fn run_tokenizer(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    let parts = formats::split_parts(input);
    let json = ctx.file("tokenizer.json", &parts[0])?;
    let config = match parts.get(1).filter(|c| !c.is_empty()) {
        Some(c) => Some(ctx.file("tokenizer_config.json", c)?),
        None => None,
    };
    let tok = ft_data::tokenize::TextTokenizer::from_files(&json, config.as_deref()).map_err(err)?;
    // Part 3: `max_length=N` (the truncation `ft` gets from --max-length or a run file); then texts.
    let max_length = parts
        .get(2)
        .and_then(|p| std::str::from_utf8(p).ok()?.trim().strip_prefix("max_length=")?.parse::<usize>().ok())
        .unwrap_or(16);
    let own: Vec<String> = parts.iter().skip(3).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    let texts: Vec<&str> = TEXTS.iter().copied().chain(own.iter().map(String::as_str)).collect();
    let _ = (tok.vocab_size(), tok.max_token(), tok.pad_id(), tok.unk_id(), tok.model_max_length());
    let _ = (tok.id_to_token(0), tok.id_to_token(u32::MAX), tok.token_to_id("[UNK]"));
    let tok = tok.with_max_length(Some(max_length)).map_err(err)?;
    let encoded = tok.encode_batch(&texts).map_err(err)?;
    let words: Vec<Vec<String>> = texts.iter().map(|t| t.split_whitespace().map(String::from).collect()).collect();
    tok.encode_words_batch(&words).map_err(err)?;
    let refs: Vec<&[String]> = words.iter().map(Vec::as_slice).collect();
    tok.encode_words_ids_batch(&refs).map_err(err)?;
    let tok = tok.with_max_length(None).map_err(err)?;
    let ids = tok.encode_ids_batch(&texts).map_err(err)?;
    for e in &ids {
        let _ = tok.decode(&e.input_ids, true).map_err(err)?;
        let _ = tok.decode(&e.input_ids, false).map_err(err)?;
    }
    let _ = tok.decode(&[u32::MAX, 0, 1, 5], false);
    for e in encoded {
        let tokens: Vec<String> = e.input_ids.iter().filter_map(|&i| tok.id_to_token(i)).collect();
        let _ = tok.tokens_to_string(tokens);
    }
    Ok(())
}

// ---- datasets ----

/// What `ft data` and training look at in a loaded dataset: rows, features, a selection.
fn exercise(ds: &ft_data::dataset::Dataset) {
    let _ = (ds.len(), ds.column_names(), ds.features(), ds.files());
    let n = ds.len().min(64);
    for i in 0..n {
        let _ = (ds.row(i), ds.origin(i));
    }
    let _ = ds.row(ds.len());
    let _ = ds.select(&[0, ds.len().saturating_sub(1)]);
    for name in ds.column_names() {
        let _ = ds.label_names(name);
    }
}

fn load(path: &Path, skip: bool) -> Result<(), String> {
    let on_invalid = if skip { ft_data::source::OnInvalid::Skip } else { ft_data::source::OnInvalid::Error };
    let options = ft_data::source::LoadOptions { on_invalid, ..Default::default() };
    let loaded = ft_data::source::load_split(&path.to_string_lossy(), None, options).map_err(err)?;
    exercise(&loaded.dataset);
    Ok(())
}

fn conll_seeds(s: &SeedSource) -> Vec<Seed> {
    let keep = |n: &str| n.ends_with(".txt");
    let mut seeds = s.read(&s.files(&["tests/fixtures/data", "datasets", "shared/conll2003"], keep, 20), true);
    seeds.push(generated("plain text", "one line of text\nanother line\n"));
    seeds
}

fn run_conll(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    use ft_data::source::{ConllOptions, OnInvalid, conll};
    let path = ctx.file("data.txt", input)?;
    let mut skipped = Vec::new();
    let two = ConllOptions {
        columns: vec!["tokens".into(), "ner_tags".into()],
        label_names: vec![("ner_tags".into(), vec!["O".into(), "B-PER".into(), "I-PER".into()])],
    };
    let _ = conll::looks_like_conll(&String::from_utf8_lossy(input), 4);
    let a = conll::read(&path, &ConllOptions::default(), OnInvalid::Skip, &mut skipped).map(|d| exercise(&d));
    let b = conll::read(&path, &two, OnInvalid::Error, &mut skipped).map(|d| exercise(&d));
    let c = conll::read_text(&path).map(|d| exercise(&d));
    let d = load(&path, input.len().is_multiple_of(2));
    a.and(b).and(c).map_err(err).and(d)
}

fn csv_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = s.read(&s.files(&["tests/fixtures", "shared/ag_news"], |n| n.ends_with(".csv"), 20), true);
    seeds.push(generated("tsv", "text\tlabel\nhello\t1\n\"quoted\ttab\"\t0\n"));
    seeds
}

fn run_csv(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    use ft_data::source::{CsvOptions, OnInvalid, csv};
    // The extension picks the delimiter; the input's length picks the layout.
    let name = if input.first() == Some(&b'\t') || input.len().is_multiple_of(5) { "data.tsv" } else { "data.csv" };
    let path = ctx.file(name, input)?;
    let mut skipped = Vec::new();
    let headerless = CsvOptions {
        header: Some(false),
        column_names: Some(vec!["class".into(), "title".into(), "description".into()]),
        delimiter: None,
    };
    let a = csv::read(&path, &CsvOptions::default(), OnInvalid::Error, &mut skipped).map(|d| exercise(&d));
    let b = csv::read(&path, &headerless, OnInvalid::Skip, &mut skipped).map(|d| exercise(&d));
    let c = load(&path, input.len().is_multiple_of(2));
    a.and(b).map_err(err).and(c)
}

fn jsonl_seeds(s: &SeedSource) -> Vec<Seed> {
    let keep = |n: &str| n.ends_with(".jsonl");
    let mut seeds = s.read(
        &s.files(
            &["tests/fixtures/data/mini", "tests/fixtures/inputs", "shared/aclsum", "shared/chatterbot"],
            keep,
            10,
        ),
        true,
    );
    seeds.push(generated("json array", r#"[{"text": "a", "label": 0}, {"text": "b", "label": 1}]"#));
    seeds.push(generated("ner rows", "{\"tokens\": [\"EU\", \"rejects\"], \"ner_tags\": [3, 0]}\n"));
    seeds
}

fn run_jsonl(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    use ft_data::source::{OnInvalid, jsonl};
    let array = input.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let path = ctx.file(if array { "data.json" } else { "data.jsonl" }, input)?;
    let mut skipped = Vec::new();
    let a = jsonl::read(&path, OnInvalid::Error, &mut skipped).map(|d| exercise(&d));
    let b = jsonl::read(&path, OnInvalid::Skip, &mut skipped).map(|d| exercise(&d));
    let c = load(&path, true);
    a.and(b).map_err(err).and(c)
}

fn parquet_seeds(s: &SeedSource) -> Vec<Seed> {
    s.read(&s.files(&["tests/fixtures", "shared/conll2003", "shared/ag_news"], |n| n.ends_with(".parquet"), 20), false)
}

fn run_parquet(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    let path = ctx.file("data.parquet", input)?;
    let a = ft_data::source::parquet::read(&path).map(|d| exercise(&d)).map_err(err);
    let b = load(&path, false);
    a.and(b)
}

// ---- images ----

fn image_seeds(s: &SeedSource) -> Vec<Seed> {
    let keep = |n: &str| n.ends_with(".png") || n.ends_with(".jpg") || n.ends_with(".jpeg");
    let mut paths = s.files(&["tests/fixtures/images"], keep, 100);
    paths.extend(s.files(&["tests/fixtures/vision-train", "shared/fashion-mnist"], keep, 12));
    s.read(&paths, false)
}

fn run_image(input: &[u8], _ctx: &Ctx) -> Result<(), String> {
    use ft_data::augment::{Augmentation, RandomResizedCrop};
    use ft_data::vision::{ImageTransform, Interpolation};
    let _ = ft_data::vision::image_dimensions(input);
    let (image, _mode) = ft_data::vision::decode_rgb_with_mode(input, Path::new("image.png")).map_err(err)?;
    let _ = ImageTransform::imagenet().apply(&image);
    // A transform and augmentation with sizes the run file may set (1 to 4096; small here).
    let k = input.len();
    let interpolation = if k.is_multiple_of(2) { Interpolation::Bilinear } else { Interpolation::Bicubic };
    let small = ImageTransform {
        resize: 1 + k % 40,
        crop: [1 + k % 37, 1 + k % 29],
        interpolation,
        ..ImageTransform::imagenet()
    };
    let _ = small.apply(&image);
    let mut crop = RandomResizedCrop::new(1 + k % 33);
    crop.interpolation = interpolation;
    if k.is_multiple_of(3) {
        crop.scale = [1e-6, 1.0];
        crop.ratio = [0.01, 100.0];
    }
    let augment = Augmentation { crop, flip_probability: 0.5, normalize: ImageTransform::imagenet(), seed: k as u64 };
    for epoch in 0..2 {
        let _ = augment.apply(&image, epoch, 3);
    }
    Ok(())
}

// ---- run files ----

/// The ```toml blocks of Markdown files that hold a `[model]` section.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let Some(end) = body.find("```") else { break };
        if body[..end].contains("[model]") {
            out.push(body[..end].to_string());
        }
        rest = &body[end..];
    }
    out
}

fn run_config_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut files = s.files(&["benches/runs", "examples"], |n| n.ends_with(".toml"), 50);
    files.extend(s.files(&["docs"], |n| n.ends_with(".md"), 50));
    files.push(s.root.join("README.md"));
    let overrides: [&[u8]; 4] = [
        b"training.learning_rate=1e-4\nmodel.num_labels=3",
        b"method.kind=\"lora\"\ndata.max_length=64",
        b"training.num_train_epochs=0.5\ntraining.eval_strategy=\"steps\"",
        b"",
    ];
    for (name, text) in [
        (
            "image run",
            "[model]\nname = \"m\"\ntask = \"image-classification\"\n[data]\nsource = \"d\"\nimage_size = 224\n\
             resize_size = 256\naugment = true\ncrop_scale = [0.08, 1.0]\ncrop_ratio = [0.75, 1.3333]\n\
             flip_probability = 0.5\nimage_mean = [0.5, 0.5, 0.5]\nimage_std = [0.2, 0.2, 0.2]\n[method]\n\
             kind = \"frozen\"\nunfreeze = [\"layer4\"]\nbackbone_learning_rate = 1e-4\n[training]\nmax_steps = 10\n",
        ),
        (
            "prefix run",
            "[model]\nname = \"m\"\ntask = \"causal-lm\"\n[data]\nsource = \"d.jsonl\"\n[method]\nkind = \"prefix\"\n\
             num_virtual_tokens = 10\nprefix_projection = true\nencoder_hidden_size = 64\n[training]\n\
             lr_scheduler_type = \"cosine\"\nwarmup_ratio = 0.1\nsave_total_limit = 2\n",
        ),
        (
            "prompt run",
            "[model]\nname = \"m\"\ntask = \"token-classification\"\n[data]\nsource = \"conll2003\"\n\
             label_all_tokens = true\n[method]\nkind = \"prompt\"\nnum_virtual_tokens = 8\n\
             prompt_tuning_init = \"TEXT\"\nprompt_tuning_init_text = \"Label the entities\"\n[training]\n\
             eval_strategy = \"steps\"\neval_steps = 5\nearly_stopping_patience = 2\n",
        ),
    ] {
        let bytes = [text.as_bytes(), PART_SEPARATOR, b"training.seed=7"].concat();
        seeds.push(generated(name, bytes));
    }
    for (i, p) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(p) else { continue };
        let blocks = if p.extension().is_some_and(|e| e == "md") { toml_blocks(&text) } else { vec![text] };
        for (j, b) in blocks.into_iter().enumerate() {
            let set = overrides[(i + j) % overrides.len()];
            let mut bytes = b.into_bytes();
            if !set.is_empty() {
                bytes.extend_from_slice(PART_SEPARATOR);
                bytes.extend_from_slice(set);
            }
            seeds.push(Seed { origin: format!("{} #{j}", s.relative(p)), bytes });
        }
    }
    seeds
}

fn run_run_config(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    use ft_train::run_config::RunConfig;
    let parts = formats::split_parts(input);
    let text = String::from_utf8_lossy(&parts[0]);
    let overrides: Vec<String> = parts
        .iter()
        .skip(1)
        .flat_map(|p| String::from_utf8_lossy(p).lines().map(String::from).collect::<Vec<_>>())
        .collect();
    let mut config = RunConfig::parse(&text, "run.toml", &overrides).map_err(err)?;
    let _ = (config.text_column(), config.label_column(), config.image_column(), config.is_token_classification());
    let _ = (config.method.kind(), config.method.peft());
    let t = &config.training;
    let _ = (t.eval_steps(), t.best_metric_key(), t.greater_is_better());
    for total in [0usize, 1, 10, 1000, usize::MAX / 2] {
        let warmup = t.warmup(total);
        for step in [0, 1, warmup, total / 2, total] {
            let _ = ft_train::schedule::learning_rate(t.lr_scheduler_type, t.learning_rate, step, total, warmup);
        }
    }
    config.resolve_relative_to(&ctx.dir);
    // What `ft train` writes next to its outputs must read back.
    let saved = config.to_toml().map_err(err)?;
    RunConfig::parse(&saved, "run.toml (saved)", &[]).map_err(|e| format!("re-reading the saved run file: {e}"))?;
    Ok(())
}

// ---- recipes ----

fn recipe_seeds(s: &SeedSource) -> Vec<Seed> {
    s.read(&s.files(&["datasets"], |n| n.ends_with(".toml"), 20), true)
}

fn run_recipe(input: &[u8], _ctx: &Ctx) -> Result<(), String> {
    use ft_data::dataset::{Column, Dataset, Field};
    let text = std::str::from_utf8(input).map_err(err)?;
    let recipe = ft_data::recipe::Recipe::from_toml(text, "recipe.toml").map_err(err)?;
    let _ = (recipe.revision(), recipe.source_split("train"), recipe.subsample_of("train"));
    let news = Dataset::new(
        "train",
        vec![
            Field::new("class", Column::Int(vec![1, 4, i64::MAX, i64::MIN])),
            Field::new("title", Column::Str(vec!["a".into(), "b".into(), String::new(), "d".into()])),
            Field::new("description", Column::Str(vec!["x".into(), "y".into(), "z".into(), String::new()])),
            Field::new("label", Column::Int(vec![0, 1, 2, 3])),
        ],
    )
    .map_err(err)?;
    let ner = Dataset::new(
        "train",
        vec![
            Field::new("tokens", Column::StrList(vec![vec!["EU".into()], vec![]])),
            Field::new("ner_tags", Column::IntList(vec![vec![3], vec![]])),
        ],
    )
    .map_err(err)?;
    let a = recipe.apply(news).map(|d| exercise(&d));
    let b = recipe.apply(ner).map(|d| exercise(&d));
    a.and(b).map_err(err)
}

// ---- metrics ----

fn metrics_seeds(s: &SeedSource) -> Vec<Seed> {
    let mut seeds = Vec::new();
    for p in s.files(&["tests/fixtures/metrics"], |n| n.ends_with(".json"), 20) {
        let Ok(Value::Array(cases)) =
            std::fs::read(&p).map_err(err).and_then(|b| serde_json::from_slice(&b).map_err(err))
        else {
            continue;
        };
        // A spread of cases, each small.
        let step = (cases.len() / 25).max(1);
        for (i, case) in cases.iter().enumerate().step_by(step) {
            let case = json!({"metric": case["metric"], "input": case["input"], "kwargs": case["kwargs"]});
            let Ok(bytes) = serde_json::to_vec(&case) else { continue };
            if bytes.len() <= 16 * 1024 {
                seeds.push(Seed { origin: format!("{} case {i}", s.relative(&p)), bytes });
            }
        }
    }
    seeds.push(generated("bare input", r#"{"predictions": [0, 1, 1], "references": [0, 1, 0]}"#));
    seeds
}

fn run_metrics(input: &[u8], _ctx: &Ctx) -> Result<(), String> {
    use ft_metrics::evaluate::{METRICS, compute_with, parse_input};
    let text = std::str::from_utf8(input).map_err(err)?;
    let value = parse_input(text).map_err(err)?;
    let empty = serde_json::Map::new();
    match (value.get("metric"), value.get("input")) {
        (Some(Value::String(metric)), Some(data)) => {
            let kwargs = value.get("kwargs").and_then(Value::as_object).unwrap_or(&empty);
            let out = compute_with(metric, data, kwargs).map_err(err)?;
            serde_json::to_string(&out).map_err(err)?;
            Ok(())
        }
        _ => {
            let mut first = Ok(());
            for metric in METRICS {
                let result = compute_with(metric, &value, &empty).map_err(err);
                if let Err(e) = result.and_then(|v| serde_json::to_string(&v).map_err(err)) {
                    first = first.and(Err(e));
                }
            }
            first
        }
    }
}

// ---- adapter_config.json ----

fn adapter_seeds(s: &SeedSource) -> Vec<Seed> {
    let keep = |n: &str| n == "adapter_config.json" || n == "head_config.json";
    s.read(&s.files(&["tests/fixtures/peft", "tests/fixtures/adapters"], keep, 200), false)
}

fn run_adapter(input: &[u8], ctx: &Ctx) -> Result<(), String> {
    use ft_peft::config::{AdapterConfig, MethodConfig};
    let text = String::from_utf8_lossy(input);
    let path = ctx.file("adapter_config.json", input)?;
    let keys = ["bert.encoder.layer.0.attention.self.query", "transformer.h.11.attn.c_attn", "classifier", ""];
    let a = AdapterConfig::parse(&text, &path).map_err(err).and_then(|c| {
        c.validate(&path).map_err(err)?;
        let _ = (c.method.peft_type(), c.method.modules_to_save(), c.to_value());
        if let MethodConfig::Lora(l) = &c.method {
            for key in keys {
                let _ = ft_peft::target::lora_targets(l, &["query", "value"], key, true);
            }
        }
        let saved = c.to_json_string();
        AdapterConfig::parse(&saved, &path).map_err(|e| format!("re-reading the saved config: {e}"))?;
        Ok(())
    });
    let b = ft_peft::adapterhub::read_head_config(&path).map_err(err).map(|h| {
        let _ = (
            h.config.labels(),
            h.config.per_token(),
            h.config.output_bias(),
            h.config.activation(),
            h.config.validate(),
        );
    });
    a.and(b)
}

// ---- server requests ----

fn serve_seeds(s: &SeedSource) -> Vec<Seed> {
    use base64::Engine;
    let mut seeds = vec![
        generated("text", r#"{"text": "I loved this film"}"#),
        generated("inputs", r#"{"inputs": ["good", "bad"], "top_k": 2, "adapter": "a"}"#),
        generated(
            "generation",
            r#"{"text": "Once upon", "max_new_tokens": 5, "do_sample": true, "temperature": 0.7, "top_k": 50,
                "top_p": 0.9, "repetition_penalty": 1.2, "seed": 1, "num_return_sequences": 2, "return_full_text": true}"#,
        ),
        generated("stream", r#"{"text": "Once upon", "stream": true, "adapter": null}"#),
    ];
    for p in s.files(&["tests/fixtures/images"], |n| n == "small.png" || n == "gray.jpg", 10) {
        if let Ok(bytes) = std::fs::read(&p) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            seeds.push(generated("image", json!({"image": b64}).to_string()));
            seeds.push(generated(
                "image url",
                json!({"inputs": [format!("data:image/png;base64,{b64}")], "top_k": 1}).to_string(),
            ));
        }
    }
    seeds
}

fn run_serve(input: &[u8], _ctx: &Ctx) -> Result<(), String> {
    use ft_serve::server::request::{Adapters, parse};
    let body: Value = serde_json::from_slice(input).map_err(err)?;
    let Value::Object(map) = body else { return Err("the body must be a JSON object".into()) };
    let adapters = Adapters { names: vec!["a".into(), "b".into()], default: None };
    let mut first = Ok(());
    for task in ["text-classification", "token-classification", "text-generation", "image-classification"] {
        let Some(spec) = ft_serve::server::tasks::spec(task) else { continue };
        match parse(spec.as_ref(), &adapters, &map, 8) {
            Ok(p) => {
                let _ = (spec.mergeable(&p.options), spec.streams(&p.options));
            }
            Err(e) => first = first.and(Err(e)),
        }
    }
    first
}
