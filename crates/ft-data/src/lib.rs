//! # ft-data
//!
//! Data access for ft, without Python at run time:
//!
//! - [`hub`]: model and dataset repositories, from a local directory or from the Hugging Face
//!   Hub through `hf-hub`, honouring `HF_HOME`, `HF_ENDPOINT` and `HF_HUB_OFFLINE` as
//!   `huggingface_hub` does.
//! - [`tokenize`]: a model's own `tokenizer.json` through the `tokenizers` crate, with
//!   transformers' truncation semantics, character offsets and word ids.
//! - [`collate`]: dynamic padding of encoded texts into Burn tensors on any device.
//!
//! Dataset loading (Parquet, CSV, JSONL, CoNLL, image folders), `datasets`-style operations,
//! label alignment and collators are the subject of a later issue and will live here too. This
//! crate knows nothing of models.

pub mod collate;
pub mod hub;
pub mod tokenize;

mod error;

pub use error::DataError;

/// Result type of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
