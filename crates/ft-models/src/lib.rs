//! # ft-models
//!
//! Pre-trained transformer models in [Burn](https://burn.dev), loading Hugging Face Hub
//! checkpoints and computing what transformers computes (checked against it to 1e-4 by the
//! workspace's parity tests):
//!
//! - [`bert`]: `BertModel`, `BertForSequenceClassification`, `BertForTokenClassification`
//! - [`distilbert`]: `DistilBertModel`, `DistilBertForSequenceClassification`,
//!   `DistilBertForTokenClassification`
//! - [`gpt2`]: `GPT2Model`, `GPT2LMHeadModel` with a key/value cache; [`generation`]: greedy and
//!   sampled generation as transformers' `generate` (temperature, top-k, top-p, repetition
//!   penalty, end-of-sequence stopping, left-padded batches, `generation_config.json`)
//! - [`resnet`]: torchvision's ResNet18/34 from timm-layout folders (`model.safetensors`) or
//!   `.pth` state_dicts, with the preprocessing `pretrained_cfg` describes, head replacement and
//!   freezing (`resnet::load`)
//!
//! [`auto::load`] opens a local directory or a Hub id (`org/name[@revision]`, downloaded into
//! the standard cache, honouring `HF_HOME`, `HF_ENDPOINT` and `HF_HUB_OFFLINE`), reads
//! `config.json` (its `model_type` picks the architecture) and the safetensors checkpoint
//! (single file or sharded), and reports loaded, newly initialised and unused tensors by name,
//! as `from_pretrained` does.
//!
//! ```no_run
//! use ft_models::auto::{load, LoadOptions, Task};
//! # fn main() -> Result<(), ft_models::ModelError> {
//! let device = ft_models::device::parse_device("cpu")?;
//! let loaded = load("distilbert/distilbert-base-uncased", Task::SequenceClassification,
//!                   &LoadOptions { num_labels: Some(4), ..Default::default() }, &device)?;
//! println!("newly initialized: {:?}", loaded.report.newly_initialized);
//! # Ok(()) }
//! ```
//!
//! Every architecture names its parts once, with the Hub's names ([`naming::HubModule`]): the
//! same list loads checkpoints ([`weights::load_parts`]), saves them ([`export::HfTensors`]),
//! freezes by name ([`params::set_trainable`]) and finds where adapters attach — each linear
//! layer is a [`layers::Projection`] that can carry LoRA deltas, each transformer sub-layer has a
//! bottleneck-adapter slot, and the forward passes take input embeddings and past keys/values
//! ([`input::TextInput`], [`input::KvCache`]). `ft-peft` provides what goes in those seams.
//!
//! The crate has no backend by default; the `flex`, `ndarray`, `cuda` and `vulkan` features
//! forward to Burn's and make [`device::parse_device`] accept the matching device strings.

pub mod attention;
pub mod auto;
pub mod bert;
pub mod config;
pub mod device;
pub mod distilbert;
pub mod export;
pub mod generation;
pub mod gpt2;
pub mod input;
pub mod layers;
pub mod naming;
pub mod params;
pub mod peft;
pub mod resnet;
pub mod weights;

mod error;

pub use error::{ModelError, Result};
