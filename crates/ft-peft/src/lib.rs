//! # ft-peft
//!
//! Parameter-efficient fine-tuning for ft's models — what Hugging Face PEFT and AdapterHub's
//! `adapters` library do in Python. This crate is empty today; a later issue fills it with:
//!
//! - LoRA (`r`, `lora_alpha`, `lora_dropout`, `bias`, `target_modules` by the Hub's module names
//!   such as `c_attn`, `q_lin`, `query`, `modules_to_save`, merge/unmerge), saved and loaded in
//!   PEFT's `adapter_config.json` + `adapter_model.safetensors` format;
//! - bottleneck adapters (Pfeiffer, Houlsby), named, several per model with one active, in the
//!   `adapters` library's file format;
//! - prompt tuning and prefix tuning;
//! - the equivalent of `print_trainable_parameters`.
//!
//! It knows layers, not architectures: `ft-models` builds on its building blocks.
