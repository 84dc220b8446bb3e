//! `cargo xtask bench generate`: GPT-2 greedy generation in tokens/s, ft with and without the KV
//! cache (`benches/generate.rs`, release build, ft's default backend flex + x86-v4) against
//! transformers' `generate` with `use_cache=True/False` (`benches/torch_generate.py`,
//! `torch.set_num_threads(threads)`), on the same checkpoints, prompt (14 tokens) and number of new
//! tokens, batch 1: the tiny fixture model and a random-weight GPT-2-small-sized model (124M),
//! written on first use to `~/.cache/ft-gpt2-small-random` by the Python script.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One model of the benchmark.
struct Case {
    name: &'static str,
    dir: PathBuf,
    new_tokens: usize,
    iters: usize,
}

/// The JSON lines a bench command printed on stdout (its stderr passes through).
fn json_lines(cmd: &mut Command) -> Result<Vec<Value>> {
    eprintln!("+ {cmd:?}");
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {l}")))
        .collect()
}

fn field(v: &Value, name: &str) -> Result<f64> {
    v[name].as_f64().with_context(|| format!("no {name} in {v}"))
}

fn by_cache(rows: &[Value], use_cache: bool) -> Result<&Value> {
    rows.iter().find(|r| r["use_cache"] == use_cache).with_context(|| format!("no use_cache={use_cache} result"))
}

pub fn run(root: &Path, threads: usize) -> Result<()> {
    let python = crate::venv_python("models", None)?;
    let small = crate::home().join(".cache/ft-gpt2-small-random");
    crate::run(Command::new(&python).arg(root.join("benches/torch_generate.py")).arg("--make-model").arg(&small))?;
    let cases = [
        Case {
            name: "tiny-gpt2 fixture (2 layers, n_embd 16)",
            dir: root.join("tests/fixtures/models/tiny-gpt2"),
            new_tokens: 16,
            iters: 20,
        },
        Case { name: "GPT-2 small size (124M, random weights)", dir: small, new_tokens: 64, iters: 5 },
    ];
    let mut table = Vec::new();
    let mut speedups = Vec::new();
    let mut versions = String::new();
    for case in &cases {
        let ft = json_lines(
            crate::cargo_command()
                .current_dir(root)
                .args(["bench", "-p", "ft-models", "--bench", "generate", "--features", "flex,x86-v4"])
                .env("FT_BENCH_MODEL", &case.dir)
                .env("FT_BENCH_NEW_TOKENS", case.new_tokens.to_string())
                .env("FT_BENCH_ITERS", case.iters.to_string())
                .env("FT_BENCH_DEVICE", "flex"),
        )?;
        let torch = json_lines(
            Command::new(&python)
                .arg(root.join("benches/torch_generate.py"))
                .arg("--model")
                .arg(&case.dir)
                .args(["--new-tokens", &case.new_tokens.to_string()])
                .args(["--iters", &case.iters.to_string(), "--threads", &threads.to_string()]),
        )?;
        if let Some(t) = torch.first() {
            versions = format!(
                "PyTorch {}, transformers {}",
                t["torch"].as_str().unwrap_or("?"),
                t["transformers"].as_str().unwrap_or("?")
            );
        }
        let torch_cached = field(by_cache(&torch, true)?, "tokens_per_s")?;
        for use_cache in [true, false] {
            let f = by_cache(&ft, use_cache)?;
            let t = by_cache(&torch, use_cache)?;
            let (ft_tps, torch_tps) = (field(f, "tokens_per_s")?, field(t, "tokens_per_s")?);
            let same = if f["token_ids"] == t["token_ids"] { "yes" } else { "no" };
            table.push(format!(
                "| {} | {} | {} | {:.1} | {:.1} | **{:.2}** | {:.2} | {same} |",
                case.name,
                case.new_tokens,
                if use_cache { "on" } else { "off" },
                ft_tps,
                torch_tps,
                ft_tps / torch_tps,
                ft_tps / torch_cached,
            ));
        }
        let ft_on = field(by_cache(&ft, true)?, "tokens_per_s")?;
        let ft_off = field(by_cache(&ft, false)?, "tokens_per_s")?;
        let torch_off = field(by_cache(&torch, false)?, "tokens_per_s")?;
        speedups.push(format!("| {} | {:.2}× | {:.2}× |", case.name, ft_on / ft_off, torch_cached / torch_off));
    }
    println!(
        "GPT-2 greedy generation, batch 1, 14-token prompt, tokens/s (mean of timed generate calls), \
         {threads} PyTorch threads; {versions}"
    );
    println!(
        "| model | new tokens | KV cache | ft tokens/s | PyTorch tokens/s | ft / PyTorch (same cache setting) | \
         ft / PyTorch with cache | same tokens |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
    println!();
    println!("| model | ft: cache on / off | PyTorch: use_cache=True / False |");
    println!("|---|---|---|");
    for row in speedups {
        println!("{row}");
    }
    Ok(())
}
