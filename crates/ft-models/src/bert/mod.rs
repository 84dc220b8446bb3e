//! BERT (transformers' `BertModel`, `BertForSequenceClassification`,
//! `BertForTokenClassification`).

mod config;
mod heads;
mod load;
mod model;

pub use config::BertConfig;
pub use heads::{BertForSequenceClassification, BertForTokenClassification};
pub use model::{
    BertAttention, BertEmbeddings, BertLayer, BertModel, BertOutput, BertPooler, BertResidualOutput, BertSelfAttention,
};
