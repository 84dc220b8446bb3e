//! # ft-peft
//!
//! Parameter-efficient fine-tuning for ft's models — what Hugging Face PEFT and AdapterHub's
//! `adapters` library do in Python. This crate knows layers, not architectures: `ft-models`
//! has the seams (projections, adapter slots, input embeddings, past keys/values) and puts these
//! layers in them, found by the models' Hub names.
//!
//! - [`slot::ProjectionAdapters`]: the named extra paths of one projection layer (a `Linear` or
//!   GPT-2 `Conv1D`), e.g. [`lora::LoraLayer`]: `y = base(x) + B(A(dropout(x)))·s`, computed in
//!   activation space.
//! - [`slot::BottleneckAdapters`]: the named bottleneck modules after a transformer sub-layer
//!   (the `adapters` library's `bottleneck_layer_forward`), e.g. [`bottleneck::Bottleneck`].
//!
//! With nothing attached, both are the identity on the model's computation: the outputs are
//! bit-identical to the model without them (tested in `ft-models`).

pub mod bottleneck;
pub mod lora;
pub mod slot;
