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
        ft_hub::malloc::reexec_with_tuning();
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
