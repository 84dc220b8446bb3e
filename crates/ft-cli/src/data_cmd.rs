//! `ft data inspect|tokenize`: look at a dataset, or tokenize it as the notebook does. The logic
//! lives in `ft_data` (`source`, `align`); this is the wiring.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ft_data::align::{TokenizeOptions, Tokenized, tokenize_and_align_labels, tokenize_text_classification};
use ft_data::dataset::{Column, Dataset};
use ft_data::hub::{RepoFiles, RepoKind};
use ft_data::source::{DatasetSource, LoadOptions, OnInvalid, Skipped};
use ft_data::tokenize::TextTokenizer;
use serde_json::{Map, Value};

use crate::jsonl::AtomicWriter;

/// Arguments of `ft data`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DataCommand {
    /// Print a dataset's splits, columns, label distribution and first rows; with --model, token
    /// length percentiles.
    Inspect(InspectArgs),
    /// Tokenize a split and write {"input_ids", "attention_mask", "labels"} per row (JSONL), as
    /// transformers' tokenizer and the notebook's tokenize_and_align_labels do.
    Tokenize(TokenizeArgs),
}

/// Where the data comes from (shared by the subcommands).
#[derive(Debug, clap::Args)]
struct SourceArgs {
    /// Split to use (default: train, or the only split). With a recipe, the recipe's split name
    /// (AG News `validation` is the source's `test`).
    #[arg(long)]
    split: Option<String>,
    /// For a recipe: read this local file or directory instead of the Hub (e.g.
    /// ../shared/data/conll2003).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Hub config (subset) of a dataset with several.
    #[arg(long)]
    config: Option<String>,
    /// Skip invalid rows (and report how many) instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// A local file or directory, a recipe (ag_news, imdb, conll2003) or a Hub dataset id.
    source: String,
    #[command(flatten)]
    src: SourceArgs,
    /// A model (directory or Hub id) whose tokenizer measures token lengths.
    #[arg(long)]
    model: Option<String>,
    /// Number of rows to print.
    #[arg(long, default_value_t = 3)]
    rows: usize,
}

#[derive(Debug, clap::Args)]
struct TokenizeArgs {
    /// The model whose tokenizer.json to use (directory or Hub id).
    #[arg(long)]
    model: String,
    /// `text-classification` or `token-classification` (default: the recipe's task).
    #[arg(long)]
    task: Option<String>,
    /// A local file or directory, a recipe (ag_news, imdb, conll2003) or a Hub dataset id.
    #[arg(long)]
    source: String,
    #[command(flatten)]
    src: SourceArgs,
    /// JSONL output; written only when complete.
    #[arg(long)]
    output: PathBuf,
    /// Truncate to this many tokens, special tokens included (default: the tokenizer's
    /// model_max_length, as transformers' truncation=True).
    #[arg(long)]
    max_length: Option<usize>,
    /// Keep the first N rows (after shuffling with --seed): `.select(range(N))`.
    #[arg(long)]
    select: Option<usize>,
    /// Shuffle first, as `datasets`' `.shuffle(seed=S)`.
    #[arg(long)]
    seed: Option<u64>,
    /// Apply the recipe's notebook subsample for this split (shuffle(seed=42).select(range(n))).
    #[arg(long, conflicts_with_all = ["select", "seed"])]
    subsample: bool,
    /// The text column (text classification; default: the recipe's, else `text`).
    #[arg(long)]
    text_column: Option<String>,
    /// The pre-split words column (token classification; default: the recipe's, else `tokens`).
    #[arg(long)]
    tokens_column: Option<String>,
    /// The label column (default: the recipe's, else `label` / `ner_tags`); `none` for no labels.
    #[arg(long)]
    label_column: Option<String>,
    /// Number of classes (default: from the label column's ClassLabel names).
    #[arg(long)]
    num_labels: Option<usize>,
    /// Label every sub-token of a word, not only the first.
    #[arg(long)]
    label_all_tokens: bool,
}

/// Runs `ft data`.
pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Inspect(a) => inspect(a),
        DataCommand::Tokenize(a) => tokenize(a),
    }
}

fn open(spec: &str, src: &SourceArgs) -> Result<DatasetSource> {
    let options = LoadOptions {
        on_invalid: if src.skip_invalid { OnInvalid::Skip } else { OnInvalid::Error },
        config: src.config.clone(),
        local_data: src.data.clone(),
        ..Default::default()
    };
    if src.data.is_some() && ft_data::recipe::Recipe::built_in(spec).is_none() && !spec.ends_with(".toml") {
        bail!(
            "--data is for recipes ({}); pass the path itself as the source",
            ft_data::recipe::Recipe::built_in_names().join(", ")
        );
    }
    Ok(DatasetSource::open(spec, options)?)
}

