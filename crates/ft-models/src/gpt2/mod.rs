//! GPT-2 (transformers' `GPT2Model`, `GPT2LMHeadModel`), with a key/value cache; generation
//! lives in [`crate::generation`].

mod config;
mod heads;
mod load;
mod model;

pub use config::Gpt2Config;
pub use heads::GPT2LMHeadModel;
pub use load::{drop_ignored_tensors, is_ignored_tensor};
pub use model::{CausalMask, GPT2Attention, GPT2Block, GPT2MLP, GPT2Model, KvCache, causal_attention};
