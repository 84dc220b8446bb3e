//! DistilBERT (transformers' `DistilBertModel`, `DistilBertForSequenceClassification`,
//! `DistilBertForTokenClassification`).

mod config;
mod heads;
mod load;
mod model;

pub use config::{DISTILBERT_LAYER_NORM_EPS, DistilBertConfig};
pub use heads::{DistilBertForSequenceClassification, DistilBertForTokenClassification};
pub use load::sinusoidal_table;
pub use model::{DistilBertAttention, DistilBertEmbeddings, DistilBertFfn, DistilBertLayer, DistilBertModel};
