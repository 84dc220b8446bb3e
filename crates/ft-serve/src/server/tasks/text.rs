//! `text-classification`: `{"text"}` → `{"label", "score"}` (the notebook's §12 contract), or
//! the `top_k` best.

use serde_json::{Map, Value};

use super::{TaskSpec, classification_output, classification_schema, top_k_option, top_prediction};
use crate::pipeline::TextClassificationPipeline;
use crate::server::batcher::{BatchModel, Call, Output, RunError};

/// The request fields of text classification.
pub struct TextClassificationSpec;

impl TaskSpec for TextClassificationSpec {
    fn task(&self) -> &'static str {
        "text-classification"
    }
    fn option_schemas(&self) -> Vec<(&'static str, Value)> {
        vec![(
            "top_k",
            serde_json::json!({"type": "integer", "minimum": 1, "description": "answer the k best labels as a list"}),
        )]
    }
    fn options(&self, body: &Map<String, Value>) -> Result<Value, String> {
        top_k_option(body)
    }
    fn output_schema(&self) -> Value {
        classification_schema()
    }
    fn predictions(&self, output: &Value) -> Vec<(String, f64)> {
        top_prediction(output)
    }
    fn has_labels(&self) -> bool {
        true
    }
}

impl BatchModel for TextClassificationPipeline {
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
        self.set_adapter(call.adapter)?;
        let texts: Vec<&str> = call.inputs.iter().filter_map(|i| i.text()).collect();
        let out = self.predict(&texts)?;
        let tokens = out.iter().map(|r| r.tokens).sum();
        let values = out.iter().map(|r| classification_output(self.labels(), &r.scores, call.options)).collect();
        Ok(Output { values, tokens })
    }
}
