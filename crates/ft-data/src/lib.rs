//! # ft-data
//!
//! Hugging Face datasets without Python: loading, `datasets`-style operations, tokenization with
//! a model's own tokenizer, NER label alignment and collation into Burn tensors.
//!
//! - [`source`]: datasets from a local file or directory (Parquet, CSV/TSV, JSON Lines, CoNLL
//!   text, image folders), a recipe name (`ag_news`, `imdb`, `conll2003`; [`recipe`]) or a Hub
//!   dataset id (`org/name[@revision]`, through `hf-hub`: Parquet files in the repository or its
//!   `refs/convert/parquet` export). Splits are named from file names as `datasets` names them;
//!   `ClassLabel` names come from the Parquet files' `huggingface` metadata.
//! - [`dataset`]: the in-memory table — `shuffle(seed)` (NumPy's PCG64 permutation, identical
//!   to `datasets`; [`rng`]), `select`, `filter`, batched `map`, `rename_column`,
//!   `train_test_split`, features and label names. Every row remembers its file and row, so
//!   errors name them.
//! - [`align`]: `tokenize_and_align_labels` as in the notebook, and text-classification
//!   tokenization, with transformers' truncation; identical ids to transformers' fast tokenizer.
//! - [`collate`]: dynamic padding (`DataCollatorWithPadding`, `DataCollatorForTokenClassification`,
//!   `DataCollatorForLanguageModeling(mlm=False)`) and `group_by_length`.
//! - [`hub`]: model and dataset repositories, honouring `HF_HOME`, `HF_ENDPOINT`,
//!   `HF_HUB_OFFLINE` and `HF_TOKEN` as `huggingface_hub` does (from `ft-hub`, shared with the
//!   models).
//! - [`tokenize`]: a model's `tokenizer.json` through the `tokenizers` crate, with character
//!   offsets and word ids.
//! - [`vision`]: PNG/JPEG decoding as PIL's `convert("RGB")`, and torchvision's evaluation
//!   preprocessing (PIL's antialiased resize, center crop, normalisation), pixel for pixel.
//!
//! The notebook's AG News preparation, in Rust:
//!
//! ```no_run
//! use ft_data::align::{TokenizeOptions, tokenize_text_classification};
//! use ft_data::hub::{RepoFiles, RepoKind};
//! use ft_data::source::{DatasetSource, LoadOptions};
//! use ft_data::tokenize::TextTokenizer;
//!
//! # fn main() -> ft_data::Result<()> {
//! // ag = load_dataset("ag_news"); ag["train"].shuffle(seed=42).select(range(2000))
//! let ag = DatasetSource::open("ag_news", LoadOptions::default())?;
//! let train = ag.load(Some("train"))?.dataset.shuffle(42).take(2000);
//! // tok(batch["text"], truncation=True, max_length=256), label -> labels
//! let tok = TextTokenizer::from_repo(&RepoFiles::open("distilbert-base-uncased", RepoKind::Model)?)?;
//! let opts = TokenizeOptions { max_length: Some(256), ..Default::default() };
//! let encoded = tokenize_text_classification(&train, &tok, "text", Some("label"), &opts)?;
//! assert_eq!(encoded.dataset.len(), 2000);
//! # Ok(()) }
//! ```
//!
//! This crate knows nothing of models.

pub mod align;
pub mod augment;
pub mod clip;
pub mod collate;
pub mod dataset;
pub mod features;
pub mod recipe;
pub mod source;
pub mod tokenize;
pub mod vision;

mod error;

pub use error::DataError;
/// Model and dataset repositories (re-exported from `ft-hub`, which the models share).
pub use ft_hub::hub;
/// NumPy's seeded permutation (re-exported from `ft-hub`).
pub use ft_hub::rng;

/// Result type of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
