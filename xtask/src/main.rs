//! `cargo xtask`: ft's developer tasks.
//!
//! - `cargo xtask fixtures models|data|metrics|resnet|vision-train|gpt2|hostile` regenerates the committed test fixtures with the
//!   Python reference libraries, in a throwaway virtual environment outside the repository
//!   (`~/.cache/ft-venv-<name>`, or `--venv DIR`), pinned by `xtask/python/requirements-<name>.txt`.
//! - `cargo xtask bench encoder` runs the encoder criterion bench on flex and ndarray and the same
//!   shapes in PyTorch (`benches/torch_encoder.py`, 2 threads) on this machine, and prints the
//!   throughput ratios.
//! - `cargo xtask bench generate` times GPT-2 greedy generation (tokens/s) with and without the KV
//!   cache against transformers' `generate`, on the tiny fixture and a random 124M GPT-2
//!   (`bench_generate.rs`).
//! - `cargo xtask reproduce-notebook [--sections 3,4,...,10] [--out DIR] [--offline] [--profile hub|local|tiny]` runs
//!   sections of the fine-tuning notebook with the `ft` binary and writes `DIR/report.md` (see
//!   `notebook/mod.rs`).
//! - `cargo xtask fuzz [--target T] [--seconds N] [--seed S] [--list] [--replay DIR]` fuzzes every
//!   parser of outside input on the stable toolchain (see `fuzz/mod.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench_generate;
mod fuzz;
mod notebook;
mod trained;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "ft developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate committed fixtures with the Python reference libraries.
    Fixtures {
        /// `models` (transformers parity), `gpt2` (GPT-2 parity and generation), `data`
        /// (datasets + tokenizers identity), `metrics` (scikit-learn, seqeval, rouge, bleu),
        /// `resnet` (torchvision + PIL), `trained` (ft train output read by transformers), `saved`
        /// (GPT-2 and ResNet saved by ft, read by transformers / torchvision / timm) or
        /// `resnet-full` (a full-size random resnet18 in ~/.cache/ft-resnet18-random, not committed).
        which: String,
        /// The virtual environment to use (created if missing).
        #[arg(long)]
        venv: Option<PathBuf>,
    },
    /// Benchmarks side by side with PyTorch on this machine.
    Bench {
        /// `encoder`: DistilBERT-base forward, batch 32 x 128. `generate`: GPT-2 greedy
        /// generation with and without the KV cache, tiny and 124M. `train-step`: one training
        /// step (forward, backward, clipping, AdamW) of a 2-layer BERT-base, batch 16 x 128.
        which: String,
        /// Skip the ndarray backend (deprecated in Burn; slower to build).
        #[arg(long)]
        skip_ndarray: bool,
        /// Timed PyTorch iterations.
        #[arg(long, default_value_t = 10)]
        torch_iters: usize,
        /// Threads for PyTorch (Burn's CPU backends use one per core).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Run the fine-tuning notebook (§3-§13 and its exercises) with `ft` and write DIR/report.md
    /// and DIR/report.html (§13's table of every method, §14's pitfalls, one part per section).
    ReproduceNotebook(notebook::Args),
    /// Open DIR/report.html in headless Chromium: no console errors, every picture loaded,
    /// nothing requested outside the page; saves DIR/report-screenshot.png.
    CheckReport {
        /// The report folder (`--out` of reproduce-notebook).
        dir: PathBuf,
    },
    /// Fuzz the parsers of outside input (safetensors, pickles, configs, tokenizers, datasets,
    /// images, run files, metrics input, adapter configs, server requests); findings go to
    /// target/fuzz/crashes/<target>/ and make the command fail.
    Fuzz(fuzz::Args),
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The venv's python, creating the venv and installing the pinned requirements when needed.
fn venv_python(name: &str, venv: Option<PathBuf>) -> Result<PathBuf> {
    let venv = venv.unwrap_or_else(|| home().join(format!(".cache/ft-venv-{name}")));
    let python = venv.join("bin/python");
    let requirements = root().join(format!("xtask/python/requirements-{name}.txt"));
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "-r"]).arg(&requirements))?;
    Ok(python)
}

