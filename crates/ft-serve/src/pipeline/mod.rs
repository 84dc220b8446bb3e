//! Pipelines: text in, predictions out.

mod common;
mod image_classification;
mod text_classification;
mod text_generation;
mod token_classification;

pub use common::{PipelineOptions, sigmoid, softmax};
pub use image_classification::{ImageClassification, ImageClassificationPipeline, resolve_image_path};
pub use text_classification::{TextClassification, TextClassificationPipeline};
pub use text_generation::{GeneratedText, NextTokenLogits, TextGenerationPipeline};
pub use token_classification::{AggregationStrategy, Entity, TokenClassification, TokenClassificationPipeline};
