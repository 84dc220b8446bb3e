//! The linear layers' products on flex, faer's GEMM (what `ft_hub::ops::linear` runs) against
//! Burn's `Tensor::matmul` (what it ran before), on the same operands, interleaved in one process
//! so that a shared VM's drift cancels; GFLOP/s, mean of 10 after 2 warm-ups, at the shapes of a
//! MiniLM / BERT-base training step and of the CoNLL run's small batches (BENCHMARKS.md, "Linear layers on faer's GEMM").
//!
//! `cargo run --release -p ft-hub --features flex --example gemm_probe`

use burn::tensor::{Device, Distribution, Tensor};
use ft_hub::ops::linear;
use std::time::Instant;

fn main() {
    ft_hub::malloc::reexec_with_tuning();
    let device = Device::flex();
    println!("{}", ft_hub::machine::Machine::current());
    println!("| rows × in → out | Burn matmul | ft linear (faer) |\n|---|---:|---:|");
    for (m, k, n) in [
        (1536, 384, 384),
        (1536, 384, 1536),
        (1536, 1536, 384),
        (4096, 384, 1536),
        (4096, 1536, 384),
        (2048, 768, 3072),
        (400, 384, 1536),
        // CoNLL's batches (8 sentences, ~30 tokens): forward, and a weight gradient's xᵀ·dy.
        (240, 384, 384),
        (240, 384, 1536),
        (240, 1536, 384),
        (384, 240, 1536),
        (1536, 240, 384),
    ] {
        let a: Tensor<2> = Tensor::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let b: Tensor<2> = Tensor::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        let (mut burn_s, mut faer_s) = (0.0, 0.0);
        for run in 0..12 {
            let t = Instant::now();
            drop(std::hint::black_box(a.clone().matmul(b.clone())));
            let burn_t = t.elapsed().as_secs_f64();
            let t = Instant::now();
            drop(std::hint::black_box(linear::linear(a.clone(), b.clone(), None)));
            let faer_t = t.elapsed().as_secs_f64();
            if run >= 2 {
                burn_s += burn_t;
                faer_s += faer_t;
            }
        }
        let gflops = |s: f64| 2.0 * m as f64 * n as f64 * k as f64 * 10.0 / s / 1e9;
        println!("| {m} × {k} → {n} | {:.1} | {:.1} |", gflops(burn_s), gflops(faer_s));
    }
}