/// `cargo` without the variables `cargo run` gave this process for its own package: passed on,
/// they would differ from those of a plain `cargo build` and make build scripts that track them
/// rerun (and everything after them rebuild) at every switch between the two.
pub(crate) fn cargo_command() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

fn fixtures(which: &str, venv: Option<PathBuf>) -> Result<()> {
    let root = root();
    match which {
        "models" => {
            let python = venv_python("models", venv)?;
            let minilm = home().join(".cache/ft-minilm");
            run(Command::new("bash").arg(root.join("../shared/scripts/fetch-minilm.sh")).arg(&minilm))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_models.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures"))
                .arg("--minilm")
                .arg(&minilm))
        }
        "data" => {
            let python = venv_python("data", venv)?;
            let minilm = home().join(".cache/ft-minilm");
            run(Command::new("bash").arg(root.join("../shared/scripts/fetch-minilm.sh")).arg(&minilm))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_data.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures/data"))
                .arg("--shared")
                .arg(root.join("../shared"))
                .arg("--minilm")
                .arg(&minilm))
        }
        "metrics" => {
            let python = venv_python("metrics", venv)?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_metrics.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures/metrics")))
        }
        "resnet" | "resnet-full" => {
            // Small random ResNets, images and torchvision's outputs (committed); with
            // `resnet-full`, a full-size random resnet18 in ~/.cache/ft-resnet18-random instead
            // (for the ignored `full_size_resnet18` test), using the committed images.
            let python = venv_python("vision", venv)?;
            let mut cmd = Command::new(python);
            cmd.arg(root.join("xtask/python/fixtures_resnet.py")).arg("--out").arg(root.join("tests/fixtures"));
            if which == "resnet-full" {
                cmd.arg("--full").arg(home().join(".cache/ft-resnet18-random")).arg("--skip-small");
            }
            run(&mut cmd)
        }
        "vision-train" => {
            // The image folder, narrow ResNet (.pth) and PyTorch's 20-step losses of
            // `tests/vision_train.rs`.
            let python = venv_python("vision", venv)?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_vision_train.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures")))
        }
        "gpt2" => {
            // The tiny random GPT-2 with the real GPT-2 vocabulary (fetched by the shared script).
            let python = venv_python("models", venv)?;
            let tokenizer = home().join(".cache/ft-gpt2-tokenizer");
            run(Command::new("bash").arg(root.join("../shared/scripts/fetch-gpt2-tokenizer.sh")).arg(&tokenizer))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_gpt2.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures"))
                .arg("--gpt2-tokenizer")
                .arg(&tokenizer))
        }
        "hostile" => {
            // PyTorch files for the pickle guard: ones that run os.system in Python (refused),
            // empty and wrong-name state dicts, legacy and protocol-4 files ft must read.
            let python = venv_python("models", venv)?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_hostile.py"))
                .arg("--out")
                .arg(root.join("tests/fixtures/hostile"))
                .arg("--resnet")
                .arg(root.join("tests/fixtures/models/tiny-resnet-pth")))
        }
        "trained" => {
            // Tiny models written by `ft train`, loaded back by transformers' from_pretrained.
            let python = venv_python("models", venv)?;
            trained::fixtures_trained(&root, &python, run)
        }
        "saved" => {
            // GPT-2 and ResNet saved by ft in the Hub layout, loaded back by transformers,
            // torchvision and timm.
            let python = venv_python("models", venv)?;
            let saved = root.join("target/saved-fixtures");
            run(cargo_command()
                .current_dir(&root)
                .args(["test", "--workspace", "--test", "save"])
                .env("FT_UPDATE_FIXTURES", "1")
                .env("FT_SAVED_DIR", &saved))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/check_saved.py"))
                .arg("--saved")
                .arg(&saved)
                .arg("--out")
                .arg(root.join("tests/fixtures/saved_check.json")))
        }
        "peft" => {
            // Adapters saved by PEFT on the tiny checkpoints, with PEFT's outputs.
            let python = venv_python("models", venv)?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_peft.py"))
                .arg("--models")
                .arg(root.join("tests/fixtures/models"))
                .arg("--out")
                .arg(root.join("tests/fixtures/peft")))
        }
        "peft-check" => {
            // The adapters ft re-saves (test `peft_parity` with FT_UPDATE_FIXTURES=1), loaded back
            // by PEFT's `PeftModel.from_pretrained`.
            let python = venv_python("models", venv)?;
            let saved = root.join("target/peft-saved");
            let _ = std::fs::remove_dir_all(&saved);
            run(cargo_command()
                .current_dir(&root)
                .args(["test", "--workspace", "--test", "peft_parity"])
                .env("FT_UPDATE_FIXTURES", "1"))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_peft.py"))
                .arg("--models")
                .arg(root.join("tests/fixtures/models"))
                .arg("--out")
                .arg(root.join("tests/fixtures/peft"))
                .arg("--check-ft")
                .arg(&saved))
        }
        "adapters" => {
            // Bottleneck adapters + heads saved by AdapterHub's `adapters` library (its own venv:
            // xtask/python/requirements-adapters.txt), with the library's outputs.
            let python = venv_python("adapters", venv)?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_adapters.py"))
                .arg("--models")
                .arg(root.join("tests/fixtures/models"))
                .arg("--out")
                .arg(root.join("tests/fixtures/adapters")))
        }
        "adapters-check" => {
            // The adapters ft re-saves (test `adapterhub_parity` with FT_UPDATE_FIXTURES=1),
            // loaded back by the library's `load_adapter(..., with_head=True)`.
            let python = venv_python("adapters", venv)?;
            let saved = root.join("target/adapters-saved");
            let _ = std::fs::remove_dir_all(&saved);
            run(cargo_command()
                .current_dir(&root)
                .args(["test", "--workspace", "--test", "adapterhub_parity"])
                .env("FT_UPDATE_FIXTURES", "1"))?;
            run(Command::new(python)
                .arg(root.join("xtask/python/fixtures_adapters.py"))
                .arg("--models")
                .arg(root.join("tests/fixtures/models"))
                .arg("--out")
                .arg(root.join("tests/fixtures/adapters"))
                .arg("--check-ft")
                .arg(&saved))
        }
        other => bail!(
            "unknown fixture set '{other}' (models, data, metrics, resnet, resnet-full, gpt2, trained, saved, peft, peft-check, adapters, adapters-check)"
        ),
    }
}

