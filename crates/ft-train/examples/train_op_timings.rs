//! Times the ops of one all-MiniLM-L6-v2-shaped training step on the CPU, forward and backward
//! separately — hidden 384, 12 heads × 32, FFN 1536, vocabulary 30522, batch 16 × 256 tokens
//! (the §4 acceptance run's shapes) — plus global-norm clipping and AdamW over the whole model
//! (22.7M parameters). `FT_OPS_SEQ=N` sets the sequence length (both programs read it). `benches/torch_ops.py --train` times the same ops in PyTorch; the table is
//! in BENCHMARKS.md ("Training, op by op").
//!
//! Each op gets fresh inputs that require gradients; "forward" is the op, "backward" is
//! `(y · g).sum().backward()` for a fixed random `g` (the same in PyTorch). Mean of 3 runs after a
//! warm-up. It re-executes itself with glibc's malloc tuned as `ft train` does (`ft_hub::malloc`).
//!
//! `cargo run --release -p ft-train --features ft-models/flex,ft-models/x86-v4 --example train_op_timings`

use std::time::Instant;

use burn::module::Module;
use burn::nn::{DropoutConfig, LayerNormConfig, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, activation};
use ft_models::attention::{PaddingMask, scaled_dot_product};
use ft_models::bert::{BertConfig, BertForSequenceClassification};
use ft_models::weights::Checkpoint;
use ft_train::args::TrainingArguments;
use ft_train::loss::cross_entropy;
use ft_train::optim::adamw;

const B: usize = 16;
const H: usize = 384;
const HEADS: usize = 12;
const FFN: usize = 1536;
const VOCAB: usize = 30522;

fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Times `op` forward and backward: `make` builds fresh inputs (tracked), `op` maps them to the
/// output, whose `(y · g).sum()` is differentiated.
fn time_op<I: Clone, const D: usize>(name: &str, make: impl Fn() -> I, op: impl Fn(I) -> Tensor<D>, device: &Device) {
    let mut g: Option<Tensor<D>> = None;
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for run in 0..4 {
        let input = make();
        let t0 = Instant::now();
        let y = op(input);
        let t1 = Instant::now();
        let g = g.get_or_insert_with(|| normal(y.dims(), device)).clone();
        let loss = (y * g).sum();
        let t2 = Instant::now();
        let grads = loss.backward();
        let t3 = Instant::now();
        drop(grads);
        if run > 0 {
            fwd += (t1 - t0).as_secs_f64() * 1e3 / 3.0;
            bwd += (t3 - t2).as_secs_f64() * 1e3 / 3.0;
        }
    }
    println!("| {name} | {fwd:.1} | {bwd:.1} |");
}