fn report_skipped(skipped: &[Skipped]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} invalid rows", skipped.len());
    for s in skipped.iter().take(5) {
        eprintln!("  {}: {}", s.origin, s.reason);
    }
    if skipped.len() > 5 {
        eprintln!("  ... and {} more", skipped.len() - 5);
    }
}

fn load_tokenizer(model: &str) -> Result<TextTokenizer> {
    let files = RepoFiles::open(model, RepoKind::Model).with_context(|| format!("model {model}"))?;
    Ok(TextTokenizer::from_repo(&files)?)
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let source = open(&args.source, &args.src)?;
    let loaded = source.load(args.src.split.as_deref())?;
    let ds = &loaded.dataset;
    match source.recipe() {
        Some(r) => println!("dataset: {} (recipe: {}; {})", args.source, r.description, r.task),
        None => println!("dataset: {}", args.source),
    }
    println!("from: {} ({})", source.location(), source.format().name());
    println!("splits: {}", source.split_names().join(", "));
    let source_split =
        source.recipe().map(|r| r.source_split(&loaded.split).to_string()).unwrap_or(loaded.split.clone());
    let alias = if source_split != loaded.split { format!(" (source split '{source_split}')") } else { String::new() };
    println!("split: {}{alias}: {} rows", loaded.split, ds.len());
    if let Some((seed, n)) = source.recipe().and_then(|r| r.subsample_of(&loaded.split)) {
        println!("notebook subsample: shuffle(seed={seed}).select(range({n}))");
    }
    println!("columns:");
    let width = ds.column_names().iter().map(|n| n.len()).max().unwrap_or(0);
    for f in ds.fields() {
        let names = f.feature.class_names().map(|n| format!(": {}", n.join(", "))).unwrap_or_default();
        println!("  {:width$}  {}{names}", f.name, f.feature.describe());
    }
    for f in ds.fields().iter().filter(|f| f.feature.class_names().is_some()) {
        println!("label distribution ({}):", f.name);
        let counts = ds.value_counts(&f.name)?;
        let total: usize = counts.iter().map(|(_, c)| c).sum();
        let w = counts.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, count) in counts {
            println!("  {name:w$}  {count:>8}  {:5.1}%", 100.0 * count as f64 / total.max(1) as f64);
        }
    }
    report_skipped(&loaded.skipped);
    println!("first rows:");
    for i in 0..args.rows.min(ds.len()) {
        let row = ds.row(i).unwrap_or_default();
        let mut line = serde_json::to_string(&Value::Object(row))?;
        if line.chars().count() > 300 {
            line = line.chars().take(300).collect::<String>() + " ...";
        }
        println!("  {line}");
    }
    if let Some(model) = &args.model {
        let tok = load_tokenizer(model)?;
        let lengths = token_lengths(ds, &tok, source.recipe())?;
        print_lengths(model, &tok, lengths);
    }
    Ok(())
}

/// Token counts (special tokens included, no truncation) of the text or word column.
fn token_lengths(
    ds: &Dataset,
    tok: &TextTokenizer,
    recipe: Option<&ft_data::recipe::Recipe>,
) -> Result<(String, Vec<usize>)> {
    let text_col = recipe.and_then(|r| r.text_column.clone().or(r.tokens_column.clone())).or_else(|| {
        ds.fields()
            .iter()
            .find(|f| matches!(f.column, Column::Str(_)) && f.name != "id")
            .or_else(|| ds.fields().iter().find(|f| matches!(f.column, Column::StrList(_))))
            .map(|f| f.name.clone())
    });
    let Some(col) = text_col else { bail!("no text or word-list column to measure") };
    let tok = tok.clone().with_max_length(None)?;
    let lengths = match ds.column(&col)? {
        Column::Str(v) => {
            let refs: Vec<&str> = v.iter().map(String::as_str).collect();
            tok.encode_ids_batch(&refs)?.iter().map(|e| e.input_ids.len()).collect()
        }
        Column::StrList(v) => {
            let refs: Vec<&[String]> = v.iter().map(Vec::as_slice).collect();
            tok.encode_words_ids_batch(&refs)?.iter().map(|e| e.input_ids.len()).collect()
        }
        other => bail!("column '{col}' is {}, expected text or a word list", other.type_name()),
    };
    Ok((col, lengths))
}

