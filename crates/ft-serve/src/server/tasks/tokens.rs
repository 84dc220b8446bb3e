//! `token-classification`: `{"text"}` → the pipeline's entities (grouped by the server's
//! `--aggregation-strategy`), as transformers' `pipeline("ner")`.

use serde_json::{Value, json};

use super::TaskSpec;
use crate::pipeline::TokenClassificationPipeline;
use crate::server::batcher::{BatchModel, Call, Output, RunError};

/// The request fields of token classification.
pub struct TokenClassificationSpec;

impl TaskSpec for TokenClassificationSpec {
    fn task(&self) -> &'static str {
        "token-classification"
    }
    fn output_schema(&self) -> Value {
        json!({"type": "array", "items": {"type": "object", "properties": {
            "entity_group": {"type": "string"}, "entity": {"type": "string"}, "score": {"type": "number"},
            "index": {"type": "integer"}, "word": {"type": "string"},
            "start": {"type": "integer"}, "end": {"type": "integer"}}}})
    }
    fn predictions(&self, output: &Value) -> Vec<(String, f64)> {
        output
            .as_array()
            .map(|entities| {
                entities
                    .iter()
                    .filter_map(|e| {
                        let label = e.get("entity_group").or_else(|| e.get("entity"))?.as_str()?;
                        Some((label.to_string(), e.get("score")?.as_f64()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl BatchModel for TokenClassificationPipeline {
    fn run(&mut self, call: Call<'_>) -> Result<Output, RunError> {
        self.set_adapter(call.adapter)?;
        let texts: Vec<&str> = call.inputs.iter().filter_map(|i| i.text()).collect();
        let out = self.predict(&texts)?;
        let tokens = out.iter().map(|r| r.input_ids.len()).sum();
        let values = out
            .into_iter()
            .map(|r| serde_json::to_value(r.entities).map_err(|e| RunError::server(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Output { values, tokens })
    }
}
