//! `ft predict`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ft_models::auto::{LoadOptions, Task, infer_task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_serve::ServeError;
use ft_serve::pipeline::{
    AggregationStrategy, ImageClassificationPipeline, PipelineOptions, TextClassificationPipeline,
    TextGenerationPipeline, TokenClassificationPipeline, resolve_image_path,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::adapters::{AdapterArgs, with_adapters};
use crate::jsonl::{AtomicWriter, read_field};

/// Arguments of `ft predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`); default with `--adapter`:
    /// the adapter's base model.
    #[arg(long)]
    model: Option<String>,
    /// `text-classification` (`sentiment-analysis`), `token-classification` (`ner`),
    /// `image-classification` or `causal-lm` (next-token logits); default: the task the model's
    /// `config.json` was saved for.
    #[arg(long)]
    task: Option<String>,
    /// JSONL input, one `{"text": "..."}` per line (`{"image": "path"}` for
    /// image-classification; relative paths are resolved against this file's directory).
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
    #[command(flatten)]
    adapter: AdapterArgs,
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
    let specs = args.adapter.specs()?;
    let model = args.adapter.base_model(args.model.as_deref(), &specs)?;
    let task = match &args.task {
        Some(t) => t.parse::<Task>()?,
        None => match AdapterArgs::task(&specs)? {
            Some(t) => t,
            None => infer_task(&model)?,
        },
    };
    if task == Task::ImageClassification {
        if !specs.is_empty() {
            bail!("--adapter: PEFT adapters apply to text models");
        }
        return run_image_classification(args, &model);
    }
    let strategy: AggregationStrategy = args.aggregation_strategy.parse()?;
    let device = parse_device(&args.device)?;
    let mut out = AtomicWriter::create(&args.output)?;
    let texts = read_field(&args.input, "text")?;
    let options = PipelineOptions { batch_size: args.batch_size, max_length: args.max_length, ..Default::default() };
    // A head the checkpoint lacks is reported by the loader (a warning naming the tensors).
    let load_options = LoadOptions {
        num_labels: crate::adapters::head_labels(&specs)?,
        own_head_unused: crate::adapters::brings_head(&specs),
        ..Default::default()
    };
    let loaded = load(&model, task, &load_options, &device).context("loading model")?;
    let bar = ProgressBar::new(texts.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} texts [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    match task {
        Task::SequenceClassification => {
            let loaded = with_adapters(&args.adapter, loaded.into_sequence_classifier()?, &specs)?;
            let pipe = TextClassificationPipeline::with_adapters(loaded, &options, &device)?;
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for r in pipe.predict(&refs).map_err(|e| at_line(&args.input, c, e))? {
                    out.write_json(&r)?;
                }
                bar.inc(chunk.len() as u64);
            }
        }
        Task::TokenClassification => {
            let loaded = with_adapters(&args.adapter, loaded.into_token_classifier()?, &specs)?;
            let pipe = TokenClassificationPipeline::with_adapters(loaded, &options, strategy, &device)?;
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for r in pipe.predict(&refs).map_err(|e| at_line(&args.input, c, e))? {
                    out.write_json(&r)?;
                }
                bar.inc(chunk.len() as u64);
            }
        }
        Task::CausalLm => {
            // {"input_ids", "next_token_logits"} per text: logits over the whole vocabulary at the
            // last position, texts truncated to the first n_positions (or --max-length) tokens.
            let loaded = with_adapters(&args.adapter, loaded.into_causal_lm()?, &specs)?;
            let pipe = TextGenerationPipeline::with_adapters(loaded, &options, &device)?;
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for r in pipe.next_token_logits(&refs).map_err(|e| at_line(&args.input, c, e))? {
                    out.write_json(&r)?;
                }
                bar.inc(chunk.len() as u64);
            }
        }
        Task::FeatureExtraction | Task::ImageClassification => bail!("{task} is not a task of ft predict for text models"),
    }
    bar.finish_and_clear();
    out.commit()?;
    tracing::info!(n = texts.len(), output = %args.output.display(), "predictions written");
    Ok(())
}

/// `--task image-classification`: a ResNet (timm layout or a torchvision `.pth`), input lines
/// `{"image": "path"}` with relative paths resolved against the input file's directory, output
/// lines `{"label", "score", "logits"}`.
fn run_image_classification(args: &PredictArgs, model: &str) -> Result<()> {
    let device = parse_device(&args.device)?;
    let mut out = AtomicWriter::create(&args.output)?;
    let images = read_field(&args.input, "image")?;
    let paths: Vec<PathBuf> = images.iter().map(|p| resolve_image_path(&args.input, p)).collect();
    let options = PipelineOptions { batch_size: args.batch_size, max_length: args.max_length, ..Default::default() };
    // A head the checkpoint lacks is reported by the loader (a warning naming the tensors).
    let loaded = ft_models::resnet::load(model, &LoadOptions::default(), &device).context("loading model")?;
    let pipe = ImageClassificationPipeline::new(loaded, &options, &device)?;
    let bar = ProgressBar::new(paths.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (c, chunk) in paths.chunks(CHUNK).enumerate() {
        for r in pipe.predict_paths(chunk).map_err(|e| at_line(&args.input, c, e))? {
            out.write_json(&r)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out.commit()?;
    tracing::info!(n = paths.len(), output = %args.output.display(), "predictions written");
    Ok(())
}
