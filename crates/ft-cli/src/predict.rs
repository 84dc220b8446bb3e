//! `ft predict`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_serve::ServeError;
use ft_serve::pipeline::{
    AggregationStrategy, PipelineOptions, TextClassificationPipeline, TokenClassificationPipeline,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::jsonl::{AtomicWriter, read_field};

/// Arguments of `ft predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`).
    #[arg(long)]
    model: String,
    /// `text-classification` or `token-classification`.
    #[arg(long)]
    task: String,
    /// JSONL input, one `{"text": "..."}` per line.
    #[arg(long)]
    input: PathBuf,
    /// JSONL output, one prediction per input line, in order. Written only when complete.
    #[arg(long)]
    output: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Truncate inputs to this many tokens (special tokens included); default: the model's
    /// `max_position_embeddings`.
    #[arg(long)]
    max_length: Option<usize>,
    /// Entity grouping for token classification: `simple` or `none`.
    #[arg(long, default_value = "simple")]
    aggregation_strategy: String,
    /// Device to run on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

/// Inputs per progress step: large enough to batch well, small enough to show progress.
const CHUNK: usize = 256;

/// Names the input line of a pipeline error (pipelines index inputs within the chunk given).
fn at_line(input: &std::path::Path, chunk: usize, e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Input { index, message } => {
            anyhow::anyhow!("{}:{}: {message}", input.display(), chunk * CHUNK + index + 1)
        }
        other => other.into(),
    }
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let task = match args.task.as_str() {
        "text-classification" | "sentiment-analysis" => Task::SequenceClassification,
        "token-classification" | "ner" => Task::TokenClassification,
        other => bail!("unknown task '{other}' (expected text-classification or token-classification)"),
    };
    let strategy: AggregationStrategy = args.aggregation_strategy.parse()?;
    let device = parse_device(&args.device)?;
    let mut out = AtomicWriter::create(&args.output)?;
    let texts = read_field(&args.input, "text")?;
    let options = PipelineOptions { batch_size: args.batch_size, max_length: args.max_length };
    let loaded = load(&args.model, task, &LoadOptions::default(), &device).context("loading model")?;
    if !loaded.report.newly_initialized.is_empty() {
        eprintln!(
            "warning: {} has no trained weights for {:?}: its predictions are random",
            args.model, loaded.report.newly_initialized
        );
    }
    let bar = ProgressBar::new(texts.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} texts [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    match task {
        Task::SequenceClassification => {
            let pipe = TextClassificationPipeline::new(loaded.into_sequence_classifier()?, &options, &device)?;
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for r in pipe.predict(&refs).map_err(|e| at_line(&args.input, c, e))? {
                    out.write_json(&r)?;
                }
                bar.inc(chunk.len() as u64);
            }
        }
        Task::TokenClassification => {
            let pipe = TokenClassificationPipeline::new(loaded.into_token_classifier()?, &options, strategy, &device)?;
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for r in pipe.predict(&refs).map_err(|e| at_line(&args.input, c, e))? {
                    out.write_json(&r)?;
                }
                bar.inc(chunk.len() as u64);
            }
        }
        Task::FeatureExtraction => bail!("feature extraction is not a task of ft predict yet"),
    }
    bar.finish_and_clear();
    out.commit()?;
    tracing::info!(n = texts.len(), output = %args.output.display(), "predictions written");
    Ok(())
}
