//! # ft-serve
//!
//! Inference pipelines with the behaviour of transformers' `pipeline(...)`:
//!
//! - [`pipeline::TextClassificationPipeline`]: `pipeline("text-classification")` — top label,
//!   its softmax (or sigmoid) score, and the raw logits.
//! - [`pipeline::TokenClassificationPipeline`]: `pipeline("token-classification",
//!   aggregation_strategy=...)` — per-token logits with word ids, and entities grouped as
//!   transformers groups them (`none` or `simple`).
//! - [`pipeline::ImageClassificationPipeline`]: `pipeline("image-classification")` for ResNets
//!   (timm/torchvision) — the preprocessing of the model's `pretrained_cfg` (torchvision's
//!   `ResNet18_Weights.IMAGENET1K_V1.transforms()` for resnet18), top class, softmax score and
//!   logits.
//!
//! Texts are tokenized with the model's own `tokenizer.json`, truncated at the model's
//! `max_position_embeddings` unless told otherwise, sorted by length and run in padded batches;
//! batched results equal one-at-a-time results (to 1e-5).
//!
//! - [`pipeline::TextGenerationPipeline`]: `pipeline("text-generation")` for GPT-2, with
//!   token-by-token streaming.
//!
//! Every text pipeline runs PEFT / AdapterHub adapters on its base and switches the active one
//! without reloading (`set_adapter`).
//!
//! [`server`]: `ft serve`'s HTTP server (axum + tokio) — the notebook's §12 `POST /predict` for
//! every pipeline, with dynamic batching on model threads, adapters per request, SSE streaming,
//! limits, Prometheus metrics, OpenAPI and a canary. `server::router` mounts it in your own axum
//! app; a new task is one file in `server/tasks/`.

pub mod pipeline;
pub mod server;

mod error;

pub use error::ServeError;

/// Result type of this crate.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
