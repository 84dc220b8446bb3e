//! Pipelines: text in, predictions out.

mod common;
mod text_classification;
mod token_classification;

pub use common::{PipelineOptions, softmax, sigmoid};
pub use text_classification::{TextClassification, TextClassificationPipeline};
pub use token_classification::{AggregationStrategy, Entity, TokenClassification, TokenClassificationPipeline};
