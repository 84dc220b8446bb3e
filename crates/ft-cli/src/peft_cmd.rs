//! `ft peft merge`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ft_models::auto::{AnyModel, LoadOptions, load, save_pretrained};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_models::export::HfTensors;
use ft_models::peft::PeftBase;

use crate::adapters::AdapterArgs;

/// Arguments of `ft peft`.
#[derive(Debug, clap::Args)]
pub struct PeftArgs {
    #[command(subcommand)]
    command: PeftCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PeftCommand {
    /// Merge a LoRA adapter into its base model and save the result in the Hub layout (PEFT's
    /// `merge_and_unload()` + `save_pretrained`): a plain model transformers loads.
    Merge(MergeArgs),
}

/// Arguments of `ft peft merge`.
#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The base model (a folder or Hub id); default: the adapter's `base_model_name_or_path`.
    #[arg(long)]
    model: Option<String>,
    /// The output folder (config.json, model.safetensors, tokenizer files).
    #[arg(long)]
    output: PathBuf,
    /// Device to merge on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
    #[command(flatten)]
    adapter: AdapterArgs,
}

pub fn run(args: &PeftArgs) -> Result<()> {
    match &args.command {
        PeftCommand::Merge(m) => merge(m),
    }
}

fn merge(args: &MergeArgs) -> Result<()> {
    let specs = args.adapter.specs()?;
    if specs.is_empty() {
        bail!("--adapter is required");
    }
    let model = args.adapter.base_model(args.model.as_deref(), &specs)?;
    let task = AdapterArgs::task(&specs)?.map_or_else(|| ft_models::auto::infer_task(&model), Ok)?;
    let device = parse_device(&args.device)?;
    let options = LoadOptions { num_labels: crate::adapters::head_labels(&specs)?, ..Default::default() };
    let loaded = load(&model, task, &options, &device).context("loading the base model")?;
    let (tensors, class_name) = match loaded.model {
        AnyModel::CausalLm(m) => merged(&args.adapter, m, &specs, |m| (m.export(), m.class_name()))?,
        AnyModel::SequenceClassifier(m) => merged(&args.adapter, m, &specs, |m| (m.export(), m.class_name()))?,
        AnyModel::TokenClassifier(m) => merged(&args.adapter, m, &specs, |m| (m.export(), m.class_name()))?,
        AnyModel::Encoder(_) => {
            bail!("task {task}: merge needs a causal-lm, text-classification or token-classification model")
        }
    };
    let tensors = tensors?;
    save_pretrained(&args.output, &tensors, &loaded.config, class_name, &loaded.files)?;
    eprintln!("merged model written to {}", args.output.display());
    Ok(())
}

fn merged<M: PeftBase>(
    args: &AdapterArgs,
    base: M,
    specs: &[crate::adapters::AdapterSpec],
    export: impl Fn(&M) -> (ft_models::Result<HfTensors>, &'static str),
) -> Result<(ft_models::Result<HfTensors>, &'static str)> {
    let plain = args.attach(base, specs)?.merge_and_unload()?;
    Ok(export(&plain))
}
