//! Text classification behind the server: [`TextClassificationPipeline`] as a
//! [`BatchModel`], answering `{"label", "score"}` per text (the notebook's response).

use super::batcher::BatchModel;
use crate::pipeline::TextClassificationPipeline;

impl BatchModel for TextClassificationPipeline {
    fn run(&self, inputs: &[String]) -> Result<Vec<serde_json::Value>, String> {
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let out = self.predict(&refs).map_err(|e| e.to_string())?;
        Ok(out.into_iter().map(|r| serde_json::json!({"label": r.label, "score": r.score})).collect())
    }
}
