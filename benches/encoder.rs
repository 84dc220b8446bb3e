//! Criterion bench of the encoder forward pass at DistilBERT-base dimensions (dim 768, 6 layers,
//! 12 heads, FFN 3072, vocab 30522), random weights, inference, batch 32 × 128 tokens.
//!
//! `FT_BENCH_SECONDS` sets the measurement time (default 25 s), `FT_BENCH_LABEL` the bench's name
//! suffix (default: the device). `FT_BENCH_DEVICE` picks the device (`cpu`, `flex`, `ndarray`, `cuda:0`, `vulkan:0`); the
//! backend must be compiled in: `cargo bench -p ft-models --bench encoder --features ndarray`
//! with `FT_BENCH_DEVICE=ndarray`. `cargo xtask bench encoder` runs it for flex and ndarray and
//! PyTorch's `benches/torch_encoder.py` on the same shapes, and prints the ratios.

use std::time::Duration;

use burn::tensor::{Device, Distribution, Int, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ft_models::device::parse_device;
use ft_models::distilbert::{DistilBertConfig, DistilBertModel};
use ft_models::weights::Checkpoint;

const BATCH: usize = 32;
const SEQ: usize = 128;

fn base_config() -> DistilBertConfig {
    serde_json::from_str(r#"{"model_type": "distilbert"}"#).expect("defaults")
}

fn encoder(c: &mut Criterion) {
    let spec = std::env::var("FT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device: Device = parse_device(&spec).unwrap_or_else(|e| panic!("{e}"));
    device.seed(0);
    let config = base_config();
    let model = DistilBertModel::from_checkpoint(&mut Checkpoint::empty(&device), &config).expect("random init");
    let ids: Tensor<2, Int> =
        Tensor::<2>::random([BATCH, SEQ], Distribution::Uniform(0.0, config.vocab_size as f64), &device).int();
    let mask: Tensor<2, Int> = Tensor::ones([BATCH, SEQ], &device);
    let mut group = c.benchmark_group("encoder_forward");
    let secs = std::env::var("FT_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    group.sample_size(10).warm_up_time(Duration::from_secs(3)).measurement_time(Duration::from_secs(secs));
    let label = std::env::var("FT_BENCH_LABEL").unwrap_or_else(|_| spec.replace(':', ""));
    group.bench_function(format!("distilbert-base_{BATCH}x{SEQ}_{label}"), |b| {
        b.iter(|| {
            let out = model.forward(ids.clone(), mask.clone());
            out.into_data()
        })
    });
    group.finish();
}

criterion_group!(benches, encoder);
criterion_main!(benches);
