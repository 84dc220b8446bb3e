//! # ft-hub
//!
//! What the models and the data crates share, and nothing heavier, so that a user of
//! `ft-models` alone compiles no dataset readers (arrow, parquet, csv) and no image decoders:
//!
//! - [`hub`]: model and dataset repositories — a local directory or a Hugging Face Hub id,
//!   downloaded into the standard cache, honouring `HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`
//!   and `HF_TOKEN` as `huggingface_hub` does.
//! - [`rng`]: NumPy's `default_rng(seed)` (PCG64) and its `permutation`, bit for bit.
//! - [`batch`]: the padded token batch every text model takes ([`batch::TextBatch`]) and
//!   PyTorch's ignore index.
//! - [`image`]: torchvision's image preprocessing on decoded 8-bit RGB pixels (resize, center
//!   crop, normalise), pixel for pixel as PIL.
//! - [`ops`]: the CPU fast paths the models and the PEFT layers share (Burn's own ops on any
//!   other device), each an autodiff op with its own backward pass: dropout ([`ops::dropout`]),
//!   exact GELU and softmax ([`ops::fused`]), LayerNorm ([`ops::layer_norm`]), linear layers
//!   ([`ops::linear`]) and attention's products ([`ops::matmul`]) on faer's GEMM, embedding
//!   lookups ([`ops::embedding`]), cross-entropy's per-row loss ([`ops::cross_entropy`]); and
//!   gradient clipping's sum of squares.
//!
//! ## Features
//!
//! - `flex`: route the fused ops to Burn's flex CPU backend (`ft-models/flex` turns it on; it
//!   brings in faer for the linear layers' and attention's GEMMs). Without it, flex runs Burn's
//!   composed softmax, GELU, LayerNorm and log-softmax, its dropout mask as a tensor, its
//!   embedding backward and Burn's matmul —
//!   correct, slower, and logged once at `warn` level when training.
//! - [`tensors`]: named f32 tensors in safetensors files, written atomically (checkpoints and
//!   adapters).

pub mod batch;
pub mod hub;
pub mod image;
pub mod machine;
pub mod malloc;
pub mod ops;
pub mod pickle_guard;
pub mod rng;
pub mod tensors;
pub mod torch_save;

mod error;

pub use error::HubError;

/// Result type of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
