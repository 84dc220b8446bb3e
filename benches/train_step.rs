//! Criterion bench of one training step — forward, cross-entropy, backward, global-norm
//! clipping, AdamW — of a BERT-base-shaped encoder with a sequence-classification head (hidden
//! 768, 12 heads, FFN 3072, vocab 30522, 2 layers by default), random weights, dropout 0.1 as
//! BERT's config says, batch 16 × 128 tokens, all-ones attention mask. `benches/torch_train_step.py`
//! times the same step in PyTorch (transformers' `BertForSequenceClassification`, `torch.optim.AdamW`,
//! `clip_grad_norm_`, 2 threads); `cargo xtask bench train-step` runs both and prints the ratio.
//! Since ft's sequence classifiers compute the last layer for the first token only
//! (`TextInput::first_token_only`) and transformers' for every token, ft's step does less work
//! than PyTorch's by design (with 2 layers at 16 × 128, about 40% fewer FLOPs): ratios
//! before and after that change (1 December 2026) are not comparable.
//!
//! Environment: `FT_BENCH_LAYERS` (2), `FT_BENCH_HIDDEN` (768; heads = hidden / 64, FFN = 4 ×
//! hidden), `FT_BENCH_BATCH` (16), `FT_BENCH_SEQ` (128), `FT_BENCH_SECONDS` (measurement time,
//! default 30), `FT_BENCH_DEVICE` (`cpu`).
//!
//! `cargo bench -p ft-train --bench train_step --features ft-models/flex,ft-models/x86-v4`

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ft_models::bert::{BertConfig, BertForSequenceClassification};
use ft_models::device::parse_device;
use ft_models::weights::Checkpoint;
use ft_train::args::TrainingArguments;
use ft_train::loss::cross_entropy;
use ft_train::optim::adamw;

/// `name` as a whole number, `default` when unset; a bad value stops the bench (as the PyTorch
/// script does).
fn env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a whole number")),
        Err(_) => default,
    }
}

/// The bench's shapes: (layers, hidden, batch, seq).
fn shapes() -> (usize, usize, usize, usize) {
    (env("FT_BENCH_LAYERS", 2), env("FT_BENCH_HIDDEN", 768), env("FT_BENCH_BATCH", 16), env("FT_BENCH_SEQ", 128))
}

fn train_step(c: &mut Criterion) {
    // Measure what `ft train` runs: glibc's malloc tuned as it is there.
    ft_hub::malloc::reexec_with_tuning();
    let spec = std::env::var("FT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let plain: Device = parse_device(&spec).unwrap_or_else(|e| panic!("{e}"));
    let device = plain.autodiff();
    device.seed(0);
    let (layers, hidden, batch, seq) = shapes();
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "model_type": "bert", "num_hidden_layers": layers, "hidden_size": hidden,
        "num_attention_heads": hidden / 64, "intermediate_size": 4 * hidden, "num_labels": 4,
    }))
    .expect("a BERT config");
    let mut model =
        BertForSequenceClassification::from_checkpoint(&mut Checkpoint::empty(&device), &config).expect("random init");
    let args = TrainingArguments::default();
    let mut optimizer = adamw(&args, &model).expect("AdamW");
    let vocab = config.vocab_size as f64;
    let ids: Tensor<2, Int> = Tensor::<2>::random([batch, seq], Distribution::Uniform(0.0, vocab), &device).int();
    let mask: Tensor<2, Int> = Tensor::ones([batch, seq], &device);
    let labels: Tensor<1, Int> = Tensor::<1>::random([batch], Distribution::Uniform(0.0, 4.0), &device).int();
    // One step, timed by phase (printed for the per-phase table; criterion times the whole step).
    let mut step = |model: BertForSequenceClassification, phases: &mut [f64; 3]| {
        let t0 = Instant::now();
        let logits = model.forward(ids.clone(), mask.clone(), None);
        let loss = cross_entropy(logits, labels.clone());
        let _ = loss.clone().into_data();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        // Clipping by the global norm, folded into AdamW's pass as the Trainer runs it.
        let (model, _) = optimizer.clip_and_step(args.learning_rate, model, grads, args.max_grad_norm);
        // Reading one parameter back waits for the update (a no-op on the synchronous CPU).
        let _ = model.bert.embeddings.word_embeddings.weight.val().narrow(0, 0, 1).into_data();
        let t3 = Instant::now();
        for (p, (a, b)) in phases.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3)]) {
            *p += (b - a).as_secs_f64() * 1e3;
        }
        model
    };
    let mut phases = [0.0; 3];
    model = step(model, &mut phases);
    let mut phases = [0.0; 3];
    for _ in 0..3 {
        model = step(model, &mut phases);
    }
    eprintln!(
        "train_step phases (mean of 3, ms): forward {:.1}, backward {:.1}, clip + optimizer {:.1}",
        phases[0] / 3.0,
        phases[1] / 3.0,
        phases[2] / 3.0
    );
    let secs = env("FT_BENCH_SECONDS", 30) as u64;
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(secs));
    let name = format!("bert_{layers}x{hidden}_{batch}x{seq}_{}", spec.replace(':', ""));
    let mut slot = Some(model);
    group.bench_function(name, |b| {
        b.iter(|| {
            let m = slot.take().expect("the model between steps");
            slot = Some(step(m, &mut [0.0; 3]));
        })
    });
    group.finish();
    let _ = slot.map(|m| m.num_params());
}

criterion_group!(benches, train_step);
criterion_main!(benches);