fn print_lengths(model: &str, tok: &TextTokenizer, (col, mut lengths): (String, Vec<usize>)) {
    if lengths.is_empty() {
        return;
    }
    lengths.sort_unstable();
    // numpy.percentile's default (linear interpolation), rounded.
    let pct = |p: f64| {
        let pos = p / 100.0 * (lengths.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        lengths[lo] as f64 + (lengths[hi] as f64 - lengths[lo] as f64) * (pos - lo as f64)
    };
    println!("token lengths of '{col}' with {model} (special tokens included, not truncated):");
    println!(
        "  min {}  p50 {:.0}  p90 {:.0}  p95 {:.0}  p99 {:.0}  max {}  mean {:.1}",
        lengths[0],
        pct(50.0),
        pct(90.0),
        pct(95.0),
        pct(99.0),
        lengths[lengths.len() - 1],
        lengths.iter().sum::<usize>() as f64 / lengths.len() as f64
    );
    if let Some(m) = tok.model_max_length() {
        let over = lengths.iter().filter(|&&l| l > m).count();
        println!("  {over} rows longer than model_max_length {m} (truncated by truncation=True)");
    }
}

fn tokenize(args: &TokenizeArgs) -> Result<()> {
    let source = open(&args.source, &args.src)?;
    let recipe = source.recipe().cloned();
    let task = match (&args.task, &recipe) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => r.task.clone(),
        (None, None) => bail!("--task is needed (text-classification or token-classification)"),
    };
    let mut out = AtomicWriter::create(&args.output)?;
    let loaded = source.load(args.src.split.as_deref())?;
    let mut ds = loaded.dataset;
    if args.subsample {
        let Some((seed, n)) = recipe.as_ref().and_then(|r| r.subsample_of(&loaded.split)) else {
            bail!("--subsample: {} has no notebook subsample for split '{}'", args.source, loaded.split);
        };
        ds = ds.shuffle(seed).take(n);
    } else {
        if let Some(seed) = args.seed {
            ds = ds.shuffle(seed);
        }
        if let Some(n) = args.select {
            ds = ds.take(n);
        }
    }
    let tok = load_tokenizer(&args.model)?;
    let options = TokenizeOptions {
        max_length: args.max_length,
        num_labels: args.num_labels,
        label_all_tokens: args.label_all_tokens,
        on_invalid: if args.src.skip_invalid { OnInvalid::Skip } else { OnInvalid::Error },
        ..Default::default()
    };
    let label_column = |default: &str| -> Option<String> {
        match args.label_column.as_deref() {
            Some("none") => None,
            Some(c) => Some(c.to_string()),
            None => Some(recipe.as_ref().map(|r| r.label_column.clone()).unwrap_or_else(|| default.to_string())),
        }
    };
    let task: ft_models::auto::Task = task.parse().map_err(|e| anyhow::anyhow!("--task: {e}"))?;
    let tokenized: Tokenized = match task {
        ft_models::auto::Task::SequenceClassification => {
            let text = args
                .text_column
                .clone()
                .or(recipe.as_ref().and_then(|r| r.text_column.clone()))
                .unwrap_or("text".into());
            let label = label_column("label").filter(|c| args.label_column.is_some() || ds.has_column(c));
            tokenize_text_classification(&ds, &tok, &text, label.as_deref(), &options)?
        }
        ft_models::auto::Task::TokenClassification => {
            let words = args
                .tokens_column
                .clone()
                .or(recipe.as_ref().and_then(|r| r.tokens_column.clone()))
                .unwrap_or("tokens".into());
            let Some(tags) = label_column("ner_tags") else { bail!("token classification needs a label column") };
            tokenize_and_align_labels(&ds, &tok, &words, &tags, &options)?
        }
        other => bail!("--task {other}: ft data tokenize prepares text-classification or token-classification rows"),
    };
    let mut skipped = loaded.skipped;
    skipped.extend(tokenized.skipped);
    let enc = &tokenized.dataset;
    let ids = enc.column("input_ids")?;
    let mask = enc.column("attention_mask")?;
    let labels = enc.column("labels").ok();
    for i in 0..enc.len() {
        let mut row = Map::new();
        row.insert("input_ids".into(), ids.value(i));
        row.insert("attention_mask".into(), mask.value(i));
        if let Some(l) = labels {
            row.insert("labels".into(), l.value(i));
        }
        out.write_json(&Value::Object(row))?;
    }
    out.commit()?;
    report_skipped(&skipped);
    eprintln!("wrote {} rows to {}", enc.len(), args.output.display());
    Ok(())
}
