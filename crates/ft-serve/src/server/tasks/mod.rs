//! The served tasks: each file is one task — its request fields ([`TaskSpec`]) and its
//! pipeline run as a [`BatchModel`](super::batcher::BatchModel). A new task touches this folder
//! and `ft serve`'s loader only.

mod generation;
mod image;
mod text;
mod tokens;

pub use generation::TextGenerationSpec;
pub use image::ImageClassificationSpec;
pub use text::TextClassificationSpec;
pub use tokens::TokenClassificationSpec;

use serde_json::{Value, json};

use super::request::{TaskSpec, optional};

/// The `top_k` option of the classification tasks: `None` answers `{"label", "score"}`, `Some(k)`
/// the `k` best as a list (transformers' pipelines).
fn top_k_option(body: &serde_json::Map<String, Value>) -> Result<Value, String> {
    match optional::<usize>(body, "top_k", "a positive integer")? {
        Some(0) => Err("field \"top_k\" must be at least 1".into()),
        Some(k) => Ok(json!({"top_k": k})),
        None => Ok(Value::Null),
    }
}

/// `{"label", "score"}` for the best label, or the `top_k` best as a list, best first.
fn classification_output(labels: &[String], scores: &[f32], options: &Value) -> Value {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let entry =
        |i: usize| json!({"label": labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}")), "score": scores[i]});
    match options.get("top_k").and_then(Value::as_u64) {
        Some(k) => Value::Array(order.iter().take(k as usize).map(|&i| entry(i)).collect()),
        None => order.first().map_or(Value::Null, |&i| entry(i)),
    }
}

/// The (label, score) of a classification output (the best one of a `top_k` list).
fn top_prediction(output: &Value) -> Vec<(String, f64)> {
    let best = match output {
        Value::Array(items) => items.first(),
        v => Some(v),
    };
    best.and_then(|b| Some((b.get("label")?.as_str()?.to_string(), b.get("score")?.as_f64()?))).into_iter().collect()
}

/// The OpenAPI schema of a classification output.
fn classification_schema() -> Value {
    let one = json!({"type": "object", "properties": {"label": {"type": "string"}, "score": {"type": "number"}}});
    json!({"oneOf": [one.clone(), {"type": "array", "items": one, "description": "with top_k"}]})
}

/// The task served under `task` (as `--task` spells it).
pub fn spec(task: &str) -> Option<Box<dyn TaskSpec>> {
    Some(match task {
        "text-classification" => Box::new(TextClassificationSpec),
        "token-classification" => Box::new(TokenClassificationSpec),
        "text-generation" => Box::new(TextGenerationSpec),
        "image-classification" => Box::new(ImageClassificationSpec),
        _ => return None,
    })
}
