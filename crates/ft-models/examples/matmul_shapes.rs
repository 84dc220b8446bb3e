//! GFLOP/s of the matrix products of an all-MiniLM-L6-v2 / BERT-base training step through Burn
//! flex's `Tensor::matmul` on 2-D tensors (what `ft_hub::ops::linear` ran before it moved to
//! faer's GEMM; ft-hub's `gemm_probe` example times the two side by side), in the three forms a
//! linear layer needs — forward `x·W`, input gradient `dy·Wᵀ` and weight gradient `xᵀ·dy` (the
//! transposes are views, as in the backward pass). `benches/torch_matmul.py` times the same
//! products in PyTorch; run both back to back on a quiet machine (BENCHMARKS.md, "Training, op by
//! op").
//!
//! `cargo run --release -p ft-models --features flex,x86-v4 --example matmul_shapes`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

/// Mean seconds of `f` over enough runs to last ~0.3 s, after one warm-up (results read back).
fn seconds(f: impl Fn() -> Tensor<2>) -> f64 {
    let _ = f().into_data();
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed().as_secs_f64() < 0.3 {
        let _ = f().into_data();
        runs += 1;
    }
    start.elapsed().as_secs_f64() / runs as f64
}

fn main() {
    let device = Device::flex();
    let normal = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    println!("| rows × in → out | x·W GFLOP/s | dy·Wᵀ GFLOP/s | xᵀ·dy GFLOP/s |\n|---|---:|---:|---:|");
    // (rows, in, out): MiniLM at 16 × 96 and 16 × 256 tokens, BERT-base at 16 × 128, one serving batch.
    for (rows, d_in, d_out) in [
        (1536, 384, 384),
        (1536, 384, 1536),
        (1536, 1536, 384),
        (4096, 384, 384),
        (4096, 384, 1536),
        (4096, 1536, 384),
        (2048, 768, 768),
        (2048, 768, 3072),
        (2048, 3072, 768),
        (400, 384, 384),
        (400, 384, 1536),
        (400, 1536, 384),
    ] {
        let flops = 2.0 * (rows * d_in * d_out) as f64 / 1e9;
        let (x, w, dy) = (normal([rows, d_in]), normal([d_in, d_out]), normal([rows, d_out]));
        let fwd = flops / seconds(|| x.clone().matmul(w.clone()));
        let dx = flops / seconds(|| dy.clone().matmul(w.clone().transpose()));
        let dw = flops / seconds(|| x.clone().transpose().matmul(dy.clone()));
        println!("| {rows} × {d_in} → {d_out} | {fwd:.1} | {dx:.1} | {dw:.1} |");
    }
}