fn main() {
    // FT_OPS_SEQ: the sequence length (default 256; the acceptance run's padded batches average ~100).
    #[allow(non_snake_case)]
    let L: usize = std::env::var("FT_OPS_SEQ").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    ft_hub::malloc::reexec_with_tuning();
    let device = Device::flex().autodiff();
    device.seed(0);
    let x = || normal([B, L, H], &device).require_grad();
    let wide = || normal([B, L, FFN], &device).require_grad();
    println!("| op (batch {B} × {L}) | forward ms | backward ms |\n|---|---:|---:|");
    for (name, d_in, d_out) in
        [("linear 384→384 (×4 per layer)", H, H), ("linear 384→1536", H, FFN), ("linear 1536→384", FFN, H)]
    {
        let layer = LinearConfig::new(d_in, d_out).init(&device);
        let device = &device;
        let input = move || normal([B, L, d_in], device).require_grad();
        time_op(name, input, |x| ft_hub::ops::linear::forward(&layer, x), device);
        // Burn's own `Linear::forward` under autodiff: a matmul against the weight broadcast
        // over the batch, whose weight gradient is 16 products summed (what ft ran before).
        time_op(&format!("{name}, Burn's Linear::forward"), input, |x| layer.forward(x), device);
    }
    let heads = || {
        let t = || normal([B, HEADS, L, H / HEADS], &device).require_grad();
        (t(), t(), t())
    };
    let mask = PaddingMask::new(&Tensor::<2, Int>::ones([B, L], &device));
    let attn_dropout = DropoutConfig::new(0.1).init();
    time_op(
        &format!("attention (12 heads × {L}², dropout 0.1)"),
        heads,
        |(q, k, v)| scaled_dot_product(q, k, v, &mask, &attn_dropout),
        &device,
    );
    let scores = || normal([B, HEADS, L, L], &device).require_grad();
    let fused_softmax = format!("softmax [16, 12, {L}, {L}], ft's fused op (what attention runs)");
    time_op(&fused_softmax, scores, ft_hub::ops::softmax_last, &device);
    time_op(&format!("softmax [16, 12, {L}, {L}], Burn's composed op"), scores, |s| activation::softmax(s, 3), &device);
    time_op(&format!("GELU [16, {L}, 1536]"), wide, ft_hub::ops::gelu, &device);
    let ln = LayerNormConfig::new(H).with_epsilon(1e-12).init(&device);
    time_op("LayerNorm 384, ft's fused op (what the models run)", x, |x| ft_hub::ops::layer_norm(&ln, x), &device);
    time_op("LayerNorm 384, Burn's LayerNorm::forward", x, |x| ln.forward(x), &device);
    let dropout = DropoutConfig::new(0.1).init();
    time_op(&format!("dropout 0.1 [16, {L}, 384]"), x, |x| ft_hub::ops::dropout(&dropout, x), &device);
    time_op(&format!("residual add [16, {L}, 384]"), || (x(), x()), |(a, b)| a + b, &device);
    let table = burn::nn::EmbeddingConfig::new(VOCAB, H).init(&device);
    let ids = Tensor::<2>::random([B, L], Distribution::Uniform(0.0, VOCAB as f64), &device).int();
    time_op("embedding 30522 × 384 (dense gradient)", || ids.clone(), |ids| table.forward(ids), &device);

    // The whole model: one forward/backward, then clipping and AdamW timed on its gradients.
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "model_type": "bert", "num_hidden_layers": 6, "hidden_size": H, "num_attention_heads": HEADS,
        "intermediate_size": FFN, "num_labels": 4,
    }))
    .expect("a MiniLM-shaped config");
    let mut model =
        BertForSequenceClassification::from_checkpoint(&mut Checkpoint::empty(&device), &config).expect("random init");
    let args = TrainingArguments::default();
    let mut optimizer = adamw(&args, &model).expect("AdamW");
    let full_ids = Tensor::<2>::random([B, L], Distribution::Uniform(0.0, VOCAB as f64), &device).int();
    let att = Tensor::<2, Int>::ones([B, L], &device);
    let labels = Tensor::<1>::random([B], Distribution::Uniform(0.0, 4.0), &device).int();
    let (mut fwd, mut bwd, mut step) = (0.0, 0.0, 0.0);
    for run in 0..4 {
        let t0 = Instant::now();
        let loss = cross_entropy(model.forward(full_ids.clone(), att.clone(), None), labels.clone());
        let _ = loss.clone().into_data();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        (model, _) = optimizer.clip_and_step(5e-5, model, grads, 1.0);
        let _ = model.bert.embeddings.word_embeddings.weight.val().narrow(0, 0, 1).into_data();
        let t4 = Instant::now();
        if run > 0 {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3 / 3.0;
            (fwd, bwd, step) = (fwd + ms(t0, t1), bwd + ms(t1, t2), step + ms(t2, t4));
        }
    }
    println!("| clip_grad_norm + AdamW step, one pass (22.7M parameters) | {step:.1} | |");
    println!("| **whole step: MiniLM, 6 layers** | {fwd:.1} | {bwd:.1} |");
    println!("(parameters: {})", model.num_params());
}
