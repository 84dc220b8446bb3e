//! Generation speed of GPT-2 in ft: greedy `generate` of a fixed number of new tokens after a
//! fixed 14-token prompt, batch 1, with and without the KV cache (`use_cache`), in tokens/s.
//!
//! Not a criterion bench (one `generate` call is seconds long on a 124M model): warm-up calls,
//! then timed calls, and one JSON line per setting on stdout, read by `cargo xtask bench
//! generate`, which runs PyTorch's `generate` on the same checkpoint (`benches/torch_generate.py`)
//! and prints the ratios. Settings come from the environment:
//!
//! - `FT_BENCH_MODEL`: a GPT-2 model directory (default: the tiny fixture
//!   `tests/fixtures/models/tiny-gpt2`)
//! - `FT_BENCH_NEW_TOKENS` (default 16), `FT_BENCH_ITERS` timed calls (default 5),
//!   `FT_BENCH_WARMUP` (default 1), `FT_BENCH_CACHE` `both` | `on` | `off` (default both)
//! - `FT_BENCH_DEVICE` (`cpu`, `flex`, `ndarray`, `vulkan:0`, ...; the backend must be compiled in)
//!
//! ```sh
//! FT_BENCH_MODEL=~/.cache/ft-gpt2-small-random FT_BENCH_NEW_TOKENS=64 \
//!     cargo bench -p ft-models --bench generate --features flex,x86-v4
//! ```
//!
//! End-of-sequence tokens are switched off (`eos_token_id: []`) so that every call makes exactly
//! the requested number of tokens, as the PyTorch side does with `eos_token_id=None`.

use std::time::Instant;

use burn::tensor::Device;
use ft_models::auto::{AnyModel, CausalLm, LoadOptions, Task, load};
use ft_models::device::parse_device;
use ft_models::generation::{GenerationConfig, TokenIds, generate};

/// "Once upon a time, in a land far away, there lived a" in GPT-2's vocabulary (the same ids
/// `benches/torch_generate.py` uses).
const PROMPT: [u32; 14] = [7454, 2402, 257, 640, 11, 287, 257, 1956, 1290, 1497, 11, 612, 5615, 257];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a valid value")),
        Err(_) => default,
    }
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = std::env::var("FT_BENCH_MODEL")
        .unwrap_or_else(|_| root.join("tests/fixtures/models/tiny-gpt2").to_string_lossy().into_owned());
    let new_tokens: usize = env_or("FT_BENCH_NEW_TOKENS", 16);
    let iters: usize = env_or("FT_BENCH_ITERS", 5);
    let warmup: usize = env_or("FT_BENCH_WARMUP", 1);
    let which = std::env::var("FT_BENCH_CACHE").unwrap_or_else(|_| "both".into());
    let spec = std::env::var("FT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device: Device = parse_device(&spec).unwrap_or_else(|e| panic!("{e}"));

    let loaded = load(&model_dir, Task::CausalLm, &LoadOptions::default(), &device)
        .unwrap_or_else(|e| panic!("loading {model_dir}: {e}"));
    let AnyModel::CausalLm(CausalLm::Gpt2(model)) = loaded.model else { panic!("{model_dir}: not GPT-2") };
    let config = model.transformer.config.clone();
    let caches: &[bool] = match which.as_str() {
        "both" => &[true, false],
        "on" => &[true],
        "off" => &[false],
        other => panic!("FT_BENCH_CACHE={other}: expected both, on or off"),
    };
    let prompts = vec![PROMPT.to_vec()];
    for &use_cache in caches {
        let settings = GenerationConfig {
            max_new_tokens: Some(new_tokens),
            eos_token_id: Some(TokenIds::Many(Vec::new())),
            use_cache: Some(use_cache),
            ..Default::default()
        }
        .resolve(&config)
        .unwrap_or_else(|e| panic!("{e}"));
        let mut times = Vec::with_capacity(iters);
        let mut tokens = Vec::new();
        for i in 0..warmup + iters {
            let t0 = Instant::now();
            let out = generate(&model, &prompts, &settings, Some(0), &device).unwrap_or_else(|e| panic!("{e}"));
            let dt = t0.elapsed().as_secs_f64();
            assert_eq!(out[0].token_ids.len(), new_tokens, "every call makes {new_tokens} tokens");
            tokens = out[0].token_ids.clone();
            if i >= warmup {
                times.push(dt);
            }
        }
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{}",
            serde_json::json!({
                "framework": "ft",
                "device": spec,
                "model": model_dir,
                "n_embd": config.n_embd,
                "n_layer": config.n_layer,
                "prompt_tokens": PROMPT.len(),
                "new_tokens": new_tokens,
                "use_cache": use_cache,
                "iters": iters,
                "mean_s": mean,
                "min_s": min,
                "tokens_per_s": new_tokens as f64 / mean,
                "token_ids": tokens,
            })
        );
    }
}
