//! `ft`: fine-tune, evaluate and serve pre-trained models — the command-line tool.
//!
//! This binary only parses arguments and wires the library crates together; everything a library
//! user would need lives in `ft-models`, `ft-data`, `ft-serve` and friends.

mod adapters;
mod data_cmd;
mod generate_cmd;
mod info;
mod jsonl;
mod metrics_cmd;
mod peft_cmd;
mod predict;
mod serve_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};

/// Fine-tune, evaluate and serve pre-trained models (BERT, DistilBERT, ...) without Python.
#[derive(Debug, Parser)]
#[command(name = "ft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fine-tune a model as a run file says (transformers' Trainer semantics).
    Train(train_cmd::TrainArgs),
    /// Continue a prompt with a causal language model (GPT-2), as transformers' generate().
    Generate(generate_cmd::GenerateArgs),
    /// Run a model over a JSONL file of inputs and write one JSON line of predictions per input.
    Predict(predict::PredictArgs),
    /// Describe a model: architecture, parameter count, loaded and newly initialised weights.
    Info(info::InfoArgs),
    /// Compute a metric (accuracy, f1, seqeval, rouge, bleu, ...) as Hugging Face `evaluate` does.
    Metrics(metrics_cmd::MetricsArgs),
    /// Inspect or tokenize a dataset (local files, a recipe such as ag_news, or a Hub dataset id).
    Data(data_cmd::DataArgs),
    /// PEFT adapters: merge a LoRA adapter into its base model.
    Peft(peft_cmd::PeftArgs),
    /// Serve a model over HTTP: the notebook's POST /predict, with dynamic batching.
    Serve(serve_cmd::ServeArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: redirected logs stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Train(_)) {
        reexec_with_malloc_tuning();
    }
    // What the kernels' speed depends on (RUST_LOG=debug).
    tracing::debug!(machine = %ft_hub::machine::Machine::current(), "machine");
    let result = match &cli.command {
        Command::Train(args) => train_cmd::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Info(args) => info::run(args),
        Command::Metrics(args) => metrics_cmd::run(args),
        Command::Data(args) => data_cmd::run(args),
        Command::Peft(args) => peft_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// glibc's malloc serves every allocation above 32 MiB with its own `mmap` and unmaps it on
/// free, so each training step's embedding-sized tensors (gradients, AdamW moments: 47 MB each
/// for a 30k × 384 vocabulary) page-fault fresh zeroed memory — 40% of a step when training
/// all-MiniLM-L6-v2 on CoNLL-2003. With `MALLOC_MMAP_MAX_=0` and a high `MALLOC_TRIM_THRESHOLD_`
/// freed memory stays in the heap and is reused (the step goes from ~300 to ~160 ms). glibc reads
/// these only at start-up, so `ft train` re-executes itself once with them set — unless either is
/// already set, or `FT_KEEP_MALLOC` is. If the re-execution fails, training goes on as is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec_with_malloc_tuning() {
    use std::os::unix::process::CommandExt;
    if ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "FT_KEEP_MALLOC"].iter().any(|v| std::env::var_os(v).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_MMAP_MAX_", "0")
        .env("MALLOC_TRIM_THRESHOLD_", "68719476736")
        .exec();
    tracing::debug!(%error, "could not re-execute with malloc tuning; going on without it");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec_with_malloc_tuning() {}

