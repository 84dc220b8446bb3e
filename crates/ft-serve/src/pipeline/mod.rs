//! Pipelines: text in, predictions out.

mod common;
mod text_classification;
mod token_classification;

pub use common::{PipelineOptions, sigmoid, softmax};
pub use text_classification::{TextClassification, TextClassificationPipeline};
pub use token_classification::{AggregationStrategy, Entity, TokenClassification, TokenClassificationPipeline};
