//! `ft train --config run.toml [--set section.key=value ...] [--resume] [--device D]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_train::run_config::RunConfig;
use ft_train::{Callbacks, TrainOptions, train_with};

/// Arguments of `ft train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The run file (TOML: `[model]`, `[data]`, `[method]`, `[training]`).
    #[arg(long)]
    config: PathBuf,
    /// Override a run-file key, e.g. `--set training.learning_rate=3e-5` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,
    /// Continue from the newest `checkpoint-N/` of the output directory.
    #[arg(long)]
    resume: bool,
    /// Refuse to train when the evaluation split shares rows with the training split (label
    /// leakage), instead of warning.
    #[arg(long)]
    strict: bool,
    /// Device to train on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

/// Prints every log entry as a JSON line on stdout (what transformers' `Trainer` logs).
struct PrintLog;

impl Callbacks for PrintLog {
    fn on_log(&mut self, entry: &serde_json::Value) {
        println!("{entry}");
    }
}

/// Runs `ft train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let config = RunConfig::load(&args.config, &args.set)?;
    let device = parse_device(&args.device)?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let options = TrainOptions { resume: args.resume, progress, strict: args.strict };
    let outcome = train_with(&config, &options, &mut PrintLog, &device).context("training")?;
    if outcome.skipped_rows > 0 {
        eprintln!("skipped {} invalid rows", outcome.skipped_rows);
    }
    for p in outcome.pitfalls.iter().filter(|p| p.warning) {
        eprintln!("warning: {}", p.message);
    }
    eprintln!("model and results written to {}", outcome.output_dir.display());
    Ok(())
}