/// Mean time per iteration (seconds) from criterion's estimates.
///
/// Criterion writes under `$CARGO_TARGET_DIR/criterion` (else `target/criterion`).
fn criterion_mean(group: &str, bench: &str) -> Result<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let path = target.join(format!("criterion/{group}/{bench}/new/estimates.json"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["mean"]["point_estimate"].as_f64().map(|ns| ns / 1e9).with_context(|| format!("{}: no mean", path.display()))
}

fn bench_encoder(skip_ndarray: bool, torch_iters: usize, threads: usize) -> Result<()> {
    let root = root();
    // (label, cargo features, device, description)
    let mut backends = vec![
        ("flex-x86v4", "flex,x86-v4", "flex", "ft (Burn flex + x86-v4, ft's default build)"),
        ("flex", "flex", "flex", "ft (Burn flex, AVX2 kernels only)"),
    ];
    if !skip_ndarray {
        backends.push(("ndarray", "ndarray", "ndarray", "ft (Burn ndarray)"));
    }
    let mut rows = Vec::new();
    for (label, features, device, description) in &backends {
        run(cargo_command()
            .current_dir(&root)
            .args(["bench", "-p", "ft-models", "--bench", "encoder", "--features", features])
            .env("FT_BENCH_DEVICE", device)
            .env("FT_BENCH_LABEL", label))?;
        rows.push((
            description.to_string(),
            criterion_mean("encoder_forward", &format!("distilbert-base_32x128_{label}"))?,
        ));
    }
    let python = venv_python("models", None)?;
    let out = Command::new(python)
        .arg(root.join("benches/torch_encoder.py"))
        .args(["--iters", &torch_iters.to_string(), "--threads", &threads.to_string()])
        .output()
        .context("running benches/torch_encoder.py")?;
    if !out.status.success() {
        bail!("torch_encoder.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("parsing {line}"))?;
    let torch = v["mean_s"].as_f64().context("mean_s")?;
    println!("DistilBERT-base encoder forward, batch 32 x 128, inference, {threads} threads");
    println!("| implementation | mean s/batch | sequences/s | throughput vs PyTorch |");
    println!("|---|---|---|---|");
    println!("| PyTorch {} | {torch:.3} | {:.1} | 1.00 |", v["torch"].as_str().unwrap_or("?"), 32.0 / torch);
    for (name, s) in rows {
        println!("| {name} | {s:.3} | {:.1} | {:.2} |", 32.0 / s, torch / s);
    }
    Ok(())
}

/// One training step of a 2-layer BERT-base-shaped encoder (`benches/train_step.rs`, criterion)
/// against the same step in PyTorch (`benches/torch_train_step.py`), same machine, one after the
/// other, both on `threads` threads (rayon's for Burn); prints both and the ratio. Both sides read
/// the shape from `FT_BENCH_LAYERS` / `FT_BENCH_HIDDEN` / `FT_BENCH_BATCH` / `FT_BENCH_SEQ`.
fn bench_train_step(torch_iters: usize, threads: usize) -> Result<()> {
    let root = root();
    let env = |name: &str, default: usize| -> Result<usize> {
        match std::env::var(name) {
            Ok(v) => v.parse().with_context(|| format!("{name}={v}: not a whole number")),
            Err(_) => Ok(default),
        }
    };
    let (layers, hidden) = (env("FT_BENCH_LAYERS", 2)?, env("FT_BENCH_HIDDEN", 768)?);
    let (batch, seq) = (env("FT_BENCH_BATCH", 16)?, env("FT_BENCH_SEQ", 128)?);
    let device = std::env::var("FT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into()).replace(':', "");
    run(cargo_command().current_dir(&root).env("RAYON_NUM_THREADS", threads.to_string()).args([
        "bench",
        "-p",
        "ft-train",
        "--bench",
        "train_step",
        "--features",
        "ft-models/flex,ft-models/x86-v4",
    ]))?;
    let ft = criterion_mean("train_step", &format!("bert_{layers}x{hidden}_{batch}x{seq}_{device}"))?;
    let python = venv_python("models", None)?;
    let out = Command::new(python)
        .arg(root.join("benches/torch_train_step.py"))
        .args(["--iters", &torch_iters.to_string(), "--threads", &threads.to_string()])
        .output()
        .context("running benches/torch_train_step.py")?;
    if !out.status.success() {
        bail!("torch_train_step.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("parsing {line}"))?;
    let torch = v["mean_s"].as_f64().context("mean_s")?;
    println!(
        "Training step (forward, backward, clipping, AdamW), {layers}-layer BERT (hidden {hidden}), batch {batch} x {seq}, {threads} threads"
    );
    println!("| implementation | mean s/step | samples/s | speed vs PyTorch |");
    println!("|---|---|---|---|");
    let b = batch as f64;
    println!("| PyTorch {} | {torch:.3} | {:.2} | 1.00 |", v["torch"].as_str().unwrap_or("?"), b / torch);
    println!("| ft (Burn flex) | {ft:.3} | {:.2} | {:.2} |", b / ft, torch / ft);
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Task::Fixtures { which, venv } => fixtures(&which, venv),
        Task::Bench { which, skip_ndarray, torch_iters, threads } => match which.as_str() {
            "encoder" => bench_encoder(skip_ndarray, torch_iters, threads),
            "generate" => bench_generate::run(&root(), threads),
            "train-step" => bench_train_step(torch_iters, threads),
            other => bail!("unknown bench '{other}' (encoder, generate, train-step)"),
        },
        Task::ReproduceNotebook(args) => notebook::run(args),
        Task::CheckReport { dir } => notebook::browser::check_report(&dir),
        Task::Fuzz(args) => fuzz::run(args, &root()),
    }
}
