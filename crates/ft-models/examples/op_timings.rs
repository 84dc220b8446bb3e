//! Times the ops of one DistilBERT-base encoder layer at batch 32 × 128 on the CPU, to see where
//! the encoder's time goes (`BENCHMARKS.md`). Compare with `benches/torch_ops.py`.
//!
//! `cargo run --release -p ft-models --features flex,x86-v4 --example op_timings`

use std::time::Instant;

use burn::tensor::module::{attention, layer_norm, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Int, Tensor, activation};

/// Prints the mean time of `f` over 3 runs after one warm-up (results are read back, so the
/// work is really done).
fn time<const D: usize>(name: &str, mut f: impl FnMut() -> Tensor<D>) {
    let _ = f().into_data();
    let start = Instant::now();
    for _ in 0..3 {
        let _ = f().into_data();
    }
    println!("{name}: {:.1} ms", start.elapsed().as_secs_f64() * 1000.0 / 3.0);
}

fn main() {
    let device = Device::flex();
    let normal = |std| Distribution::Normal(0.0, std);
    let x: Tensor<3> = Tensor::random([32, 128, 3072], normal(1.0), &device);
    let h: Tensor<3> = Tensor::random([32, 128, 768], normal(1.0), &device);
    let w_in: Tensor<2> = Tensor::random([768, 3072], normal(0.02), &device);
    let w_out: Tensor<2> = Tensor::random([3072, 768], normal(0.02), &device);
    let w_sq: Tensor<2> = Tensor::random([768, 768], normal(0.02), &device);
    let bias: Tensor<1> = Tensor::zeros([3072], &device);
    let gamma: Tensor<1> = Tensor::ones([768], &device);
    time("linear 768->3072", || linear(h.clone(), w_in.clone(), Some(bias.clone())));
    time("linear 3072->768", || linear(x.clone(), w_out.clone(), None));
    time("linear 768->768", || linear(h.clone(), w_sq.clone(), None));
    // `x * 1.0` gives each GELU a fresh tensor, as a linear layer's output is; subtract its time.
    time("x * 1.0", || x.clone() * 1.0);
    time("x * 1.0, then Burn's gelu", || activation::gelu(x.clone() * 1.0));
    time("x * 1.0, then ft's fast gelu", || ft_hub::ops::gelu(x.clone() * 1.0));
    time("layer_norm 768", || layer_norm(h.clone(), gamma.clone(), None, 1e-12));
    let q: Tensor<4> = Tensor::random([32, 12, 128, 64], normal(1.0), &device);
    let mask =
        Tensor::<2, Int>::ones([32, 128], &device).equal_elem(0).reshape([32, 1, 1, 128]).expand([32, 12, 128, 128]);
    time("attention 12 heads x 128^2", || {
        attention(q.clone(), q.clone(), q.clone(), Some(mask.clone()), None, AttentionModuleOptions::default())
    });
}
