//! Operations shared by the models and the PEFT layers, each one autodiff node with its own
//! backward pass on Burn's flex CPU backend: dropout ([`dropout`], a seeded mask drawn in
//! parallel, kept as its seed), exact GELU and softmax ([`fused`]), LayerNorm in training
//! ([`layer_norm`]), linear layers as one GEMM over their rows ([`linear`]; [`linear_add`] adds
//! a product into an existing output, LoRA's up-projection) and attention's
//! batched products with their scale ([`matmul`]), both on faer's GEMM, and embedding lookups
//! whose dense gradient is written once ([`embedding`]), cross-entropy's per-row loss
//! ([`nll_rows`]), 2-D convolutions as im2col + GEMM ([`conv`]), BatchNorm (+ ReLU) over
//! feature maps ([`batch_norm`]) and max pooling ([`pool`]); also gradient clipping's
//! one-pass sum of squares ([`sum_of_squares`]) and the activation functions config files name.
//!
//! The CPU fast paths check the device and fall back to Burn's own op anywhere but Burn's flex CPU
//! backend, so GPU code paths never round-trip through the host; [`linear`]'s folding is a
//! reshape and applies on every autodiff device.

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod fused;
pub mod gelu;
pub mod layer_norm;
pub mod linear;
pub mod matmul;
pub mod pool;
#[cfg(feature = "flex")]
mod strided;
#[cfg(feature = "flex")]
mod winograd;

pub use activation::{ACTIVATIONS, Activation};
pub use cross_entropy::nll_rows;
pub use dropout::dropout;
pub use embedding::embedding;
pub use fused::{softmax_last, sum_of_squares};
pub use gelu::{gelu, gelu_tanh};
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_add};
pub use matmul::matmul_scaled;

use burn::tensor::Device;

/// Softmax of host scores, in f32 outputs computed in f64 (as the pipelines' numpy code: shifted
/// by the largest score); NaN scores are ignored for the shift, and all −∞ gives all 0.
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().filter(|s| !s.is_nan()).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let exp: Vec<f64> = scores.iter().map(|&s| ((s - max) as f64).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}

/// Whether `device` is Burn's flex CPU device, plain or under autodiff (by its debug name, as
/// Burn exposes no kind query without a direct dependency on its dispatch crate; the gelu tests
/// pin the name). ft's host-side fast paths (the ops above, AdamW) take it.
pub fn is_flex(device: &Device) -> bool {
    format!("{device:?}").contains("Flex")
}
